"""All podcast transcripts through Kafka, the daemon's sensor and queued runs on the PostgreSQL instance.

The daemon is stopped and started again while batches are still waiting, so the second sensor
process must continue from the cursor the first one stored in PostgreSQL.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from graphmem_core import pipeline
from graphmem_core.batches import register_batch
from graphmem_core.embeddings import Embedder
from graphmem_core.extraction import get_extractor
from graphmem_core.settings import Settings
from graphmem_core.stores import open_store
from graphmem_core.streaming.kafka import ensure_topics
from graphmem_core.streaming.offsets import is_kafka_batch_key, parse_batch_key
from graphmem_dagster.cli import ensure_dagster_home
from tests.conftest import PODCASTS_ZIP, PROJECT_ROOT, postgres_variables, require_corpus, service_url
from tests.daemon import daemon_environment, start_daemon, stop_daemon, wait_for

TENANT = "podcasts"
BATCH_MESSAGES = 300
RUN_TIMEOUT_SECONDS = 2100
# Incremental resolution over several batches gave 6,489 and 6,485 entities against a full
# resolution's 6,493 on this corpus, for two ways of splitting it into batches. The bound leaves
# room for other splits.
INCREMENTAL_TOLERANCE = 0.005


def kafka_runs(instance) -> list:
    from dagster import RunsFilter

    return [run for run in instance.get_runs(RunsFilter(job_name="ingest")) if is_kafka_batch_key(run.tags.get("dagster/partition", ""))]


@pytest.mark.slow
# About 6 minutes on an idle 2-core machine, most of it encoding 4,976 chunks; the limit leaves
# room for a loaded one.
@pytest.mark.timeout(2400)
def test_corpus_through_daemon_with_restart(postgres_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dagster import DagsterInstance, DagsterRunStatus

    url, database = postgres_database
    suffix = uuid.uuid4().hex[:10]
    variables = {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "GRAPHMEM_HOME": str(tmp_path / "graphmem_home"),
        "GRAPHMEM_DAGSTER_INSTANCE": "postgres",
        "GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS": service_url("kafka"),
        "GRAPHMEM_KAFKA_RAW_TOPIC": f"test.corpus.raw.{suffix}",
        "GRAPHMEM_KAFKA_DLQ_TOPIC": f"test.corpus.dlq.{suffix}",
        "GRAPHMEM_KAFKA_CONSUMER_GROUP": f"test-corpus-{suffix}",
        "GRAPHMEM_KAFKA_RAW_PARTITIONS": "3",
        "GRAPHMEM_KAFKA_BATCH_MAX_MESSAGES": str(BATCH_MESSAGES),
        # Two batches per tick, so that batches are still waiting when the daemon restarts.
        "GRAPHMEM_KAFKA_MAX_BATCHES_PER_TICK": "2",
        "GRAPHMEM_KAFKA_SENSOR_INTERVAL_SECONDS": "5",
        **postgres_variables(url, database),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(PROJECT_ROOT)
    ensure_dagster_home()
    settings = Settings.from_env()
    ensure_topics(settings)

    produced = subprocess.run(
        [sys.executable, "-m", "graphmem_dagster.cli", "produce", str(require_corpus(PODCASTS_ZIP)), "--tenant", TENANT, "--memory", "kafka"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300, check=False,
    )
    assert produced.returncode == 0, produced.stderr
    documents_sent = json.loads(produced.stdout)["documents"]

    instance = DagsterInstance.get()
    log_path = tmp_path / "daemon.log"
    environment = daemon_environment(**{name: os.environ[name] for name in os.environ if name.startswith(("GRAPHMEM_", "DAGSTER_"))})
    first_daemon = start_daemon(PROJECT_ROOT, environment, log_path)
    try:
        wait_for(lambda: len(kafka_runs(instance)) >= 2, 300, "the sensor requested no runs", process=first_daemon, log_path=log_path)
    finally:
        # Runs already launched go on in the first daemon's code server.
        stop_daemon(first_daemon, end_group=False)
    requested_before_restart = len(kafka_runs(instance))

    daemon = start_daemon(PROJECT_ROOT, environment, log_path)
    try:
        expected_batches = -(-documents_sent // BATCH_MESSAGES)
        runs = wait_for(
            lambda: (found := kafka_runs(instance)) and len(found) >= expected_batches and all(run.is_finished for run in found) and found,
            RUN_TIMEOUT_SECONDS,
            "the Kafka batches did not all finish",
            interval=3.0,
            process=daemon,
            log_path=log_path,
        )
    finally:
        stop_daemon(daemon)
        stop_daemon(first_daemon)

    failed = [run.run_id for run in runs if run.status != DagsterRunStatus.SUCCESS]
    assert not failed, f"runs {failed} did not succeed; see {log_path}"
    keys = [run.tags["dagster/partition"] for run in runs]
    assert len(keys) == len(set(keys)), "a batch was launched twice"
    assert requested_before_restart < len(keys)
    ranges = sorted((r.partition, r.first, r.last) for key in keys for r in parse_batch_key(key).ranges)
    covered = sum(last - first + 1 for _, first, last in ranges)
    assert covered == documents_sent, "the batches must cover every offset exactly once"
    for (partition, _, last), (next_partition, next_first, _) in zip(ranges, ranges[1:]):
        if partition == next_partition:
            assert next_first == last + 1, f"gap or overlap in partition {partition}"

    # The same files through folder ingestion, into another memory of the same tenant, whose
    # embedding cache makes this fast.
    store = open_store(settings)
    try:
        manifest = register_batch([require_corpus(PODCASTS_ZIP)], TENANT, "folder", settings.batches_path)
        pipeline.ingest_batch(store, manifest, settings.max_file_bytes)
        embedder = Embedder(settings.embedding_model, settings.embedding_device, settings.embedding_batch_size)
        pipeline.embed_batch(store, embedder, TENANT, "folder", manifest.batch_id, settings.chunk_overlap_tokens)
        extractor = get_extractor(settings.extractor, settings)
        pipeline.extract_batch(store, extractor, TENANT, "folder", manifest.batch_id)
        encoder = pipeline.cached_name_encoder(store, embedder, TENANT)
        pipeline.resolve_graph(store, extractor, TENANT, "folder", encoder, settings.resolution_threshold)
        kafka_counts = store.counts(TENANT, "kafka")
        folder_counts = store.counts(TENANT, "folder")

        # Batch by batch, each run resolved only its new names against the graph so far, which can
        # cluster a few names differently from one resolution of everything. Resolving the Kafka
        # namespace in full must give the folder's graph exactly.
        pipeline.resolve_graph(store, extractor, TENANT, "kafka", encoder, settings.resolution_threshold, full=True)
        kafka_full_counts = store.counts(TENANT, "kafka")
    finally:
        store.close()

    assert kafka_counts["documents"] == documents_sent
    for name in ("documents", "chunks", "embedded_chunks", "mentions"):
        assert kafka_counts[name] == folder_counts[name], name
    for name in ("entities", "relations"):
        assert kafka_full_counts[name] == folder_counts[name], name
        assert abs(kafka_counts[name] - folder_counts[name]) <= folder_counts[name] * INCREMENTAL_TOLERANCE, name
