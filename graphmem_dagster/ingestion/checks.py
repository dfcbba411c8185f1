"""Data quality checks of the ingestion assets, evaluated right after each materialisation."""

from dagster import AssetCheckResult, AssetCheckSeverity

from graphmem_core.pipeline import unit_norm_violations
from graphmem_core.stores.base import GraphStore

# A float32 vector normalised by sentence-transformers is within about 1e-6 of unit length.
UNIT_NORM_TOLERANCE = 1e-3


def check_embeddings(store: GraphStore, tenant: str, memory: str, batch_id: str, model: str, dimension: int) -> AssetCheckResult:
    """Pass when every chunk of the batch has a `model` vector of `dimension` values and unit norm."""
    document_ids = [d.id for d in store.get_batch_documents(tenant, memory, batch_id)]
    chunks = store.get_chunks(tenant, memory, document_ids=document_ids)
    vectors = store.get_embeddings(tenant, model, sorted({c.text_hash for c in chunks}))
    missing = sum(1 for c in chunks if c.text_hash not in vectors)
    wrong_dimension, not_unit = unit_norm_violations(list(vectors.values()), dimension, UNIT_NORM_TOLERANCE)
    passed = missing == 0 and wrong_dimension == 0 and not_unit == 0
    return AssetCheckResult(
        check_name="chunks_embedded_unit_norm",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "chunks": len(chunks),
            "missing_vectors": missing,
            "wrong_dimension": wrong_dimension,
            "not_unit_norm": not_unit,
            "dimension": dimension,
        },
    )


def check_relation_endpoints(store: GraphStore, tenant: str, memory: str) -> AssetCheckResult:
    """Pass when no relation points at a missing entity."""
    dangling = store.count_dangling_relations(tenant, memory)
    return AssetCheckResult(
        check_name="relations_have_entities",
        passed=dangling == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"dangling_relations": dangling},
    )


def check_community_coverage(store: GraphStore, tenant: str, memory: str) -> AssetCheckResult:
    """Pass when every entity belongs to a community at every level (trivially when there are no entities)."""
    uncovered = store.count_entities_without_community(tenant, memory)
    passed = all(count == 0 for count in uncovered.values())
    return AssetCheckResult(
        check_name="membership_covers_graph",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={"levels": len(uncovered), "entities_without_community": sum(uncovered.values())},
    )
