"""Entity resolution across a whole namespace: mentions in, entities, relations and mention links out.

Mentions are grouped in three steps, all feeding one union-find structure so that chains of
matches end up in one entity:

1. Exact match on a folded key (Unicode-normalised, case-folded, accents, possessive and a
   leading "the" removed) within one entity type.
2. Alias rules within one type: PERSON names without their honorific, a lone surname that
   matches exactly one full PERSON name, and acronyms of multi-word ORGANIZATION and LOCATION
   names.
3. Optional embedding similarity of the canonical names within one type, guarded so that
   PERSON names with different first names and names with different numbers never merge.
"""

import logging
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from graphmem_core import ids
from graphmem_core.errors import InvalidInputError
from graphmem_core.models import (
    Entity,
    EntityType,
    ExtractionResult,
    MentionLink,
    Relation,
    RelationEvidence,
    ResolvedGraph,
)

logger = logging.getLogger(__name__)

EmbedFunction = Callable[[list[str]], np.ndarray]

# A relation stated in thousands of sentences needs only a sample of them as evidence. The weight
# still counts every sentence.
MAX_EVIDENCE_PER_RELATION = 50

# Neighbours kept per name in the similarity search, which bounds the candidate pairs at n * 10. A
# name rarely has more than a few true duplicates, so 10 leaves room for all of them.
EMBEDDING_NEIGHBOURS = 10

# Rows of the similarity matrix computed at once: 1,024 rows against 50,000 names is 200 MB of float32.
_SIMILARITY_BLOCK_ROWS = 1024

# Titles dropped from the front of a PERSON name before alias matching ("Dr. Jane Smith" -> "jane smith").
HONORIFICS = frozenset(
    {
        "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "dame", "lord", "lady",
        "rev", "reverend", "hon", "judge", "justice", "president", "senator", "sen", "rep",
        "gov", "governor", "mayor", "gen", "col", "capt", "captain", "lt", "sgt",
    }
)

# Entity types whose multi-word names are commonly shortened to their initials ("NASA", "U.S.").
ACRONYM_TYPES = frozenset({EntityType.ORGANIZATION, EntityType.LOCATION})

# Function words that acronyms usually skip ("National Aeronautics and Space Administration" -> NASA).
_ACRONYM_STOPWORDS = frozenset({"of", "and", "the", "for", "&", "a", "an", "in", "on", "at", "to", "de", "du", "des", "la", "le", "und", "der", "y"})

# Acronyms shorter than two letters are initials, and longer than ten letters are words.
_ACRONYM_MIN_LETTERS = 2
_ACRONYM_MAX_LETTERS = 10

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'"})
_DIGIT_RUN = re.compile(r"\d+")


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


def _name_tokens(key: str) -> list[str]:
    """Split a folded key into tokens without surrounding punctuation ("dr." -> "dr")."""
    tokens = (_strip_punctuation(token) for token in key.split())
    return [token for token in tokens if token]


def _person_core(key: str) -> tuple[str, ...]:
    """Return the tokens of a PERSON key without leading honorifics, keeping at least one token."""
    tokens = _name_tokens(key)
    while len(tokens) > 1 and tokens[0] in HONORIFICS:
        tokens = tokens[1:]
    return tuple(tokens)


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


@dataclass
class _NameNode:
    """All mentions of one entity type that share one folded key."""

    type: EntityType
    key: str
    surface_counts: Counter[str] = field(default_factory=Counter)


class _FlatMention(NamedTuple):
    node: int
    chunk_id: str
    start: int
    end: int
    text: str


def resolve_entities(
    tenant: str,
    memory: str,
    results: Sequence[ExtractionResult],
    embed: EmbedFunction | None,
    threshold: float = 0.9,
) -> ResolvedGraph:
    """Resolve every mention of a namespace to entities and merge the relations between them.

    `results` must hold every extraction result of the namespace, because resolution is graph-wide.
    `embed` maps names to unit-norm float32 rows, and None skips the embedding step. `threshold` is
    the minimum cosine similarity for two same-type names to merge.
    """
    if not 0.0 < threshold <= 1.0:
        raise InvalidInputError(f"threshold={threshold} is out of range: set a cosine similarity in (0, 1]")

    started = time.perf_counter()
    mention_total = sum(len(result.mentions) for result in results)
    logger.info("Resolving %d mentions from %d extraction results in %s/%s", mention_total, len(results), tenant, memory)

    nodes, mentions_by_result = _build_name_nodes(results)
    union_find = UnionFind(len(nodes))
    alias_merges = _merge_aliases(nodes, union_find)
    embedding_merges = 0
    if embed is not None:
        embedding_merges = _merge_similar_names(nodes, union_find, embed, threshold)

    entity_of_node, entities = _build_entities(tenant, memory, nodes, union_find)
    mention_links = _build_mention_links(mentions_by_result, entity_of_node)
    relations = _merge_relations(tenant, memory, results, mentions_by_result, entity_of_node)

    logger.info(
        "Resolved %d mentions into %d entities and %d relations in %s/%s (%d alias merges, %d embedding merges, %.2f s)",
        mention_total,
        len(entities),
        len(relations),
        tenant,
        memory,
        alias_merges,
        embedding_merges,
        time.perf_counter() - started,
    )
    return ResolvedGraph(entities=entities, relations=relations, mention_links=mention_links)


