"""Query modes on a real graph of MuSiQue paragraphs: result shape, multi-hop ranking, validation, caching and PPR."""

import json
from collections.abc import Iterator
from pathlib import Path

import igraph
import numpy as np
import pytest

from graphmem_core import pipeline
from graphmem_core.batches import register_batch
from graphmem_core.documents import SOURCE_METADATA_KEY
from graphmem_core.embeddings import model_key
from graphmem_core.errors import InvalidInputError
from graphmem_core.extraction import get_extractor
from graphmem_core.graph_ranking import CHUNK_SEED_SHARE, restart_distribution
from graphmem_core.ppr import DEFAULT_DAMPING, TOLERANCE, TransitionMatrix, personalized_pagerank
from graphmem_core.query import QueryEngine, QueryMode, QueryResult
from graphmem_core.query_graph import GraphCache
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from graphmem_dagster.cli import main as graphmem_main
from tests.conftest import CORPORA, require_corpus

TENANT = "default"
MEMORY = "default"
MAX_FILE_BYTES = 10_000_000

# A two-hop question whose second supporting paragraph shares its subject with the first, but not the
# words of the question, so vector search ranks it near the bottom of the question's 20 paragraphs.
QUESTION_ID = "2hop__161500_15014"

STEPS = {"embed", "search", "graph", "communities", "total"}


@pytest.fixture(scope="module")
def question() -> dict:
    """Return the MuSiQue question of `QUESTION_ID` with its 20 paragraphs."""
    path = require_corpus(CORPORA / "musique" / "questions.json")
    questions = {q["id"]: q for q in json.loads(path.read_text(encoding="utf-8"))}
    return questions[QUESTION_ID]


@pytest.fixture(scope="module")
def home(tmp_path_factory, question: dict, embedder) -> Iterator[tuple[Path, LibsqlGraphStore]]:
    """Yield the GRAPHMEM_HOME and the store of a graph built from the question's paragraphs, one JSON line each."""
    root = tmp_path_factory.mktemp("query-modes")
    inputs = root / "inputs"
    inputs.mkdir()
    lines = [
        json.dumps({"id": p["idx"], "title": p["title"], "text": f"{p['title']}\n{p['paragraph_text']}"}, ensure_ascii=False)
        for p in question["paragraphs"]
    ]
    (inputs / "paragraphs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    store = LibsqlGraphStore(root / "home" / "graph.db")
    manifest = register_batch([inputs], TENANT, MEMORY, root / "batches")
    extractor = get_extractor("fast")
    pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES)
    pipeline.embed_batch(store, embedder, TENANT, MEMORY, manifest.batch_id, overlap_tokens=32)
    pipeline.extract_batch(store, extractor, TENANT, MEMORY, manifest.batch_id)
    pipeline.resolve_graph(store, extractor, TENANT, MEMORY, pipeline.cached_name_encoder(store, embedder, TENANT), threshold=0.9)
    pipeline.build_communities(store, TENANT, MEMORY, seed=42)
    yield root / "home", store
    store.close()


@pytest.fixture(scope="module")
def store(home) -> LibsqlGraphStore:
    return home[1]


@pytest.fixture(scope="module")
def engine(store: LibsqlGraphStore, embedder) -> QueryEngine:
    return QueryEngine(store, embedder)


def paragraph_ranks(store: LibsqlGraphStore, result: QueryResult) -> list[int]:
    """Return the paragraph index (`idx`) of each distinct document among the ranked chunks, in rank order."""
    document_ids = sorted({hit.chunk.document_id for hit in result.chunks})
    index_of = {d.id: int(d.metadata[SOURCE_METADATA_KEY]["external_id"]) for d in store.get_documents(TENANT, MEMORY, document_ids)}
    ranks: dict[int, None] = {}
    for hit in result.chunks:
        ranks.setdefault(index_of[hit.chunk.document_id], None)
    return list(ranks)


def entities_of_paragraph(store: LibsqlGraphStore, paragraph: int) -> set[str]:
    """Return the ids of the entities that the chunks of paragraph `idx` mention."""
    chunks = store.get_chunks(TENANT, MEMORY)
    documents = {d.id: d for d in store.get_documents(TENANT, MEMORY, sorted({c.document_id for c in chunks}))}
    chunk_ids = [c.id for c in chunks if documents[c.document_id].metadata[SOURCE_METADATA_KEY]["external_id"] == str(paragraph)]
    return {link.entity_id for link in store.get_mention_links(TENANT, MEMORY, chunk_ids)}


