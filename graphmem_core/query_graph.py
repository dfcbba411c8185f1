"""The graph-wide data that the graph query modes read, loaded once per namespace and graph version.

`NamespaceGraph` contains one namespace's entities with their name vectors, its chunks, the mention
links between the two, its communities, and one undirected igraph graph for personalised PageRank.
Vertices `0 .. entity_count - 1` are the entities and the next `chunk_count` vertices are the chunks.
Every edge weight counts evidence: a relation edge counts the sentences that state the relation (its
weight, summed over relation types between the same two entities), and a mention edge counts how
often the chunk mentions the entity.

`GraphCache` keeps the graphs of the most recently queried namespaces in memory, keyed by graph
version, so a query does not reload them and a new materialisation is picked up by the next query.
"""

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence

import igraph
import numpy as np

from graphmem_core.errors import ConfigurationError
from graphmem_core.ids import text_hash
from graphmem_core.models import Community, Entity
from graphmem_core.ppr import TransitionMatrix
from graphmem_core.stores.base import GraphStore

logger = logging.getLogger(__name__)

# The graph of the retrieval benchmark (13,159 entities, 1,931 chunks, 45,089 edges) took about 47 MB
# of Python memory, 19 MB of it for the name vectors, as measured with tracemalloc. Four such graphs
# serve an agent that switches between a few memories without keeping every tenant in memory.
DEFAULT_MAX_GRAPHS = 4

# Ids per store call while loading, so that one JSON parameter or Cypher list stays a few megabytes.
LOAD_BATCH_IDS = 10_000

# A community of one entity summarises only that entity, whose name vector the local mode already
# matches, so global ranking skips such communities and encodes far fewer summaries.
MIN_COMMUNITY_MEMBERS = 2

EncodeFunction = Callable[[list[str]], np.ndarray]


class NamespaceGraph:
    """Entities, chunks, mention links, communities and the PPR graph of one namespace at one graph version.

    `communities` contains only the communities that global ranking uses (see `_summary_communities`).
    """

    def __init__(
        self,
        version: int,
        entities: list[Entity],
        name_vectors: np.ndarray,
        chunk_ids: list[str],
        chunk_text_hashes: list[str],
        mention_pairs: dict[tuple[int, int], int],
        relation_weights: dict[tuple[int, int], float],
        communities: list[Community],
    ) -> None:
        self.version = version
        self.entities = entities
        self.entity_row = {entity.id: row for row, entity in enumerate(entities)}
        # Entity rows by case-folded name and alias, for exact matches of the names found in a query.
        self.rows_by_name: dict[str, list[int]] = defaultdict(list)
        for row, entity in enumerate(entities):
            for name in dict.fromkeys(form.casefold() for form in [entity.name, *entity.aliases]):
                self.rows_by_name[name].append(row)
        self.name_vectors = name_vectors
        self.chunk_ids = chunk_ids
        self.chunk_row = {chunk_id: row for row, chunk_id in enumerate(chunk_ids)}
        self.chunk_text_hashes = chunk_text_hashes
        self.communities = communities

        pairs = sorted(mention_pairs)
        self.mention_entity = np.array([entity for entity, _ in pairs], dtype=np.int64)
        self.mention_chunk = np.array([chunk for _, chunk in pairs], dtype=np.int64)
        self.mention_count = np.array([mention_pairs[pair] for pair in pairs], dtype=np.float64)
        # Distinct chunks that mention each entity. A name found in many chunks is weak evidence for any one of them.
        self.entity_chunk_count = np.bincount(self.mention_entity, minlength=len(entities)).astype(np.float64)

        self.graph = _build_graph(len(entities), len(chunk_ids), pairs, self.mention_count, relation_weights)
        self.transition = TransitionMatrix(self.graph)
        # Weighted degree of each entity vertex. A random walk on an undirected graph visits vertices in
        # proportion to it in the long run, so PPR mass divided by it ranks entities without favouring hubs.
        self.entity_strength = np.asarray(self.graph.strength(range(len(entities)), weights="weight"), dtype=np.float64)

        # Summary vectors of `communities`, filled on the first call of `community_vectors`.
        self._community_vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def entity_count(self) -> int:
        return len(self.entities)

    @property
    def chunk_count(self) -> int:
        return len(self.chunk_ids)

    def chunk_vertex(self, chunk_row: int) -> int:
        """Return the graph vertex of a chunk row."""
        return self.entity_count + chunk_row

    def chunks_mentioning(self, entity_rows: Sequence[int]) -> dict[int, float]:
        """Return, for every chunk that mentions any of `entity_rows`, how many mentions of them it has."""
        mask = np.isin(self.mention_entity, np.asarray(entity_rows, dtype=np.int64))
        counts: dict[int, float] = defaultdict(float)
        for chunk, count in zip(self.mention_chunk[mask].tolist(), self.mention_count[mask].tolist(), strict=True):
            counts[chunk] += count
        return dict(counts)

    def community_vectors(self, encode_texts: EncodeFunction) -> np.ndarray:
        """Return one unit-norm summary vector per community, encoding the summaries on the first call."""
        # The `communities` asset stores these vectors (`pipeline.store_summary_vectors`), and
        # `encode_texts` reads stored vectors under each text's hash first. Without them, such as
        # after `build_communities` alone, the first global or hybrid query encodes the summaries.
        with self._lock:
            if self._community_vectors is None:
                started = time.perf_counter()
                texts = [community_text(community) for community in self.communities]
                self._community_vectors = _unit_rows(encode_texts(texts), len(texts))
                logger.info("encoded the summaries of %d communities in %.2f s", len(texts), time.perf_counter() - started)
            return self._community_vectors