def _build_name_nodes(results: Sequence[ExtractionResult]) -> tuple[list[_NameNode], list[list[_FlatMention]]]:
    """Group mentions by (type, folded key), with nodes sorted so that input order does not matter."""
    node_key_of: dict[tuple[str, EntityType], tuple[str, str]] = {}
    for result in results:
        for mention in result.mentions:
            if (mention.text, mention.type) not in node_key_of:
                node_key_of[(mention.text, mention.type)] = (mention.type.value, fold_name(mention.text))

    ordered = sorted(set(node_key_of.values()))
    index_of = {node_key: index for index, node_key in enumerate(ordered)}
    nodes = [_NameNode(type=EntityType(type_value), key=key) for type_value, key in ordered]
    node_of = {text_and_type: index_of[node_key] for text_and_type, node_key in node_key_of.items()}

    mentions_by_result: list[list[_FlatMention]] = []
    seen: set[_FlatMention] = set()
    for result in results:
        flat = []
        for mention in result.mentions:
            item = _FlatMention(node_of[(mention.text, mention.type)], mention.chunk_id, mention.start, mention.end, mention.text)
            flat.append(item)

            # The same span passed twice (a result given twice) counts once.
            if item not in seen:
                seen.add(item)
                nodes[item.node].surface_counts[" ".join(mention.text.split())] += 1
        mentions_by_result.append(flat)
    return nodes, mentions_by_result


def _merge_aliases(nodes: list[_NameNode], union_find: UnionFind) -> int:
    """Apply the honorific, surname and acronym rules and return the number of merges made."""
    before = _count_sets(union_find, len(nodes))
    _merge_person_aliases(nodes, union_find)
    _merge_acronyms(nodes, union_find)
    return before - _count_sets(union_find, len(nodes))


def _count_sets(union_find: UnionFind, size: int) -> int:
    return sum(1 for item in range(size) if union_find.find(item) == item)


def _merge_person_aliases(nodes: list[_NameNode], union_find: UnionFind) -> None:
    """Merge PERSON names with equal cores, then lone surnames that match exactly one full name."""
    by_core: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        if node.type is EntityType.PERSON:
            by_core[_person_core(node.key)].append(index)

    full_names_by_last: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for core, members in by_core.items():
        if len(core) > 1:
            _union_all(union_find, members)
            full_names_by_last[core[-1]].append(core)

    for core, members in by_core.items():
        if len(core) != 1:
            continue
        candidates = full_names_by_last.get(core[0], [])
        if len(candidates) == 1:
            _union_all(union_find, members + by_core[candidates[0]])
        elif not candidates:
            # NOTE: with no full name to attach to, "Mr. Smith" and "Mrs. Smith" become one entity.
            _union_all(union_find, members)


def _merge_acronyms(nodes: list[_NameNode], union_find: UnionFind) -> None:
    """Merge an upper-case acronym with the one multi-word name of its type whose initials it spells."""
    names_by_initials: dict[tuple[EntityType, str], set[int]] = defaultdict(set)
    acronyms: list[tuple[int, str]] = []
    for index, node in enumerate(nodes):
        if node.type not in ACRONYM_TYPES:
            continue
        acronym = _acronym_letters(node)
        if acronym is not None:
            acronyms.append((index, acronym))
        for initials in _initials_variants(node.key):
            names_by_initials[(node.type, initials)].add(index)

    for index, acronym in acronyms:
        candidates = names_by_initials.get((nodes[index].type, acronym), set())
        if len(candidates) == 1:
            union_find.union(index, next(iter(candidates)))


def _acronym_letters(node: _NameNode) -> str | None:
    """Return the folded letters of a node that is written as an acronym ("U.S.", "NASA"), else None."""
    letters = node.key.replace(".", "")
    if not (letters.isalpha() and _ACRONYM_MIN_LETTERS <= len(letters) <= _ACRONYM_MAX_LETTERS):
        return None
    written_upper = any(surface.replace(".", "").isupper() for surface in node.surface_counts)
    return letters if written_upper else None


