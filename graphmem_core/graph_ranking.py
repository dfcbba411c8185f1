"""Scores of the graph query modes, computed on a `NamespaceGraph` without touching the store.

The local and hybrid modes spread relevance with personalised PageRank (PPR). The walk restarts at
the query's entities (found by name) and at the chunks that vector search ranks best, and it moves
along relation edges and mention edges. So a chunk that the query's entities reach within a few hops
gains mass even when its text shares few words with the query. Chunk scores per mode:

- naive: cosine similarity of the chunk vector to the query vector;
- global: cosine + `COMMUNITY_WEIGHT` x similarity of the best-matching community whose entities the
  chunk mentions, among the `GLOBAL_COMMUNITIES` community summaries closest to the query;
- local: the chunk's PPR mass divided by the largest chunk mass + `VECTOR_WEIGHT` x the naive score;
- hybrid: the same PPR term + `VECTOR_WEIGHT` x the global score.

The constants below were set on `benchmarks/retrieval.py` (MuSiQue, all-MiniLM-L6-v2, fast extractor),
where local mode reached recall@5 74.6 against 62.5 for vector search. The recall figures beside them
come from changing one constant at a time on that benchmark.
"""

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from graphmem_core.models import ChunkHit
from graphmem_core.query_graph import NamespaceGraph

# Same-type entity names at least this similar are merged by resolution by default, so a query name
# this close to an entity name is taken to mean that entity. 0.85 and 0.95 gave recall@5 within a point.
ENTITY_LINK_THRESHOLD = 0.9

# Entities linked per name found in the query: spelling variants of one name that resolution kept
# apart are all reached, while a vague name cannot seed dozens of entities.
ENTITY_LINKS_PER_NAME = 3

# Chunk seeds are a softmax of the cosine scores at this temperature, so a hit 0.1 below the best
# gets e^-2 (14 %) of its weight and one 0.2 below gets 2 %. Temperatures from 0.02 to 0.2 gave
# recall@5 from 75.0 to 73.1, and equal weights for all hits gave 59.8, below vector search alone.
CHUNK_SEED_TEMPERATURE = 0.05

# Share of the restart mass on the top chunks when the query also names entities; the rest goes to
# the entities. Shares from 0.05 to 0.75 gave recall@5 from 73.6 to 75.5.
CHUNK_SEED_SHARE = 0.5

# Weight of the vector score beside the PPR score, which is at most 1. It orders the chunks that the
# walk reaches alike or not at all. Weights from 0 to 0.1 gave recall@5 within a point, 0.2 a point less.
VECTOR_WEIGHT = 0.05

# Community summaries compared per query, and the weight of their similarity in a chunk's global
# score. On the benchmark's multi-hop questions a larger weight only lowers recall@5 (62.5 at 0, 61.2
# at 0.1, 59.3 at 0.3), so the weight stays small: global mode favours the chunks of the best
# communities without overriding vector similarity. In hybrid mode the term is also scaled by
# `VECTOR_WEIGHT`, which leaves the benchmark's ranking equal to local mode's.
GLOBAL_COMMUNITIES = 5
COMMUNITY_WEIGHT = 0.1

# Chunks taken per top community as global candidates, those mentioning its entities most often first.
CHUNKS_PER_COMMUNITY = 20


def link_query_entities(graph: NamespaceGraph, name_vectors: Mapping[str, np.ndarray]) -> dict[int, float]:
    """Return seed weights of the entities that the names found in the query refer to.

    A name links to the entities whose name or alias equals it ignoring case (weight 1) and to the
    `ENTITY_LINKS_PER_NAME` entities whose name vectors are at least `ENTITY_LINK_THRESHOLD` similar
    (weight: the cosine). Each weight is divided by the number of chunks that mention the entity,
    because a name found in many chunks is weak evidence for any one of them.
    """
    similarity: dict[int, float] = {}
    for name, vector in name_vectors.items():
        for row in graph.rows_by_name.get(name.casefold(), ()):
            similarity[row] = 1.0
        if graph.entity_count == 0:
            continue
        scores = graph.name_vectors @ np.asarray(vector, dtype=np.float32)
        best = np.argsort(-scores, kind="stable")[:ENTITY_LINKS_PER_NAME]
        for row in best.tolist():
            score = float(scores[row])
            if score >= ENTITY_LINK_THRESHOLD:
                similarity[row] = max(similarity.get(row, 0.0), min(score, 1.0))

    return {row: score / max(graph.entity_chunk_count[row], 1.0) for row, score in similarity.items()}