@pytest.mark.parametrize("mode", list(QueryMode))
def test_mode_result_shape(engine: QueryEngine, store: LibsqlGraphStore, question: dict, mode: QueryMode):
    result = engine.query(TENANT, MEMORY, question["question"], top_k=5, hops=1, mode=mode)

    assert result.mode is mode
    assert result.cached is False
    assert len(result.chunks) == 5
    scores = [hit.score for hit in result.chunks]
    assert scores == sorted(scores, reverse=True)
    assert len({hit.chunk.id for hit in result.chunks}) == 5
    assert all(hit.document_title for hit in result.chunks)
    assert result.entities
    entity_ids = [entity.id for entity in result.entities]
    assert len(set(entity_ids)) == len(entity_ids)
    assert result.relations
    stored_chunk_ids = {chunk.id for chunk in store.get_chunks(TENANT, MEMORY)}
    for relation in result.relations:
        assert relation.source_id in entity_ids
        assert relation.target_id in entity_ids
        assert relation.provenance, f"relation {relation.id} lost its evidence"
        assert {evidence.chunk_id for evidence in relation.provenance} <= stored_chunk_ids
    assert result.communities
    assert set(result.timings_ms) == STEPS
    assert all(value >= 0.0 for value in result.timings_ms.values())


def test_graph_modes_surface_second_hop(engine: QueryEngine, store: LibsqlGraphStore, question: dict):
    steps = question["question_decomposition"]
    first = steps[0]["paragraph_support_idx"]
    second = steps[-1]["paragraph_support_idx"]
    # Every chunk of the 20 paragraphs, so that each paragraph gets a rank.
    top_k = len(store.get_chunks(TENANT, MEMORY))
    naive = paragraph_ranks(store, engine.query(TENANT, MEMORY, question["question"], top_k=top_k, mode=QueryMode.NAIVE))

    # The two supporting paragraphs are linked through entities that both mention.
    assert entities_of_paragraph(store, first) & entities_of_paragraph(store, second)
    assert naive.index(first) < 5
    assert naive.index(second) >= 5, f"vector search already ranks the second paragraph at {naive.index(second)}"
    for mode in (QueryMode.LOCAL, QueryMode.HYBRID):
        ranked = paragraph_ranks(store, engine.query(TENANT, MEMORY, question["question"], top_k=top_k, mode=mode))
        assert ranked.index(second) < 5, f"{mode.value} ranks the second paragraph at {ranked.index(second)}"
        assert ranked.index(first) < 5, f"{mode.value} ranks the first paragraph at {ranked.index(first)}"


@pytest.mark.parametrize(
    ("text", "top_k", "hops", "mode", "message"),
    [
        ("", 5, 1, "hybrid", "empty"),
        ("x" * 2001, 5, 1, "hybrid", "2001 characters, more than the limit 2000"),
        ("ok", 0, 1, "local", "top_k=0 is out of range: use 1 to 100"),
        ("ok", 101, 1, "global", "top_k=101 is out of range"),
        ("ok", 5, 4, "naive", "hops=4 is out of range: use 0 to 3"),
        ("ok", 5, 1, "fuzzy", "mode='fuzzy' is not a query mode: use one of naive, local, global, hybrid"),
    ],
)
def test_invalid_arguments_raise(engine: QueryEngine, text: str, top_k: int, hops: int, mode: str, message: str):
    with pytest.raises(InvalidInputError, match=message):
        engine.query(TENANT, MEMORY, text, top_k=top_k, hops=hops, mode=mode)


def test_mode_name_parsed(engine: QueryEngine, question: dict):
    result = engine.query(TENANT, MEMORY, question["question"], top_k=3, mode=" Local ")

    assert result.mode is QueryMode.LOCAL


def test_cache_keyed_by_mode(store: LibsqlGraphStore, embedder, question: dict):
    engine = QueryEngine(store, embedder)

    naive = engine.query(TENANT, MEMORY, question["question"], top_k=5, mode=QueryMode.NAIVE)
    local = engine.query(TENANT, MEMORY, question["question"], top_k=5, mode=QueryMode.LOCAL)
    local_again = engine.query(TENANT, MEMORY, question["question"], top_k=5, mode=QueryMode.LOCAL)
    naive_again = engine.query(TENANT, MEMORY, question["question"], top_k=5, mode=QueryMode.NAIVE)

    assert naive.cached is False
    assert local.cached is False
    assert local_again.cached is True
    assert local_again.mode is QueryMode.LOCAL
    assert local_again.chunks == local.chunks
    assert naive_again.cached is True
    assert naive_again.mode is QueryMode.NAIVE
    assert naive_again.chunks == naive.chunks


def test_empty_memory_returns_nothing(engine: QueryEngine):
    for mode in QueryMode:
        result = engine.query(TENANT, "empty", "anything at all", mode=mode)

        assert result.chunks == []
        assert result.entities == []
        assert set(result.timings_ms) == STEPS


