"""The raw-topic message format: what is accepted, and the reason given for each kind of rejection."""

import json

import pytest

from graphmem_core import ids
from graphmem_core.streaming.messages import (
    EMPTY_TEXT,
    HEADER_PREFIX,
    NOT_JSON,
    OVERSIZED_TEXT,
    UNKNOWN_SCHEMA_VERSION,
    WRONG_SCHEMA,
    IngestMessage,
    KafkaRecord,
    MessageRejected,
    encode_message,
    message_key,
    parse_message,
    parse_records,
    to_document,
)

MAX_TEXT_BYTES = 1000


def valid_payload(**changes) -> dict:
    payload = {"schema_version": 1, "tenant": "acme", "memory": "notes", "text": "  Ada Lovelace wrote the first program.\r\n"}
    payload.update(changes)
    return payload


def record(value: bytes | None, offset: int = 7, partition: int = 2) -> KafkaRecord:
    return KafkaRecord(topic="raw", partition=partition, offset=offset, key=b"acme:notes:x", value=value, timestamp_ms=1_700_000_000_000)


def test_valid_message_normalises_text():
    message = parse_message(json.dumps(valid_payload()).encode(), MAX_TEXT_BYTES)

    assert message.text == "Ada Lovelace wrote the first program."
    assert message.tenant == "acme"


@pytest.mark.parametrize(
    ("value", "kind", "words"),
    [
        (None, NOT_JSON, "tombstone"),
        (b"\xff\xfe not utf-8", NOT_JSON, "not UTF-8"),
        (b"{broken json", NOT_JSON, "not JSON"),
        (b"[1, 2]", WRONG_SCHEMA, "not an object"),
        (json.dumps({"tenant": "acme", "memory": "notes", "text": "x"}).encode(), WRONG_SCHEMA, "schema_version is missing"),
        (json.dumps(valid_payload(schema_version=2)).encode(), UNKNOWN_SCHEMA_VERSION, "schema_version 2 is not supported"),
        (json.dumps(valid_payload(schema_version="1")).encode(), UNKNOWN_SCHEMA_VERSION, "not supported"),
        (json.dumps(valid_payload(schema_version=True)).encode(), UNKNOWN_SCHEMA_VERSION, "not supported"),
        (json.dumps(valid_payload(text=42)).encode(), WRONG_SCHEMA, "text"),
        (json.dumps(valid_payload(colour="red")).encode(), WRONG_SCHEMA, "colour"),
        (json.dumps({"schema_version": 1, "text": "no namespace"}).encode(), WRONG_SCHEMA, "tenant"),
        (json.dumps(valid_payload(tenant=" padded")).encode(), WRONG_SCHEMA, "invalid tenant"),
        (json.dumps(valid_payload(metadata={"_source": 1})).encode(), WRONG_SCHEMA, "reserved key"),
        (json.dumps(valid_payload(text=" \n\t ")).encode(), EMPTY_TEXT, "empty"),
        (json.dumps(valid_payload(text="x" * (MAX_TEXT_BYTES + 1))).encode(), OVERSIZED_TEXT, "GRAPHMEM_MAX_FILE_BYTES"),
    ],
)
def test_rejection_kind_and_reason(value, kind, words):
    with pytest.raises(MessageRejected) as caught:
        parse_message(value, MAX_TEXT_BYTES)

    assert caught.value.kind == kind
    assert words in caught.value.reason


def test_document_id_is_content_hash():
    message = parse_message(json.dumps(valid_payload(id="ext-1", title="Note", metadata={"lang": "en"})).encode(), MAX_TEXT_BYTES)

    document = to_document(message, record(b"ignored"))

    assert document.id == ids.document_id("acme", "notes", "Ada Lovelace wrote the first program.")
    assert document.title == "Note"
    assert document.source == "kafka://raw/2/7"
    assert document.metadata["lang"] == "en"
    assert document.metadata["_source"]["external_id"] == "ext-1"
    assert document.metadata["_source"]["offset"] == 7


def test_encode_round_trip_and_key():
    message = IngestMessage(schema_version=1, tenant="acme", memory="notes", text="Some text.")

    assert parse_message(encode_message(message), MAX_TEXT_BYTES) == message
    assert b"title" not in encode_message(message)
    assert message_key("acme", "notes", "doc_1") == b"acme:notes:doc_1"


def test_parse_records_splits_namespaces_and_rejects():
    records = [
        record(json.dumps(valid_payload()).encode(), offset=1),
        record(b"not json", offset=2),
        record(json.dumps(valid_payload(memory="other")).encode(), offset=3),
        record(json.dumps(valid_payload()).encode(), offset=4),
    ]

    parsed = parse_records(records, "kafka:raw:2@1-4", MAX_TEXT_BYTES)

    assert sorted(parsed.documents) == [("acme", "notes"), ("acme", "other")]
    assert parsed.document_count == 2
    assert parsed.duplicates == 1
    assert [d.record.offset for d in parsed.dead_letters] == [2]


def test_dead_letter_headers_name_origin():
    parsed = parse_records([record(b"not json", offset=9)], "kafka:raw:2@9-9", MAX_TEXT_BYTES)

    headers = dict(parsed.dead_letters[0].headers())

    assert headers[HEADER_PREFIX + "kind"] == NOT_JSON.encode()
    assert headers[HEADER_PREFIX + "topic"] == b"raw"
    assert headers[HEADER_PREFIX + "partition"] == b"2"
    assert headers[HEADER_PREFIX + "offset"] == b"9"
    assert headers[HEADER_PREFIX + "batch"] == b"kafka:raw:2@9-9"
    assert b"not JSON" in headers[HEADER_PREFIX + "reason"]
