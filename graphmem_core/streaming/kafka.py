"""Broker access over confluent-kafka: topic creation, reading offset ranges, producing documents.

Consumers here never subscribe to a consumer group: the Dagster sensor assigns partitions by hand
and keeps the offsets in its cursor. The group named by GRAPHMEM_KAFKA_CONSUMER_GROUP only receives
commits of the sensor's offsets, so that lag exporters and autoscalers can read the backlog.
"""

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from graphmem_core.errors import BrokerUnavailableError, MissingOffsetsError, StreamError
from graphmem_core.settings import Settings
from graphmem_core.streaming.messages import DeadLetter, KafkaRecord
from graphmem_core.streaming.offsets import KafkaBatch

logger = logging.getLogger(__name__)

# Messages per consume() call: large enough to amortise the call, small enough to stop near a limit.
_CONSUME_MESSAGES = 500
_CONSUME_POLL_SECONDS = 0.5

# The dead-letter topic keeps rejected messages for 30 days, long enough to fix and replay them.
_DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000

# Error codes that mean no broker responded, as opposed to a response that rejected the request.
_UNREACHABLE_CODES = frozenset({KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})


# The group coordinator answers these while it starts, for example right after the first use of
# the broker creates its offsets topic. They clear within seconds.
_COORDINATOR_CODES = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE})
_COORDINATOR_RETRIES = 10
_COORDINATOR_RETRY_SECONDS = 0.5


def _with_coordinator_retries(action: str, call):
    """Run a consumer group call, retrying while the group coordinator is not ready."""
    for attempt in range(1, _COORDINATOR_RETRIES + 1):
        try:
            return call()
        except KafkaException as error:
            kafka_error = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
            if kafka_error is None or kafka_error.code() not in _COORDINATOR_CODES or attempt == _COORDINATOR_RETRIES:
                raise
            logger.info("%s: the group coordinator is not ready (%s), retry %d of %d", action, kafka_error.str(), attempt, _COORDINATOR_RETRIES - 1)
            time.sleep(_COORDINATOR_RETRY_SECONDS)


def client_config(settings: Settings, client_id: str) -> dict[str, object]:
    """Return the librdkafka settings every client shares: brokers, security, and logging through Python."""
    config: dict[str, object] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        "security.protocol": settings.kafka_security_protocol,
        "socket.timeout.ms": int(settings.kafka_timeout_seconds * 1000),
        "logger": logging.getLogger("graphmem_core.streaming.librdkafka"),
        # Without this, librdkafka logs every dropped idle connection at warning level.
        "log.connection.close": False,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    return config


def _unavailable(settings: Settings, action: str, error: object) -> BrokerUnavailableError:
    return BrokerUnavailableError(
        f"{action} failed because no Kafka broker at {settings.kafka_bootstrap_servers} responded within "
        f"{settings.kafka_timeout_seconds:g} s ({error}): start the broker or fix GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS"
    )


def _raise_for(settings: Settings, action: str, error: KafkaException) -> None:
    kafka_error = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
    if kafka_error is not None and kafka_error.code() in _UNREACHABLE_CODES:
        raise _unavailable(settings, action, kafka_error.str()) from error
    raise StreamError(f"{action} failed: {error}") from error


def ensure_topics(settings: Settings) -> list[str]:
    """Create the raw and dead-letter topics where they are missing; return the names created.

    Existing topics are left as they are, whatever their partition count.
    """
    admin = AdminClient(client_config(settings, "graphmem-admin"))
    requested = [
        NewTopic(
            settings.kafka_raw_topic,
            num_partitions=settings.kafka_raw_partitions,
            replication_factor=settings.kafka_replication_factor,
            config={"max.message.bytes": str(settings.kafka_max_message_bytes)},
        ),
        NewTopic(
            settings.kafka_dlq_topic,
            num_partitions=settings.kafka_dlq_partitions,
            replication_factor=settings.kafka_replication_factor,
            config={"max.message.bytes": str(settings.kafka_max_message_bytes), "retention.ms": str(_DLQ_RETENTION_MS)},
        ),
    ]
    try:
        existing = admin.list_topics(timeout=settings.kafka_timeout_seconds).topics
    except KafkaException as error:
        _raise_for(settings, "listing topics", error)

    missing = [topic for topic in requested if topic.topic not in existing]
    if not missing:
        return []

    created: list[str] = []
    for name, future in admin.create_topics(missing, request_timeout=settings.kafka_timeout_seconds).items():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            _raise_for(settings, f"creating topic {name}", error)
        logger.info("created Kafka topic %s", name)
        created.append(name)
    return created


