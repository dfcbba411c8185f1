"""The ingestion assets, one per pipeline stage, each partitioned by ingestion batch.

Every asset is a thin wrapper over a `graphmem_core.pipeline` function that writes to the graph
store with idempotent upserts, so re-materialising any partition leaves the store unchanged. The
assets return no value: the graph store is the storage, and materialisations carry metadata only.

A partition is either a folder batch (`batch-…`, one namespace, files listed in a manifest) or a
Kafka batch (`kafka:…`, offset ranges whose messages may name several namespaces). The stages after
`raw_documents` process every namespace the batch stored documents in.
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
from graphmem_core.batches import load_manifest
from graphmem_core.embeddings import model_key
from graphmem_core.models import Community, ExtractionFailure, RejectedInput
from graphmem_core.stores.base import GraphStore
from graphmem_core.streaming.ingest import KafkaIngestReport, ingest_kafka_batch
from graphmem_core.streaming.messages import DeadLetter
from graphmem_core.streaming.offsets import is_kafka_batch_key, parse_batch_key
from graphmem_dagster.ingestion.checks import (
    check_community_coverage,
    check_embeddings,
    check_relation_endpoints,
)
from graphmem_dagster.ingestion.partitions import batch_partitions
from graphmem_dagster.ingestion.resources import EmbedderResource, ExtractorResource, GraphStoreResource
from graphmem_dagster.streaming.resources import KafkaResource

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

# Rows of the largest-communities table, which `build_communities` also limits per namespace.
_LARGEST_COMMUNITIES = 10


def _batch_namespaces(context: AssetExecutionContext, graph_store: GraphStoreResource, store: GraphStore) -> list[tuple[str, str]]:
    """Return the (tenant, memory) pairs the run's batch stored documents in.

    A folder batch's manifest names its one namespace. A Kafka batch's namespaces come from the
    messages, so the store lists those that `raw_documents` wrote.
    """
    if is_kafka_batch_key(context.partition_key):
        namespaces = store.list_batch_namespaces(context.partition_key)
        if not namespaces:
            logger.info("batch %s stored no documents, so there is nothing to process", context.partition_key)
        return namespaces
    manifest = load_manifest(graph_store.settings().batches_path, context.partition_key)
    return [(manifest.tenant, manifest.memory)]


def _namespace_metadata(namespaces: list[tuple[str, str]]) -> dict[str, object]:
    """Return `tenant` and `memory` for one namespace, or the list of namespaces for a Kafka batch of several."""
    if len(namespaces) == 1:
        return {"tenant": namespaces[0][0], "memory": namespaces[0][1]}
    return {"namespaces": ", ".join(f"{tenant}/{memory}" for tenant, memory in namespaces) or "none"}


def _sum(reports: list[object], field: str) -> int:
    return sum(getattr(report, field) for report in reports)


def _merges_by_rule(reports: list[pipeline.ResolveReport]) -> dict[str, int]:
    """Add up, over the batch's namespaces, the merges each resolution rule made in this run."""
    totals: dict[str, int] = {}
    for report in reports:
        for rule, count in report.merges_by_rule.items():
            totals[rule] = totals.get(rule, 0) + count
    return dict(sorted(totals.items()))


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


def _dead_letters_table(dead_letters: list[DeadLetter]) -> str:
    rows = ["| message | kind | reason |", "| --- | --- | --- |"]
    rows += [
        f"| {_markdown_cell(d.record.coordinates)} | {d.kind} | {_markdown_cell(d.reason)} |" for d in dead_letters[:_MAX_REJECTIONS_IN_TABLE]
    ]
    if len(dead_letters) > _MAX_REJECTIONS_IN_TABLE:
        rows.append(f"| … | | {len(dead_letters) - _MAX_REJECTIONS_IN_TABLE} more, see the run log and the dead-letter topic |")
    return "\n".join(rows)


