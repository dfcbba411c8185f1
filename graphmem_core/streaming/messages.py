"""The versioned JSON document message of the raw topic, and the dead letters of rejected messages.

A message is accepted only when it is UTF-8 JSON that validates against `IngestMessage` with a known
`schema_version`, names a valid namespace, and carries a non-empty text within the size limit.
Everything else becomes a `DeadLetter`, which keeps the original bytes and the reason.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from graphmem_core import ids
from graphmem_core.documents import SOURCE_METADATA_KEY, normalize_text
from graphmem_core.errors import ConfigurationError
from graphmem_core.models import Document
from graphmem_core.settings import validate_namespace

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

# Reasons a message is rejected, also sent in the dead letter's `graphmem.error.kind` header.
NOT_JSON = "not_json"
WRONG_SCHEMA = "wrong_schema"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
EMPTY_TEXT = "empty_text"
OVERSIZED_TEXT = "oversized_text"

# Header names of a dead letter. The value and key stay the original bytes, so a fixed message can be
# produced again from the dead letter as it is.
HEADER_PREFIX = "graphmem.error."
_MAX_VALIDATION_ERRORS_IN_REASON = 5


class IngestMessage(BaseModel):
    """One document on the raw topic, schema version 1.

    `id` is the producer's own id of the document, kept as `external_id`. The stored document's id
    is still the content hash of tenant, memory and text, so the same text sent twice is one document.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    tenant: str
    memory: str
    text: str
    id: str | None = None
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = {}
    produced_at: datetime | None = None


@dataclass(frozen=True)
class KafkaRecord:
    """One message as read from the broker, without the client library's types."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes of key and value, which the batch byte limit counts."""
        return len(self.key or b"") + len(self.value or b"")

    @property
    def coordinates(self) -> str:
        """Topic, partition and offset, which name the message in logs and sources."""
        return f"{self.topic}/{self.partition}/{self.offset}"


