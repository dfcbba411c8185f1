"""Entity resolution across a whole namespace: mentions in, entities, relations, mention links and merge records out.

Mentions with the same entity type and folded name form one name node. `entity_clustering` groups
the nodes into entities with alias rules and, given an embed function, a similarity stage, and
records every merge with its rule and scores. A full run compares all names. An incremental run
starts from the previous graph: names already resolved keep their entity, and only new names are
compared with each other and with the existing entities.

Entity ids stay stable across runs: an entity keeps the canonical name and type it had in the
previous graph while that name is still one of its names, and its id derives from both.
"""

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from graphmem_core import ids
from graphmem_core.entity_clustering import (
    EmbedFunction,
    EntityClusterer,
    MergeStep,
    NameNode,
    canonical_surface,
    excluded_partners,
)
from graphmem_core.errors import InvalidInputError
from graphmem_core.models import (
    Entity,
    EntityType,
    ExtractionResult,
    MentionLink,
    MergeExclusion,
    MergeRecord,
    Relation,
    RelationEvidence,
    ResolvedGraph,
)
from graphmem_core.name_matching import NameForm, fold_name

__all__ = [
    "MAX_EVIDENCE_PER_RELATION",
    "RESOLVER_VERSION",
    "EmbedFunction",
    "PriorResolution",
    "Resolution",
    "ResolutionStats",
    "fold_name",
    "make_exclusion",
    "resolve",
    "resolve_entities",
]

logger = logging.getLogger(__name__)

# Stored with the merge records. A graph made by another version is resolved again in full.
RESOLVER_VERSION = "4"

# A relation stated in thousands of sentences needs only a sample of them as evidence. The weight
# still counts every sentence.
MAX_EVIDENCE_PER_RELATION = 50


@dataclass(frozen=True)
class PriorResolution:
    """The stored result of the previous resolution run, which the next run keeps ids from."""

    entities: Sequence[Entity]
    mention_links: Sequence[MentionLink]
    merges: Sequence[MergeRecord] = ()


@dataclass(frozen=True)
class ResolutionStats:
    """Counts of one resolution run."""

    mode: str
    mentions: int
    names: int
    new_names: int
    merges_by_rule: dict[str, int] = field(default_factory=dict)
    kept_apart: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Resolution(NamedTuple):
    """The resolved graph, the records of the merges behind it, and counts of the run."""

    graph: ResolvedGraph
    merges: list[MergeRecord]
    stats: ResolutionStats


class _FlatMention(NamedTuple):
    node: int
    chunk_id: str
    start: int
    end: int
    text: str


def resolve_entities(
    tenant: str,
    memory: str,
    results: Sequence[ExtractionResult],
    embed: EmbedFunction | None,
    threshold: float = 0.9,
) -> ResolvedGraph:
    """Resolve every mention of a namespace to entities and merge the relations between them.

    This is a full run without a previous graph or exclusions. `resolve` takes both.
    """
    return resolve(tenant, memory, results, embed, threshold).graph


