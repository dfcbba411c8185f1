"""End-to-end ingestion throughput through the Dagster assets, next to the encoder's own throughput.

Usage: .venv/bin/python benchmarks/ingest.py [--limit N] [--json]

The run materialises all five ingestion assets for one batch of podcast transcripts in a fresh
GRAPHMEM_HOME, then encodes the very same chunk texts with the same model outside the pipeline.
The ratio of the two (encode-only time over end-to-end time) shows how much the rest of the
pipeline costs on top of the embeddings. On a CPU the embeddings dominate.
"""

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from machine import cpu_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PODCASTS_ZIP = PROJECT_ROOT.parent / "shared" / "corpora" / "podcasts" / "transcripts.zip"


def machine_description() -> str:
    """Return the CPU model, core count and GPU, as far as this process can see them."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu_model()}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def extract_corpus(target: Path, limit: int | None) -> int:
    """Write the transcripts of the podcast archive into `target` and return how many."""
    if not PODCASTS_ZIP.exists():
        sys.exit(f"corpus {PODCASTS_ZIP} not found: run the benchmark from a checkout next to its shared/ folder")
    target.mkdir(parents=True)
    with zipfile.ZipFile(PODCASTS_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".txt"))[:limit]
        for index, name in enumerate(names):
            (target / f"{index:05d}-{Path(name).name}").write_bytes(archive.read(name))
    return len(names)


def run(limit: int | None) -> dict:
    """Materialise the assets for one batch and measure the encoder on the same chunks."""
    from dagster import DagsterInstance, materialize

    from graphmem_core.batches import register_batch
    from graphmem_core.embeddings import Embedder
    from graphmem_core.stores.libsql_store import LibsqlGraphStore
    from graphmem_dagster.ingestion.assets import ingestion_assets
    from graphmem_dagster.ingestion.partitions import batch_partitions
    from graphmem_dagster.ingestion.resources import EmbedderResource, ExtractorResource, GraphStoreResource

    workspace = Path(tempfile.mkdtemp(prefix="graphmem-bench-"))
    home = workspace / "home"
    documents = extract_corpus(workspace / "inputs", limit)
    manifest = register_batch([workspace / "inputs"], "default", "default", home / "batches")

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(batch_partitions.name, [manifest.batch_id])
    resources = {
        "graph_store": GraphStoreResource(home=str(home)),
        "embedder": EmbedderResource(),
        "extractor": ExtractorResource(),
    }

    started = time.perf_counter()
    result = materialize(ingestion_assets, partition_key=manifest.batch_id, instance=instance, resources=resources)
    end_to_end = time.perf_counter() - started
    if not result.success:
        sys.exit("the ingest run failed: see the log above")

    metadata = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata[materialization.asset_key.path[-1]] = {key: value.value for key, value in materialization.metadata.items()}

    store = LibsqlGraphStore(home / "graph.db")
    texts = [chunk.text for chunk in store.get_chunks("default", "default")]
    counts = store.counts("default", "default")
    store.close()

    embedder = Embedder()
    embedder.encode(["warm-up"])
    encode_started = time.perf_counter()
    embedder.encode(texts)
    encode_only = time.perf_counter() - encode_started

    return {
        "machine": machine_description(),
        "documents": documents,
        "chunks": len(texts),
        "counts": counts,
        "end_to_end_seconds": round(end_to_end, 1),
        "documents_per_second": round(documents / end_to_end, 2),
        "chunks_per_second_end_to_end": round(len(texts) / end_to_end, 1),
        "encode_only_seconds": round(encode_only, 1),
        "encode_only_chunks_per_second": round(len(texts) / encode_only, 1),
        "ratio_encode_over_end_to_end": round(encode_only / end_to_end, 3),
        "stage_seconds": {name: values.get("seconds") for name, values in metadata.items()},
        "extractor_chunks_per_second": round(
            metadata["extracted_triples"]["extracted"] / max(metadata["extracted_triples"]["seconds"], 1e-9), 1
        ),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": metadata["embeddings"]["device"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure end-to-end ingestion against raw encoding of the same chunks.")
    parser.add_argument("--limit", type=int, default=None, help="ingest only the first N transcripts (default: all 1,669)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    figures = run(arguments.limit)
    if arguments.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
