"""Name normalisation, blocking keys and the pairwise rules of entity resolution.

A `NameForm` contains every key derived from one folded name: its tokens, a compact spelling key,
the person core without titles, its numbers, initials and a singular form. Resolution groups names by
these keys (blocking) and compares only names that share one. The hard conflicts here decide when two
names can never be one entity, whatever else matches: incompatible types, different numbers, full
person names whose given names or surnames differ, and merges a user excluded.
"""

import functools
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler

from graphmem_core.models import EntityType

# Titles dropped from the front of a PERSON name before matching ("Dr. Jane Smith" -> "jane smith").
HONORIFICS = frozenset(
    {
        "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "dame", "lord", "lady",
        "rev", "reverend", "hon", "judge", "justice", "president", "senator", "sen", "rep",
        "gov", "governor", "mayor", "gen", "col", "capt", "captain", "lt", "sgt",
    }
)

# Generational suffixes dropped from the end of a PERSON name ("Martin Luther King Jr." -> "martin luther king").
PERSON_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})

# Legal-form words that name the same organisation with or without them ("Apple Inc" and "Apple").
# Words such as "group" or "holdings" are left out because they often name a different company.
DESIGNATORS = frozenset(
    {"inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "llp", "lp", "plc", "gmbh", "ag", "sa"}
)

# Last words that name an organisation's kind and are often left out ("Stanford University" and
# "Stanford", "Sequoia Capital" and "Sequoia"). Words that usually name a part or a sibling of an
# organisation, such as "research", "labs" or "records", are left out.
ORGANISATION_SUFFIXES = frozenset(
    {"university", "capital", "semiconductor", "semiconductors", "productions", "pictures", "studios", "fellowship", "films"}
)

# Function words that acronyms and token sets skip ("National Aeronautics and Space Administration" -> NASA).
FUNCTION_WORDS = frozenset(
    {"of", "and", "the", "for", "&", "a", "an", "in", "on", "at", "to", "de", "du", "des", "la", "le", "und", "der", "y"}
)

# Abbreviations and long forms of country names, and the short name they stand for. Abbreviations of
# one word count only when written in capitals ("US", "U.S."), because "us" is also a pronoun.
COUNTRY_ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("us",): ("united", "states"),
    ("usa",): ("united", "states"),
    ("united", "states", "of", "america"): ("united", "states"),
    ("uk",): ("united", "kingdom"),
    ("uae",): ("united", "arab", "emirates"),
    ("ussr",): ("soviet", "union"),
}
_LONGEST_COUNTRY_ALIAS = max(len(alias) for alias in COUNTRY_ALIASES)

# Acronyms shorter than two letters are initials, and longer than ten letters are words.
ACRONYM_MIN_LETTERS = 2
ACRONYM_MAX_LETTERS = 10

# Types that never share an entity with another type: a date is not a quantity, and neither is a name.
_CLOSED_TYPES = frozenset({EntityType.DATE, EntityType.QUANTITY})

# Pairs of different types that the extractor assigns to the same things ("Industrial Revolution",
# "Media Lab" written in lower case).
_COMPATIBLE_TYPE_PAIRS = frozenset(
    {frozenset({EntityType.CONCEPT, EntityType.EVENT}), frozenset({EntityType.CONCEPT, EntityType.ORGANIZATION})}
)

# Types whose names are compared in singular and plural ("role model", "role models").
PLURAL_TYPES = frozenset({EntityType.CONCEPT, EntityType.PRODUCT, EntityType.OTHER, EntityType.EVENT, EntityType.ORGANIZATION})

# Words ending in "s" that are not plurals of the word without it.
_NOT_PLURAL = frozenset({"news", "series", "species", "lens", "bus", "gas", "yes", "mars", "paris", "texas", "kansas", "athens"})

# The last word of a name written as an upper-case acronym with a plural "s" ("GPUs", "PhDs", "TRS-80s").
_ACRONYM_PLURAL = re.compile(r"^[A-Z][A-Za-z0-9\-]*[A-Z0-9]s$")

# Characters that only separate the parts of a name.
_SEPARATORS = frozenset("-\u2010\u2011\u2012\u2013\u2014._'\u2019/\u00b7")

# Roman numerals of two or more letters ("II", "LXI"). Single letters are left out because they are
# far more often initials ("C. Everett Koop"), and so are words that happen to be numerals.
_ROMAN_NUMERAL = re.compile(r"(?=[mdclxvi]{2,}$)m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})")
_ROMAN_LOOKALIKES = frozenset(
    {"cc", "cd", "cl", "cm", "cv", "dc", "di", "dix", "dm", "li", "lv", "mc", "mcc", "md", "mi", "mix", "ml", "mm", "vi", "xi", "xl"}
)

