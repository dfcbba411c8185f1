"""Every Dagster definition loads, and the inbox sensor turns new files into batches."""

import json
import os
import time
from pathlib import Path

from dagster import AssetKey, DagsterInstance, DefaultScheduleStatus, SensorResult, SkipReason, build_sensor_context

from graphmem_dagster.definitions import defs
from graphmem_dagster.ingestion.resources import GraphStoreResource
from graphmem_dagster.ingestion.sensors import SETTLE_SECONDS, inbox_sensor

INGESTION_ASSETS = ["raw_documents", "embeddings", "extracted_triples", "resolved_graph", "communities"]
ASSETS = [*INGESTION_ASSETS, "graph_backup"]


def test_definitions_load():
    repository = defs.get_repository_def()

    assert sorted(key.path[-1] for key in repository.asset_graph.get_all_asset_keys()) == sorted(ASSETS)
    assert repository.get_job("ingest").partitions_def.name == "batches"
    assert [sensor.name for sensor in repository.sensor_defs] == ["inbox_sensor", "kafka_sensor"]
    assert sorted(defs.resources) == ["embedder", "extractor", "graph_store", "kafka"]


def test_kafka_sensor_targets_ingest():
    sensor = defs.get_repository_def().get_sensor_def("kafka_sensor")

    assert sensor.job_name == "ingest"
    assert sensor.minimum_interval_seconds == 30


def test_jobs_select_their_assets():
    repository = defs.get_repository_def()

    ingest_keys = repository.get_job("ingest").asset_layer.executable_asset_keys
    backup_keys = repository.get_job("backup").asset_layer.executable_asset_keys

    assert sorted(key.path[-1] for key in ingest_keys) == sorted(INGESTION_ASSETS)
    assert [key.path[-1] for key in backup_keys] == ["graph_backup"]
    assert repository.get_job("backup").partitions_def is None


def test_backup_schedule_stopped_by_default():
    repository = defs.get_repository_def()

    schedule = repository.get_schedule_def("daily_backup")

    assert schedule.job_name == "backup"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * *"


def test_asset_checks_defined():
    repository = defs.get_repository_def()

    check_keys = repository.asset_graph.asset_check_keys

    assert {(key.asset_key, key.name) for key in check_keys} == {
        (AssetKey("embeddings"), "chunks_embedded_unit_norm"),
        (AssetKey("resolved_graph"), "relations_have_entities"),
        (AssetKey("communities"), "membership_covers_graph"),
    }


def test_embeddings_tagged_for_gpu_pods():
    node = defs.get_assets_def("embeddings").node_def

    # Dagster stores dictionary tag values as JSON strings.
    config = json.loads(node.tags["dagster-k8s/config"])

    limits = config["container_config"]["resources"]["limits"]

    assert limits["nvidia.com/gpu"] == "1"


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def evaluate(instance: DagsterInstance, home: Path, cursor: str | None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"graph_store": GraphStoreResource(home=str(home))})
    return inbox_sensor(context)


def test_inbox_sensor_creates_batch(tmp_path: Path, podcast_texts):
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    for name, text in podcast_texts[:3]:
        (inbox / name).write_text(text, encoding="utf-8")
        age(inbox / name, SETTLE_SECONDS + 5)
    instance = DagsterInstance.ephemeral()

    result = evaluate(instance, home, None)

    assert isinstance(result, SensorResult)
    assert len(result.run_requests) == 1
    batch_id = result.run_requests[0].partition_key
    assert result.run_requests[0].run_key == batch_id
    assert result.dynamic_partitions_requests[0].partition_keys == [batch_id]
    manifest = json.loads((home / "batches" / f"{batch_id}.json").read_text(encoding="utf-8"))
    assert len(manifest["files"]) == 3


def test_inbox_sensor_skips_seen_files(tmp_path: Path, podcast_texts):
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    name, text = podcast_texts[0]
    (inbox / name).write_text(text, encoding="utf-8")
    age(inbox / name, SETTLE_SECONDS + 5)
    instance = DagsterInstance.ephemeral()
    first = evaluate(instance, home, None)

    second = evaluate(instance, home, first.cursor)

    assert isinstance(second, SkipReason)


def test_inbox_sensor_new_file_new_batch(tmp_path: Path, podcast_texts):
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (first_name, first_text), (second_name, second_text) = podcast_texts[:2]
    (inbox / first_name).write_text(first_text, encoding="utf-8")
    age(inbox / first_name, SETTLE_SECONDS + 5)
    instance = DagsterInstance.ephemeral()
    first = evaluate(instance, home, None)

    (inbox / second_name).write_text(second_text, encoding="utf-8")
    age(inbox / second_name, SETTLE_SECONDS + 5)
    second = evaluate(instance, home, first.cursor)

    assert isinstance(second, SensorResult)
    assert second.run_requests[0].partition_key != first.run_requests[0].partition_key
    manifest = json.loads((home / "batches" / f"{second.run_requests[0].partition_key}.json").read_text(encoding="utf-8"))
    assert [Path(f["path"]).name for f in manifest["files"]] == [second_name]


def test_inbox_sensor_waits_for_settled_files(tmp_path: Path, podcast_texts):
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    name, text = podcast_texts[0]
    (inbox / name).write_text(text, encoding="utf-8")

    result = evaluate(DagsterInstance.ephemeral(), home, None)

    assert isinstance(result, SkipReason)


def test_inbox_sensor_missing_inbox(tmp_path: Path):
    result = evaluate(DagsterInstance.ephemeral(), tmp_path / "nowhere", None)

    assert isinstance(result, SkipReason)
    assert "does not exist" in result.skip_message
