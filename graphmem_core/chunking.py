"""Split documents into sentence-aligned chunks sized in the embedder's own tokens.

Chunks are built from whole sentences, packed greedily up to a token budget, and neighbouring
chunks share their trailing sentences as overlap. A sentence longer than the budget is cut at
word boundaries between tokens, found with the fast tokenizer's offset mapping and word ids.
"""

import logging
import re
import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from graphmem_core import ids
from graphmem_core.errors import ConfigurationError
from graphmem_core.models import Chunk, Document

if TYPE_CHECKING:
    from tokenizers import Encoding
    from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

# A period after these words (compared lower-case, without the final period) does not end a
# sentence, because a name or a word usually follows: "Mr. Smith", "e.g. this", "St. Louis".
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "cf", "al",
        "e.g", "i.e", "approx", "gen", "gov", "sen", "rep", "rev", "hon", "capt", "col",
        "lt", "sgt", "fig", "vol",
    }
)  # fmt: skip

# Sentence-ending punctuation, with closing quotes or brackets, followed by whitespace, or a line
# break. Decimals such as "3.14" never match because their period is not followed by whitespace.
_SENTENCE_END = re.compile(r"(?P<punctuation>[.!?\u2026]+)[\"'\u201d\u2019)\]]*(?=\s)|\n")
_WORD_BEFORE = re.compile(r"[^\s(\[\"'\u201c\u2018]+\Z")
_DOTTED_ACRONYM = re.compile(r"[A-Za-z](?:\.[A-Za-z])+")
_NEXT_VISIBLE = re.compile(r"\s*(\S)")

# Characters searched before a period for the word it ends; longer words are never abbreviations.
_WORD_WINDOW_CHARS = 24

# Times a document is re-packed with a smaller budget when re-tokenized chunks exceed max_tokens.
# Each round lowers the budget by the largest overshoot. With the MiniLM WordPiece tokenizer a
# re-pack follows only cuts inside a word, and one round sufficed in the tests.
_MAX_REPACK_ROUNDS = 8


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split `text` into sentence spans `(start, end)` with no whitespace at either end.

    A sentence ends at ".", "!", "?" or "…" followed by whitespace, and at every line break. A
    period does not end one after a common abbreviation ("Mr.", "e.g."), a capital initial ("J."),
    a dotted acronym ("U.S.") or when the next word starts with a lower-case letter.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.group("punctuation") == "." and _period_continues_sentence(text, match.start(), match.end()):
            continue
        _append_stripped_span(spans, text, start, match.end())
        start = match.end()

    _append_stripped_span(spans, text, start, len(text))
    return spans


def _period_continues_sentence(text: str, period: int, match_end: int) -> bool:
    word_match = _WORD_BEFORE.search(text, max(0, period - _WORD_WINDOW_CHARS), period)
    if word_match is not None:
        word = word_match.group()
        if word.lower() in _ABBREVIATIONS or _DOTTED_ACRONYM.fullmatch(word):
            return True
        # "I." is far more often the pronoun ending a sentence than an initial.
        if len(word) == 1 and word.isupper() and word != "I":
            return True

    next_match = _NEXT_VISIBLE.match(text, match_end)
    return next_match is not None and next_match.group(1).islower()


def _append_stripped_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


