"""Tests of the in-memory vector index: exact and HNSW search, persistence and input validation."""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from graphmem_core.errors import InvalidInputError
import graphmem_core.vector_index as vector_index
from graphmem_core.vector_index import (
    EXACT_SEARCH_MAX_VECTORS,
    HNSW_EXPANSION_LADDER,
    HNSW_NAME,
    IDS_NAME,
    MANIFEST_NAME,
    VECTORS_NAME,
    VectorIndex,
)

# all-MiniLM-L6-v2 produces 384-dimension vectors, the size the index is tuned for.
DIMENSION = 384
RECALL_TARGET = 0.95


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def random_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).standard_normal((count, dimension)))


def clustered_vectors(count: int, dimension: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `count` unit vectors around `clusters` random centres, plus 50 queries from the same clusters."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.standard_normal((clusters, dimension)))

    def sample(size: int) -> np.ndarray:
        labels = rng.integers(0, clusters, size)
        return unit_rows(centres[labels] + 0.05 * rng.standard_normal((size, dimension)))

    return sample(count), sample(50)


def make_ids(count: int) -> list[str]:
    return [f"chk_{position:06d}" for position in range(count)]


def assert_same_hits(actual: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]]) -> None:
    """Compare ids exactly and scores to float32 rounding: a batched matrix product rounds differently."""
    assert [[item for item, _ in hits] for hits in actual] == [[item for item, _ in hits] for hits in expected]
    for actual_hits, expected_hits in zip(actual, expected):
        assert np.allclose([score for _, score in actual_hits], [score for _, score in expected_hits], atol=1e-6)


def brute_force(ids: list[str], vectors: np.ndarray, query: np.ndarray, top_k: int) -> list[tuple[str, float]]:
    """Rank every vector by cosine similarity, ties by id: the reference result."""
    scores = unit_rows(vectors) @ (query / np.linalg.norm(query))
    ranked = sorted(zip(ids, scores.tolist()), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:top_k]


def recall_at_k(index: VectorIndex, ids: list[str], vectors: np.ndarray, queries: np.ndarray, top_k: int) -> float:
    hits = 0
    for query in queries:
        expected = {item for item, _ in brute_force(ids, vectors, query, top_k)}
        found = {item for item, _ in index.search(query, top_k)}
        hits += len(expected & found)
    return hits / (len(queries) * top_k)


@pytest.fixture(scope="module")
def small_set() -> tuple[list[str], np.ndarray]:
    return make_ids(3000), random_vectors(3000, 32, seed=1)


@pytest.fixture(scope="module")
def hnsw_clustered() -> tuple[VectorIndex, list[str], np.ndarray, np.ndarray]:
    vectors, queries = clustered_vectors(5000, DIMENSION, clusters=50, seed=2)
    ids = make_ids(len(vectors))
    return VectorIndex.build(ids, vectors, kind="hnsw"), ids, vectors, queries


# --------------------------------------------------------------------------------------------------
# Exact search


def test_exact_matches_brute_force(small_set: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = small_set
    index = VectorIndex.build(ids, vectors)
    assert index.kind == "exact"

    for query in random_vectors(20, 32, seed=3):
        hits = index.search(query, 10)
        expected = brute_force(ids, vectors, query, 10)
        assert [item for item, _ in hits] == [item for item, _ in expected]
        assert np.allclose([score for _, score in hits], [score for _, score in expected], atol=1e-5)


def test_exact_search_many_matches_search(small_set: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = small_set
    index = VectorIndex.build(ids, vectors)
    queries = random_vectors(15, 32, seed=4)

    assert_same_hits(index.search_many(queries, 7), [index.search(query, 7) for query in queries])


def test_exact_ties_sorted_by_id() -> None:
    shared = np.ones(4, dtype=np.float32)
    other = np.array([1.0, -1.0, 0.0, 0.0], dtype=np.float32)
    ids = ["d", "b", "e", "a", "c", "z"]
    vectors = np.stack([shared, shared, other, shared, shared, other])
    index = VectorIndex.build(ids, vectors)

    assert [item for item, _ in index.search(shared, 2)] == ["a", "b"]
    assert [item for item, _ in index.search(shared, 6)] == ["a", "b", "c", "d", "e", "z"]


def test_scores_are_cosine_for_unnormalised_input() -> None:
    vectors = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, -2.0]], dtype=np.float32)
    index = VectorIndex.build(["x", "diagonal", "down"], vectors)

    hits = dict(index.search(np.array([5.0, 0.0]), 3))

    assert hits["x"] == pytest.approx(1.0)
    assert hits["diagonal"] == pytest.approx(np.sqrt(0.5))
    assert hits["down"] == pytest.approx(0.0, abs=1e-7)


