"""The pipeline stages as plain functions over a `GraphStore`.

Each stage reads its input from the store and writes its output back with idempotent upserts, so
running a stage twice for the same batch leaves the store as it was. Dagster assets call these
functions and only add wiring and metadata.
"""

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from graphmem_core.batches import BatchManifest, file_sha256
from graphmem_core.chunking import Chunker
from graphmem_core.communities import detect_communities
from graphmem_core.documents import read_documents
from graphmem_core.embeddings import Embedder, model_key
from graphmem_core.extraction.base import Extractor
from graphmem_core.ids import text_hash
from graphmem_core.errors import ConcurrentUpdateError
from graphmem_core.models import Community, RejectedInput, ResolvedGraph
from graphmem_core.resolution import resolve_entities
from graphmem_core.stores.base import GraphStore

logger = logging.getLogger(__name__)

# Graph-wide stages recompute when a concurrent run changed their input, and each retry reads the newer input.
CONCURRENT_UPDATE_ATTEMPTS = 5

_Result = TypeVar("_Result")

# Chunks per embedding and extraction step, which bounds the memory a step uses at a time and sets
# how often progress is logged (about every 25 s when embedding on two CPU cores).
STEP_CHUNKS = 512


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    seconds: float = Field(description="Wall-clock duration of the stage.")


class IngestReport(_Report):
    """Counts of the files `ingest_batch` read, stored and rejected."""

    files: int
    documents: int
    new_documents: int
    duplicates: int
    rejected: list[RejectedInput]


class EmbedReport(_Report):
    """Counts of the chunks `embed_batch` made and encoded."""

    documents: int
    chunks: int
    new_chunks: int
    encoded: int
    cached: int
    tokens: int
    device: str


class ExtractReport(_Report):
    """Counts of the chunks, mentions and relations `extract_batch` processed."""

    chunks: int
    extracted: int
    skipped: int
    mentions: int
    relations: int


class ResolveReport(_Report):
    """The size of the resolved graph and whether it changed."""

    mentions: int
    entities: int
    relations: int
    changed: bool


class CommunityReport(_Report):
    """The communities detected and whether they changed."""

    levels: int
    communities: int
    changed: bool
    largest: list[Community] = Field(description="The largest level-0 (finest) communities, largest first.")


def ingest_batch(store: GraphStore, manifest: BatchManifest, max_file_bytes: int) -> IngestReport:
    """Read the files of a batch and store its documents and rejections.

    Files missing or changed since the batch was created are rejected instead of read, because the
    batch id promises the contents it was created from.
    """
    started = time.perf_counter()
    logger.info("ingesting %s: %d files", manifest.batch_id, len(manifest.files))

    readable: list[Path] = []
    rejected: list[RejectedInput] = []
    for file in manifest.files:
        path = Path(file.path)
        if not path.is_file():
            rejected.append(RejectedInput(source=file.path, reason="file not found: it was moved or deleted after the batch was created; restore it or ingest again"))
        elif file_sha256(path) != file.sha256:
            rejected.append(RejectedInput(source=file.path, reason="file changed after the batch was created: ingest it again as a new batch"))
        else:
            readable.append(path)

    result = read_documents(readable, manifest.tenant, manifest.memory, max_file_bytes)
    rejected.extend(result.rejected)

    new_documents = store.upsert_documents(manifest.tenant, manifest.memory, manifest.batch_id, result.documents)
    store.record_rejections(manifest.tenant, manifest.memory, manifest.batch_id, rejected)
    for item in rejected:
        logger.warning("rejected %s in %s: %s", item.source, manifest.batch_id, item.reason)

    report = IngestReport(
        files=len(manifest.files),
        documents=len(result.documents),
        new_documents=new_documents,
        duplicates=result.duplicates,
        rejected=rejected,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "ingested %s: %d documents (%d new), %d rejected", manifest.batch_id, report.documents, new_documents, len(rejected)
    )
    return report


