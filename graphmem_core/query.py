"""The query engine: ranked chunks and the graph around them, in four retrieval modes.

`naive` is vector search over chunks. `local` spreads relevance from the query's entities and the
best vector hits over the entity graph with personalised PageRank, `global` ranks community
summaries against the query, and `hybrid` combines the two. `graphmem_core.graph_ranking` defines
each mode's chunk score.
"""

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from graphmem_core import graph_ranking
from graphmem_core.cache import Cache, InProcessCache, cache_key
from graphmem_core.embeddings import Embedder, model_key
from graphmem_core.errors import InvalidInputError
from graphmem_core.extraction.fast import FastExtractor
from graphmem_core.ids import text_hash
from graphmem_core.models import Chunk, ChunkHit, Community, Entity, Relation
from graphmem_core.ppr import personalized_pagerank
from graphmem_core.query_graph import DEFAULT_MAX_GRAPHS, GraphCache, NamespaceGraph
from graphmem_core.stores.base import GraphStore

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
MAX_TOP_K = 100
MAX_HOPS = 3

# Entities taken into the neighbourhood: in naive mode from the top chunks, most-mentioned first,
# and in the graph modes the entities with the most PPR mass or of the best communities.
SEED_ENTITIES = 20

# Vector hits that the graph modes read: the chunk seeds and the candidates besides those the graph
# reaches. On the benchmark the 50th hit scored 0.3 below the best in the median question (0.2 at the
# 5th percentile), so at the seed temperature of 0.05 it weighs 0.3 % of the best hit (2 %).
SEARCH_POOL = 50

# Part of the key of every cached QueryResult. Raise it when QueryResult or the ranking changes, so
# that a shared cache never returns results computed by an older release.
ANSWER_CACHE_FORMAT = 2

# Query vectors depend on the model and the text only, so they are cached per tenant under this
# memory name, which `validate_namespace` rejects as a real memory name.
_TENANT_WIDE = ""


class QueryMode(str, Enum):
    """Retrieval strategies of `QueryEngine.query`."""

    NAIVE = "naive"
    LOCAL = "local"
    GLOBAL = "global"
    HYBRID = "hybrid"


class QueryResult(BaseModel):
    """The chunks that match a query and the part of the graph around them."""

    model_config = ConfigDict(frozen=True)

    query: str
    mode: QueryMode = Field(description="Retrieval mode that produced the result.")
    chunks: list[ChunkHit] = Field(
        description=(
            "Best chunks first. `score` is the mode's ranking score: the cosine similarity in naive mode, and the "
            "scores that `graphmem_core.graph_ranking` defines in the other modes."
        )
    )
    entities: list[Entity] = Field(
        description=(
            "The most relevant entities first, then their neighbours. Relevance is the score of the chunks that mention an entity "
            "(naive), its PPR mass divided by its weighted degree (local, hybrid), or the rank of its community (global)."
        )
    )
    relations: list[Relation] = Field(description="Relations among those entities, those of the most relevant entities first.")
    communities: list[Community] = Field(description="Communities of those entities or closest to the query, the most relevant first.")
    timings_ms: dict[str, float] = Field(
        description="Milliseconds spent in each step. A result read from the cache has only `cache` (version check and lookup) and `total`."
    )
    cached: bool = Field(default=False, description="Whether the result was read from the cache instead of being computed.")


