"""Kafka batches through the sensor and the ingest job, against the test broker and a real Dagster instance."""

import json
import os
import subprocess
import sys

from dagster import AssetKey, AssetMaterialization, SensorResult

from graphmem_core.documents import normalize_text
from graphmem_core.settings import Settings
from graphmem_core.stores import open_store
from graphmem_core.streaming.messages import HEADER_PREFIX
from graphmem_core.streaming.offsets import parse_batch_key
from graphmem_dagster.streaming.partitions import partitions_to_retire
from graphmem_dagster.streaming.sensors import parse_cursor
from tests.streaming.conftest import KafkaProject, document_payload, podcast_texts


def stored_texts(settings: Settings, tenant: str = "acme", memory: str = "stream") -> list[str]:
    store = open_store(settings)
    try:
        batch_ids = store.list_batches(tenant, memory)
        documents = {d.id: d.text for batch in batch_ids for d in store.get_batch_documents(tenant, memory, batch)}
    finally:
        store.close()
    return sorted(documents.values())


def graph_snapshot(settings: Settings, tenant: str = "acme", memory: str = "stream") -> dict:
    store = open_store(settings)
    try:
        counts = store.counts(tenant, memory)
        entities = sorted((e.name, e.type) for e in store.get_entities(tenant, memory))
        relations = sorted((r.source_id, r.target_id, r.type) for r in store.get_relations(tenant, memory))
    finally:
        store.close()
    return {key: counts[key] for key in ("documents", "chunks", "entities", "relations", "communities")} | {
        "entity_names": entities,
        "relations": relations,
    }


def materialization_metadata(project: KafkaProject, partition_key: str, asset: str) -> dict:
    records = project.instance.fetch_materializations(AssetKey(asset), limit=100).records
    for record in records:
        materialization = record.asset_materialization
        if materialization.partition == partition_key:
            return {name: value.value for name, value in materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset} for {partition_key}")


def test_malformed_to_dlq_neighbours_ingested(kafka_project: KafkaProject, monkeypatch):
    monkeypatch.setenv("GRAPHMEM_MAX_FILE_BYTES", "100000")
    texts = podcast_texts(4)
    malformed = [
        (b"{not json", "not_json"),
        (json.dumps({"tenant": "acme", "memory": "stream", "text": "no version"}).encode(), "wrong_schema"),
        (document_payload("   "), "empty_text"),
        (document_payload("word " * 30_000), "oversized_text"),
        (json.dumps({"schema_version": 9, "tenant": "acme", "memory": "stream", "text": "future"}).encode(), "unknown_schema_version"),
        (None, "not_json"),
    ]
    values: list[bytes | None] = []
    for index, text in enumerate(texts):
        values.append(document_payload(text))
        if index < 3:
            values.extend(value for value, _ in malformed[index * 2 : index * 2 + 2])
    kafka_project.produce(values, key=b"acme:stream:same-key")

    result = kafka_project.tick(None)
    assert isinstance(result, SensorResult)
    assert len(result.run_requests) == 1
    run = kafka_project.run(result.run_requests[0].partition_key)

    assert run.success
    assert stored_texts(kafka_project.settings) == sorted(normalize_text(t) for t in texts)
    dead_letters = kafka_project.read_topic(kafka_project.settings.kafka_dlq_topic)
    assert sorted(record.value or b"" for record in dead_letters) == sorted(value or b"" for value, _ in malformed)
    kinds = sorted(dict(record.headers)[HEADER_PREFIX + "kind"].decode() for record in dead_letters)
    assert kinds == sorted(kind for _, kind in malformed)
    for record in dead_letters:
        headers = dict(record.headers)
        assert headers[HEADER_PREFIX + "topic"].decode() == kafka_project.settings.kafka_raw_topic
        assert int(headers[HEADER_PREFIX + "offset"]) >= 0
        assert headers[HEADER_PREFIX + "reason"]
        assert record.key == b"acme:stream:same-key"
    metadata = materialization_metadata(kafka_project, result.run_requests[0].partition_key, "raw_documents")
    assert metadata["documents"] == 4
    assert metadata["rejected"] == 6
    assert metadata["dead_letters_sent"] == 6

    # A second attempt of the same batch finds the dead letters recorded and sends none again.
    again = kafka_project.run(result.run_requests[0].partition_key)
    assert again.success
    assert len(kafka_project.read_topic(kafka_project.settings.kafka_dlq_topic)) == len(malformed)
    assert materialization_metadata(kafka_project, result.run_requests[0].partition_key, "raw_documents")["dead_letters_sent"] == 0


def test_failed_run_retried_same_graph(kafka_project: KafkaProject):
    kafka_project.produce_documents(podcast_texts(6))
    result = kafka_project.tick(None)
    key = result.run_requests[0].partition_key

    failed = kafka_project.run(key, run_config={"resources": {"extractor": {"config": {"name": "no-such-extractor"}}}})
    assert not failed.success
    failure = failed.get_step_failure_events()[0]
    assert failure.step_key == "extracted_triples"
    assert "no-such-extractor" in failure.event_specific_data.error.cause.message
    assert len(stored_texts(kafka_project.settings)) == 6

    retried = kafka_project.run(key)
    assert retried.success
    after_retry = graph_snapshot(kafka_project.settings)

    store = open_store(kafka_project.settings)
    store.delete_namespace("acme", "stream")
    store.close()
    clean = kafka_project.run(key)

    assert clean.success
    assert graph_snapshot(kafka_project.settings) == after_retry
    assert after_retry["documents"] == 6