def test_kind_chosen_by_size() -> None:
    small = VectorIndex.build(make_ids(10), random_vectors(10, 8, seed=5))
    large = VectorIndex.build(make_ids(EXACT_SEARCH_MAX_VECTORS + 1), random_vectors(EXACT_SEARCH_MAX_VECTORS + 1, 8, seed=5))

    assert small.kind == "exact"
    assert large.kind == "hnsw"


# --------------------------------------------------------------------------------------------------
# HNSW search


def test_hnsw_recall_on_clustered_vectors(hnsw_clustered: tuple[VectorIndex, list[str], np.ndarray, np.ndarray]) -> None:
    index, ids, vectors, queries = hnsw_clustered
    assert index.kind == "hnsw"

    assert recall_at_k(index, ids, vectors, queries, 10) >= RECALL_TARGET


def test_hnsw_recall_on_random_vectors() -> None:
    # Uniform random vectors have no close neighbours, the hardest case for the graph at this size.
    ids = make_ids(5000)
    vectors = random_vectors(5000, DIMENSION, seed=6)
    index = VectorIndex.build(ids, vectors, kind="hnsw")

    assert recall_at_k(index, ids, vectors, random_vectors(50, DIMENSION, seed=7), 10) >= RECALL_TARGET


def test_hnsw_calibration_reported(hnsw_clustered: tuple[VectorIndex, list[str], np.ndarray, np.ndarray]) -> None:
    index = hnsw_clustered[0]
    exact = VectorIndex.build(make_ids(5), random_vectors(5, 8, seed=18))

    assert index.expansion_search in HNSW_EXPANSION_LADDER
    assert index.estimated_recall is not None
    assert index.estimated_recall >= vector_index.HNSW_TARGET_RECALL
    assert exact.expansion_search is None
    assert exact.estimated_recall is None


def test_hnsw_missing_target_falls_back(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A target above 1 cannot be reached, and a threshold of 10 makes the automatic choice HNSW.
    monkeypatch.setattr(vector_index, "HNSW_TARGET_RECALL", 1.01)
    monkeypatch.setattr(vector_index, "EXACT_SEARCH_MAX_VECTORS", 10)
    ids = make_ids(200)
    vectors = random_vectors(200, 16, seed=19)

    with caplog.at_level(logging.WARNING, logger="graphmem_core.vector_index"):
        automatic = VectorIndex.build(ids, vectors)
        forced = VectorIndex.build(ids, vectors, kind="hnsw")

    assert automatic.kind == "exact"
    assert forced.kind == "hnsw"
    assert forced.expansion_search == HNSW_EXPANSION_LADDER[-1]
    assert "serving them by exact search instead" in caplog.text
    assert "searches will miss neighbours" in caplog.text


def test_hnsw_scores_match_exact(hnsw_clustered: tuple[VectorIndex, list[str], np.ndarray, np.ndarray]) -> None:
    index, ids, vectors, queries = hnsw_clustered
    exact = dict(brute_force(ids, vectors, queries[0], len(ids)))

    hits = index.search(queries[0], 10)

    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    for item, score in hits:
        assert score == pytest.approx(exact[item], abs=1e-5)


def test_hnsw_concurrent_searches_agree(hnsw_clustered: tuple[VectorIndex, list[str], np.ndarray, np.ndarray]) -> None:
    index, _, _, queries = hnsw_clustered
    expected = [index.search(query, 10) for query in queries]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda query: index.search(query, 10), list(queries) * 4))

    assert results == expected * 4


