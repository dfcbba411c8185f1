"""Hierarchical Leiden communities over the entity graph, each with an extractive summary.

Level 0 is Leiden with the modularity objective on the entity graph. Each higher level runs Leiden
again on the graph contracted to the communities of the level below, so every community nests in
exactly one community of the next level. Every entity belongs to one community at every level.
Isolated entities form singleton communities.
"""

import logging
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import igraph

from graphmem_core import ids
from graphmem_core.errors import InvalidInputError
from graphmem_core.models import Community, CommunitySummary, Entity, Relation

logger = logging.getLogger(__name__)

# Leiden runs until an iteration no longer improves the partition, so reruns reach a stable result.
LEIDEN_ITERATIONS = -1

# Level 0 uses standard modularity (resolution 1). On the contracted graph that partition is
# already a local optimum, so each higher level multiplies the resolution by this factor, which
# favours larger communities, until some communities merge.
LEVEL_RESOLUTION_FACTOR = 0.5

# Below this resolution modularity barely penalises merging, so Leiden joins every connected group
# of communities. A level that merges nothing even here ends the hierarchy.
MIN_RESOLUTION = 1e-4

# Summary sizes: enough to name a community and show its main facts in a prompt or a listing.
MAX_TOP_ENTITIES = 10
MAX_KEY_RELATIONS = 10
TITLE_ENTITY_COUNT = 3
MAX_SENTENCE_CHARS = 300


@dataclass(frozen=True)
class _Level:
    """One level of the hierarchy: the community index of each entity, and how it was found."""

    membership: list[int]
    resolution: float
    modularity: float


def detect_communities(
    tenant: str,
    memory: str,
    entities: Sequence[Entity],
    relations: Sequence[Relation],
    chunk_texts: Mapping[str, str],
    seed: int = 42,
    max_levels: int = 3,
) -> list[Community]:
    """Detect Leiden communities on up to `max_levels` levels and summarise each one.

    `relations` must connect entities in `entities`. `chunk_texts` maps chunk ids to their text
    and supplies each summary's representative sentence. The same input and `seed` give the same
    communities and ids. The result is sorted by level, then id.
    """
    if max_levels < 1:
        raise InvalidInputError(f"max_levels={max_levels} is invalid: set it to 1 or more")

    started = time.perf_counter()
    logger.info("Detecting communities over %d entities and %d relations in %s/%s", len(entities), len(relations), tenant, memory)
    if not entities:
        logger.info("No entities in %s/%s, so there are no communities", tenant, memory)
        return []

    ordered = sorted(entities, key=lambda entity: entity.id)
    index_of = {entity.id: index for index, entity in enumerate(ordered)}
    if len(index_of) != len(ordered):
        raise InvalidInputError("entities contain duplicate ids: pass each entity once")
    graph = _build_graph(len(ordered), relations, index_of)
    levels = _detect_levels(graph, seed, max_levels)
    communities = _build_communities(tenant, memory, ordered, relations, index_of, chunk_texts, levels)

    logger.info(
        "Detected %d communities on %d levels in %s/%s (%.2f s)",
        len(communities),
        len(levels),
        tenant,
        memory,
        time.perf_counter() - started,
    )
    return communities


def _build_graph(vertex_count: int, relations: Sequence[Relation], index_of: Mapping[str, int]) -> igraph.Graph:
    """Build the undirected entity graph, where relations between the same two entities add up their weights."""
    weights: dict[tuple[int, int], float] = defaultdict(float)
    for relation in relations:
        source, target = _relation_endpoints(relation, index_of)
        if not relation.weight >= 0.0 or relation.weight == float("inf"):
            raise InvalidInputError(f"relation {relation.id} has weight {relation.weight}: weights must be finite and not negative")
        if source == target or relation.weight == 0.0:
            continue
        weights[(min(source, target), max(source, target))] += relation.weight

    edges = sorted(weights)
    graph = igraph.Graph(n=vertex_count, edges=edges, directed=False)
    graph.es["weight"] = [weights[edge] for edge in edges]
    return graph


