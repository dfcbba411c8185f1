"""Kafka batch keys and the grouping of new messages into batches."""

import pytest

from graphmem_core.errors import InvalidInputError
from graphmem_core.streaming.messages import KafkaRecord
from graphmem_core.streaming.offsets import (
    MAX_RANGES_PER_BATCH,
    BatchLimits,
    KafkaBatch,
    OffsetRange,
    consumer_lag,
    is_kafka_batch_key,
    next_offsets_after,
    parse_batch_key,
    plan_batches,
    share_offsets,
)


def records(partition: int, first: int, count: int, size: int = 10) -> list[KafkaRecord]:
    return [KafkaRecord("raw.topic", partition, offset, None, b"x" * size) for offset in range(first, first + count)]


def test_key_round_trip():
    batch = KafkaBatch("graphmem.ingest.raw", (OffsetRange(0, 100, 599), OffsetRange(3, 42, 57)))

    assert batch.key == "kafka:graphmem.ingest.raw:0@100-599+3@42-57"
    assert parse_batch_key(batch.key) == batch
    assert batch.span == 516
    assert is_kafka_batch_key(batch.key)
    assert not is_kafka_batch_key("batch-0f3a9c2b7d1e4a56")


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("batch-0f3a9c2b7d1e4a56", "not a Kafka batch key"),
        ("kafka:raw", "invalid"),
        ("kafka:raw:0@5", "invalid range"),
        ("kafka:raw:x@1-2", "invalid range"),
        ("kafka:raw:0@9-3", "below its first"),
        ("kafka:raw:0@1-2+0@5-6", "names a partition twice"),
    ],
)
def test_invalid_keys_rejected(key, words):
    with pytest.raises(InvalidInputError, match=words):
        parse_batch_key(key)


def test_plan_by_message_count():
    limits = BatchLimits(max_messages=4, max_bytes=10_000, max_batches=10)

    batches, next_offsets = plan_batches("raw.topic", records(0, 0, 6) + records(1, 10, 3), limits)

    assert [b.key for b in batches] == ["kafka:raw.topic:0@0-3", "kafka:raw.topic:0@4-5+1@10-11", "kafka:raw.topic:1@12-12"]
    assert next_offsets == {0: 6, 1: 13}


def test_plan_by_bytes_and_oversized_message():
    limits = BatchLimits(max_messages=100, max_bytes=25, max_batches=10)
    big = [KafkaRecord("raw.topic", 0, 2, None, b"y" * 100)]

    batches, _ = plan_batches("raw.topic", records(0, 0, 2) + big + records(0, 3, 1), limits)

    assert [b.key for b in batches] == ["kafka:raw.topic:0@0-1", "kafka:raw.topic:0@2-2", "kafka:raw.topic:0@3-3"]


def test_plan_stops_at_max_batches():
    limits = BatchLimits(max_messages=2, max_bytes=10_000, max_batches=2)

    batches, next_offsets = plan_batches("raw.topic", records(0, 0, 7), limits)

    assert len(batches) == 2
    assert next_offsets == {0: 4}
    assert next_offsets_after(batches) == {0: 4}


def test_plan_bounds_ranges_per_batch():
    many = [r for partition in range(MAX_RANGES_PER_BATCH + 3) for r in records(partition, 0, 1)]

    batches, _ = plan_batches("raw.topic", many, BatchLimits(max_messages=1000, max_bytes=10**9, max_batches=10))

    assert [len(b.ranges) for b in batches] == [MAX_RANGES_PER_BATCH, 3]


def test_plan_sorts_interleaved_records():
    mixed = records(1, 0, 2) + records(0, 5, 2)

    batches, _ = plan_batches("raw.topic", reversed(mixed), BatchLimits(max_messages=10, max_bytes=10**6, max_batches=1))

    assert batches[0].key == "kafka:raw.topic:0@5-6+1@0-1"


def test_consumer_lag():
    assert consumer_lag({0: 5, 1: 10}, {0: 8, 1: 10, 2: 4}) == {0: 3, 1: 0, 2: 0}


@pytest.mark.parametrize(
    ("available", "budget", "expected"),
    [
        ({0: 4, 1: 6}, 6, {0: 3, 1: 3}),
        ({0: 1, 1: 9}, 6, {0: 1, 1: 5}),
        ({0: 10, 1: 10, 2: 10}, 7, {0: 3, 1: 2, 2: 2}),
        ({0: 2, 1: 2, 2: 100}, 10, {0: 2, 1: 2, 2: 6}),
        ({0: 0, 1: 5}, 100, {1: 5}),
        ({0: 3}, 0, {}),
        ({}, 5, {}),
    ],
)
def test_share_offsets_equal_shares(available, budget, expected):
    assert share_offsets(available, budget) == expected
    assert share_offsets(dict(reversed(list(available.items()))), budget) == expected
