"""Precompiled regular expressions of the fast extractor.

`MENTION_RE` finds every mention candidate of a chunk in one pass. Each pass of Python's `re` over
a 1,200-character chunk took 10 to 30 microseconds even for simple patterns (measured on an AMD
EPYC core with Python 3.11), so separate passes per kind of mention would cost more than the rules.
The branches start with a character class or a cheap lookahead, so most positions fail fast.
"""

import re

_UPPER = "A-Z\u00c0-\u00d6\u00d8-\u00de"
_ALNUM = r"[^\W_]"
_LETTER = r"[^\W\d_]"
_CURRENCY = "$\u20ac\u00a3\u00a5"

# A space or a no-break space, as between a number and its unit ("104.1 MHz").
_SPACE = "[ \u00a0]"

_UNAMBIGUOUS_MONTHS_AND_DAYS = (
    "January|February|April|June|July|August|September|October|November|December|"
    "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
)

# One capitalised token: an abbreviation with its period, dotted initials ("U.S.", "T."), or a word
# that starts upper case or in camel case ("iPhone"). It may have hyphen, ampersand or plus parts
# ("GPT-4", "AT&T", "Co-operation"), and an apostrophe part unless that is the possessive "'s"
# ("O'Brien" but "Microsoft"). The group is atomic, so that a token glued to a file name
# ("EP-18_") is rejected whole instead of matching its first letters. Month and weekday names are
# left to `_MONTH_DATE`, except "May" and "March", which are also names and words.
_NAME_TOKEN = (
    rf"(?!(?:{_UNAMBIGUOUS_MONTHS_AND_DAYS})\b)"
    r"(?>(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Mt|Ft|Gen|Sen|Rep|Gov|Lt|Col|Capt|Rev)\."
    rf"|(?:[{_UPPER}]\.){{1,4}}"
    rf"|(?:[{_UPPER}]|[a-z][{_UPPER}]){_ALNUM}*(?:[-&+]{_ALNUM}+)*(?:['\u2019](?![sS](?!{_ALNUM})){_ALNUM}+)?)"
    r"(?![\w@/\\]|\.\w)"
)

# Lower-case words allowed between the capitalised words of one name ("Bank of America").
NAME_CONNECTORS = frozenset(
    {"of", "the", "and", "&", "for", "de", "da", "di", "del", "della", "des", "du", "van", "von", "der",
     "den", "la", "le", "y", "al", "bin", "ibn"}
)
_CONNECTOR = "|".join(re.escape(word) for word in sorted(NAME_CONNECTORS, key=len, reverse=True))

# A run of name tokens separated by spaces or tabs, with up to two connectors between tokens.
_NAME = (
    rf"(?=[{_UPPER}]|[a-z][{_UPPER}])(?<![\w.@/\\-]){_NAME_TOKEN}"
    rf"(?:(?:[ \t]+(?:{_CONNECTOR})){{0,2}}[ \t]+{_NAME_TOKEN})*"
)

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTHS_ABBREVIATED = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_WEEKDAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_YEAR = r"(?:1[5-9]\d\d|20\d\d)\b"

# Month and weekday names with an optional day and year: "January 2020", "May 5, 2019",
# "Jan. 5". An abbreviated month needs a day or a year beside it ("Jan Smith" is a name).
_MONTH_DATE = (
    rf"\b(?:(?:{_MONTHS})\b(?:[ ]\d{{1,2}}(?:st|nd|rd|th)?\b)?(?:,?[ ]{_YEAR})?"
    rf"|(?:{_MONTHS_ABBREVIATED})\.?[ ](?:\d{{1,2}}\b(?:,?[ ]{_YEAR})?|{_YEAR})"
    rf"|(?:{_WEEKDAYS})\b)"
)

