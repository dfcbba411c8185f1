"""The inbox sensor: new files in a folder become a new batch partition and a run request."""

import json
import logging
import time
from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from graphmem_core.batches import register_batch
from graphmem_core.documents import list_input_files
from graphmem_dagster.ingestion.jobs import ingest_job
from graphmem_dagster.ingestion.partitions import batch_partitions
from graphmem_dagster.ingestion.resources import GraphStoreResource

logger = logging.getLogger(__name__)

# Files modified more recently than this may still be being written, so they wait for the next tick.
SETTLE_SECONDS = 2.0

# Files per batch: one run handles at most this many, so a large drop becomes several runs.
MAX_FILES_PER_BATCH = 500


def _signature(path: Path) -> str:
    status = path.stat()
    return f"{status.st_size}:{status.st_mtime_ns}"


def plan_inbox_batches(inbox: Path, seen: dict[str, str], now: float) -> tuple[list[list[Path]], dict[str, str]]:
    """Return the settled new or changed files of `inbox` grouped into batches, and the next cursor.

    The cursor maps each file path to its size and modification time, and keeps only files still in
    the inbox, so it never grows past the inbox itself.
    """
    if not inbox.is_dir():
        return [], {}

    current: dict[str, str] = {}
    new_files: list[Path] = []
    for path in list_input_files(inbox):
        key = str(path)
        signature = _signature(path)
        if seen.get(key) == signature:
            current[key] = signature
        elif now - path.stat().st_mtime >= SETTLE_SECONDS:
            current[key] = signature
            new_files.append(path)
        elif key in seen:
            current[key] = seen[key]

    batches = [new_files[i : i + MAX_FILES_PER_BATCH] for i in range(0, len(new_files), MAX_FILES_PER_BATCH)]
    return batches, current


@sensor(job=ingest_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def inbox_sensor(context: SensorEvaluationContext, graph_store: GraphStoreResource) -> SensorResult | SkipReason:
    """Turn files dropped into the inbox folder (GRAPHMEM_INBOX) into batch partitions and runs.

    Each batch's id derives from its files' paths and contents, so a tick evaluated twice requests
    the same partition and run key, and Dagster launches it once.
    """
    settings = graph_store.settings()
    inbox = settings.inbox_path
    if not inbox.is_dir():
        return SkipReason(f"inbox folder {inbox} does not exist: create it or set GRAPHMEM_INBOX")

    seen = json.loads(context.cursor) if context.cursor else {}
    batches, cursor = plan_inbox_batches(inbox, seen, time.time())
    if not batches:
        return SkipReason(f"no new settled files in {inbox}")

    manifests = [register_batch(files, settings.tenant, settings.memory, settings.batches_path) for files in batches]
    batch_ids = [manifest.batch_id for manifest in manifests]
    logger.info("inbox sensor created batches %s from %d files", batch_ids, sum(len(files) for files in batches))
    return SensorResult(
        run_requests=[RunRequest(partition_key=batch_id, run_key=batch_id) for batch_id in batch_ids],
        dynamic_partitions_requests=[batch_partitions.build_add_request(batch_ids)],
        cursor=json.dumps(cursor, sort_keys=True),
    )
