"""Rule-based entity and relation extraction that needs no model and returns the same output every run.

Mentions come from one pass of `patterns.MENTION_RE` and the word lists in `lexicon`: speaker labels
(`NAME:` at the start of a line), quantities, dates, capitalised names and short noun phrases.
Relations link nearby mentions of one sentence and are labelled with the verb between them.
"""

import bisect
import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from graphmem_core.extraction import lexicon
from graphmem_core.extraction.base import Extractor
from graphmem_core.extraction.patterns import (
    MENTION_RE,
    NAME_CONNECTORS,
    RELATION_WORD_RE,
    SENTENCE_END_RE,
    SPEAKER_LABEL_RE,
    TOKEN_RE,
    YEAR_RE,
)
from graphmem_core.models import Chunk, EntityType, ExtractedRelation, ExtractionResult, Mention

logger = logging.getLogger(__name__)

# Each mention is paired with this many following mentions of its sentence. Two links a subject
# to the object after an intervening mention ("Jane joined Microsoft in 2019") while keeping the
# number of relations linear in the number of mentions.
RELATION_WINDOW = 2

# Upper bound on relations per sentence, so that long run-on transcript sentences stay cheap.
MAX_RELATIONS_PER_SENTENCE = 12

# Noun phrases longer than this are cut to their last words (the head and its nearest modifiers).
MAX_NOUN_PHRASE_WORDS = 3

# Speaker labels with more words than this are ordinary sentences that happen to end in a colon.
MAX_SPEAKER_LABEL_WORDS = 4

# Shorter words are rarely meaningful parts of noun phrases ("ox", "ad") and often typos.
MIN_NOUN_PHRASE_WORD_CHARS = 3

# All-capital words shorter than this are taken as acronyms even when they spell a word ("IT", "WHO").
MIN_CAPITALISED_WORD_CHARS = 4

# Lower-case hyphen parts at least this long are words that follow a name ("Grammy-award");
# shorter ones belong to the name ("Kim Jong-un").
MIN_TRIMMED_HYPHEN_PART_CHARS = 4

# Unknown capitalised words shorter than this ("Au", "El") are not taken as personal names.
MIN_SURNAME_CHARS = 3

# Size of the cache of word classifications; a chunk stream's vocabulary mostly fits in it.
WORD_CACHE_SIZE = 1 << 16

# Words that open a line and end in a colon without naming a speaker ("Note:", "Q:").
_SPEAKER_LABEL_EXCLUDED = frozenset(
    "note example question answer q a source update edit warning tip summary transcript host guest "
    "speaker narrator interviewer announcer voiceover date time title subject episode part".split()
)

# Words whose trailing period does not end a sentence; single capital letters (initials) neither.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr mt ft gen sen rep gov lt col capt rev vs etc e.g i.e "
    "inc corp co ltd no fig approx dept univ u.s u.k u.n a.m p.m".split()
)

# A bare month name that is also a common word, kept as a date only with a day or a year beside it.
_AMBIGUOUS_MONTHS = frozenset({"May", "March"})

# Characters that may precede the first word of a sentence without making it non-initial.
_SENTENCE_OPENERS = " \t\"'\u201c\u2018([-\u2014\u2013*:"

# Characters after which a capitalised word starts a quotation or clause, as at a sentence start.
_CLAUSE_OPENERS = "\"\u201c\u201d:\u2014\u2013"

_DIRECTIONS = frozenset("north south east west northern southern eastern western central upper lower".split())

# Roles of a lower-case word in a noun phrase, from `_word_role`.
_ROLE_NONE = 0
_ROLE_MODIFIER = 1
_ROLE_HEAD = 2
_ROLE_HEAD_ONLY = 3


@dataclass
class _Span:
    """A mention candidate: character offsets into the chunk text and its entity type."""

    start: int
    end: int
    type: EntityType | None


@dataclass
class _ChunkState:
    """Per-chunk working data: sentence spans, claimed characters and names seen so far."""

    text: str
    sentence_starts: list[int]
    claimed: bytearray
    spans: list[_Span] = field(default_factory=list)
    person_words: set[str] = field(default_factory=set)
    mid_sentence_words: set[str] = field(default_factory=set)
    pending_initial: list[_Span] = field(default_factory=list)


