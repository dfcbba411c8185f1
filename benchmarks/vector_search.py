"""Benchmark `VectorIndex` build, save, load, query latency, recall@10 and memory on synthetic vectors.

Usage: .venv/bin/python benchmarks/vector_search.py [--count 100000] [--dim 384] [--queries 1000] [--json]

Two data sets, both unit-norm float32 from a seeded generator:
- random: vectors and queries drawn uniformly on the sphere. In high dimension they have no real near
  neighbours, the worst case for a graph index.
- clustered: vectors and queries drawn around shared random centres with gaussian noise, closer to
  sentence embeddings, whose neighbours form groups.

Recall@10 is measured against an exact matrix product computed here, independently of the index.
Queries run one at a time on the calling thread, the way a query service calls `search`.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import usearch

from graphmem_core.vector_index import INDEX_KINDS, VectorIndex
from machine import cpu_model

TOP_K = 10
# Queries run untimed before measuring, so that first-call costs (page faults, lazy set-up) are excluded.
WARMUP_QUERIES = 20
# The ground truth is computed in blocks of at most this many scores (4 bytes each, about 256 MB).
TRUTH_BLOCK_SCORES = 64_000_000


@dataclass
class Result:
    """Figures for one data set and one index kind."""

    dataset: str
    kind: str
    count: int
    dimension: int
    build_s: float
    save_s: float
    load_s: float
    disk_mb: float
    memory_mb: float
    p50_ms: float
    p99_ms: float
    recall_at_10: float
    # HNSW only: the calibrated search expansion and the recall@10 that calibration estimated.
    expansion_search: int | None
    estimated_recall: float | None


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def make_random(count: int, queries: int, dimension: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return uniform unit vectors and independent uniform unit queries."""
    vectors = unit_rows(rng.standard_normal((count, dimension), dtype=np.float32))
    return vectors, unit_rows(rng.standard_normal((queries, dimension), dtype=np.float32))


def make_clustered(
    count: int, queries: int, dimension: int, clusters: int, spread: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return unit vectors and queries drawn around `clusters` shared centres with per-component noise `spread`."""
    centres = unit_rows(rng.standard_normal((clusters, dimension), dtype=np.float32))

    def sample(size: int) -> np.ndarray:
        labels = rng.integers(0, clusters, size)
        return unit_rows(centres[labels] + spread * rng.standard_normal((size, dimension), dtype=np.float32))

    return sample(count), sample(queries)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, top_k: int) -> list[set[int]]:
    """Return the positions of the `top_k` highest inner products for each query."""
    truth: list[set[int]] = []
    block_rows = max(1, TRUTH_BLOCK_SCORES // len(vectors))
    for start in range(0, len(queries), block_rows):
        scores = queries[start : start + block_rows] @ vectors.T
        best = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
        truth.extend(set(row.tolist()) for row in best)
    return truth


def measure(dataset: str, kind: str, vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]]) -> Result:
    """Build, save, load and query one index, and return its figures."""
    top_k = min(TOP_K, len(vectors))
    ids = [f"chk_{position:07d}" for position in range(len(vectors))]
    position_of = {item: position for position, item in enumerate(ids)}

    started = time.perf_counter()
    index = VectorIndex.build(ids, vectors, kind=kind)
    build_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="vector-bench-") as folder:
        started = time.perf_counter()
        index.save(Path(folder), "bench")
        save_s = time.perf_counter() - started
        disk_bytes = sum(path.stat().st_size for path in Path(folder).iterdir())

        started = time.perf_counter()
        loaded = VectorIndex.load(Path(folder), "bench")
        load_s = time.perf_counter() - started
    if loaded is None:
        raise RuntimeError(f"saved {kind} index for {dataset} failed to load: see the warning above")

    for query in queries[:WARMUP_QUERIES]:
        loaded.search(query, top_k)

    latencies: list[float] = []
    hits = 0
    for query, expected in zip(queries, truth):
        started = time.perf_counter()
        found = loaded.search(query, top_k)
        latencies.append(time.perf_counter() - started)
        hits += len({position_of[item] for item, _ in found} & expected)

    latencies_ms = np.array(latencies) * 1000.0
    return Result(
        dataset=dataset,
        kind=kind,
        count=len(vectors),
        dimension=vectors.shape[1],
        build_s=build_s,
        save_s=save_s,
        load_s=load_s,
        disk_mb=disk_bytes / 1e6,
        memory_mb=loaded.memory_bytes / 1e6,
        p50_ms=float(np.percentile(latencies_ms, 50)),
        p99_ms=float(np.percentile(latencies_ms, 99)),
        recall_at_10=hits / (len(queries) * top_k),
        expansion_search=loaded.expansion_search,
        estimated_recall=loaded.estimated_recall,
    )


def describe_machine() -> dict[str, object]:
    """Return the CPU model, core count, load and library versions behind the figures."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        # A load average above the core count means other processes competed for the CPU during the run.
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "usearch": usearch.__version__,
    }