def embed_batch(store: GraphStore, embedder: Embedder, tenant: str, memory: str, batch_id: str, overlap_tokens: int) -> EmbedReport:
    """Chunk the batch's documents and embed every chunk text that has no cached vector for the model."""
    started = time.perf_counter()
    documents = store.get_batch_documents(tenant, memory, batch_id)
    logger.info("embedding %s: %d documents with %s", batch_id, len(documents), embedder.model_name)

    chunker = Chunker(embedder.tokenizer, max_tokens=embedder.max_tokens, overlap_tokens=overlap_tokens)
    chunks = chunker.chunk_documents(documents)
    new_chunks = store.upsert_chunks(tenant, memory, chunks)

    model = model_key(embedder.model_name)
    encoded = 0
    cached = 0
    for offset in range(0, len(chunks), STEP_CHUNKS):
        step = chunks[offset : offset + STEP_CHUNKS]
        texts_by_hash = {chunk.text_hash: chunk.text for chunk in step}
        known = store.get_embeddings(tenant, model, list(texts_by_hash))
        missing = [h for h in texts_by_hash if h not in known]
        cached += len(texts_by_hash) - len(missing)
        if missing:
            vectors = embedder.encode([texts_by_hash[h] for h in missing])
            store.upsert_embeddings(tenant, model, dict(zip(missing, vectors, strict=True)))
            encoded += len(missing)
        logger.info("embedded %s: %d of %d chunks done", batch_id, min(offset + STEP_CHUNKS, len(chunks)), len(chunks))

    # Building the search index here keeps the first query after ingestion from paying for it.
    store.prepare_search(tenant, memory, model)

    report = EmbedReport(
        documents=len(documents),
        chunks=len(chunks),
        new_chunks=new_chunks,
        encoded=encoded,
        cached=cached,
        tokens=sum(chunk.token_count for chunk in chunks),
        device=embedder.device,
        seconds=time.perf_counter() - started,
    )
    logger.info("embedded %s: %d chunks, %d encoded, %d from cache", batch_id, len(chunks), encoded, cached)
    return report


def extract_batch(store: GraphStore, extractor: Extractor, tenant: str, memory: str, batch_id: str) -> ExtractReport:
    """Extract mentions and relations from the batch's chunks that this extractor version has not seen."""
    started = time.perf_counter()
    key = extractor.cache_key
    document_ids = [d.id for d in store.get_batch_documents(tenant, memory, batch_id)]
    chunks = store.get_chunks(tenant, memory, document_ids=document_ids)
    done = store.get_extracted_chunk_ids(tenant, memory, key, [c.id for c in chunks])
    pending = [chunk for chunk in chunks if chunk.id not in done]
    logger.info("extracting %s with %s: %d chunks, %d already extracted", batch_id, key, len(chunks), len(done))

    mentions = 0
    relations = 0
    for offset in range(0, len(pending), STEP_CHUNKS):
        results = extractor.extract(pending[offset : offset + STEP_CHUNKS])
        store.upsert_extractions(tenant, memory, key, results)
        mentions += sum(len(r.mentions) for r in results)
        relations += sum(len(r.relations) for r in results)

    report = ExtractReport(
        chunks=len(chunks),
        extracted=len(pending),
        skipped=len(done),
        mentions=mentions,
        relations=relations,
        seconds=time.perf_counter() - started,
    )
    logger.info("extracted %s: %d chunks, %d mentions, %d relations", batch_id, len(pending), mentions, relations)
    return report


def cached_name_encoder(store: GraphStore, embedder: Embedder, tenant: str) -> Callable[[list[str]], np.ndarray]:
    """Return an `embed(names)` function that reuses vectors stored under each name's text hash."""
    model = model_key(embedder.model_name)

    def embed(names: list[str]) -> np.ndarray:
        hashes = [text_hash(name) for name in names]
        known = store.get_embeddings(tenant, model, sorted(set(hashes)))
        missing = sorted({h: name for h, name in zip(hashes, names, strict=True) if h not in known}.items())
        if missing:
            vectors = embedder.encode([name for _, name in missing])
            fresh = dict(zip([h for h, _ in missing], vectors, strict=True))
            store.upsert_embeddings(tenant, model, fresh)
            known.update(fresh)
        if not names:
            return np.zeros((0, embedder.dimension), dtype=np.float32)
        return np.vstack([known[h] for h in hashes])

    return embed


