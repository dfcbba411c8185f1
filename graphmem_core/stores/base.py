"""The `GraphStore` contract that every graph store implements.

Every call names its tenant and memory, and every write is an idempotent upsert on content-derived
ids inside one transaction: writing the same objects twice leaves the store as it was. Each method
states what happens on conflict.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from graphmem_core.models import (
    Chunk,
    ChunkHit,
    Community,
    Document,
    Entity,
    ExtractionFailure,
    ExtractionResult,
    MentionLink,
    MergeExclusion,
    MergeRecord,
    Neighbourhood,
    RejectedInput,
    Relation,
    ResolvedGraph,
)


class GraphStore(ABC):
    """Durable storage for documents, chunks, vectors, the resolved graph and its communities."""

    # Documents and batches

    @abstractmethod
    def upsert_documents(self, tenant: str, memory: str, batch_id: str, documents: Sequence[Document]) -> int:
        """Store documents and their membership in `batch_id`; return how many documents were new.

        On conflict the stored document is kept: the same id always means the same text.
        """

    @abstractmethod
    def record_rejections(self, tenant: str, memory: str, batch_id: str, rejected: Sequence[RejectedInput]) -> None:
        """Store why inputs of `batch_id` were rejected; a second call for the same source replaces the reason."""

    @abstractmethod
    def get_rejections(self, tenant: str, memory: str, batch_id: str) -> list[RejectedInput]:
        """Return the rejections recorded for `batch_id`, sorted by source."""

    @abstractmethod
    def get_batch_documents(self, tenant: str, memory: str, batch_id: str) -> list[Document]:
        """Return the documents of `batch_id`, sorted by id."""

    @abstractmethod
    def get_documents(self, tenant: str, memory: str, document_ids: Sequence[str]) -> list[Document]:
        """Return the documents with these ids that exist, sorted by id."""

    # Chunks and vectors

    @abstractmethod
    def upsert_chunks(self, tenant: str, memory: str, chunks: Sequence[Chunk]) -> int:
        """Store chunks; return how many were new. On conflict the stored chunk is kept."""

    @abstractmethod
    def get_chunks(
        self,
        tenant: str,
        memory: str,
        *,
        document_ids: Sequence[str] | None = None,
        chunk_ids: Sequence[str] | None = None,
    ) -> list[Chunk]:
        """Return chunks of these documents or with these ids (all chunks when both are None), by document and index."""

    @abstractmethod
    def get_embeddings(self, tenant: str, model: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors of `model` for the text hashes that have one."""

    @abstractmethod
    def upsert_embeddings(self, tenant: str, model: str, vectors: Mapping[str, np.ndarray]) -> int:
        """Cache vectors by text hash; return how many were new. On conflict the stored vector is kept."""

    @abstractmethod
    def prepare_search(self, tenant: str, memory: str, model: str) -> None:
        """Build or load whatever `search_chunks` needs, so that the next search returns without that delay."""

    @abstractmethod
    def search_chunks(self, tenant: str, memory: str, model: str, query: np.ndarray, top_k: int) -> list[ChunkHit]:
        """Return the `top_k` chunks whose `model` vectors are most similar to the unit-norm `query`."""

    # Extraction

    @abstractmethod
    def upsert_extractions(self, tenant: str, memory: str, extractor: str, results: Sequence[ExtractionResult]) -> int:
        """Store extraction results per (chunk, extractor); return how many were new. On conflict the result is replaced."""

    @abstractmethod
    def get_extracted_chunk_ids(self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str]) -> set[str]:
        """Return which of `chunk_ids` already have a result from `extractor`."""

    @abstractmethod
    def iter_extractions(self, tenant: str, memory: str, extractor: str) -> Iterator[ExtractionResult]:
        """Yield every stored result of `extractor` in the namespace, ordered by chunk id."""

    # Resolved graph

    @abstractmethod
    def content_version(self, tenant: str, memory: str, name: str) -> int:
        """Return the version of one kind of content, 0 when never written.

        Names are `extractions:<extractor cache key>`, `graph`, `communities` and `merge_exclusions`. A version grows
        whenever that content changes, so a writer can check that its input is still current.
        """

    @abstractmethod
    def replace_graph(self, tenant: str, memory: str, graph: ResolvedGraph, based_on: tuple[str, int] | None = None) -> bool:
        """Make `graph` the namespace's resolved graph; return False when it equals the stored one.

        With `based_on=(name, version)`, raise `ConcurrentUpdateError` and write nothing when that
        content version has changed since the caller read its input.
        """

    @abstractmethod
    def get_entities(self, tenant: str, memory: str, entity_ids: Sequence[str] | None = None) -> list[Entity]:
        """Return entities with these ids (all when None), sorted by id."""

    @abstractmethod
    def find_entities(self, tenant: str, memory: str, name: str, limit: int = 20) -> list[Entity]:
        """Return entities whose name or an alias equals `name` ignoring case, then those containing it."""

    @abstractmethod
    def get_relations(self, tenant: str, memory: str) -> list[Relation]:
        """Return every relation of the namespace, sorted by id."""

    @abstractmethod
    def get_mention_links(self, tenant: str, memory: str, chunk_ids: Sequence[str]) -> list[MentionLink]:
        """Return the resolved mentions found in these chunks."""

    @abstractmethod
    def neighbourhood(self, tenant: str, memory: str, entity_ids: Sequence[str], hops: int = 1, limit: int = 200) -> Neighbourhood:
        """Return entities within `hops` relations of `entity_ids` and the relations among them, at most `limit` entities."""

    # Communities

    @abstractmethod
    def replace_communities(
        self, tenant: str, memory: str, communities: Sequence[Community], based_on: tuple[str, int] | None = None
    ) -> bool:
        """Make `communities` the namespace's communities; return False when they equal the stored ones.

        `based_on` works as in `replace_graph`.
        """

    @abstractmethod
    def get_communities(
        self, tenant: str, memory: str, *, level: int | None = None, entity_ids: Sequence[str] | None = None
    ) -> list[Community]:
        """Return communities at `level` (all levels when None) that contain any of `entity_ids` (all when None)."""

    # Listing and deletes

    @abstractmethod
    def list_batches(self, tenant: str, memory: str) -> list[str]:
        """Return the ids of every batch with at least one document or rejection, sorted."""

    @abstractmethod
    def list_batch_namespaces(self, batch_id: str) -> list[tuple[str, str]]:
        """Return every (tenant, memory) with documents in `batch_id`, sorted.

        A Kafka batch carries documents of several namespaces, so the stages after `raw_documents`
        ask the store which namespaces to process. This is the one read that crosses tenants.
        """

    @abstractmethod
    def list_extractors(self, tenant: str, memory: str) -> list[str]:
        """Return the cache keys of every extractor with stored results, sorted."""

    @abstractmethod
    def list_embedding_models(self, tenant: str) -> list[str]:
        """Return the keys of every model with stored vectors for the tenant, sorted."""

    @abstractmethod
    def delete_documents(self, tenant: str, memory: str, document_ids: Sequence[str]) -> int:
        """Delete documents with their batch membership, chunks, extraction results and failures, and mention links; return how many existed.

        The resolved graph and communities keep their entities until the next resolution run,
        which recomputes them from the remaining extraction results. Cached vectors stay, since
        other chunks of the tenant may share them.
        """

    @abstractmethod
    def delete_namespace(self, tenant: str, memory: str) -> None:
        """Delete everything stored for the namespace except the tenant's cached vectors."""

    # Statistics and integrity

    @abstractmethod
    def counts(self, tenant: str, memory: str) -> dict[str, int]:
        """Return the number of stored objects of each kind in the namespace."""

    @abstractmethod
    def graph_version(self, tenant: str, memory: str) -> int:
        """Return a number that grows whenever the namespace's stored content or the tenant's cached vectors change."""

    @abstractmethod
    def count_chunks_without_embedding(self, tenant: str, memory: str, model: str, document_ids: Sequence[str] | None = None) -> int:
        """Return how many chunks (of these documents, or all) have no `model` vector."""

    @abstractmethod
    def count_dangling_relations(self, tenant: str, memory: str) -> int:
        """Return how many relations name a source or target entity that does not exist."""

    @abstractmethod
    def count_entities_without_community(self, tenant: str, memory: str) -> dict[int, int]:
        """Return, per community level, how many entities belong to no community of that level."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    # LLM responses and extraction failures

    @abstractmethod
    def get_llm_responses(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        """Return the cached LLM responses (JSON text) of the keys that have one.

        Keys come from `graphmem_core.llm.cache.response_key`. Like vectors, responses are cached
        per tenant, so every memory of the tenant shares them, and `delete_namespace` keeps them.
        """

    @abstractmethod
    def upsert_llm_responses(self, tenant: str, responses: Mapping[str, str]) -> int:
        """Cache LLM responses by key; return how many were new. On conflict the stored response is kept."""

    @abstractmethod
    def record_extraction_failures(self, tenant: str, memory: str, extractor: str, failures: Sequence[ExtractionFailure]) -> None:
        """Store why `extractor` could not process chunks; a second failure of the same chunk replaces the reason."""

    @abstractmethod
    def get_extraction_failures(
        self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str] | None = None
    ) -> list[ExtractionFailure]:
        """Return the recorded failures of `extractor` for these chunks (all when None), sorted by chunk id."""

    @abstractmethod
    def clear_extraction_failures(self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str]) -> int:
        """Delete the failures of `extractor` for these chunks, once they have a result; return how many existed."""

    # Merge records and exclusions of entity resolution

    @abstractmethod
    def replace_merge_records(
        self,
        tenant: str,
        memory: str,
        records: Sequence[MergeRecord],
        settings: str,
        based_on: tuple[str, int] | None = None,
    ) -> None:
        """Make `records` the merge records of the namespace's resolved graph, with the resolver `settings` behind them.

        `based_on` works as in `replace_graph`: resolution passes the graph version it wrote, so
        records never describe another run's graph.
        """

    @abstractmethod
    def get_merge_records(self, tenant: str, memory: str, entity_ids: Sequence[str] | None = None) -> list[MergeRecord]:
        """Return the merge records of these entities (all when None), sorted by id."""

    @abstractmethod
    def get_merge_settings(self, tenant: str, memory: str) -> str | None:
        """Return the `settings` stored with the merge records, or None when none were stored."""

    @abstractmethod
    def add_merge_exclusions(self, tenant: str, memory: str, exclusions: Sequence[MergeExclusion]) -> int:
        """Store pairs of names that must never merge; return how many were new.

        On conflict the stored exclusion is kept. Adding any bumps the `merge_exclusions` content version.
        """

    @abstractmethod
    def delete_merge_exclusions(self, tenant: str, memory: str, exclusion_ids: Sequence[str]) -> int:
        """Delete exclusions by id; return how many existed. Deleting any bumps the `merge_exclusions` content version."""

    @abstractmethod
    def get_merge_exclusions(self, tenant: str, memory: str) -> list[MergeExclusion]:
        """Return every exclusion of the namespace, sorted by id."""
