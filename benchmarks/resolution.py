"""Score entity resolution on the labelled name pairs and time it on the whole podcast graph.

Usage: .venv/bin/python benchmarks/resolution.py [--pairs PATH] [--cache PATH] [--no-embed]
       [--threshold 0.9] [--errors] [--json]

Quality: both corpora are chunked and run through the fast extractor, as `extract.py` does for the
podcasts. A MuSiQue paragraph is one chunk: its title, a newline and its text. Each corpus is
resolved in full as its own namespace, and every labelled pair counts as merged when both names
(type and folded form) end in one entity. Precision and recall are those of the merges: a pair
labelled `same` and merged is a true positive, `different` and merged a false positive, `same` and
not merged a false negative. A name missing from the graph counts as not merged. Resolution gets
each chunk's document, because a lone name is matched with the full names of its documents.

The pairs are split into a tuning half and a held-out half by the SHA-256 of their id (see
`split_of`). The rules are tuned on the tuning half only, and the figures are given for both halves
and for all pairs.

Time: the podcast graph (all transcripts) is resolved twice in full, the first time with the name
vectors the cache already contains and the second with all of them cached. Then the first 90 % of
the chunks are resolved in full and the rest added to that graph incrementally. Name vectors come from the
real MiniLM `Embedder` through `pipeline.cached_name_encoder`, cached in a libSQL file (default:
`graphmem-resolution-bench/vectors.db` under the system temp folder), so later runs skip encoding.
"""

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAIRS = PROJECT_ROOT / "tests" / "data" / "resolution_pairs.jsonl"
MUSIQUE_CORPUS = PROJECT_ROOT.parent / "shared" / "corpora" / "musique" / "corpus.json"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "graphmem-resolution-bench" / "vectors.db"

# The quality goal of resolution on the labelled pairs.
GOAL_PRECISION = 0.98
GOAL_RECALL = 0.90

# Share of the podcast chunks resolved in full before the rest is added incrementally.
INCREMENTAL_BASE_SHARE = 0.9

TENANT = "bench-resolution"

# Pairs whose id hashes to an even first byte form the tuning half, the others the held-out half.
TUNING_SPLIT = "tuning"
HELD_OUT_SPLIT = "held-out"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(PROJECT_ROOT))

from extract import DEFAULT_CORPUS, load_documents, make_chunks  # noqa: E402
from machine import cpu_model  # noqa: E402

from graphmem_core import ids  # noqa: E402
from graphmem_core.extraction import get_extractor  # noqa: E402
from graphmem_core.models import Chunk, EntityType, ExtractionResult  # noqa: E402
from graphmem_core.name_matching import fold_name  # noqa: E402
from graphmem_core.resolution import PriorResolution, Resolution, resolve  # noqa: E402

logger = logging.getLogger(__name__)

EmbedFunction = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class LabelledPair:
    """One line of the labelled set."""

    id: str
    source: str
    category: str
    first: str
    first_type: EntityType
    second: str
    second_type: EntityType
    same: bool
    note: str


def parse_arguments() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS, help=f"labelled pairs, JSON Lines (default: {DEFAULT_PAIRS})")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"libSQL file that caches name vectors (default: {DEFAULT_CACHE})")
    parser.add_argument("--no-embed", action="store_true", help="skip the similarity stage and the encoder: alias rules only")
    parser.add_argument("--threshold", type=float, default=0.9, help="minimum cosine similarity of a similarity merge (default: 0.9)")
    parser.add_argument("--errors", action="store_true", help="print every wrongly resolved pair")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object instead of text")
    return parser.parse_args()


