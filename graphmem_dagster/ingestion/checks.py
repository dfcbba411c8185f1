"""Data quality checks of the ingestion assets, evaluated right after each materialisation.

Each check covers every namespace of the batch: one for a folder batch, any number for a Kafka batch.
"""

from collections.abc import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity

from graphmem_core.pipeline import unit_norm_violations
from graphmem_core.stores.base import GraphStore

# A float32 vector normalised by sentence-transformers is within about 1e-6 of unit length.
UNIT_NORM_TOLERANCE = 1e-3

Namespaces = Sequence[tuple[str, str]]


def check_embeddings(store: GraphStore, namespaces: Namespaces, batch_id: str, model: str, dimension: int) -> AssetCheckResult:
    """Pass when every chunk of the batch has a `model` vector of `dimension` values and unit norm."""
    chunks = missing = wrong_dimension = not_unit = 0
    for tenant, memory in namespaces:
        document_ids = [d.id for d in store.get_batch_documents(tenant, memory, batch_id)]
        namespace_chunks = store.get_chunks(tenant, memory, document_ids=document_ids)
        vectors = store.get_embeddings(tenant, model, sorted({c.text_hash for c in namespace_chunks}))
        chunks += len(namespace_chunks)
        missing += sum(1 for c in namespace_chunks if c.text_hash not in vectors)
        wrong, not_normalised = unit_norm_violations(list(vectors.values()), dimension, UNIT_NORM_TOLERANCE)
        wrong_dimension += wrong
        not_unit += not_normalised

    return AssetCheckResult(
        check_name="chunks_embedded_unit_norm",
        passed=missing == 0 and wrong_dimension == 0 and not_unit == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "chunks": chunks,
            "missing_vectors": missing,
            "wrong_dimension": wrong_dimension,
            "not_unit_norm": not_unit,
            "dimension": dimension,
        },
    )


def check_relation_endpoints(store: GraphStore, namespaces: Namespaces) -> AssetCheckResult:
    """Pass when no relation points at a missing entity."""
    dangling = sum(store.count_dangling_relations(tenant, memory) for tenant, memory in namespaces)
    return AssetCheckResult(
        check_name="relations_have_entities",
        passed=dangling == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"dangling_relations": dangling},
    )


def check_community_coverage(store: GraphStore, namespaces: Namespaces) -> AssetCheckResult:
    """Pass when every entity belongs to a community at every level (trivially when there are no entities)."""
    levels = 0
    uncovered = 0
    for tenant, memory in namespaces:
        counts = store.count_entities_without_community(tenant, memory)
        levels = max(levels, len(counts))
        uncovered += sum(counts.values())
    return AssetCheckResult(
        check_name="membership_covers_graph",
        passed=uncovered == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"levels": levels, "entities_without_community": uncovered},
    )