@dataclass
class _TokenizedDocument:
    """A document's tokens and where its sentences start, as token indices and character offsets.

    Token index `k` is a cut point: a chunk `[s, e)` contains tokens `s` to `e - 1`. Cuts at sentence
    boundaries map to sentence edges, so characters the tokenizer drops still fall in a chunk.
    """

    document: Document
    encoding: "Encoding"
    token_count: int
    first_char: int
    last_char: int
    sentence_boundaries: list[int] = field(default_factory=list)
    start_char_at: dict[int, int] = field(default_factory=dict)
    end_char_at: dict[int, int] = field(default_factory=dict)

    # Converting offsets and word ids to Python lists costs more than the packing, and most
    # documents need neither because every cut falls on a sentence boundary.
    @cached_property
    def offsets(self) -> list[tuple[int, int]]:
        return self.encoding.offsets

    @cached_property
    def word_ids(self) -> list[int | None]:
        return self.encoding.word_ids

    def token_at_or_after(self, char: int) -> int:
        """Return the index of the token that covers `char`, else of the first token after it."""
        index = self.encoding.char_to_token(char)
        if index is not None:
            return index
        return bisect_left(self.offsets, (char, char))

    def is_word_start(self, index: int) -> bool:
        if index <= 0 or index >= self.token_count or index in self.start_char_at:
            return True
        word = self.word_ids[index]
        return word is None or word != self.word_ids[index - 1]

    def start_char(self, index: int) -> int:
        if index == 0:
            return self.first_char
        if index in self.start_char_at:
            return self.start_char_at[index]

        text = self.document.text
        position = self.offsets[index][0]
        while position < len(text) and text[position].isspace():
            position += 1
        return position

    def end_char(self, index: int) -> int:
        if index == self.token_count:
            return self.last_char
        if index in self.end_char_at:
            return self.end_char_at[index]

        # Up to the next token's start, so characters the tokenizer dropped stay in this chunk.
        text = self.document.text
        position = self.offsets[index][0]
        while position > 0 and text[position - 1].isspace():
            position -= 1
        return position


def _tokenized_document(document: Document, encoding: "Encoding") -> _TokenizedDocument | None:
    """Map sentence starts to token indices, or return None for a document without text."""
    sentences = split_sentences(document.text)
    if not sentences:
        return None

    tokenized = _TokenizedDocument(
        document=document,
        encoding=encoding,
        token_count=len(encoding),
        first_char=sentences[0][0],
        last_char=sentences[-1][1],
    )
    last_boundary = 0
    for position in range(1, len(sentences)):
        index = tokenized.token_at_or_after(sentences[position][0])
        # A sentence without tokens shares its index with the next one. The first sentence at an
        # index owns the boundary, so the chunk that starts there also contains the empty sentence.
        if last_boundary < index < tokenized.token_count:
            last_boundary = index
            tokenized.start_char_at[index] = sentences[position][0]
            tokenized.end_char_at[index] = sentences[position - 1][1]
            tokenized.sentence_boundaries.append(index)

    tokenized.sentence_boundaries.append(tokenized.token_count)
    return tokenized