# A dot between digits is a decimal point, which stays: "1.5 million" is not "15 million".
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'"})
# Digit runs and the words that scale them: "10 million" and "10 billion" are different numbers.
_NUMBER_PART = re.compile(r"\d+|\b(?:hundred|thousand|million|billion|trillion|percent)\b")


def fold_name(name: str) -> str:
    """Return the matching key of a surface form: "The Café's" and "cafe" both fold to "cafe"."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    text = " ".join(text.translate(_APOSTROPHES).split())

    text = _strip_punctuation(text)
    if text.endswith("'s"):
        text = _strip_punctuation(text[:-2])
    if text.startswith("the ") and len(text) > len("the "):
        text = _strip_punctuation(text[len("the ") :])

    # A name made only of punctuation or of the word "the" keeps its case-folded form as key.
    return text or " ".join(name.casefold().split())


def _strip_punctuation(text: str) -> str:
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or unicodedata.category(text[start]).startswith("P")):
        start += 1
    while end > start and (text[end - 1].isspace() or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    return text[start:end]


def name_tokens(key: str) -> tuple[str, ...]:
    """Split a folded key into tokens without surrounding punctuation ("dr." -> "dr")."""
    tokens = (_clean_token(token) for token in key.split())
    return tuple(token for token in tokens if token)


# Names repeat their words ("University of ..."), so each distinct word is cleaned once.
@functools.lru_cache(maxsize=1 << 16)
def _clean_token(token: str) -> str:
    return _strip_punctuation(token)


def compact(text: str) -> str:
    """Return `text` without spaces, hyphens, dots and apostrophes, so "GPT-3", "GPT 3" and "gpt3" agree.

    Other symbols stay, because "$100" and "100%", or "C++" and "C", are different things.
    """
    text = _DECIMAL_POINT.sub("\x00", text)
    joined = "".join(char for char in text if char not in _SEPARATORS and not char.isspace())
    return joined.replace("\x00", ".")


def types_compatible(first: EntityType, second: EntityType) -> bool:
    """Return whether names of these two types may name one entity.

    OTHER is the extractor's type for capitalised names it could not classify, so it matches every
    type except DATE and QUANTITY.
    """
    if first == second:
        return True
    if first in _CLOSED_TYPES or second in _CLOSED_TYPES:
        return False
    if EntityType.OTHER in (first, second):
        return True
    return frozenset({first, second}) in _COMPATIBLE_TYPE_PAIRS


@dataclass(frozen=True)
class NameForm:
    """The keys of one folded name, computed once per distinct name and type.

    `surfaces` are the name's distinct written forms, which decide whether it is written as an
    acronym or in capitals.
    """

    key: str
    type: EntityType
    surfaces: tuple[str, ...] = ()

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """Tokens of the key without surrounding punctuation."""
        return name_tokens(self.key)

    @cached_property
    def compact(self) -> str:
        """The key without spaces, hyphens, dots and apostrophes (see `compact`)."""
        return compact(self.key) or self.key

    @cached_property
    def numbers(self) -> tuple[str, ...]:
        """Digit runs, scale words and Roman numerals of the key, in order ("Henry VIII 2" -> ("viii", "2"))."""
        parts = []
        for token in self.tokens:
            if _ROMAN_NUMERAL.fullmatch(token) and token not in _ROMAN_LOOKALIKES:
                parts.append(token)
            else:
                parts.extend(_NUMBER_PART.findall(token))
        return tuple(parts)

    @cached_property
    def person_core(self) -> tuple[str, ...]:
        """Tokens without leading titles and trailing suffixes, keeping at least one token."""
        tokens = list(self.tokens)
        while len(tokens) > 1 and tokens[0] in HONORIFICS:
            tokens = tokens[1:]
        while len(tokens) > 1 and tokens[-1] in PERSON_SUFFIXES:
            tokens = tokens[:-1]

        # A repeated word is one given name written apart ("Fei Fei" for "Fei-Fei"), not two names.
        if len(tokens) > 1 and len(set(tokens)) == 1:
            return (compact("".join(tokens)),)
        return tuple(tokens)

    @cached_property
    def is_full_person_name(self) -> bool:
        """Whether the name has a given name and a surname after titles are removed."""
        return self.type is EntityType.PERSON and len(self.person_core) > 1

    @cached_property
    def without_designator(self) -> str:
        """The compact key without trailing legal-form words ("Apple Inc." -> "apple"); empty when none."""
        tokens = list(self.tokens)
        stripped = False
        while len(tokens) > 1 and tokens[-1] in DESIGNATORS:
            tokens = tokens[:-1]
            stripped = True
        return compact(" ".join(tokens)) if stripped else ""

    @cached_property
    def without_suffix(self) -> str:
        """The compact key without a trailing ORGANISATION_SUFFIXES word, for organisations; empty when none."""
        if self.type not in (EntityType.ORGANIZATION, EntityType.OTHER) or len(self.tokens) < 2:
            return ""
        if self.tokens[-1] not in ORGANISATION_SUFFIXES:
            return ""
        return compact(" ".join(self.tokens[:-1]))

    @cached_property
    def country_expanded(self) -> str:
        """The compact key with country abbreviations and long forms replaced by the short name, or empty when none.

        "U.S. Supreme Court" and "United States of America Supreme Court" both become
        "unitedstatessupremecourt", and "USA" becomes "unitedstates".
        """
        if self.type is EntityType.PERSON or self.type in _CLOSED_TYPES:
            return ""
        tokens = [token.replace(".", "") for token in self.tokens]
        upper_words = {word.replace(".", "").casefold() for surface in self.surfaces for word in surface.split() if word.replace(".", "").isupper()}
        expanded: list[str] = []
        position = 0
        while position < len(tokens):
            for length in range(min(_LONGEST_COUNTRY_ALIAS, len(tokens) - position), 0, -1):
                alias = tuple(tokens[position : position + length])
                if alias in COUNTRY_ALIASES and (length > 1 or alias[0] in upper_words):
                    expanded.extend(COUNTRY_ALIASES[alias])
                    position += length
                    break
            else:
                expanded.append(tokens[position])
                position += 1
        key = compact(" ".join(expanded))
        return key if key != self.compact else ""

    @cached_property
    def singular(self) -> str:
        """The compact key with its last word made singular, or empty when the last word is not a plural."""
        if self.type not in PLURAL_TYPES or not self.tokens:
            return ""
        last = self.tokens[-1]
        if any(_ACRONYM_PLURAL.match(_strip_punctuation(surface.split()[-1])) for surface in self.surfaces if surface.split()):
            singular_last = last[:-1]
        else:
            singular_last = _singular_word(last)
        if not singular_last:
            return ""
        return compact(" ".join((*self.tokens[:-1], singular_last)))

    @cached_property
    def acronym(self) -> str:
        """The letters of a name written as an upper-case acronym ("U.S." -> "us"), else empty."""
        if self.type is EntityType.PERSON or self.type in _CLOSED_TYPES:
            return ""
        letters = self.key.replace(".", "")
        if not (letters.isalpha() and ACRONYM_MIN_LETTERS <= len(letters) <= ACRONYM_MAX_LETTERS):
            return ""
        written_upper = any(surface.replace(".", "").isupper() for surface in self.surfaces)
        return letters if written_upper else ""

    @cached_property
    def initials(self) -> frozenset[str]:
        """Initials of a multi-word name, with and without its function words."""
        variants = {self.significant_initials} if self.significant_initials else set()
        tokens = self._initial_words
        if len(tokens) >= ACRONYM_MIN_LETTERS:
            variants.add("".join(word[0] for word in tokens))
        return frozenset(variants)

    @cached_property
    def significant_initials(self) -> str:
        """Initials of the words other than function words ("Bank of England" -> "be"), or empty."""
        significant = [token for token in self._initial_words if token not in FUNCTION_WORDS]
        return "".join(word[0] for word in significant) if len(significant) >= ACRONYM_MIN_LETTERS else ""

    @cached_property
    def _initial_words(self) -> list[str]:
        if self.type is EntityType.PERSON or self.type in _CLOSED_TYPES:
            return []
        return [token for token in name_tokens(self.key.replace("-", " ")) if token[0].isalnum()]

    @cached_property
    def is_capitalised(self) -> bool:
        """Whether some surface form starts every word other than function words with a capital letter."""
        for surface in self.surfaces:
            words = [word for word in surface.split() if word.casefold() not in FUNCTION_WORDS]
            if words and all(word[0].isupper() for word in words):
                return True
        return False

    @cached_property
    def token_set(self) -> frozenset[str]:
        """The set of tokens other than function words and titles."""
        tokens = self.person_core if self.type is EntityType.PERSON else self.tokens
        return frozenset(token for token in tokens if token not in FUNCTION_WORDS)


def _singular_word(word: str) -> str:
    """Return the singular of an English plural noun, or "" when `word` does not look like one."""
    if len(word) < 4 or not word.isalpha() or word in _NOT_PLURAL or word.endswith(("ss", "us", "is", "ics")):
        return ""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return ""


# Common English nicknames and spelling variants of given names, one group per line. Names in one
# group may be one person when the surname agrees ("Geoff Hinton", "Geoffrey Hinton"). Names that
# are nicknames of two different given names ("Al": Albert, Alan, Alexander) are left out.
GIVEN_NAME_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(line.split())
    for line in (
        "alexander alex",
        "andrew andy",
        "anthony tony",
        "benjamin ben benji",
        "charles charlie chuck",
        "christopher chris",
        "daniel dan danny",
        "david dave davey",
        "deborah debbie debra",
        "edward ed eddie ted",
        "elizabeth liz lizzie beth betsy",
        "geoffrey geoff jeffrey jeff",
        "gregory greg",
        "ian iain",
        "james jim jimmy jamie",
        "jennifer jen jenny",
        "john johnny jack jon",
        "jonathan jon",
        "joseph joe joey",
        "katherine catherine kathryn kate katie kathy",
        "lawrence laurence larry",
        "margaret maggie peggy meg",
        "matthew matt",
        "michael mike mikey mick",
        "nicholas nick nicky",
        "patrick pat",
        "peter pete",
        "philip phillip phil",
        "rebecca becky",
        "richard dick rick rich ricky",
        "robert bob bobby rob robbie",
        "samuel sam sammy",
        "stephen steven steve",
        "susan sue susie",
        "thomas tom tommy",
        "timothy tim timmy",
        "william bill billy will willie",
    )
)

_GIVEN_NAME_GROUP_IDS: dict[str, frozenset[int]] = {}
for _group_id, _group in enumerate(GIVEN_NAME_GROUPS):
    for _name in _group:
        _GIVEN_NAME_GROUP_IDS[_name] = _GIVEN_NAME_GROUP_IDS.get(_name, frozenset()) | {_group_id}


def given_names_compatible(first: str, second: str) -> bool:
    """Return whether two given names can name one person: equal, an initial, or in one GIVEN_NAME_GROUPS group."""
    if tokens_compatible(first, second):
        return True
    return bool(_GIVEN_NAME_GROUP_IDS.get(first, frozenset()) & _GIVEN_NAME_GROUP_IDS.get(second, frozenset()))


# Letter groups that sound alike, replaced before single letters ("sch" is read before "ch").
_PHONETIC_GROUPS = (("sch", "sk"), ("ph", "f"), ("ck", "k"), ("sh", "x"), ("ch", "x"), ("th", "0"), ("gh", ""))

# Single letters that sound alike in English names.
_PHONETIC_LETTERS = str.maketrans({"q": "k", "z": "s", "v": "f", "x": "s"})
_VOWELS = frozenset("aeiouy")
_SOFTENING_VOWELS = frozenset("eiy")


def phonetic_key(word: str) -> str:
    """Return a sound key of one name word, so that "Geoffrey" and "Jeoffrey" or "Schillace" and "Schillaci" agree.

    The key is in the spirit of Metaphone but simpler. "C" and "g" before e, i or y become "s" and
    "j", inner vowels and "h" are dropped, doubled sounds count once, and a first and a last vowel
    each leave an "a". So "Simon" and "Simone" differ, and so do "Daniel" and "Daniela".
    """
    letters = "".join(char for char in word.casefold() if "a" <= char <= "z")
    codes: list[str] = []
    position = 0
    while position < len(letters):
        group = next((pair for pair in _PHONETIC_GROUPS if letters.startswith(pair[0], position)), None)
        if group is not None:
            codes.append(group[1])
            position += len(group[0])
            continue

        char = letters[position]
        following = letters[position + 1 : position + 2]
        if char in _VOWELS:
            codes.append("a" if position in (0, len(letters) - 1) else "")
        elif char == "c":
            codes.append("s" if following in _SOFTENING_VOWELS else "k")
        elif char == "g":
            codes.append("j" if following in _SOFTENING_VOWELS else "k")
        elif char in "hw":
            codes.append("")
        else:
            codes.append(char.translate(_PHONETIC_LETTERS))
        position += 1

    key: list[str] = []
    for code in codes:
        if code and (not key or key[-1] != code):
            key.append(code)
    return "".join(key)


def tokens_compatible(first: str, second: str) -> bool:
    """Return whether two name tokens are equal or one is the initial of the other ("j" and "john")."""
    if first == second:
        return True
    if len(first) == 1:
        return second.startswith(first)
    if len(second) == 1:
        return first.startswith(second)
    return False


def person_names_align(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Return whether two full names can be one person.

    Names of equal length align token by token, each equal or an initial of the other, and the
    given names may also be variants of one name (see `given_names_compatible`). Otherwise only
    the first and last tokens align, so a middle name present in one name only does not block the
    match, and neither does a leading initial of the longer name ("C. Everett Koop"). The same
    tokens in another order ("Li Fei-Fei", "Fei-Fei Li") also align.
    """
    first = _split_hyphens(first)
    second = _split_hyphens(second)
    if sorted(first) == sorted(second):
        return True
    if len(first) == len(second):
        if not given_names_compatible(first[0], second[0]):
            return False
        return all(tokens_compatible(mine, theirs) for mine, theirs in zip(first[1:], second[1:], strict=True))

    # A leading initial that only the longer name has ("C. Everett Koop", "Everett Koop") is skipped.
    shorter, longer = sorted((first, second), key=len)
    while len(longer) > len(shorter) and len(longer[0]) == 1 and not tokens_compatible(longer[0], shorter[0]):
        longer = longer[1:]
    return given_names_compatible(shorter[0], longer[0]) and tokens_compatible(shorter[-1], longer[-1])


