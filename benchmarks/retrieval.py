"""Multi-hop retrieval quality of every query mode on MuSiQue, next to plain vector search.

Usage: .venv/bin/python benchmarks/retrieval.py [--repeat 3] [--workdir PATH] [--json]

The 1,890 Wikipedia paragraphs of `../shared/corpora/musique/corpus.json` are ingested as one JSON
Lines batch (title on the first line of each text) through the pipeline functions into a fresh libSQL
store, with the fast extractor. Each of the 100 questions of `questions.json` then runs in every
mode on the same embeddings. Recall@k is the share of a question's gold supporting paragraphs among
the first k distinct paragraphs of the ranked chunks, averaged over the questions.

Latency is measured per query with the query vector already cached and the result cache off, so it
is the engine's own work. Query embedding, which every mode pays once per new question, is timed
apart, and so is the one-time work per graph version: loading the graph and encoding the community
summaries (`QueryEngine.prepare`).
"""

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MUSIQUE = PROJECT_ROOT.parent / "shared" / "corpora" / "musique"

TENANT = "default"
MEMORY = "musique"
MAX_FILE_BYTES = 10_000_000
RECALL_AT = (5, 10)

# Chunks requested per query: enough to hold 10 distinct paragraphs, since a few paragraphs span two chunks.
TOP_K = 20


