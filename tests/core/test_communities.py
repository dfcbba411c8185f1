"""Tests of hierarchical Leiden communities and their extractive summaries."""

import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pytest

from graphmem_core import ids
from graphmem_core.communities import MAX_SENTENCE_CHARS, MAX_TOP_ENTITIES, detect_communities
from graphmem_core.errors import InvalidInputError
from graphmem_core.models import (
    Community,
    Entity,
    EntityType,
    ExtractedRelation,
    ExtractionResult,
    Mention,
    Relation,
    RelationEvidence,
)
from graphmem_core.resolution import resolve_entities

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"

CLUSTER_COUNT = 6
CLUSTER_SIZE = 8


def make_entity(name: str, mention_count: int = 1) -> Entity:
    return Entity(
        id=ids.entity_id("t", "m", name, EntityType.OTHER.value),
        tenant="t",
        memory="m",
        name=name,
        type=EntityType.OTHER,
        mention_count=mention_count,
    )


def make_relation(source: Entity, target: Entity, weight: float = 1.0, label: str = "related_to", evidence: tuple[str, int, int] = ("c0", 0, 0)) -> Relation:
    chunk_id, start, end = evidence
    return Relation(
        id=ids.relation_id("t", "m", source.id, label, target.id),
        tenant="t",
        memory="m",
        source_id=source.id,
        target_id=target.id,
        type=label,
        weight=weight,
        provenance=[RelationEvidence(chunk_id=chunk_id, start=start, end=end)],
    )


def planted_graph() -> tuple[list[Entity], list[Relation], dict[str, str], list[set[str]]]:
    """Build six dense clusters, joined in two groups of three by single edges, plus three isolated entities.

    Return the entities, relations, chunk texts and the entity ids of each planted cluster.
    """
    rng = random.Random(11)
    entities = [make_entity(f"Node {cluster}-{member}") for cluster in range(CLUSTER_COUNT) for member in range(CLUSTER_SIZE)]
    isolated = [make_entity(f"Loner {index}") for index in range(3)]
    chunk_texts = {}
    relations = []

    for cluster in range(CLUSTER_COUNT):
        members = entities[cluster * CLUSTER_SIZE : (cluster + 1) * CLUSTER_SIZE]
        sentence = f"Sentence   about\n cluster {cluster}."
        chunk_texts[f"c{cluster}"] = f"Intro. {sentence}"
        evidence = (f"c{cluster}", len("Intro. "), len("Intro. ") + len(sentence))
        for first in range(CLUSTER_SIZE):
            # A ring keeps every cluster connected, and random chords make it dense.
            relations.append(make_relation(members[first], members[(first + 1) % CLUSTER_SIZE], weight=2.0, evidence=evidence))
            for second in range(first + 2, CLUSTER_SIZE):
                if rng.random() < 0.6:
                    relations.append(make_relation(members[first], members[second], evidence=evidence))

    for left, right in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5)]:
        relations.append(make_relation(entities[left * CLUSTER_SIZE], entities[right * CLUSTER_SIZE + 1], label="links", evidence=("missing", 0, 5)))
    # One weak bridge joins the two groups, so a high level can merge them.
    relations.append(make_relation(entities[2 * CLUSTER_SIZE + 3], entities[3 * CLUSTER_SIZE + 3], weight=0.5, label="bridges"))

    clusters = [{entity.id for entity in entities[cluster * CLUSTER_SIZE : (cluster + 1) * CLUSTER_SIZE]} for cluster in range(CLUSTER_COUNT)]
    return entities + isolated, relations, chunk_texts, clusters


def by_level(communities: list[Community]) -> dict[int, list[Community]]:
    levels: dict[int, list[Community]] = defaultdict(list)
    for community in communities:
        levels[community.level].append(community)
    return dict(levels)