_SCALE = r"(?:hundred|thousand|million|billion|trillion)\b"
_UNITS = (
    r"(?:dollars?|euros?|pounds?|yen|yuan|rupees?|cents?|people|users|customers|employees|"
    r"students|members|years?|months?|weeks?|days?|hours?|minutes?|seconds?|milliseconds?|"
    r"microseconds?|nanoseconds?|km|kilomet(?:er|re)s?|miles?|met(?:er|re)s?|cm|mm|nm|feet|foot|"
    r"inches|kg|kilograms?|grams?|lbs?|tons?|tonnes?|liters?|litres?|gallons?|bytes?|bits?|"
    r"kb|mb|gb|tb|pb|kilobytes?|megabytes?|gigabytes?|terabytes?|petabytes?|hz|khz|mhz|ghz|"
    r"watts?|kw|mw|gw|kwh|volts?|degrees?|acres?|hectares?|parameters|transistors|cores|"
    r"servers|gpus|cpus)\b"
)

# A number, with what makes it a quantity or a date after it. Named groups tell them apart: money
# ("$1.5 million"), `percent` ("40%"), `scale` ("3 billion", "5M"), `unit` ("150 CPUs", "20 years"),
# `day_month` ("5 May 2019"), `suffix` ("1980s", "19th" before "century") and `era` ("500 BC").
# A bare number is a date when it is a year from 1500 to 2099 and is otherwise not a mention.
_NUMBER = (
    rf"[{_CURRENCY}\d](?<![\w.,][{_CURRENCY}\d])"
    rf"(?:(?<=[{_CURRENCY}])[ ]?\d|(?<=\d))\d*(?:[.,]\d+)*(?P<suffix>st|nd|rd|th|s)?\b"
    rf"(?:(?P<percent>{_SPACE}?%|{_SPACE}(?i:percent|per[ ]cent)\b)"
    rf"|(?P<scale>[ \u00a0-]?(?i:{_SCALE})|[kKmMbB]n?\b)(?:[ \u00a0-](?i:{_UNITS}))?"
    rf"|[ \u00a0-](?P<unit>(?i:{_UNITS}))"
    rf"|{_SPACE}(?P<day_month>(?:{_MONTHS})\b(?:,?[ ]{_YEAR})?)"
    rf"|{_SPACE}(?P<century>century)\b"
    rf"|{_SPACE}(?P<era>BC|BCE|AD|CE)\b)?"
)

# A run of two or more lower-case words separated by single spaces, where noun phrases are sought.
_LOWER_WORDS = (
    r"[a-z](?<![\w'\u2019-][a-z])[a-z]*(?:[-'\u2019][a-z]+)*"
    r"(?:[ ][a-z]+(?:[-'\u2019][a-z]+)*)+(?![\w'\u2019-])"
)

MENTION_RE = re.compile(
    rf"(?P<number>{_NUMBER})|(?P<month>{_MONTH_DATE})|(?P<words>{_LOWER_WORDS})|(?P<name>{_NAME})"
)

YEAR_RE = re.compile(r"1[5-9]\d\d|20\d\d")

TOKEN_RE = re.compile(r"\S+")

# "KEVIN SCOTT:" or "Kevin Scott:" at the start of a line in a transcript.
_LABEL_WORD = rf"[{_UPPER}]{_LETTER}*(?:[.'\u2019-]{_LETTER}+)*\.?"
SPEAKER_LABEL_RE = re.compile(rf"^[ \t]*({_LABEL_WORD}(?:[ \t]+{_LABEL_WORD})*)[ \t]*:(?=\s|$)", re.MULTILINE)

# Candidate sentence ends: terminal punctuation with optional closing quotes or brackets, then
# whitespace whose first following visible character is captured, or a line break. Only the first
# mark of a run ("?!", "...") starts a match, and the quantifiers are possessive, so that a long run
# of punctuation costs linear time.
SENTENCE_END_RE = re.compile(
    r"[.!?\u2026\n](?:(?<=\n)|(?<![.!?\u2026].)[.!?\u2026]*+[\"\u201d\u2019')\]]*+(?=\s+(\S)))"
)

RELATION_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)*")
