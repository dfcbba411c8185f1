"""In-memory nearest-neighbour index over chunk vectors, saved to and loaded from a folder.

The libSQL file stays the durable copy of every vector. This index serves the searches: an exact
matrix product for small collections and an HNSW graph (usearch) for large ones, whose search
expansion is calibrated after each build to reach `HNSW_TARGET_RECALL`. Scores are cosine
similarities. Build and query vectors are normalised here, so callers may pass any non-zero vectors.

Thread safety: `search` and `search_many` may be called from several threads at once. The exact kind
only reads immutable numpy arrays. The HNSW kind serialises its searches with a lock. The reason is in
the usearch source (v2.21.0, python/lib.cpp and include/usearch/index_dense.hpp): a search reserves
memory and passes its worker number (0 for a single-threaded call) to the C++ index as a scratch-memory
slot. Numbered slots are not locked, so two concurrent calls could share scratch memory. `save` takes
the same lock. Nothing mutates an index after `build` or `load`.
"""

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from usearch.index import Index, Matches

from graphmem_core.errors import InvalidInputError

logger = logging.getLogger(__name__)

IndexKind = Literal["exact", "hnsw"]
INDEX_KINDS: tuple[IndexKind, ...] = ("exact", "hnsw")

# Collections up to this size are searched by an exact matrix product, which needs no build. Timings on
# a 2-core AMD EPYC VM (numpy 2.4.6, 384 dimensions, float32, one query at a time, top 10) follow.
# 20,000 vectors took 0.6 ms p50 and 1.0 ms p99 on an idle machine, and 1.4 ms and 2.0 ms under load.
# 30,000 took 1.5 ms p50 and 2.2 ms p99, and 100,000 took 7.2 ms p50. Above this size HNSW returns in
# about 0.5 ms on clustered data.
EXACT_SEARCH_MAX_VECTORS = 20_000

# HNSW parameters, measured with benchmarks/vector_search.py and sweeps of usearch 2.26.6 on the same VM.
# At 100,000 clustered vectors, connectivity 16 with search expansion 64 reached recall@10 1.000 at
# 0.4 ms p50, while connectivity 32 with expansion 192 needed 3.3 ms. On 34,377 all-MiniLM-L6-v2 sentence
# embeddings, connectivity 16 reached recall@10 0.973 at expansion 64 and 0.990 at 128.
HNSW_CONNECTIVITY = 16
HNSW_EXPANSION_ADD = 128

# After each build the search expansion is calibrated: these values are tried in order and the first
# whose estimated recall@10 reaches HNSW_TARGET_RECALL is kept. Data without close neighbours needs a
# larger expansion: 5,000 uniform random vectors needed 384 for recall@10 0.975.
HNSW_EXPANSION_LADDER = (64, 96, 128, 192, 256, 384, 512)
# The goal is recall@10 >= 0.95 for real queries. The target keeps a margin because the estimate was
# up to 0.01 above the recall of independent queries (real sentence embeddings and random vectors).
HNSW_TARGET_RECALL = 0.97
CALIBRATION_QUERIES = 200
CALIBRATION_TOP_K = 10
# Calibration queries are sampled stored vectors mixed with random noise to this cosine similarity, so
# that they lie near the data like new queries. Held-out all-MiniLM-L6-v2 sentence queries had a mean
# top-1 similarity of 0.67. Unchanged stored vectors overestimated their recall by about 0.02.
CALIBRATION_QUERY_SIMILARITY = 0.7
# Fixed so that every build samples the same vectors and noise.
CALIBRATION_SEED = 20240601
# NOTE: when expansion 512 still misses the target, an automatically chosen kind falls back to exact
# search. 100,000 uniform random vectors reached recall@10 0.25 at expansion 256 and 0.40 at 512, and
# needed 4096 for 0.93 at 33 ms, slower than the 7 ms exact scan. The cut-off at 512 is an estimate of
# where HNSW stops being faster than the exact scan at 100,000 vectors, not a break-even for every size.

# float32 storage keeps scores as precise as the exact kind. float16 would halve the memory (152 MB
# instead of 286 MB for 100,000 vectors at connectivity 16) but keeps only 11 significant bits per component.
HNSW_DTYPE = "f32"
# usearch's "ip" distance is 1 - inner product, which equals 1 - cosine on unit-norm vectors.
HNSW_METRIC = "ip"