def test_hnsw_search_many_matches_search(hnsw_clustered: tuple[VectorIndex, list[str], np.ndarray, np.ndarray]) -> None:
    index, _, _, queries = hnsw_clustered

    assert_same_hits(index.search_many(queries[:10], 5), [index.search(query, 5) for query in queries[:10]])


# --------------------------------------------------------------------------------------------------
# Sizes and edge cases


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_top_k_above_size_returns_all(kind: str) -> None:
    ids = make_ids(40)
    vectors = random_vectors(40, 16, seed=8)
    index = VectorIndex.build(ids, vectors, kind=kind)
    query = random_vectors(1, 16, seed=9)[0]

    hits = index.search(query, 100)

    assert [item for item, _ in hits] == [item for item, _ in brute_force(ids, vectors, query, 100)]
    assert len(index.search_many(np.stack([query, query]), 100)[1]) == 40


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_empty_index_returns_no_hits(kind: str, tmp_path: Path) -> None:
    index = VectorIndex.build([], np.empty((0, 16), dtype=np.float32), kind=kind)

    assert len(index) == 0
    assert index.dimension == 16
    assert index.search(np.ones(16), 5) == []
    assert index.search_many(np.ones((3, 16)), 5) == [[], [], []]

    index.save(tmp_path, "empty")
    loaded = VectorIndex.load(tmp_path, "empty")
    assert loaded is not None
    assert len(loaded) == 0
    assert loaded.search(np.ones(16), 5) == []


# --------------------------------------------------------------------------------------------------
# Persistence


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    ids = make_ids(2000)
    vectors = random_vectors(2000, 64, seed=10)
    queries = random_vectors(10, 64, seed=11)
    index = VectorIndex.build(ids, vectors, kind=kind)

    index.save(tmp_path, "stamp-1")
    loaded = VectorIndex.load(tmp_path, "stamp-1")

    assert loaded is not None
    assert loaded.kind == kind
    assert len(loaded) == 2000
    assert loaded.dimension == 64
    assert loaded.search_many(queries, 10) == index.search_many(queries, 10)
    assert loaded.expansion_search == index.expansion_search
    assert loaded.estimated_recall == index.estimated_recall
    assert not list(tmp_path.glob("*.tmp"))


def test_save_replaces_other_kind(tmp_path: Path) -> None:
    ids = make_ids(100)
    vectors = random_vectors(100, 8, seed=12)
    VectorIndex.build(ids, vectors, kind="hnsw").save(tmp_path, "first")

    VectorIndex.build(ids, vectors, kind="exact").save(tmp_path, "second")

    assert not (tmp_path / HNSW_NAME).exists()
    loaded = VectorIndex.load(tmp_path, "second")
    assert loaded is not None
    assert loaded.kind == "exact"


def test_load_stale_stamp_returns_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    VectorIndex.build(make_ids(50), random_vectors(50, 8, seed=13)).save(tmp_path, "old")

    with caplog.at_level(logging.INFO, logger="graphmem_core.vector_index"):
        assert VectorIndex.load(tmp_path, "new") is None

    assert "stale" in caplog.text


def test_load_missing_folder_returns_none(tmp_path: Path) -> None:
    assert VectorIndex.load(tmp_path / "absent", "any") is None