def _initials_variants(key: str) -> set[str]:
    """Return the initials of a multi-word name, with and without its function words."""
    tokens = [token for token in _name_tokens(key.replace("-", " ")) if token[0].isalnum()]
    significant = [token for token in tokens if token not in _ACRONYM_STOPWORDS]
    variants = set()
    for words in (tokens, significant):
        if len(words) >= _ACRONYM_MIN_LETTERS:
            variants.add("".join(word[0] for word in words))
    return variants


def _union_all(union_find: UnionFind, members: list[int]) -> None:
    for member in members[1:]:
        union_find.union(members[0], member)


def _merge_similar_names(nodes: list[_NameNode], union_find: UnionFind, embed: EmbedFunction, threshold: float) -> int:
    """Merge same-type clusters whose canonical names embed within `threshold` and return the merges made."""
    clusters = _clusters(union_find, len(nodes))
    roots = sorted(clusters)
    names = {root: _canonical_name(_surface_counts(nodes, clusters[root])) for root in roots}

    unique_names = sorted(set(names.values()))
    # NOTE: the similarity search is exact, about 10-20 s at 50,000 names of one type on 2 cores.
    vectors = _embed_names(embed, unique_names)
    row_of_name = {name: row for row, name in enumerate(unique_names)}

    guards = {root: _MergeGuard.for_cluster(nodes, clusters[root]) for root in roots}
    roots_by_type: dict[EntityType, list[int]] = defaultdict(list)
    for root in roots:
        roots_by_type[nodes[root].type].append(root)

    merges = 0
    for entity_type, type_roots in sorted(roots_by_type.items(), key=lambda item: item[0].value):
        if entity_type is EntityType.PERSON:
            # Lone surnames were settled by the surname rule, which checks that the match is unique.
            type_roots = [root for root in type_roots if guards[root].full_names]
        type_vectors = vectors[[row_of_name[names[root]] for root in type_roots]]
        for sim, first, second in _similar_pairs(type_vectors, threshold):
            root_a, root_b = union_find.find(type_roots[first]), union_find.find(type_roots[second])
            if root_a == root_b or not guards[root_a].allows(guards[root_b], entity_type):
                continue
            merged = union_find.union(root_a, root_b)
            guards[merged] = guards[root_a].combined(guards[root_b])
            merges += 1
            logger.debug("Merged %r and %r (cosine similarity %.3f)", names[type_roots[first]], names[type_roots[second]], sim)
    return merges


def _embed_names(embed: EmbedFunction, names: list[str]) -> np.ndarray:
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


def _similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[float, int, int]]:
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
        pairs.extend(_top_pairs_of_block(block, start, threshold))
    return sorted(pairs, key=lambda item: (-item[0], item[1], item[2]))


def _top_pairs_of_block(block: np.ndarray, start: int, threshold: float) -> list[tuple[float, int, int]]:
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
    return list(zip(sims.tolist(), (rows + start).tolist(), (cols + start).tolist(), strict=True))


@dataclass(frozen=True)
class _MergeGuard:
    """Merge constraints of a cluster: its full PERSON names, which must align, and its numbers, which must match."""

    full_names: tuple[tuple[str, ...], ...]
    numbers: frozenset[tuple[str, ...]]

    @classmethod
    def for_cluster(cls, nodes: list[_NameNode], members: list[int]) -> "_MergeGuard":
        """Collect the multi-token PERSON cores and the digit runs of every name in the cluster."""
        full_names = set()
        numbers = set()
        for member in members:
            node = nodes[member]
            numbers.add(tuple(_DIGIT_RUN.findall(node.key)))
            if node.type is EntityType.PERSON:
                core = _person_core(node.key)
                if len(core) > 1:
                    full_names.add(core)
        return cls(full_names=tuple(sorted(full_names)), numbers=frozenset(numbers))

    def allows(self, other: "_MergeGuard", entity_type: EntityType) -> bool:
        """Return whether every name of this cluster may be merged with every name of `other`."""
        if self.numbers != other.numbers:
            return False
        if entity_type is not EntityType.PERSON:
            return True
        return all(_person_names_align(mine, theirs) for mine in self.full_names for theirs in other.full_names)

    def combined(self, other: "_MergeGuard") -> "_MergeGuard":
        """Return the guard of the union of both clusters."""
        return _MergeGuard(
            full_names=tuple(sorted(set(self.full_names) | set(other.full_names))),
            numbers=self.numbers | other.numbers,
        )