def _communities_table(communities: list[Community]) -> str:
    rows = ["| community | members | top entities | representative sentence |", "| --- | ---: | --- | --- |"]
    for community in communities:
        sentence = community.summary.representative_sentence or ""
        rows.append(
            f"| {_markdown_cell(community.title)} | {len(community.member_ids)} | "
            f"{_markdown_cell(', '.join(community.summary.top_entities[:5]))} | {_markdown_cell(sentence[:160])} |"
        )
    return "\n".join(rows)


@asset(partitions_def=batch_partitions, group_name=GROUP, kinds={"libsql", "kafka"})
def raw_documents(context: AssetExecutionContext, graph_store: GraphStoreResource, kafka: KafkaResource) -> MaterializeResult:
    """Documents of one batch, Unicode-normalised and stored under content-hash ids.

    A folder batch's documents are read from its files. A Kafka batch's messages are read again from
    the offset ranges in the partition key, and those that cannot be accepted are sent to the
    dead-letter topic. Idempotent: a document id is the hash of tenant, memory and text, so storing
    a batch again adds nothing. Rejected inputs are listed in the metadata; the rest of the batch proceeds.
    """
    settings = graph_store.settings()
    if is_kafka_batch_key(context.partition_key):
        kafka_settings = kafka.settings()
        with graph_store.open() as store:
            kafka_report = ingest_kafka_batch(store, kafka_settings, parse_batch_key(context.partition_key), settings.max_file_bytes)
        return MaterializeResult(metadata=_kafka_ingest_metadata(kafka_report, kafka_settings.kafka_dlq_topic))

    manifest = load_manifest(settings.batches_path, context.partition_key)
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


def _kafka_ingest_metadata(report: KafkaIngestReport, dlq_topic: str) -> dict[str, object]:
    metadata: dict[str, object] = {
        "messages": report.messages,
        "documents": report.documents,
        "new_documents": report.new_documents,
        "duplicates": report.duplicates,
        "rejected": len(report.dead_letters),
        "dead_letters_sent": report.dead_letters_sent,
        "dead_letter_topic": dlq_topic,
        **_namespace_metadata(report.namespaces),
        "seconds": round(report.seconds, 3),
    }
    if report.dead_letters:
        metadata["rejections"] = MetadataValue.md(_dead_letters_table(report.dead_letters))
    return metadata


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
    batch_id = context.partition_key
    model = embedder.get_embedder()
    overlap_tokens = embedder.settings().chunk_overlap_tokens
    with graph_store.open() as store:
        namespaces = _batch_namespaces(context, graph_store, store)
        reports = [pipeline.embed_batch(store, model, tenant, memory, batch_id, overlap_tokens) for tenant, memory in namespaces]
        check = check_embeddings(store, namespaces, batch_id, model_key(model.model_name), model.dimension)

    encoded = _sum(reports, "encoded")
    seconds = sum(report.seconds for report in reports)
    return MaterializeResult(
        metadata={
            "documents": _sum(reports, "documents"),
            "chunks": _sum(reports, "chunks"),
            "new_chunks": _sum(reports, "new_chunks"),
            "encoded": encoded,
            "from_cache": _sum(reports, "cached"),
            "tokens": _sum(reports, "tokens"),
            "model": model.model_name,
            "device": reports[0].device if reports else "not loaded",
            **_namespace_metadata(namespaces),
            "seconds": round(seconds, 3),
            "chunks_per_second": round(encoded / seconds, 1) if seconds > 0 else 0.0,
        },
        check_results=[check],
    )


