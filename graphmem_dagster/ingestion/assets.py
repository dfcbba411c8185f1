"""The ingestion assets, one per pipeline stage, each partitioned by ingestion batch.

Every asset is a thin wrapper over a `graphmem_core.pipeline` function that writes to the graph
store with idempotent upserts, so re-materialising any partition leaves the store unchanged. The
assets return no value: the graph store is the storage, and materialisations carry metadata only.
"""

import logging

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from graphmem_core import pipeline
from graphmem_core.batches import BatchManifest, load_manifest
from graphmem_core.embeddings import model_key
from graphmem_core.models import Community, ExtractionFailure, RejectedInput
from graphmem_dagster.ingestion.checks import (
    check_community_coverage,
    check_embeddings,
    check_relation_endpoints,
)
from graphmem_dagster.ingestion.partitions import batch_partitions
from graphmem_dagster.ingestion.resources import EmbedderResource, ExtractorResource, GraphStoreResource

logger = logging.getLogger(__name__)

GROUP = "ingestion"

# Under dagster-k8s each step of this asset runs in a pod that requests one GPU.
GPU_POD_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    },
}

_MAX_REJECTIONS_IN_TABLE = 50


def _batch_manifest(context: AssetExecutionContext, graph_store: GraphStoreResource) -> BatchManifest:
    """Return the manifest of the run's batch, which names the tenant and memory every stage writes to."""
    return load_manifest(graph_store.settings().batches_path, context.partition_key)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rejections_table(rejected: list[RejectedInput]) -> str:
    rows = ["| source | reason |", "| --- | --- |"]
    rows += [f"| {_markdown_cell(r.source)} | {_markdown_cell(r.reason)} |" for r in rejected[:_MAX_REJECTIONS_IN_TABLE]]
    if len(rejected) > _MAX_REJECTIONS_IN_TABLE:
        rows.append(f"| … | {len(rejected) - _MAX_REJECTIONS_IN_TABLE} more, see the run log |")
    return "\n".join(rows)


def _failures_table(failures: list[ExtractionFailure]) -> str:
    rows = ["| chunk | reason |", "| --- | --- |"]
    rows += [f"| {_markdown_cell(f.chunk_id)} | {_markdown_cell(f.reason)} |" for f in failures[:_MAX_REJECTIONS_IN_TABLE]]
    if len(failures) > _MAX_REJECTIONS_IN_TABLE:
        rows.append(f"| … | {len(failures) - _MAX_REJECTIONS_IN_TABLE} more, see the run log |")
    return "\n".join(rows)


def _llm_usage_metadata(usage: pipeline.LLMUsageReport) -> dict[str, object]:
    """Return a stage's LLM requests, cache hits, token usage and estimated cost as metadata entries."""
    return {
        "llm_requests": usage.requests,
        "llm_cached_responses": usage.cached_responses,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "estimated_cost": round(usage.estimated_cost, 6),
    }


def _communities_table(communities: list[Community]) -> str:
    rows = ["| community | members | top entities | representative sentence |", "| --- | ---: | --- | --- |"]
    for community in communities:
        sentence = community.summary.representative_sentence or ""
        rows.append(
            f"| {_markdown_cell(community.title)} | {len(community.member_ids)} | "
            f"{_markdown_cell(', '.join(community.summary.top_entities[:5]))} | {_markdown_cell(sentence[:160])} |"
        )
    return "\n".join(rows)


@asset(partitions_def=batch_partitions, group_name=GROUP, kinds={"libsql"})
def raw_documents(context: AssetExecutionContext, graph_store: GraphStoreResource) -> MaterializeResult:
    """Documents of one batch, read from its files, Unicode-normalised and stored under content-hash ids.

    Idempotent: a document id is the hash of tenant, memory and text, so storing a batch again adds nothing.
    Rejected inputs are stored with their reason and listed in the metadata; the rest of the batch proceeds.
    """
    settings = graph_store.settings()
    manifest = _batch_manifest(context, graph_store)
    with graph_store.open() as store:
        report = pipeline.ingest_batch(store, manifest, settings.max_file_bytes)

    metadata = {
        "files": report.files,
        "documents": report.documents,
        "new_documents": report.new_documents,
        "duplicates": report.duplicates,
        "rejected": len(report.rejected),
        "tenant": manifest.tenant,
        "memory": manifest.memory,
        "seconds": round(report.seconds, 3),
    }
    if report.rejected:
        metadata["rejections"] = MetadataValue.md(_rejections_table(report.rejected))
    return MaterializeResult(metadata=metadata)


@asset(
    partitions_def=batch_partitions,
    group_name=GROUP,
    deps=[raw_documents],
    op_tags=GPU_POD_TAGS,
    kinds={"pytorch"},
    check_specs=[AssetCheckSpec("chunks_embedded_unit_norm", asset="embeddings", description="Every chunk of the batch has a vector of the model's dimension and unit norm.")],
)
def embeddings(context: AssetExecutionContext, graph_store: GraphStoreResource, embedder: EmbedderResource) -> MaterializeResult:
    """Sentence-aware chunks of the batch's documents and their normalised embeddings.

    Idempotent: chunk ids derive from document, span and text, and vectors are cached by (text hash,
    model), so no chunk text is ever encoded twice with the same model.
    """
    manifest = _batch_manifest(context, graph_store)
    model = embedder.get_embedder()
    with graph_store.open() as store:
        report = pipeline.embed_batch(
            store, model, manifest.tenant, manifest.memory, manifest.batch_id, embedder.settings().chunk_overlap_tokens
        )
        check = check_embeddings(store, manifest.tenant, manifest.memory, manifest.batch_id, model_key(model.model_name), model.dimension)

    return MaterializeResult(
        metadata={
            "documents": report.documents,
            "chunks": report.chunks,
            "new_chunks": report.new_chunks,
            "encoded": report.encoded,
            "from_cache": report.cached,
            "tokens": report.tokens,
            "model": model.model_name,
            "device": report.device,
            "seconds": round(report.seconds, 3),
            "chunks_per_second": round(report.encoded / report.seconds, 1) if report.seconds > 0 else 0.0,
        },
        check_results=[check],
    )


