"""Tests for the extractor registry and the rule-based fast extractor, on short sentences and real corpora."""

import json
import re

import pytest

from graphmem_core import ids
from graphmem_core.documents import normalize_text
from graphmem_core.errors import ConfigurationError
from graphmem_core.extraction import Extractor, FastExtractor, get_extractor, known_extractors
from graphmem_core.models import Chunk, EntityType, ExtractionResult
from tests.conftest import MUSIQUE_CORPUS, require_corpus

# Every third transcript keeps the file fast on a 2-core machine while covering all episodes.
PODCAST_STRIDE = 3

# Size of the windows cut from transcripts, close to what the chunker produces for MiniLM.
WINDOW_CHARS = 1200

_LABEL = re.compile(r"^[a-z]+(?:[-_][a-z]+)*$")


def make_chunk(text: str, index: int = 0) -> Chunk:
    """Build a chunk of one document holding `text`."""
    document_id = ids.document_id("default", "default", text)
    return Chunk(
        id=ids.chunk_id(document_id, 0, len(text), text),
        document_id=document_id,
        tenant="default",
        memory="default",
        index=index,
        text=text,
        start=0,
        end=len(text),
        token_count=0,
        text_hash=ids.text_hash(text),
    )


def extract_one(text: str) -> ExtractionResult:
    return FastExtractor().extract([make_chunk(text)])[0]


def mention_types(result: ExtractionResult) -> dict[str, EntityType]:
    return {mention.text: mention.type for mention in result.mentions}


def relation_triples(result: ExtractionResult) -> set[tuple[str, str, str]]:
    return {
        (result.mentions[relation.source].text, relation.type, result.mentions[relation.target].text)
        for relation in result.relations
    }


@pytest.fixture(scope="module")
def podcast_chunks(podcast_texts) -> list[Chunk]:
    chunks = []
    for _, raw_text in podcast_texts[::PODCAST_STRIDE]:
        text = normalize_text(raw_text)
        for start in range(0, len(text), WINDOW_CHARS):
            chunks.append(make_chunk(text[start : start + WINDOW_CHARS], index=len(chunks)))
    return chunks


@pytest.fixture(scope="module")
def musique_chunks() -> list[Chunk]:
    paragraphs = json.loads(require_corpus(MUSIQUE_CORPUS).read_text(encoding="utf-8"))
    return [make_chunk(paragraph["text"], index=position) for position, paragraph in enumerate(paragraphs)]


@pytest.fixture(scope="module")
def podcast_results(podcast_chunks) -> list[ExtractionResult]:
    return FastExtractor().extract(podcast_chunks)


@pytest.fixture(scope="module", params=["podcast", "musique"], ids=["podcasts", "musique"])
def corpus_results(request) -> tuple[list[Chunk], list[ExtractionResult]]:
    chunks = request.getfixturevalue(f"{request.param}_chunks")
    if request.param == "podcast":
        return chunks, request.getfixturevalue("podcast_results")
    return chunks, FastExtractor().extract(chunks)


def test_registry_returns_fast_extractor():
    extractor = get_extractor("fast")

    assert isinstance(extractor, FastExtractor)
    assert isinstance(extractor, Extractor)
    assert extractor.name == "fast"
    assert extractor.version
    assert extractor.cache_key == f"fast@{extractor.version}"
    assert "fast" in known_extractors()


def test_registry_rejects_unknown_name():
    with pytest.raises(ConfigurationError) as raised:
        get_extractor("nope")

    assert "'nope'" in str(raised.value)
    assert "fast" in str(raised.value)


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_blank_chunk_gives_empty_result(text):
    chunk = make_chunk(text)
    result = FastExtractor().extract([chunk])[0]

    assert result.chunk_id == chunk.id
    assert result.mentions == []
    assert result.relations == []


def test_extract_of_no_chunks_is_empty():
    assert FastExtractor().extract([]) == []


def test_person_joins_organisation():
    result = extract_one("Dr. Jane Smith joined Microsoft in 2019.")
    types = mention_types(result)

    assert types == {"Jane Smith": EntityType.PERSON, "Microsoft": EntityType.ORGANIZATION, "2019": EntityType.DATE}
    assert ("Jane Smith", "joined", "Microsoft") in relation_triples(result)