def test_ticks_repeatable_bounded_and_lagged(kafka_project: KafkaProject, monkeypatch):
    monkeypatch.setenv("GRAPHMEM_KAFKA_BATCH_MAX_MESSAGES", "3")
    monkeypatch.setenv("GRAPHMEM_KAFKA_MAX_BATCHES_PER_TICK", "2")
    kafka_project.produce_documents([f"Short document number {i} about Kafka streams." for i in range(10)])

    first = kafka_project.tick(None)
    # The broker interleaves partitions differently on each read; the plan must not follow it.
    again = [kafka_project.tick(None) for _ in range(4)]
    second = kafka_project.tick(first.cursor)
    third = kafka_project.tick(second.cursor)
    idle = kafka_project.tick(third.cursor)

    keys = [r.partition_key for tick in (first, second, third) for r in tick.run_requests]
    assert [r.run_key for r in first.run_requests] == [r.partition_key for r in first.run_requests]
    for repeated in again:
        assert [r.partition_key for r in repeated.run_requests] == [r.partition_key for r in first.run_requests]
    assert len(first.run_requests) == 2
    assert sum(parse_batch_key(key).span for key in keys) == 10
    assert all(parse_batch_key(key).span <= 3 for key in keys)
    assert isinstance(idle, SensorResult) and not idle.run_requests
    assert "no new messages" in idle.skip_reason.skip_message

    lag_events = [event for event in first.asset_events if event.asset_key == AssetKey("raw_documents")]
    assert lag_events[0].metadata["lag"].value == 4
    next_offsets, _ = parse_cursor(third.cursor, kafka_project.settings.kafka_raw_topic)
    assert sum(next_offsets.values()) == 10
    assert set(kafka_project.instance.get_dynamic_partitions("batches")) == set(keys)

    lag_command = subprocess.run(
        [sys.executable, "-m", "graphmem_dagster.cli", "topics", "lag", "--json"], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    assert lag_command.returncode == 0, lag_command.stderr
    assert json.loads(lag_command.stdout)["lag"] == 0


def test_finished_partitions_retired(kafka_project: KafkaProject):
    keys = [f"kafka:{kafka_project.settings.kafka_raw_topic}:0@{i}-{i}" for i in range(5)]
    kafka_project.instance.add_dynamic_partitions("batches", ["batch-0123456789abcdef", *keys])
    for key in (keys[0], keys[2], keys[3], keys[4]):
        kafka_project.instance.report_runless_asset_event(AssetMaterialization(asset_key="communities", partition=key))

    assert partitions_to_retire(kafka_project.instance, retained=2) == [keys[0], keys[2]]
    assert partitions_to_retire(kafka_project.instance, retained=5) == []


def test_tick_deletes_retired_partitions(kafka_project: KafkaProject, monkeypatch):
    monkeypatch.setenv("GRAPHMEM_KAFKA_RETAINED_BATCHES", "1")
    old = f"kafka:{kafka_project.settings.kafka_raw_topic}:0@0-0"
    kafka_project.instance.add_dynamic_partitions("batches", [old, f"kafka:{kafka_project.settings.kafka_raw_topic}:0@1-1"])
    kafka_project.instance.report_runless_asset_event(AssetMaterialization(asset_key="communities", partition=old))

    kafka_project.tick(None)

    assert old not in kafka_project.instance.get_dynamic_partitions("batches")


def test_produce_command(kafka_project: KafkaProject, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    texts = podcast_texts(3)
    for index, text in enumerate(texts[:2]):
        (inputs / f"episode-{index}.txt").write_text(text, encoding="utf-8")
    (inputs / "copy.txt").write_text(texts[0], encoding="utf-8")
    (inputs / "empty.txt").write_text("", encoding="utf-8")
    lines = [json.dumps({"text": texts[2], "id": "ep-3", "title": "Third", "metadata": {"season": 2}}), "{broken"]
    (inputs / "more.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    completed = subprocess.run(
        [sys.executable, "-m", "graphmem_dagster.cli", "produce", str(inputs), "--tenant", "acme", "--memory", "cli"],
        capture_output=True, text=True, env=os.environ.copy(), check=False,
    )

    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["documents"] == 3
    assert summary["duplicates"] == 1
    assert summary["rejected"] == 2
    assert "3 acknowledged" in completed.stderr
    assert "empty.txt" in completed.stderr
    records = kafka_project.read_topic(kafka_project.settings.kafka_raw_topic)
    assert len(records) == 3
    messages = [json.loads(record.value) for record in records]
    assert all(message["schema_version"] == 1 and message["tenant"] == "acme" for message in messages)
    assert all(record.key.decode().startswith("acme:cli:doc_") for record in records)
    third = next(message for message in messages if message.get("id") == "ep-3")
    assert third["title"] == "Third"
    assert third["metadata"] == {"season": 2}


def test_produce_missing_topic_fails(kafka_project: KafkaProject, tmp_path):
    (tmp_path / "one.txt").write_text("A single document.", encoding="utf-8")
    environment = {**os.environ, "GRAPHMEM_KAFKA_RAW_TOPIC": "test.raw.never-created"}

    completed = subprocess.run(
        [sys.executable, "-m", "graphmem_dagster.cli", "produce", str(tmp_path / "one.txt")], capture_output=True, text=True, env=environment, check=False
    )

    assert completed.returncode == 2
    assert "test.raw.never-created" in completed.stderr
    assert "graphmem topics create" in completed.stderr