@asset(partitions_def=batch_partitions, group_name=GROUP, deps=[embeddings], kinds={"python"})
def extracted_triples(context: AssetExecutionContext, graph_store: GraphStoreResource, extractor: ExtractorResource) -> MaterializeResult:
    """Entity mentions and within-sentence relations of the batch's chunks, with their spans.

    Idempotent: results are stored per (chunk, extractor version), and chunks already extracted by
    the same version are skipped.
    """
    manifest = _batch_manifest(context, graph_store)
    chosen = extractor.get_extractor()
    with graph_store.open() as store:
        report = pipeline.extract_batch(store, chosen, manifest.tenant, manifest.memory, manifest.batch_id)

    metadata: dict[str, object] = {
        "extractor": chosen.cache_key,
        "chunks": report.chunks,
        "extracted": report.extracted,
        "already_extracted": report.skipped,
        "failed": report.failed,
        "mentions": report.mentions,
        "relations": report.relations,
        **_llm_usage_metadata(report.llm),
        "seconds": round(report.seconds, 3),
    }
    if report.failures:
        metadata["failures"] = MetadataValue.md(_failures_table(report.failures))
    return MaterializeResult(metadata=metadata)


@asset(
    partitions_def=batch_partitions,
    group_name=GROUP,
    deps=[extracted_triples],
    kinds={"libsql"},
    check_specs=[AssetCheckSpec("relations_have_entities", asset="resolved_graph", blocking=True, description="No relation points at a missing entity.")],
)
def resolved_graph(
    context: AssetExecutionContext, graph_store: GraphStoreResource, embedder: EmbedderResource, extractor: ExtractorResource
) -> MaterializeResult:
    """Entities and relations resolved across the whole namespace, not only this batch.

    Idempotent: entity ids derive from tenant, memory, canonical name and type, and the graph is
    replaced only when the resolution result differs from what is stored.
    """
    settings = graph_store.settings()
    manifest = _batch_manifest(context, graph_store)
    model = embedder.get_embedder()
    with graph_store.open() as store:
        encoder = pipeline.cached_name_encoder(store, model, manifest.tenant)
        report = pipeline.resolve_graph(
            store, extractor.get_extractor(), manifest.tenant, manifest.memory, encoder, settings.resolution_threshold
        )
        check = check_relation_endpoints(store, manifest.tenant, manifest.memory)
        counts = store.counts(manifest.tenant, manifest.memory)

    return MaterializeResult(
        metadata={
            "mentions": report.mentions,
            "entities": report.entities,
            "relations": report.relations,
            "changed": report.changed,
            "documents_in_graph": counts["documents"],
            "seconds": round(report.seconds, 3),
        },
        check_results=[check],
    )


@asset(
    partitions_def=batch_partitions,
    group_name=GROUP,
    deps=[resolved_graph],
    kinds={"igraph"},
    check_specs=[AssetCheckSpec("membership_covers_graph", asset="communities", description="Every entity belongs to one community at every level.")],
)
def communities(
    context: AssetExecutionContext, graph_store: GraphStoreResource, embedder: EmbedderResource, extractor: ExtractorResource
) -> MaterializeResult:
    """Leiden communities of the whole resolved graph on two or more levels, with extractive summaries.

    When an LLM is configured (GRAPHMEM_LLM_MODEL), it also writes a summary text for each community
    of two or more members. The summaries' vectors are stored for the global and hybrid query modes. Idempotent: Leiden runs with a fixed seed, so the same graph yields the
    same communities and ids, and LLM summaries come from the response cache on a rerun.
    """
    settings = graph_store.settings()
    manifest = _batch_manifest(context, graph_store)
    summariser = extractor.get_summariser()
    with graph_store.open() as store:
        report = pipeline.build_communities(store, manifest.tenant, manifest.memory, settings.community_seed, summariser=summariser)
        summary_vectors = pipeline.store_summary_vectors(store, embedder.get_embedder(), manifest.tenant, manifest.memory)
        check = check_community_coverage(store, manifest.tenant, manifest.memory)

    metadata: dict[str, object] = {
        "communities": report.communities,
        "levels": report.levels,
        "changed": report.changed,
        "seconds": round(report.seconds, 3),
        "summary_vectors": summary_vectors,
        "largest_communities": MetadataValue.md(_communities_table(report.largest)),
    }
    if summariser is not None:
        metadata["llm_summaries"] = report.llm_summaries
        metadata["llm_summary_failures"] = report.llm_summary_failures
        metadata.update(_llm_usage_metadata(report.llm))
    return MaterializeResult(metadata=metadata, check_results=[check])


ingestion_assets = [raw_documents, embeddings, extracted_triples, resolved_graph, communities]