def format_optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: list[Result]) -> str:
    header = f"{'dataset':<10} {'kind':<6} {'count':>8} {'build s':>8} {'save s':>7} {'load s':>7} {'disk MB':>8} {'mem MB':>7} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9} {'ef':>4} {'est.':>5}"
    lines = [header, "-" * len(header)]
    for result in results:
        lines.append(
            f"{result.dataset:<10} {result.kind:<6} {result.count:>8} {result.build_s:>8.2f} {result.save_s:>7.2f} "
            f"{result.load_s:>7.2f} {result.disk_mb:>8.1f} {result.memory_mb:>7.1f} {result.p50_ms:>7.3f} "
            f"{result.p99_ms:>7.3f} {result.recall_at_10:>9.3f} {format_optional(result.expansion_search, 'd'):>4} "
            f"{format_optional(result.estimated_recall, '.3f'):>5}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="vectors in each index (default 100000)")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (default 384, as all-MiniLM-L6-v2)")
    parser.add_argument("--queries", type=int, default=1000, help="timed single queries per index (default 1000)")
    parser.add_argument("--clusters", type=int, default=1000, help="cluster centres in the clustered data set (default 1000)")
    parser.add_argument(
        "--spread", type=float, default=0.05, help="standard deviation of the per-component noise around a centre (default 0.05)"
    )
    parser.add_argument("--kinds", default=",".join(INDEX_KINDS), help="comma-separated index kinds to measure (default exact,hnsw)")
    parser.add_argument("--datasets", default="random,clustered", help="comma-separated data sets (default random,clustered)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the vector generator (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    if args.count < 1 or args.dim < 1 or args.queries < 1 or args.clusters < 1:
        parser.error("--count, --dim, --queries and --clusters must be at least 1")
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(INDEX_KINDS))
    if unknown:
        parser.error(f"unknown kind {unknown}: use {','.join(INDEX_KINDS)}")
    datasets = args.datasets.split(",")
    if sorted(set(datasets) - {"random", "clustered"}):
        parser.error(f"unknown data set in {args.datasets!r}: use random,clustered")
    args.kinds, args.datasets = kinds, datasets
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    machine = describe_machine()
    if not args.json:
        print(f"machine: {machine['cpu_model']}, {machine['cores']} cores, load {machine['load_average_1m']}", flush=True)

    results: list[Result] = []
    for dataset in args.datasets:
        if dataset == "random":
            vectors, queries = make_random(args.count, args.queries, args.dim, rng)
        else:
            vectors, queries = make_clustered(args.count, args.queries, args.dim, args.clusters, args.spread, rng)
        truth = exact_top_k(vectors, queries, min(TOP_K, args.count))

        for kind in args.kinds:
            results.append(measure(dataset, kind, vectors, queries, truth))
            if not args.json:
                print(format_table(results[-1:]).splitlines()[-1], flush=True)

    machine["load_average_1m_end"] = describe_machine()["load_average_1m"]
    if args.json:
        report = {"machine": machine, "settings": {key: value for key, value in vars(args).items() if key != "json"}}
        report["results"] = [asdict(result) for result in results]
        print(json.dumps(report, indent=2))
    else:
        print()
        print(format_table(results))
        print(f"machine: {machine['cpu_model']}, {machine['cores']} cores; numpy {machine['numpy']}, usearch {machine['usearch']}")
        print(f"load average (1 min) at start {machine['load_average_1m']}, at end {machine['load_average_1m_end']}")
        print("ef: calibrated HNSW search expansion. est.: recall@10 estimated by that calibration.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
