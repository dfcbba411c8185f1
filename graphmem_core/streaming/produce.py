"""Produce documents from files to the raw topic, reading the same formats as folder ingestion."""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from graphmem_core.documents import SOURCE_METADATA_KEY, list_input_files, read_documents
from graphmem_core.models import Document, RejectedInput
from graphmem_core.settings import Settings, validate_namespace
from graphmem_core.streaming.kafka import MessageProducer, open_reader
from graphmem_core.streaming.messages import SCHEMA_VERSION, IngestMessage, encode_message, message_key

logger = logging.getLogger(__name__)

# Seconds between two progress reports.
PROGRESS_INTERVAL_SECONDS = 1.0


@dataclass
class ProduceReport:
    """Counts of the documents `produce_paths` sent and skipped, and the inputs it rejected."""

    files: int = 0
    documents: int = 0
    delivered: int = 0
    bytes: int = 0
    duplicates: int = 0
    rejected: list[RejectedInput] = field(default_factory=list)
    seconds: float = 0.0


ProgressCallback = Callable[[ProduceReport], None]


def document_message(document: Document, produced_at: datetime) -> IngestMessage:
    """Build the raw-topic message of a document read from a file; the file's `_source` metadata becomes `id` and `source`."""
    origin = document.metadata.get(SOURCE_METADATA_KEY, {})
    metadata = {name: value for name, value in document.metadata.items() if name != SOURCE_METADATA_KEY}
    external_id = origin.get("external_id")
    return IngestMessage(
        schema_version=SCHEMA_VERSION,
        tenant=document.tenant,
        memory=document.memory,
        text=document.text,
        id=str(external_id) if external_id is not None else None,
        title=document.title,
        source=document.source,
        metadata=metadata,
        produced_at=produced_at,
    )


def produce_paths(
    settings: Settings,
    paths: Sequence[Path],
    tenant: str,
    memory: str,
    progress: ProgressCallback | None = None,
) -> ProduceReport:
    """Send every document under `paths` to the raw topic, one message per document, and wait for the acknowledgements.

    Files are read one at a time, so memory stays bounded by the largest file. A text that occurs
    twice is sent once. Inputs that folder ingestion would reject, and documents whose message
    exceeds GRAPHMEM_KAFKA_MAX_MESSAGE_BYTES, are returned as rejected and not sent. Raises
    `StreamError` when the topic is missing or a delivery fails.
    """
    validate_namespace(tenant, memory)
    started = time.perf_counter()
    with open_reader(settings, settings.kafka_raw_topic, "graphmem-produce-check") as reader:
        reader.partitions()

    files = [file for path in paths for file in list_input_files(path)]
    report = ProduceReport(files=len(files))
    producer = MessageProducer(settings)
    sent_ids: set[str] = set()
    last_progress = time.monotonic()
    logger.info("producing documents of %d files to %s as %s/%s", len(files), settings.kafka_raw_topic, tenant, memory)

    for file in files:
        result = read_documents([file], tenant, memory, settings.max_file_bytes)
        report.rejected.extend(result.rejected)
        report.duplicates += result.duplicates
        produced_at = datetime.now(timezone.utc)
        for document in result.documents:
            if document.id in sent_ids:
                report.duplicates += 1
                continue
            value = encode_message(document_message(document, produced_at))
            if len(value) > settings.kafka_max_message_bytes:
                report.rejected.append(
                    RejectedInput(
                        source=document.source,
                        reason=f"the message is {len(value)} bytes, over GRAPHMEM_KAFKA_MAX_MESSAGE_BYTES={settings.kafka_max_message_bytes}: "
                        "split the document, or raise the topic's max.message.bytes and that setting together",
                    )
                )
                continue

            producer.send(settings.kafka_raw_topic, message_key(tenant, memory, document.id), value)
            sent_ids.add(document.id)
            report.documents += 1
            report.bytes += len(value)
            report.delivered = producer.delivered
            if progress is not None and time.monotonic() - last_progress >= PROGRESS_INTERVAL_SECONDS:
                progress(report)
                last_progress = time.monotonic()

    producer.flush()
    report.delivered = producer.delivered
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress(report)
    logger.info(
        "produced %d documents (%d bytes) to %s in %.1f s: %d rejected, %d duplicates",
        report.delivered, report.bytes, settings.kafka_raw_topic, report.seconds, len(report.rejected), report.duplicates,
    )
    return report