def load_pairs(path: Path) -> list[LabelledPair]:
    """Read the labelled pairs, rejecting a line without a `same` or `different` label."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        row = json.loads(line)
        if row["label"] not in ("same", "different"):
            raise SystemExit(f"{path}:{number}: label {row['label']!r} is invalid: use same or different")
        pairs.append(
            LabelledPair(
                id=row["id"],
                source=row["source"],
                category=row["category"],
                first=row["first"],
                first_type=EntityType(row["first_type"]),
                second=row["second"],
                second_type=EntityType(row["second_type"]),
                same=row["label"] == "same",
                note=row["note"],
            )
        )
    return pairs


def split_of(pair: LabelledPair) -> str:
    """Return the half of the labelled set a pair belongs to, fixed by the SHA-256 of its id."""
    first_byte = hashlib.sha256(pair.id.encode("utf-8")).digest()[0]
    return TUNING_SPLIT if first_byte % 2 == 0 else HELD_OUT_SPLIT


def musique_chunks(path: Path) -> list[Chunk]:
    """Return one chunk per MuSiQue paragraph: its title, a newline and its text."""
    if not path.exists():
        raise SystemExit(f"corpus {path} not found: check out the shared corpora next to the project")
    chunks = []
    for paragraph in json.loads(path.read_text(encoding="utf-8")):
        text = f"{paragraph['title']}\n{paragraph['text']}"
        document_id = ids.document_id(TENANT, "musique", text)
        chunks.append(
            Chunk(
                id=ids.chunk_id(document_id, 0, len(text), text),
                document_id=document_id,
                tenant=TENANT,
                memory="musique",
                index=0,
                text=text,
                start=0,
                end=len(text),
                token_count=0,
                text_hash=ids.text_hash(text),
            )
        )
    return chunks


@dataclass(frozen=True)
class Corpus:
    """The extraction results of one corpus and the document of each chunk."""

    results: list[ExtractionResult]
    document_of_chunk: dict[str, str]


def extract_corpora() -> dict[str, Corpus]:
    """Chunk both corpora and run the fast extractor over them."""
    extractor = get_extractor("fast")
    podcast_chunks, _ = make_chunks(load_documents(DEFAULT_CORPUS, None), None)
    corpora = {}
    for source, chunks in (("podcasts", podcast_chunks), ("musique", musique_chunks(MUSIQUE_CORPUS))):
        document_of_chunk = {chunk.id: chunk.document_id for chunk in chunks}
        corpora[source] = Corpus(results=extractor.extract(chunks), document_of_chunk=document_of_chunk)
    return corpora


def make_encoder(cache: Path) -> EmbedFunction:
    """Return the cached MiniLM name encoder of the pipeline, backed by a libSQL file at `cache`."""
    from graphmem_core.embeddings import Embedder
    from graphmem_core.pipeline import cached_name_encoder
    from graphmem_core.stores.libsql_store import LibsqlGraphStore

    store = LibsqlGraphStore(cache)
    return cached_name_encoder(store, Embedder(), TENANT)


def entity_of_names(resolution: Resolution, results: Sequence[ExtractionResult]) -> dict[tuple[EntityType, str], str]:
    """Map every (type, folded name) of the extraction results to the id of its entity."""
    entity_of_span = {(link.chunk_id, link.start, link.end, link.text): link.entity_id for link in resolution.graph.mention_links}
    mapping = {}
    for result in results:
        for mention in result.mentions:
            entity_id = entity_of_span.get((mention.chunk_id, mention.start, mention.end, mention.text))
            if entity_id is not None:
                mapping[(mention.type, fold_name(mention.text))] = entity_id
    return mapping


def score_pairs(pairs: Sequence[LabelledPair], entities: dict[str, dict[tuple[EntityType, str], str]]) -> dict[str, object]:
    """Return precision, recall and the wrongly resolved pairs, overall and per category and source."""
    outcomes = []
    for pair in pairs:
        mapping = entities[pair.source]
        first = mapping.get((pair.first_type, fold_name(pair.first)))
        second = mapping.get((pair.second_type, fold_name(pair.second)))
        merged = first is not None and first == second
        outcomes.append((pair, merged, first is None or second is None))

    report = _precision_recall(outcomes)
    report["missing_names"] = sum(1 for _, _, missing in outcomes if missing)
    group_keys: dict[str, Callable[[LabelledPair], str]] = {
        "split": split_of,
        "source": lambda pair: pair.source,
        "category": lambda pair: pair.category,
    }
    for key, group_of in group_keys.items():
        groups: dict[str, list] = defaultdict(list)
        for outcome in outcomes:
            groups[group_of(outcome[0])].append(outcome)
        report[f"by_{key}"] = {name: _precision_recall(group) for name, group in sorted(groups.items())}
    report["false_merge_pairs"] = [_describe(pair) for pair, merged, _ in outcomes if merged and not pair.same]
    report["missed_merge_pairs"] = [_describe(pair) for pair, merged, _ in outcomes if not merged and pair.same]
    return report


def _precision_recall(outcomes: Sequence[tuple[LabelledPair, bool, bool]]) -> dict[str, object]:
    true_positives = sum(1 for pair, merged, _ in outcomes if merged and pair.same)
    false_positives = sum(1 for pair, merged, _ in outcomes if merged and not pair.same)
    false_negatives = sum(1 for pair, merged, _ in outcomes if not merged and pair.same)
    merged = true_positives + false_positives
    labelled_same = true_positives + false_negatives
    return {
        "pairs": len(outcomes),
        "same": labelled_same,
        "different": len(outcomes) - labelled_same,
        "true_merges": true_positives,
        "false_merges": false_positives,
        "missed_merges": false_negatives,
        "precision": round(true_positives / merged, 4) if merged else 1.0,
        "recall": round(true_positives / labelled_same, 4) if labelled_same else 1.0,
    }


def _describe(pair: LabelledPair) -> str:
    return f"{pair.id} ({split_of(pair)}) [{pair.category}] {pair.first} ({pair.first_type.value}) ~ {pair.second} ({pair.second_type.value}): {pair.note}"


def time_podcast_graph(corpus: Corpus, embed: EmbedFunction | None, threshold: float) -> dict[str, object]:
    """Time full resolution twice, then an incremental run that adds the last tenth of the chunks."""
    results, documents = corpus.results, corpus.document_of_chunk
    timings: dict[str, object] = {}
    for run in ("full_first_run", "full_cached_run"):
        started = time.perf_counter()
        resolution = resolve(TENANT, "podcasts", results, embed, threshold, document_of_chunk=documents)
        timings[f"{run}_seconds"] = round(time.perf_counter() - started, 2)
    timings["names"] = resolution.stats.names
    timings["entities"] = len(resolution.graph.entities)
    timings["merges_by_rule"] = resolution.stats.merges_by_rule

    ordered = sorted(results, key=lambda result: result.chunk_id)
    base = ordered[: int(len(ordered) * INCREMENTAL_BASE_SHARE)]
    first = resolve(TENANT, "podcasts", base, embed, threshold, document_of_chunk=documents)
    prior = PriorResolution(entities=first.graph.entities, mention_links=first.graph.mention_links, merges=first.merges)
    started = time.perf_counter()
    incremental = resolve(TENANT, "podcasts", ordered, embed, threshold, prior=prior, incremental=True, document_of_chunk=documents)
    timings["incremental_seconds"] = round(time.perf_counter() - started, 2)
    timings["incremental_new_names"] = incremental.stats.new_names
    timings["incremental_chunks_added"] = len(ordered) - len(base)
    kept = {entity.id for entity in first.graph.entities} & {entity.id for entity in incremental.graph.entities}
    timings["incremental_ids_kept"] = f"{len(kept)} of {len(first.graph.entities)}"
    return timings


def describe_machine() -> dict[str, object]:
    """Return the CPU model, the number of cores and the Python version."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}


