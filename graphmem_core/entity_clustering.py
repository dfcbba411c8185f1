"""Clustering of name nodes into entities: guarded union-find, alias rules and a similarity stage.

A name node is every mention of one entity type with one folded key. Nodes merge in two stages:

1. Alias rules over blocks of shared keys. They match the same key under compatible types, the
   same spelling without separators, titles, legal-form and suffix words, plurals, the same words
   in another order, aligned full names, cut-off speaker labels and acronyms. A lone surname or
   given name joins the one full name it fits.
2. With an embed function, clusters whose canonical names are nearest neighbours above the cosine
   threshold and also similar as strings.

Every merge passes a guard first: two clusters join only if no pair of their names has a hard
conflict (see `name_matching.hard_conflict`) or an exclusion. Similarity merges also need every
pair of representative names across the two clusters to be similar (complete linkage). So A ~ B
and B ~ C cannot pull A and C into one entity when A and C are not alike.
"""

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz.distance import Levenshtein

from graphmem_core.errors import InvalidInputError
from graphmem_core.models import EntityType
from graphmem_core.name_matching import (
    DESIGNATORS,
    FUNCTION_WORDS,
    ORGANISATION_SUFFIXES,
    NameForm,
    compact,
    hard_conflict,
    is_derivational_variant,
    is_strict_token_subset,
    person_names_align,
    phonetic_key,
    string_scores,
    types_compatible,
)

logger = logging.getLogger(__name__)

EmbedFunction = Callable[[list[str]], np.ndarray]

# Neighbours kept per name in the similarity search, which bounds the candidate pairs at n * 10. A
# name rarely has more than a few true duplicates, so 10 leaves room for all of them.
EMBEDDING_NEIGHBOURS = 10

# Rows of the similarity matrix computed at once: 1,024 rows against 50,000 names is 200 MB of float32.
_SIMILARITY_BLOCK_ROWS = 1024

# A similarity merge needs the names to be alike as strings as well as close as vectors: MiniLM puts
# "John Smith" and "Jane Smith" at cosine 0.8 or more. Either score at or above its minimum passes.
SIMILAR_MIN_JARO_WINKLER = 0.9
SIMILAR_MIN_TOKEN_SET = 0.9

# An acronym and a lower-case phrase with its initials are one entity only with evidence in the text.
# The phrase must share at least this many chunks with the acronym, which rules out one coincidence,
# and this many times as many as any other phrase with the same initials.
ACRONYM_MIN_SHARED_CHUNKS = 2
ACRONYM_DOMINANCE = 2

# Two-letter acronyms ("TA", "GE") stand for too many names to match one without a shared chunk,
# unless they are written with dots ("U.K."), as abbreviations of names are.
ACRONYM_MIN_LETTERS_ALONE = 3

# A lone name merges with one of several people of its name only when more than this share of its
# documents mention that person. Half or less lets a surname split between two documents ("Wilson",
# a president in one and a film character in the other) join either.
LONE_NAME_MIN_DOCUMENT_SHARE = 0.5

# Lower-case words that begin a surname ("van Dyck", "von Neumann", "de Gaulle").
SURNAME_PARTICLES = frozenset({"van", "von", "de", "da", "di", "del", "della", "der", "du", "le", "la", "ter", "ten"})

# A lone name of type OTHER shorter than this is too often an ordinary word or an acronym to be a surname.
MIN_LONE_OTHER_CHARS = 4

# Acronyms of up to this many letters name many different things ("DC", "D.C.").
SHORT_ACRONYM_LETTERS = 3

# Given names shorter than this differ by one letter too often between two people ("Dan", "Don").
GIVEN_NAME_MIN_EDIT_CHARS = 5

# A PERSON name counts as a mistyped place or organisation of the same spelling when that type has at
# least this many times its mentions ("Canada": 65 LOCATION, 1 PERSON; "Victoria": 8 LOCATION, 4 PERSON
# for the queen).
MISTYPED_PERSON_MIN_RATIO = 5
_MISTYPED_PERSON_TARGETS = frozenset({EntityType.LOCATION, EntityType.ORGANIZATION})

# Two full names that sound alike but share no document need this many other names mentioned in a
# chunk with each of them ("Jeoffrey Hinton" and "Geoffrey Hinton" share 4 in the podcasts).
PHONETIC_MIN_SHARED_NEIGHBOURS = 3

# Types of the names that the qualifier rule compares ("Campari Group of Milan", "Hammer Film Productions").
QUALIFIED_TYPES = frozenset({EntityType.ORGANIZATION, EntityType.OTHER, EntityType.PRODUCT})

# Last words that only say what kind of organisation a name is, which a short form leaves out in the
# document that also gives the long form ("Hammer" for "Hammer Film Productions").
GENERIC_NAME_SUFFIXES = DESIGNATORS | ORGANISATION_SUFFIXES | frozenset({"film"})

# Dates and quantities merge only by their spelling: "10 miles" and "100 miles" embed close together.
_EXACT_ONLY_TYPES = frozenset({EntityType.DATE, EntityType.QUANTITY})

# Rule names, in the order the rules run. Stored merge records name the rule that matched.
RULES = (
    "same_key",
    "spelling",
    "mistyped_person",
    "title",
    "legal_form",
    "short_form",
    "country_name",
    "qualifier",
    "plural",
    "token_order",
    "full_name",
    "given_name_spelling",
    "phonetic_spelling",
    "truncated",
    "surname",
    "given_name",
    "acronym",
    "similarity",
)


@dataclass
class NameNode:
    """All mentions of one entity type that share one folded key."""

    form: NameForm
    surface_counts: Counter[str] = field(default_factory=Counter)
    chunk_ids: set[str] = field(default_factory=set)
    document_ids: set[str] = field(default_factory=set)
    previous_entity: str | None = None

    @property
    def type(self) -> EntityType:
        """The entity type of the node's mentions."""
        return self.form.type

    @property
    def key(self) -> str:
        """The folded key shared by the node's mentions."""
        return self.form.key