def resolve(
    tenant: str,
    memory: str,
    results: Sequence[ExtractionResult],
    embed: EmbedFunction | None,
    threshold: float = 0.9,
    *,
    exclusions: Sequence[MergeExclusion] = (),
    prior: PriorResolution | None = None,
    incremental: bool = False,
    document_of_chunk: Mapping[str, str] | None = None,
) -> Resolution:
    """Resolve every mention of a namespace and return the graph with a record of every merge.

    `results` must contain every extraction result of the namespace, because the graph is rebuilt
    from all of them. `embed` maps names to unit-norm float32 rows, and None skips the similarity
    stage. `threshold` is the minimum cosine similarity of a similarity merge. No merge joins two
    names of one exclusion. With `prior`, entities keep their previous ids. With `incremental` as
    well, names already resolved in `prior` keep their entity and only new names are compared.
    `document_of_chunk` maps chunk ids to document ids, which the lone-name rules use as context. A
    chunk missing from it counts as a document of its own.
    """
    if not 0.0 < threshold <= 1.0:
        raise InvalidInputError(f"threshold={threshold} is out of range: set a cosine similarity in (0, 1]")
    if incremental and prior is None:
        raise InvalidInputError("incremental resolution needs the previous resolution: pass prior, or set incremental=False")

    started = time.perf_counter()
    mode = "incremental" if incremental else "full"
    mention_total = sum(len(result.mentions) for result in results)
    logger.info("Resolving %d mentions from %d extraction results in %s/%s (%s)", mention_total, len(results), tenant, memory, mode)

    nodes, mentions_by_result = _build_name_nodes(results, document_of_chunk or {})
    if prior is not None:
        _mark_previous_entities(nodes, mentions_by_result, prior)

    exclusion_keys = excluded_partners(_exclusion_keys(exclusion) for exclusion in exclusions)
    clusterer = EntityClusterer(nodes, exclusion_keys, incremental=incremental)
    clusterer.apply_rules()
    if embed is not None:
        clusterer.merge_similar(embed, threshold)

    clusters = clusterer.clusters()
    entity_of_node, entities = _build_entities(tenant, memory, nodes, clusters, prior)
    mention_links = _build_mention_links(mentions_by_result, entity_of_node)
    relations = _merge_relations(tenant, memory, results, mentions_by_result, entity_of_node)
    merges = _merge_records(tenant, memory, clusterer, entity_of_node, prior if incremental else None, entities)

    stats = ResolutionStats(
        mode=mode,
        mentions=mention_total,
        names=len(nodes),
        new_names=sum(1 for node in nodes if node.previous_entity is None),
        merges_by_rule=dict(sorted(Counter(step.rule for step in clusterer.steps).items())),
        kept_apart=dict(sorted(clusterer.rejected.items())),
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "Resolved %d mentions into %d entities and %d relations in %s/%s (%s, %d names, %d new, merges %s, %.2f s)",
        mention_total,
        len(entities),
        len(relations),
        tenant,
        memory,
        mode,
        stats.names,
        stats.new_names,
        stats.merges_by_rule,
        stats.seconds,
    )
    graph = ResolvedGraph(entities=entities, relations=relations, mention_links=mention_links)
    return Resolution(graph=graph, merges=merges, stats=stats)


def make_exclusion(tenant: str, memory: str, first: str, second: str, note: str = "") -> MergeExclusion:
    """Return the exclusion that keeps two names apart, with an id derived from their folded forms."""
    keys = sorted((fold_name(first), fold_name(second)))
    if not all(keys):
        raise InvalidInputError(f"cannot exclude the merge of {first!r} and {second!r}: both names must contain text")
    if keys[0] == keys[1]:
        raise InvalidInputError(
            f"cannot exclude the merge of {first!r} and {second!r}: they fold to the same name {keys[0]!r}, "
            "which always forms one entity per type"
        )
    return MergeExclusion(
        id=ids.make_id("exc", tenant, memory, *keys), tenant=tenant, memory=memory, first=first, second=second, note=note
    )


def _exclusion_keys(exclusion: MergeExclusion) -> tuple[str, str]:
    return fold_name(exclusion.first), fold_name(exclusion.second)


def _build_name_nodes(
    results: Sequence[ExtractionResult], document_of_chunk: Mapping[str, str]
) -> tuple[list[NameNode], list[list[_FlatMention]]]:
    """Group mentions by (type, folded key), with nodes sorted so that input order does not matter."""
    node_key_of: dict[tuple[str, EntityType], tuple[str, str]] = {}
    for result in results:
        for mention in result.mentions:
            if (mention.text, mention.type) not in node_key_of:
                node_key_of[(mention.text, mention.type)] = (mention.type.value, fold_name(mention.text))

    ordered = sorted(set(node_key_of.values()))
    index_of = {node_key: index for index, node_key in enumerate(ordered)}
    node_of = {text_and_type: index_of[node_key] for text_and_type, node_key in node_key_of.items()}
    surface_counts: list[Counter[str]] = [Counter() for _ in ordered]
    chunk_ids: list[set[str]] = [set() for _ in ordered]

    mentions_by_result: list[list[_FlatMention]] = []
    seen: set[_FlatMention] = set()
    for result in results:
        flat = []
        for mention in result.mentions:
            item = _FlatMention(node_of[(mention.text, mention.type)], mention.chunk_id, mention.start, mention.end, mention.text)
            flat.append(item)

            # The same span passed twice (a result given twice) counts once.
            if item not in seen:
                seen.add(item)
                surface_counts[item.node][" ".join(mention.text.split())] += 1
                chunk_ids[item.node].add(mention.chunk_id)
        mentions_by_result.append(flat)

    nodes = [
        NameNode(
            form=NameForm(key=key, type=EntityType(type_value), surfaces=tuple(sorted(surface_counts[index]))),
            surface_counts=surface_counts[index],
            chunk_ids=chunk_ids[index],
            document_ids={document_of_chunk.get(chunk_id, chunk_id) for chunk_id in chunk_ids[index]},
        )
        for index, (type_value, key) in enumerate(ordered)
    ]
    return nodes, mentions_by_result


