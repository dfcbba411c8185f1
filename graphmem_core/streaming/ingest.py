"""The first stage for a Kafka batch: read its offset ranges again, store documents, send dead letters.

Idempotent: document ids are content hashes and batch membership is keyed by the batch key, so a
retried or replayed batch stores nothing new. Each dead letter is recorded in the store after the
broker acknowledged it, so a retry sends only those not recorded yet.
"""

import logging
import time
from dataclasses import dataclass, field

from graphmem_core.models import RejectedInput
from graphmem_core.settings import Settings
from graphmem_core.stores.base import GraphStore
from graphmem_core.streaming.kafka import open_reader, send_dead_letters
from graphmem_core.streaming.messages import DeadLetter, parse_records
from graphmem_core.streaming.offsets import KafkaBatch

logger = logging.getLogger(__name__)

# Namespace in which the store records the dead letters already sent, by batch key. A rejected
# message may name no valid tenant, so the record cannot live in the message's own namespace.
DEAD_LETTER_TENANT = "graphmem-system"
DEAD_LETTER_MEMORY = "kafka-dead-letters"


@dataclass
class KafkaIngestReport:
    """Counts of one Kafka batch: messages read, documents stored, and messages sent to the dead-letter topic."""

    messages: int
    documents: int
    new_documents: int
    duplicates: int
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_letters_sent: int = 0
    namespaces: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def ingest_kafka_batch(store: GraphStore, settings: Settings, batch: KafkaBatch, max_text_bytes: int) -> KafkaIngestReport:
    """Store the accepted documents of a batch under its key, then send the rejected messages to the dead-letter topic.

    `max_text_bytes` bounds the UTF-8 size of one document's text, as GRAPHMEM_MAX_FILE_BYTES bounds a file.

    Documents are stored first: if sending a dead letter fails, the run fails and its retry stores
    nothing twice. Dead letters already recorded for this batch are not sent again. One that the
    broker acknowledged just before the run failed, and before it was recorded, is sent twice.
    """
    started = time.perf_counter()
    logger.info("reading Kafka batch %s (%d offsets)", batch.key, batch.span)
    with open_reader(settings, batch.topic, "graphmem-batch-reader") as reader:
        records = reader.read_batch(batch)

    parsed = parse_records(records, batch.key, max_text_bytes)
    new_documents = 0
    for (tenant, memory), documents in sorted(parsed.documents.items()):
        new_documents += store.upsert_documents(tenant, memory, batch.key, documents)

    to_send: list[DeadLetter] = []
    if parsed.dead_letters:
        already_sent = {rejection.source for rejection in store.get_rejections(DEAD_LETTER_TENANT, DEAD_LETTER_MEMORY, batch.key)}
        to_send = [letter for letter in parsed.dead_letters if letter.record.coordinates not in already_sent]
    if len(to_send) < len(parsed.dead_letters):
        logger.info("batch %s: %d dead letters were sent by an earlier attempt, so only %d are sent now", batch.key, len(parsed.dead_letters) - len(to_send), len(to_send))
    if to_send:
        send_dead_letters(settings, to_send)
        sent = [RejectedInput(source=letter.record.coordinates, reason=f"{letter.kind}: {letter.reason}") for letter in to_send]
        store.record_rejections(DEAD_LETTER_TENANT, DEAD_LETTER_MEMORY, batch.key, sent)

    report = KafkaIngestReport(
        messages=len(records),
        documents=parsed.document_count,
        new_documents=new_documents,
        duplicates=parsed.duplicates,
        dead_letters=parsed.dead_letters,
        dead_letters_sent=len(to_send),
        namespaces=sorted(parsed.documents),
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "ingested Kafka batch %s: %d messages, %d documents (%d new) in %d namespaces, %d duplicates, %d dead letters (%d sent now)",
        batch.key,
        report.messages,
        report.documents,
        report.new_documents,
        len(report.namespaces),
        report.duplicates,
        len(report.dead_letters),
        report.dead_letters_sent,
    )
    return report