@pytest.mark.parametrize(
    ("sentence", "surface", "expected"),
    [
        ("She borrowed money from the Bank of America last week.", "Bank of America", EntityType.ORGANIZATION),
        ("He studied at the University of Texas for four years.", "University of Texas", EntityType.ORGANIZATION),
        ("They worked with NASA on the mission.", "NASA", EntityType.ORGANIZATION),
        ("The team tested GPT-4 on the benchmark.", "GPT-4", EntityType.PRODUCT),
        ("Our code lives on GitHub now.", "GitHub", EntityType.ORGANIZATION),
        ("I posted the job on LinkedIn yesterday.", "LinkedIn", EntityType.ORGANIZATION),
        ("We tried the new PowerPoint designer.", "PowerPoint", EntityType.PRODUCT),
        ("The company moved to San Francisco.", "San Francisco", EntityType.LOCATION),
        ("They hiked along the Hudson River all day.", "Hudson River", EntityType.LOCATION),
        ("Athletes trained for the Summer Olympics.", "Summer Olympics", EntityType.EVENT),
        ("Many soldiers died in the Battle of Hastings.", "Battle of Hastings", EntityType.EVENT),
        ("The deal closed in January 2020 after a long wait.", "January 2020", EntityType.DATE),
        ("Sales grew by 40% this quarter.", "40%", EntityType.QUANTITY),
        ("The startup raised $1.5 million from investors.", "$1.5 million", EntityType.QUANTITY),
        ("The cluster has 150 CPUs in total.", "150 CPUs", EntityType.QUANTITY),
        ("Research on machine learning keeps growing.", "machine learning", EntityType.CONCEPT),
        ("Scientists warn about climate change every year.", "climate change", EntityType.CONCEPT),
        ("I met President Lincoln in a dream.", "Lincoln", EntityType.PERSON),
        ("Yesterday I talked to George T. Solomon about it.", "George T. Solomon", EntityType.PERSON),
        ("The letter arrived on 5 May 2019 in the morning.", "5 May 2019", EntityType.DATE),
        ("Home computers spread in the 1980s quickly.", "1980s", EntityType.DATE),
        ("She is a Grammy-award winning singer.", "Grammy", EntityType.OTHER),
        ("He met the President of Microsoft at lunch.", "Microsoft", EntityType.ORGANIZATION),
        ("Jacob met Ben at the studio.", "Jacob", EntityType.PERSON),
    ],
)
def test_known_patterns_get_types(sentence, surface, expected):
    types = mention_types(extract_one(sentence))

    assert surface in types, f"{surface!r} not found in {sorted(types)}"
    assert types[surface] is expected


@pytest.mark.parametrize(
    "sentence",
    [
        "The results were good. But nobody cared. So we left.",
        "And I think we should go. We did it anyway.",
        "They said it was fine, and she agreed with him.",
        "Honestly, it was a lot of stuff.",
    ],
)
def test_function_words_are_not_mentions(sentence):
    assert extract_one(sentence).mentions == []


def test_sentence_initial_common_word_is_not_a_name():
    types = mention_types(extract_one("Welcome to the show. Absolutely, let us start."))

    assert "Welcome" not in types
    assert "Absolutely" not in types


def test_role_is_not_a_mention():
    texts = [mention.text for mention in extract_one("I'm your host, Kevin Scott, Chief Technology Officer for Microsoft.").mentions]

    assert "Kevin Scott" in texts
    assert "Microsoft" in texts
    assert not any("Officer" in text for text in texts)


def test_title_is_not_part_of_name():
    result = extract_one("Mr. Alan Turing worked at the University of Manchester.")
    texts = [mention.text for mention in result.mentions]

    assert "Alan Turing" in texts
    assert all(not text.startswith("Mr") for text in texts)


def test_verb_and_preposition_label():
    result = extract_one("Kevin Scott moved to Redmond in 2016.")

    assert ("Kevin Scott", "moved_to", "Redmond") in relation_triples(result)


def test_relation_without_verb_is_related_to():
    result = extract_one("Paris, Berlin and Madrid are capitals.")

    assert ("Paris", "related_to", "Berlin") in relation_triples(result)


def test_speaker_labels_are_people():
    text = "KEVIN SCOTT: Welcome back to the show.\nChristina Warren: Thanks, it is great to be here.\r\nNOTE: not a speaker."
    result = extract_one(text)
    types = mention_types(result)

    assert types.get("KEVIN SCOTT") is EntityType.PERSON
    assert types.get("Christina Warren") is EntityType.PERSON
    assert "NOTE" not in types