def _mark_previous_entities(nodes: list[NameNode], mentions_by_result: list[list[_FlatMention]], prior: PriorResolution) -> None:
    """Set each node's `previous_entity` to the entity that its stored mention links point at."""
    entity_of_span = {(link.chunk_id, link.start, link.end, link.text): link.entity_id for link in prior.mention_links}
    known = {entity.id for entity in prior.entities}
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    for flat in mentions_by_result:
        for mention in flat:
            entity_id = entity_of_span.get((mention.chunk_id, mention.start, mention.end, mention.text))
            if entity_id in known:
                votes[mention.node][entity_id] += 1

    # A node's mentions all resolved to one entity, unless the previous run used other rules.
    for node, counts in votes.items():
        nodes[node].previous_entity = min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


def _build_entities(
    tenant: str,
    memory: str,
    nodes: list[NameNode],
    clusters: dict[int, list[int]],
    prior: PriorResolution | None,
) -> tuple[list[str], list[Entity]]:
    """Turn clusters into entities and return the entity id of every node and the entities sorted by id."""
    node_of_name = {(node.type, node.key): index for index, node in enumerate(nodes)}
    previous_of_node: dict[int, Entity] = {}
    for entity in prior.entities if prior is not None else ():
        index = node_of_name.get((entity.type, fold_name(entity.name)))
        if index is not None:
            previous_of_node[index] = entity

    entity_of_node = [""] * len(nodes)
    entities = []
    for members in clusters.values():
        counts: Counter[str] = Counter()
        for member in members:
            counts.update(nodes[member].surface_counts)

        claims = [previous_of_node[member] for member in members if member in previous_of_node]
        if claims:
            # NOTE: the previous name stays even when a better one arrives later ("Smith" before
            # "Jane Smith"), because the id derives from it. A rename needs a new entity id.
            previous = min(claims, key=lambda entity: (-entity.mention_count, entity.id))
            name, entity_type = previous.name, previous.type
        else:
            entity_type = _majority_type(nodes, members)
            name = canonical_surface(_name_candidates(nodes, members, entity_type))

        entity_id = ids.entity_id(tenant, memory, name, entity_type.value)
        for member in members:
            entity_of_node[member] = entity_id
        entities.append(
            Entity(
                id=entity_id,
                tenant=tenant,
                memory=memory,
                name=name,
                type=entity_type,
                aliases=sorted(surface for surface in counts if surface != name),
                mention_count=sum(counts.values()),
            )
        )
    entities.sort(key=lambda entity: entity.id)
    return entity_of_node, entities


def _name_candidates(nodes: list[NameNode], members: list[int], entity_type: EntityType) -> Counter[str]:
    """Return the surface counts a cluster's canonical name is chosen from.

    Only names of the entity's type qualify, so that (name, type) stays unique per entity. A
    person is named by a full name when the cluster has one, even when "Ben" is more frequent than
    "Ben Bloomberg".
    """
    typed = [member for member in members if nodes[member].type is entity_type]
    full_names = [member for member in typed if nodes[member].form.is_full_person_name]
    counts: Counter[str] = Counter()
    for member in full_names or typed:
        counts.update(nodes[member].surface_counts)
    return counts


def _majority_type(nodes: list[NameNode], members: list[int]) -> EntityType:
    """Return the type with the most mentions in a cluster, ties going to the alphabetically first."""
    weights: Counter[EntityType] = Counter()
    for member in members:
        weights[nodes[member].type] += sum(nodes[member].surface_counts.values())
    return min(weights.items(), key=lambda item: (-item[1], item[0].value))[0]


