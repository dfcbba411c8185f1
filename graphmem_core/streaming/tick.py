"""One evaluation of the Kafka sensor, without Dagster: read new messages and group them into batches.

The caller keeps `next_offsets` (the Dagster cursor) and passes it back on the next tick. Nothing
here changes the broker except the consumer group's committed offsets, which only report lag.
"""

import logging
import time
from dataclasses import dataclass, field

from graphmem_core.errors import StreamError
from graphmem_core.settings import Settings
from graphmem_core.streaming.kafka import open_reader
from graphmem_core.streaming.offsets import BatchLimits, KafkaBatch, consumer_lag, plan_batches, share_offsets

logger = logging.getLogger(__name__)

# Dagster stops a sensor evaluation after 60 s by default, so reading stops well before that.
DEFAULT_READ_SECONDS = 20.0

# Maximum message bytes one tick keeps in memory, whatever the batch limits multiply to. The rest
# waits for the next tick.
MAX_TICK_READ_BYTES = 64 * 1024 * 1024


@dataclass
class TickPlan:
    """Batches to launch, the cursor after them, and the backlog left on the broker."""

    batches: list[KafkaBatch]
    next_offsets: dict[int, int]
    end_offsets: dict[int, int]
    lag: dict[int, int]
    skipped: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


def _start_offsets(settings: Settings, previous: dict[int, int], watermarks: dict[int, tuple[int, int]]) -> tuple[dict[int, int], dict[int, int]]:
    """Return the start offset of each partition, and the messages skipped because the broker deleted them."""
    starts: dict[int, int] = {}
    skipped: dict[int, int] = {}
    for partition, (low, high) in sorted(watermarks.items()):
        if partition not in previous:
            starts[partition] = low if settings.kafka_start_offset == "earliest" else high
            logger.info("partition %d of %s is new to the cursor: starting at its %s offset %d", partition, settings.kafka_raw_topic, settings.kafka_start_offset, starts[partition])
            continue

        offset = previous[partition]
        if offset < low:
            skipped[partition] = low - offset
            logger.error(
                "%s/%d: offsets %d to %d were deleted by retention before they were batched, so %d messages are lost; "
                "lengthen the topic's retention.ms or let the sensor run more often",
                settings.kafka_raw_topic, partition, offset, low - 1, low - offset,
            )
            offset = low
        elif offset > high:
            logger.error(
                "%s/%d: the cursor's offset %d is past the partition's end %d, so the topic was probably recreated; reading it from %d",
                settings.kafka_raw_topic, partition, offset, high, low,
            )
            offset = low
        starts[partition] = offset
    return starts, skipped


def plan_tick(settings: Settings, previous: dict[int, int], read_seconds: float = DEFAULT_READ_SECONDS) -> TickPlan:
    """Read messages after `previous` and group them into at most `kafka_max_batches_per_tick` batches.

    Raises `BrokerUnavailableError` when no broker responds and `StreamError` when the topic is
    missing. The caller then keeps its cursor, so nothing is lost.
    """
    started = time.perf_counter()
    limits = BatchLimits(
        max_messages=settings.kafka_batch_max_messages,
        max_bytes=settings.kafka_batch_max_bytes,
        max_batches=settings.kafka_max_batches_per_tick,
    )
    with open_reader(settings, settings.kafka_raw_topic, "graphmem-sensor") as reader:
        watermarks = reader.watermarks(reader.partitions())
        starts, skipped = _start_offsets(settings, previous, watermarks)
        ends = {partition: high for partition, (_, high) in watermarks.items()}

        # Each partition's share of the tick is fixed from offsets before reading, so two ticks
        # from the same cursor plan the same batches (and run keys) however the broker interleaves
        # partitions. Only a read cut short by the timeout can differ.
        shares = share_offsets({p: ends[p] - starts[p] for p in ends}, limits.max_messages * limits.max_batches)
        stops = {p: starts[p] + shares.get(p, 0) for p in ends}
        tick_bytes = min(limits.max_bytes * limits.max_batches, MAX_TICK_READ_BYTES)
        shared = max(1, sum(shares.values()))
        byte_shares = {p: max(1, tick_bytes * count // shared) for p, count in shares.items()}
        result = reader.read(
            starts,
            stops,
            timeout_seconds=read_seconds,
            partial_on_timeout=True,
            max_bytes_per_partition=byte_shares,
        )
        batches, batched_offsets = plan_batches(settings.kafka_raw_topic, result.records, limits)

        next_offsets = {**starts, **batched_offsets}
        # Offsets after a partition's last record may hold no readable message (transaction markers,
        # compacted records). Once every record read is batched, the cursor moves past them.
        last_read: dict[int, int] = {}
        for record in result.records:
            last_read[record.partition] = max(last_read.get(record.partition, -1), record.offset)
        for partition, end in result.finished.items():
            if next_offsets[partition] > last_read.get(partition, -1):
                next_offsets[partition] = max(next_offsets[partition], end)

        try:
            reader.commit(next_offsets)
        except StreamError as error:
            logger.warning("could not commit the sensor's offsets to consumer group %s, so lag tools show stale figures: %s", settings.kafka_consumer_group, error)

    plan = TickPlan(
        batches=batches,
        next_offsets=next_offsets,
        end_offsets=ends,
        lag=consumer_lag(next_offsets, ends),
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "planned %d batches from %d messages of %s in %.2f s; %d messages wait for later ticks",
        len(batches), len(result.records), settings.kafka_raw_topic, plan.seconds, plan.total_lag,
    )
    return plan