def chunk_seed_weights(graph: NamespaceGraph, hits: Sequence[ChunkHit]) -> dict[int, float]:
    """Return seed weights of the vector-search hits: a softmax of their cosine at `CHUNK_SEED_TEMPERATURE`."""
    rows = [graph.chunk_row.get(hit.chunk.id) for hit in hits]
    scores = np.array([hit.score for hit, row in zip(hits, rows, strict=True) if row is not None], dtype=np.float64)
    known = [row for row in rows if row is not None]
    if not known:
        return {}
    weights = np.exp((scores - scores.max()) / CHUNK_SEED_TEMPERATURE)
    return {graph.chunk_vertex(row): float(weight) for row, weight in zip(known, weights.tolist(), strict=True)}


def restart_distribution(entity_seeds: Mapping[int, float], chunk_seeds: Mapping[int, float]) -> dict[int, float]:
    """Combine entity and chunk seeds into one restart distribution that sums to 1 (or is empty).

    Each group is normalised on its own. When both are present the chunks get `CHUNK_SEED_SHARE` of
    the mass, otherwise the group present gets all of it.
    """
    groups = [(seeds, sum(seeds.values())) for seeds in (entity_seeds, chunk_seeds)]
    groups = [(seeds, total) for seeds, total in groups if total > 0.0]
    if not groups:
        return {}

    shares = [1.0] if len(groups) == 1 else [1.0 - CHUNK_SEED_SHARE, CHUNK_SEED_SHARE]
    distribution: dict[int, float] = {}
    for (seeds, total), share in zip(groups, shares, strict=True):
        for vertex, weight in seeds.items():
            distribution[vertex] = distribution.get(vertex, 0.0) + share * weight / total
    return distribution


def rank_communities(community_vectors: np.ndarray, query_vector: np.ndarray, limit: int = GLOBAL_COMMUNITIES) -> list[tuple[int, float]]:
    """Return (community index, cosine) of the `limit` community summaries most similar to the query."""
    if community_vectors.shape[0] == 0:
        return []
    scores = community_vectors @ np.asarray(query_vector, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")[:limit]
    return [(int(index), float(scores[index])) for index in order]


def community_similarity_by_chunk(graph: NamespaceGraph, ranked: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Return, for each chunk row that mentions an entity of a ranked community, the best such community's similarity."""
    best: dict[int, float] = {}
    # Best first, so the first community that reaches a chunk sets its score.
    for index, score in sorted(ranked, key=lambda item: -item[1]):
        for chunk in graph.community_chunks(index):
            best.setdefault(chunk, score)
    return best


def community_chunk_candidates(graph: NamespaceGraph, ranked: Sequence[tuple[int, float]]) -> list[int]:
    """Return up to `CHUNKS_PER_COMMUNITY` chunk rows per ranked community, those with most mentions of its entities first."""
    candidates: dict[int, None] = {}
    for index, _ in ranked:
        counts = graph.community_chunks(index)
        ordered = sorted(counts, key=lambda chunk: (-counts[chunk], graph.chunk_ids[chunk]))
        candidates.update(dict.fromkeys(ordered[:CHUNKS_PER_COMMUNITY]))
    return list(candidates)


def top_rows(scores: np.ndarray, limit: int, rows: Iterable[int] | None = None) -> list[int]:
    """Return up to `limit` rows with a positive score, highest first, ties by row."""
    if limit <= 0:
        return []
    if rows is None:
        candidates = np.flatnonzero(scores > 0.0)
    else:
        candidates = np.fromiter(rows, dtype=np.int64)
        candidates = candidates[scores[candidates] > 0.0]
    if candidates.size > limit:
        # Keep the rows that score at least the limit-th best score, ties included, before the full sort.
        threshold = np.partition(scores[candidates], candidates.size - limit)[candidates.size - limit]
        candidates = candidates[scores[candidates] >= threshold]
    order = np.lexsort((candidates, -scores[candidates]))[:limit]
    return candidates[order].tolist()