@asset(partitions_def=batch_partitions, group_name=GROUP, deps=[embeddings], kinds={"python"})
def extracted_triples(context: AssetExecutionContext, graph_store: GraphStoreResource, extractor: ExtractorResource) -> MaterializeResult:
    """Entity mentions and within-sentence relations of the batch's chunks, with their spans.

    Idempotent: results are stored per (chunk, extractor version), and chunks already extracted by
    the same version are skipped.
    """
    chosen = extractor.get_extractor()
    with graph_store.open() as store:
        namespaces = _batch_namespaces(context, graph_store, store)
        reports = [pipeline.extract_batch(store, chosen, tenant, memory, context.partition_key) for tenant, memory in namespaces]

    failures = [failure for report in reports for failure in report.failures]
    metadata: dict[str, object] = {
        "extractor": chosen.cache_key,
        "chunks": _sum(reports, "chunks"),
        "extracted": _sum(reports, "extracted"),
        "already_extracted": _sum(reports, "skipped"),
        "failed": _sum(reports, "failed"),
        "mentions": _sum(reports, "mentions"),
        "relations": _sum(reports, "relations"),
        **_llm_usage_metadata(pipeline.LLMUsageReport.combine(report.llm for report in reports)),
        **_namespace_metadata(namespaces),
        "seconds": round(sum(report.seconds for report in reports), 3),
    }
    if failures:
        metadata["failures"] = MetadataValue.md(_failures_table(failures))
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
    model = embedder.get_embedder()
    chosen = extractor.get_extractor()
    with graph_store.open() as store:
        namespaces = _batch_namespaces(context, graph_store, store)
        reports = []
        for tenant, memory in namespaces:
            encoder = pipeline.cached_name_encoder(store, model, tenant)
            reports.append(pipeline.resolve_graph(store, chosen, tenant, memory, encoder, settings.resolution_threshold))
        check = check_relation_endpoints(store, namespaces)
        documents_in_graph = sum(store.counts(tenant, memory)["documents"] for tenant, memory in namespaces)

    return MaterializeResult(
        metadata={
            "mentions": _sum(reports, "mentions"),
            "entities": _sum(reports, "entities"),
            "relations": _sum(reports, "relations"),
            "changed": any(report.changed for report in reports),
            "mode": ", ".join(sorted({report.mode for report in reports})) or "none",
            "names": _sum(reports, "names"),
            "new_names": _sum(reports, "new_names"),
            "merges": _sum(reports, "merges"),
            "merges_by_rule": MetadataValue.json(_merges_by_rule(reports)),
            "exclusions": _sum(reports, "exclusions"),
            "kept_apart_by_exclusion": _sum(reports, "kept_apart_by_exclusion"),
            "documents_in_graph": documents_in_graph,
            **_namespace_metadata(namespaces),
            "seconds": round(sum(report.seconds for report in reports), 3),
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
    summariser = extractor.get_summariser()
    with graph_store.open() as store:
        namespaces = _batch_namespaces(context, graph_store, store)
        reports = []
        summary_vectors = 0
        for tenant, memory in namespaces:
            reports.append(pipeline.build_communities(store, tenant, memory, settings.community_seed, summariser=summariser))
            summary_vectors += pipeline.store_summary_vectors(store, embedder.get_embedder(), tenant, memory)
        check = check_community_coverage(store, namespaces)

    largest = sorted((c for report in reports for c in report.largest), key=lambda c: -len(c.member_ids))[:_LARGEST_COMMUNITIES]
    metadata: dict[str, object] = {
        "communities": _sum(reports, "communities"),
        "levels": max((report.levels for report in reports), default=0),
        "changed": any(report.changed for report in reports),
        **_namespace_metadata(namespaces),
        "seconds": round(sum(report.seconds for report in reports), 3),
        "summary_vectors": summary_vectors,
        "largest_communities": MetadataValue.md(_communities_table(largest)),
    }
    if summariser is not None:
        metadata["llm_summaries"] = _sum(reports, "llm_summaries")
        metadata["llm_summary_failures"] = _sum(reports, "llm_summary_failures")
        metadata.update(_llm_usage_metadata(pipeline.LLMUsageReport.combine(report.llm for report in reports)))
    return MaterializeResult(metadata=metadata, check_results=[check])


ingestion_assets = [raw_documents, embeddings, extracted_triples, resolved_graph, communities]