def test_headings_are_not_speakers():
    types = mention_types(extract_one("Summary: the plan works.\nIngredients: flour and water.\nJACOB: Yes."))

    assert "Summary" not in types
    assert "Ingredients" not in types
    assert types.get("JACOB") is EntityType.PERSON


def test_speaker_label_does_not_join_relations():
    text = "KEVIN SCOTT: Microsoft hired Satya Nadella."
    result = extract_one(text)
    label = next(index for index, mention in enumerate(result.mentions) if mention.text == "KEVIN SCOTT")

    assert all(label not in (relation.source, relation.target) for relation in result.relations)


def test_relations_stay_within_sentences():
    result = extract_one("Alice Johnson founded Acme Corp. Bob Miller joined Google.")

    assert ("Alice Johnson", "founded", "Acme Corp") in relation_triples(result) or (
        "Alice Johnson",
        "founded",
        "Acme Corp.",
    ) in relation_triples(result)
    assert not any(source.startswith("Alice") and target == "Google" for source, _, target in relation_triples(result))


def test_results_follow_chunk_order(podcast_chunks):
    chunks = podcast_chunks[:50]
    results = FastExtractor().extract(chunks)

    assert len(results) == len(chunks)
    assert [result.chunk_id for result in results] == [chunk.id for chunk in chunks]


def test_real_text_spans_are_exact(corpus_results):
    chunks, results = corpus_results

    for chunk, result in zip(chunks, results, strict=True):
        previous_end = 0
        for mention in result.mentions:
            assert mention.chunk_id == chunk.id
            assert chunk.text[mention.start : mention.end] == mention.text, (chunk.id, mention)
            assert mention.text.strip() == mention.text, (chunk.id, mention)
            assert mention.start >= previous_end, f"overlapping or unsorted mentions in {chunk.id}: {mention}"
            previous_end = mention.end


def test_real_text_relations_are_valid(corpus_results):
    chunks, results = corpus_results

    for chunk, result in zip(chunks, results, strict=True):
        for relation in result.relations:
            assert relation.chunk_id == chunk.id
            assert 0 <= relation.source < len(result.mentions), (chunk.id, relation)
            assert 0 <= relation.target < len(result.mentions), (chunk.id, relation)
            assert relation.source < relation.target, f"relation against text order in {chunk.id}: {relation}"
            assert _LABEL.match(relation.type), relation.type

            sentence = chunk.text[relation.start : relation.end]
            assert sentence and sentence.strip() == sentence, (chunk.id, relation)
            for index in (relation.source, relation.target):
                mention = result.mentions[index]
                assert relation.start <= mention.start, (chunk.id, relation, mention)
                assert mention.end <= relation.end, (chunk.id, relation, mention)


def test_real_text_has_mentions_of_every_kind(corpus_results):
    _, results = corpus_results
    found = {mention.type for result in results for mention in result.mentions}

    for entity_type in (EntityType.PERSON, EntityType.ORGANIZATION, EntityType.LOCATION, EntityType.DATE, EntityType.CONCEPT):
        assert entity_type in found, f"no {entity_type.value} mention in the corpus"
    assert sum(len(result.relations) for result in results) > 0


def test_extraction_is_deterministic(corpus_results):
    chunks, results = corpus_results
    sample = chunks[:300]

    assert FastExtractor().extract(sample) == results[:300]
    assert get_extractor("fast").extract(sample) == results[:300]


def test_podcast_speaker_labels_are_people(podcast_chunks, podcast_results):
    label_line = re.compile(r"^([A-Z][A-Z.'\u2019-]+(?: [A-Z][A-Z.'\u2019-]+){0,3}):", re.MULTILINE)
    checked = 0

    for chunk, result in zip(podcast_chunks, podcast_results, strict=True):
        by_start = {mention.start: mention for mention in result.mentions}
        for match in label_line.finditer(chunk.text):
            mention = by_start.get(match.start(1))
            assert mention is not None, f"speaker label {match.group(1)!r} missed in {chunk.id}"
            assert mention.text == match.group(1)
            assert mention.type is EntityType.PERSON
            checked += 1

    assert checked > 100