def _relation_endpoints(relation: Relation, index_of: Mapping[str, int]) -> tuple[int, int]:
    for entity_id in (relation.source_id, relation.target_id):
        if entity_id not in index_of:
            raise InvalidInputError(
                f"relation {relation.id} refers to entity {entity_id}, which is not in the entities given: "
                "pass the entities and relations of the same resolved graph"
            )
    return index_of[relation.source_id], index_of[relation.target_id]


def _detect_levels(graph: igraph.Graph, seed: int, max_levels: int) -> list[_Level]:
    """Run Leiden level by level on ever more contracted graphs and return each level's entity membership.

    igraph draws random numbers from one process-wide generator, so this seeds it for the call and
    puts back the `random` module, igraph's default, afterwards.
    NOTE: two threads detecting communities at once share that generator, so their results may vary.
    """
    igraph.set_random_number_generator(random.Random(seed))
    try:
        base_membership = _leiden(graph, 1.0)
        levels = [_Level(base_membership, 1.0, _modularity(graph, base_membership))]
        _log_level(0, levels[0])

        current = graph
        membership_of_vertex = base_membership
        while len(levels) < max_levels:
            current = _contract(current, membership_of_vertex)
            merged = _merge_communities(current, levels[-1].resolution)
            if merged is None:
                break
            membership_of_vertex, resolution = merged
            entity_membership = [membership_of_vertex[community] for community in levels[-1].membership]
            levels.append(_Level(entity_membership, resolution, _modularity(graph, entity_membership)))
            _log_level(len(levels) - 1, levels[-1])
    finally:
        igraph.set_random_number_generator(random)
    return levels


def _leiden(graph: igraph.Graph, resolution: float) -> list[int]:
    """Return Leiden's modularity partition of `graph`, because igraph's default objective is CPM.

    Node weights are passed explicitly as strengths that count each self-loop twice. With igraph's
    default node weights (python-igraph 1.0), Leiden on a contracted graph optimises a quality
    that differs from the graph's modularity and merges communities that modularity keeps apart.
    """
    if graph.ecount() == 0:
        return list(range(graph.vcount()))
    clustering = graph.community_leiden(
        objective_function="modularity",
        weights="weight",
        resolution=resolution,
        n_iterations=LEIDEN_ITERATIONS,
        node_weights=graph.strength(weights="weight", loops=True),
    )
    return list(clustering.membership)


def _contract(graph: igraph.Graph, membership: list[int]) -> igraph.Graph:
    """Return `graph` with each community merged into one vertex and parallel edges summed.

    Edges inside a community become a self-loop that keeps their weight, so the community's degree,
    and with it modularity, stays as in the original graph.
    """
    contracted = graph.copy()
    contracted.contract_vertices(membership, combine_attrs=None)
    contracted.simplify(multiple=True, loops=False, combine_edges={"weight": "sum"})
    return contracted


def _merge_communities(graph: igraph.Graph, resolution: float) -> tuple[list[int], float] | None:
    """Partition the contracted `graph` at lower and lower resolutions until communities merge.

    Return the membership and the resolution that merged, or None when nothing can merge because no
    edge joins two different communities.
    """
    if all(graph.is_loop()):
        return None

    while resolution > MIN_RESOLUTION:
        resolution *= LEVEL_RESOLUTION_FACTOR
        membership = _leiden(graph, resolution)
        if max(membership) + 1 < graph.vcount():
            return membership, resolution
    return None


def _modularity(graph: igraph.Graph, membership: list[int]) -> float:
    if graph.ecount() == 0:
        return 0.0
    return float(graph.modularity(membership, weights="weight"))


def _log_level(level: int, found: _Level) -> None:
    logger.info(
        "Level %d: %d communities, modularity %.4f at resolution %.4g",
        level,
        max(found.membership) + 1,
        found.modularity,
        found.resolution,
    )