class UnionFind:
    """Disjoint sets over the integers `0..size-1`, with path halving and union by size."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))
        self.size = [1] * size

    def find(self, item: int) -> int:
        """Return the representative of the set containing `item`."""
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, first: int, second: int) -> int:
        """Merge the sets of `first` and `second` and return the representative of the result."""
        root_a, root_b = self.find(first), self.find(second)
        if root_a == root_b:
            return root_a
        if (self.size[root_a], root_b) < (self.size[root_b], root_a):
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]
        return root_a


@dataclass(frozen=True)
class MergeStep:
    """One successful merge: the two nodes that matched, the rule and its scores."""

    first: int
    second: int
    rule: str
    score: float
    features: dict[str, float]


@dataclass(frozen=True)
class _Guard:
    """Merge constraints of a cluster: its types, numbers, full names, keys and previous entities."""

    types: frozenset[EntityType]
    numbers: tuple[str, ...]
    full_names: frozenset[tuple[tuple[str, ...], bool]]
    keys: frozenset[str]
    previous: frozenset[str]
    has_new: bool
    representatives: tuple[int, ...]

    @classmethod
    def for_node(cls, index: int, node: NameNode) -> "_Guard":
        """Return the guard of a cluster that contains only `node`."""
        full_names = frozenset()
        if node.type in (EntityType.PERSON, EntityType.OTHER) and not _lone_surname(node.form):
            full_names = frozenset({(node.form.person_core, node.type is EntityType.PERSON)})
        return cls(
            types=frozenset({node.type}),
            numbers=node.form.numbers,
            full_names=full_names,
            keys=frozenset({node.key}),
            previous=frozenset({node.previous_entity}) if node.previous_entity else frozenset(),
            has_new=node.previous_entity is None,
            representatives=(index,),
        )

    def conflict(
        self,
        other: "_Guard",
        exclusions: Mapping[str, frozenset[str]],
        incremental: bool,
        variants: frozenset[frozenset[tuple[str, ...]]] = frozenset(),
    ) -> str | None:
        """Return why this cluster and `other` must stay apart, or None.

        `variants` contains pairs of full names that a rule found to be one person although their
        given names are spelt differently ("Philip Glass", "Phillip Glass").
        """
        for mine in self.types:
            for theirs in other.types:
                if not types_compatible(mine, theirs):
                    return f"types {mine.value} and {theirs.value} differ"
        if self.numbers != other.numbers:
            return "numbers differ"
        for mine, mine_is_person in self.full_names:
            for theirs, theirs_is_person in other.full_names:
                if (mine_is_person or theirs_is_person) and not person_names_align(mine, theirs):
                    if frozenset({mine, theirs}) not in variants:
                        return "full names differ"
        smaller, larger = (self, other) if len(self.keys) <= len(other.keys) else (other, self)
        for key in smaller.keys:
            if exclusions.get(key, frozenset()) & larger.keys:
                return "excluded"
        if incremental and self.previous and other.previous and self.previous != other.previous:
            return "both are existing entities"
        return None

    def combined(self, other: "_Guard", representatives: tuple[int, ...]) -> "_Guard":
        """Return the guard of the union of both clusters."""
        return _Guard(
            types=self.types | other.types,
            numbers=self.numbers,
            full_names=self.full_names | other.full_names,
            keys=self.keys | other.keys,
            previous=self.previous | other.previous,
            has_new=self.has_new or other.has_new,
            representatives=representatives,
        )


class EntityClusterer:
    """Groups name nodes into clusters with guarded merges and records every merge it makes.

    With `incremental`, nodes that carry a `previous_entity` start in the cluster of that entity,
    pairs of two such nodes are not compared again, and no merge joins two existing entities.
    """

    def __init__(self, nodes: list[NameNode], exclusions: Mapping[str, frozenset[str]], incremental: bool) -> None:
        self.nodes = nodes
        self.exclusions = exclusions
        self.incremental = incremental
        self.union_find = UnionFind(len(nodes))
        self.guards = {index: _Guard.for_node(index, node) for index, node in enumerate(nodes)}
        self.members: dict[int, list[int]] = {index: [index] for index in range(len(nodes))}
        self.steps: list[MergeStep] = []
        self.rejected: Counter[str] = Counter()
        self._vectors: dict[int, np.ndarray] = {}
        self._threshold = 1.0
        self._nodes_by_chunk: dict[str, list[int]] | None = None
        self.spelling_variants: frozenset[frozenset[tuple[str, ...]]] = frozenset()
        if incremental:
            self._join_previous_entities()

    def _join_previous_entities(self) -> None:
        by_entity: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            if node.previous_entity is not None:
                by_entity[node.previous_entity].append(index)
        for members in by_entity.values():
            for member in members[1:]:
                self._union(members[0], member, self.guards[self.find(members[0])].representatives)

    def find(self, index: int) -> int:
        """Return the cluster root of node `index`."""
        return self.union_find.find(index)

    def clusters(self) -> dict[int, list[int]]:
        """Return the member nodes of every cluster, keyed by root."""
        return {root: sorted(members) for root, members in self.members.items()}

    def merge(self, first: int, second: int, rule: str, score: float = 1.0, features: dict[str, float] | None = None) -> bool:
        """Merge the clusters of two nodes unless their guards conflict; return whether they merged."""
        root_a, root_b = self.find(first), self.find(second)
        if root_a == root_b:
            return False
        guard_a, guard_b = self.guards[root_a], self.guards[root_b]
        reason = guard_a.conflict(guard_b, self.exclusions, self.incremental, self.spelling_variants)
        if reason is not None:
            self.rejected[reason] += 1
            logger.debug("Kept %r and %r apart (%s): %s", self.nodes[first].key, self.nodes[second].key, rule, reason)
            return False

        representatives = guard_a.representatives + guard_b.representatives if rule == "similarity" else guard_a.representatives
        self._union(root_a, root_b, representatives)
        self.steps.append(MergeStep(first, second, rule, score, features or {}))
        return True

    def _union(self, first: int, second: int, representatives: tuple[int, ...]) -> None:
        root_a, root_b = self.find(first), self.find(second)
        if root_a == root_b:
            return
        merged = self.union_find.union(root_a, root_b)
        other = root_b if merged == root_a else root_a
        self.guards[merged] = self.guards[root_a].combined(self.guards[root_b], representatives)
        del self.guards[other]
        self.members[merged].extend(self.members.pop(other))

    def _comparable(self, first: int, second: int) -> bool:
        """Return False for two existing nodes in an incremental run, whose match was decided before."""
        if not self.incremental:
            return True
        return self.nodes[first].previous_entity is None or self.nodes[second].previous_entity is None

    def _merge_block(self, members: list[int], rule: str, pair_filter: Callable[[NameForm, NameForm], bool] | None = None) -> None:
        """Merge the nodes of a block into one cluster where the guards and `pair_filter` allow, in index order."""
        for position, member in enumerate(members[1:], start=1):
            for anchor in members[:position]:
                if self.find(anchor) == self.find(member):
                    break
                if pair_filter is not None and not pair_filter(self.nodes[anchor].form, self.nodes[member].form):
                    continue
                if self._comparable(anchor, member) and self.merge(anchor, member, rule):
                    break

    # Stage 1: alias rules

    def apply_rules(self) -> None:
        """Apply the alias rules in order; later rules see the clusters earlier rules made."""
        self._merge_blocks("same_key", lambda form: form.key, all_types=True)
        self._merge_blocks("spelling", lambda form: form.compact, all_types=True, pair_filter=_spellings_compatible)
        self._merge_mistyped_people()
        self._merge_blocks("title", lambda form: " ".join(form.person_core) if form.is_full_person_name else None)
        self._merge_blocks("legal_form", lambda form: form.without_designator or None, also=lambda form: form.compact)
        self._merge_blocks("short_form", lambda form: form.without_suffix or None, also=lambda form: form.compact)
        self._merge_blocks("country_name", lambda form: form.country_expanded or None, also=lambda form: form.compact)
        self._merge_qualified_names()
        self._merge_blocks("plural", lambda form: form.singular or None, also=lambda form: form.compact, all_types=True)
        self._merge_blocks("token_order", _token_order_key)
        self._merge_aligned_full_names()
        self._merge_given_name_spellings()
        self._merge_phonetic_spellings()
        self._merge_truncated_labels()
        self._merge_lone_names()
        self._merge_acronyms()

    def _merge_mistyped_people(self) -> None:
        """Merge a PERSON name into the same name of a place or organisation that is far more often typed so.

        The extractor types a country as a person now and then ("Canada" once as PERSON, 65 times
        as LOCATION). The PERSON name joins when the other type has MISTYPED_PERSON_MIN_RATIO times
        its mentions, so a queen and a place of one name ("Victoria", 4 and 8 mentions) stay apart.
        Only a PERSON name that no rule has merged yet qualifies, and it then counts as the other type.
        """
        by_spelling: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            if node.type is EntityType.PERSON or node.type in _MISTYPED_PERSON_TARGETS:
                by_spelling[node.form.compact].append(index)

        for members in by_spelling.values():
            people = [member for member in members if self.nodes[member].type is EntityType.PERSON]
            others = [member for member in members if self.nodes[member].type in _MISTYPED_PERSON_TARGETS]
            if not people or not others:
                continue
            target = min(others, key=lambda member: (-self._mention_count(member), member))
            for person in people:
                if len(self.members[self.find(person)]) != 1 or not self._comparable(person, target):
                    continue
                if self._mention_count(target) < MISTYPED_PERSON_MIN_RATIO * self._mention_count(person):
                    continue
                guard = self.guards[person]
                self.guards[person] = dataclasses.replace(guard, types=frozenset({self.nodes[target].type}), full_names=frozenset())
                if not self.merge(target, person, "mistyped_person"):
                    self.guards[person] = guard

    def _merge_qualified_names(self) -> None:
        """Merge a name with the same name plus a place or a generic suffix, when both occur in one document.

        "Hammer" and "Hammer Film Productions", "New College" and "New College Oxford", "House of
        Representatives" and "United States House of Representatives" are one organisation in the
        document that names both. The suffix words are GENERIC_NAME_SUFFIXES. A place is the name
        of a LOCATION in the namespace, before the name or after it with or without "of", or a one-word
        ORGANIZATION name after it ("Oxford"). The name left after removing a place needs two words, because "Asia"
        and "East Asia" or "Court" and "Supreme Court" are different things.
        """
        places = {node.key for node in self.nodes if node.type is EntityType.LOCATION}
        suffix_places = places | {node.key for node in self.nodes if node.type is EntityType.ORGANIZATION and len(node.form.tokens) == 1}
        by_key: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            if node.type in QUALIFIED_TYPES:
                by_key[node.key].append(index)

        for index, node in enumerate(self.nodes):
            if node.type not in QUALIFIED_TYPES or len(node.form.tokens) < 2:
                continue
            for short_key in _unqualified_keys(node.form.tokens, places, suffix_places):
                for other in by_key.get(short_key, []):
                    if not types_compatible(node.type, self.nodes[other].type) or not node.document_ids & self.nodes[other].document_ids:
                        continue
                    if self.find(other) != self.find(index) and self._comparable(index, other):
                        self.merge(other, index, "qualifier")

    def _mention_count(self, index: int) -> int:
        return sum(self.nodes[index].surface_counts.values())

    def _merge_blocks(
        self,
        rule: str,
        block_key: Callable[[NameForm], str | None],
        *,
        also: Callable[[NameForm], str | None] | None = None,
        all_types: bool = False,
        pair_filter: Callable[[NameForm, NameForm], bool] | None = None,
    ) -> None:
        """Merge nodes that share a block key, or whose `also` key equals another node's block key.

        Blocks hold one entity type unless `all_types`, in which case the guard checks that the
        types are compatible.
        """
        blocks: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            key = block_key(node.form)
            if key:
                blocks[("" if all_types else node.type.value, key)].append(index)
        if also is not None:
            for index, node in enumerate(self.nodes):
                block = blocks.get(("" if all_types else node.type.value, also(node.form) or ""))
                if block is not None and index not in block:
                    block.append(index)
        for members in blocks.values():
            if len(members) > 1:
                self._merge_block(members, rule, pair_filter)

    def _merge_aligned_full_names(self) -> None:
        """Merge full PERSON names of one surname that align, unless a name aligns with two different people.

        Names of type OTHER written like a full name ("Iain Banks") take part as well, but merge only
        with a PERSON name.
        """
        by_surname: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            if node.form.is_full_person_name or _looks_like_full_name(node):
                by_surname[node.form.person_core[-1]].append(index)

        for members in by_surname.values():
            if len(members) < 2:
                continue
            aligned = {
                index: [
                    other
                    for other in members
                    if other != index and person_names_align(self.nodes[index].form.person_core, self.nodes[other].form.person_core)
                ]
                for index in members
            }
            # "J. Smith" aligns with "John Smith" and "Jane Smith", which do not align with each other.
            ambiguous = {index for index, others in aligned.items() if not self._all_align(others)}
            for index in members:
                if index in ambiguous:
                    continue
                for other in aligned[index]:
                    if other <= index or other in ambiguous or not self._comparable(index, other):
                        continue

                    # Two names of type OTHER align too easily ("Nobel Prize", "Nobel Peace Prize").
                    if EntityType.PERSON in (self.nodes[index].type, self.nodes[other].type):
                        self.merge(index, other, "full_name")

    def _merge_given_name_spellings(self) -> None:
        """Merge two full PERSON names whose given names differ by one edit, when they share a document.

        "Phillip Glass" and "Philip Glass" are one person, but "Simon" and "Simone" can be two, so the
        document is the evidence that they are one. Both given names need GIVEN_NAME_MIN_EDIT_CHARS
        characters, and every other token must align.
        """
        by_rest: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            core = node.form.person_core
            if node.form.is_full_person_name and len(core[0]) >= GIVEN_NAME_MIN_EDIT_CHARS:
                by_rest[core[1:]].append(index)

        variants = set(self.spelling_variants)
        pairs = []
        for members in by_rest.values():
            for position, first in enumerate(members):
                for second in members[position + 1 :]:
                    given_a, given_b = self.nodes[first].form.person_core[0], self.nodes[second].form.person_core[0]
                    if given_a == given_b or Levenshtein.distance(given_a, given_b) > 1:
                        continue
                    if not self.nodes[first].document_ids & self.nodes[second].document_ids:
                        continue
                    variants.add(frozenset({self.nodes[first].form.person_core, self.nodes[second].form.person_core}))
                    pairs.append((first, second))
        self.spelling_variants = frozenset(variants)
        for first, second in pairs:
            if self._comparable(first, second):
                self.merge(first, second, "given_name_spelling")

    def _merge_phonetic_spellings(self) -> None:
        """Merge two full PERSON names that sound alike word by word, when their contexts agree.

        "Jeoffrey Hinton" and "Geoffrey Hinton", or "Sam Schillaci" and "Sam Schillace", have the
        same `phonetic_key` for every word. At least one word other than a particle must be spelt the
        same, and the longer of two words spelt differently needs GIVEN_NAME_MIN_EDIT_CHARS
        characters, so "Jane" and "John" never match. The context must agree as well: the names
        share a document, or their clusters share PHONETIC_MIN_SHARED_NEIGHBOURS names mentioned in
        a chunk with each of them.
        """
        by_sound: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            if node.form.is_full_person_name:
                by_sound[tuple(phonetic_key(token) for token in node.form.person_core)].append(index)

        for members in by_sound.values():
            for position, first in enumerate(members):
                for second in members[position + 1 :]:
                    if self.find(first) == self.find(second) or not self._comparable(first, second):
                        continue
                    if not _spelt_alike(self.nodes[first].form.person_core, self.nodes[second].form.person_core):
                        continue
                    shared_document = bool(self.nodes[first].document_ids & self.nodes[second].document_ids)
                    if not shared_document and self.shared_neighbours(first, second) < PHONETIC_MIN_SHARED_NEIGHBOURS:
                        continue
                    self._merge_spelling_variant(first, second, "phonetic_spelling")

    def _merge_spelling_variant(self, first: int, second: int, rule: str) -> None:
        """Merge two clusters whose full names a spelling rule matched, letting their full names differ.

        Every pair of full names across the two clusters becomes a spelling variant, so that "Geoff
        Hinton", already with "Geoffrey Hinton", does not block "Jeoffrey Hinton". The variants stay
        only when the merge succeeds.
        """
        previous = self.spelling_variants
        added = {
            frozenset({mine, theirs})
            for mine, _ in self.guards[self.find(first)].full_names
            for theirs, _ in self.guards[self.find(second)].full_names
        }
        self.spelling_variants = previous | added
        if not self.merge(first, second, rule):
            self.spelling_variants = previous

    def _all_align(self, members: list[int]) -> bool:
        cores = [self.nodes[member].form.person_core for member in members]
        return all(person_names_align(first, second) for position, first in enumerate(cores) for second in cores[position + 1 :])

    def _merge_lone_names(self) -> None:
        """Merge a one-word name with the one person whose surname, or given name, it is.

        When only one person in the namespace has the word as surname or given name, the lone name
        joins that person. When several do, its documents decide: no document of the lone name may
        mention another of them, and more than LONE_NAME_MIN_DOCUMENT_SHARE of its documents must
        mention the one it joins. So "Kevin" stays apart from two people named Kevin when its
        documents name each of them. Lone names of type OTHER ("Einstein" when the extractor did not
        know it as a person) match surnames only. In both cases a rival reading in the lone name's
        chunks or documents keeps it apart (see `_has_rival_reading`).
        """
        by_surname: dict[str, list[int]] = defaultdict(list)
        by_given_name: dict[str, list[int]] = defaultdict(list)
        other_by_surname: dict[str, list[int]] = defaultdict(list)
        lone_people: list[int] = []
        lone_others: list[int] = []
        self._rival_names = _RivalNames.of(self.nodes)
        for index, node in enumerate(self.nodes):
            form = node.form
            if form.is_full_person_name and not _lone_surname(form):
                by_surname[_surname_key(form.person_core)].append(index)
                by_given_name[compact(form.person_core[0])].append(index)
            elif _looks_like_full_name(node):
                other_by_surname[_surname_key(form.tokens)].append(index)
            elif _lone_surname(form) and node.type is EntityType.PERSON:
                lone_people.append(index)
            elif _lone_surname(form) and node.type is EntityType.OTHER and len(form.key) >= MIN_LONE_OTHER_CHARS and form.is_capitalised:
                lone_others.append(index)

        for index in lone_people + lone_others:
            token = _surname_key(self.nodes[index].form.person_core)
            candidates = by_surname.get(token, [])
            rule = "surname"
            if self.nodes[index].type is EntityType.PERSON:
                if not candidates:
                    rule = "given_name"
                candidates = candidates + by_given_name.get(token, [])

            # A name of type OTHER that looks like a full name ("Christian Jacq") is a candidate only
            # when it shares a document with the lone name, because it may also be a title or a place.
            documents = self.nodes[index].document_ids
            candidates += [other for other in other_by_surname.get(token, []) if self.nodes[other].document_ids & documents]
            target = self._lone_name_target(index, candidates)
            if target is not None and not self._has_rival_reading(index, target):
                self._merge_with_unique(index, [target], rule)

    def _has_rival_reading(self, index: int, target: int) -> bool:
        """Return whether the lone name's own chunks or documents give it a reading other than the person `target`.

        Two kinds of name compete with the person. A place, organisation, event or product that starts
        with the lone name in one of its chunks ("Amundsen Sea" next to "Amundsen") means the word
        may name that thing. A longer capitalised name of another type that ends with another
        person's name in one of its documents ("United States Dick Cheney" next to "Cheney" and
        "Elizabeth Cheney") means the word may name that person.
        """
        node = self.nodes[index]
        token = _surname_key(node.form.person_core)
        target_root = self.find(target)
        for other in self._rival_names.starting_with.get(token, []):
            if self.nodes[other].chunk_ids & node.chunk_ids and self.find(other) != target_root:
                return True

        target_core = self.nodes[target].form.person_core
        for other in self._rival_names.ending_with.get(token, []):
            if self.find(other) == target_root or not self.nodes[other].document_ids & node.document_ids:
                continue
            if not person_names_align(self.nodes[other].form.tokens[-2:], target_core):
                return True
        return False

    def _lone_name_target(self, index: int, candidates: list[int]) -> int | None:
        """Return a member of the one candidate cluster that the lone name's documents agree on, or None."""
        documents = self.nodes[index].document_ids
        if not candidates:
            return None
        documents_of_root: dict[int, set[str]] = defaultdict(set)
        member_of_root: dict[int, int] = {}
        for candidate in candidates:
            root = self.find(candidate)
            documents_of_root[root] |= self.nodes[candidate].document_ids & documents
            member_of_root.setdefault(root, candidate)
        if len(documents_of_root) == 1:
            return candidates[0]
        present = [root for root, shared in documents_of_root.items() if shared]
        if len(present) != 1:
            return None
        share = len(documents_of_root[present[0]]) / len(documents)  # documents is not empty, because a root shares one
        return member_of_root[present[0]] if share > LONE_NAME_MIN_DOCUMENT_SHARE else None

    def _merge_truncated_labels(self) -> None:
        """Merge a name in capitals that was cut off ("ADRIAN TCHAIKOV", "NEIL DEGRASSE") with the one full name it starts.

        Transcripts cut long speaker labels, so only names written in capitals qualify. Their last
        word may be cut to any length, even one letter ("STEVIE B").
        """
        by_start: dict[tuple[str, ...], list[tuple[int, str]]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            if node.type is EntityType.PERSON and node.form.is_full_person_name:
                core = node.form.person_core
                for length in range(1, len(core)):
                    by_start[core[:length]].append((index, core[length]))

        # Longer cuts go first, so that "ADRIAN TCHAIKOV" has joined its full name before "ADRIAN T" looks for one.
        labels = [
            index
            for index, node in enumerate(self.nodes)
            if node.type in (EntityType.PERSON, EntityType.OTHER)
            and len(node.form.tokens) > 1
            and all(" " in surface and surface.isupper() for surface in node.form.surfaces)
        ]
        ordered = sorted(labels, key=lambda label: (-len(self.nodes[label].form.tokens[-1]), label))

        # A label that matched two names ("NEIL DEGRASSE": "NEIL DEGRASSE TY" and "Neil deGrasse
        # Tyson") may match one cluster after the shorter cut joined its full name, so a second pass runs.
        for index in ordered + ordered:
            form = self.nodes[index].form
            head, cut = form.tokens[:-1], form.tokens[-1]
            candidates = [
                other
                for other, next_word in by_start.get(head, [])
                if other != index and next_word.startswith(cut) and self.nodes[other].key != form.key
            ]
            if len({self.find(candidate) for candidate in candidates}) != 1 or len(self.members[self.find(index)]) != 1:
                continue

            # The cut name stands for the full names it matched, so the guard compares those, which
            # "TCHAIKOV" alone would not align with.
            full_names = self.guards[self.find(candidates[0])].full_names
            self.guards[index] = dataclasses.replace(self.guards[index], full_names=full_names)
            self._merge_with_unique(index, candidates, "truncated")

    def _merge_with_unique(self, index: int, candidates: list[int], rule: str) -> None:
        """Merge `index` with the candidates when they all belong to one cluster."""
        roots = {self.find(candidate) for candidate in candidates}
        if len(roots) != 1:
            return
        root = next(iter(roots))
        if self.incremental and self.nodes[index].previous_entity is not None and not self.guards[root].has_new:
            return
        self.merge(index, candidates[0], rule)

    def _merge_acronyms(self) -> None:
        """Merge an upper-case acronym with the cluster of compatible type whose initials it spells.

        Many lower-case phrases share initials ("AI": "artificial intelligence", "animation
        industry"). So the cluster that shares the most chunks with the acronym wins when it shares
        ACRONYM_DOMINANCE times as many as the next one: at least ACRONYM_MIN_SHARED_CHUNKS, or one
        for a capitalised name. An acronym that shares no chunk needs ACRONYM_MIN_LETTERS_ALONE
        letters or dots. It then matches the one capitalised candidate whose words other than
        function words spell it ("CMU": "Carnegie Mellon University").
        """
        by_initials: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            for initials in node.form.initials:
                by_initials[initials].append(index)

        for index, node in enumerate(self.nodes):
            acronym = node.form.acronym
            if not acronym:
                continue
            roots = {
                self.find(candidate)
                for candidate in by_initials.get(acronym, [])
                if candidate != index and types_compatible(node.type, self.nodes[candidate].type)
            }
            roots.discard(self.find(index))
            if self.incremental and node.previous_entity is not None:
                roots = {root for root in roots if self.guards[root].has_new}
            if not roots:
                continue
            target = self._acronym_target(index, sorted(roots))
            if target is not None:
                self.merge(index, target, "acronym", features={"shared_chunks": float(self._shared_chunks(index, target))})

    def _acronym_target(self, index: int, roots: list[int]) -> int | None:
        """Return the cluster root that acronym node `index` stands for, or None when no candidate is clear."""
        shared = {root: self._shared_chunks(index, root) for root in roots}
        ranked = sorted(roots, key=lambda root: (-shared[root], root))
        best = ranked[0]
        runner_up = shared[ranked[1]] if len(ranked) > 1 else 0
        form = self.nodes[index].form
        if shared[best] >= ACRONYM_DOMINANCE * runner_up:
            if shared[best] >= ACRONYM_MIN_SHARED_CHUNKS or (shared[best] and self._is_proper(best)):
                return best

            # The only expansion in the namespace needs one shared chunk ("DNN" and "deep neural networks").
            if shared[best] and len(roots) == 1 and len(form.acronym) >= ACRONYM_MIN_LETTERS_ALONE:
                return best
        dotted = all("." in surface for surface in form.surfaces)
        if shared[best] or (len(form.acronym) < ACRONYM_MIN_LETTERS_ALONE and not dotted):
            return None
        acronym = form.acronym
        proper = [root for root in roots if self._is_proper(root, acronym)]
        return proper[0] if len(proper) == 1 else None

    def _is_proper(self, root: int, acronym: str = "") -> bool:
        """Return whether the cluster has a capitalised name, whose significant words spell `acronym` when given."""
        for member in self.members[root]:
            form = self.nodes[member].form
            if form.is_capitalised and form.type is not EntityType.CONCEPT and (not acronym or form.significant_initials == acronym):
                return True
        return False

    def _shared_chunks(self, index: int, root: int) -> int:
        chunks = self.nodes[index].chunk_ids
        shared: set[str] = set()
        for member in self.members[root]:
            shared |= chunks & self.nodes[member].chunk_ids
        return len(shared)

    # Stage 2: similar names

    def merge_similar(self, embed: EmbedFunction, threshold: float) -> None:
        """Merge clusters whose canonical names are close as vectors and alike as strings."""
        roots = sorted(self.members)
        representatives = [self._representative(root) for root in roots]

        # The clusters of the alias rules are the units of this stage, each with one representative name.
        for root, node in zip(roots, representatives, strict=True):
            self.guards[root] = dataclasses.replace(self.guards[root], representatives=(node,))

        names = sorted({self.display_name(node) for node in representatives})
        vectors = embed_names(embed, names)
        row_of_name = {name: row for row, name in enumerate(names)}
        self._vectors = {node: vectors[row_of_name[self.display_name(node)]] for node in representatives}
        self._threshold = threshold
        if not representatives:
            return

        matrix = np.vstack([self._vectors[node] for node in representatives])
        if self.incremental:
            query_rows = [row for row, root in enumerate(roots) if self.guards[root].has_new]
            pairs = similar_pairs_for(matrix, query_rows, threshold)
        else:
            pairs = similar_pairs(matrix, threshold)

        for _, first_row, second_row in pairs:
            first, second = representatives[first_row], representatives[second_row]
            root_a, root_b = self.find(first), self.find(second)
            if root_a == root_b:
                continue
            if self.incremental and not (self.guards[root_a].has_new or self.guards[root_b].has_new):
                continue
            features = self._pair_features(first, second)
            if features is None or not self._all_representatives_similar(root_a, root_b):
                continue
            score = min(features["cosine"], max(features["jaro_winkler"], features["token_set"]))
            self.merge(first, second, "similarity", score=score, features=features)

    def _representative(self, root: int) -> int:
        """Return the member node with the most mentions, which stands for its cluster in the similarity stage."""
        return min(self.members[root], key=lambda member: (-sum(self.nodes[member].surface_counts.values()), member))

    def display_name(self, index: int) -> str:
        """Return the surface form that stands for node `index`: its most frequent, not in all capitals."""
        return canonical_surface(self.nodes[index].surface_counts)

    def _all_representatives_similar(self, root_a: int, root_b: int) -> bool:
        """Return whether every representative of one cluster is similar to every representative of the other."""
        for rep_a in self.guards[root_a].representatives:
            for rep_b in self.guards[root_b].representatives:
                if self._pair_features(rep_a, rep_b) is None:
                    return False
        return True

    def _pair_features(self, first: int, second: int) -> dict[str, float] | None:
        """Return the scores of two representative names, or None when they are not similar enough."""
        form_a, form_b = self.nodes[first].form, self.nodes[second].form
        if hard_conflict(form_a, form_b) is not None or is_strict_token_subset(form_a, form_b):
            return None
        if _has_initial(form_a) or _has_initial(form_b) or is_derivational_variant(form_a, form_b):
            return None
        if form_a.type in _EXACT_ONLY_TYPES or form_b.type in _EXACT_ONLY_TYPES:
            return None
        cosine = float(self._vectors[first] @ self._vectors[second])
        if cosine < self._threshold:
            return None
        scores = string_scores(form_a, form_b)
        if scores.jaro_winkler < SIMILAR_MIN_JARO_WINKLER and scores.token_set < SIMILAR_MIN_TOKEN_SET:
            return None

        # NOTE: shared neighbours are recorded to explain a merge but do not decide it. Letting
        # three of them lower the string minimum to 0.8 added two false merges and no true one
        # on the labelled pairs (benchmarks/resolution.py).
        return {
            "cosine": round(cosine, 4),
            "jaro_winkler": round(scores.jaro_winkler, 4),
            "token_set": round(scores.token_set, 4),
            "shared_neighbours": float(self.shared_neighbours(first, second)),
        }

    def shared_neighbours(self, first: int, second: int) -> int:
        """Return how many other clusters are mentioned in a chunk with each of the two nodes' clusters."""
        return len(self._neighbour_roots(self.find(first)) & self._neighbour_roots(self.find(second)))

    def _neighbour_roots(self, root: int) -> set[int]:
        if self._nodes_by_chunk is None:
            self._nodes_by_chunk = defaultdict(list)
            for index, node in enumerate(self.nodes):
                for chunk_id in node.chunk_ids:
                    self._nodes_by_chunk[chunk_id].append(index)
        neighbours = set()
        for member in self.members[root]:
            for chunk_id in self.nodes[member].chunk_ids:
                neighbours.update(self.find(other) for other in self._nodes_by_chunk[chunk_id])
        neighbours.discard(root)
        return neighbours


# Types of the names that give a lone surname a reading other than a person when they start with it
# ("Amundsen Sea"). OTHER is left out because it is the extractor's type for people it did not know.
_RIVAL_HEAD_TYPES = frozenset({EntityType.LOCATION, EntityType.ORGANIZATION, EntityType.EVENT, EntityType.PRODUCT})


@dataclass(frozen=True)
class _RivalNames:
    """Names that can compete with a person for a lone surname, indexed by that surname."""

    starting_with: dict[str, list[int]]
    ending_with: dict[str, list[int]]

    @classmethod
    def of(cls, nodes: list[NameNode]) -> "_RivalNames":
        """Index places and organisations by their first word, and long non-PERSON names that end in a person's name by its surname."""
        starting_with: dict[str, list[int]] = defaultdict(list)
        ending_with: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(nodes):
            tokens = node.form.tokens
            if node.type in _RIVAL_HEAD_TYPES and len(tokens) >= 2 and node.form.is_capitalised:
                starting_with[compact(tokens[0])].append(index)
            if node.type is not EntityType.PERSON and len(tokens) >= 3 and _ends_with_capitalised_pair(node.form):
                ending_with[_surname_key(tokens)].append(index)
        return cls(starting_with=dict(starting_with), ending_with=dict(ending_with))


def _ends_with_capitalised_pair(form: NameForm) -> bool:
    """Return whether some surface form ends with two capitalised words, as a person's name would ("... Dick Cheney")."""
    for surface in form.surfaces:
        words = surface.split()
        if len(words) >= 2 and all(word[:1].isupper() and word[1:].islower() and word.isalpha() for word in words[-2:]):
            return True
    return False


def _unqualified_keys(tokens: tuple[str, ...], places: set[str], suffix_places: set[str]) -> list[str]:
    """Return the keys a name has without a generic suffix or a place qualifier (see `_merge_qualified_names`)."""
    keys = []
    end = len(tokens)
    while end > 1 and tokens[end - 1] in GENERIC_NAME_SUFFIXES:
        end -= 1
    if end < len(tokens):
        keys.append(" ".join(tokens[:end]))

    for split in range(2, len(tokens)):
        head, tail = tokens[:split], tokens[split:]
        place = " ".join(tail[1:]) if tail[0] == "of" else " ".join(tail)
        if place in (places if tail[0] == "of" else suffix_places):
            keys.append(" ".join(head))
    for split in range(1, len(tokens) - 1):
        if " ".join(tokens[:split]) in places:
            keys.append(" ".join(tokens[split:]))
    return keys


def _spelt_alike(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Return whether two names of equal sound keys share a word other than a particle ("van"), and each pair of
    words that differ has one of GIVEN_NAME_MIN_EDIT_CHARS or more characters."""
    if len(first) != len(second) or first == second:
        return False
    differing = [(mine, theirs) for mine, theirs in zip(first, second, strict=True) if mine != theirs]
    shared = [mine for mine, theirs in zip(first, second, strict=True) if mine == theirs and mine not in SURNAME_PARTICLES]
    if not shared:
        return False
    return all(max(len(mine), len(theirs)) >= GIVEN_NAME_MIN_EDIT_CHARS for mine, theirs in differing)


def _spellings_compatible(first: NameForm, second: NameForm) -> bool:
    """Return whether two names that differ only in separators may be one entity.

    "A.D." and "Ad" spell alike but only one is an acronym. Short acronyms of two types ("D.C."
    the city, "DC" the current) are too often different things to merge on spelling alone.
    """
    if bool(first.acronym) != bool(second.acronym):
        return False
    short = len(first.compact) <= SHORT_ACRONYM_LETTERS or len(second.compact) <= SHORT_ACRONYM_LETTERS
    return not (first.acronym and short and first.type != second.type)


def _surname_key(tokens: tuple[str, ...]) -> str:
    """Return the compact surname of a name, with its particle when it has one ("Anthony van Dyck" -> "vandyck")."""
    if len(tokens) >= 2 and tokens[-2] in SURNAME_PARTICLES:
        return compact(tokens[-2] + tokens[-1])
    return compact(tokens[-1])


def _lone_surname(form: NameForm) -> bool:
    """Return whether a name is one word, or one word after a surname particle ("Von Neumann")."""
    core = form.person_core
    return len(core) == 1 or (len(core) == 2 and core[0] in SURNAME_PARTICLES)


def _looks_like_full_name(node: NameNode) -> bool:
    """Return whether a name of type OTHER is written like a person's full name: two or three capitalised words.

    Surname particles may be in lower case ("Anthony van Dyck").
    """
    if node.type is not EntityType.OTHER or not 2 <= len(node.form.tokens) <= 3:
        return False
    if any(token in FUNCTION_WORDS or not token.replace("-", "").isalpha() for token in node.form.tokens if token not in SURNAME_PARTICLES):
        return False
    for surface in node.form.surfaces:
        words = [word for word in surface.split() if word.casefold() not in SURNAME_PARTICLES]
        if words and all(word[0].isupper() and not word.isupper() for word in words):
            return True
    return False


def _has_initial(form: NameForm) -> bool:
    """Return whether a PERSON name abbreviates a name to one letter, which only the full-name rule may match."""
    return form.type is EntityType.PERSON and any(len(token) == 1 for token in form.person_core)


def _token_order_key(form: NameForm) -> str | None:
    """Return the sorted tokens of a name of two or more tokens, so reordered names share a block."""
    tokens = form.token_set
    if len(tokens) < 2:
        return None
    return " ".join(sorted(tokens))


def canonical_surface(surface_counts: Counter[str]) -> str:
    """Return the most frequent surface form, preferring any form not in all capitals.

    Transcripts label speakers as `KEVIN SCOTT:`, which would otherwise win over the written
    form. Ties go to the longest, then the alphabetically first.
    """
    return min(surface_counts.items(), key=lambda item: (_is_shouted(item[0]), -item[1], -len(item[0]), item[0]))[0]


def _is_shouted(name: str) -> bool:
    """Return True for an all-capitals form of a multi-word name, such as a transcript speaker label."""
    return " " in name and name.isupper()


def embed_names(embed: EmbedFunction, names: list[str]) -> np.ndarray:
    """Call `embed` on `names` and return unit-norm float32 rows, rejecting a result of the wrong shape."""
    if not names:
        return np.zeros((0, 1), dtype=np.float32)
    vectors = np.asarray(embed(names), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(names):
        raise InvalidInputError(
            f"embed returned an array of shape {vectors.shape} for {len(names)} names: it must return one row per name"
        )

    # Normalising again costs little and keeps the dot product a cosine for embedders that skip it.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[float, int, int]]:
    """Return `(similarity, i, j)` with i < j for pairs at or above `threshold`, at most EMBEDDING_NEIGHBOURS per i.

    The product is exact and covers only the upper triangle, in row blocks, so memory stays at one
    block of the matrix. Pairs come most similar first, with ties in index order, so merges happen
    in a fixed order.
    """
    pairs: list[tuple[float, int, int]] = []
    for start in range(0, len(vectors), _SIMILARITY_BLOCK_ROWS):
        block = vectors[start : start + _SIMILARITY_BLOCK_ROWS] @ vectors[start:].T
        block_rows = block.shape[0]

        # Column c of the block is name start + c, so the leading square's lower triangle contains
        # each name against itself and against names that earlier rows already compared.
        block[:, :block_rows][np.tri(block_rows, dtype=bool)] = -np.inf
        pairs.extend(_top_pairs_of_block(block, start, start, threshold))
    return sorted(pairs, key=lambda item: (-item[0], item[1], item[2]))


def similar_pairs_for(vectors: np.ndarray, rows: list[int], threshold: float) -> list[tuple[float, int, int]]:
    """Return `(similarity, i, j)` pairs of the given rows against all rows, as `similar_pairs` does for all.

    Each pair comes once, with i < j, whichever of the two rows was queried.
    """
    found: dict[tuple[int, int], float] = {}
    for start in range(0, len(rows), _SIMILARITY_BLOCK_ROWS):
        block_rows = rows[start : start + _SIMILARITY_BLOCK_ROWS]
        block = vectors[block_rows] @ vectors.T
        block[np.arange(len(block_rows)), block_rows] = -np.inf
        for similarity, row, column in _top_pairs_of_block(block, 0, 0, threshold):
            first, second = sorted((block_rows[row], column))
            found[(first, second)] = similarity
    pairs = [(similarity, first, second) for (first, second), similarity in found.items()]
    return sorted(pairs, key=lambda item: (-item[0], item[1], item[2]))


def _top_pairs_of_block(block: np.ndarray, row_start: int, column_start: int, threshold: float) -> list[tuple[float, int, int]]:
    """Return the pairs of one block at or above `threshold`, keeping the top EMBEDDING_NEIGHBOURS of each row."""
    hits = block >= threshold
    counts = hits.sum(axis=1)

    # Most rows have a few hits or none, and reading them from the mask is cheap. Only rows with
    # more hits than EMBEDDING_NEIGHBOURS pay for a partial sort.
    light_rows = np.flatnonzero((counts > 0) & (counts <= EMBEDDING_NEIGHBOURS))
    hit_index, light_cols = np.nonzero(hits[light_rows])
    light_rows = light_rows[hit_index]
    heavy_rows = np.flatnonzero(counts > EMBEDDING_NEIGHBOURS)
    heavy_cols = np.zeros((0, EMBEDDING_NEIGHBOURS), dtype=np.intp)
    if heavy_rows.size:
        heavy_cols = np.argpartition(-block[heavy_rows], EMBEDDING_NEIGHBOURS - 1, axis=1)[:, :EMBEDDING_NEIGHBOURS]

    rows = np.concatenate([light_rows, np.repeat(heavy_rows, EMBEDDING_NEIGHBOURS)])
    cols = np.concatenate([light_cols, heavy_cols.ravel()])
    sims = block[rows, cols]
    return list(zip(sims.tolist(), (rows + row_start).tolist(), (cols + column_start).tolist(), strict=True))


def excluded_partners(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """Index excluded pairs of folded keys by each key, for the guard's lookups."""
    partners: dict[str, set[str]] = defaultdict(set)
    for first, second in pairs:
        partners[first].add(second)
        partners[second].add(first)
    return {key: frozenset(values) for key, values in partners.items()}
