"""The query engine: vector search over chunks, then the graph around what they mention."""

import logging
import time

from pydantic import BaseModel, ConfigDict, Field

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


class QueryResult(BaseModel):
    """The chunks that match a query and the part of the graph around them."""

    model_config = ConfigDict(frozen=True)

    query: str
    chunks: list[ChunkHit]
    entities: list[Entity] = Field(description="Entities of the top chunks, most relevant first, then their neighbours.")
    relations: list[Relation] = Field(description="Relations among those entities, those of the most relevant entities first.")
    communities: list[Community]
    timings_ms: dict[str, float] = Field(description="Milliseconds spent in each step.")


class QueryEngine:
    """Runs text queries over one store with one embedding model."""

    def __init__(self, store: GraphStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

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

        timings: dict[str, float] = {}
        started = time.perf_counter()
        vector = self.embedder.encode([text])[0]
        timings["embed"] = (time.perf_counter() - started) * 1000

        step = time.perf_counter()
        hits = self.store.search_chunks(tenant, memory, model_key(self.embedder.model_name), vector, top_k)
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