class FastExtractor(Extractor):
    """Deterministic rule-based extractor: capitalised names, dates, quantities, noun phrases, verbs."""

    name = "fast"
    version = "1"

    def extract(self, chunks: Sequence[Chunk]) -> list[ExtractionResult]:
        """Extract mentions and relations from each chunk and return one result per chunk, in order."""
        results = [self.extract_chunk(chunk) for chunk in chunks]
        logger.debug("extracted %d chunks with %s", len(results), self.cache_key)
        return results

    def extract_chunk(self, chunk: Chunk) -> ExtractionResult:
        """Extract the mentions and relations of one chunk."""
        text = chunk.text
        if not text.strip():
            return ExtractionResult(chunk_id=chunk.id, mentions=[], relations=[])

        spans, sentences = _find_mention_spans(text)
        mentions = [
            Mention(chunk_id=chunk.id, text=text[span.start : span.end], type=span.type, start=span.start, end=span.end)
            for span in spans
        ]
        relations = _find_relations(chunk.id, text, spans, sentences)
        return ExtractionResult(chunk_id=chunk.id, mentions=mentions, relations=relations)


def _find_mention_spans(text: str) -> tuple[list[_Span], list[tuple[int, int]]]:
    """Find typed, non-overlapping mention spans in `text`, sorted by start, and the sentence spans."""
    speaker_labels = _find_speaker_labels(text)
    sentences = split_sentences(text, [colon_end for _, _, colon_end in speaker_labels])
    state = _ChunkState(text=text, sentence_starts=[start for start, _ in sentences], claimed=bytearray(len(text)))

    for start, end, _ in speaker_labels:
        _claim(state, _Span(start, end, EntityType.PERSON))
        state.person_words.update(text[start:end].lower().split())

    word_runs = []
    for match in MENTION_RE.finditer(text):
        kind = match.lastgroup
        if kind == "words":
            word_runs.append(match)
        elif kind == "name":
            _add_name_match(state, match)
        elif kind == "number":
            _add_number_match(state, match)
        else:
            _add_month_match(state, match)
    _resolve_pending_names(state)

    for match in word_runs:
        _add_noun_phrases(state, match)

    state.spans.sort(key=lambda span: span.start)
    return state.spans, sentences


