"""The Kafka sensor: new messages on the raw topic become batch partitions and runs of the ingest job.

The cursor contains the next offset of every partition of the topic. A batch's partition key names its
offset ranges and is also its run key, so a tick evaluated twice requests the same runs, which
Dagster launches once. The run reads its messages again from the key, so a failed run can be
retried, and a cursor reset replays messages into a graph that already has them.
"""

import json
import logging
import os

from dagster import (
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from graphmem_core.errors import StreamError
from graphmem_core.settings import Settings
from graphmem_core.streaming.tick import TickPlan, plan_tick
from graphmem_dagster.ingestion.jobs import ingest_job
from graphmem_dagster.ingestion.partitions import batch_partitions
from graphmem_dagster.streaming.partitions import partitions_to_retire
from graphmem_dagster.streaming.resources import KafkaResource

logger = logging.getLogger(__name__)

# Read when the code location loads, because Dagster fixes a sensor's interval and default state
# when it is defined. With GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS set, the sensor starts running by itself.
INTERVAL_VARIABLE = "GRAPHMEM_KAFKA_SENSOR_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = 30


def _interval_seconds() -> int:
    value = os.environ.get(INTERVAL_VARIABLE, "")
    if not value:
        return DEFAULT_INTERVAL_SECONDS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{INTERVAL_VARIABLE}={value!r} is not a whole number of seconds of at least 1: fix or unset it")
    return int(value)


def _default_status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if os.environ.get("GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS") else DefaultSensorStatus.STOPPED


def parse_cursor(cursor: str | None, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """Return the next offsets and the last reported lag stored in a cursor, empty for another topic.

    A cursor written for another topic is ignored, so changing GRAPHMEM_KAFKA_RAW_TOPIC starts the
    new topic from GRAPHMEM_KAFKA_START_OFFSET.
    """
    if not cursor:
        return {}, {}
    state = json.loads(cursor)
    if state.get("topic") != topic:
        logger.warning("the sensor cursor is for topic %s, not %s, so reading starts afresh", state.get("topic"), topic)
        return {}, {}
    next_offsets = {int(partition): int(offset) for partition, offset in state.get("next_offsets", {}).items()}
    lag = {int(partition): int(count) for partition, count in state.get("lag", {}).items()}
    return next_offsets, lag


def format_cursor(topic: str, plan: TickPlan) -> str:
    """Serialise the offsets after this tick's batches, and the lag reported, as the sensor cursor."""
    return json.dumps(
        {
            "topic": topic,
            "next_offsets": {str(p): offset for p, offset in sorted(plan.next_offsets.items())},
            "lag": {str(p): count for p, count in sorted(plan.lag.items())},
        },
        sort_keys=True,
    )


def _lag_observation(settings: Settings, plan: TickPlan) -> AssetObservation:
    """Describe the backlog of messages not yet in any batch, per partition and in total."""
    return AssetObservation(
        asset_key=AssetKey("raw_documents"),
        metadata={
            "topic": settings.kafka_raw_topic,
            "consumer_group": settings.kafka_consumer_group,
            "lag": plan.total_lag,
            "lag_by_partition": MetadataValue.json({str(p): count for p, count in plan.lag.items()}),
            "end_offsets": MetadataValue.json({str(p): offset for p, offset in plan.end_offsets.items()}),
            "messages_lost_to_retention": sum(plan.skipped.values()),
        },
    )


@sensor(
    job=ingest_job,
    minimum_interval_seconds=_interval_seconds(),
    default_status=_default_status(),
    description="Turn new messages on the raw Kafka topic into batch partitions of at most "
    "GRAPHMEM_KAFKA_BATCH_MAX_MESSAGES messages and launch one ingest run per batch.",
)
def kafka_sensor(context: SensorEvaluationContext, kafka: KafkaResource) -> SensorResult | SkipReason:
    """Create batch partitions and runs for new messages, report consumer lag, and retire finished partitions.

    When the broker does not respond, the tick skips with the reason and keeps its cursor, so the
    next tick reads from where this one would have.
    """
    settings = kafka.settings()
    topic = settings.kafka_raw_topic
    previous, reported_lag = parse_cursor(context.cursor, topic)
    try:
        plan = plan_tick(settings, previous)
    except StreamError as error:
        logger.warning("Kafka sensor tick skipped: %s", error)
        return SkipReason(f"{error}. The cursor is kept, and the next tick reads from the same offsets.")

    partition_requests = []
    keys = [batch.key for batch in plan.batches]
    if keys:
        partition_requests.append(batch_partitions.build_add_request(keys))
    retired = partitions_to_retire(context.instance, settings.kafka_retained_batches)
    if retired:
        logger.info("retiring %d finished Kafka batch partitions, oldest %s", len(retired), retired[0])
        partition_requests.append(batch_partitions.build_delete_request(retired))

    events = [_lag_observation(settings, plan)] if plan.lag != reported_lag or plan.skipped else []
    run_requests = [RunRequest(partition_key=key, run_key=key, tags={"graphmem/source": "kafka", "graphmem/topic": topic}) for key in keys]
    if keys:
        logger.info("Kafka sensor requested %d runs; lag after them %d", len(keys), plan.total_lag)

    return SensorResult(
        run_requests=run_requests,
        skip_reason=None if keys else f"no new messages on {topic} (lag {plan.total_lag})",
        cursor=format_cursor(topic, plan),
        dynamic_partitions_requests=partition_requests,
        asset_events=events,
    )