FORMAT_VERSION = 1
MANIFEST_NAME = "vector_index.json"
IDS_NAME = "vector_index.ids.json"
VECTORS_NAME = "vector_index.vectors.npy"
HNSW_NAME = "vector_index.usearch"
DATA_NAMES: dict[IndexKind, str] = {"exact": VECTORS_NAME, "hnsw": HNSW_NAME}

# Exact batch search multiplies the queries by the whole matrix in blocks of at most this many scores,
# so that 4 bytes per score bound its temporary memory to about 64 MB.
_EXACT_BATCH_MAX_SCORES = 16_000_000

_HASH_CHUNK_BYTES = 1 << 20


class VectorIndex:
    """Cosine-similarity search over a fixed set of vectors, each keyed by a string id.

    Create one with `build` or `load`. The index is immutable: rebuild it when the vectors change.
    """

    def __init__(
        self,
        ids: Sequence[str],
        dimension: int,
        kind: IndexKind,
        matrix: np.ndarray | None = None,
        graph: Index | None = None,
        estimated_recall: float | None = None,
    ) -> None:
        """Wrap already validated parts; call `build` or `load` instead of this constructor."""
        self._ids: list[str] = list(ids)
        self._dimension = dimension
        self._kind: IndexKind = kind
        self._matrix = matrix
        self._graph = graph
        self._estimated_recall = estimated_recall
        self._graph_lock = threading.Lock()

        # Rank of each id in sorted order, so that ties in score sort by id with numpy alone.
        order = np.argsort(np.array(self._ids, dtype=object), kind="stable")
        self._id_rank = np.empty(len(self._ids), dtype=np.int64)
        self._id_rank[order] = np.arange(len(self._ids), dtype=np.int64)

    # ----------------------------------------------------------------------------------------------
    # Construction

    @classmethod
    def build(cls, ids: Sequence[str], vectors: np.ndarray, kind: IndexKind | None = None) -> "VectorIndex":
        """Build an index of `vectors` (one row per id).

        `kind` None picks "exact" up to `EXACT_SEARCH_MAX_VECTORS` rows and "hnsw" above, falling back
        to "exact" when the calibrated HNSW graph misses `HNSW_TARGET_RECALL`. A `kind` given explicitly
        is always used. Raises `InvalidInputError` for a bad shape, non-finite or zero rows, and
        non-string or duplicate ids.
        """
        started = time.perf_counter()
        if kind is not None and kind not in INDEX_KINDS:
            raise InvalidInputError(f"index kind {kind!r} is invalid: use one of {list(INDEX_KINDS)} or None to choose by size")
        id_list = _validate_ids(ids)
        matrix = _validate_build_vectors(vectors, len(id_list))
        chosen: IndexKind
        if kind is not None:
            chosen = kind
        elif len(id_list) <= EXACT_SEARCH_MAX_VECTORS:
            chosen = "exact"
        else:
            chosen = "hnsw"

        if chosen == "exact":
            index = cls(id_list, matrix.shape[1], "exact", matrix=matrix)
        else:
            index = cls._build_hnsw(id_list, matrix, fall_back_to_exact=kind is None)
        logger.info(
            "Built %s vector index of %d vectors (dimension %d) in %.2f s",
            index.kind,
            len(id_list),
            matrix.shape[1],
            time.perf_counter() - started,
        )
        return index

    @classmethod
    def _build_hnsw(cls, ids: list[str], matrix: np.ndarray, fall_back_to_exact: bool) -> "VectorIndex":
        """Build and calibrate an HNSW graph, or return an exact index when allowed and the graph misses the target."""
        graph = _build_graph(matrix)
        expansion, recall = _calibrate_expansion(graph, matrix)
        graph.expansion_search = expansion
        if recall >= HNSW_TARGET_RECALL:
            logger.info("Calibrated HNSW search expansion %d: estimated recall@%d %.3f", expansion, CALIBRATION_TOP_K, recall)
            return cls(ids, matrix.shape[1], "hnsw", graph=graph, estimated_recall=recall)

        if fall_back_to_exact:
            logger.warning(
                "HNSW graph of %d vectors reached only estimated recall@%d %.3f at search expansion %d (target %.2f); "
                "serving them by exact search instead",
                len(ids),
                CALIBRATION_TOP_K,
                recall,
                expansion,
                HNSW_TARGET_RECALL,
            )
            return cls(ids, matrix.shape[1], "exact", matrix=matrix)

        logger.warning(
            "HNSW graph of %d vectors reached only estimated recall@%d %.3f at search expansion %d (target %.2f); "
            "searches will miss neighbours, so build with kind None or 'exact' to search exactly",
            len(ids),
            CALIBRATION_TOP_K,
            recall,
            expansion,
            HNSW_TARGET_RECALL,
        )
        return cls(ids, matrix.shape[1], "hnsw", graph=graph, estimated_recall=recall)

    # ----------------------------------------------------------------------------------------------
    # Properties

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def dimension(self) -> int:
        """Number of components in every stored and query vector."""
        return self._dimension

    @property
    def kind(self) -> IndexKind:
        """Search method: "exact" (matrix product) or "hnsw" (approximate graph search)."""
        return self._kind

    @property
    def expansion_search(self) -> int | None:
        """HNSW search expansion chosen by calibration, or None for the exact kind."""
        return int(self._graph.expansion_search) if self._graph is not None else None

    @property
    def estimated_recall(self) -> float | None:
        """Recall@10 of the HNSW graph estimated by calibration at build time, or None for the exact kind."""
        return self._estimated_recall

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the vectors and the HNSW graph, not counting the id strings."""
        if self._matrix is not None:
            return int(self._matrix.nbytes)
        if self._graph is not None:
            return int(self._graph.memory_usage)
        return 0

    # ----------------------------------------------------------------------------------------------
    # Search

    def search(self, query: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        """Return up to `top_k` `(id, cosine similarity)` pairs for one 1-D query, best first.

        Equal scores sort by id. Raises `InvalidInputError` for a bad query or `top_k` < 1.
        """
        _validate_top_k(top_k)
        vector = _validate_queries(query, self._dimension, expected_ndim=1)
        if not self._ids:
            return []

        if self._matrix is not None:
            return self._rank_exact(self._matrix @ vector[0], top_k)
        return self._search_graph(vector, top_k)[0]

    def search_many(self, queries: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
        """Return the `search` result for each row of the 2-D `queries`, in row order."""
        _validate_top_k(top_k)
        matrix = _validate_queries(queries, self._dimension, expected_ndim=2)
        if not self._ids:
            return [[] for _ in range(matrix.shape[0])]
        if matrix.shape[0] == 0:
            return []

        if self._matrix is None:
            return self._search_graph(matrix, top_k)

        results: list[list[tuple[str, float]]] = []
        block_rows = max(1, _EXACT_BATCH_MAX_SCORES // len(self._ids))
        for start in range(0, matrix.shape[0], block_rows):
            scores = matrix[start : start + block_rows] @ self._matrix.T
            results.extend(self._rank_exact(row, top_k) for row in scores)
        return results

    def _rank_exact(self, scores: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        """Return the `top_k` best positions of a full score vector, ties included at the cut-off."""
        count = scores.shape[0]
        if top_k >= count:
            candidates = np.arange(count)
        else:
            # argpartition places the top_k-th best score at `count - top_k`. Every position scoring
            # at least that much is a candidate, so tied scores at the cut-off are ranked by id too.
            cutoff_position = np.argpartition(scores, count - top_k)[count - top_k]
            candidates = np.flatnonzero(scores >= scores[cutoff_position])
        return self._sorted_hits(candidates, scores[candidates], top_k)

    def _search_graph(self, queries: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
        """Search the HNSW graph for each row of `queries`.

        A `top_k` of at least the index size runs usearch's exhaustive scan, so every vector is returned.
        """
        assert self._graph is not None
        exhaustive = top_k >= len(self._ids)
        count = min(top_k, len(self._ids))
        # One query runs on the calling thread, a batch uses every core.
        threads = 1 if queries.shape[0] == 1 else 0

        with self._graph_lock:
            found = self._graph.search(queries, count, threads=threads, exact=exhaustive)

        # usearch returns `Matches` for a single query and `BatchMatches` (indexable per row) for several.
        per_query = [found] if isinstance(found, Matches) else [found[row] for row in range(queries.shape[0])]
        results: list[list[tuple[str, float]]] = []
        for matches in per_query:
            positions = np.asarray(matches.keys, dtype=np.int64)
            scores = 1.0 - np.asarray(matches.distances, dtype=np.float64)
            results.append(self._sorted_hits(positions, scores, count))
        return results

    def _sorted_hits(self, positions: np.ndarray, scores: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        """Sort `positions` by descending score, then by id, and keep the first `top_k`."""
        order = np.lexsort((self._id_rank[positions], -scores))[:top_k]
        # Float rounding can push the similarity of a vector with itself slightly past 1.
        clipped = np.clip(scores, -1.0, 1.0)
        return [(self._ids[int(positions[i])], float(clipped[i])) for i in order]

    # ----------------------------------------------------------------------------------------------
    # Persistence

    def save(self, folder: Path, stamp: str) -> None:
        """Write the index into `folder`, tagged with `stamp`, the caller's version of the source data.

        Each file is written to a temporary name and moved into place with `os.replace`. The manifest,
        which stores the stamp and a SHA-256 of every data file, is replaced last. A save interrupted
        part-way therefore leaves either the previous save intact or files that fail their checksum,
        for which `load` returns None.
        """
        started = time.perf_counter()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        files: dict[str, dict[str, Any]] = {}
        ids_bytes = json.dumps(self._ids, ensure_ascii=False).encode("utf-8")
        files[IDS_NAME] = _write_atomically(folder / IDS_NAME, lambda temporary: temporary.write_bytes(ids_bytes))

        data_name = DATA_NAMES[self._kind]
        if self._matrix is not None:
            files[data_name] = _write_atomically(folder / data_name, self._save_matrix)
        else:
            files[data_name] = _write_atomically(folder / data_name, self._save_graph)

        manifest = {
            "format_version": FORMAT_VERSION,
            "stamp": stamp,
            "kind": self._kind,
            "count": len(self._ids),
            "dimension": self._dimension,
            "expansion_search": self.expansion_search,
            "estimated_recall": self._estimated_recall,
            "files": files,
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        _write_atomically(folder / MANIFEST_NAME, lambda temporary: temporary.write_bytes(manifest_bytes))

        # A data file of the other kind belongs to an older save and is no longer referenced.
        for kind, name in DATA_NAMES.items():
            if kind != self._kind:
                (folder / name).unlink(missing_ok=True)
        logger.info(
            "Saved %s vector index of %d vectors to %s in %.2f s", self._kind, len(self._ids), folder, time.perf_counter() - started
        )

    def _save_matrix(self, path: Path) -> None:
        # np.save given a file name would append ".npy" to the temporary name, so it gets a handle.
        assert self._matrix is not None
        with path.open("wb") as handle:
            np.save(handle, self._matrix, allow_pickle=False)

    def _save_graph(self, path: Path) -> None:
        assert self._graph is not None
        with self._graph_lock:
            self._graph.save(path)

    @classmethod
    def load(cls, folder: Path, stamp: str) -> "VectorIndex | None":
        """Load the index saved in `folder`, or return None when the caller must rebuild it.

        Returns None when the files are missing, unreadable or corrupt (logged as a warning), or when
        they were saved with another `stamp` or format version (logged at info level). Test the result
        with `is None`, because an empty index has length 0 and is therefore falsy.
        """
        started = time.perf_counter()
        folder = Path(folder)
        manifest_path = folder / MANIFEST_NAME
        if not manifest_path.exists():
            logger.info("No saved vector index in %s; rebuild it from the database", folder)
            return None

        try:
            manifest = json.loads(manifest_path.read_bytes())
            if not isinstance(manifest, dict):
                raise ValueError(f"manifest is a JSON {type(manifest).__name__}, expected an object")
            if manifest.get("format_version") != FORMAT_VERSION:
                logger.info(
                    "Saved vector index in %s has format version %r, expected %d; rebuild it from the database",
                    folder,
                    manifest.get("format_version"),
                    FORMAT_VERSION,
                )
                return None
            if manifest.get("stamp") != stamp:
                logger.info(
                    "Saved vector index in %s is stale (stamp %r, expected %r); rebuild it from the database",
                    folder,
                    manifest.get("stamp"),
                    stamp,
                )
                return None
            index = cls._load_checked(folder, manifest)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            logger.warning("Saved vector index in %s is unreadable or corrupt (%s); rebuild it from the database", folder, error)
            return None

        logger.info(
            "Loaded %s vector index of %d vectors from %s in %.2f s", index.kind, len(index), folder, time.perf_counter() - started
        )
        return index

    @classmethod
    def _load_checked(cls, folder: Path, manifest: dict[str, Any]) -> "VectorIndex":
        """Verify every file against the manifest, then read it.

        Raises ValueError or OSError when a file is missing or does not match the manifest.
        """
        kind = manifest["kind"]
        if kind not in INDEX_KINDS:
            raise ValueError(f"manifest kind {kind!r} is not one of {list(INDEX_KINDS)}")
        count = int(manifest["count"])
        dimension = int(manifest["dimension"])
        files = manifest["files"]
        data_name = DATA_NAMES[kind]
        for name in (IDS_NAME, data_name):
            _verify_file(folder / name, files[name])

        ids = json.loads((folder / IDS_NAME).read_bytes())
        if not isinstance(ids, list) or len(ids) != count:
            raise ValueError(f"{IDS_NAME} does not list {count} ids")
        _validate_ids(ids)

        if kind == "exact":
            matrix = np.load(folder / data_name, allow_pickle=False)
            if matrix.dtype != np.float32 or matrix.shape != (count, dimension):
                raise ValueError(f"{data_name} contains {matrix.dtype} {matrix.shape}, expected float32 ({count}, {dimension})")
            return cls(ids, dimension, "exact", matrix=np.ascontiguousarray(matrix))

        graph = Index.restore(folder / data_name)
        if graph is None:
            raise ValueError(f"{data_name} is not a usearch index")
        if len(graph) != count or graph.ndim != dimension:
            raise ValueError(f"{data_name} contains {len(graph)} vectors of dimension {graph.ndim}, expected {count} of {dimension}")
        expansion = int(manifest["expansion_search"])
        if expansion < 1:
            raise ValueError(f"manifest expansion_search {expansion} is below 1")
        graph.expansion_search = expansion
        recall = manifest["estimated_recall"]
        return cls(ids, dimension, "hnsw", graph=graph, estimated_recall=None if recall is None else float(recall))


# --------------------------------------------------------------------------------------------------
# Validation


def _validate_ids(ids: Sequence[str]) -> list[str]:
    """Return `ids` as a list after checking that each is a string and none repeats."""
    if isinstance(ids, (str, bytes)):
        raise InvalidInputError("ids must be a sequence of strings, not a single string")
    id_list = list(ids)
    for position, item in enumerate(id_list):
        if not isinstance(item, str):
            raise InvalidInputError(f"id at position {position} is {type(item).__name__} {item!r}: ids must be strings")

    if len(set(id_list)) != len(id_list):
        seen: set[str] = set()
        for item in id_list:
            if item in seen:
                raise InvalidInputError(f"id {item!r} occurs more than once: pass each id with exactly one vector")
            seen.add(item)
    return id_list


def _validate_build_vectors(vectors: np.ndarray, id_count: int) -> np.ndarray:
    """Return the rows of `vectors` as a contiguous, unit-norm float32 matrix, or raise InvalidInputError."""
    array = _as_float_array(vectors, "vectors")
    if array.ndim != 2:
        raise InvalidInputError(f"vectors have shape {array.shape}: expected a 2-D array (one row per id)")
    if array.shape[0] != id_count:
        raise InvalidInputError(f"vectors have {array.shape[0]} rows but {id_count} ids were given: pass one row per id")
    if array.shape[1] == 0:
        raise InvalidInputError(f"vectors have shape {array.shape}: the dimension must be at least 1")
    return _normalise_rows(array, "vector")


def _validate_queries(queries: np.ndarray, dimension: int, expected_ndim: int) -> np.ndarray:
    """Return the query or queries as a contiguous, unit-norm float32 matrix, or raise InvalidInputError."""
    array = _as_float_array(queries, "query")
    if array.ndim != expected_ndim:
        expected = "a 1-D vector (use search_many for several)" if expected_ndim == 1 else "a 2-D array (one row per query)"
        raise InvalidInputError(f"query has shape {array.shape}: expected {expected}")
    matrix = array.reshape(1, -1) if expected_ndim == 1 else array
    if matrix.shape[1] != dimension:
        raise InvalidInputError(f"query has dimension {matrix.shape[1]} but the index has dimension {dimension}: embed it with the same model")
    return _normalise_rows(matrix, "query")


def _validate_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InvalidInputError(f"top_k {top_k!r} is invalid: use a whole number >= 1")


def _as_float_array(values: np.ndarray, label: str) -> np.ndarray:
    """Return `values` as a numpy array of a real numeric type, or raise InvalidInputError."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{label} cannot be read as a numeric array: {error}") from None
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError(f"{label} has dtype {array.dtype}: pass real numbers (float32 preferred)")
    return array