def _pack_tokens(document: _TokenizedDocument, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Return the token ranges `[start, end)` of a document's chunks, each at most `budget` tokens."""
    if document.token_count == 0:
        return [(0, 0)]

    ranges: list[tuple[int, int]] = []
    start = 0
    previous_end = 0
    while True:
        end = _choose_end(document, start, previous_end, budget)
        ranges.append((start, end))
        if end == document.token_count:
            return ranges

        start = _choose_next_start(document, start, end, overlap)
        previous_end = end


def _choose_end(document: _TokenizedDocument, start: int, previous_end: int, budget: int) -> int:
    """Pick the last sentence boundary that fits, else a word boundary, else the budget itself.

    The end always passes `previous_end`, so every chunk adds tokens the previous one lacked.
    """
    limit = start + budget
    if limit >= document.token_count:
        return document.token_count

    boundaries = document.sentence_boundaries
    position = bisect_right(boundaries, limit) - 1
    if position >= 0 and boundaries[position] > previous_end:
        return boundaries[position]

    # The sentence that contains `limit` began in the previous chunk, so it is too long for one chunk.
    for index in range(limit, previous_end, -1):
        if document.is_word_start(index):
            return index
    return limit


def _choose_next_start(document: _TokenizedDocument, start: int, end: int, overlap: int) -> int:
    """Start the next chunk with the trailing sentences of `[start, end)` that total <= `overlap` tokens.

    A chunk that ends inside a sentence overlaps by whole words instead. The result is always
    above `start`, which guarantees progress.
    """
    lowest = max(end - overlap, start + 1)
    if lowest >= end:
        return end

    if end in document.end_char_at:
        boundaries = document.sentence_boundaries
        return boundaries[bisect_left(boundaries, lowest)]

    for index in range(lowest, end):
        if document.is_word_start(index):
            return index
    return end


def _tokenizer_counts_are_additive(tokenizer: "PreTrainedTokenizerFast") -> bool:
    """Tell whether the tokens of a text slice cut at word boundaries equal the tokens it had in the whole text.

    This holds for BERT-style WordPiece tokenizers: their normaliser works per character and their
    pre-tokenizer splits at whitespace and punctuation. Other tokenizers (byte-level BPE, for
    example) attach spaces to the next word, so their chunk counts are always re-checked.
    """
    from tokenizers import models, normalizers, pre_tokenizers

    backend = tokenizer.backend_tokenizer
    normalizer_is_per_character = backend.normalizer is None or isinstance(backend.normalizer, normalizers.BertNormalizer)
    return (
        isinstance(backend.model, models.WordPiece)
        and isinstance(backend.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
        and normalizer_is_per_character
    )


@dataclass
class _ChunkPlan:
    """Token ranges of one document's chunks and the exact token counts known so far."""

    document: _TokenizedDocument
    budget: int
    ranges: list[tuple[int, int]]
    counts: dict[int, int] = field(default_factory=dict)

    def text_span(self, position: int) -> tuple[int, int]:
        """Return the character span of chunk `position`. A document without tokens is one chunk."""
        start, end = self.ranges[position]
        if start == end:
            return self.document.first_char, self.document.last_char
        return self.document.start_char(start), self.document.end_char(end)

    def chunk_text(self, position: int) -> str:
        start, end = self.text_span(position)
        return self.document.document.text[start:end]


class Chunker:
    """Split documents into chunks of whole sentences that fit the embedder's maximum sequence length.

    `max_tokens` counts tokens without special tokens. Callers pass `model.max_seq_length - 2`,
    which leaves room for the [CLS] and [SEP] tokens that the embedder adds. Consecutive chunks
    share up to `overlap_tokens` tokens. Output is deterministic for the same tokenizer and input.

    Each document is tokenized once, and a sentence's count is the number of its tokens. For
    BERT-style WordPiece tokenizers that equals tokenizing the sentence alone. Chunks cut inside a
    word, and every chunk of any other tokenizer, are re-tokenized to get their exact counts.
    """

    def __init__(self, tokenizer: "PreTrainedTokenizerFast", max_tokens: int, overlap_tokens: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigurationError(
                f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer: load it with "
                "AutoTokenizer.from_pretrained(name) from a model that ships a tokenizer.json"
            )
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2:
            raise ConfigurationError(f"max_tokens={max_tokens!r} is invalid: pass a whole number >= 2, usually model.max_seq_length - 2")
        if isinstance(overlap_tokens, bool) or not isinstance(overlap_tokens, int) or overlap_tokens < 0:
            raise ConfigurationError(f"overlap_tokens={overlap_tokens!r} is invalid: pass a whole number >= 0")
        if overlap_tokens >= max_tokens // 2:
            raise ConfigurationError(
                f"overlap_tokens={overlap_tokens} is too large for max_tokens={max_tokens}: "
                f"set GRAPHMEM_CHUNK_OVERLAP_TOKENS below {max_tokens // 2} (half of max_tokens)"
            )

        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self._counts_are_additive = _tokenizer_counts_are_additive(tokenizer)

    def chunk(self, document: Document) -> list[Chunk]:
        """Split one document into chunks. A document with no text yields no chunks."""
        return self.chunk_documents([document])

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Split documents with batched tokenizer calls, returning their chunks in input order.

        Raises `ConfigurationError` when the tokenizer's counts cannot be made to fit `max_tokens`.
        """
        started = time.perf_counter()
        encodings = self._encode([document.text for document in documents])

        plans: list[_ChunkPlan] = []
        for document, encoding in zip(documents, encodings, strict=True):
            tokenized = _tokenized_document(document, encoding)
            if tokenized is not None:
                ranges = _pack_tokens(tokenized, self.max_tokens, self.overlap_tokens)
                plans.append(_ChunkPlan(document=tokenized, budget=self.max_tokens, ranges=ranges))

        self._count_tokens_exactly(plans)
        chunks = [chunk for plan in plans for chunk in self._build_chunks(plan)]

        logger.info(
            "chunked %d documents into %d chunks in %.2f s (max_tokens=%d, overlap_tokens=%d)",
            len(documents),
            len(chunks),
            time.perf_counter() - started,
            self.max_tokens,
            self.overlap_tokens,
        )
        return chunks

    def _encode(self, texts: list[str]) -> list["Encoding"]:
        # transformers 5.25 raises IndexError on an empty batch.
        if not texts:
            return []

        # truncation=False makes transformers (5.25, `set_truncation_and_padding`) clear any truncation
        # that an embedder call left on the shared backend tokenizer.
        batch = self._tokenizer(
            texts,
            add_special_tokens=False,
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return batch.encodings

    def _needs_recount(self, plan: _ChunkPlan, position: int) -> bool:
        """Tell whether a chunk's count in the whole document may differ from its re-tokenized count."""
        if not self._counts_are_additive:
            return True
        start, end = plan.ranges[position]
        return not (plan.document.is_word_start(start) and plan.document.is_word_start(end))

    def _count_tokens_exactly(self, plans: list[_ChunkPlan]) -> None:
        """Re-tokenize the chunks whose counts may be off and re-pack documents that exceed `max_tokens`."""
        pending = plans
        for round_number in range(_MAX_REPACK_ROUNDS + 1):
            targets = [(plan, position) for plan in pending for position in range(len(plan.ranges)) if self._needs_recount(plan, position)]
            if not targets:
                return
            texts = [plan.chunk_text(position) for plan, position in targets]
            for (plan, position), encoding in zip(targets, self._encode(texts), strict=True):
                plan.counts[position] = len(encoding.ids)

            # Plans are keyed by `id()` because dataclasses that define `__eq__` are unhashable.
            too_long = {id(plan): plan for plan, position in targets if plan.counts[position] > self.max_tokens}
            pending = list(too_long.values())
            if not pending:
                return
            if round_number == _MAX_REPACK_ROUNDS:
                break
            for plan in pending:
                self._repack(plan, round_number)

        raise ConfigurationError(
            f"chunks of document {pending[0].document.document.id} still exceed max_tokens={self.max_tokens} after "
            f"{_MAX_REPACK_ROUNDS} re-packs: this tokenizer's counts change with context, so raise max_tokens or use a BERT-style tokenizer"
        )

    def _repack(self, plan: _ChunkPlan, round_number: int) -> None:
        """Pack `plan` again with its budget lowered by the largest overshoot of its re-tokenized chunks."""
        plan.budget -= max(plan.counts.values()) - self.max_tokens
        if plan.budget < 1:
            raise ConfigurationError(
                f"document {plan.document.document.id} cannot be cut into chunks of max_tokens={self.max_tokens}: "
                "its re-tokenized pieces keep growing, so raise max_tokens or use a BERT-style tokenizer"
            )
        overlap = min(self.overlap_tokens, (plan.budget - 1) // 2)
        logger.debug(
            "re-packing document %s with a budget of %d tokens (round %d)", plan.document.document.id, plan.budget, round_number + 1
        )
        plan.ranges = _pack_tokens(plan.document, plan.budget, overlap)
        plan.counts = {}

    def _build_chunks(self, plan: _ChunkPlan) -> list[Chunk]:
        document = plan.document.document
        chunks: list[Chunk] = []
        for position, (start_token, end_token) in enumerate(plan.ranges):
            start, end = plan.text_span(position)
            text = document.text[start:end]
            chunk = Chunk(
                id=ids.chunk_id(document.id, start, end, text),
                document_id=document.id,
                tenant=document.tenant,
                memory=document.memory,
                index=position,
                text=text,
                start=start,
                end=end,
                token_count=plan.counts.get(position, end_token - start_token),
                text_hash=ids.text_hash(text),
            )
            chunks.append(chunk)
        return chunks