def _to_record(message) -> KafkaRecord:
    timestamp_type, timestamp = message.timestamp()
    headers = tuple((name, value or b"") for name, value in (message.headers() or []))
    return KafkaRecord(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp if timestamp_type else None,
        headers=headers,
    )


@dataclass
class ReadResult:
    """Records read, in the order the broker returned them, and where each partition read to its end stopped."""

    records: list[KafkaRecord] = field(default_factory=list)
    finished: dict[int, int] = field(default_factory=dict)
    bytes: int = 0


class TopicReader:
    """A consumer with hand-assigned partitions that reads offset ranges of one topic."""

    def __init__(self, settings: Settings, topic: str, client_id: str = "graphmem-reader") -> None:
        self.settings = settings
        self.topic = topic
        config = client_config(settings, client_id)
        config.update(
            {
                "group.id": settings.kafka_consumer_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                # An offset outside the partition is an error to report, never a silent jump.
                "auto.offset.reset": "error",
                "isolation.level": "read_committed",
            }
        )
        self._consumer = Consumer(config)

    def close(self) -> None:
        """Leave without committing anything and free the client."""
        self._consumer.close()

    def partitions(self) -> list[int]:
        """Return the topic's partition ids, raising `BrokerUnavailableError` or `StreamError` for a missing topic."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=self.settings.kafka_timeout_seconds)
        except KafkaException as error:
            _raise_for(self.settings, f"reading the metadata of topic {self.topic}", error)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            if topic is not None and topic.error.code() in _UNREACHABLE_CODES:
                raise _unavailable(self.settings, f"reading the metadata of topic {self.topic}", topic.error.str())
            raise StreamError(
                f"Kafka topic {self.topic!r} does not exist on {self.settings.kafka_bootstrap_servers}: "
                "create it with `graphmem topics create` or check GRAPHMEM_KAFKA_RAW_TOPIC"
            )
        return sorted(topic.partitions)

    def watermarks(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """Return the first and one-past-last offset of each partition."""
        result: dict[int, tuple[int, int]] = {}
        for partition in partitions:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=self.settings.kafka_timeout_seconds, cached=False
                )
            except KafkaException as error:
                _raise_for(self.settings, f"reading the offsets of {self.topic}/{partition}", error)
            result[partition] = (low, high)
        return result

    def read(
        self,
        starts: Mapping[int, int],
        stops: Mapping[int, int],
        max_records: int | None = None,
        max_bytes: int | None = None,
        timeout_seconds: float = 60.0,
        partial_on_timeout: bool = False,
        max_bytes_per_partition: Mapping[int, int] | None = None,
    ) -> ReadResult:
        """Read each partition from its start offset up to, not including, its stop offset.

        Reading ends early once `max_records` or `max_bytes` is reached, or at the timeout when
        `partial_on_timeout` is set (otherwise the timeout raises `StreamError`). The records of each
        partition are then still a gap-free prefix of its messages from the start offset.

        A partition in `max_bytes_per_partition` stops after the record that reaches its byte
        limit. Unlike `max_bytes`, where that cut falls does not depend on the order in which the
        broker interleaves partitions.
        """
        result = ReadResult()
        pending = {p: stop for p, stop in stops.items() if starts.get(p, stop) < stop}
        if not pending:
            return result
        self._consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in sorted(pending)])
        deadline = time.monotonic() + timeout_seconds
        partition_bytes: dict[int, int] = {}
        try:
            while pending:
                if time.monotonic() > deadline:
                    if partial_on_timeout:
                        logger.info("stopped reading %s after %g s with %d records", self.topic, timeout_seconds, len(result.records))
                        return result
                    raise StreamError(
                        f"reading {self.topic} partitions {sorted(pending)} timed out after {timeout_seconds:g} s: "
                        "check the broker's load and GRAPHMEM_KAFKA_TIMEOUT_SECONDS"
                    )
                for message in self._consumer.consume(_CONSUME_MESSAGES, timeout=_CONSUME_POLL_SECONDS):
                    record = self._take(message, pending, result)
                    if record is not None and max_bytes_per_partition and record.partition in max_bytes_per_partition:
                        partition_bytes[record.partition] = partition_bytes.get(record.partition, 0) + record.size
                        if partition_bytes[record.partition] >= max_bytes_per_partition[record.partition] and record.partition in pending:
                            del pending[record.partition]
                            self._consumer.pause([TopicPartition(self.topic, record.partition)])
                    if (max_records is not None and len(result.records) >= max_records) or (max_bytes is not None and result.bytes >= max_bytes):
                        return result
        finally:
            self._consumer.unassign()
        return result

    def _take(self, message, pending: dict[int, int], result: ReadResult) -> KafkaRecord | None:
        partition = message.partition()
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                # The end-of-partition event carries the offset after the last readable message.
                if partition in pending:
                    del pending[partition]
                    result.finished[partition] = message.offset()
                return
            if error.code() == KafkaError._AUTO_OFFSET_RESET or error.code() == KafkaError.OFFSET_OUT_OF_RANGE:
                raise MissingOffsetsError(
                    f"{self.topic}/{partition}: the requested offsets are no longer on the broker ({error.str()}); "
                    "they were probably deleted by the topic's retention"
                )
            if error.code() in _UNREACHABLE_CODES:
                raise _unavailable(self.settings, f"reading {self.topic}/{partition}", error.str())
            raise StreamError(f"reading {self.topic}/{partition} failed: {error.str()}")

        stop = pending.get(partition)
        if stop is None or message.offset() >= stop:
            if stop is not None:
                del pending[partition]
                result.finished[partition] = stop
            return None
        record = _to_record(message)
        result.records.append(record)
        result.bytes += record.size
        if record.offset + 1 >= stop:
            del pending[partition]
            result.finished[partition] = stop
        return record

    def read_batch(self, batch: KafkaBatch, timeout_seconds: float = 120.0) -> list[KafkaRecord]:
        """Read exactly the messages a batch's ranges name, raising `MissingOffsetsError` when some are gone."""
        if batch.topic != self.topic:
            raise StreamError(f"batch {batch.key} is on topic {batch.topic}, but this reader reads {self.topic}")
        watermarks = self.watermarks(r.partition for r in batch.ranges)
        for offset_range in batch.ranges:
            low, high = watermarks[offset_range.partition]
            if offset_range.first < low or offset_range.last >= high:
                raise MissingOffsetsError(
                    f"batch {batch.key} needs offsets {offset_range.first}-{offset_range.last} of {self.topic}/{offset_range.partition}, "
                    f"but the broker holds {low}-{high - 1}: the messages were deleted by retention or the topic was recreated. "
                    "Produce the documents again; the new batch will store each of them once"
                )
        starts = {r.partition: r.first for r in batch.ranges}
        stops = {r.partition: r.last + 1 for r in batch.ranges}
        result = self.read(starts, stops, timeout_seconds=timeout_seconds)
        return sorted(result.records, key=lambda r: (r.partition, r.offset))

    def committed(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """Return the consumer group's committed next offset of each partition, None where it has none."""
        requested = [TopicPartition(self.topic, p) for p in partitions]
        try:
            found = _with_coordinator_retries(
                "reading committed offsets", lambda: self._consumer.committed(requested, timeout=self.settings.kafka_timeout_seconds)
            )
        except KafkaException as error:
            _raise_for(self.settings, f"reading the committed offsets of group {self.settings.kafka_consumer_group}", error)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def commit(self, next_offsets: Mapping[int, int]) -> None:
        """Commit next offsets to the consumer group, so that lag tools see the sensor's position."""
        if not next_offsets:
            return
        offsets = [TopicPartition(self.topic, p, offset) for p, offset in sorted(next_offsets.items())]
        try:
            _with_coordinator_retries("committing offsets", lambda: self._consumer.commit(offsets=offsets, asynchronous=False))
        except KafkaException as error:
            _raise_for(self.settings, f"committing offsets of {self.topic} to group {self.settings.kafka_consumer_group}", error)


@contextmanager
def open_reader(settings: Settings, topic: str, client_id: str = "graphmem-reader") -> Iterator[TopicReader]:
    """Open a `TopicReader` for the duration of a block."""
    reader = TopicReader(settings, topic, client_id)
    try:
        yield reader
    finally:
        reader.close()


class DeliveryFailed(StreamError):
    """The broker did not acknowledge some messages; the message names the first failures."""


class MessageProducer:
    """An idempotent producer (acks=all, compression) that raises when a delivery fails."""

    def __init__(self, settings: Settings, client_id: str = "graphmem-producer") -> None:
        self.settings = settings
        config = client_config(settings, client_id)
        config.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": settings.kafka_compression,
                "linger.ms": 20,
                "message.max.bytes": settings.kafka_max_message_bytes + _RECORD_OVERHEAD_BYTES,
                # A message not acknowledged in this time fails instead of waiting for the default 5 minutes.
                "delivery.timeout.ms": int(settings.kafka_timeout_seconds * 1000 * _DELIVERY_TIMEOUT_FACTOR),
            }
        )
        self._producer = Producer(config)
        self._failures: list[str] = []
        self.delivered = 0

    def _on_delivery(self, error: KafkaError | None, message) -> None:
        if error is None:
            self.delivered += 1
            return
        failure = f"{message.topic()} key {(message.key() or b'').decode('utf-8', 'replace')}: {error.str()}"
        logger.error("delivery failed: %s", failure)
        self._failures.append(failure)

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one message, waiting while librdkafka's local queue is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as error:
                _raise_for(self.settings, f"producing a message of {len(value or b'')} bytes to {topic}", error)
        self._producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued message is acknowledged, raising `DeliveryFailed` or `BrokerUnavailableError`."""
        timeout = self.settings.kafka_timeout_seconds * _DELIVERY_TIMEOUT_FACTOR + self.settings.kafka_timeout_seconds
        remaining = self._producer.flush(timeout)
        if self._failures:
            failures, self._failures = self._failures, []
            if all("timed out" in failure.lower() for failure in failures):
                raise _unavailable(self.settings, f"producing {len(failures)} messages", failures[0])
            raise DeliveryFailed(f"{len(failures)} messages were not delivered, first: {failures[0]}")
        if remaining:
            raise _unavailable(self.settings, f"flushing {remaining} messages", "flush timed out")


# Room for the record headers and framing that a message adds to its value and key.
_RECORD_OVERHEAD_BYTES = 64 * 1024
_DELIVERY_TIMEOUT_FACTOR = 6


def send_dead_letters(settings: Settings, dead_letters: list[DeadLetter]) -> int:
    """Produce each dead letter to the dead-letter topic with its original key and value; return the count.

    `ingest_kafka_batch` skips the dead letters that an earlier attempt of the batch sent. A run that
    fails between the broker's acknowledgement and that record sends them again, so a consumer of the
    dead-letter topic should treat the `graphmem.error.topic`, `.partition` and `.offset` headers as
    the message's identity.
    """
    if not dead_letters:
        return 0
    producer = MessageProducer(settings, "graphmem-dead-letters")
    for letter in dead_letters:
        producer.send(settings.kafka_dlq_topic, letter.record.key, letter.record.value, letter.headers())
    producer.flush()
    logger.info("sent %d dead letters to %s", len(dead_letters), settings.kafka_dlq_topic)
    return len(dead_letters)