def _split_hyphens(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """Split hyphenated tokens into their parts, so "Kim Il-sung" and "Kim Il Sung" align."""
    return tuple(part for token in tokens for part in token.split("-") if part)


def is_strict_token_subset(first: NameForm, second: NameForm) -> bool:
    """Return whether one name's words are a strict subset of the other's ("Microsoft", "Microsoft Research").

    Hyphenated words count as their parts, so "Venezuelan" is a subset of "Venezuelan-American".
    """
    mine, theirs = set(_split_hyphens(first.tokens)), set(_split_hyphens(second.tokens))
    return mine != theirs and (mine <= theirs or theirs <= mine)


# Word endings that turn one word into a related but different one: "engineer" and "engineering",
# "biology" and "biologist", "science" and "scientist", "Africa" and "African". Names that differ only in such an ending are
# different things, however close their spelling and vectors are.
DERIVATIONAL_ENDINGS = frozenset(
    {
        "", "al", "ally", "an", "ans", "ation", "ations", "ce", "ed", "er", "ers", "ese", "i", "ian", "ians", "ic", "ical",
        "ics", "ing", "ion", "ions", "ism", "ist", "ists", "ity", "ive", "n", "o", "or", "ors", "tist", "tists", "y",
    }
)


def is_derivational_variant(first: NameForm, second: NameForm) -> bool:
    """Return whether two names differ in one word only, and only by a derivational ending.

    Both endings after the longest common prefix must be listed in DERIVATIONAL_ENDINGS, where the
    empty ending stands for the bare word ("engineer" + "" and "engineer" + "ing").
    """
    mine = [token for token in first.tokens if token not in second.tokens]
    theirs = [token for token in second.tokens if token not in first.tokens]
    if len(mine) != 1 or len(theirs) != 1:
        return False
    word_a, word_b = mine[0], theirs[0]
    common = 0
    while common < min(len(word_a), len(word_b)) and word_a[common] == word_b[common]:
        common += 1
    ending_a, ending_b = word_a[common:], word_b[common:]
    return common >= 3 and ending_a in DERIVATIONAL_ENDINGS and ending_b in DERIVATIONAL_ENDINGS


@dataclass(frozen=True)
class StringScores:
    """String similarity of two folded names, each in [0, 1]."""

    jaro_winkler: float
    token_set: float


def string_scores(first: NameForm, second: NameForm) -> StringScores:
    """Return the Jaro-Winkler similarity and the token-set ratio of two names."""
    return StringScores(
        jaro_winkler=float(JaroWinkler.normalized_similarity(first.key, second.key)),
        token_set=float(fuzz.token_set_ratio(first.key, second.key)) / 100.0,
    )


def hard_conflict(first: NameForm, second: NameForm) -> str | None:
    """Return why two names can never be one entity, or None when nothing forbids it."""
    if not types_compatible(first.type, second.type):
        return f"types {first.type.value} and {second.type.value} differ"
    if first.numbers != second.numbers:
        return "numbers differ"
    if EntityType.PERSON in (first.type, second.type) and len(first.person_core) > 1 and len(second.person_core) > 1:
        if not person_names_align(first.person_core, second.person_core):
            return "full names differ"
    return None