def flip_byte(path: Path, offset_from_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("kind", "damage"),
    [
        ("exact", lambda folder: flip_byte(folder / VECTORS_NAME, 3)),
        ("exact", lambda folder: (folder / IDS_NAME).write_text('["chk_000000"]')),
        ("exact", lambda folder: (folder / MANIFEST_NAME).write_text("{not json")),
        ("exact", lambda folder: (folder / VECTORS_NAME).unlink()),
        ("hnsw", lambda folder: flip_byte(folder / HNSW_NAME, 100)),
        ("hnsw", lambda folder: (folder / HNSW_NAME).write_bytes((folder / HNSW_NAME).read_bytes()[:1000])),
    ],
    ids=["vectors-bit-flip", "ids-rewritten", "manifest-not-json", "vectors-missing", "graph-bit-flip", "graph-truncated"],
)
def test_load_corrupt_file_returns_none(kind: str, damage: Callable[[Path], object], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    VectorIndex.build(make_ids(200), random_vectors(200, 16, seed=14), kind=kind).save(tmp_path, "stamp")
    damage(tmp_path)

    with caplog.at_level(logging.WARNING, logger="graphmem_core.vector_index"):
        assert VectorIndex.load(tmp_path, "stamp") is None

    assert "corrupt" in caplog.text


# --------------------------------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize(
    ("ids", "vectors", "message"),
    [
        (["a", "b"], np.ones(4), "expected a 2-D array"),
        (["a", "b"], np.ones((3, 4)), "3 rows but 2 ids"),
        (["a", "b"], np.ones((2, 0)), "dimension must be at least 1"),
        (["a", "b"], np.array([[1.0, np.nan], [1.0, 0.0]]), "row 0 contains NaN or infinity"),
        (["a", "b"], np.array([[1.0, 0.0], [0.0, 0.0]]), "row 1 is all zeros"),
        (["a", "a"], np.ones((2, 4)), "'a' occurs more than once"),
        (["a", 7], np.ones((2, 4)), "position 1 is int"),
        (["a", "b"], np.array([["x", "y"], ["z", "w"]]), "pass real numbers"),
    ],
    ids=["one-dimensional", "row-count", "zero-dimension", "nan", "zero-row", "duplicate-id", "non-string-id", "strings"],
)
def test_build_rejects_bad_input(ids: list, vectors: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        VectorIndex.build(ids, vectors)


def test_build_rejects_unknown_kind() -> None:
    with pytest.raises(InvalidInputError, match="index kind 'ivf' is invalid"):
        VectorIndex.build(["a"], np.ones((1, 4)), kind="ivf")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_query_dimension_mismatch_raises(kind: str) -> None:
    index = VectorIndex.build(make_ids(20), random_vectors(20, 16, seed=15), kind=kind)

    with pytest.raises(InvalidInputError, match="dimension 12 but the index has dimension 16"):
        index.search(np.ones(12), 3)
    with pytest.raises(InvalidInputError, match="dimension 12 but the index has dimension 16"):
        index.search_many(np.ones((2, 12)), 3)


def test_query_shape_and_top_k_validated() -> None:
    index = VectorIndex.build(make_ids(20), random_vectors(20, 16, seed=16))

    with pytest.raises(InvalidInputError, match="expected a 1-D vector"):
        index.search(np.ones((2, 16)), 3)
    with pytest.raises(InvalidInputError, match="expected a 2-D array"):
        index.search_many(np.ones(16), 3)
    with pytest.raises(InvalidInputError, match="top_k 0 is invalid"):
        index.search(np.ones(16), 0)
    with pytest.raises(InvalidInputError, match="contains NaN or infinity"):
        index.search(np.full(16, np.inf), 3)
    with pytest.raises(InvalidInputError, match="all zeros"):
        index.search(np.zeros(16), 3)


def test_concurrent_exact_searches_agree(small_set: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = small_set
    index = VectorIndex.build(ids, vectors)
    queries = list(random_vectors(40, 32, seed=17))
    expected = [index.search(query, 5) for query in queries]
    barrier = threading.Barrier(4)

    def run(worker: int) -> list[list[tuple[str, float]]]:
        barrier.wait()
        return [index.search(query, 5) for query in queries]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(4)))

    assert results == [expected] * 4
