"""Retirement of old Kafka batch partitions, which keeps the dynamic partition count bounded.

Dagster slows down as a partitions definition grows towards 100,000 keys, and a busy topic adds a
partition every few seconds. Once a Kafka batch's last asset is materialised, its partition is no
longer needed: its documents stay in the graph store under the batch key, and its runs and events
stay in the instance.
"""

import logging

from dagster import AssetKey, DagsterInstance

from graphmem_core.streaming.offsets import is_kafka_batch_key
from graphmem_dagster.ingestion.partitions import batch_partitions

logger = logging.getLogger(__name__)

# The last asset of the ingest job: a partition materialised here has finished every stage.
FINAL_ASSET = AssetKey("communities")


def partitions_to_retire(instance: DagsterInstance, retained: int) -> list[str]:
    """Return the Kafka batch partitions older than the newest `retained` ones that have finished.

    Partitions that never finished, because their run failed or is still going, are kept whatever
    their age, so a failed batch can still be retried from the UI; until then the count stays above
    `retained`. Folder batches are never retired.
    """
    keys = [key for key in instance.get_dynamic_partitions(batch_partitions.name) if is_kafka_batch_key(key)]
    excess = len(keys) - retained
    if excess <= 0:
        return []

    materialised = instance.get_materialized_partitions(FINAL_ASSET)
    retired = [key for key in keys[:excess] if key in materialised]
    if len(retired) < excess:
        logger.warning(
            "%d Kafka batch partitions exceed the retention of %d but have not finished; retry or delete their failed runs",
            excess - len(retired),
            retained,
        )
    return retired