def test_graph_cache_reloads_new_version(store: LibsqlGraphStore, embedder):
    loaded = []
    cache = GraphCache(max_graphs=1, on_load=loaded.append)
    model = model_key(embedder.model_name)
    version = store.graph_version(TENANT, MEMORY)

    first = cache.get(store, TENANT, MEMORY, model, version, embedder.encode)
    again = cache.get(store, TENANT, MEMORY, model, version, embedder.encode)
    newer = cache.get(store, TENANT, MEMORY, model, version + 1, embedder.encode)
    other = cache.get(store, TENANT, "empty", model, 0, embedder.encode)

    assert again is first
    assert newer is not first
    assert newer.version == version + 1
    assert first.entity_count > 0
    assert first.chunk_count > 0
    assert first.graph.vcount() == first.entity_count + first.chunk_count
    assert first.name_vectors.shape == (first.entity_count, embedder.dimension)
    assert other.entity_count == 0
    assert len(cache) == 1
    assert loaded == [first, newer, other]


def test_query_command_mode(home, monkeypatch, capsys, question: dict):
    folder, _ = home
    monkeypatch.setenv("GRAPHMEM_HOME", str(folder))
    for variable, value in {"GRAPHMEM_STORE": "libsql", "GRAPHMEM_CACHE": "memory", "GRAPHMEM_TENANT": TENANT, "GRAPHMEM_MEMORY": MEMORY}.items():
        monkeypatch.setenv(variable, value)

    exit_code = graphmem_main(["query", question["question"], "--mode", "local", "--top-k", "3", "--json"])
    printed = json.loads(capsys.readouterr().out)
    rejected = graphmem_main(["query", question["question"], "--mode", "fuzzy"])
    message = capsys.readouterr().err

    assert exit_code == 0
    assert printed["mode"] == "local"
    assert len(printed["chunks"]) == 3
    assert rejected == 2
    assert "mode='fuzzy' is not a query mode" in message


def two_components() -> igraph.Graph:
    """A weighted path 0-1-2 and, apart from it, the edge 3-4."""
    graph = igraph.Graph(n=5, edges=[(0, 1), (1, 2), (3, 4)], directed=False)
    graph.es["weight"] = [1.0, 1.0, 1.0]
    return graph


def test_ppr_seed_gets_mass():
    mass = personalized_pagerank(two_components(), {0: 1.0})

    assert mass.sum() == pytest.approx(1.0)
    # The walk restarts at the seed with probability 1 - damping at every step.
    assert mass[0] >= 1.0 - DEFAULT_DAMPING
    assert mass[0] > mass[2] > 0.0


def test_ppr_disconnected_part_gets_none():
    mass = personalized_pagerank(two_components(), {0: 1.0})

    assert mass[3] == 0.0
    assert mass[4] == 0.0


def test_ppr_weights_steer_mass():
    star = igraph.Graph(n=3, edges=[(0, 1), (0, 2)], directed=False)
    star.es["weight"] = [5.0, 1.0]

    mass = personalized_pagerank(star, {0: 1.0})

    assert mass[1] > mass[2]


def test_ppr_without_seed_mass_zero():
    assert not personalized_pagerank(two_components(), {}).any()
    assert not personalized_pagerank(two_components(), {2: 0.0}).any()


@pytest.mark.parametrize(
    ("seeds", "damping", "message"),
    [({7: 1.0}, 0.85, "seed vertex 7 is not in the graph of 5 vertices"), ({0: -1.0}, 0.85, "weight -1.0"), ({0: 1.0}, 1.0, "damping=1.0")],
)
def test_ppr_rejects_invalid_input(seeds: dict[int, float], damping: float, message: str):
    with pytest.raises(InvalidInputError, match=message):
        personalized_pagerank(two_components(), seeds, damping)


def test_restart_shares_between_groups():
    both = restart_distribution({0: 2.0, 1: 2.0}, {10: 1.0, 11: 3.0})
    chunks_only = restart_distribution({}, {10: 1.0, 11: 3.0})

    assert sum(both.values()) == pytest.approx(1.0)
    assert both[10] + both[11] == pytest.approx(CHUNK_SEED_SHARE)
    assert both[11] == pytest.approx(3 * both[10])
    assert chunks_only == pytest.approx({10: 0.25, 11: 0.75})
    assert restart_distribution({}, {}) == {}
    assert np.isclose(sum(restart_distribution({0: 1.0}, {}).values()), 1.0)


