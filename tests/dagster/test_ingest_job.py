"""The ingest job end to end: real transcripts and bad inputs through `dagster job launch` and the CLI."""

import json
import sys
import time

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from graphmem_core.documents import list_input_files, read_documents
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.dagster.conftest import BAD_FILES, MAX_FILE_BYTES, PODCAST_DOCUMENTS, IngestedProject

pytestmark = pytest.mark.slow


def open_instance(ingested: IngestedProject, monkeypatch: pytest.MonkeyPatch) -> DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(ingested.project.dagster_home))
    return DagsterInstance.get()


def snapshot(ingested: IngestedProject) -> tuple[dict[str, int], list[str], list[str]]:
    store = LibsqlGraphStore(ingested.project.graphmem_home / "graph.db")
    try:
        counts = store.counts("default", "default")
        entity_ids = [e.id for e in store.get_entities("default", "default")]
        chunk_ids = [c.id for c in store.get_chunks("default", "default")]
    finally:
        store.close()
    return counts, entity_ids, chunk_ids


def test_launched_run_succeeds(ingested: IngestedProject, monkeypatch):
    instance = open_instance(ingested, monkeypatch)

    run = instance.get_run_by_id(ingested.run_id)

    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == ingested.batch_id


def test_store_counts_match_inputs(ingested: IngestedProject):
    expected = read_documents(list_input_files(ingested.project.inputs), "default", "default", MAX_FILE_BYTES)

    counts, _, _ = snapshot(ingested)

    assert len(expected.documents) >= PODCAST_DOCUMENTS
    assert counts["documents"] == len(expected.documents)
    assert counts["chunks"] >= counts["documents"]
    assert counts["embedded_chunks"] == counts["chunks"]
    assert counts["entities"] > 100
    assert counts["relations"] > 100
    assert counts["mentions"] > counts["entities"]
    assert counts["community_levels"] >= 2


def test_bad_inputs_rejected_with_reason(ingested: IngestedProject):
    store = LibsqlGraphStore(ingested.project.graphmem_home / "graph.db")
    try:
        stored = store.get_rejections("default", "default", ingested.batch_id)
    finally:
        store.close()
    prefix = str(ingested.project.inputs.resolve()) + "/"
    rejections = {r.source.removeprefix(prefix): r.reason for r in stored}

    for name, expected_words in BAD_FILES.items():
        assert name in rejections, f"{name} was not rejected; rejections: {sorted(rejections)}"
        assert expected_words.lower() in rejections[name].lower(), rejections[name]
    jsonl_rejections = [source for source in rejections if source.startswith("episodes.jsonl")]
    assert len(jsonl_rejections) == 2