class _Timer:
    """Records milliseconds per named step into a dict, in the order the steps end."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._step = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + (now - self._step) * 1000
        self._step = now


class QueryEngine:
    """Runs text queries over one store with one embedding model, caching query vectors and results.

    Results are keyed by the store's graph version, which grows with every content change, so a new
    materialisation is visible to the next query. The graph modes keep the graphs of up to
    `max_graphs` namespaces in memory, each reloaded when its graph version changes, and
    `on_graph_load` is called with each graph after it is loaded.
    """

    def __init__(
        self,
        store: GraphStore,
        embedder: Embedder,
        cache: Cache | None = None,
        max_graphs: int = DEFAULT_MAX_GRAPHS,
        on_graph_load: Callable[[NamespaceGraph], None] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.cache = cache if cache is not None else InProcessCache()
        self.graphs = GraphCache(max_graphs, on_load=on_graph_load)
        # Names in the query are found by the rule-based extractor whatever extractor built the
        # graph: it needs no model or service and takes well under a millisecond per query.
        self._name_extractor = FastExtractor()

    def query(
        self,
        tenant: str,
        memory: str,
        text: str,
        top_k: int = 5,
        hops: int = 1,
        mode: QueryMode | str = QueryMode.HYBRID,
        vectors: Mapping[str, np.ndarray] | None = None,
    ) -> QueryResult:
        """Return the `top_k` best chunks for `mode`, the most relevant entities with `hops` of neighbours, and their communities.

        `vectors` may hold vectors of the query text and names already encoded, such as those that
        `texts_to_encode` listed, so that the query encodes nothing itself.
        """
        started = time.perf_counter()
        mode, text = _validated(text, top_k, hops, mode)
        model = model_key(self.embedder.model_name)
        # The version is read before computing, so a result that raced with a write is stored under
        # the older version, which no later query reads.
        version = self.store.graph_version(tenant, memory)
        result_key = self._answer_key(tenant, memory, version, text, top_k, hops, model, mode)
        cached = self._read_answer(result_key, started)
        if cached is not None:
            logger.debug("%s query in %s/%s served from the cache at graph version %d", mode.value, tenant, memory, version)
            return cached

        known = dict(vectors) if vectors else {}
        if mode is QueryMode.NAIVE:
            result = self._naive(tenant, memory, text, top_k, hops, model, known)
        else:
            result = self._graph_query(tenant, memory, text, top_k, hops, model, version, mode, known)
        result.timings_ms["total"] = (time.perf_counter() - started) * 1000
        logger.debug("%s query in %s/%s took %.1f ms", mode.value, tenant, memory, result.timings_ms["total"])
        self.cache.set_model(result_key, result)
        return result

    def cached_query(
        self,
        tenant: str,
        memory: str,
        text: str,
        top_k: int = 5,
        hops: int = 1,
        mode: QueryMode | str = QueryMode.HYBRID,
    ) -> QueryResult | None:
        """Return the cached result that `query` would return for these arguments, or None when it would compute one.

        It reads the graph version and the cache only, so with the in-process cache it takes well
        under a millisecond and can run on an event loop.
        """
        started = time.perf_counter()
        mode, text = _validated(text, top_k, hops, mode)
        model = model_key(self.embedder.model_name)
        version = self.store.graph_version(tenant, memory)
        return self._read_answer(self._answer_key(tenant, memory, version, text, top_k, hops, model, mode), started)

    def result_key(
        self,
        tenant: str,
        memory: str,
        text: str,
        top_k: int = 5,
        hops: int = 1,
        mode: QueryMode | str = QueryMode.HYBRID,
        *,
        kind: str = "answer",
        format_version: int = ANSWER_CACHE_FORMAT,
    ) -> str:
        """Return the cache key of the result of these arguments at the namespace's current graph version.

        With another `kind` and `format_version` the key names a value derived from that result, such as
        the query service's response body, which a new graph version makes unreachable like the result.
        """
        mode, text = _validated(text, top_k, hops, mode)
        model = model_key(self.embedder.model_name)
        version = self.store.graph_version(tenant, memory)
        return self._answer_key(tenant, memory, version, text, top_k, hops, model, mode, kind, format_version)

    def texts_to_encode(self, tenant: str, memory: str, text: str, mode: QueryMode | str = QueryMode.HYBRID) -> list[str]:
        """Return the texts that `query` would encode: the query text and names found in it with no known vector.

        A caller that batches encodings (the query service) encodes these and passes them to `query`
        as `vectors`. A graph mode loads the namespace's graph here when it is not in memory yet.
        """
        mode, text = _validated(text, 1, 0, mode)
        model = model_key(self.embedder.model_name)
        if mode is QueryMode.NAIVE:
            return [] if self._cached_vector(tenant, model, text) is not None else [text]
        graph = self._namespace_graph(tenant, memory, model, self.store.graph_version(tenant, memory))
        names = self._query_names(text) if mode is not QueryMode.GLOBAL else []
        vectors = self._known_vectors(tenant, model, [text, *names], names, graph)
        return [value for value in dict.fromkeys([text, *names]) if value not in vectors]

    @staticmethod
    def _answer_key(
        tenant: str,
        memory: str,
        version: int,
        text: str,
        top_k: int,
        hops: int,
        model: str,
        mode: QueryMode,
        kind: str = "answer",
        format_version: int = ANSWER_CACHE_FORMAT,
    ) -> str:
        parameters = {"format": format_version, "text": text, "top_k": top_k, "hops": hops, "model": model, "mode": mode.value}
        return cache_key(kind, tenant, memory, version, parameters)

    def _read_answer(self, key: str, started: float) -> QueryResult | None:
        """Return the result cached under `key` marked as cached with its lookup time, or None on a miss."""
        cached = self.cache.get_model(key, QueryResult)
        if cached is None:
            return None
        elapsed = (time.perf_counter() - started) * 1000
        return cached.model_copy(update={"cached": True, "timings_ms": {"cache": elapsed, "total": elapsed}})

    def prepare(self, tenant: str, memory: str) -> None:
        """Load the namespace's graph and encode its community summaries, so the next graph query returns without that delay."""
        model = model_key(self.embedder.model_name)
        graph = self._namespace_graph(tenant, memory, model, self.store.graph_version(tenant, memory))
        graph.community_vectors(lambda texts: self._text_vectors(tenant, model, texts))

    # Vectors

    def _query_vector(self, tenant: str, model: str, text: str) -> np.ndarray:
        """Return the unit-norm vector of `text`, from the cache when this tenant asked it before."""
        vector = self._cached_vector(tenant, model, text)
        if vector is not None:
            return vector

        vector = self.embedder.encode([text])[0]
        self.cache.set_vector(_vector_key(tenant, model, text), vector)
        return vector

    def _cached_vector(self, tenant: str, model: str, text: str) -> np.ndarray | None:
        vector = self.cache.get_vector(_vector_key(tenant, model, text))
        return vector if vector is not None and vector.ndim == 1 else None

    def _text_vectors(self, tenant: str, model: str, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-norm vector per text, read from the cache, then from the store's vectors, and encoded last."""
        vectors: dict[str, np.ndarray] = {}
        keys = {text: cache_key("query_vector", tenant, _TENANT_WIDE, 0, {"model": model, "text": text}) for text in texts}
        for text, key in keys.items():
            vector = self.cache.get_vector(key)
            if vector is not None and vector.ndim == 1:
                vectors[text] = vector

        vectors.update(self._stored_vectors(tenant, model, [text for text in keys if text not in vectors]))
        to_encode = [text for text in keys if text not in vectors]
        if to_encode:
            for text, vector in zip(to_encode, self.embedder.encode(to_encode), strict=True):
                vectors[text] = vector
                self.cache.set_vector(keys[text], vector)

        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.vstack([vectors[text] for text in texts]).astype(np.float32)

    def _namespace_graph(self, tenant: str, memory: str, model: str, version: int) -> NamespaceGraph:
        return self.graphs.get(self.store, tenant, memory, model, version, lambda texts: self._text_vectors(tenant, model, texts))

    # Naive mode

    def _naive(self, tenant: str, memory: str, text: str, top_k: int, hops: int, model: str, known: dict[str, np.ndarray]) -> QueryResult:
        """Rank chunks by vector similarity and return the entities they mention with their neighbourhood."""
        timer = _Timer()
        if text in known:
            vector = known[text]
            self.cache.set_vector(_vector_key(tenant, model, text), vector)
        else:
            vector = self._query_vector(tenant, model, text)
        timer.lap("embed")

        hits = self.store.search_chunks(tenant, memory, model, vector, top_k)
        timer.lap("search")

        links = self.store.get_mention_links(tenant, memory, [hit.chunk.id for hit in hits])
        chunk_scores = {hit.chunk.id: hit.score for hit in hits}
        # An entity counts as much as the chunks that mention it match the query, so the entities of
        # the best chunk come first rather than the most frequent names of the whole memory.
        relevance: dict[str, float] = {}
        for link in links:
            relevance[link.entity_id] = relevance.get(link.entity_id, 0.0) + chunk_scores[link.chunk_id]
        seeds = sorted(relevance, key=lambda entity_id: (-relevance[entity_id], entity_id))[:SEED_ENTITIES]
        entities, relations = self._neighbourhood(tenant, memory, seeds, hops)
        timer.lap("graph")

        communities = self.store.get_communities(tenant, memory, level=0, entity_ids=seeds) if seeds else []
        timer.lap("communities")

        return QueryResult(
            query=text,
            mode=QueryMode.NAIVE,
            chunks=hits,
            entities=entities,
            relations=relations,
            communities=communities,
            timings_ms=timer.timings,
        )

    def _neighbourhood(
        self, tenant: str, memory: str, seeds: list[str], hops: int, graph: NamespaceGraph | None = None
    ) -> tuple[list[Entity], list[Relation]]:
        """Return the seeds with `hops` of neighbours, and the relations among them ordered by the rank of their best endpoint."""
        if graph is not None and graph.in_memory:
            neighbourhood = graph.neighbourhood(seeds, hops=hops)
        else:
            neighbourhood = self.store.neighbourhood(tenant, memory, seeds, hops=hops)
        seed_rank = {entity_id: rank for rank, entity_id in enumerate(seeds)}
        unranked = len(seeds)
        relations = sorted(
            neighbourhood.relations,
            key=lambda r: (min(seed_rank.get(r.source_id, unranked), seed_rank.get(r.target_id, unranked)), -r.weight, r.id),
        )
        return neighbourhood.entities, relations

    # Graph modes

    def _graph_query(
        self, tenant: str, memory: str, text: str, top_k: int, hops: int, model: str, version: int, mode: QueryMode, known: dict[str, np.ndarray]
    ) -> QueryResult:
        """Rank chunks, entities and communities of the local, global or hybrid mode."""
        timer = _Timer()
        graph = self._namespace_graph(tenant, memory, model, version)
        timer.lap("graph")

        names = self._query_names(text) if mode is not QueryMode.GLOBAL else []
        vector, name_vectors = self._encode_query(tenant, model, text, names, graph, known)
        timer.lap("embed")

        pool = max(top_k, SEARCH_POOL)
        hits = self._search(tenant, memory, model, graph, vector, pool)
        timer.lap("search")
        if not hits:
            timer.lap("communities")
            return QueryResult(query=text, mode=mode, chunks=[], entities=[], relations=[], communities=[], timings_ms=timer.timings)

        cosine = {row: hit.score for hit in hits if (row := graph.chunk_row.get(hit.chunk.id)) is not None}

        ranked_communities: list[tuple[int, float]] = []
        community_score: dict[int, float] = {}
        if mode in (QueryMode.GLOBAL, QueryMode.HYBRID):
            community_vectors = graph.community_vectors(lambda texts: self._text_vectors(tenant, model, texts))
            ranked_communities = graph_ranking.rank_communities(community_vectors, vector)
            community_score = graph_ranking.community_similarity_by_chunk(graph, ranked_communities)
        timer.lap("communities")

        entity_relevance: np.ndarray | None = None
        if mode is QueryMode.GLOBAL:
            scores = self._global_scores(tenant, model, graph, vector, cosine, ranked_communities, community_score)
            seeds = self._community_entities(graph, ranked_communities)
        else:
            scores, entity_relevance = self._local_scores(tenant, model, graph, vector, hits, name_vectors, cosine, community_score, pool)
            seeds = [graph.entities[row].id for row in graph_ranking.top_rows(entity_relevance, SEED_ENTITIES)]

        ranked = sorted(scores, key=lambda row: (-scores[row], graph.chunk_ids[row]))[:top_k]
        chunks = self._chunk_hits(tenant, memory, graph, hits, ranked, scores)
        entities, relations = self._neighbourhood(tenant, memory, seeds, hops, graph) if seeds else ([], [])
        timer.lap("graph")

        communities = self._result_communities(tenant, memory, graph, ranked_communities, seeds, entity_relevance)
        timer.lap("communities")

        return QueryResult(
            query=text,
            mode=mode,
            chunks=chunks,
            entities=entities,
            relations=relations,
            communities=communities,
            timings_ms=timer.timings,
        )

    def _global_scores(
        self,
        tenant: str,
        model: str,
        graph: NamespaceGraph,
        vector: np.ndarray,
        cosine: dict[int, float],
        ranked_communities: list[tuple[int, float]],
        community_score: dict[int, float],
    ) -> dict[int, float]:
        """Score the vector hits and the chunks of the best communities by cosine plus the community term."""
        candidates = list(cosine) + graph_ranking.community_chunk_candidates(graph, ranked_communities)
        self._add_cosine(tenant, model, graph, vector, candidates, cosine)
        return {row: cosine[row] + graph_ranking.COMMUNITY_WEIGHT * community_score.get(row, 0.0) for row in candidates}

    def _local_scores(
        self,
        tenant: str,
        model: str,
        graph: NamespaceGraph,
        vector: np.ndarray,
        hits: list[ChunkHit],
        name_vectors: dict[str, np.ndarray],
        cosine: dict[int, float],
        community_score: dict[int, float],
        pool: int,
    ) -> tuple[dict[int, float], np.ndarray]:
        """Score the vector hits and the chunks with the most PPR mass; return the scores and every entity's relevance.

        `community_score` is empty in local mode, so the same formula gives the local and the hybrid score.
        """
        entity_mass, chunk_mass = self._spread(graph, hits, name_vectors)
        candidates = list(cosine) + graph_ranking.top_rows(chunk_mass, pool)
        self._add_cosine(tenant, model, graph, vector, candidates, cosine)

        largest = float(chunk_mass.max()) if chunk_mass.size else 0.0
        scores: dict[int, float] = {}
        for row in candidates:
            graph_score = float(chunk_mass[row]) / largest if largest > 0.0 else 0.0
            vector_score = cosine[row] + graph_ranking.COMMUNITY_WEIGHT * community_score.get(row, 0.0)
            scores[row] = graph_score + graph_ranking.VECTOR_WEIGHT * vector_score

        # PPR favours well-connected entities, so dividing by the weighted degree keeps hubs from leading the list.
        entity_relevance = entity_mass / np.maximum(graph.entity_strength, 1.0)
        return scores, entity_relevance

    def _encode_query(
        self, tenant: str, model: str, text: str, names: list[str], graph: NamespaceGraph, known: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the query's vector and one vector per name, encoding those not known yet in one call."""
        vectors = self._known_vectors(tenant, model, [text, *names], names, graph)
        vectors.update((value, vector) for value, vector in known.items() if value not in vectors)
        to_encode = [value for value in dict.fromkeys([text, *names]) if value not in vectors]
        if to_encode:
            for value, vector in zip(to_encode, self.embedder.encode(to_encode), strict=True):
                vectors[value] = vector
        for value in dict.fromkeys([text, *names]):
            if value in known or value in to_encode:
                self.cache.set_vector(_vector_key(tenant, model, value), vectors[value])
        return vectors[text], {name: vectors[name] for name in names}

    def _known_vectors(self, tenant: str, model: str, texts: list[str], names: list[str], graph: NamespaceGraph) -> dict[str, np.ndarray]:
        """Return the vectors of `texts` known without encoding: names from the graph's entity names, then the cache, then the store."""
        vectors: dict[str, np.ndarray] = {}
        for name in names:
            vector = graph.name_vector(name)
            if vector is not None:
                vectors[name] = vector
        for value in dict.fromkeys(texts):
            if value not in vectors and (cached := self._cached_vector(tenant, model, value)) is not None:
                vectors[value] = cached

        vectors.update(self._stored_vectors(tenant, model, [name for name in names if name not in vectors]))
        return vectors

    def _stored_vectors(self, tenant: str, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the vectors the store's embedding cache has for `texts`, looked up by text hash."""
        if not texts:
            return {}
        stored = self.store.get_embeddings(tenant, model, sorted({text_hash(text) for text in texts}))
        return {text: stored[text_hash(text)] for text in texts if text_hash(text) in stored}

    def _search(self, tenant: str, memory: str, model: str, graph: NamespaceGraph, vector: np.ndarray, top_k: int) -> list[ChunkHit]:
        """Return the `top_k` chunks closest to `vector`, searched in memory when the graph contains the chunk vectors."""
        if not graph.in_memory:
            return self.store.search_chunks(tenant, memory, model, vector, top_k)
        assert graph.chunks is not None
        hits = []
        for row, score in graph.search_chunks(vector, top_k):
            chunk = graph.chunks[row]
            hits.append(ChunkHit(chunk=chunk, score=score, document_title=graph.document_titles.get(chunk.document_id)))
        return hits

    def _query_names(self, text: str) -> list[str]:
        """Return the distinct names that the rule-based extractor finds in the query, in order of appearance."""
        chunk = Chunk(
            id="query", document_id="query", tenant="", memory="", index=0, text=text, start=0, end=len(text), token_count=0, text_hash=""
        )
        names: dict[str, str] = {}
        for mention in self._name_extractor.extract_chunk(chunk).mentions:
            names.setdefault(mention.text.casefold(), mention.text)
        return list(names.values())

    @staticmethod
    def _spread(graph: NamespaceGraph, hits: list[ChunkHit], name_vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run PPR from the query's entities and the top chunks; return the mass of every entity and every chunk."""
        entity_seeds = graph_ranking.link_query_entities(graph, name_vectors)
        chunk_seeds = graph_ranking.chunk_seed_weights(graph, hits)
        mass = personalized_pagerank(
            graph.graph, graph_ranking.restart_distribution(entity_seeds, chunk_seeds), transition=graph.transition
        )
        return mass[: graph.entity_count], mass[graph.entity_count :]

    def _add_cosine(self, tenant: str, model: str, graph: NamespaceGraph, vector: np.ndarray, rows: list[int], cosine: dict[int, float]) -> None:
        """Fill in the cosine similarity of candidate chunks that vector search did not return, from their stored vectors."""
        missing = [row for row in dict.fromkeys(rows) if row not in cosine]
        if not missing:
            return
        if graph.chunk_vectors is not None:
            cosine.update(graph.chunk_cosines(missing, vector))
            return
        stored = self.store.get_embeddings(tenant, model, sorted({graph.chunk_text_hashes[row] for row in missing}))
        for row in missing:
            chunk_vector = stored.get(graph.chunk_text_hashes[row])
            cosine[row] = float(np.dot(chunk_vector, vector)) if chunk_vector is not None else 0.0

    def _chunk_hits(
        self, tenant: str, memory: str, graph: NamespaceGraph, hits: list[ChunkHit], ranked: list[int], scores: dict[int, float]
    ) -> list[ChunkHit]:
        """Return the ranked chunk rows as `ChunkHit`s carrying the mode's score, reading chunks that vector search did not return."""
        by_id = {hit.chunk.id: hit for hit in hits}
        missing = [graph.chunk_ids[row] for row in ranked if graph.chunk_ids[row] not in by_id]
        chunks: dict[str, Chunk] = {}
        titles: dict[str, str | None] = {}
        if graph.chunks is not None:
            chunks = {graph.chunk_ids[row]: graph.chunks[row] for row in ranked if graph.chunk_ids[row] not in by_id}
            titles = graph.document_titles
        elif missing:
            chunks = {chunk.id: chunk for chunk in self.store.get_chunks(tenant, memory, chunk_ids=missing)}
            documents = self.store.get_documents(tenant, memory, sorted({chunk.document_id for chunk in chunks.values()})) if chunks else []
            titles = {document.id: document.title for document in documents}

        results = []
        for row in ranked:
            chunk_id = graph.chunk_ids[row]
            if chunk_id in by_id:
                results.append(by_id[chunk_id].model_copy(update={"score": scores[row]}))
            elif chunk_id in chunks:
                chunk = chunks[chunk_id]
                results.append(ChunkHit(chunk=chunk, score=scores[row], document_title=titles.get(chunk.document_id)))
        return results

    @staticmethod
    def _community_entities(graph: NamespaceGraph, ranked: list[tuple[int, float]]) -> list[str]:
        """Return up to `SEED_ENTITIES` entity ids of the ranked communities: by community rank, then most mentioned."""
        seeds: dict[str, None] = {}
        for index, _ in ranked:
            members = [graph.entities[graph.entity_row[m]] for m in graph.communities[index].member_ids if m in graph.entity_row]
            for entity in sorted(members, key=lambda e: (-e.mention_count, e.id)):
                seeds.setdefault(entity.id, None)
        return list(seeds)[:SEED_ENTITIES]

    def _result_communities(
        self,
        tenant: str,
        memory: str,
        graph: NamespaceGraph,
        ranked: list[tuple[int, float]],
        seeds: list[str],
        entity_relevance: np.ndarray | None,
    ) -> list[Community]:
        """Return the best-matching summaries first (global, hybrid), then the finest communities of the top entities (local, hybrid).

        The communities of the top entities are ordered by the summed relevance of their members.
        """
        communities = [graph.communities[index] for index, _ in ranked]
        if entity_relevance is None or not seeds:
            return communities

        def relevance_of(community: Community) -> float:
            return sum(float(entity_relevance[graph.entity_row[m]]) for m in community.member_ids if m in graph.entity_row)

        listed = {community.id for community in communities}
        if graph.in_memory:
            found = graph.communities_of(seeds, level=0)
        else:
            found = self.store.get_communities(tenant, memory, level=0, entity_ids=seeds)
        around = [c for c in found if c.id not in listed]
        communities.extend(sorted(around, key=lambda c: (-relevance_of(c), c.id)))
        return communities


def _vector_key(tenant: str, model: str, text: str) -> str:
    """Return the cache key of a text's vector, shared by every memory of the tenant."""
    return cache_key("query_vector", tenant, _TENANT_WIDE, 0, {"model": model, "text": text})


def _validated(text: str, top_k: int, hops: int, mode: QueryMode | str) -> tuple[QueryMode, str]:
    """Return the parsed mode and the stripped text, raising `InvalidInputError` for an argument out of range."""
    mode = parse_mode(mode)
    text = text.strip()
    if not text:
        raise InvalidInputError("the query text is empty: pass the question to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"the query has {len(text)} characters, more than the limit {MAX_QUERY_CHARS}: shorten it")
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInputError(f"top_k={top_k} is out of range: use 1 to {MAX_TOP_K}")
    if not 0 <= hops <= MAX_HOPS:
        raise InvalidInputError(f"hops={hops} is out of range: use 0 to {MAX_HOPS}")
    return mode, text


def parse_mode(mode: QueryMode | str) -> QueryMode:
    """Return `mode` as a `QueryMode`, raising `InvalidInputError` that lists the modes when it is not one."""
    if isinstance(mode, QueryMode):
        return mode
    try:
        return QueryMode(str(mode).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in QueryMode)
        raise InvalidInputError(f"mode={mode!r} is not a query mode: use one of {allowed}") from None