def _merge_records(
    tenant: str,
    memory: str,
    clusterer: EntityClusterer,
    entity_of_node: list[str],
    prior: PriorResolution | None,
    entities: list[Entity],
) -> list[MergeRecord]:
    """Return a record of every merge behind the graph, sorted by id.

    An incremental run keeps the previous records of the entities that still exist, because the
    merges they describe still hold.
    """
    records = {record.id: record for record in (prior.merges if prior is not None else ())}
    current = {entity.id for entity in entities}
    records = {record_id: record for record_id, record in records.items() if record.entity_id in current}
    for step in clusterer.steps:
        record = _merge_record(tenant, memory, clusterer, step, entity_of_node[step.first])
        records[record.id] = record
    return [records[record_id] for record_id in sorted(records)]


def _merge_record(tenant: str, memory: str, clusterer: EntityClusterer, step: MergeStep, entity_id: str) -> MergeRecord:
    first, second = sorted((step.first, step.second), key=lambda index: (clusterer.nodes[index].type.value, clusterer.nodes[index].key))
    node_a, node_b = clusterer.nodes[first], clusterer.nodes[second]
    return MergeRecord(
        id=ids.make_id("mrg", tenant, memory, step.rule, node_a.type.value, node_a.key, node_b.type.value, node_b.key),
        tenant=tenant,
        memory=memory,
        entity_id=entity_id,
        first=clusterer.display_name(first),
        first_type=node_a.type,
        second=clusterer.display_name(second),
        second_type=node_b.type,
        rule=step.rule,
        score=round(step.score, 4),
        features=step.features,
    )


def _build_mention_links(mentions_by_result: list[list[_FlatMention]], entity_of_node: list[str]) -> list[MentionLink]:
    """Return one link per distinct mention, sorted by entity, chunk and span."""
    spans = {
        (entity_of_node[mention.node], mention.chunk_id, mention.start, mention.end, mention.text)
        for flat in mentions_by_result
        for mention in flat
    }
    return [
        MentionLink(entity_id=entity_id, chunk_id=chunk_id, start=start, end=end, text=text)
        for entity_id, chunk_id, start, end, text in sorted(spans)
    ]


def _merge_relations(
    tenant: str,
    memory: str,
    results: Sequence[ExtractionResult],
    mentions_by_result: list[list[_FlatMention]],
    entity_of_node: list[str],
) -> list[Relation]:
    """Merge extracted relations per (source, type, target); the weight counts distinct evidence sentences.

    Each evidence sentence keeps the extractor's description, confidence and validity dates. When
    one sentence states the relation twice, the statement with the highest confidence is kept.
    """
    evidence: dict[tuple[str, str, str], dict[tuple[str, int, int], RelationEvidence]] = defaultdict(dict)
    for result, flat in zip(results, mentions_by_result, strict=True):
        for relation in result.relations:
            for index in (relation.source, relation.target):
                if not 0 <= index < len(flat):
                    raise InvalidInputError(
                        f"relation {relation.type!r} in chunk {result.chunk_id!r} refers to mention {index}, "
                        f"but the result has {len(flat)} mentions: fix the extractor output"
                    )
            source_id = entity_of_node[flat[relation.source].node]
            target_id = entity_of_node[flat[relation.target].node]
            if source_id == target_id:
                continue

            span = (relation.chunk_id, relation.start, relation.end)
            item = RelationEvidence(
                chunk_id=relation.chunk_id,
                start=relation.start,
                end=relation.end,
                description=relation.description,
                confidence=relation.confidence,
                valid_from=relation.valid_from,
                valid_to=relation.valid_to,
            )
            spans = evidence[(source_id, relation.type, target_id)]
            if span not in spans or _evidence_rank(item) > _evidence_rank(spans[span]):
                spans[span] = item

    relations = []
    for (source_id, relation_type, target_id), spans in evidence.items():
        provenance = [spans[span] for span in sorted(spans)]
        relations.append(
            Relation(
                id=ids.relation_id(tenant, memory, source_id, relation_type, target_id),
                tenant=tenant,
                memory=memory,
                source_id=source_id,
                target_id=target_id,
                type=relation_type,
                weight=float(len(spans)),
                provenance=provenance[:MAX_EVIDENCE_PER_RELATION],
            )
        )
    relations.sort(key=lambda relation: relation.id)
    return relations


def _evidence_rank(item: RelationEvidence) -> tuple[float, str]:
    """Return the order in which statements of one sentence are preferred: confidence, then the JSON for a fixed tie-break."""
    return (item.confidence if item.confidence is not None else -1.0, item.model_dump_json())
