"""What only the Neo4j store has: its schema, connection errors, shared vector indexes, and parity with libSQL."""

import socket
from pathlib import Path

import numpy as np
import pytest

from graphmem_core import pipeline
from graphmem_core.batches import register_batch
from graphmem_core.errors import RetryableStoreError, StoreError
from graphmem_core.extraction import get_extractor
from graphmem_core.stores.base import GraphStore
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.conftest import delete_neo4j_tenants, neo4j_password, service_url
from tests.core.test_store_contract import MODEL, make_chunks, make_document, unit_vectors

TENANT = "neo4j-tests"
MEMORY = "default"
OTHER_TENANT = "neo4j-tests-other"


@pytest.fixture
def neo4j_uri() -> str:
    uri = service_url("neo4j")
    delete_neo4j_tenants(TENANT, OTHER_TENANT)
    return uri


@pytest.fixture
def store(neo4j_uri: str):
    from graphmem_core.stores.neo4j_store import Neo4jGraphStore

    opened = Neo4jGraphStore(neo4j_uri, user="neo4j", password=neo4j_password(), batch_size=1000)
    yield opened
    opened.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_wrong_password_names_setting(neo4j_uri: str):
    from graphmem_core.stores.neo4j_store import Neo4jGraphStore

    with pytest.raises(StoreError, match="GRAPHMEM_NEO4J_PASSWORD") as raised:
        Neo4jGraphStore(neo4j_uri, user="neo4j", password="not-the-password", connect_attempts=1)

    assert "not-the-password" not in str(raised.value)


def test_unreachable_server_retried_then_raises():
    from graphmem_core.stores.neo4j_store import Neo4jGraphStore

    uri = f"bolt://127.0.0.1:{free_port()}"

    with pytest.raises(RetryableStoreError, match="after 2 attempts") as raised:
        Neo4jGraphStore(uri, user="neo4j", password=neo4j_password(), connect_attempts=2)

    assert uri in str(raised.value)
    assert "GRAPHMEM_NEO4J_URI" in str(raised.value)


def test_invalid_uri_scheme():
    from graphmem_core.stores.neo4j_store import Neo4jGraphStore

    with pytest.raises(StoreError, match="invalid Neo4j URI 'http://127.0.0.1:7474'"):
        Neo4jGraphStore("http://127.0.0.1:7474", user="neo4j", password=neo4j_password(), connect_attempts=1)


def test_schema_has_constraints_and_vector_indexes(store: GraphStore):
    store.upsert_embeddings(TENANT, MODEL, {"hash-a": unit_vectors(1)[0]})

    records, _, _ = store._driver.execute_query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type")
    unique = {(tuple(r["labelsOrTypes"]), tuple(r["properties"])) for r in records if r["type"] == "UNIQUENESS"}
    for label in ("Document", "Chunk", "Entity", "Community", "Batch"):
        assert ((label,), ("tenant", "memory", "id")) in unique, label

    records, _, _ = store._driver.execute_query("SHOW VECTOR INDEXES YIELD labelsOrTypes, state")
    labels = {r["labelsOrTypes"][0] for r in records if r["state"] == "ONLINE"}
    assert {"Chunk", "Entity"} <= labels