def test_ppr_power_iteration_matches_igraph():
    rng = np.random.default_rng(3)
    edges = [(int(a), int(b)) for a, b in rng.integers(0, 300, size=(900, 2)) if a != b]
    graph = igraph.Graph(n=301, edges=edges)  # vertex 300 has no edges
    graph.es["weight"] = rng.uniform(0.5, 3.0, graph.ecount()).tolist()
    seeds = {1: 1.0, 17: 0.5, 300: 2.0}
    reset = np.zeros(301)
    for vertex, weight in seeds.items():
        reset[vertex] = weight

    expected = graph.personalized_pagerank(directed=False, damping=DEFAULT_DAMPING, reset=(reset / reset.sum()).tolist(), weights="weight")
    transition = TransitionMatrix(graph)
    actual = personalized_pagerank(graph, seeds, transition=transition, tolerance=1e-12)
    default = personalized_pagerank(graph, seeds, transition=transition)

    np.testing.assert_allclose(actual, expected, atol=1e-9)
    assert actual.sum() == pytest.approx(1.0)
    # Stopping at the default tolerance leaves an L1 error of at most tolerance x damping / (1 - damping).
    assert np.abs(default - expected).sum() <= TOLERANCE * DEFAULT_DAMPING / (1 - DEFAULT_DAMPING)


def test_ppr_transition_of_other_graph_rejected():
    small, large = igraph.Graph(n=3, edges=[(0, 1)]), igraph.Graph(n=5, edges=[(0, 1)])

    with pytest.raises(InvalidInputError, match="transition matrix has 3 vertices, the graph 5"):
        personalized_pagerank(large, {0: 1.0}, transition=TransitionMatrix(small))


def test_graph_reads_match_store(engine: QueryEngine, store: LibsqlGraphStore):
    model = model_key(engine.embedder.model_name)
    graph = engine.graphs.get(store, TENANT, MEMORY, model, store.graph_version(TENANT, MEMORY), engine.embedder.encode)
    entity_ids = [entity.id for entity in graph.entities[:: max(1, graph.entity_count // 15)]]

    assert graph.in_memory
    for hops in (0, 1, 2):
        expected = store.neighbourhood(TENANT, MEMORY, entity_ids, hops=hops)
        assert graph.neighbourhood(entity_ids, hops=hops) == expected
    expected_communities = store.get_communities(TENANT, MEMORY, level=0, entity_ids=entity_ids)
    assert sorted(c.id for c in graph.communities_of(entity_ids, level=0)) == sorted(c.id for c in expected_communities)


def test_graph_search_matches_store(engine: QueryEngine, store: LibsqlGraphStore, question: dict):
    model = model_key(engine.embedder.model_name)
    graph = engine.graphs.get(store, TENANT, MEMORY, model, store.graph_version(TENANT, MEMORY), engine.embedder.encode)
    vector = engine.embedder.encode([question["question"]])[0]

    expected = store.search_chunks(TENANT, MEMORY, model, vector, 10)
    found = graph.search_chunks(vector, 10)

    assert [graph.chunk_ids[row] for row, _ in found] == [hit.chunk.id for hit in expected]
    assert [score for _, score in found] == pytest.approx([hit.score for hit in expected], abs=1e-5)


class CountingEmbedder:
    """The shared embedder with a count of its encode calls, to check which queries encode."""

    def __init__(self, embedder) -> None:
        self.inner = embedder
        self.model_name = embedder.model_name
        self.dimension = embedder.dimension
        self.calls = 0

    def encode(self, texts, show_progress: bool = False):
        self.calls += 1
        return self.inner.encode(texts, show_progress)


@pytest.mark.parametrize("mode", ["naive", "hybrid"])
def test_texts_to_encode_then_query(store: LibsqlGraphStore, embedder, question: dict, mode: str):
    counting = CountingEmbedder(embedder)
    engine = QueryEngine(store, counting)
    reference = QueryEngine(store, embedder).query(TENANT, MEMORY, question["question"], mode=mode)
    engine.prepare(TENANT, MEMORY)
    counting.calls = 0

    texts = engine.texts_to_encode(TENANT, MEMORY, question["question"], mode=mode)
    vectors = dict(zip(texts, embedder.encode(texts), strict=True))
    result = engine.query(TENANT, MEMORY, question["question"], mode=mode, vectors=vectors)

    assert texts[0] == question["question"]
    assert counting.calls == 0
    assert [hit.chunk.id for hit in result.chunks] == [hit.chunk.id for hit in reference.chunks]
    assert engine.texts_to_encode(TENANT, MEMORY, question["question"], mode=mode) == []


def test_cached_query_reads_cache_only(store: LibsqlGraphStore, embedder, question: dict):
    engine = QueryEngine(store, embedder)

    assert engine.cached_query(TENANT, MEMORY, question["question"], top_k=3) is None
    computed = engine.query(TENANT, MEMORY, question["question"], top_k=3)
    cached = engine.cached_query(TENANT, MEMORY, question["question"], top_k=3)

    assert cached is not None
    assert cached.cached
    assert cached.chunks == computed.chunks
    assert set(cached.timings_ms) == {"cache", "total"}
    with pytest.raises(InvalidInputError, match="top_k=0"):
        engine.cached_query(TENANT, MEMORY, question["question"], top_k=0)