def _build_communities(
    tenant: str,
    memory: str,
    entities: list[Entity],
    relations: Sequence[Relation],
    index_of: Mapping[str, int],
    chunk_texts: Mapping[str, str],
    levels: list[_Level],
) -> list[Community]:
    """Turn level memberships into communities with ids, parent links and summaries."""
    members_by_level = [_group_members(level.membership) for level in levels]
    ids_by_level = [
        [ids.community_id(tenant, memory, level, [entities[member].id for member in members]) for members in groups]
        for level, groups in enumerate(members_by_level)
    ]

    communities = []
    for level, groups in enumerate(members_by_level):
        membership = levels[level].membership
        summaries = _summarise_level(entities, relations, index_of, chunk_texts, membership, groups)
        for community, members in enumerate(groups):
            parent_id = None
            if level + 1 < len(levels):
                parent_id = ids_by_level[level + 1][levels[level + 1].membership[members[0]]]
            summary = summaries[community]
            communities.append(
                Community(
                    id=ids_by_level[level][community],
                    tenant=tenant,
                    memory=memory,
                    level=level,
                    parent_id=parent_id,
                    title=", ".join(summary.top_entities[:TITLE_ENTITY_COUNT]),
                    member_ids=[entities[member].id for member in members],
                    summary=summary,
                )
            )
    communities.sort(key=lambda community: (community.level, community.id))
    return communities


def _group_members(membership: list[int]) -> list[list[int]]:
    """Return the entity indexes of each community, in ascending order, so member ids come sorted."""
    groups: list[list[int]] = [[] for _ in range(max(membership) + 1)]
    for entity, community in enumerate(membership):
        groups[community].append(entity)
    return groups


def _summarise_level(
    entities: list[Entity],
    relations: Sequence[Relation],
    index_of: Mapping[str, int],
    chunk_texts: Mapping[str, str],
    membership: list[int],
    groups: list[list[int]],
) -> list[CommunitySummary]:
    """Build the extractive summary of every community of one level."""
    internal: list[list[Relation]] = [[] for _ in groups]
    degree = [0.0] * len(entities)
    for relation in relations:
        source, target = index_of[relation.source_id], index_of[relation.target_id]
        if source != target and membership[source] == membership[target]:
            internal[membership[source]].append(relation)
            degree[source] += relation.weight
            degree[target] += relation.weight

    summaries = []
    for members, community_relations in zip(groups, internal, strict=True):
        ranked = sorted(members, key=lambda member: (-degree[member], -entities[member].mention_count, entities[member].name, entities[member].id))
        heaviest = sorted(community_relations, key=lambda relation: (-relation.weight, relation.id))
        summaries.append(
            CommunitySummary(
                top_entities=[entities[member].name for member in ranked[:MAX_TOP_ENTITIES]],
                key_relations=[_describe_relation(relation, entities, index_of) for relation in heaviest[:MAX_KEY_RELATIONS]],
                representative_sentence=_representative_sentence(heaviest, chunk_texts),
            )
        )
    return summaries


def _describe_relation(relation: Relation, entities: list[Entity], index_of: Mapping[str, int]) -> str:
    source = entities[index_of[relation.source_id]].name
    target = entities[index_of[relation.target_id]].name
    return f"{source} -[{relation.type}]-> {target}"


def _representative_sentence(heaviest: list[Relation], chunk_texts: Mapping[str, str]) -> str | None:
    """Return the first evidence sentence with available text, of the heaviest relation that has one."""
    for relation in heaviest:
        for evidence in relation.provenance:
            text = chunk_texts.get(evidence.chunk_id)
            if text is None or not 0 <= evidence.start < evidence.end <= len(text):
                continue
            sentence = " ".join(text[evidence.start : evidence.end].split())
            if sentence:
                return _shorten(sentence)
    return None


def _shorten(sentence: str) -> str:
    """Cut `sentence` at a word boundary to at most MAX_SENTENCE_CHARS characters, marking the cut with an ellipsis."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    cut = sentence[: MAX_SENTENCE_CHARS - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "\u2026"
