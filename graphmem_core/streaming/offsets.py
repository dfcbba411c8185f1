"""Kafka batches: offset ranges of one topic, named by a key that Dagster uses as the partition key.

A key reads `kafka:TOPIC:P@FIRST-LAST+P@FIRST-LAST`, with inclusive offsets per partition, for
example `kafka:graphmem.ingest.raw:0@100-599+3@42-57`. The run reads the messages again from the
ranges in its key, so a failed run can be retried and a replay after a cursor reset reads the same
messages. Offsets inside a range may be missing (compacted topics, transaction markers); the reader
stops at the first offset past the range.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from graphmem_core.errors import InvalidInputError
from graphmem_core.streaming.messages import KafkaRecord

KEY_PREFIX = "kafka:"

# Partitions one batch covers at most, which bounds the key's length at about 30 characters each.
MAX_RANGES_PER_BATCH = 64


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets `first` to `last`, both included, of one topic partition."""

    partition: int
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.partition}@{self.first}-{self.last}"


@dataclass(frozen=True)
class KafkaBatch:
    """Offset ranges of one topic that one Dagster run ingests together."""

    topic: str
    ranges: tuple[OffsetRange, ...]

    @property
    def key(self) -> str:
        """The partition key, which is also the batch id in the graph store."""
        return f"{KEY_PREFIX}{self.topic}:{'+'.join(str(r) for r in self.ranges)}"

    @property
    def span(self) -> int:
        """Offsets the ranges cover, an upper bound of the batch's message count."""
        return sum(r.last - r.first + 1 for r in self.ranges)


def is_kafka_batch_key(key: str) -> bool:
    """Return whether a partition key names Kafka offset ranges rather than a folder batch."""
    return key.startswith(KEY_PREFIX)


def parse_batch_key(key: str) -> KafkaBatch:
    """Parse a Kafka batch key, raising `InvalidInputError` that shows the expected form."""
    expected = f"expected {KEY_PREFIX}TOPIC:PARTITION@FIRST-LAST[+PARTITION@FIRST-LAST...], as the Kafka sensor creates"
    if not is_kafka_batch_key(key):
        raise InvalidInputError(f"partition key {key!r} is not a Kafka batch key: {expected}")
    topic, separator, ranges_text = key[len(KEY_PREFIX) :].rpartition(":")
    if not separator or not topic or not ranges_text:
        raise InvalidInputError(f"partition key {key!r} is invalid: {expected}")

    ranges: list[OffsetRange] = []
    for part in ranges_text.split("+"):
        partition_text, at, offsets_text = part.partition("@")
        first_text, dash, last_text = offsets_text.partition("-")
        if not (at and dash and partition_text.isdigit() and first_text.isdigit() and last_text.isdigit()):
            raise InvalidInputError(f"partition key {key!r} has an invalid range {part!r}: {expected}")
        offset_range = OffsetRange(int(partition_text), int(first_text), int(last_text))
        if offset_range.last < offset_range.first:
            raise InvalidInputError(f"partition key {key!r} has the range {part!r}, whose last offset is below its first")
        ranges.append(offset_range)

    partitions = [r.partition for r in ranges]
    if len(set(partitions)) != len(partitions):
        raise InvalidInputError(f"partition key {key!r} names a partition twice: {expected}")
    return KafkaBatch(topic=topic, ranges=tuple(sorted(ranges)))


@dataclass(frozen=True)
class BatchLimits:
    """Bounds of one batch and of the batches one sensor tick creates."""

    max_messages: int
    max_bytes: int
    max_batches: int


def plan_batches(topic: str, records: Iterable[KafkaRecord], limits: BatchLimits) -> tuple[list[KafkaBatch], dict[int, int]]:
    """Group records, in partition then offset order, into batches within the limits.

    Returns the batches and, for every partition with records in a batch, the next offset to read.
    Records past the last batch are left for the next tick. A record larger than `max_bytes` gets a
    batch of its own, so it is never skipped.
    """
    batches: list[KafkaBatch] = []
    next_offsets: dict[int, int] = {}
    current: dict[int, list[int]] = {}
    messages = 0
    size = 0

    def close_batch() -> None:
        nonlocal messages, size
        ranges = tuple(OffsetRange(p, offsets[0], offsets[1]) for p, offsets in sorted(current.items()))
        batches.append(KafkaBatch(topic=topic, ranges=ranges))
        current.clear()
        messages = 0
        size = 0

    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        opens_partition = record.partition not in current
        full = messages + 1 > limits.max_messages or size + record.size > limits.max_bytes
        too_many_ranges = opens_partition and len(current) >= MAX_RANGES_PER_BATCH
        if messages and (full or too_many_ranges):
            close_batch()
            if len(batches) == limits.max_batches:
                break

        if record.partition in current:
            current[record.partition][1] = record.offset
        else:
            current[record.partition] = [record.offset, record.offset]
        messages += 1
        size += record.size
        next_offsets[record.partition] = record.offset + 1

    if messages:
        close_batch()
    return batches, next_offsets


def share_offsets(available: Mapping[int, int], budget: int) -> dict[int, int]:
    """Split a budget of offsets among partitions in equal shares, and give the unused part of short partitions to the rest.

    `available` maps each partition to its count of offsets after the cursor. The result depends only
    on the arguments, so two ticks from the same cursor over the same log plan the same batches.
    Partitions with no offsets available are left out, and a remainder goes to the lowest partition ids.
    """
    shares: dict[int, int] = {}
    waiting = sorted(p for p, count in available.items() if count > 0)
    left = max(0, budget)
    while waiting and left > 0:
        share, remainder = divmod(left, len(waiting))
        still_waiting: list[int] = []
        for index, partition in enumerate(waiting):
            unfilled = available[partition] - shares.get(partition, 0)
            granted = min(unfilled, share + (1 if index < remainder else 0))
            if granted:
                shares[partition] = shares.get(partition, 0) + granted
                left -= granted
            if granted < unfilled:
                still_waiting.append(partition)
        waiting = still_waiting
    return shares


def next_offsets_after(batches: Iterable[KafkaBatch]) -> dict[int, int]:
    """Return, per partition, the offset after the last one the batches cover."""
    result: dict[int, int] = {}
    for batch in batches:
        for offset_range in batch.ranges:
            result[offset_range.partition] = max(result.get(offset_range.partition, 0), offset_range.last + 1)
    return result


def consumer_lag(next_offsets: Mapping[int, int], end_offsets: Mapping[int, int]) -> dict[int, int]:
    """Return messages per partition between the next offset to batch and the partition's end offset."""
    return {partition: max(0, end - next_offsets.get(partition, end)) for partition, end in sorted(end_offsets.items())}
