"""The pipeline stages as plain functions over a `GraphStore`.

Each stage reads its input from the store and writes its output back with idempotent upserts, so
running a stage twice for the same batch leaves the store as it was. Dagster assets call these
functions and only add wiring and metadata.
"""

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

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
from graphmem_core.llm.cache import StoreResponseCache
from graphmem_core.llm.usage import TokenUsage
from graphmem_core.models import Community, ExtractionFailure, ExtractionResult, MergeExclusion, RejectedInput
from graphmem_core.resolution import RESOLVER_VERSION, PriorResolution, Resolution, make_exclusion, resolve
from graphmem_core.stores.base import GraphStore

if TYPE_CHECKING:
    from graphmem_core.llm.summaries import CommunitySummariser

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


class LLMUsageReport(BaseModel):
    """Requests a stage sent to an LLM, the tokens the endpoint reported and their estimated cost."""

    model_config = ConfigDict(frozen=True)

    requests: int = Field(default=0, description="HTTP requests, re-asks and retries included.")
    cached_responses: int = Field(default=0, description="Responses taken from the response cache instead of a request.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost: float = Field(default=0.0, description="At GRAPHMEM_LLM_PRICE_PER_1K_INPUT and _OUTPUT.")

    @classmethod
    def from_usage(cls, usage: TokenUsage, estimated_cost: float) -> "LLMUsageReport":
        """Copy the counts of `usage`."""
        return cls(
            requests=usage.requests,
            cached_responses=usage.cached,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            estimated_cost=estimated_cost,
        )

    @classmethod
    def combine(cls, reports: Iterable["LLMUsageReport"]) -> "LLMUsageReport":
        """Add up the counts and costs of several stages or namespaces."""
        reports = list(reports)
        return cls(
            requests=sum(r.requests for r in reports),
            cached_responses=sum(r.cached_responses for r in reports),
            prompt_tokens=sum(r.prompt_tokens for r in reports),
            completion_tokens=sum(r.completion_tokens for r in reports),
            estimated_cost=sum(r.estimated_cost for r in reports),
        )


class ExtractReport(_Report):
    """Counts of the chunks, mentions and relations `extract_batch` processed, and the chunks that failed."""

    chunks: int
    extracted: int = Field(description="Chunks extracted by this run.")
    skipped: int = Field(description="Chunks that already had a result of this extractor version.")
    failed: int = Field(default=0, description="Chunks that failed in this run; the next run tries them again.")
    mentions: int
    relations: int
    failures: list[ExtractionFailure] = Field(default_factory=list)
    llm: LLMUsageReport = Field(default_factory=LLMUsageReport)


class ResolveReport(_Report):
    """The size of the resolved graph, whether it changed, and how resolution ran."""

    mentions: int
    entities: int
    relations: int
    changed: bool
    mode: str = Field(default="full", description="`full` when every name was compared, `incremental` when only new names were.")
    new_names: int = Field(default=0, description="Names (type and folded form) not in the previous graph.")
    merges: int = Field(default=0, description="Merge records stored with the graph.")
    names: int = Field(default=0, description="Distinct names (type and folded form) resolved.")
    merges_by_rule: dict[str, int] = Field(default_factory=dict, description="Merges this run made, by the rule that matched.")
    exclusions: int = Field(default=0, description="Merge exclusions of the namespace that this run honoured.")
    kept_apart_by_exclusion: int = Field(default=0, description="Merges an exclusion rejected in this run.")


class CommunityReport(_Report):
    """The communities detected and whether they changed."""

    levels: int
    communities: int
    changed: bool
    largest: list[Community] = Field(description="The largest level-0 (finest) communities, largest first.")
    llm_summaries: int = Field(default=0, description="Communities with a summary written by the LLM.")
    llm_summary_failures: int = Field(default=0, description="Communities whose LLM summary failed; they keep the extractive one.")
    llm: LLMUsageReport = Field(default_factory=LLMUsageReport)


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
    """Extract mentions and relations from the batch's chunks that this extractor version has not seen.

    Chunks the extractor fails on are recorded with the reason and stay pending, so the next run
    tries only those again, and the chunks that succeed are stored either way. An extractor that
    calls an LLM keeps its responses in the store's response cache, so a rerun repeats no request.
    """
    started = time.perf_counter()
    key = extractor.cache_key
    document_ids = [d.id for d in store.get_batch_documents(tenant, memory, batch_id)]
    chunks = store.get_chunks(tenant, memory, document_ids=document_ids)
    done = store.get_extracted_chunk_ids(tenant, memory, key, [c.id for c in chunks])
    pending = [chunk for chunk in chunks if chunk.id not in done]
    failed_before = {f.chunk_id for f in store.get_extraction_failures(tenant, memory, key, [c.id for c in pending])}
    logger.info(
        "extracting %s with %s: %d chunks, %d already extracted, %d failed before",
        batch_id,
        key,
        len(chunks),
        len(done),
        len(failed_before),
    )

    cache = StoreResponseCache(store, tenant)
    usage = TokenUsage()
    estimated_cost = 0.0
    failures: list[ExtractionFailure] = []
    extracted = 0
    mentions = 0
    relations = 0
    for offset in range(0, len(pending), STEP_CHUNKS):
        outcome = extractor.extract_outcome(pending[offset : offset + STEP_CHUNKS], cache)
        store.upsert_extractions(tenant, memory, key, outcome.results)
        recovered = [r.chunk_id for r in outcome.results if r.chunk_id in failed_before]
        if recovered:
            store.clear_extraction_failures(tenant, memory, key, recovered)
        if outcome.failures:
            store.record_extraction_failures(tenant, memory, key, outcome.failures)

        failures.extend(outcome.failures)
        usage.add(outcome.usage)
        estimated_cost += outcome.estimated_cost
        extracted += len(outcome.results)
        mentions += sum(len(r.mentions) for r in outcome.results)
        relations += sum(len(r.relations) for r in outcome.results)

    report = ExtractReport(
        chunks=len(chunks),
        extracted=extracted,
        skipped=len(done),
        failed=len(failures),
        mentions=mentions,
        relations=relations,
        failures=failures,
        llm=LLMUsageReport.from_usage(usage, estimated_cost),
        seconds=time.perf_counter() - started,
    )
    logger.info("extracted %s: %d chunks, %d mentions, %d relations", batch_id, extracted, mentions, relations)
    if failures:
        logger.warning("extracting %s: %d chunks failed; materialise the partition again to retry them", batch_id, len(failures))
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
    *,
    full: bool = False,
) -> ResolveReport:
    """Resolve every mention of the namespace into entities and relations and store the graph with its merge records.

    When the stored graph was resolved under the same settings (resolver version, threshold,
    embedding on or off, exclusions), names it already contains keep their entity and only new
    names are compared. Otherwise, or with `full`, every name is compared again. Either way an
    entity keeps its id while its canonical name is still one of its names.
    """
    started = time.perf_counter()
    source = f"extractions:{extractor.cache_key}"

    def attempt() -> tuple[Resolution, bool, int]:
        version = store.content_version(tenant, memory, source)
        graph_version = store.content_version(tenant, memory, "graph")
        settings = _resolution_settings(source, threshold, embed is not None, store.content_version(tenant, memory, "merge_exclusions"))
        exclusions = store.get_merge_exclusions(tenant, memory)
        results = list(store.iter_extractions(tenant, memory, extractor.cache_key))
        prior = _load_prior_resolution(store, tenant, memory, results)
        incremental = not full and prior is not None and store.get_merge_settings(tenant, memory) == _stamp(settings, graph_version)

        chunks = store.get_chunks(tenant, memory, chunk_ids=sorted({result.chunk_id for result in results}))
        document_of_chunk = {chunk.id: chunk.document_id for chunk in chunks}
        resolution = resolve(
            tenant,
            memory,
            results,
            embed,
            threshold,
            exclusions=exclusions,
            prior=prior,
            incremental=incremental,
            document_of_chunk=document_of_chunk,
        )
        changed = store.replace_graph(tenant, memory, resolution.graph, based_on=(source, version))

        # Writing a changed graph bumps its version by one, unless another run wrote in between,
        # which the check of the records write then detects.
        written = graph_version + 1 if changed else graph_version
        store.replace_merge_records(tenant, memory, resolution.merges, _stamp(settings, written), based_on=("graph", written))
        return resolution, changed, len(exclusions)

    resolution, changed, exclusion_count = _retry_on_concurrent_update(f"resolving {tenant}/{memory}", attempt)

    graph = resolution.graph
    report = ResolveReport(
        mentions=resolution.stats.mentions,
        entities=len(graph.entities),
        relations=len(graph.relations),
        changed=changed,
        mode=resolution.stats.mode,
        new_names=resolution.stats.new_names,
        merges=len(resolution.merges),
        names=resolution.stats.names,
        merges_by_rule=resolution.stats.merges_by_rule,
        exclusions=exclusion_count,
        kept_apart_by_exclusion=resolution.stats.kept_apart.get("excluded", 0),
        seconds=time.perf_counter() - started,
    )
    if not changed:
        logger.info("resolved graph of %s/%s is unchanged, nothing stored", tenant, memory)
    return report