def assert_hierarchy_consistent(communities: list[Community], entities: list[Entity]) -> None:
    """Check coverage, ids and parent links of every level."""
    entity_ids = sorted(entity.id for entity in entities)
    levels = by_level(communities)
    assert sorted(levels) == list(range(len(levels)))
    by_id = {community.id: community for community in communities}
    assert len(by_id) == len(communities)

    for level, members in levels.items():
        covered = sorted(member for community in members for member in community.member_ids)
        assert covered == entity_ids, f"level {level} does not cover every entity exactly once"
        for community in members:
            assert community.member_ids == sorted(community.member_ids)
            assert community.id == ids.community_id("t", "m", level, community.member_ids)

    top = max(levels)
    for community in communities:
        if community.level == top:
            assert community.parent_id is None
            continue
        parent = by_id[community.parent_id]
        assert parent.level == community.level + 1
        assert set(community.member_ids) <= set(parent.member_ids)

    for level in range(1, top + 1):
        for parent in levels[level]:
            children = [community for community in levels[level - 1] if community.parent_id == parent.id]
            assert sorted(member for child in children for member in child.member_ids) == parent.member_ids


def test_planted_clusters_found_at_level_zero():
    entities, relations, chunk_texts, clusters = planted_graph()
    communities = detect_communities("t", "m", entities, relations, chunk_texts)
    level_zero = [set(community.member_ids) for community in by_level(communities)[0]]

    for cluster in clusters:
        assert cluster in level_zero
    assert sum(1 for community in level_zero if len(community) == 1) == 3


def test_at_least_two_levels():
    entities, relations, chunk_texts, _ = planted_graph()
    communities = detect_communities("t", "m", entities, relations, chunk_texts)
    levels = by_level(communities)

    assert len(levels) >= 2
    assert len(levels[1]) < len(levels[0])
    assert_hierarchy_consistent(communities, entities)


def test_max_levels_limits_depth():
    entities, relations, chunk_texts, _ = planted_graph()

    assert set(by_level(detect_communities("t", "m", entities, relations, chunk_texts, max_levels=1))) == {0}
    assert len(by_level(detect_communities("t", "m", entities, relations, chunk_texts, max_levels=2))) == 2


def test_seeded_reruns_agree():
    entities, relations, chunk_texts, _ = planted_graph()
    first = detect_communities("t", "m", entities, relations, chunk_texts, seed=7)
    second = detect_communities("t", "m", entities, relations, chunk_texts, seed=7)
    shuffled_entities = list(reversed(entities))
    shuffled_relations = list(reversed(relations))
    reordered = detect_communities("t", "m", shuffled_entities, shuffled_relations, chunk_texts, seed=7)

    assert first == second
    assert first == reordered


def test_summaries_filled():
    entities, relations, chunk_texts, _ = planted_graph()
    communities = detect_communities("t", "m", entities, relations, chunk_texts)
    names = {entity.id: entity.name for entity in entities}

    for community in communities:
        summary = community.summary
        member_names = {names[member] for member in community.member_ids}
        assert summary.top_entities
        assert len(summary.top_entities) <= MAX_TOP_ENTITIES
        assert set(summary.top_entities) <= member_names
        assert community.title.startswith(summary.top_entities[0])
        if len(community.member_ids) > 1:
            assert summary.key_relations
            assert all(re.fullmatch(r".+ -\[[a-z_]+\]-> .+", line) for line in summary.key_relations)
            assert summary.representative_sentence is not None
            assert summary.representative_sentence.startswith("Sentence about cluster")
        else:
            assert summary.key_relations == []
            assert summary.representative_sentence is None


def test_top_entities_ranked_by_internal_degree():
    hub, spokes = make_entity("Hub", mention_count=1), [make_entity(f"Spoke {index}", mention_count=9) for index in range(4)]
    relations = [make_relation(hub, spoke) for spoke in spokes]
    relations.append(make_relation(spokes[0], spokes[1], weight=3.0, label="heaviest", evidence=("c1", 0, 11)))
    communities = detect_communities("t", "m", [hub, *spokes], relations, {"c1": "Heavy link. Rest."})

    # The graph is connected, so the top level puts every entity in one community.
    whole = [community for community in communities if len(community.member_ids) == 5]
    assert len(whole) == 1
    summary = whole[0].summary
    assert summary.top_entities[:3] == ["Spoke 0", "Spoke 1", "Hub"]
    assert summary.key_relations[0] == "Spoke 0 -[heaviest]-> Spoke 1"
    assert summary.representative_sentence == "Heavy link."
    assert whole[0].title == "Spoke 0, Spoke 1, Hub"


def test_long_sentence_shortened():
    first, second = make_entity("Alpha"), make_entity("Beta")
    text = "word " * 200
    communities = detect_communities("t", "m", [first, second], [make_relation(first, second, evidence=("c1", 0, len(text)))], {"c1": text})
    sentence = communities[0].summary.representative_sentence

    assert sentence is not None
    assert len(sentence) <= MAX_SENTENCE_CHARS
    assert sentence.endswith("word\u2026")