def machine_description() -> str:
    """Return the CPU model, core count and GPU, as far as this process can see them."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu_model()}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def load_musique() -> tuple[list[dict], list[dict]]:
    """Return the corpus paragraphs and the questions, or exit when the corpus folder is missing."""
    if not MUSIQUE.is_dir():
        sys.exit(f"corpus folder {MUSIQUE} not found: run the benchmark from a checkout next to its shared/ folder")
    corpus = json.loads((MUSIQUE / "corpus.json").read_text(encoding="utf-8"))
    questions = json.loads((MUSIQUE / "questions.json").read_text(encoding="utf-8"))
    return corpus, questions


def gold_paragraphs(corpus: list[dict], questions: list[dict]) -> list[set[int]]:
    """Return, per question, the corpus indexes of its supporting paragraphs, matched on title and text."""
    index_of = {(paragraph["title"], paragraph["text"]): index for index, paragraph in enumerate(corpus)}
    gold = []
    for question in questions:
        supporting = {
            index_of[(paragraph["title"], paragraph["paragraph_text"])]
            for paragraph in question["paragraphs"]
            if paragraph["is_supporting"]
        }
        if not supporting:
            sys.exit(f"question {question['id']} has no supporting paragraph in corpus.json: the corpus files do not match")
        gold.append(supporting)
    return gold


def ingest(workdir: Path, corpus: list[dict], embedder) -> tuple[object, dict]:
    """Ingest the paragraphs into the libSQL store under `workdir`; return the open store and stage timings and counts."""
    from graphmem_core import pipeline
    from graphmem_core.batches import register_batch
    from graphmem_core.extraction import get_extractor
    from graphmem_core.settings import Settings
    from graphmem_core.stores.libsql_store import LibsqlGraphStore

    inputs = workdir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": index, "title": p["title"], "text": f"{p['title']}\n{p['text']}"}, ensure_ascii=False) for index, p in enumerate(corpus)]
    (inputs / "musique.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    defaults = Settings()
    store = LibsqlGraphStore(workdir / "home" / "graph.db")
    extractor = get_extractor("fast")
    manifest = register_batch([inputs], TENANT, MEMORY, workdir / "batches")
    encode_names = pipeline.cached_name_encoder(store, embedder, TENANT)
    reports = {
        "ingest": pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES),
        "embed": pipeline.embed_batch(store, embedder, TENANT, MEMORY, manifest.batch_id, defaults.chunk_overlap_tokens),
        "extract": pipeline.extract_batch(store, extractor, TENANT, MEMORY, manifest.batch_id),
        "resolve": pipeline.resolve_graph(store, extractor, TENANT, MEMORY, encode_names, defaults.resolution_threshold),
        "communities": pipeline.build_communities(store, TENANT, MEMORY, seed=defaults.community_seed),
    }
    rejected = reports["ingest"].rejected
    if rejected:
        sys.exit(f"{len(rejected)} paragraphs were rejected, the first: {rejected[0].source}: {rejected[0].reason}")
    return store, {
        "stage_seconds": {name: round(report.seconds, 1) for name, report in reports.items()},
        "counts": store.counts(TENANT, MEMORY),
    }


def paragraph_of_document(store) -> dict[str, int]:
    """Map every stored document id to the corpus index that its JSON line carried as `id`."""
    from graphmem_core.documents import SOURCE_METADATA_KEY

    chunks = store.get_chunks(TENANT, MEMORY)
    documents = store.get_documents(TENANT, MEMORY, sorted({chunk.document_id for chunk in chunks}))
    return {document.id: int(document.metadata[SOURCE_METADATA_KEY]["external_id"]) for document in documents}


def ranked_paragraphs(result, paragraph_of: dict[str, int]) -> list[int]:
    """Return the distinct paragraphs of the ranked chunks, in rank order."""
    paragraphs: dict[int, None] = {}
    for hit in result.chunks:
        paragraphs.setdefault(paragraph_of[hit.chunk.document_id], None)
    return list(paragraphs)


def make_engine(store, embedder):
    """Return a query engine whose cache keeps vectors but no query results, so that every query is computed."""
    from graphmem_core.cache import KEY_PREFIX, InProcessCache
    from graphmem_core.query import QueryEngine

    class VectorOnlyCache(InProcessCache):
        """An in-process cache that drops query results, which would otherwise make repeated queries free."""

        def set(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
            if not key.startswith(f"{KEY_PREFIX}answer:"):
                super().set(key, value, ttl_seconds)

    return QueryEngine(store, embedder, VectorOnlyCache())


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def evaluate(engine, questions: list[dict], gold: list[set[int]], paragraph_of: dict[str, int], repeat: int) -> dict:
    """Run every question in every mode: recall from the first pass, latency over the `repeat` passes after it."""
    from graphmem_core.query import QueryMode

    modes: dict[str, dict] = {}
    for mode in QueryMode:
        recall = {k: 0.0 for k in RECALL_AT}
        for question, supporting in zip(questions, gold, strict=True):
            result = engine.query(TENANT, MEMORY, question["question"], top_k=TOP_K, mode=mode)
            paragraphs = ranked_paragraphs(result, paragraph_of)
            for k in RECALL_AT:
                recall[k] += len(supporting & set(paragraphs[:k])) / len(supporting)

        totals: list[float] = []
        steps: dict[str, list[float]] = {}
        for _ in range(repeat):
            for question in questions:
                result = engine.query(TENANT, MEMORY, question["question"], top_k=TOP_K, mode=mode)
                totals.append(result.timings_ms["total"])
                for step, value in result.timings_ms.items():
                    steps.setdefault(step, []).append(value)

        modes[mode.value] = {
            **{f"recall_at_{k}": round(100 * recall[k] / len(questions), 1) for k in RECALL_AT},
            "latency_p50_ms": percentile(totals, 50),
            "latency_p95_ms": percentile(totals, 95),
            "step_p50_ms": {step: percentile(values, 50) for step, values in steps.items() if step != "total"},
        }
    return modes


def embedding_latency(embedder, questions: list[dict]) -> dict:
    """Time the encoding of each question alone, as a query that is not cached yet pays it."""
    durations = []
    for question in questions:
        started = time.perf_counter()
        embedder.encode([question["question"]])
        durations.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(durations, 50), "p95_ms": percentile(durations, 95)}


def run(workdir: Path, repeat: int) -> dict:
    """Ingest the corpus, prepare the engine and measure every mode."""
    from graphmem_core.embeddings import Embedder

    corpus, questions = load_musique()
    gold = gold_paragraphs(corpus, questions)
    load_at_start = os.getloadavg()

    embedder = Embedder()
    embedder.encode(["warm-up"])
    started = time.perf_counter()
    store, ingestion = ingest(workdir, corpus, embedder)
    ingestion["seconds"] = round(time.perf_counter() - started, 1)
    try:
        paragraph_of = paragraph_of_document(store)
        missing = len(corpus) - len(set(paragraph_of.values()))
        if missing:
            sys.exit(f"{missing} paragraphs have no stored chunk: the store does not hold the whole corpus")

        engine = make_engine(store, embedder)
        started = time.perf_counter()
        engine.prepare(TENANT, MEMORY)
        prepare_seconds = time.perf_counter() - started
        modes = evaluate(engine, questions, gold, paragraph_of, repeat)
    finally:
        store.close()

    best_graph_mode = max((name for name in modes if name != "naive"), key=lambda name: modes[name]["recall_at_5"])
    return {
        "machine": machine_description(),
        "load_average_start": [round(value, 2) for value in load_at_start],
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "paragraphs": len(corpus),
        "questions": len(questions),
        "gold_paragraphs": sum(len(supporting) for supporting in gold),
        "top_k": TOP_K,
        "repeat": repeat,
        "ingestion": ingestion,
        "prepare_seconds": round(prepare_seconds, 1),
        "query_embedding_ms": embedding_latency(embedder, questions),
        "modes": modes,
        "best_graph_mode": best_graph_mode,
        "recall_at_5_gain_points": round(modes[best_graph_mode]["recall_at_5"] - modes["naive"]["recall_at_5"], 1),
    }


def print_table(figures: dict) -> None:
    print(f"machine: {figures['machine']}")
    print(f"load average at start {figures['load_average_start']}, at end {figures['load_average_end']}")
    counts = figures["ingestion"]["counts"]
    print(
        f"ingested {figures['paragraphs']} paragraphs in {figures['ingestion']['seconds']} s: {counts['chunks']} chunks, "
        f"{counts['entities']} entities, {counts['relations']} relations, {counts['communities']} communities"
    )
    print(f"graph load and community summary encoding (once per graph version): {figures['prepare_seconds']} s")
    embedding = figures["query_embedding_ms"]
    print(f"query embedding, paid once per new question in every mode: p50 {embedding['p50_ms']} ms, p95 {embedding['p95_ms']} ms\n")

    print(f"{'mode':8} {'recall@5':>9} {'recall@10':>10} {'p50 ms':>8} {'p95 ms':>8}  step p50 ms")
    for name, mode in figures["modes"].items():
        steps = ", ".join(f"{step} {value}" for step, value in mode["step_p50_ms"].items())
        print(f"{name:8} {mode['recall_at_5']:9.1f} {mode['recall_at_10']:10.1f} {mode['latency_p50_ms']:8.1f} {mode['latency_p95_ms']:8.1f}  {steps}")
    print(f"\nbest graph mode: {figures['best_graph_mode']}, {figures['recall_at_5_gain_points']:+.1f} points of recall@5 over naive")


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure recall@5 and recall@10 of every query mode on the MuSiQue paragraphs.")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the questions per mode, after the recall pass (default 3)")
    parser.add_argument("--workdir", type=Path, help="folder for the store, reused by later runs (default: a temporary folder, deleted at the end)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error(f"--repeat {arguments.repeat} is invalid: use 1 or more timed passes")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="graphmem-retrieval-"))
    try:
        figures = run(workdir, arguments.repeat)
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    if arguments.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
