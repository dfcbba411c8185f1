"""The first stage for a Kafka batch: read its offset ranges again, store documents, send dead letters.

Idempotent: document ids are content hashes and batch membership is keyed by the batch key, so a
retried or replayed batch stores nothing new. Dead letters are sent again on a retry (see
`send_dead_letters`).
"""

import logging
import time
from dataclasses import dataclass, field

from graphmem_core.settings import Settings
from graphmem_core.stores.base import GraphStore
from graphmem_core.streaming.kafka import open_reader, send_dead_letters
from graphmem_core.streaming.messages import DeadLetter, parse_records
from graphmem_core.streaming.offsets import KafkaBatch

logger = logging.getLogger(__name__)


@dataclass
class KafkaIngestReport:
    """Counts of one Kafka batch: messages read, documents stored, and messages sent to the dead-letter topic."""

    messages: int
    documents: int
    new_documents: int
    duplicates: int
    dead_letters: list[DeadLetter] = field(default_factory=list)
    namespaces: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def ingest_kafka_batch(store: GraphStore, settings: Settings, batch: KafkaBatch, max_text_bytes: int) -> KafkaIngestReport:
    """Store the accepted documents of a batch under its key, then send the rejected messages to the dead-letter topic.

    `max_text_bytes` bounds the UTF-8 size of one document's text, as GRAPHMEM_MAX_FILE_BYTES bounds a file.

    Documents are stored first: if sending a dead letter fails, the run fails and its retry stores
    nothing twice.
    """
    started = time.perf_counter()
    logger.info("reading Kafka batch %s (%d offsets)", batch.key, batch.span)
    with open_reader(settings, batch.topic, "graphmem-batch-reader") as reader:
        records = reader.read_batch(batch)

    parsed = parse_records(records, batch.key, max_text_bytes)
    new_documents = 0
    for (tenant, memory), documents in sorted(parsed.documents.items()):
        new_documents += store.upsert_documents(tenant, memory, batch.key, documents)
    send_dead_letters(settings, parsed.dead_letters)

    report = KafkaIngestReport(
        messages=len(records),
        documents=parsed.document_count,
        new_documents=new_documents,
        duplicates=parsed.duplicates,
        dead_letters=parsed.dead_letters,
        namespaces=sorted(parsed.documents),
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "ingested Kafka batch %s: %d messages, %d documents (%d new) in %d namespaces, %d duplicates, %d dead letters",
        batch.key,
        report.messages,
        report.documents,
        report.new_documents,
        len(report.namespaces),
        report.duplicates,
        len(report.dead_letters),
    )
    return report