class MessageRejected(Exception):
    """A message cannot be accepted; `kind` is one of the reason constants of this module."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class DeadLetter:
    """A rejected message with its original bytes and where it came from."""

    record: KafkaRecord
    kind: str
    reason: str
    batch_key: str

    def headers(self) -> list[tuple[str, bytes]]:
        """Return the original headers followed by the error headers of the dead-letter message."""
        error_headers = {
            "kind": self.kind,
            "reason": self.reason,
            "topic": self.record.topic,
            "partition": str(self.record.partition),
            "offset": str(self.record.offset),
            "batch": self.batch_key,
        }
        if self.record.timestamp_ms is not None:
            error_headers["timestamp_ms"] = str(self.record.timestamp_ms)
        return [*self.record.headers, *((HEADER_PREFIX + name, value.encode("utf-8")) for name, value in error_headers.items())]


@dataclass
class ParsedBatch:
    """Documents of a batch grouped by namespace, and the messages rejected."""

    documents: dict[tuple[str, str], list[Document]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0

    @property
    def document_count(self) -> int:
        return sum(len(documents) for documents in self.documents.values())


def message_key(tenant: str, memory: str, document_id: str) -> bytes:
    """Return the Kafka key of a document message: tenant, memory and document id joined by ':'."""
    return f"{tenant}:{memory}:{document_id}".encode("utf-8")


def encode_message(message: IngestMessage) -> bytes:
    """Serialise a message as compact UTF-8 JSON, leaving out unset optional fields."""
    return message.model_dump_json(exclude_none=True).encode("utf-8")


def parse_message(value: bytes | None, max_text_bytes: int) -> IngestMessage:
    """Validate one message value, raising `MessageRejected` with the kind and a reason a producer can act on."""
    if value is None:
        raise MessageRejected(NOT_JSON, "the message has no value (a tombstone): send one JSON document per message")

    try:
        payload = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise MessageRejected(NOT_JSON, f"the value is not UTF-8 (byte {error.start}): encode the JSON document as UTF-8") from None
    except json.JSONDecodeError as error:
        raise MessageRejected(NOT_JSON, f"the value is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(payload, dict):
        raise MessageRejected(WRONG_SCHEMA, f"the value is a JSON {type(payload).__name__}, not an object: send one document object per message")

    version = payload.get("schema_version")
    if version is None:
        raise MessageRejected(WRONG_SCHEMA, f"schema_version is missing: add \"schema_version\": {SCHEMA_VERSION}")
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise MessageRejected(
            UNKNOWN_SCHEMA_VERSION,
            f"schema_version {version!r} is not supported: this graphmem reads versions {list(SUPPORTED_SCHEMA_VERSIONS)}; "
            "upgrade graphmem or produce a supported version",
        )

    try:
        message = IngestMessage.model_validate(payload)
    except ValidationError as error:
        raise MessageRejected(WRONG_SCHEMA, _describe_validation_error(error)) from None

    try:
        validate_namespace(message.tenant, message.memory)
    except ConfigurationError as error:
        raise MessageRejected(WRONG_SCHEMA, str(error)) from None
    if SOURCE_METADATA_KEY in message.metadata:
        raise MessageRejected(WRONG_SCHEMA, f"metadata uses the reserved key {SOURCE_METADATA_KEY!r}: rename that key")

    text = normalize_text(message.text)
    if not text:
        raise MessageRejected(EMPTY_TEXT, "text is empty or only whitespace: send the document's text")
    text_bytes = len(text.encode("utf-8"))
    if text_bytes > max_text_bytes:
        raise MessageRejected(
            OVERSIZED_TEXT,
            f"text is {text_bytes} bytes, over the limit of {max_text_bytes}: split the document or raise GRAPHMEM_MAX_FILE_BYTES",
        )
    return message.model_copy(update={"text": text})


def _describe_validation_error(error: ValidationError) -> str:
    problems = [f"{'.'.join(str(part) for part in item['loc']) or 'value'}: {item['msg']}" for item in error.errors()]
    summary = "; ".join(problems[:_MAX_VALIDATION_ERRORS_IN_REASON])
    if len(problems) > _MAX_VALIDATION_ERRORS_IN_REASON:
        summary += f"; and {len(problems) - _MAX_VALIDATION_ERRORS_IN_REASON} more"
    return f"the document does not match schema version {SCHEMA_VERSION}: {summary}"


def to_document(message: IngestMessage, record: KafkaRecord) -> Document:
    """Build the stored document of an accepted message; its id is the content hash of the namespace and text."""
    source_metadata: dict[str, Any] = {
        "format": "kafka",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "size_bytes": len(record.value or b""),
    }
    if message.id is not None:
        source_metadata["external_id"] = message.id
    if message.produced_at is not None:
        source_metadata["produced_at"] = message.produced_at.isoformat()

    return Document(
        id=ids.document_id(message.tenant, message.memory, message.text),
        tenant=message.tenant,
        memory=message.memory,
        text=message.text,
        title=message.title,
        source=message.source or f"kafka://{record.coordinates}",
        metadata={**message.metadata, SOURCE_METADATA_KEY: source_metadata},
    )


def parse_records(records: list[KafkaRecord], batch_key: str, max_text_bytes: int) -> ParsedBatch:
    """Turn a batch's records into documents per namespace and dead letters, in offset order.

    A text already seen in the same namespace earlier in the batch is counted as a duplicate, so
    the first message's source and metadata are the ones stored.
    """
    parsed = ParsedBatch()
    seen: set[str] = set()
    for record in records:
        try:
            message = parse_message(record.value, max_text_bytes)
        except MessageRejected as rejected:
            logger.warning("rejected message %s of %s: %s", record.coordinates, batch_key, rejected.reason)
            parsed.dead_letters.append(DeadLetter(record=record, kind=rejected.kind, reason=rejected.reason, batch_key=batch_key))
            continue

        document = to_document(message, record)
        if document.id in seen:
            parsed.duplicates += 1
            continue
        seen.add(document.id)
        parsed.documents.setdefault((document.tenant, document.memory), []).append(document)
    return parsed