def _normalise_rows(matrix: np.ndarray, label: str) -> np.ndarray:
    """Return a contiguous float32 copy of `matrix` with unit-norm rows.

    Raises InvalidInputError for a row with NaN or infinity, or a row of zeros.
    """
    result = np.array(matrix, dtype=np.float32, order="C", copy=True)
    finite = np.isfinite(result).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(f"{label} row {row} contains NaN or infinity: pass finite values only")

    norms = np.linalg.norm(result, axis=1)
    if (norms == 0).any():
        row = int(np.flatnonzero(norms == 0)[0])
        raise InvalidInputError(f"{label} row {row} is all zeros: cosine similarity is undefined for it")
    result /= norms[:, np.newaxis]
    return result


# --------------------------------------------------------------------------------------------------
# HNSW graph and files


def _build_graph(matrix: np.ndarray) -> Index:
    """Insert every row of `matrix` into a new usearch HNSW index, keyed by row position."""
    graph = Index(
        ndim=matrix.shape[1],
        metric=HNSW_METRIC,
        dtype=HNSW_DTYPE,
        connectivity=HNSW_CONNECTIVITY,
        expansion_add=HNSW_EXPANSION_ADD,
        expansion_search=HNSW_EXPANSION_LADDER[0],
    )
    if matrix.shape[0]:
        # NOTE: insertion runs on every core, so two builds from the same vectors can yield slightly
        # different graphs and, rarely, different approximate results.
        graph.add(np.arange(matrix.shape[0], dtype=np.uint64), matrix)
    return graph


