"""Kafka fixtures: topics of their own per test, sensor ticks against a real instance, and in-process runs."""

import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context, instance_for_test

from graphmem_core.settings import Settings
from graphmem_core.streaming.kafka import MessageProducer, ensure_topics, open_reader
from graphmem_core.streaming.messages import KafkaRecord, message_key
from tests.conftest import PODCASTS_ZIP, require_corpus, service_url


def podcast_texts(count: int) -> list[str]:
    """Return the first `count` podcast transcripts, in file name order."""
    with zipfile.ZipFile(require_corpus(PODCASTS_ZIP)) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".txt"))[:count]
        return [archive.read(name).decode("utf-8") for name in names]


def document_payload(text: str, tenant: str = "acme", memory: str = "stream", **fields) -> bytes:
    return json.dumps({"schema_version": 1, "tenant": tenant, "memory": memory, "text": text, **fields}).encode("utf-8")


@dataclass
class KafkaProject:
    """Environment of one streaming test: its own topics, graph home and Dagster instance."""

    settings: Settings
    instance: DagsterInstance

    def produce(self, values: list[bytes | None], key: bytes | None = None) -> None:
        """Send raw values to the raw topic, in order, and wait for the acknowledgements."""
        producer = MessageProducer(self.settings)
        for value in values:
            producer.send(self.settings.kafka_raw_topic, key, value)
        producer.flush()

    def produce_documents(self, texts: list[str], tenant: str = "acme", memory: str = "stream") -> None:
        producer = MessageProducer(self.settings)
        for index, text in enumerate(texts):
            producer.send(self.settings.kafka_raw_topic, message_key(tenant, memory, f"doc-{index}"), document_payload(text, tenant, memory))
        producer.flush()

    def tick(self, cursor: str | None) -> SensorResult | SkipReason:
        """Evaluate the Kafka sensor once and apply its partition requests to the instance, as the daemon does."""
        from graphmem_dagster.streaming.resources import KafkaResource
        from graphmem_dagster.streaming.sensors import kafka_sensor

        context = build_sensor_context(instance=self.instance, cursor=cursor, resources={"kafka": KafkaResource()})
        result = kafka_sensor(context)
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests or []:
                if type(request).__name__ == "AddDynamicPartitionsRequest":
                    self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
                else:
                    for key in request.partition_keys:
                        self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        return result

    def run(self, partition_key: str, run_config: dict | None = None):
        """Execute the ingest job for one batch partition in this process, as a launched run would."""
        from graphmem_dagster.definitions import defs

        job = defs.resolve_job_def("ingest")
        return job.execute_in_process(partition_key=partition_key, instance=self.instance, run_config=run_config, raise_on_error=False)

    def read_topic(self, topic: str) -> list[KafkaRecord]:
        """Return every message of a topic, in partition and offset order."""
        with open_reader(self.settings, topic, "graphmem-test-reader") as reader:
            watermarks = reader.watermarks(reader.partitions())
            result = reader.read({p: low for p, (low, _) in watermarks.items()}, {p: high for p, (_, high) in watermarks.items()})
        return sorted(result.records, key=lambda r: (r.partition, r.offset))


def configure_kafka(monkeypatch, tmp_path, bootstrap: str, partitions: int = 2, **variables: str) -> Settings:
    """Point the GRAPHMEM_* variables at fresh topics and a fresh graph home; return the settings they give."""
    suffix = uuid.uuid4().hex[:10]
    environment = {
        "GRAPHMEM_HOME": str(tmp_path / "graphmem"),
        "GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "GRAPHMEM_KAFKA_RAW_TOPIC": f"test.raw.{suffix}",
        "GRAPHMEM_KAFKA_DLQ_TOPIC": f"test.dlq.{suffix}",
        "GRAPHMEM_KAFKA_CONSUMER_GROUP": f"test-group-{suffix}",
        "GRAPHMEM_KAFKA_RAW_PARTITIONS": str(partitions),
        "GRAPHMEM_KAFKA_TIMEOUT_SECONDS": "5",
        **variables,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    ensure_topics(settings)
    return settings


@pytest.fixture
def kafka_project(monkeypatch, tmp_path) -> Iterator[KafkaProject]:
    settings = configure_kafka(monkeypatch, tmp_path, service_url("kafka"))
    with instance_for_test() as instance:
        yield KafkaProject(settings=settings, instance=instance)
