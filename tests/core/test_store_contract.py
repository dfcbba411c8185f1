"""One contract suite for every `GraphStore` backend; a backend joins by adding a fixture parameter."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from graphmem_core import ids
from graphmem_core.errors import ConcurrentUpdateError
from graphmem_core.models import (
    Chunk,
    Community,
    CommunitySummary,
    Document,
    Entity,
    EntityType,
    ExtractedRelation,
    ExtractionFailure,
    ExtractionResult,
    Mention,
    MentionLink,
    MergeExclusion,
    MergeRecord,
    RejectedInput,
    Relation,
    RelationEvidence,
    ResolvedGraph,
)
from graphmem_core.stores.base import GraphStore
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.conftest import delete_neo4j_tenants, neo4j_password, service_url

TENANT = "acme"
MEMORY = "notes"
MODEL = "test-model"
DIMENSION = 8


def open_libsql(folder: Path) -> GraphStore:
    return LibsqlGraphStore(folder / "graph.db")


def open_neo4j(folder: Path) -> GraphStore:
    from graphmem_core.stores.neo4j_store import Neo4jGraphStore

    # A small batch size makes the multi-row tests cross transaction boundaries.
    return Neo4jGraphStore(service_url("neo4j"), user="neo4j", password=neo4j_password(), batch_size=500)


def reset_neo4j() -> None:
    delete_neo4j_tenants(TENANT, "rival")


BACKENDS = {"libsql": open_libsql, "neo4j": open_neo4j}
RESETS = {"neo4j": reset_neo4j}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> str:
    reset = RESETS.get(request.param)
    if reset is not None:
        reset()
    return request.param


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[GraphStore]:
    opened = BACKENDS[backend](tmp_path)
    yield opened
    opened.close()


def make_document(text: str, tenant: str = TENANT, memory: str = MEMORY, title: str | None = None) -> Document:
    return Document(
        id=ids.document_id(tenant, memory, text),
        tenant=tenant,
        memory=memory,
        text=text,
        title=title,
        source=f"/data/{title or 'doc'}.txt",
        metadata={"origin": "test"},
    )


def make_chunks(document: Document, size: int = 20) -> list[Chunk]:
    chunks = []
    for index, start in enumerate(range(0, len(document.text), size)):
        text = document.text[start : start + size]
        chunks.append(
            Chunk(
                id=ids.chunk_id(document.id, start, start + len(text), text),
                document_id=document.id,
                tenant=document.tenant,
                memory=document.memory,
                index=index,
                text=text,
                start=start,
                end=start + len(text),
                token_count=len(text.split()),
                text_hash=ids.text_hash(text),
            )
        )
    return chunks


def unit_vectors(count: int, seed: int = 7) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_entity(name: str, entity_type: EntityType = EntityType.PERSON, tenant: str = TENANT) -> Entity:
    return Entity(
        id=ids.entity_id(tenant, MEMORY, name, entity_type.value),
        tenant=tenant,
        memory=MEMORY,
        name=name,
        type=entity_type,
        aliases=[],
        mention_count=1,
    )


def make_relation(source: Entity, target: Entity, relation_type: str = "knows", chunk_id: str = "chk_1") -> Relation:
    return Relation(
        id=ids.relation_id(source.tenant, MEMORY, source.id, relation_type, target.id),
        tenant=source.tenant,
        memory=MEMORY,
        source_id=source.id,
        target_id=target.id,
        type=relation_type,
        weight=2.0,
        provenance=[RelationEvidence(chunk_id=chunk_id, start=0, end=10)],
    )


def make_graph(names: list[str], tenant: str = TENANT) -> ResolvedGraph:
    entities = [make_entity(name, tenant=tenant) for name in names]
    relations = [make_relation(a, b) for a, b in zip(entities, entities[1:])]
    links = [MentionLink(entity_id=e.id, chunk_id="chk_1", start=i, end=i + 1, text=e.name) for i, e in enumerate(entities)]
    return ResolvedGraph(entities=entities, relations=relations, mention_links=links)


def make_community(members: list[Entity], level: int, parent_id: str | None = None) -> Community:
    member_ids = sorted(e.id for e in members)
    return Community(
        id=ids.community_id(TENANT, MEMORY, level, member_ids),
        tenant=TENANT,
        memory=MEMORY,
        level=level,
        parent_id=parent_id,
        title=", ".join(e.name for e in members[:2]),
        member_ids=member_ids,
        summary=CommunitySummary(top_entities=[e.name for e in members], key_relations=[], representative_sentence=None),
    )


def store_with_vectors(store: GraphStore, texts: list[str]) -> tuple[list[Chunk], np.ndarray]:
    documents = [make_document(text, title=f"t{i}") for i, text in enumerate(texts)]
    store.upsert_documents(TENANT, MEMORY, "batch-1", documents)
    chunks = [make_chunks(d, size=10_000)[0] for d in documents]
    store.upsert_chunks(TENANT, MEMORY, chunks)
    vectors = unit_vectors(len(chunks))
    store.upsert_embeddings(TENANT, MODEL, {c.text_hash: v for c, v in zip(chunks, vectors)})
    return chunks, vectors


def test_documents_upsert_idempotent(store: GraphStore):
    documents = [make_document("First text."), make_document("Second text.")]

    assert store.upsert_documents(TENANT, MEMORY, "batch-1", documents) == 2
    version = store.graph_version(TENANT, MEMORY)
    assert store.upsert_documents(TENANT, MEMORY, "batch-1", documents) == 0

    assert store.graph_version(TENANT, MEMORY) == version
    assert [d.id for d in store.get_batch_documents(TENANT, MEMORY, "batch-1")] == sorted(d.id for d in documents)
    assert store.counts(TENANT, MEMORY)["documents"] == 2


def test_document_in_two_batches(store: GraphStore):
    document = make_document("Shared text.")

    store.upsert_documents(TENANT, MEMORY, "batch-1", [document])
    store.upsert_documents(TENANT, MEMORY, "batch-2", [document])

    assert store.counts(TENANT, MEMORY)["documents"] == 1
    assert store.counts(TENANT, MEMORY)["batches"] == 2
    assert store.get_batch_documents(TENANT, MEMORY, "batch-2") == [document]


def test_documents_round_trip_fields(store: GraphStore):
    document = make_document("Text with metadata.", title="Title ‘quoted’")

    store.upsert_documents(TENANT, MEMORY, "batch-1", [document])

    assert store.get_documents(TENANT, MEMORY, [document.id]) == [document]


def test_rejections_replace_reason(store: GraphStore):
    store.record_rejections(TENANT, MEMORY, "batch-1", [RejectedInput(source="a.bin", reason="binary file")])
    store.record_rejections(TENANT, MEMORY, "batch-1", [RejectedInput(source="a.bin", reason="still binary")])

    assert store.get_rejections(TENANT, MEMORY, "batch-1") == [RejectedInput(source="a.bin", reason="still binary")]


def test_chunks_upsert_idempotent(store: GraphStore):
    document = make_document("A longer text that spans several chunks of twenty characters.")
    chunks = make_chunks(document)
    store.upsert_documents(TENANT, MEMORY, "batch-1", [document])

    assert store.upsert_chunks(TENANT, MEMORY, chunks) == len(chunks)
    assert store.upsert_chunks(TENANT, MEMORY, chunks) == 0

    assert store.get_chunks(TENANT, MEMORY, document_ids=[document.id]) == chunks
    assert store.get_chunks(TENANT, MEMORY, chunk_ids=[chunks[1].id]) == [chunks[1]]


def test_batch_write_many_rows(store: GraphStore):
    documents = [make_document(f"Document number {i}.") for i in range(2500)]

    assert store.upsert_documents(TENANT, MEMORY, "batch-big", documents) == 2500

    assert len(store.get_batch_documents(TENANT, MEMORY, "batch-big")) == 2500


def test_embeddings_cache_by_text_hash(store: GraphStore):
    vectors = unit_vectors(2)

    assert store.upsert_embeddings(TENANT, MODEL, {"h1": vectors[0], "h2": vectors[1]}) == 2
    assert store.upsert_embeddings(TENANT, MODEL, {"h1": vectors[1]}) == 0

    found = store.get_embeddings(TENANT, MODEL, ["h1", "h2", "h3"])
    assert sorted(found) == ["h1", "h2"]
    np.testing.assert_array_equal(found["h1"], vectors[0])
    assert store.get_embeddings(TENANT, "other-model", ["h1"]) == {}


def test_vector_search_finds_nearest(store: GraphStore):
    chunks, vectors = store_with_vectors(store, [f"Passage {i} about topic {i}." for i in range(30)])

    hits = store.search_chunks(TENANT, MEMORY, MODEL, vectors[12], top_k=3)

    assert hits[0].chunk.id == chunks[12].id
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 3
    assert hits[0].document_title == "t12"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_vector_search_sees_new_chunks(store: GraphStore):
    store_with_vectors(store, [f"Passage {i}." for i in range(5)])
    store.search_chunks(TENANT, MEMORY, MODEL, unit_vectors(1)[0], top_k=1)

    document = make_document("A late passage.")
    late_chunk = make_chunks(document, size=10_000)[0]
    store.upsert_documents(TENANT, MEMORY, "batch-2", [document])
    store.upsert_chunks(TENANT, MEMORY, [late_chunk])
    late_vector = unit_vectors(1, seed=99)[0]
    store.upsert_embeddings(TENANT, MODEL, {late_chunk.text_hash: late_vector})

    hits = store.search_chunks(TENANT, MEMORY, MODEL, late_vector, top_k=1)
    assert hits[0].chunk.id == late_chunk.id


def test_vector_search_empty_namespace(store: GraphStore):
    assert store.search_chunks(TENANT, MEMORY, MODEL, unit_vectors(1)[0], top_k=5) == []


def test_extractions_round_trip(store: GraphStore):
    result = ExtractionResult(
        chunk_id="chk_a",
        mentions=[
            Mention(chunk_id="chk_a", text="Ada", type=EntityType.PERSON, start=0, end=3),
            Mention(chunk_id="chk_a", text="London", type=EntityType.LOCATION, start=12, end=18),
        ],
        relations=[ExtractedRelation(chunk_id="chk_a", source=0, target=1, type="visited", start=0, end=19)],
    )

    assert store.upsert_extractions(TENANT, MEMORY, "fast@1", [result]) == 1
    assert store.upsert_extractions(TENANT, MEMORY, "fast@1", [result]) == 0

    assert list(store.iter_extractions(TENANT, MEMORY, "fast@1")) == [result]
    assert store.get_extracted_chunk_ids(TENANT, MEMORY, "fast@1", ["chk_a", "chk_b"]) == {"chk_a"}
    assert store.get_extracted_chunk_ids(TENANT, MEMORY, "fast@2", ["chk_a"]) == set()


def test_replace_graph_idempotent(store: GraphStore):
    graph = make_graph(["Ada Lovelace", "Charles Babbage", "Mary Somerville"])

    assert store.replace_graph(TENANT, MEMORY, graph) is True
    version = store.graph_version(TENANT, MEMORY)
    assert store.replace_graph(TENANT, MEMORY, graph) is False

    assert store.graph_version(TENANT, MEMORY) == version
    assert store.get_entities(TENANT, MEMORY) == sorted(graph.entities, key=lambda e: e.id)
    assert store.get_relations(TENANT, MEMORY) == sorted(graph.relations, key=lambda r: r.id)
    assert store.count_dangling_relations(TENANT, MEMORY) == 0


def test_relation_evidence_fields_round_trip(store: GraphStore):
    graph = make_graph(["Ada Lovelace", "Charles Babbage"])
    described = RelationEvidence(
        chunk_id="chk_1", start=0, end=10, description="worked with", confidence=0.75, valid_from="1833", valid_to="1852-11-27"
    )
    plain = RelationEvidence(chunk_id="chk_2", start=5, end=9)
    relation = graph.relations[0].model_copy(update={"provenance": [described, plain], "weight": 2.0})
    store.replace_graph(TENANT, MEMORY, graph.model_copy(update={"relations": [relation]}))

    [stored] = store.get_relations(TENANT, MEMORY)

    assert stored.provenance[0] == described
    assert stored.provenance[1] == plain
    assert stored.provenance[1].confidence is None
    assert store.neighbourhood(TENANT, MEMORY, [relation.source_id], hops=1).relations[0].provenance == [described, plain]


def test_replace_graph_drops_old_entities(store: GraphStore):
    store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace", "Charles Babbage"]))
    store.replace_graph(TENANT, MEMORY, make_graph(["Grace Hopper", "Alan Turing"]))

    assert sorted(e.name for e in store.get_entities(TENANT, MEMORY)) == ["Alan Turing", "Grace Hopper"]


def test_neighbourhood_expands_hops(store: GraphStore):
    graph = make_graph(["A One", "B Two", "C Three", "D Four"])
    store.replace_graph(TENANT, MEMORY, graph)
    first = graph.entities[0].id

    one_hop = store.neighbourhood(TENANT, MEMORY, [first], hops=1)
    two_hops = store.neighbourhood(TENANT, MEMORY, [first], hops=2)
    no_hops = store.neighbourhood(TENANT, MEMORY, [first], hops=0)

    assert [e.name for e in one_hop.entities] == ["A One", "B Two"]
    assert len(one_hop.relations) == 1
    assert [e.name for e in two_hops.entities] == ["A One", "B Two", "C Three"]
    assert len(two_hops.relations) == 2
    assert [e.name for e in no_hops.entities] == ["A One"]
    assert no_hops.relations == []


def test_mention_links_by_chunk(store: GraphStore):
    graph = make_graph(["Ada Lovelace", "Charles Babbage"])
    store.replace_graph(TENANT, MEMORY, graph)

    links = store.get_mention_links(TENANT, MEMORY, ["chk_1"])

    assert sorted(link.entity_id for link in links) == sorted(e.id for e in graph.entities)
    assert store.get_mention_links(TENANT, MEMORY, ["chk_other"]) == []


def test_find_entities_exact_and_partial(store: GraphStore):
    store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace", "Ada", "100% Pure_Name"]))

    assert [e.name for e in store.find_entities(TENANT, MEMORY, "ada")][0] == "Ada"
    assert {e.name for e in store.find_entities(TENANT, MEMORY, "Ada")} == {"Ada", "Ada Lovelace"}
    assert [e.name for e in store.find_entities(TENANT, MEMORY, "0% Pure_")] == ["100% Pure_Name"]
    assert [e.name for e in store.find_entities(TENANT, MEMORY, "%")] == ["100% Pure_Name"]


def test_names_stored_verbatim(store: GraphStore):
    names = [
        "O'Brien \"the\" Smith",
        "Robert'); DROP TABLE entities;--",
        "MATCH (n) DETACH DELETE n",
        "Zoë Ångström 東京",
        "N" * 5000,
    ]
    store.replace_graph(TENANT, MEMORY, make_graph(names))

    assert sorted(e.name for e in store.get_entities(TENANT, MEMORY)) == sorted(names)
    assert [e.name for e in store.find_entities(TENANT, MEMORY, names[1])] == [names[1]]
    assert store.counts(TENANT, MEMORY)["entities"] == len(names)


def test_communities_replace_and_read(store: GraphStore):
    graph = make_graph(["A One", "B Two", "C Three"])
    store.replace_graph(TENANT, MEMORY, graph)
    top = make_community(graph.entities, level=1)
    finer = [make_community(graph.entities[:2], level=0, parent_id=top.id), make_community(graph.entities[2:], level=0, parent_id=top.id)]

    assert store.replace_communities(TENANT, MEMORY, [*finer, top]) is True
    assert store.replace_communities(TENANT, MEMORY, [*finer, top]) is False

    assert len(store.get_communities(TENANT, MEMORY, level=0)) == 2
    assert store.get_communities(TENANT, MEMORY, level=1) == [top]
    containing = store.get_communities(TENANT, MEMORY, level=0, entity_ids=[graph.entities[2].id])
    assert [c.member_ids for c in containing] == [[graph.entities[2].id]]
    assert store.count_entities_without_community(TENANT, MEMORY) == {0: 0, 1: 0}


def test_entities_without_community_counted(store: GraphStore):
    graph = make_graph(["A One", "B Two", "C Three"])
    store.replace_graph(TENANT, MEMORY, graph)

    assert store.count_entities_without_community(TENANT, MEMORY) == {0: 3}

    store.replace_communities(TENANT, MEMORY, [make_community(graph.entities[:1], level=0)])
    assert store.count_entities_without_community(TENANT, MEMORY) == {0: 2}


def test_tenant_isolation(store: GraphStore):
    chunks, vectors = store_with_vectors(store, ["Secret plan of acme.", "Other acme passage."])
    store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace", "Charles Babbage"]))

    other = "rival"
    assert store.get_batch_documents(other, MEMORY, "batch-1") == []
    assert store.get_documents(other, MEMORY, [chunks[0].document_id]) == []
    assert store.get_chunks(other, MEMORY) == []
    assert store.get_embeddings(other, MODEL, [chunks[0].text_hash]) == {}
    assert store.search_chunks(other, MEMORY, MODEL, vectors[0], top_k=5) == []
    assert store.get_entities(other, MEMORY) == []
    assert store.find_entities(other, MEMORY, "Ada") == []
    assert store.counts(other, MEMORY)["documents"] == 0
    assert store.get_chunks(TENANT, "another-memory") == []


def test_store_persists_after_reopen(backend: str, tmp_path: Path):
    first = BACKENDS[backend](tmp_path)
    chunks, vectors = store_with_vectors(first, ["Durable passage one.", "Durable passage two."])
    first.search_chunks(TENANT, MEMORY, MODEL, vectors[0], top_k=1)
    first.close()

    second = BACKENDS[backend](tmp_path)
    try:
        assert second.counts(TENANT, MEMORY)["chunks"] == 2
        assert second.search_chunks(TENANT, MEMORY, MODEL, vectors[1], top_k=1)[0].chunk.id == chunks[1].id
    finally:
        second.close()


def test_chunks_without_embedding_counted(store: GraphStore):
    document = make_document("Some text that becomes three chunks of twenty chars.")
    chunks = make_chunks(document)
    store.upsert_documents(TENANT, MEMORY, "batch-1", [document])
    store.upsert_chunks(TENANT, MEMORY, chunks)

    assert store.count_chunks_without_embedding(TENANT, MEMORY, MODEL) == len(chunks)

    store.upsert_embeddings(TENANT, MODEL, {chunks[0].text_hash: unit_vectors(1)[0]})
    assert store.count_chunks_without_embedding(TENANT, MEMORY, MODEL, [document.id]) == len(chunks) - 1


def test_replace_graph_rejects_stale_input(store: GraphStore):
    result = ExtractionResult(chunk_id="chk_a", mentions=[], relations=[])
    store.upsert_extractions(TENANT, MEMORY, "fast@1", [result])
    version = store.content_version(TENANT, MEMORY, "extractions:fast@1")

    store.upsert_extractions(TENANT, MEMORY, "fast@1", [ExtractionResult(chunk_id="chk_b", mentions=[], relations=[])])

    with pytest.raises(ConcurrentUpdateError):
        store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace"]), based_on=("extractions:fast@1", version))
    assert store.get_entities(TENANT, MEMORY) == []
    current = store.content_version(TENANT, MEMORY, "extractions:fast@1")
    assert store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace"]), based_on=("extractions:fast@1", current)) is True


def test_replace_communities_rejects_stale_graph(store: GraphStore):
    graph = make_graph(["A One", "B Two"])
    store.replace_graph(TENANT, MEMORY, graph)
    version = store.content_version(TENANT, MEMORY, "graph")
    store.replace_graph(TENANT, MEMORY, make_graph(["C Three", "D Four"]))

    with pytest.raises(ConcurrentUpdateError):
        store.replace_communities(TENANT, MEMORY, [make_community(graph.entities, level=0)], based_on=("graph", version))
    assert store.get_communities(TENANT, MEMORY) == []


def test_content_version_unwritten_is_zero(store: GraphStore):
    assert store.content_version(TENANT, MEMORY, "graph") == 0


def test_prepare_search_then_search(store: GraphStore):
    chunks, vectors = store_with_vectors(store, [f"Prepared passage {i}." for i in range(4)])

    store.prepare_search(TENANT, MEMORY, MODEL)

    assert store.search_chunks(TENANT, MEMORY, MODEL, vectors[2], top_k=1)[0].chunk.id == chunks[2].id


def test_listing_batches_extractors_models(store: GraphStore):
    chunks, _ = store_with_vectors(store, ["Listed passage one.", "Listed passage two."])
    store.upsert_documents(TENANT, MEMORY, "batch-0", [make_document("Earlier batch text.")])
    store.upsert_extractions(TENANT, MEMORY, "fast@1", [ExtractionResult(chunk_id=chunks[0].id, mentions=[], relations=[])])

    store.record_rejections(TENANT, MEMORY, "batch-2", [RejectedInput(source="/data/empty.txt", reason="empty file")])

    assert store.list_batches(TENANT, MEMORY) == ["batch-0", "batch-1", "batch-2"]
    assert store.list_extractors(TENANT, MEMORY) == ["fast@1"]
    assert store.list_embedding_models(TENANT) == [MODEL]
    assert store.list_batches("rival", MEMORY) == []
    assert store.list_embedding_models("rival") == []


def test_batch_namespaces_cross_tenants(store: GraphStore):
    batch_id = "kafka:contract.raw:0@0-2+1@5-5"
    text = "Streamed document text."
    store.upsert_documents(TENANT, MEMORY, batch_id, [make_document(text)])
    store.upsert_documents(TENANT, "other", batch_id, [make_document(text, memory="other")])
    store.upsert_documents("rival", MEMORY, batch_id, [make_document(text, tenant="rival")])
    store.upsert_documents(TENANT, MEMORY, "batch-unrelated", [make_document("Unrelated document text.")])

    assert store.list_batch_namespaces(batch_id) == [(TENANT, MEMORY), (TENANT, "other"), ("rival", MEMORY)]
    assert store.list_batch_namespaces("kafka:contract.raw:9@0-0") == []


def test_delete_documents_removes_dependents(store: GraphStore):
    kept, removed = make_document("Kept document text here."), make_document("Removed document text here.")
    store.upsert_documents(TENANT, MEMORY, "batch-1", [kept, removed])
    kept_chunks, removed_chunks = make_chunks(kept), make_chunks(removed)
    store.upsert_chunks(TENANT, MEMORY, kept_chunks + removed_chunks)
    results = [ExtractionResult(chunk_id=c.id, mentions=[], relations=[]) for c in kept_chunks + removed_chunks]
    store.upsert_extractions(TENANT, MEMORY, "fast@1", results)
    version = store.content_version(TENANT, MEMORY, "extractions:fast@1")

    assert store.delete_documents(TENANT, MEMORY, [removed.id, "doc_missing"]) == 1

    assert store.get_documents(TENANT, MEMORY, [kept.id, removed.id]) == [kept]
    assert [d.id for d in store.get_batch_documents(TENANT, MEMORY, "batch-1")] == [kept.id]
    assert {c.id for c in store.get_chunks(TENANT, MEMORY)} == {c.id for c in kept_chunks}
    assert [r.chunk_id for r in store.iter_extractions(TENANT, MEMORY, "fast@1")] == sorted(c.id for c in kept_chunks)
    assert store.content_version(TENANT, MEMORY, "extractions:fast@1") > version
    assert store.delete_documents(TENANT, MEMORY, [removed.id]) == 0


def test_delete_namespace_leaves_others(store: GraphStore):
    store_with_vectors(store, ["Namespace passage one.", "Namespace passage two."])
    store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace", "Charles Babbage"]))
    store.replace_communities(TENANT, MEMORY, [make_community(make_graph(["Ada Lovelace"]).entities, level=0)])
    other = make_document("Other memory text.", memory="other")
    store.upsert_documents(TENANT, "other", "batch-1", [other])
    version = store.graph_version(TENANT, MEMORY)

    store.delete_namespace(TENANT, MEMORY)

    counts = store.counts(TENANT, MEMORY)
    for kind in ("documents", "chunks", "entities", "relations", "mentions", "communities", "rejected_inputs", "batches"):
        assert counts[kind] == 0, kind
    assert store.get_documents(TENANT, "other", [other.id]) == [other]
    assert store.graph_version(TENANT, MEMORY) > version
    assert store.replace_graph(TENANT, MEMORY, make_graph(["Ada Lovelace", "Charles Babbage"])) is True


# LLM responses and extraction failures

LLM_EXTRACTOR = "llm@1:test-model:1"


def test_llm_responses_keep_first(store: GraphStore):
    assert store.upsert_llm_responses(TENANT, {"key-a": '{"entities": []}', "key-b": '{"summary": "Résumé \u2014 ok"}'}) == 2
    assert store.upsert_llm_responses(TENANT, {"key-a": '{"entities": ["changed"]}', "key-c": "{}"}) == 1

    responses = store.get_llm_responses(TENANT, ["key-a", "key-b", "key-c", "key-missing"])

    assert responses == {"key-a": '{"entities": []}', "key-b": '{"summary": "Résumé \u2014 ok"}', "key-c": "{}"}
    assert store.get_llm_responses(TENANT, []) == {}


def test_llm_responses_per_tenant(store: GraphStore):
    store.upsert_llm_responses(TENANT, {"shared-key": "acme answer"})
    store.upsert_llm_responses("rival", {"shared-key": "rival answer"})

    store.delete_namespace(TENANT, MEMORY)

    assert store.get_llm_responses(TENANT, ["shared-key"]) == {"shared-key": "acme answer"}
    assert store.get_llm_responses("rival", ["shared-key"]) == {"shared-key": "rival answer"}


def test_extraction_failures_replace_reason(store: GraphStore):
    failures = [ExtractionFailure(chunk_id="chk_b", reason="HTTP 500"), ExtractionFailure(chunk_id="chk_a", reason="request timed out")]
    store.record_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, failures)
    store.record_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, [ExtractionFailure(chunk_id="chk_b", reason="invalid output")])

    assert store.get_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR) == [
        ExtractionFailure(chunk_id="chk_a", reason="request timed out"),
        ExtractionFailure(chunk_id="chk_b", reason="invalid output"),
    ]
    assert store.get_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, ["chk_b", "chk_z"]) == [
        ExtractionFailure(chunk_id="chk_b", reason="invalid output")
    ]
    assert store.get_extraction_failures(TENANT, MEMORY, "fast@1") == []
    assert store.get_extraction_failures(TENANT, "other", LLM_EXTRACTOR) == []


def test_extraction_failures_cleared(store: GraphStore):
    failures = [ExtractionFailure(chunk_id=f"chk_{index}", reason="HTTP 429") for index in range(3)]
    store.record_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, failures)
    store.record_extraction_failures(TENANT, MEMORY, "llm@1:other-model:1", failures[:1])

    assert store.clear_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, ["chk_0", "chk_2", "chk_missing"]) == 2

    assert store.get_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR) == [failures[1]]
    assert store.get_extraction_failures(TENANT, MEMORY, "llm@1:other-model:1") == [failures[0]]
    assert store.clear_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, []) == 0


def test_extraction_failures_deleted_with_documents(store: GraphStore):
    kept, removed = make_document("Kept failing document."), make_document("Removed failing document.")
    store.upsert_documents(TENANT, MEMORY, "batch-1", [kept, removed])
    kept_chunks, removed_chunks = make_chunks(kept), make_chunks(removed)
    store.upsert_chunks(TENANT, MEMORY, kept_chunks + removed_chunks)
    failures = [ExtractionFailure(chunk_id=c.id, reason="HTTP 500") for c in kept_chunks + removed_chunks]
    store.record_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR, failures)

    store.delete_documents(TENANT, MEMORY, [removed.id])

    assert [f.chunk_id for f in store.get_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR)] == sorted(c.id for c in kept_chunks)

    store.delete_namespace(TENANT, MEMORY)

    assert store.get_extraction_failures(TENANT, MEMORY, LLM_EXTRACTOR) == []


# Merge records and exclusions of entity resolution


def make_merge_record(entity: Entity, first: str, second: str, rule: str = "surname") -> MergeRecord:
    return MergeRecord(
        id=ids.make_id("mrg", TENANT, MEMORY, rule, first, second),
        tenant=TENANT,
        memory=MEMORY,
        entity_id=entity.id,
        first=first,
        first_type=EntityType.PERSON,
        second=second,
        second_type=EntityType.PERSON,
        rule=rule,
        score=0.93,
        features={"cosine": 0.93, "jaro_winkler": 0.91},
    )


def make_exclusion(first: str, second: str, note: str = "") -> MergeExclusion:
    return MergeExclusion(id=ids.make_id("exc", TENANT, MEMORY, first, second), tenant=TENANT, memory=MEMORY, first=first, second=second, note=note)


def test_merge_records_replace_and_read(store: GraphStore):
    graph = make_graph(["Ada Lovelace", "Charles Babbage"])
    ada, charles = graph.entities
    records = [make_merge_record(ada, "Ada Lovelace", "Lovelace"), make_merge_record(charles, "Charles Babbage", "Babbage")]

    store.replace_merge_records(TENANT, MEMORY, records, settings="settings-1")

    assert store.get_merge_records(TENANT, MEMORY) == sorted(records, key=lambda r: r.id)
    assert store.get_merge_records(TENANT, MEMORY, [ada.id]) == [records[0]]
    assert store.get_merge_records(TENANT, MEMORY, ["ent_missing"]) == []
    assert store.get_merge_settings(TENANT, MEMORY) == "settings-1"


def test_merge_records_rewrite_is_noop(store: GraphStore):
    ada = make_graph(["Ada Lovelace"]).entities[0]
    records = [make_merge_record(ada, "Ada Lovelace", "Lovelace")]
    store.replace_merge_records(TENANT, MEMORY, records, settings="settings-1")
    version = store.graph_version(TENANT, MEMORY)

    store.replace_merge_records(TENANT, MEMORY, records, settings="settings-1")
    assert store.graph_version(TENANT, MEMORY) == version

    replacement = [make_merge_record(ada, "Ada Lovelace", "Countess of Lovelace", rule="title")]
    store.replace_merge_records(TENANT, MEMORY, replacement, settings="settings-2")
    assert store.get_merge_records(TENANT, MEMORY) == replacement
    assert store.get_merge_settings(TENANT, MEMORY) == "settings-2"
    assert store.graph_version(TENANT, MEMORY) > version


def test_merge_records_reject_stale_graph(store: GraphStore):
    graph = make_graph(["Ada Lovelace"])
    store.replace_graph(TENANT, MEMORY, graph)
    version = store.content_version(TENANT, MEMORY, "graph")
    store.replace_graph(TENANT, MEMORY, make_graph(["Grace Hopper"]))

    with pytest.raises(ConcurrentUpdateError):
        store.replace_merge_records(
            TENANT, MEMORY, [make_merge_record(graph.entities[0], "Ada Lovelace", "Lovelace")], "settings-1", based_on=("graph", version)
        )
    assert store.get_merge_records(TENANT, MEMORY) == []
    assert store.get_merge_settings(TENANT, MEMORY) is None


def test_merge_exclusions_round_trip(store: GraphStore):
    first, second = make_exclusion("John Smith", "J. Smith", note="two people"), make_exclusion("Acme", "Acme Group")
    before = store.content_version(TENANT, MEMORY, "merge_exclusions")

    assert store.add_merge_exclusions(TENANT, MEMORY, [first, second]) == 2
    added = store.content_version(TENANT, MEMORY, "merge_exclusions")
    assert added > before
    assert store.add_merge_exclusions(TENANT, MEMORY, [first]) == 0
    assert store.content_version(TENANT, MEMORY, "merge_exclusions") == added
    assert store.get_merge_exclusions(TENANT, MEMORY) == sorted([first, second], key=lambda e: e.id)

    assert store.delete_merge_exclusions(TENANT, MEMORY, [first.id, "exc_missing"]) == 1
    assert store.get_merge_exclusions(TENANT, MEMORY) == [second]
    assert store.content_version(TENANT, MEMORY, "merge_exclusions") > added
    assert store.get_merge_exclusions("rival", MEMORY) == []


def test_delete_namespace_clears_merges(store: GraphStore):
    ada = make_graph(["Ada Lovelace"]).entities[0]
    store.replace_merge_records(TENANT, MEMORY, [make_merge_record(ada, "Ada Lovelace", "Lovelace")], settings="settings-1")
    store.add_merge_exclusions(TENANT, MEMORY, [make_exclusion("Ada Lovelace", "Ada Byron")])

    store.delete_namespace(TENANT, MEMORY)

    assert store.get_merge_records(TENANT, MEMORY) == []
    assert store.get_merge_exclusions(TENANT, MEMORY) == []
    assert store.get_merge_settings(TENANT, MEMORY) is None