def _calibrate_expansion(graph: Index, matrix: np.ndarray) -> tuple[int, float]:
    """Return the smallest search expansion that reaches HNSW_TARGET_RECALL, with its estimated recall@10.

    Each query is a sampled stored vector mixed with random noise. The vector it came from is left out
    of both the exact and the graph results, because it would be an easy hit. When no expansion reaches
    the target, the largest one and its recall are returned.
    """
    count, dimension = matrix.shape
    top_k = min(CALIBRATION_TOP_K, count - 1)
    if top_k < 1:
        return HNSW_EXPANSION_LADDER[0], 1.0

    rng = np.random.default_rng(CALIBRATION_SEED)
    positions = np.sort(rng.choice(count, size=min(CALIBRATION_QUERIES, count), replace=False))
    noise = rng.standard_normal((len(positions), dimension)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    noise_weight = np.sqrt(1.0 - CALIBRATION_QUERY_SIMILARITY**2)
    queries = CALIBRATION_QUERY_SIMILARITY * matrix[positions] + noise_weight * noise
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    scores = queries @ matrix.T
    scores[np.arange(len(positions)), positions] = -np.inf
    truth = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]

    recall = 0.0
    for expansion in HNSW_EXPANSION_LADDER:
        graph.expansion_search = expansion
        found = graph.search(queries, top_k + 1, threads=0)
        hits = 0
        for row, position in enumerate(positions):
            neighbours = [key for key in found[row].keys.tolist() if key != position][:top_k]
            hits += len(set(neighbours) & set(truth[row].tolist()))
        recall = hits / (len(positions) * top_k)
        if recall >= HNSW_TARGET_RECALL:
            return expansion, recall
    return HNSW_EXPANSION_LADDER[-1], recall


def _write_atomically(path: Path, write: Callable[[Path], object]) -> dict[str, Any]:
    """Write a file through `write(temporary_path)`, fsync it, then move it to `path`.

    Returns the size and SHA-256 of what was written.
    """
    descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        write(temporary)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
            summary = _summarise_file(handle)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return summary


def _summarise_file(handle: BinaryIO) -> dict[str, Any]:
    """Return the size in bytes and the SHA-256 hex digest of an open file, read from its current position."""
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(_HASH_CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _verify_file(path: Path, expected: dict[str, Any]) -> None:
    """Raise ValueError unless the file at `path` has the size and SHA-256 recorded in the manifest."""
    actual_size = path.stat().st_size
    if actual_size != expected["bytes"]:
        raise ValueError(f"{path.name} has {actual_size} bytes, expected {expected['bytes']}")
    with path.open("rb") as handle:
        actual = _summarise_file(handle)
    if actual["sha256"] != expected["sha256"]:
        raise ValueError(f"{path.name} fails its SHA-256 check")
