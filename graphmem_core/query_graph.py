"""The graph-wide data that the graph query modes read, loaded once per namespace and graph version.

`NamespaceGraph` contains one namespace's entities with their name vectors, its chunks, the mention
links between the two, its communities, and one undirected igraph graph for personalised PageRank.
Vertices `0 .. entity_count - 1` are the entities and the next `chunk_count` vertices are the chunks.
Every edge weight counts evidence: a relation edge counts the sentences that state the relation (its
weight, summed over relation types between the same two entities), and a mention edge counts how
often the chunk mentions the entity.

`NamespaceGraph` also answers the per-query reads of a graph query from memory: vector search over
the chunks, chunk texts and document titles, relation neighbourhoods and the communities of an
entity. They return what the store's calls of the same names return, without a store round trip.

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
from scipy import sparse

from graphmem_core.errors import ConfigurationError
from graphmem_core.ids import text_hash
from graphmem_core.models import Chunk, Community, Entity, Neighbourhood, Relation
from graphmem_core.ppr import TransitionMatrix
from graphmem_core.stores.base import GraphStore
from graphmem_core.vector_index import EXACT_SEARCH_MAX_VECTORS, VectorIndex

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

# Namespaces with at most this many chunks keep their chunk vectors in memory and are searched by one
# matrix product, as the libSQL store's exact index does: 20,000 vectors of 384 floats take 31 MB.
# Larger namespaces read vectors and search through the store on every query.
IN_MEMORY_MAX_CHUNKS = EXACT_SEARCH_MAX_VECTORS

# Entities reached by `NamespaceGraph.neighbourhood` unless the caller passes a limit; the same
# default as `GraphStore.neighbourhood`.
NEIGHBOURHOOD_LIMIT = 200

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
        *,
        chunks: list[Chunk] | None = None,
        chunk_vectors: dict[str, np.ndarray] | None = None,
        document_titles: dict[str, str | None] | None = None,
        relations: list[Relation] | None = None,
        all_communities: list[Community] | None = None,
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
        self._name_rows = {text_hash(entity.name): row for row, entity in enumerate(entities)}
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
        # Mention counts as an entity-by-chunk matrix, so the chunks of a set of entities are one sparse sum.
        self._mentions = sparse.csr_matrix(
            (self.mention_count, (self.mention_entity, self.mention_chunk)), shape=(len(entities), len(chunk_ids))
        )

        self.graph = _build_graph(len(entities), len(chunk_ids), pairs, self.mention_count, relation_weights)
        self.transition = TransitionMatrix(self.graph)
        # Weighted degree of each entity vertex. A random walk on an undirected graph visits vertices in
        # proportion to it in the long run, so PPR mass divided by it ranks entities without favouring hubs.
        self.entity_strength = np.asarray(self.graph.strength(range(len(entities)), weights="weight"), dtype=np.float64)

        # Summary vectors of `communities`, filled on the first call of `community_vectors`.
        self._community_vectors: np.ndarray | None = None
        # Chunk mention counts by community index, filled by `community_chunks` as queries rank communities.
        self._community_chunks: dict[int, dict[int, float]] = {}
        self._lock = threading.Lock()

        self._set_chunk_data(chunks, chunk_vectors, document_titles)
        self._set_relations(relations)
        self._set_entity_communities(all_communities)

    def _set_chunk_data(
        self, chunks: list[Chunk] | None, chunk_vectors: dict[str, np.ndarray] | None, document_titles: dict[str, str | None] | None
    ) -> None:
        """Keep the chunks, their titles and vectors for in-memory search; leave them None when the store must serve them."""
        self.chunks = chunks
        self.document_titles = document_titles if document_titles is not None else {}
        # Stored vectors by chunk row (zero rows for chunks without one) and the exact index over those that have one.
        self.chunk_vectors: np.ndarray | None = None
        self.chunk_has_vector: np.ndarray | None = None
        self.chunk_index: VectorIndex | None = None
        if chunks is None or chunk_vectors is None:
            return

        dimension = next((vector.shape[0] for vector in chunk_vectors.values()), 0)
        matrix = np.zeros((len(self.chunk_ids), dimension), dtype=np.float32)
        has_vector = np.zeros(len(self.chunk_ids), dtype=bool)
        for row, hash_ in enumerate(self.chunk_text_hashes):
            vector = chunk_vectors.get(hash_)
            if vector is not None:
                matrix[row] = vector
                has_vector[row] = True
        self.chunk_vectors = matrix
        self.chunk_has_vector = has_vector
        rows = np.flatnonzero(has_vector)
        if rows.size:
            self.chunk_index = VectorIndex.build([self.chunk_ids[row] for row in rows], matrix[rows], kind="exact")

    def _set_relations(self, relations: list[Relation] | None) -> None:
        """Index the relations by endpoint, in the order `GraphStore.neighbourhood` reads them (weight descending, then id)."""
        self.relations = sorted(relations, key=lambda r: (-r.weight, r.id)) if relations is not None else None
        self._relations_by_entity: dict[str, list[int]] = defaultdict(list)
        for position, relation in enumerate(self.relations or []):
            self._relations_by_entity[relation.source_id].append(position)
            if relation.target_id != relation.source_id:
                self._relations_by_entity[relation.target_id].append(position)

    def _set_entity_communities(self, all_communities: list[Community] | None) -> None:
        """Index every community by level and member, for `communities_of` (which `GraphStore.get_communities` serves otherwise)."""
        self._communities_by_member: dict[tuple[int, str], list[Community]] | None = None
        if all_communities is None:
            return
        self._communities_by_member = defaultdict(list)
        for community in all_communities:
            for member in community.member_ids:
                self._communities_by_member[(community.level, member)].append(community)

    @property
    def in_memory(self) -> bool:
        """Whether search, chunk reads, neighbourhoods and entity communities are served from memory."""
        return self.chunk_vectors is not None and self.relations is not None and self._communities_by_member is not None

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
        """Return, for every chunk that mentions any of `entity_rows`, how many mentions of them it has, by chunk row."""
        rows = np.unique(np.asarray(entity_rows, dtype=np.int64))
        if rows.size == 0:
            return {}
        totals = np.asarray(self._mentions[rows].sum(axis=0)).ravel()
        chunks = np.flatnonzero(totals)
        return dict(zip(chunks.tolist(), totals[chunks].tolist(), strict=True))

    def community_chunks(self, index: int) -> dict[int, float]:
        """Return `chunks_mentioning` for the members of community `index`, computed once per graph.

        Global and hybrid queries rank a few communities each, and the same ones come back often.
        Threads that compute a missing entry at the same time store the same value.
        """
        found = self._community_chunks.get(index)
        if found is None:
            members = [self.entity_row[member] for member in self.communities[index].member_ids if member in self.entity_row]
            found = self.chunks_mentioning(members)
            self._community_chunks[index] = found
        return found

    def search_chunks(self, vector: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        """Return up to `top_k` (chunk row, cosine) pairs, best first and ties by chunk id, as the store's exact search ranks them."""
        if self.chunk_index is None:
            return []
        return [(self.chunk_row[chunk_id], score) for chunk_id, score in self.chunk_index.search(vector, top_k)]

    def chunk_cosines(self, rows: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Return the dot product of each row's stored vector with `vector`, and 0 for rows without a stored vector."""
        assert self.chunk_vectors is not None and self.chunk_has_vector is not None
        indices = np.asarray(rows, dtype=np.int64)
        scores = self.chunk_vectors[indices] @ np.asarray(vector, dtype=np.float32)
        scores = np.where(self.chunk_has_vector[indices], scores, 0.0)
        return dict(zip(indices.tolist(), scores.tolist(), strict=True))

    def neighbourhood(self, entity_ids: Sequence[str], hops: int = 1, limit: int = NEIGHBOURHOOD_LIMIT) -> Neighbourhood:
        """Return the entities within `hops` relations of `entity_ids` and the relations among them, as `GraphStore.neighbourhood` does.

        Each hop reads the relations of the frontier, heaviest first, and adds their endpoints until
        `limit` entities are reached. A relation is kept when both endpoints are reached by then.
        """
        assert self.relations is not None
        reached: list[str] = list(dict.fromkeys(entity_ids))[:limit]
        known = set(reached)
        frontier = list(reached)
        kept: set[int] = set()

        for _ in range(max(hops, 0)):
            if not frontier or len(known) >= limit:
                break
            positions = sorted({position for entity_id in frontier for position in self._relations_by_entity.get(entity_id, ())})
            next_frontier: list[str] = []
            for position in positions:
                relation = self.relations[position]
                for endpoint in (relation.source_id, relation.target_id):
                    if endpoint not in known and len(known) < limit:
                        known.add(endpoint)
                        reached.append(endpoint)
                        next_frontier.append(endpoint)
                if relation.source_id in known and relation.target_id in known:
                    kept.add(position)
            frontier = next_frontier

        entities = [self.entities[self.entity_row[entity_id]] for entity_id in reached if entity_id in self.entity_row]
        return Neighbourhood(entities=entities, relations=[self.relations[position] for position in sorted(kept)])

    def communities_of(self, entity_ids: Sequence[str], level: int) -> list[Community]:
        """Return the distinct communities at `level` that contain any of `entity_ids`, in no particular order."""
        assert self._communities_by_member is not None
        found: dict[str, Community] = {}
        for entity_id in entity_ids:
            for community in self._communities_by_member.get((level, entity_id), ()):
                found.setdefault(community.id, community)
        return list(found.values())

    def name_vector(self, name: str) -> np.ndarray | None:
        """Return the vector of an entity name equal to `name`, which the graph already holds, or None."""
        row = self._name_rows.get(text_hash(name))
        return self.name_vectors[row] if row is not None else None

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

    relations = store.get_relations(tenant, memory)
    relation_weights: dict[tuple[int, int], float] = defaultdict(float)
    for relation in relations:
        source = entity_row.get(relation.source_id)
        target = entity_row.get(relation.target_id)
        if source is None or target is None or source == target or not relation.weight > 0.0:
            continue
        relation_weights[(min(source, target), max(source, target))] += relation.weight

    name_vectors = _name_vectors(store, tenant, model, entities, encode_texts)
    all_communities = store.get_communities(tenant, memory)
    communities = _summary_communities(all_communities)
    in_memory = len(chunks) <= IN_MEMORY_MAX_CHUNKS

    graph = NamespaceGraph(
        version=version,
        entities=entities,
        name_vectors=name_vectors,
        chunk_ids=chunk_ids,
        chunk_text_hashes=[chunk.text_hash for chunk in chunks],
        mention_pairs=mention_pairs,
        relation_weights=relation_weights,
        communities=communities,
        chunks=chunks if in_memory else None,
        chunk_vectors=_stored_vectors(store, tenant, model, [chunk.text_hash for chunk in chunks]) if in_memory else None,
        document_titles=_document_titles(store, tenant, memory, chunks) if in_memory else None,
        relations=relations if in_memory else None,
        all_communities=all_communities if in_memory else None,
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


def _stored_vectors(store: GraphStore, tenant: str, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """Return the stored vectors of `model` by text hash, for the hashes that have one."""
    known: dict[str, np.ndarray] = {}
    distinct = sorted(set(hashes))
    for offset in range(0, len(distinct), LOAD_BATCH_IDS):
        known.update(store.get_embeddings(tenant, model, distinct[offset : offset + LOAD_BATCH_IDS]))
    return known


def _document_titles(store: GraphStore, tenant: str, memory: str, chunks: Sequence[Chunk]) -> dict[str, str | None]:
    """Return the title of every document that `chunks` belong to."""
    titles: dict[str, str | None] = {}
    document_ids = sorted({chunk.document_id for chunk in chunks})
    for offset in range(0, len(document_ids), LOAD_BATCH_IDS):
        titles.update((document.id, document.title) for document in store.get_documents(tenant, memory, document_ids[offset : offset + LOAD_BATCH_IDS]))
    return titles


def _name_vectors(store: GraphStore, tenant: str, model: str, entities: list[Entity], encode_texts: EncodeFunction) -> np.ndarray:
    """Return the unit-norm vector of every entity name, read from the store where resolution cached it."""
    hashes = [text_hash(entity.name) for entity in entities]
    known = _stored_vectors(store, tenant, model, hashes)

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
    Loads are serialised, so concurrent first queries of one namespace load it once. `on_load` is
    called with each graph after it is loaded and cached, in the thread that loaded it.
    """

    def __init__(self, max_graphs: int = DEFAULT_MAX_GRAPHS, on_load: Callable[[NamespaceGraph], None] | None = None) -> None:
        if max_graphs < 1:
            raise ConfigurationError(f"max_graphs={max_graphs} is invalid: keep at least 1 namespace graph in memory")
        self.max_graphs = max_graphs
        self.on_load = on_load
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
            if self.on_load is not None:
                self.on_load(graph)
            return graph

    def _lookup(self, key: tuple[str, str, str], version: int) -> NamespaceGraph | None:
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None or graph.version != version:
                return None
            self._graphs.move_to_end(key)
            return graph