def run(arguments: argparse.Namespace) -> dict[str, object]:
    """Extract both corpora, score the labelled pairs and time the podcast graph."""
    pairs = load_pairs(arguments.pairs)
    started = time.perf_counter()
    corpora = extract_corpora()
    extract_seconds = time.perf_counter() - started
    embed = None if arguments.no_embed else make_encoder(arguments.cache)

    timings = time_podcast_graph(corpora["podcasts"], embed, arguments.threshold)
    entities = {}
    for source, corpus in corpora.items():
        resolution = resolve(TENANT, source, corpus.results, embed, arguments.threshold, document_of_chunk=corpus.document_of_chunk)
        entities[source] = entity_of_names(resolution, corpus.results)
    return {
        "pairs_file": str(arguments.pairs),
        "embedding": "none" if embed is None else "all-MiniLM-L6-v2, cached",
        "threshold": arguments.threshold,
        "extract_seconds": round(extract_seconds, 2),
        "quality": score_pairs(pairs, entities),
        "podcast_graph": timings,
        "machine": describe_machine(),
    }


def print_report(report: dict[str, object], show_errors: bool) -> None:
    """Print the figures for a reader."""
    quality = report["quality"]
    timings = report["podcast_graph"]
    machine = report["machine"]

    print(f"pairs              {quality['pairs']} ({quality['same']} same, {quality['different']} different) from {report['pairs_file']}")
    print(f"embedding          {report['embedding']}, threshold {report['threshold']}")
    print(f"precision          {quality['precision']} (goal >= {GOAL_PRECISION})")
    print(f"recall             {quality['recall']} (goal >= {GOAL_RECALL})")
    print(
        f"errors             {quality['false_merges']} false merges, {quality['missed_merges']} missed merges, "
        f"{quality['missing_names']} pairs with a name not in the graph"
    )
    for key in ("by_split", "by_source", "by_category"):
        for name, figures in quality[key].items():
            print(
                f"  {name:<16} {figures['pairs']:>4} pairs  precision {figures['precision']:.3f}  recall {figures['recall']:.3f}"
                f"  false {figures['false_merges']}  missed {figures['missed_merges']}"
            )

    print(f"podcast graph      {timings['names']} names -> {timings['entities']} entities; merges {timings['merges_by_rule']}")
    print(f"full resolution    {timings['full_first_run_seconds']} s first run, {timings['full_cached_run_seconds']} s with cached vectors")
    print(
        f"incremental        {timings['incremental_seconds']} s for the last {timings['incremental_chunks_added']} chunks "
        f"({timings['incremental_new_names']} new names); entity ids kept: {timings['incremental_ids_kept']}"
    )
    print(f"extraction         {report['extract_seconds']} s for both corpora")
    print(f"machine            {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")

    if show_errors:
        for heading in ("false_merge_pairs", "missed_merge_pairs"):
            print(f"\n{heading.replace('_', ' ')}:")
            for line in quality[heading]:
                print(f"  {line}")


def main() -> None:
    """Run the benchmark and print its figures."""
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments()
    report = run(arguments)
    if arguments.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report, arguments.errors)


if __name__ == "__main__":
    main()