def test_empty_graph():
    assert detect_communities("t", "m", [], [], {}) == []


def test_graph_without_edges():
    entities = [make_entity(f"Loner {index}") for index in range(5)]
    communities = detect_communities("t", "m", entities, [], {})

    assert len(communities) == 5
    assert {community.level for community in communities} == {0}
    assert all(community.parent_id is None for community in communities)
    assert_hierarchy_consistent(communities, entities)


def test_unknown_entity_rejected():
    known, unknown = make_entity("Known"), make_entity("Unknown")
    with pytest.raises(InvalidInputError, match="not in the entities given"):
        detect_communities("t", "m", [known], [make_relation(known, unknown)], {})


def test_invalid_max_levels_rejected():
    with pytest.raises(InvalidInputError, match="max_levels"):
        detect_communities("t", "m", [make_entity("Alpha")], [], {}, max_levels=0)


def musique_graph() -> tuple[list[Entity], list[Relation], dict[str, str]]:
    """Resolve a graph from real paragraphs: each title relates to the capitalised names in its sentences."""
    corpus_path = CORPORA / "musique" / "corpus.json"
    if not corpus_path.exists():
        pytest.skip(f"real corpus not found at {corpus_path}: place the shared corpora beside the project")

    name_pattern = re.compile(r"\b[A-Z][\w'-]*(?: (?:of |the )?[A-Z][\w'-]*)*")
    sentence_pattern = re.compile(r"[^\s.!?][^.!?\n]*[.!?]?")
    chunk_texts = {}
    results = []
    for index, paragraph in enumerate(json.loads(corpus_path.read_text(encoding="utf-8"))[:800]):
        chunk_id = f"p{index:04d}"
        title = paragraph["title"]
        text = f"{title}\n{paragraph['text']}"
        chunk_texts[chunk_id] = text
        mentions = [Mention(chunk_id=chunk_id, text=title, type=EntityType.OTHER, start=0, end=len(title))]
        relations = []
        for sentence in sentence_pattern.finditer(text, len(title) + 1):
            for name in name_pattern.finditer(text, sentence.start(), sentence.end()):
                if name.start() == sentence.start() and " " not in name.group():
                    continue  # a capitalised first word of a sentence is rarely a name
                mentions.append(Mention(chunk_id=chunk_id, text=name.group(), type=EntityType.OTHER, start=name.start(), end=name.end()))
                relations.append(
                    ExtractedRelation(chunk_id=chunk_id, source=0, target=len(mentions) - 1, type="mentions", start=sentence.start(), end=sentence.end())
                )
        results.append(ExtractionResult(chunk_id=chunk_id, mentions=mentions, relations=relations))

    graph = resolve_entities("t", "m", results, embed=None)
    return graph.entities, graph.relations, chunk_texts


def test_real_paragraph_graph():
    entities, relations, chunk_texts = musique_graph()
    assert len(entities) > 2_000

    communities = detect_communities("t", "m", entities, relations, chunk_texts)
    levels = by_level(communities)

    assert len(levels) >= 2
    assert len(levels[1]) < len(levels[0])
    assert_hierarchy_consistent(communities, entities)

    collapsed_texts = [" ".join(text.split()) for text in chunk_texts.values()]
    for community in levels[0]:
        sentence = community.summary.representative_sentence
        if len(community.member_ids) > 1:
            assert sentence is not None
            assert any(sentence.rstrip("\u2026") in text for text in collapsed_texts)

    assert detect_communities("t", "m", entities, relations, chunk_texts) == communities


def test_many_entities():
    rng = random.Random(5)
    entities = [make_entity(f"Entity {index}") for index in range(20_000)]
    relations = {}
    for group in range(0, len(entities), 10):
        for _ in range(15):
            first, second = group + rng.randrange(10), group + rng.randrange(10)
            if first != second:
                relations[(first, second)] = make_relation(entities[first], entities[second])
        other = rng.randrange(len(entities))
        relations[(group, other)] = make_relation(entities[group], entities[other], label="links")

    communities = detect_communities("t", "m", entities, list(relations.values()), {})

    assert len(by_level(communities)) >= 2
    assert_hierarchy_consistent(communities, entities)