def resolve_graph(
    store: GraphStore,
    extractor: Extractor,
    tenant: str,
    memory: str,
    embed: Callable[[list[str]], np.ndarray] | None,
    threshold: float,
) -> ResolveReport:
    """Resolve every mention of the namespace into entities and relations and store the graph."""
    started = time.perf_counter()
    source = f"extractions:{extractor.cache_key}"

    def attempt() -> tuple[int, ResolvedGraph, bool]:
        version = store.content_version(tenant, memory, source)
        results = list(store.iter_extractions(tenant, memory, extractor.cache_key))
        mentions = sum(len(r.mentions) for r in results)
        graph = resolve_entities(tenant, memory, results, embed=embed, threshold=threshold)
        return mentions, graph, store.replace_graph(tenant, memory, graph, based_on=(source, version))

    mentions, graph, changed = _retry_on_concurrent_update(f"resolving {tenant}/{memory}", attempt)

    report = ResolveReport(
        mentions=mentions,
        entities=len(graph.entities),
        relations=len(graph.relations),
        changed=changed,
        seconds=time.perf_counter() - started,
    )
    if not changed:
        logger.info("resolved graph of %s/%s is unchanged, nothing stored", tenant, memory)
    return report


def build_communities(store: GraphStore, tenant: str, memory: str, seed: int, largest: int = 10) -> CommunityReport:
    """Detect Leiden communities over the whole resolved graph and store them with their summaries."""
    started = time.perf_counter()

    def attempt() -> tuple[list[Community], bool]:
        version = store.content_version(tenant, memory, "graph")
        entities = store.get_entities(tenant, memory)
        relations = store.get_relations(tenant, memory)
        evidence_chunk_ids = sorted({p.chunk_id for r in relations for p in r.provenance})
        chunk_texts = {c.id: c.text for c in store.get_chunks(tenant, memory, chunk_ids=evidence_chunk_ids)}
        communities = detect_communities(tenant, memory, entities, relations, chunk_texts, seed=seed)
        return communities, store.replace_communities(tenant, memory, communities, based_on=("graph", version))

    communities, changed = _retry_on_concurrent_update(f"detecting communities of {tenant}/{memory}", attempt)

    levels = sorted({c.level for c in communities})
    finest = [c for c in communities if c.level == 0]
    report = CommunityReport(
        levels=len(levels),
        communities=len(communities),
        changed=changed,
        largest=sorted(finest, key=lambda c: (-len(c.member_ids), c.id))[:largest],
        seconds=time.perf_counter() - started,
    )
    if not changed:
        logger.info("communities of %s/%s are unchanged, nothing stored", tenant, memory)
    return report


def _retry_on_concurrent_update(action: str, attempt: Callable[[], _Result]) -> _Result:
    """Run `attempt` again while another run changes its input between its read and its write."""
    for number in range(1, CONCURRENT_UPDATE_ATTEMPTS):
        try:
            return attempt()
        except ConcurrentUpdateError as error:
            logger.warning("%s: %s; attempt %d of %d", action, error, number + 1, CONCURRENT_UPDATE_ATTEMPTS)
    return attempt()


def unit_norm_violations(vectors: Sequence[np.ndarray], dimension: int, tolerance: float = 1e-3) -> tuple[int, int]:
    """Return how many vectors have the wrong dimension and how many are not unit length."""
    wrong_dimension = sum(1 for v in vectors if v.shape != (dimension,))
    not_unit = sum(1 for v in vectors if v.shape == (dimension,) and abs(float(np.linalg.norm(v)) - 1.0) > tolerance)
    return wrong_dimension, not_unit