def test_run_metadata_lists_rejections(ingested: IngestedProject, monkeypatch):
    instance = open_instance(ingested, monkeypatch)

    records = instance.all_logs(ingested.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    metadata = {
        record.dagster_event.asset_key.path[-1]: record.dagster_event.event_specific_data.materialization.metadata for record in records
    }

    assert sorted(metadata) == ["communities", "embeddings", "extracted_triples", "raw_documents", "resolved_graph"]
    assert metadata["raw_documents"]["rejected"].value == len(BAD_FILES) + 2
    assert "rejections" in metadata["raw_documents"]
    assert "| community | members |" in metadata["communities"]["largest_communities"].value
    assert metadata["embeddings"]["encoded"].value > 0
    resolution = metadata["resolved_graph"]
    assert resolution["mode"].value == "full"
    assert resolution["names"].value >= resolution["entities"].value
    assert resolution["merges"].value == sum(resolution["merges_by_rule"].value.values())
    assert resolution["exclusions"].value == 0


def test_asset_checks_pass(ingested: IngestedProject, monkeypatch):
    instance = open_instance(ingested, monkeypatch)

    records = instance.all_logs(ingested.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    results = {record.dagster_event.event_specific_data.check_name: record.dagster_event.event_specific_data.passed for record in records}

    assert results == {"chunks_embedded_unit_norm": True, "relations_have_entities": True, "membership_covers_graph": True}


def test_second_launch_adds_nothing(ingested: IngestedProject, monkeypatch):
    before = snapshot(ingested)

    completed = ingested.project.run(sys.executable, "-m", "graphmem_dagster.cli", "ingest", str(ingested.project.inputs))

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["batch_id"] == ingested.batch_id
    assert result["status"] == "SUCCESS"
    assert snapshot(ingested) == before
    assert f"{len(BAD_FILES) + 2} inputs of {ingested.batch_id} were rejected" in completed.stderr
    assert "episodes.jsonl#L2" in completed.stderr

    instance = open_instance(ingested, monkeypatch)
    records = instance.all_logs(result["run_id"], of_type=DagsterEventType.ASSET_MATERIALIZATION)
    metadata = {r.dagster_event.asset_key.path[-1]: r.dagster_event.event_specific_data.materialization.metadata for r in records}
    assert metadata["raw_documents"]["new_documents"].value == 0
    assert metadata["embeddings"]["encoded"].value == 0
    assert metadata["resolved_graph"]["changed"].value is False


def test_query_command_returns_graph(ingested: IngestedProject):
    completed = ingested.project.run(
        sys.executable, "-m", "graphmem_dagster.cli", "query", "artificial intelligence and the future of work", "--json"
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    assert len(result["chunks"]) == 5
    assert result["chunks"][0]["score"] >= result["chunks"][-1]["score"]
    assert result["entities"]
    assert result["relations"]
    assert result["communities"]


def test_stats_command_json(ingested: IngestedProject):
    completed = ingested.project.run(sys.executable, "-m", "graphmem_dagster.cli", "stats", "--json")

    assert completed.returncode == 0, completed.stderr
    stats = json.loads(completed.stdout)
    counts, _, _ = snapshot(ingested)
    assert {key: stats[key] for key in counts} == counts


def test_ingest_missing_path_fails(ingested: IngestedProject):
    completed = ingested.project.run(sys.executable, "-m", "graphmem_dagster.cli", "ingest", "no-such-folder")

    assert completed.returncode == 2
    assert "no-such-folder" in completed.stderr


def wait_for_run(instance: DagsterInstance, run_id: str, timeout: float = 600) -> DagsterRunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run.status
        time.sleep(1)
    pytest.fail(f"run {run_id} did not finish within {timeout} s")


def test_ingest_no_wait_returns_run(ingested: IngestedProject, monkeypatch):
    completed = ingested.project.run(sys.executable, "-m", "graphmem_dagster.cli", "ingest", "--no-wait", str(ingested.project.inputs))

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["batch_id"] == ingested.batch_id
    assert "status" not in result
    instance = open_instance(ingested, monkeypatch)
    assert instance.get_run_by_id(result["run_id"]) is not None
    assert wait_for_run(instance, result["run_id"]) == DagsterRunStatus.SUCCESS


def test_failed_run_exits_nonzero(ingested: IngestedProject):
    # A batch of its own, so the shared batch's partition keeps its successful materialisations.
    inputs = ingested.project.root / "failing-inputs"
    inputs.mkdir()
    for source in sorted(ingested.project.inputs.glob("transcript-*.txt"))[:2]:
        (inputs / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    counts, entity_ids, chunk_ids = snapshot(ingested)
    environment = {"GRAPHMEM_EMBEDDING_MODEL": str(ingested.project.root / "no-such-model")}

    completed = ingested.project.run(sys.executable, "-m", "graphmem_dagster.cli", "ingest", str(inputs), extra_environment=environment)

    assert completed.returncode == 1, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["status"] == "FAILURE"
    assert result["batch_id"] != ingested.batch_id
    assert "embeddings FAILED" in completed.stderr
    assert "no-such-model" in completed.stderr
    after_counts, after_entity_ids, after_chunk_ids = snapshot(ingested)
    assert after_counts["documents"] == counts["documents"]
    assert after_entity_ids == entity_ids
    assert after_chunk_ids == chunk_ids
