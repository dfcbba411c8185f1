"""The query engine: vector search over chunks, then the graph around what they mention."""

import logging
import time

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from graphmem_core.cache import Cache, InProcessCache, cache_key
from graphmem_core.embeddings import Embedder, model_key
from graphmem_core.errors import InvalidInputError
from graphmem_core.models import ChunkHit, Community, Entity, Relation
from graphmem_core.stores.base import GraphStore

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
MAX_TOP_K = 100
MAX_HOPS = 3

# Entities taken into the neighbourhood from the top chunks, most-mentioned first.
SEED_ENTITIES = 20

# Part of the key of every cached QueryResult. Raise it when QueryResult or the ranking changes, so
# that a shared cache never returns results computed by an older release.
ANSWER_CACHE_FORMAT = 1

# Query vectors depend on the model and the text only, so they are cached per tenant under this
# memory name, which `validate_namespace` rejects as a real memory name.
_TENANT_WIDE = ""


class QueryResult(BaseModel):
    """The chunks that match a query and the part of the graph around them."""

    model_config = ConfigDict(frozen=True)

    query: str
    chunks: list[ChunkHit]
    entities: list[Entity] = Field(description="Entities of the top chunks, most relevant first, then their neighbours.")
    relations: list[Relation] = Field(description="Relations among those entities, those of the most relevant entities first.")
    communities: list[Community]
    timings_ms: dict[str, float] = Field(
        description="Milliseconds spent in each step. A result read from the cache has only `cache` (version check and lookup) and `total`."
    )
    cached: bool = Field(default=False, description="Whether the result was read from the cache instead of being computed.")


class QueryEngine:
    """Runs text queries over one store with one embedding model, caching query vectors and results.

    Results are keyed by the store's graph version, which grows with every content change, so a new
    materialisation is visible to the next query.
    """

    def __init__(self, store: GraphStore, embedder: Embedder, cache: Cache | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.cache = cache if cache is not None else InProcessCache()

    def query(self, tenant: str, memory: str, text: str, top_k: int = 5, hops: int = 1) -> QueryResult:
        """Return the `top_k` most similar chunks, the entities they mention with `hops` of neighbours, and their communities."""
        text = text.strip()
        if not text:
            raise InvalidInputError("the query text is empty: pass the question to search for")
        if len(text) > MAX_QUERY_CHARS:
            raise InvalidInputError(f"the query has {len(text)} characters, more than the limit {MAX_QUERY_CHARS}: shorten it")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInputError(f"top_k={top_k} is out of range: use 1 to {MAX_TOP_K}")
        if not 0 <= hops <= MAX_HOPS:
            raise InvalidInputError(f"hops={hops} is out of range: use 0 to {MAX_HOPS}")

        started = time.perf_counter()
        model = model_key(self.embedder.model_name)
        # The version is read before computing, so a result that raced with a write is stored under
        # the older version, which no later query reads.
        version = self.store.graph_version(tenant, memory)
        parameters = {"format": ANSWER_CACHE_FORMAT, "text": text, "top_k": top_k, "hops": hops, "model": model}
        result_key = cache_key("answer", tenant, memory, version, parameters)
        cached = self.cache.get_model(result_key, QueryResult)
        if cached is not None:
            elapsed = (time.perf_counter() - started) * 1000
            logger.debug("query in %s/%s served from the cache at graph version %d in %.1f ms", tenant, memory, version, elapsed)
            return cached.model_copy(update={"cached": True, "timings_ms": {"cache": elapsed, "total": elapsed}})

        result = self._compute(tenant, memory, text, top_k, hops, model, started)
        self.cache.set_model(result_key, result)
        return result

    def _query_vector(self, tenant: str, model: str, text: str) -> np.ndarray:
        """Return the unit-norm vector of `text`, from the cache when this tenant asked it before."""
        key = cache_key("query_vector", tenant, _TENANT_WIDE, 0, {"model": model, "text": text})
        vector = self.cache.get_vector(key)
        if vector is not None and vector.ndim == 1:
            return vector

        vector = self.embedder.encode([text])[0]
        self.cache.set_vector(key, vector)
        return vector

    def _compute(self, tenant: str, memory: str, text: str, top_k: int, hops: int, model: str, started: float) -> QueryResult:
        """Run the query against the store. `started` is the perf_counter value when the query began, for the total."""
        timings: dict[str, float] = {}
        step = time.perf_counter()
        vector = self._query_vector(tenant, model, text)
        timings["embed"] = (time.perf_counter() - step) * 1000

        step = time.perf_counter()
        hits = self.store.search_chunks(tenant, memory, model, vector, top_k)
        timings["search"] = (time.perf_counter() - step) * 1000

        step = time.perf_counter()
        links = self.store.get_mention_links(tenant, memory, [hit.chunk.id for hit in hits])
        chunk_scores = {hit.chunk.id: hit.score for hit in hits}
        # An entity counts as much as the chunks that mention it match the query, so the entities of
        # the best chunk come first rather than the most frequent names of the whole memory.
        relevance: dict[str, float] = {}
        for link in links:
            relevance[link.entity_id] = relevance.get(link.entity_id, 0.0) + chunk_scores[link.chunk_id]
        seeds = sorted(relevance, key=lambda entity_id: (-relevance[entity_id], entity_id))[:SEED_ENTITIES]
        neighbourhood = self.store.neighbourhood(tenant, memory, seeds, hops=hops)
        seed_rank = {entity_id: rank for rank, entity_id in enumerate(seeds)}
        unranked = len(seeds)
        relations = sorted(
            neighbourhood.relations,
            key=lambda r: (min(seed_rank.get(r.source_id, unranked), seed_rank.get(r.target_id, unranked)), -r.weight, r.id),
        )
        timings["graph"] = (time.perf_counter() - step) * 1000

        step = time.perf_counter()
        communities = self.store.get_communities(tenant, memory, level=0, entity_ids=seeds) if seeds else []
        timings["communities"] = (time.perf_counter() - step) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000

        logger.debug("query in %s/%s took %.1f ms", tenant, memory, timings["total"])
        return QueryResult(
            query=text,
            chunks=hits,
            entities=neighbourhood.entities,
            relations=relations,
            communities=communities,
            timings_ms=timings,
        )