def test_search_skips_other_tenants_in_shared_index(store: GraphStore):
    # The other tenant's chunks are all closer to the query than ours, so the first candidates
    # from the shared index belong to it and the search must read further.
    query = unit_vectors(1, seed=3)[0]
    crowd = [make_document(f"Crowded passage number {i}.", tenant=OTHER_TENANT) for i in range(300)]
    store.upsert_documents(OTHER_TENANT, MEMORY, "batch-1", crowd)
    crowd_chunks = [make_chunks(d, size=10_000)[0] for d in crowd]
    store.upsert_chunks(OTHER_TENANT, MEMORY, crowd_chunks)
    noise = np.random.default_rng(5).normal(scale=0.01, size=(len(crowd_chunks), query.shape[0])).astype(np.float32)
    near = query + noise
    store.upsert_embeddings(OTHER_TENANT, MODEL, {c.text_hash: v / np.linalg.norm(v) for c, v in zip(crowd_chunks, near)})

    own = [make_document(f"Own passage {i}.", tenant=TENANT, memory=MEMORY) for i in range(3)]
    store.upsert_documents(TENANT, MEMORY, "batch-1", own)
    own_chunks = [make_chunks(d, size=10_000)[0] for d in own]
    store.upsert_chunks(TENANT, MEMORY, own_chunks)
    store.upsert_embeddings(TENANT, MODEL, {c.text_hash: v for c, v in zip(own_chunks, unit_vectors(3, seed=11))})

    hits = store.search_chunks(TENANT, MEMORY, MODEL, query, top_k=3)

    assert sorted(hit.chunk.id for hit in hits) == sorted(c.id for c in own_chunks)
    assert all(hit.chunk.tenant == TENANT for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_chunk_stored_after_its_vector_is_searchable(store: GraphStore):
    document = make_document("Vector first, chunk later.", tenant=TENANT, memory=MEMORY)
    chunk = make_chunks(document, size=10_000)[0]
    vector = unit_vectors(1, seed=9)[0]
    store.upsert_embeddings(TENANT, MODEL, {chunk.text_hash: vector})

    store.upsert_documents(TENANT, MEMORY, "batch-1", [document])
    store.upsert_chunks(TENANT, MEMORY, [chunk])

    hits = store.search_chunks(TENANT, MEMORY, MODEL, vector, top_k=1)
    assert [hit.chunk.id for hit in hits] == [chunk.id]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def run_pipeline(store: GraphStore, embedder, inputs: Path, batches: Path) -> None:
    manifest = register_batch([inputs], TENANT, MEMORY, batches)
    extractor = get_extractor("fast")
    pipeline.ingest_batch(store, manifest, max_file_bytes=10_000_000)
    pipeline.embed_batch(store, embedder, TENANT, MEMORY, manifest.batch_id, overlap_tokens=32)
    pipeline.extract_batch(store, extractor, TENANT, MEMORY, manifest.batch_id)
    encode = pipeline.cached_name_encoder(store, embedder, TENANT)
    pipeline.resolve_graph(store, extractor, TENANT, MEMORY, encode, threshold=0.9)
    pipeline.build_communities(store, TENANT, MEMORY, seed=42)


def test_pipeline_matches_libsql(store: GraphStore, embedder, podcast_texts, tmp_path: Path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, text in podcast_texts[:8]:
        (inputs / name).write_text(text, encoding="utf-8")
    libsql = LibsqlGraphStore(tmp_path / "home" / "graph.db")

    try:
        run_pipeline(libsql, embedder, inputs, tmp_path / "batches")
        run_pipeline(store, embedder, inputs, tmp_path / "batches")

        assert store.counts(TENANT, MEMORY) == libsql.counts(TENANT, MEMORY)
        assert store.get_entities(TENANT, MEMORY) == libsql.get_entities(TENANT, MEMORY)
        assert store.get_relations(TENANT, MEMORY) == libsql.get_relations(TENANT, MEMORY)
        assert store.get_communities(TENANT, MEMORY) == libsql.get_communities(TENANT, MEMORY)
        assert store.count_dangling_relations(TENANT, MEMORY) == 0
        assert set(store.count_entities_without_community(TENANT, MEMORY).values()) == {0}

        query = embedder.encode(["what did the guest say about their childhood"])[0]
        neo4j_hits = store.search_chunks(TENANT, MEMORY, "all-MiniLM-L6-v2", query, top_k=5)
        libsql_hits = libsql.search_chunks(TENANT, MEMORY, "all-MiniLM-L6-v2", query, top_k=5)
        assert [hit.chunk.id for hit in neo4j_hits] == [hit.chunk.id for hit in libsql_hits]
        for neo4j_hit, libsql_hit in zip(neo4j_hits, libsql_hits):
            assert neo4j_hit.score == pytest.approx(libsql_hit.score, abs=1e-4)
    finally:
        libsql.close()