def _resolution_settings(source: str, threshold: float, embedding: bool, exclusions_version: int) -> dict[str, object]:
    """Return what a stored graph must have been resolved under for an incremental run to extend it."""
    # NOTE: the embedding model is not among the settings, because `embed` is an opaque function.
    # After a change of model, pass full=True once to compare every name with the new vectors.
    return {"resolver": RESOLVER_VERSION, "source": source, "threshold": threshold, "embedding": embedding, "exclusions": exclusions_version}


def _stamp(settings: dict[str, object], graph_version: int) -> str:
    """Return the settings and the graph version they produced, as stored with the merge records."""
    return json.dumps({**settings, "graph": graph_version}, sort_keys=True)


def _load_prior_resolution(store: GraphStore, tenant: str, memory: str, results: Sequence[ExtractionResult]) -> PriorResolution | None:
    """Return the stored graph's entities, mention links and merge records, or None when no graph is stored."""
    entities = store.get_entities(tenant, memory)
    if not entities:
        return None
    links = store.get_mention_links(tenant, memory, sorted({result.chunk_id for result in results}))
    return PriorResolution(entities=entities, mention_links=links, merges=store.get_merge_records(tenant, memory))


def unmerge(store: GraphStore, tenant: str, memory: str, first: str, second: str, note: str = "") -> MergeExclusion:
    """Keep two names in different entities from the next resolution run on, which then resolves the whole graph again.

    Names are matched after folding (case, accents, a leading "the"), so any surface form of each
    side works, such as the two names of a merge record.
    """
    exclusion = make_exclusion(tenant, memory, first, second, note)
    added = store.add_merge_exclusions(tenant, memory, [exclusion])
    logger.info("excluded the merge of %r and %r in %s/%s%s", first, second, tenant, memory, "" if added else " (already excluded)")
    return exclusion