def summary_texts(communities: Sequence[Community]) -> list[str]:
    """Return the summary texts of the communities that global ranking compares with queries."""
    return [community_text(community) for community in _summary_communities(list(communities))]


def community_text(community: Community) -> str:
    """Return the text of a community summary that is embedded to compare it with queries."""
    summary = community.summary
    lines = [community.title, ", ".join(summary.top_entities)]
    lines.extend(summary.key_relations)
    if summary.representative_sentence:
        lines.append(summary.representative_sentence)
    return "\n".join(line for line in lines if line)


def load_namespace_graph(
    store: GraphStore,
    tenant: str,
    memory: str,
    model: str,
    version: int,
    encode_texts: EncodeFunction,
) -> NamespaceGraph:
    """Read a namespace's graph from the store and build its PPR graph.

    Entity names without a stored vector of `model` are encoded with `encode_texts` and kept in
    memory only, because a write from a query would change the graph version.
    """
    started = time.perf_counter()
    entities = store.get_entities(tenant, memory)
    entity_row = {entity.id: row for row, entity in enumerate(entities)}
    chunks = store.get_chunks(tenant, memory)
    chunk_ids = [chunk.id for chunk in chunks]
    chunk_row = {chunk_id: row for row, chunk_id in enumerate(chunk_ids)}

    mention_pairs: dict[tuple[int, int], int] = defaultdict(int)
    for offset in range(0, len(chunk_ids), LOAD_BATCH_IDS):
        for link in store.get_mention_links(tenant, memory, chunk_ids[offset : offset + LOAD_BATCH_IDS]):
            entity = entity_row.get(link.entity_id)
            if entity is not None:
                mention_pairs[(entity, chunk_row[link.chunk_id])] += 1

    relation_weights: dict[tuple[int, int], float] = defaultdict(float)
    for relation in store.get_relations(tenant, memory):
        source = entity_row.get(relation.source_id)
        target = entity_row.get(relation.target_id)
        if source is None or target is None or source == target or not relation.weight > 0.0:
            continue
        relation_weights[(min(source, target), max(source, target))] += relation.weight

    name_vectors = _name_vectors(store, tenant, model, entities, encode_texts)
    communities = _summary_communities(store.get_communities(tenant, memory))

    graph = NamespaceGraph(
        version=version,
        entities=entities,
        name_vectors=name_vectors,
        chunk_ids=chunk_ids,
        chunk_text_hashes=[chunk.text_hash for chunk in chunks],
        mention_pairs=mention_pairs,
        relation_weights=relation_weights,
        communities=communities,
    )
    logger.info(
        "loaded the graph of %s/%s at version %d: %d entities, %d chunks, %d mention links, %d relation edges, %d communities in %.2f s",
        tenant,
        memory,
        version,
        len(entities),
        len(chunk_ids),
        len(mention_pairs),
        len(relation_weights),
        len(communities),
        time.perf_counter() - started,
    )
    return graph