def split_sentences(text: str, forced_ends: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Split `text` into sentence spans without surrounding whitespace; `forced_ends` also end one."""
    cuts = list(forced_ends)
    for match in SENTENCE_END_RE.finditer(text):
        if match.group() == "\n":
            cuts.append(match.start())
        elif _ends_sentence(text, match):
            cuts.append(match.end())
    cuts.sort()

    sentences = []
    start = 0
    for cut in [*cuts, len(text)]:
        if cut <= start:
            continue
        span = _strip_span(text, start, cut)
        if span is not None:
            sentences.append(span)
        start = cut
    return sentences


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Tell whether terminal punctuation ends a sentence rather than an abbreviation or an initial."""
    if match.group(1).islower():
        return False
    if not match.group().startswith("."):
        return True

    punctuation_start = match.start()
    word_start = max(text.rfind(" ", 0, punctuation_start), text.rfind("\n", 0, punctuation_start)) + 1
    word = text[word_start:punctuation_start].lstrip("\"'(\u201c\u2018[")
    is_initial = len(word) == 1 and word.isupper()
    return not is_initial and word.lower() not in _ABBREVIATIONS


def _strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Return `start:end` without leading and trailing whitespace, or None when nothing is left."""
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return None
    start += len(segment) - len(segment.lstrip())
    return start, start + len(stripped)


def _find_speaker_labels(text: str) -> list[tuple[int, int, int]]:
    """Find speaker names that open transcript lines, such as `KEVIN SCOTT:`.

    Returns `(start, end, colon_end)` for each label: the span of the name and the offset just
    past its colon, where the speaker's first sentence begins.
    """
    labels = []
    for match in SPEAKER_LABEL_RE.finditer(text):
        words = match.group(1).split()
        lowered = [word.lower() for word in words]
        if len(words) > MAX_SPEAKER_LABEL_WORDS or lowered[0] in lexicon.STOP_WORDS:
            continue
        if len(words) == 1 and not _is_single_word_speaker(words[0], lowered[0]):
            continue
        if any(word in lexicon.COMMON_WORDS for word in lowered):
            continue
        labels.append((match.start(1), match.end(1), match.end()))
    return labels


def _is_single_word_speaker(word: str, lowered: str) -> bool:
    """Tell whether a one-word label names a speaker ("KEVIN:", "Jacob:") rather than a heading ("Summary:")."""
    if lowered in lexicon.FIRST_NAMES:
        return True
    return len(word) >= 2 and word.isupper() and not _is_ordinary_word(lowered)


def _claim(state: _ChunkState, span: _Span) -> bool:
    """Add `span` unless it overlaps a span already added; return whether it was added."""
    if state.claimed.find(1, span.start, span.end) != -1:
        return False
    state.claimed[span.start : span.end] = b"\x01" * (span.end - span.start)
    state.spans.append(span)
    return True


def _add_number_match(state: _ChunkState, match: re.Match[str]) -> None:
    """Add a number as a QUANTITY or DATE mention, as the words around it decide, or skip a bare number."""
    start, end = match.span()
    number = match.group()
    if number[0] in "$\u20ac\u00a3\u00a5" or match.group("percent") or match.group("scale") or match.group("unit"):
        entity_type = EntityType.QUANTITY
    elif match.group("day_month") or match.group("century") or match.group("era"):
        entity_type = EntityType.DATE
    elif match.group("suffix") == "s" and number[-2] == "0":
        entity_type = EntityType.DATE
    elif match.group("suffix") is None and YEAR_RE.fullmatch(number):
        entity_type = EntityType.DATE
    else:
        return
    _claim(state, _Span(start, end, entity_type))


def _add_month_match(state: _ChunkState, match: re.Match[str]) -> None:
    """Add a month or weekday date, skipping a bare "May" or "March" that is likely a common word."""
    if match.group() not in _AMBIGUOUS_MONTHS:
        _claim(state, _Span(match.start(), match.end(), EntityType.DATE))


def _add_name_match(state: _ChunkState, match: re.Match[str]) -> None:
    """Split one capitalised-name match into segments, then type and add each of them."""
    text = state.text
    name = match.group()
    if " " not in name and "\t" not in name:
        if name.lower() in lexicon.STOP_WORDS:
            # Most one-word matches are capitalised function words that open sentences ("The", "So").
            return
        tokens = [match.span()]
    else:
        tokens = [token.span() for token in TOKEN_RE.finditer(text, match.start(), match.end())]
    for segment in _split_name_tokens(state, tokens):
        _add_name_segment(state, segment)


def _split_name_tokens(state: _ChunkState, tokens: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Split the tokens of one name match into name segments.

    Capitalised function words ("The", "I", "So"), ignored acronyms, claimed tokens and sentence
    boundaries break a segment. Inside a sentence, a capitalised title function word followed by
    another name word stays ("Behind the Tech"). "and" and "for" join two parts only in organisation
    names ("Department of Health and Human Services", "Institute for Advanced Study").
    """
    text = state.text
    segments: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    sentence_index = bisect.bisect_right(state.sentence_starts, tokens[0][0])
    for index, (start, end) in enumerate(tokens):
        word = text[start:end]
        lowered = word.lower()
        breaks = state.claimed.find(1, start, end) != -1 or lowered in lexicon.IGNORED_ACRONYMS
        if not breaks and word[0].isupper() and lowered in lexicon.STOP_WORDS:
            breaks = (
                lowered not in lexicon.TITLE_FUNCTION_WORDS
                or index + 1 == len(tokens)
                or _is_sentence_initial(text, state.sentence_starts, start)
            )
        if not breaks and word in ("and", "for"):
            breaks = not _keeps_connector(text, current, tokens, index)
        token_sentence = bisect.bisect_right(state.sentence_starts, start)
        if token_sentence != sentence_index:
            sentence_index = token_sentence
            segments.append(current)
            current = []
        if breaks:
            segments.append(current)
            current = []
        else:
            current.append((start, end))
    segments.append(current)
    return [trimmed for trimmed in (_trim_connectors(text, segment) for segment in segments) if trimmed]


def _keeps_connector(text: str, before: list[tuple[int, int]], tokens: list[tuple[int, int]], index: int) -> bool:
    """Tell whether the "and" or "for" at `tokens[index]` belongs inside an organisation name."""
    if not before or index + 1 >= len(tokens):
        return False
    first = text[before[0][0] : before[0][1]].lower()
    previous = text[before[-1][0] : before[-1][1]].lower()
    if text[tokens[index][0] : tokens[index][1]] == "for":
        return previous in lexicon.ORGANIZATION_SUFFIXES or previous in lexicon.ORGANIZATION_PREFIXES

    following = text[tokens[index + 1][0] : tokens[index + 1][1]].lower()
    has_of = any(text[start:end] in ("of", "for") for start, end in before)
    return (
        has_of
        and (first in lexicon.ORGANIZATION_PREFIXES or first in lexicon.EVENT_PREFIXES)
        and following not in lexicon.KNOWN_ORGANIZATIONS
        and following not in lexicon.KNOWN_LOCATIONS
        and following not in lexicon.FIRST_NAMES
    )


def _is_sentence_initial(text: str, sentence_starts: list[int], start: int) -> bool:
    """Tell whether only punctuation precedes `start` in its sentence, or it follows a quote or colon."""
    sentence_start = sentence_starts[bisect.bisect_right(sentence_starts, start) - 1] if sentence_starts else 0
    before = text[sentence_start:start].rstrip(" \t")
    return not before.strip(_SENTENCE_OPENERS) or before[-1] in _CLAUSE_OPENERS


def _trim_connectors(text: str, tokens: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop lower-case connectors from both ends of a name segment, and capitalised function words from its end."""
    begin, end = 0, len(tokens)
    while begin < end and not _starts_upper(text[tokens[begin][0] : tokens[begin][1]]):
        begin += 1
    while end > begin:
        last = text[tokens[end - 1][0] : tokens[end - 1][1]]
        if _starts_upper(last) and last.lower() not in lexicon.STOP_WORDS:
            break
        end -= 1
    return tokens[begin:end]


def _starts_upper(word: str) -> bool:
    """Tell whether a token is a name word rather than a lower-case connector ("iPhone" counts)."""
    return word[0].isupper() or (len(word) > 1 and word[1].isupper())


def _add_name_segment(state: _ChunkState, tokens: list[tuple[int, int]]) -> None:
    """Type one name segment and add it, or keep it pending when it opens a sentence."""
    text = state.text
    words = [text[start:end] for start, end in tokens]
    lowered = [word.lower() for word in words]

    role_length = _role_prefix_length(lowered)
    if role_length:
        # "President of Microsoft": the role is not a mention, the organisation after it is.
        rest = _trim_connectors(text, tokens[role_length:])
        if rest:
            _add_name_segment(state, rest)
        return

    has_title = len(words) > 1 and lowered[0].rstrip(".") in lexicon.PERSON_TITLES and not _is_place_or_thing(words, lowered)
    if has_title:
        tokens, words, lowered = _drop_title(text, tokens)
        if not tokens:
            return

    tokens, words, lowered = _trim_lower_case_suffix(tokens, words, lowered)
    start, end = tokens[0][0], tokens[-1][1]
    if len(words) == 1 and (
        len(words[0].rstrip(".")) < 2
        or lowered[0] in lexicon.IGNORED_ACRONYMS
        or lowered[0].rstrip(".") in lexicon.COMPANY_ABBREVIATIONS
    ):
        return

    if _is_role(lowered):
        return

    entity_type = EntityType.PERSON if has_title else _name_type(words, lowered)
    if entity_type is None and len(words) == 1 and _is_ordinary_word(lowered[0]):
        # A lone capitalised common word ("Spring", "Country music") is emphasis or a title fragment.
        return
    sentence_initial = _is_sentence_initial(text, state.sentence_starts, start)
    span = _Span(start, end, entity_type)
    if entity_type is None and sentence_initial:
        state.pending_initial.append(span)
        return

    if not _claim(state, span):
        return
    if entity_type is EntityType.PERSON:
        state.person_words.update(word for word in lowered if word[0].isalpha() and len(word) > 2)
    if not sentence_initial or len(words) > 1:
        state.mid_sentence_words.update(lowered)


def _role_prefix_length(lowered: list[str]) -> int:
    """Return the number of words in a leading "<role> of" ("Chief Executive of"), or 0 when there is none."""
    for index in range(1, len(lowered)):
        if lowered[index] in ("of", "for"):
            is_role = all(word in lexicon.ROLE_WORDS or word.rstrip(".") in lexicon.PERSON_TITLES for word in lowered[:index])
            return index + 1 if is_role else 0
    return 0


def _is_role(lowered: list[str]) -> bool:
    """Tell whether a name is only a job title ("Chief Technology Officer", "Founder")."""
    if len(lowered) == 1:
        return lowered[0] in lexicon.ROLE_WORDS or lowered[0].rstrip(".") in lexicon.PERSON_TITLES
    return all(word in lexicon.ROLE_WORDS for word in lowered)


def _trim_lower_case_suffix(
    tokens: list[tuple[int, int]], words: list[str], lowered: list[str]
) -> tuple[list[tuple[int, int]], list[str], list[str]]:
    """Cut lower-case hyphen parts off the last token ("Grammy-award" -> "Grammy", "AI-powered" -> "AI").

    A short stem or a short part keeps the token whole ("Co-operation", "X-ray", "Jong-un"), because
    there the hyphenated word is the name.
    """
    last = words[-1]
    hyphen = last.find("-")
    while hyphen != -1 and not (hyphen + 1 < len(last) and last[hyphen + 1].islower()):
        hyphen = last.find("-", hyphen + 1)
    if hyphen == -1:
        return tokens, words, lowered

    stem = last[:hyphen]
    part = last[hyphen + 1 :].split("-")[0]
    if (len(stem) < 3 and not stem.isupper()) or len(part) < MIN_TRIMMED_HYPHEN_PART_CHARS:
        return tokens, words, lowered
    start = tokens[-1][0]
    return [*tokens[:-1], (start, start + hyphen)], [*words[:-1], stem], [*lowered[:-1], stem.lower()]


def _is_place_or_thing(words: list[str], lowered: list[str]) -> bool:
    """Tell whether a name that starts with a title names something else ("General Motors", "St. Louis", "King County")."""
    return _name_type(words, lowered) in (
        EntityType.ORGANIZATION,
        EntityType.LOCATION,
        EntityType.EVENT,
        EntityType.PRODUCT,
    )


def _drop_title(text: str, tokens: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[str], list[str]]:
    """Remove a leading title ("Dr.", "President") and any connectors after it."""
    remaining = _trim_connectors(text, tokens[1:])
    if len(remaining) != len(tokens) - 1:
        # "President of Microsoft": the title names a role, not the person who follows.
        return [], [], []
    words = [text[start:end] for start, end in remaining]
    return remaining, words, [word.lower() for word in words]


def _name_type(words: list[str], lowered: list[str]) -> EntityType | None:
    """Return the entity type of a capitalised name, or None when only context can tell."""
    known = _known_type(" ".join(lowered))
    if known is not None:
        return known
    if len(words) == 1:
        return _single_word_type(words[0], lowered[0])
    return _multi_word_type(words, lowered)


def _known_type(phrase: str) -> EntityType | None:
    """Look a lower-case name up in the known organisations, places and products."""
    if phrase.startswith("the "):
        phrase = phrase[4:]
    if phrase in lexicon.KNOWN_ORGANIZATIONS:
        return EntityType.ORGANIZATION
    if phrase in lexicon.KNOWN_LOCATIONS:
        return EntityType.LOCATION
    if phrase in lexicon.KNOWN_PRODUCTS:
        return EntityType.PRODUCT
    return None


def _single_word_type(word: str, lowered: str) -> EntityType | None:
    """Type a one-word name by its shape and word lists; None when it may be a person or nothing."""
    if lowered in lexicon.MONTH_ABBREVIATIONS:
        return EntityType.DATE
    if lowered in lexicon.DEMONYMS:
        return EntityType.OTHER
    if word.isupper() or (word.endswith("s") and word[:-1].isupper()):
        if lowered in lexicon.CONCEPT_ACRONYMS:
            return EntityType.CONCEPT
        if len(lowered) >= MIN_CAPITALISED_WORD_CHARS and _is_ordinary_word(lowered):
            # An ordinary word in capitals ("NOTE", "DATA") is emphasis, not an acronym.
            return None
        if any(char.isdigit() for char in word):
            return EntityType.PRODUCT
        return EntityType.OTHER
    if any(char.isdigit() for char in word) or _is_camel_case(word):
        return EntityType.PRODUCT
    if lowered in lexicon.FIRST_NAMES:
        return EntityType.PERSON
    return None


def _is_ordinary_word(lowered: str) -> bool:
    """Tell whether a lower-cased word is a listed English word rather than a name."""
    return lowered.isalpha() and (
        lowered in lexicon.COMMON_WORDS
        or lowered in lexicon.STOP_WORDS
        or lowered in _SPEAKER_LABEL_EXCLUDED
        or _word_role(lowered) != _ROLE_NONE
    )


def _is_camel_case(word: str) -> bool:
    """Tell whether an upper-case letter follows a lower-case one ("GitHub", "iPhone")."""
    return any(char.isupper() and previous.islower() for previous, char in zip(word, word[1:]))


def _multi_word_type(words: list[str], lowered: list[str]) -> EntityType:
    """Type a multi-word name by its first and last words, falling back to its shape."""
    first, last = lowered[0], lowered[-1]

    head = _head_before_of(lowered)
    if head is not None:
        if head in lexicon.ORGANIZATION_PREFIXES or head in lexicon.ORGANIZATION_SUFFIXES:
            return EntityType.ORGANIZATION
        if head in lexicon.EVENT_PREFIXES:
            return EntityType.EVENT
        if head in lexicon.LOCATION_OF_PREFIXES:
            return EntityType.LOCATION
    if last in lexicon.ORGANIZATION_SUFFIXES:
        return EntityType.ORGANIZATION
    if last in lexicon.EVENT_SUFFIXES or first in lexicon.EVENT_FIRST_WORDS:
        return EntityType.EVENT
    if last in lexicon.LOCATION_SUFFIXES or first in lexicon.LOCATION_PREFIXES:
        return EntityType.LOCATION
    if first in _DIRECTIONS and " ".join(lowered[1:]) in lexicon.KNOWN_LOCATIONS:
        return EntityType.LOCATION
    if any(word in NAME_CONNECTORS for word in words):
        return EntityType.OTHER

    if first in lexicon.FIRST_NAMES or any(_is_initial(word) for word in words[:-1]):
        return EntityType.PERSON
    if any(_is_camel_case(word) or any(char.isdigit() for char in word) for word in words):
        return EntityType.PRODUCT
    if all(word in lexicon.NOUNS or word in lexicon.ADJECTIVES for word in lowered):
        return EntityType.CONCEPT
    # NOTE: a guess. Unknown capitalised pairs such as "Angry Viewers" are typed PERSON here.
    if len(words) <= 3 and all(_looks_like_surname(word, low) for word, low in zip(words, lowered)):
        return EntityType.PERSON
    return EntityType.OTHER


def _head_before_of(lowered: list[str]) -> str | None:
    """Return the word before the first "of" or "for" of a name ("bank" in "National Bank of Austria")."""
    for index in range(1, len(lowered)):
        if lowered[index] in ("of", "for"):
            return lowered[index - 1]
    return None


def _is_initial(word: str) -> bool:
    """Tell whether a token is an initial such as "T." or "J.R.R.", but not "U.S."."""
    letters = word.replace(".", "")
    return (
        word.endswith(".")
        and letters.isupper()
        and len(letters) <= 3
        and word.lower() not in lexicon.KNOWN_LOCATIONS
        and word.lower() not in lexicon.KNOWN_ORGANIZATIONS
    )


def _looks_like_surname(word: str, lowered: str) -> bool:
    """Tell whether a capitalised word could be part of a personal name rather than an ordinary word."""
    return (
        len(word) >= MIN_SURNAME_CHARS
        and word[0].isupper()
        and word[1:].islower()
        and word.isalpha()
        and _word_role(lowered) == _ROLE_NONE
        and lowered not in lexicon.STOP_WORDS
        and lowered not in lexicon.COMMON_WORDS
        and lowered not in lexicon.KNOWN_LOCATIONS
        and lowered not in lexicon.KNOWN_ORGANIZATIONS
        and lowered not in lexicon.KNOWN_PRODUCTS
        and lowered not in lexicon.DEMONYMS
    )


def _resolve_pending_names(state: _ChunkState) -> None:
    """Type the names that remained uncertain, using the other names of the chunk.

    A capitalised word that opens a sentence is kept only if it is a known person word or also
    occurs capitalised inside a sentence of the same chunk. Untyped names become PERSON when they
    share a word with a person named in the chunk ("Scott" after "Kevin Scott"), else OTHER, and
    names typed OTHER become PERSON when all their words belong to such persons ("SCOTT").
    """
    text = state.text
    for span in state.pending_initial:
        lowered = text[span.start : span.end].lower()
        if lowered in state.person_words:
            span.type = EntityType.PERSON
        elif lowered in state.mid_sentence_words:
            span.type = EntityType.OTHER
        else:
            continue
        _claim(state, span)

    for span in state.spans:
        if span.type is None:
            words = text[span.start : span.end].lower().split()
            span.type = EntityType.PERSON if any(word in state.person_words for word in words) else EntityType.OTHER
        elif span.type is EntityType.OTHER:
            words = text[span.start : span.end].lower().split()
            if all(word in state.person_words for word in words):
                span.type = EntityType.PERSON


def _add_noun_phrases(state: _ChunkState, match: re.Match[str]) -> None:
    """Add the noun phrases of a run of lower-case words as CONCEPT mentions."""
    words = match.group().split(" ")
    roles = [_word_role(word) for word in words]
    if _ROLE_HEAD not in roles and _ROLE_HEAD_ONLY not in roles:
        return

    offsets = []
    position = match.start()
    for word in words:
        offsets.append(position)
        position += len(word) + 1
    for first, last in _noun_phrases(roles):
        _claim(state, _Span(offsets[first], offsets[last] + len(words[last]), EntityType.CONCEPT))


def _noun_phrases(roles: list[int]) -> list[tuple[int, int]]:
    """Return `(first, last)` word indexes of the noun phrases in a run of lower-case words.

    A noun phrase is a head noun preceded by one or two modifiers (nouns or adjectives), all of
    them content words. Single words are not noun phrases because they are too often generic.
    """
    phrases = []
    index = len(roles) - 1
    while index > 0:
        if roles[index] < _ROLE_HEAD:
            index -= 1
            continue
        first = index
        while first > 0 and index - first + 1 < MAX_NOUN_PHRASE_WORDS and roles[first - 1] in (_ROLE_MODIFIER, _ROLE_HEAD):
            first -= 1
        if first < index:
            phrases.append((first, index))
        index = first - 1
    phrases.reverse()
    return phrases


@functools.lru_cache(maxsize=WORD_CACHE_SIZE)
def _word_role(word: str) -> int:
    """Classify a lower-case word for noun phrases: a head noun, a head only, a modifier only, or neither."""
    if (
        len(word) < MIN_NOUN_PHRASE_WORD_CHARS
        or word in lexicon.STOP_WORDS
        or word in lexicon.COMMON_WORDS
        or "'" in word
        or "\u2019" in word
        or word.endswith("ly")
    ):
        return _ROLE_NONE
    if word in lexicon.VERB_NOUNS or _singular(word) in lexicon.VERB_NOUNS:
        return _ROLE_HEAD_ONLY
    if _is_noun(word):
        return _ROLE_HEAD
    if word in lexicon.ADJECTIVES:
        return _ROLE_MODIFIER
    if "-" in word:
        parts = word.split("-")
        is_compound = all(len(part) >= 2 and part not in lexicon.STOP_WORDS for part in parts)
        return _ROLE_MODIFIER if is_compound else _ROLE_NONE
    is_adjective = len(word) > 4 and word.endswith(lexicon.ADJECTIVE_SUFFIXES) and word not in lexicon.SUFFIX_EXCEPTIONS
    return _ROLE_MODIFIER if is_adjective else _ROLE_NONE


def _is_noun(word: str) -> bool:
    """Tell whether a lower-case word is a likely noun: listed, or with a noun suffix, possibly plural."""
    if word in lexicon.NOUNS:
        return True
    singular = _singular(word)
    if singular in lexicon.NOUNS:
        return True
    return (
        len(singular) > 5
        and singular.endswith(lexicon.NOUN_SUFFIXES)
        and singular not in lexicon.SUFFIX_EXCEPTIONS
        and word not in lexicon.SUFFIX_EXCEPTIONS
    )


def _singular(word: str) -> str:
    """Return a rough singular of an English plural ("companies" -> "company")."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _find_relations(
    chunk_id: str, text: str, spans: list[_Span], sentences: list[tuple[int, int]]
) -> list[ExtractedRelation]:
    """Link each mention to the next `RELATION_WINDOW` mentions of its sentence, in text order."""
    sentence_starts = [start for start, _ in sentences]
    by_sentence: dict[int, list[int]] = {}
    for index, span in enumerate(spans):
        sentence_index = bisect.bisect_right(sentence_starts, span.start) - 1
        by_sentence.setdefault(sentence_index, []).append(index)

    relations = []
    for sentence_index, members in by_sentence.items():
        if len(members) < 2:
            continue
        sentence_start, sentence_end = sentences[sentence_index]
        count = 0
        for position, source in enumerate(members):
            for target in members[position + 1 : position + 1 + RELATION_WINDOW]:
                if count >= MAX_RELATIONS_PER_SENTENCE:
                    break
                source_span, target_span = spans[source], spans[target]
                if text[source_span.start : source_span.end].lower() == text[target_span.start : target_span.end].lower():
                    continue
                gaps = [text[spans[index].end : spans[index + 1].start] for index in range(source, target)]
                relations.append(
                    ExtractedRelation(
                        chunk_id=chunk_id,
                        source=source,
                        target=target,
                        type=relation_label(gaps),
                        start=sentence_start,
                        end=sentence_end,
                    )
                )
                count += 1
    return relations


def relation_label(gaps: Sequence[str]) -> str:
    """Label a relation by the first main verb in the text between its two mentions.

    `gaps` are the texts between consecutive mentions from source to target, so that words inside
    an intervening mention are never read as verbs. The label is the lower-case verb, joined to a
    preposition right after it in the same gap ("moved_to", "born_in"). Forms of "be" and "have"
    become "is" and "has" when no other verb is present, and text without a verb gives "related_to".
    """
    words: list[str] = []
    for gap in gaps:
        words.extend(RELATION_WORD_RE.findall(gap.lower()))
        # An empty word stands for the mention between two gaps, so no preposition crosses it.
        words.append("")

    fallback = "related_to"
    for index, word in enumerate(words):
        if word in lexicon.BE_FORMS:
            fallback = "is" if fallback == "related_to" else fallback
        elif word in lexicon.HAVE_FORMS:
            fallback = "has" if fallback == "related_to" else fallback
        elif word in lexicon.AUXILIARIES:
            continue
        elif word in lexicon.RELATION_VERBS or _is_past_tense(word):
            following = words[index + 1]
            return f"{word}_{following}" if following in lexicon.RELATION_PREPOSITIONS else word
    return fallback


def _is_past_tense(word: str) -> bool:
    """Tell whether a word is a likely past-tense verb: it ends in "-ed" and is neither listed nor hyphenated."""
    return len(word) > 4 and word.endswith("ed") and "-" not in word and word not in lexicon.NOT_VERBS