def _person_names_align(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Return whether two full names can be one person: aligned tokens are equal or initials of each other.

    Names of equal length align token by token. Otherwise only the first and last tokens align, so
    a middle name or initial present in one name only does not block the merge.
    """
    if len(first) == len(second):
        aligned = zip(first, second, strict=True)
    else:
        aligned = iter(((first[0], second[0]), (first[-1], second[-1])))
    return all(_tokens_compatible(mine, theirs) for mine, theirs in aligned)


def _tokens_compatible(first: str, second: str) -> bool:
    if first == second:
        return True
    if len(first) == 1:
        return second.startswith(first)
    if len(second) == 1:
        return first.startswith(second)
    return False


def _clusters(union_find: UnionFind, size: int) -> dict[int, list[int]]:
    clusters: dict[int, list[int]] = defaultdict(list)
    for item in range(size):
        clusters[union_find.find(item)].append(item)
    return clusters


def _surface_counts(nodes: list[_NameNode], members: Iterable[int]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for member in members:
        counts.update(nodes[member].surface_counts)
    return counts


def _is_shouted(name: str) -> bool:
    """Return True for an all-capitals form of a multi-word name, such as a transcript speaker label."""
    return " " in name and name.isupper()


def _canonical_name(surface_counts: Counter[str]) -> str:
    """Return the most frequent surface form, preferring any form not in all capitals.

    Transcripts label speakers as `KEVIN SCOTT:`, which would otherwise win over the written
    form. Ties go to the longest, then the alphabetically first.
    """
    return min(surface_counts.items(), key=lambda item: (_is_shouted(item[0]), -item[1], -len(item[0]), item[0]))[0]


def _build_entities(
    tenant: str,
    memory: str,
    nodes: list[_NameNode],
    union_find: UnionFind,
) -> tuple[list[str], list[Entity]]:
    """Turn clusters into entities and return the entity id of every node and the entities sorted by id."""
    entity_of_node = [""] * len(nodes)
    entities = []
    for members in _clusters(union_find, len(nodes)).values():
        counts = _surface_counts(nodes, members)
        name = _canonical_name(counts)
        entity_type = nodes[members[0]].type
        entity_id = ids.entity_id(tenant, memory, name, entity_type.value)
        for member in members:
            entity_of_node[member] = entity_id
        entities.append(
            Entity(
                id=entity_id,
                tenant=tenant,
                memory=memory,
                name=name,
                type=entity_type,
                aliases=sorted(surface for surface in counts if surface != name),
                mention_count=sum(counts.values()),
            )
        )
    entities.sort(key=lambda entity: entity.id)
    return entity_of_node, entities


def _build_mention_links(mentions_by_result: list[list[_FlatMention]], entity_of_node: list[str]) -> list[MentionLink]:
    """Return one link per distinct mention, sorted by entity, chunk and span."""
    spans = {
        (entity_of_node[mention.node], mention.chunk_id, mention.start, mention.end, mention.text)
        for flat in mentions_by_result
        for mention in flat
    }
    return [
        MentionLink(entity_id=entity_id, chunk_id=chunk_id, start=start, end=end, text=text)
        for entity_id, chunk_id, start, end, text in sorted(spans)
    ]


def _merge_relations(
    tenant: str,
    memory: str,
    results: Sequence[ExtractionResult],
    mentions_by_result: list[list[_FlatMention]],
    entity_of_node: list[str],
) -> list[Relation]:
    """Merge extracted relations per (source, type, target); the weight counts distinct evidence sentences."""
    evidence: dict[tuple[str, str, str], set[tuple[str, int, int]]] = defaultdict(set)
    for result, flat in zip(results, mentions_by_result, strict=True):
        for relation in result.relations:
            for index in (relation.source, relation.target):
                if not 0 <= index < len(flat):
                    raise InvalidInputError(
                        f"relation {relation.type!r} in chunk {result.chunk_id!r} refers to mention {index}, "
                        f"but the result has {len(flat)} mentions: fix the extractor output"
                    )
            source_id = entity_of_node[flat[relation.source].node]
            target_id = entity_of_node[flat[relation.target].node]
            if source_id == target_id:
                continue
            evidence[(source_id, relation.type, target_id)].add((relation.chunk_id, relation.start, relation.end))

    relations = []
    for (source_id, relation_type, target_id), spans in evidence.items():
        provenance = [RelationEvidence(chunk_id=chunk_id, start=start, end=end) for chunk_id, start, end in sorted(spans)]
        relations.append(
            Relation(
                id=ids.relation_id(tenant, memory, source_id, relation_type, target_id),
                tenant=tenant,
                memory=memory,
                source_id=source_id,
                target_id=target_id,
                type=relation_type,
                weight=float(len(spans)),
                provenance=provenance[:MAX_EVIDENCE_PER_RELATION],
            )
        )
    relations.sort(key=lambda relation: relation.id)
    return relations