def _build_graph(
    entity_count: int,
    chunk_count: int,
    mention_pairs: list[tuple[int, int]],
    mention_counts: np.ndarray,
    relation_weights: dict[tuple[int, int], float],
) -> igraph.Graph:
    relation_edges = sorted(relation_weights)
    edges = relation_edges + [(entity, entity_count + chunk) for entity, chunk in mention_pairs]
    weights = [relation_weights[edge] for edge in relation_edges] + mention_counts.tolist()
    graph = igraph.Graph(n=entity_count + chunk_count, edges=edges, directed=False)
    graph.es["weight"] = weights
    return graph


def _name_vectors(store: GraphStore, tenant: str, model: str, entities: list[Entity], encode_texts: EncodeFunction) -> np.ndarray:
    """Return the unit-norm vector of every entity name, read from the store where resolution cached it."""
    hashes = [text_hash(entity.name) for entity in entities]
    known: dict[str, np.ndarray] = {}
    distinct = sorted(set(hashes))
    for offset in range(0, len(distinct), LOAD_BATCH_IDS):
        known.update(store.get_embeddings(tenant, model, distinct[offset : offset + LOAD_BATCH_IDS]))

    missing = sorted({entity.name for entity, name_hash in zip(entities, hashes, strict=True) if name_hash not in known})
    if missing:
        # NOTE: resolution stores vectors only for the names it compares. The other names (30 of
        # 13,318 on the retrieval benchmark, or all after a resolution without embeddings) are
        # encoded here on the first query of every graph version.
        logger.info("encoding %d entity names that have no stored vector of %s", len(missing), model)
        known.update(zip((text_hash(name) for name in missing), _unit_rows(encode_texts(missing), len(missing)), strict=True))

    if not entities:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([known[name_hash] for name_hash in hashes]).astype(np.float32)


def _summary_communities(communities: list[Community]) -> list[Community]:
    """Return the communities that global ranking compares with queries.

    These are the communities of at least `MIN_COMMUNITY_MEMBERS` entities, one per member set at its
    finest level, so that a group unchanged across levels is encoded and ranked once.
    """
    chosen: dict[tuple[str, ...], Community] = {}
    for community in sorted(communities, key=lambda c: (c.level, c.id)):
        if len(community.member_ids) >= MIN_COMMUNITY_MEMBERS:
            chosen.setdefault(tuple(community.member_ids), community)
    return list(chosen.values())


def _unit_rows(vectors: np.ndarray, expected_rows: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != expected_rows:
        raise ValueError(f"the encoder returned an array of shape {array.shape} for {expected_rows} texts: it must return one row per text")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


class GraphCache:
    """A thread-safe LRU of `NamespaceGraph`s keyed by tenant, memory and embedding model.

    A graph is reloaded when the store's graph version differs from the version it was loaded at.
    Loads are serialised, so concurrent first queries of one namespace load it once.
    """

    def __init__(self, max_graphs: int = DEFAULT_MAX_GRAPHS) -> None:
        if max_graphs < 1:
            raise ConfigurationError(f"max_graphs={max_graphs} is invalid: keep at least 1 namespace graph in memory")
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple[str, str, str], NamespaceGraph] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._graphs)

    def get(
        self,
        store: GraphStore,
        tenant: str,
        memory: str,
        model: str,
        version: int,
        encode_texts: EncodeFunction,
    ) -> NamespaceGraph:
        """Return the namespace's graph at `version`, loading it when it is missing or older."""
        key = (tenant, memory, model)
        cached = self._lookup(key, version)
        if cached is not None:
            return cached

        with self._load_lock:
            cached = self._lookup(key, version)
            if cached is not None:
                return cached
            graph = load_namespace_graph(store, tenant, memory, model, version, encode_texts)
            with self._lock:
                self._graphs[key] = graph
                self._graphs.move_to_end(key)
                while len(self._graphs) > self.max_graphs:
                    evicted, _ = self._graphs.popitem(last=False)
                    logger.debug("evicted the graph of %s/%s (%s) from memory", *evicted)
            return graph

    def _lookup(self, key: tuple[str, str, str], version: int) -> NamespaceGraph | None:
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None or graph.version != version:
                return None
            self._graphs.move_to_end(key)
            return graph