def allow_merge(store: GraphStore, tenant: str, memory: str, first: str, second: str) -> bool:
    """Delete the exclusion of two names, so that the next resolution run may merge them again; return whether one existed."""
    exclusion = make_exclusion(tenant, memory, first, second)
    deleted = store.delete_merge_exclusions(tenant, memory, [exclusion.id]) > 0
    logger.info("allowed the merge of %r and %r in %s/%s%s", first, second, tenant, memory, "" if deleted else " (was not excluded)")
    return deleted


def build_communities(
    store: GraphStore, tenant: str, memory: str, seed: int, largest: int = 10, summariser: "CommunitySummariser | None" = None
) -> CommunityReport:
    """Detect Leiden communities over the whole resolved graph and store them with their summaries.

    With a `summariser`, an LLM writes the summary text of each community of two or more members,
    with its responses kept in the store's response cache.
    """
    started = time.perf_counter()
    usage = TokenUsage()
    estimated_cost = 0.0
    summary_counts = (0, 0)

    def attempt() -> tuple[list[Community], bool]:
        nonlocal estimated_cost, summary_counts
        version = store.content_version(tenant, memory, "graph")
        entities = store.get_entities(tenant, memory)
        relations = store.get_relations(tenant, memory)
        evidence_chunk_ids = sorted({p.chunk_id for r in relations for p in r.provenance})
        chunk_texts = {c.id: c.text for c in store.get_chunks(tenant, memory, chunk_ids=evidence_chunk_ids)}
        communities = detect_communities(tenant, memory, entities, relations, chunk_texts, seed=seed)
        if summariser is not None:
            outcome = summariser.summarise(communities, {e.name: e.type for e in entities}, StoreResponseCache(store, tenant))
            communities = outcome.communities
            usage.add(outcome.usage)
            estimated_cost += outcome.estimated_cost
            summary_counts = (outcome.written, outcome.failed)
        return communities, store.replace_communities(tenant, memory, communities, based_on=("graph", version))

    communities, changed = _retry_on_concurrent_update(f"detecting communities of {tenant}/{memory}", attempt)

    levels = sorted({c.level for c in communities})
    finest = [c for c in communities if c.level == 0]
    report = CommunityReport(
        levels=len(levels),
        communities=len(communities),
        changed=changed,
        largest=sorted(finest, key=lambda c: (-len(c.member_ids), c.id))[:largest],
        llm_summaries=summary_counts[0],
        llm_summary_failures=summary_counts[1],
        llm=LLMUsageReport.from_usage(usage, estimated_cost),
        seconds=time.perf_counter() - started,
    )
    if not changed:
        logger.info("communities of %s/%s are unchanged, nothing stored", tenant, memory)
    return report


def store_summary_vectors(store: GraphStore, embedder: Embedder, tenant: str, memory: str) -> int:
    """Encode and store the vectors of the community summaries that global ranking compares with queries.

    Vectors are cached by text hash, so a rerun encodes only new summaries. Returns how many texts
    the namespace's communities have. Doing this at ingestion spares the first global or hybrid
    query of every process from encoding all summaries.
    """
    from graphmem_core.query_graph import summary_texts

    texts = summary_texts(store.get_communities(tenant, memory))
    if texts:
        cached_name_encoder(store, embedder, tenant)(texts)
    return len(texts)


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
