"""The Neo4j graph store: the same `GraphStore` contract over a Neo4j 5 server.

Graph model. Every node carries `tenant`, `memory` and `id`, unique together per label:

    (:Batch)-[:CONTAINS]->(:Document)-[:HAS_CHUNK]->(:Chunk)
    (:Entity)-[:MENTIONED_IN {start, end, text}]->(:Chunk)
    (:Entity)-[:RELATES {id, type, weight, provenance}]->(:Entity)
    (:Entity)-[:IN_COMMUNITY]->(:Community)-[:CHILD_OF]->(:Community)
    (:Rejection), (:Extraction), (:Version), and (:Embedding {tenant, model, text_hash})

Vectors are cached on `:Embedding` nodes by text hash and copied onto the chunks and entities
that share that text, where one Neo4j vector index per model serves search. Every write is a
batched `UNWIND` statement in explicit transactions of `batch_size` rows. Every statement is
parameterised and filtered by tenant and memory, and labels and property names never come from input.
"""

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from neo4j import Driver, GraphDatabase, ManagedTransaction, RoutingControl
from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired, TransientError

from graphmem_core.errors import ConcurrentUpdateError, RetryableStoreError, StoreError
from graphmem_core.ids import content_hash
from graphmem_core.models import (
    Chunk,
    ChunkHit,
    Community,
    CommunitySummary,
    Document,
    Entity,
    EntityType,
    ExtractionFailure,
    ExtractionResult,
    MentionLink,
    MergeExclusion,
    MergeRecord,
    Neighbourhood,
    RejectedInput,
    Relation,
    RelationEvidence,
    ResolvedGraph,
)
from graphmem_core.stores.base import GraphStore

logger = logging.getLogger(__name__)

BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")

SCHEMA_LABELS = (
    "Batch", "Document", "Chunk", "Entity", "Community", "Rejection", "Extraction", "Version", "ExtractionFailure",
    "MergeRecord", "MergeExclusion",
)

# Connection attempts when the store opens: a server that is still starting gets about 15 s.
_CONNECT_ATTEMPTS = 6
_CONNECT_BACKOFF_SECONDS = 0.5

# The driver retries transient errors of one managed transaction with backoff for this long.
_TRANSACTION_RETRY_SECONDS = 30.0

# Vector search first reads this many index candidates per requested hit.
_SEARCH_OVERSAMPLING = 4

# Past this many index candidates a namespace is a small part of the index, and an exact scan of
# its own chunks is cheaper than reading more candidates.
_MAX_SEARCH_CANDIDATES = 20_000

_T = TypeVar("_T")


def _batches(rows: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for offset in range(0, len(rows), size):
        yield rows[offset : offset + size]


def vector_property(model: str) -> str:
    """Return the name of the node property that contains `model` vectors: a fixed prefix and a hash, never user text."""
    return "vec_" + content_hash(model)[:16]


def _vector_index_name(label: str, model: str) -> str:
    return f"graphmem_{label.lower()}_{vector_property(model)}"


class Neo4jGraphStore(GraphStore):
    """`GraphStore` over a Neo4j 5 server; safe to share between threads, as the driver is."""

    def __init__(
        self,
        uri: str,
        *,
        user: str,
        password: str,
        database: str = "neo4j",
        batch_size: int = 2000,
        connect_attempts: int = _CONNECT_ATTEMPTS,
    ) -> None:
        if batch_size < 1:
            raise StoreError(f"Neo4j batch size {batch_size} is invalid: set GRAPHMEM_NEO4J_BATCH_SIZE to 1 or more")
        self.uri = uri
        self.database = database
        self.batch_size = batch_size
        self._vector_indexes: set[str] = set()
        self._connect_attempts = max(connect_attempts, 1)

        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in BOLT_SCHEMES:
            raise StoreError(f"invalid Neo4j URI {uri!r}: use a Bolt address such as bolt://127.0.0.1:7687 or neo4j://host:7687")

        logger.info("opening Neo4j graph store at %s, database %s", uri, database)
        try:
            self._driver: Driver = GraphDatabase.driver(
                uri, auth=(user, password), connection_timeout=5.0, max_transaction_retry_time=_TRANSACTION_RETRY_SECONDS
            )
        except (ValueError, DriverError) as error:
            raise StoreError(f"invalid Neo4j URI {uri!r}: {error}; use bolt://host:7687 or neo4j://host:7687") from error
        self._connect()
        self._create_schema()

    # Connection and transactions

    def _connect(self) -> None:
        for attempt in range(1, self._connect_attempts + 1):
            try:
                self._driver.verify_connectivity()
                return
            except AuthError as error:
                self._driver.close()
                raise StoreError(
                    f"Neo4j at {self.uri} rejected the credentials: check GRAPHMEM_NEO4J_USER and GRAPHMEM_NEO4J_PASSWORD"
                ) from error
            except (ServiceUnavailable, SessionExpired, OSError) as error:
                if attempt == self._connect_attempts:
                    self._driver.close()
                    raise RetryableStoreError(
                        f"could not connect to Neo4j at {self.uri} after {attempt} attempts: {error}. "
                        "Start it (scripts/services/services start neo4j) or set GRAPHMEM_NEO4J_URI"
                    ) from error
                delay = _CONNECT_BACKOFF_SECONDS * 2 ** (attempt - 1)
                logger.warning("Neo4j at %s is not reachable (%s), retry %d of %d in %.1f s", self.uri, error, attempt, self._connect_attempts - 1, delay)
                time.sleep(delay)
            except Neo4jError as error:
                self._driver.close()
                raise StoreError(
                    f"Neo4j at {self.uri} rejected database {self.database!r}: {error.message}. Check GRAPHMEM_NEO4J_DATABASE"
                ) from error

    def _translate(self, error: Exception, action: str) -> StoreError:
        if isinstance(error, (ServiceUnavailable, SessionExpired, TransientError)):
            return RetryableStoreError(f"{action} on Neo4j at {self.uri} failed after retries: {error}; retry the run")
        message = getattr(error, "message", None) or str(error)
        return StoreError(f"{action} on Neo4j at {self.uri} failed: {message}")

    def _read(self, query: str, **parameters: Any) -> list[Any]:
        """Run one read query with the driver's retries and return its records."""
        try:
            records, _, _ = self._driver.execute_query(
                query, parameters, database_=self.database, routing_=RoutingControl.READ
            )
        except (Neo4jError, DriverError) as error:
            raise self._translate(error, "a read") from error
        return records

    def _write(self, work: Callable[[ManagedTransaction], _T], action: str) -> _T:
        """Run `work` in one explicit write transaction that the driver retries on transient errors."""
        try:
            with self._driver.session(database=self.database) as session:
                return session.execute_write(work)
        except (Neo4jError, DriverError) as error:
            raise self._translate(error, action) from error

    def _write_rows(self, query: str, rows: Sequence[Mapping[str, Any]], action: str, **parameters: Any) -> int:
        """Run `query` over `rows` in transactions of `batch_size`; return the nodes and relationships it created."""
        started = time.perf_counter()
        created = 0
        for batch in _batches(rows, self.batch_size):

            def work(tx: ManagedTransaction, batch: Sequence[Mapping[str, Any]] = batch) -> int:
                counters = tx.run(query, rows=list(batch), **parameters).consume().counters
                return counters.nodes_created + counters.relationships_created

            created += self._write(work, action)
        self._log_step(action, len(rows), started)
        return created

    @staticmethod
    def _log_step(action: str, rows: int, started: float) -> None:
        """Log the duration of one batched write; the extra fields let a benchmark sum the steps."""
        if not rows:
            return
        seconds = time.perf_counter() - started
        logger.debug("%s: %d rows in %.3f s", action, rows, seconds, extra={"step": action, "rows": rows, "seconds": seconds})

    def _write_rows_mapping(self, query: str, rows: Sequence[Mapping[str, Any]], action: str, **parameters: Any) -> dict[str, str]:
        """Run `query`, which returns `key` and `value` columns, over `rows` in transactions of `batch_size`; return the pairs."""
        started = time.perf_counter()
        pairs: dict[str, str] = {}
        for batch in _batches(rows, self.batch_size):

            def work(tx: ManagedTransaction, batch: Sequence[Mapping[str, Any]] = batch) -> dict[str, str]:
                return {record["key"]: record["value"] for record in tx.run(query, rows=list(batch), **parameters)}

            pairs.update(self._write(work, action))
        self._log_step(action, len(rows), started)
        return pairs

    def _run_in_batches(self, query: str, action: str, **parameters: Any) -> None:
        """Run a `CALL { … } IN TRANSACTIONS` statement, which needs an auto-commit transaction."""
        try:
            with self._driver.session(database=self.database) as session:
                session.run(query, parameters).consume()
        except (Neo4jError, DriverError) as error:
            raise self._translate(error, action) from error

    def _create_schema(self) -> None:
        statements = [
            f"CREATE CONSTRAINT graphmem_{label.lower()}_key IF NOT EXISTS FOR (n:{label}) REQUIRE (n.tenant, n.memory, n.id) IS UNIQUE"
            for label in SCHEMA_LABELS
        ]
        statements += [
            "CREATE CONSTRAINT graphmem_embedding_key IF NOT EXISTS FOR (n:Embedding) REQUIRE (n.tenant, n.model, n.text_hash) IS UNIQUE",
            "CREATE CONSTRAINT graphmem_llm_response_key IF NOT EXISTS FOR (n:LLMResponse) REQUIRE (n.tenant, n.key) IS UNIQUE",
            "CREATE INDEX graphmem_extraction_failure_chunk IF NOT EXISTS FOR (n:ExtractionFailure) ON (n.tenant, n.memory, n.chunk_id)",
            "CREATE INDEX graphmem_batch_id IF NOT EXISTS FOR (n:Batch) ON (n.id)",
            "CREATE INDEX graphmem_chunk_document IF NOT EXISTS FOR (n:Chunk) ON (n.tenant, n.memory, n.document_id)",
            "CREATE INDEX graphmem_chunk_text_hash IF NOT EXISTS FOR (n:Chunk) ON (n.tenant, n.text_hash)",
            "CREATE INDEX graphmem_entity_name IF NOT EXISTS FOR (n:Entity) ON (n.tenant, n.memory, n.name_lower)",
            "CREATE INDEX graphmem_entity_name_hash IF NOT EXISTS FOR (n:Entity) ON (n.tenant, n.name_hash)",
            "CREATE INDEX graphmem_extraction_chunk IF NOT EXISTS FOR (n:Extraction) ON (n.tenant, n.memory, n.chunk_id)",
            "CREATE INDEX graphmem_merge_record_entity IF NOT EXISTS FOR (n:MergeRecord) ON (n.tenant, n.memory, n.entity_id)",
            # Earlier schemas indexed RELATES.id, which no query reads and every relation write paid for.
            "DROP INDEX graphmem_relates_id IF EXISTS",
        ]
        try:
            with self._driver.session(database=self.database) as session:
                for statement in statements:
                    session.run(statement).consume()
        except (Neo4jError, DriverError) as error:
            raise self._translate(error, "creating constraints and indexes") from error

    # Versions

    def _version(self, tenant: str, memory: str, name: str) -> int:
        records = self._read("MATCH (v:Version {tenant: $t, memory: $m, id: $name}) RETURN v.value AS value", t=tenant, m=memory, name=name)
        return int(records[0]["value"]) if records else 0

    def content_version(self, tenant: str, memory: str, name: str) -> int:
        return self._version(tenant, memory, name)

    @staticmethod
    def _bump_version(tx: ManagedTransaction, tenant: str, memory: str, name: str, fingerprint: str | None = None) -> None:
        tx.run(
            "MERGE (v:Version {tenant: $t, memory: $m, id: $name}) ON CREATE SET v.value = 0 "
            "SET v.value = v.value + 1, v.fingerprint = coalesce($fingerprint, v.fingerprint)",
            t=tenant,
            m=memory,
            name=name,
            fingerprint=fingerprint,
        ).consume()

    @staticmethod
    def _locked_version(tx: ManagedTransaction, tenant: str, memory: str, name: str) -> tuple[int, str | None]:
        """Read a version under a write lock on its node, so that two writers of `name` run one after the other."""
        record = tx.run(
            "MERGE (v:Version {tenant: $t, memory: $m, id: $name}) ON CREATE SET v.value = 0 "
            "SET v._lock = coalesce(v._lock, 0) + 1 RETURN v.value AS value, v.fingerprint AS fingerprint",
            t=tenant,
            m=memory,
            name=name,
        ).single()
        assert record is not None
        return int(record["value"]), record["fingerprint"]

    @staticmethod
    def _check_based_on(tx: ManagedTransaction, tenant: str, memory: str, based_on: tuple[str, int] | None) -> None:
        if based_on is None:
            return
        name, expected = based_on
        record = tx.run("MATCH (v:Version {tenant: $t, memory: $m, id: $name}) RETURN v.value AS value", t=tenant, m=memory, name=name).single()
        current = int(record["value"]) if record else 0
        if current != expected:
            raise ConcurrentUpdateError(
                f"{name} of {tenant}/{memory} changed from version {expected} to {current} while this write was computed: compute it again"
            )

    # Documents and batches

    def upsert_documents(self, tenant: str, memory: str, batch_id: str, documents: Sequence[Document]) -> int:
        rows = [
            {
                "id": d.id,
                "text": d.text,
                "title": d.title,
                "source": d.source,
                "metadata": json.dumps(d.metadata, sort_keys=True, ensure_ascii=False),
            }
            for d in documents
        ]
        inserted = 0
        for batch in _batches(rows, self.batch_size):

            def work(tx: ManagedTransaction, batch: Sequence[Mapping[str, Any]] = batch) -> int:
                counters = tx.run(
                    "UNWIND $rows AS row "
                    "MERGE (d:Document {tenant: $t, memory: $m, id: row.id}) "
                    "ON CREATE SET d.text = row.text, d.title = row.title, d.source = row.source, d.metadata = row.metadata",
                    rows=list(batch),
                    t=tenant,
                    m=memory,
                ).consume().counters
                tx.run(
                    "MERGE (b:Batch {tenant: $t, memory: $m, id: $batch_id}) WITH b "
                    "UNWIND $ids AS id MATCH (d:Document {tenant: $t, memory: $m, id: id}) MERGE (b)-[:CONTAINS]->(d)",
                    ids=[row["id"] for row in batch],
                    t=tenant,
                    m=memory,
                    batch_id=batch_id,
                ).consume()
                if counters.nodes_created:
                    self._bump_version(tx, tenant, memory, "documents")
                return counters.nodes_created

            inserted += self._write(work, f"storing documents of batch {batch_id}")
        return inserted

    def record_rejections(self, tenant: str, memory: str, batch_id: str, rejected: Sequence[RejectedInput]) -> None:
        rows = [{"id": content_hash(batch_id, r.source), "source": r.source, "reason": r.reason} for r in rejected]
        self._write_rows(
            "UNWIND $rows AS row MERGE (r:Rejection {tenant: $t, memory: $m, id: row.id}) "
            "SET r.batch_id = $batch_id, r.source = row.source, r.reason = row.reason",
            rows,
            f"storing rejections of batch {batch_id}",
            t=tenant,
            m=memory,
            batch_id=batch_id,
        )

    def get_rejections(self, tenant: str, memory: str, batch_id: str) -> list[RejectedInput]:
        records = self._read(
            "MATCH (r:Rejection {tenant: $t, memory: $m, batch_id: $batch_id}) RETURN r.source AS source, r.reason AS reason ORDER BY source",
            t=tenant,
            m=memory,
            batch_id=batch_id,
        )
        return [RejectedInput(source=r["source"], reason=r["reason"]) for r in records]

    _DOCUMENT_FIELDS = "d.id AS id, d.text AS text, d.title AS title, d.source AS source, d.metadata AS metadata"

    @staticmethod
    def _document(tenant: str, memory: str, record: Any) -> Document:
        return Document(
            id=record["id"],
            tenant=tenant,
            memory=memory,
            text=record["text"],
            title=record["title"],
            source=record["source"],
            metadata=json.loads(record["metadata"]),
        )

    def get_batch_documents(self, tenant: str, memory: str, batch_id: str) -> list[Document]:
        records = self._read(
            f"MATCH (:Batch {{tenant: $t, memory: $m, id: $batch_id}})-[:CONTAINS]->(d:Document) RETURN {self._DOCUMENT_FIELDS} ORDER BY id",
            t=tenant,
            m=memory,
            batch_id=batch_id,
        )
        return [self._document(tenant, memory, r) for r in records]

    def get_documents(self, tenant: str, memory: str, document_ids: Sequence[str]) -> list[Document]:
        records = self._read(
            f"UNWIND $ids AS id MATCH (d:Document {{tenant: $t, memory: $m, id: id}}) RETURN {self._DOCUMENT_FIELDS} ORDER BY id",
            t=tenant,
            m=memory,
            ids=sorted(set(document_ids)),
        )
        return [self._document(tenant, memory, r) for r in records]

    # Chunks and vectors

    def upsert_chunks(self, tenant: str, memory: str, chunks: Sequence[Chunk]) -> int:
        rows = [
            {
                "id": c.id,
                "document_id": c.document_id,
                "index": c.index,
                "text": c.text,
                "start": c.start,
                "end": c.end,
                "token_count": c.token_count,
                "text_hash": c.text_hash,
            }
            for c in chunks
        ]
        models = self.list_embedding_models(tenant)
        inserted = 0
        for batch in _batches(rows, self.batch_size):

            def work(tx: ManagedTransaction, batch: Sequence[Mapping[str, Any]] = batch) -> int:
                # A chunk node may already exist without text when a mention link named it first.
                record = tx.run(
                    "UNWIND $rows AS row "
                    "MERGE (c:Chunk {tenant: $t, memory: $m, id: row.id}) "
                    "WITH c, row WHERE c.text IS NULL "
                    "SET c.document_id = row.document_id, c.index = row.index, c.text = row.text, c.start = row.start, "
                    "c.end = row.end, c.token_count = row.token_count, c.text_hash = row.text_hash "
                    "WITH c OPTIONAL MATCH (d:Document {tenant: $t, memory: $m, id: c.document_id}) "
                    "FOREACH (_ IN CASE WHEN d IS NULL THEN [] ELSE [1] END | MERGE (d)-[:HAS_CHUNK]->(c)) "
                    "RETURN count(c) AS inserted",
                    rows=list(batch),
                    t=tenant,
                    m=memory,
                ).single()
                count = int(record["inserted"]) if record else 0
                for model in models:
                    tx.run(
                        f"UNWIND $ids AS id MATCH (c:Chunk {{tenant: $t, memory: $m, id: id}}) WHERE c.{vector_property(model)} IS NULL "
                        f"MATCH (e:Embedding {{tenant: $t, model: $model, text_hash: c.text_hash}}) SET c.{vector_property(model)} = e.vector",
                        ids=[row["id"] for row in batch],
                        t=tenant,
                        m=memory,
                        model=model,
                    ).consume()
                if count:
                    self._bump_version(tx, tenant, memory, "chunks")
                return count

            inserted += self._write(work, "storing chunks")
        return inserted

    _CHUNK_FIELDS = (
        "c.id AS id, c.document_id AS document_id, c.index AS index, c.text AS text, c.start AS start, "
        "c.end AS end, c.token_count AS token_count, c.text_hash AS text_hash"
    )

    _CHUNK_MAP = (
        "id: c.id, document_id: c.document_id, index: c.index, text: c.text, start: c.start, "
        "end: c.end, token_count: c.token_count, text_hash: c.text_hash"
    )

    @staticmethod
    def _chunk(tenant: str, memory: str, record: Any) -> Chunk:
        return Chunk(
            id=record["id"],
            document_id=record["document_id"],
            tenant=tenant,
            memory=memory,
            index=record["index"],
            text=record["text"],
            start=record["start"],
            end=record["end"],
            token_count=record["token_count"],
            text_hash=record["text_hash"],
        )

    def get_chunks(
        self,
        tenant: str,
        memory: str,
        *,
        document_ids: Sequence[str] | None = None,
        chunk_ids: Sequence[str] | None = None,
    ) -> list[Chunk]:
        if chunk_ids is not None:
            query = "UNWIND $chunk_ids AS id MATCH (c:Chunk {tenant: $t, memory: $m, id: id}) WHERE c.text IS NOT NULL"
        elif document_ids is not None:
            query = "UNWIND $document_ids AS document_id MATCH (c:Chunk {tenant: $t, memory: $m, document_id: document_id})"
        else:
            query = "MATCH (c:Chunk {tenant: $t, memory: $m}) WHERE c.text IS NOT NULL"
        if chunk_ids is not None and document_ids is not None:
            query += " AND c.document_id IN $document_ids"
        records = self._read(
            f"{query} RETURN {self._CHUNK_FIELDS} ORDER BY document_id, index",
            t=tenant,
            m=memory,
            chunk_ids=sorted(set(chunk_ids)) if chunk_ids is not None else None,
            document_ids=sorted(set(document_ids)) if document_ids is not None else None,
        )
        return [self._chunk(tenant, memory, r) for r in records]

    def get_embeddings(self, tenant: str, model: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        records = self._read(
            "UNWIND $hashes AS h MATCH (e:Embedding {tenant: $t, model: $model, text_hash: h}) RETURN e.text_hash AS text_hash, e.vector AS vector",
            t=tenant,
            model=model,
            hashes=sorted(set(text_hashes)),
        )
        return {r["text_hash"]: np.asarray(r["vector"], dtype=np.float32) for r in records}

    def upsert_embeddings(self, tenant: str, model: str, vectors: Mapping[str, np.ndarray]) -> int:
        rows = []
        dimension = None
        for text_hash, vector in vectors.items():
            array = np.asarray(vector, dtype=np.float32)
            if array.ndim != 1:
                raise StoreError(f"embedding for text hash {text_hash} has shape {array.shape}: pass one 1-D vector per text")
            dimension = int(array.shape[0])
            rows.append({"text_hash": text_hash, "vector": array.tolist()})
        if not rows:
            return 0
        self._ensure_vector_indexes(model, dimension)

        prop = vector_property(model)
        inserted = 0
        for batch in _batches(rows, self.batch_size):

            def work(tx: ManagedTransaction, batch: Sequence[Mapping[str, Any]] = batch) -> int:
                counters = tx.run(
                    "UNWIND $rows AS row MERGE (e:Embedding {tenant: $t, model: $model, text_hash: row.text_hash}) "
                    "ON CREATE SET e.vector = row.vector, e.dimension = size(row.vector)",
                    rows=list(batch),
                    t=tenant,
                    model=model,
                ).consume().counters
                # Copy each new vector onto the chunks and entities of the tenant with the same text.
                hashes = [row["text_hash"] for row in batch]
                tx.run(
                    f"UNWIND $hashes AS h MATCH (e:Embedding {{tenant: $t, model: $model, text_hash: h}}) "
                    f"MATCH (c:Chunk {{tenant: $t, text_hash: h}}) WHERE c.{prop} IS NULL SET c.{prop} = e.vector",
                    hashes=hashes,
                    t=tenant,
                    model=model,
                ).consume()
                tx.run(
                    f"UNWIND $hashes AS h MATCH (e:Embedding {{tenant: $t, model: $model, text_hash: h}}) "
                    f"MATCH (n:Entity {{tenant: $t, name_hash: h}}) WHERE n.{prop} IS NULL SET n.{prop} = e.vector",
                    hashes=hashes,
                    t=tenant,
                    model=model,
                ).consume()
                if counters.nodes_created:
                    self._bump_version(tx, tenant, "*", f"embeddings:{model}")
                return counters.nodes_created

            inserted += self._write(work, f"storing {model} vectors")
        return inserted

    def _ensure_vector_indexes(self, model: str, dimension: int | None) -> None:
        """Create the chunk and entity vector indexes of `model` once; Neo4j fills them in the background."""
        prop = vector_property(model)
        names = {label: _vector_index_name(label, model) for label in ("Chunk", "Entity")}
        if all(name in self._vector_indexes for name in names.values()) or dimension is None:
            return
        try:
            with self._driver.session(database=self.database) as session:
                for label, name in names.items():
                    session.run(
                        f"CREATE VECTOR INDEX {name} IF NOT EXISTS FOR (n:{label}) ON (n.{prop}) "
                        "OPTIONS {indexConfig: {`vector.dimensions`: $dimension, `vector.similarity_function`: 'cosine'}}",
                        dimension=dimension,
                    ).consume()
                session.run("CALL db.awaitIndexes(300)").consume()
        except (Neo4jError, DriverError) as error:
            raise self._translate(error, f"creating the vector indexes of {model}") from error
        logger.info("vector indexes %s ready on Neo4j (dimension %d)", ", ".join(sorted(names.values())), dimension)
        self._vector_indexes.update(names.values())

    def prepare_search(self, tenant: str, memory: str, model: str) -> None:
        records = self._read("MATCH (e:Embedding {tenant: $t, model: $model}) RETURN e.dimension AS dimension LIMIT 1", t=tenant, model=model)
        if records:
            self._ensure_vector_indexes(model, int(records[0]["dimension"]))

    def search_chunks(self, tenant: str, memory: str, model: str, query: np.ndarray, top_k: int) -> list[ChunkHit]:
        index = _vector_index_name("Chunk", model)
        prop = vector_property(model)
        vector = np.asarray(query, dtype=np.float32).tolist()
        if index not in self._vector_indexes:
            self.prepare_search(tenant, memory, model)
            if index not in self._vector_indexes:
                return []

        # The index spans every namespace and the namespace filter runs after it, so read more
        # candidates while the index returned as many as asked and too few of them belong here.
        candidates = top_k * _SEARCH_OVERSAMPLING
        while True:
            # The index scores quantised vectors, so the candidates are scored again on the stored vectors.
            record = self._read(
                "CALL db.index.vector.queryNodes($index, $candidates, $vector) YIELD node AS c "
                "WITH count(*) AS raw, collect(CASE WHEN c.tenant = $t AND c.memory = $m THEN c END) AS matched "
                f"RETURN raw, [c IN matched | {{{self._CHUNK_MAP}, score: vector.similarity.cosine(c.{prop}, $vector)}}] AS hits",
                index=index,
                candidates=candidates,
                vector=vector,
                t=tenant,
                m=memory,
            )[0]
            hits = sorted(record["hits"], key=lambda hit: (-hit["score"], hit["id"]))[:top_k]
            if len(hits) >= top_k or record["raw"] < candidates:
                break
            if candidates >= _MAX_SEARCH_CANDIDATES:
                logger.info("too few %s/%s chunks among the nearest of the %s vector index, so the namespace is scanned instead", tenant, memory, model)
                hits = self._exact_search(tenant, memory, model, vector, top_k)
                break
            candidates = min(candidates * 8, _MAX_SEARCH_CANDIDATES)

        titles = {d.id: d.title for d in self.get_documents(tenant, memory, sorted({hit["document_id"] for hit in hits}))}
        # Neo4j scores cosine similarity as (1 + cos) / 2; callers get the cosine itself, as from libSQL.
        return [
            ChunkHit(chunk=self._chunk(tenant, memory, hit), score=2.0 * float(hit["score"]) - 1.0, document_title=titles.get(hit["document_id"]))
            for hit in hits
        ]

    def _exact_search(self, tenant: str, memory: str, model: str, vector: list[float], top_k: int) -> list[Any]:
        prop = vector_property(model)
        records = self._read(
            f"MATCH (c:Chunk {{tenant: $t, memory: $m}}) WHERE c.{prop} IS NOT NULL "
            f"WITH c, vector.similarity.cosine(c.{prop}, $vector) AS score ORDER BY score DESC LIMIT $top_k "
            f"RETURN {{{self._CHUNK_MAP}, score: score}} AS hit",
            t=tenant,
            m=memory,
            vector=vector,
            top_k=top_k,
        )
        return [r["hit"] for r in records]

    # Extraction

    def upsert_extractions(self, tenant: str, memory: str, extractor: str, results: Sequence[ExtractionResult]) -> int:
        rows = [{"id": content_hash(extractor, r.chunk_id), "chunk_id": r.chunk_id, "result": r.model_dump_json()} for r in results]
        changed = 0
        for batch in _batches(rows, self.batch_size):

            def work(tx: ManagedTransaction, batch: Sequence[Mapping[str, Any]] = batch) -> int:
                record = tx.run(
                    "UNWIND $rows AS row MERGE (x:Extraction {tenant: $t, memory: $m, id: row.id}) "
                    "WITH x, row WHERE x.result IS NULL OR x.result <> row.result "
                    "SET x.extractor = $extractor, x.chunk_id = row.chunk_id, x.result = row.result RETURN count(x) AS changed",
                    rows=list(batch),
                    t=tenant,
                    m=memory,
                    extractor=extractor,
                ).single()
                count = int(record["changed"]) if record else 0
                if count:
                    self._bump_version(tx, tenant, memory, f"extractions:{extractor}")
                return count

            changed += self._write(work, f"storing {extractor} extraction results")
        return changed

    def get_extracted_chunk_ids(self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str]) -> set[str]:
        records = self._read(
            "UNWIND $ids AS id MATCH (x:Extraction {tenant: $t, memory: $m, id: id}) RETURN x.chunk_id AS chunk_id",
            t=tenant,
            m=memory,
            ids=[content_hash(extractor, chunk_id) for chunk_id in set(chunk_ids)],
        )
        return {r["chunk_id"] for r in records}

    def iter_extractions(self, tenant: str, memory: str, extractor: str) -> Iterator[ExtractionResult]:
        records = self._read(
            "MATCH (x:Extraction {tenant: $t, memory: $m, extractor: $extractor}) RETURN x.result AS result ORDER BY x.chunk_id",
            t=tenant,
            m=memory,
            extractor=extractor,
        )
        for record in records:
            yield ExtractionResult.model_validate_json(record["result"])

    # Resolved graph

    def replace_graph(self, tenant: str, memory: str, graph: ResolvedGraph, based_on: tuple[str, int] | None = None) -> bool:
        entities = sorted(graph.entities, key=lambda e: e.id)
        relations = sorted(graph.relations, key=lambda r: r.id)
        links = sorted(set(graph.mention_links), key=lambda m: (m.chunk_id, m.start, m.end, m.entity_id))
        fingerprint = content_hash(ResolvedGraph(entities=entities, relations=relations, mention_links=links).model_dump_json())

        def check(tx: ManagedTransaction) -> bool:
            self._check_based_on(tx, tenant, memory, based_on)
            _, stored = self._locked_version(tx, tenant, memory, "graph")
            return stored == fingerprint

        if self._write(check, "checking the stored graph version"):
            return False

        # NOTE: a graph larger than one batch is written in several transactions. A reader may see
        # part of the new graph until the last one commits, which sets the fingerprint.
        stored = self._remove_stale_graph(tenant, memory, {e.id for e in entities})
        entity_nodes = self._write_entities(tenant, memory, entities, stored)

        # An endpoint missing from the entity list becomes a placeholder node without a name, which
        # keeps the relation as written and shows up in `count_dangling_relations`.
        missing = {endpoint for r in relations for endpoint in (r.source_id, r.target_id)} | {k.entity_id for k in links}
        entity_nodes.update(
            self._write_rows_mapping(
                "UNWIND $rows AS row MERGE (e:Entity {tenant: $t, memory: $m, id: row.id}) RETURN row.id AS key, elementId(e) AS value",
                [{"id": entity_id} for entity_id in sorted(missing - entity_nodes.keys())],
                "storing placeholder entities",
                t=tenant,
                m=memory,
            )
        )
        relation_rows = [
            {
                "source": entity_nodes[r.source_id],
                "target": entity_nodes[r.target_id],
                "id": r.id,
                "type": r.type,
                "weight": r.weight,
                "provenance": json.dumps([p.model_dump() for p in r.provenance]),
            }
            for r in relations
        ]
        self._write_rows(
            "UNWIND $rows AS row MATCH (s) WHERE elementId(s) = row.source MATCH (o) WHERE elementId(o) = row.target "
            "CREATE (s)-[:RELATES {id: row.id, tenant: $t, memory: $m, type: row.type, weight: row.weight, provenance: row.provenance}]->(o)",
            relation_rows,
            "storing relations",
            t=tenant,
            m=memory,
        )

        # A chunk that is not stored yet gets a node without text, which `upsert_chunks` completes.
        link_chunk_ids = sorted({k.chunk_id for k in links})
        chunk_nodes = self._write_rows_mapping(
            "UNWIND $rows AS row MERGE (c:Chunk {tenant: $t, memory: $m, id: row.id}) RETURN row.id AS key, elementId(c) AS value",
            [{"id": chunk_id} for chunk_id in link_chunk_ids],
            "finding the chunks of mention links",
            t=tenant,
            m=memory,
        )
        links_by_chunk: dict[str, list[dict[str, Any]]] = {}
        for k in links:
            links_by_chunk.setdefault(k.chunk_id, []).append(
                {"entity": entity_nodes[k.entity_id], "start": k.start, "end": k.end, "text": k.text}
            )
        # One row per chunk, so the chunk is found once for all of its mentions.
        self._write_rows(
            "UNWIND $rows AS row MATCH (c) WHERE elementId(c) = row.chunk UNWIND row.links AS link "
            "MATCH (e) WHERE elementId(e) = link.entity CREATE (e)-[:MENTIONED_IN {start: link.start, end: link.end, text: link.text}]->(c)",
            [{"chunk": chunk_nodes[chunk_id], "links": chunk_links} for chunk_id, chunk_links in links_by_chunk.items()],
            "storing mention links",
            t=tenant,
            m=memory,
        )

        def finish(tx: ManagedTransaction) -> None:
            self._check_based_on(tx, tenant, memory, based_on)
            self._bump_version(tx, tenant, memory, "graph", fingerprint)

        self._write(finish, "recording the graph version")
        logger.info("stored resolved graph of %s/%s on Neo4j: %d entities, %d relations", tenant, memory, len(entities), len(relations))
        return True

    def _remove_stale_graph(self, tenant: str, memory: str, keep_entity_ids: set[str]) -> set[str]:
        """Delete every relation and mention link of the namespace and the entities not in `keep_entity_ids`; return the ids kept."""
        for pattern in ("(:Entity {tenant: $t, memory: $m})-[r:RELATES]->()", "(:Entity {tenant: $t, memory: $m})-[r:MENTIONED_IN]->()"):
            self._run_in_batches(
                f"MATCH {pattern} CALL (r) {{ DELETE r }} IN TRANSACTIONS OF $rows ROWS",
                "deleting the previous relations",
                t=tenant,
                m=memory,
                rows=self.batch_size,
            )
        stored = [r["id"] for r in self._read("MATCH (n:Entity {tenant: $t, memory: $m}) RETURN n.id AS id", t=tenant, m=memory)]
        stale = [{"id": entity_id} for entity_id in stored if entity_id not in keep_entity_ids]
        self._write_rows(
            "UNWIND $rows AS row MATCH (n:Entity {tenant: $t, memory: $m, id: row.id}) DETACH DELETE n",
            stale,
            "deleting entities of the previous graph",
            t=tenant,
            m=memory,
        )
        self._run_in_batches(
            "MATCH (c:Chunk {tenant: $t, memory: $m}) WHERE c.text IS NULL CALL (c) { DETACH DELETE c } IN TRANSACTIONS OF $rows ROWS",
            "deleting placeholder chunks",
            t=tenant,
            m=memory,
            rows=self.batch_size,
        )
        return set(stored) & keep_entity_ids

    def _write_entities(self, tenant: str, memory: str, entities: Sequence[Entity], stored: set[str]) -> dict[str, str]:
        """Update the entities that stay, keeping their community membership and vectors, and create the new ones.

        Returns the Neo4j element id of every entity, which later statements seek directly instead
        of looking the entity up in the (tenant, memory, id) index.
        """
        rows = [
            {
                "id": e.id,
                "name": e.name,
                "name_lower": e.name.lower(),
                "name_hash": content_hash(e.name),
                "type": e.type.value,
                "aliases": list(e.aliases),
                "aliases_lower": [alias.lower() for alias in e.aliases],
                "mention_count": e.mention_count,
            }
            for e in entities
        ]
        properties = (
            "e.name = row.name, e.name_lower = row.name_lower, e.name_hash = row.name_hash, e.type = row.type, "
            "e.aliases = row.aliases, e.aliases_lower = row.aliases_lower, e.mention_count = row.mention_count"
        )
        element_ids = self._write_rows_mapping(
            f"UNWIND $rows AS row MATCH (e:Entity {{tenant: $t, memory: $m, id: row.id}}) SET {properties} "
            "RETURN row.id AS key, elementId(e) AS value",
            [row for row in rows if row["id"] in stored],
            "updating entities",
            t=tenant,
            m=memory,
        )
        element_ids.update(
            self._write_rows_mapping(
                f"UNWIND $rows AS row CREATE (e:Entity {{tenant: $t, memory: $m, id: row.id}}) SET {properties} "
                "RETURN row.id AS key, elementId(e) AS value",
                [row for row in rows if row["id"] not in stored],
                "storing entities",
                t=tenant,
                m=memory,
            )
        )
        self._copy_entity_vectors(tenant, memory, self.list_embedding_models(tenant))
        return element_ids

    def _copy_entity_vectors(self, tenant: str, memory: str, models: Sequence[str]) -> None:
        for model in models:
            prop = vector_property(model)
            self._run_in_batches(
                f"MATCH (n:Entity {{tenant: $t, memory: $m}}) WHERE n.name IS NOT NULL AND n.{prop} IS NULL "
                "CALL (n) { MATCH (e:Embedding {tenant: $t, model: $model, text_hash: n.name_hash}) "
                f"SET n.{prop} = e.vector }} IN TRANSACTIONS OF $rows ROWS",
                f"copying {model} vectors onto entities",
                t=tenant,
                m=memory,
                model=model,
                rows=self.batch_size,
            )

    _ENTITY_FIELDS = "n.id AS id, n.name AS name, n.type AS type, n.aliases AS aliases, n.mention_count AS mention_count"

    @staticmethod
    def _entity(tenant: str, memory: str, record: Any) -> Entity:
        return Entity(
            id=record["id"],
            tenant=tenant,
            memory=memory,
            name=record["name"],
            type=EntityType(record["type"]),
            aliases=list(record["aliases"]),
            mention_count=record["mention_count"],
        )

    def get_entities(self, tenant: str, memory: str, entity_ids: Sequence[str] | None = None) -> list[Entity]:
        if entity_ids is None:
            query = "MATCH (n:Entity {tenant: $t, memory: $m}) WHERE n.name IS NOT NULL"
        else:
            query = "UNWIND $ids AS id MATCH (n:Entity {tenant: $t, memory: $m, id: id}) WHERE n.name IS NOT NULL"
        records = self._read(
            f"{query} RETURN {self._ENTITY_FIELDS} ORDER BY id",
            t=tenant,
            m=memory,
            ids=sorted(set(entity_ids)) if entity_ids is not None else None,
        )
        return [self._entity(tenant, memory, r) for r in records]

    def find_entities(self, tenant: str, memory: str, name: str, limit: int = 20) -> list[Entity]:
        lowered = name.lower()
        exact = self._read(
            "MATCH (n:Entity {tenant: $t, memory: $m}) WHERE n.name_lower = $name OR $name IN n.aliases_lower "
            f"RETURN {self._ENTITY_FIELDS} ORDER BY mention_count DESC, id LIMIT $limit",
            t=tenant,
            m=memory,
            name=lowered,
            limit=limit,
        )
        partial = self._read(
            "MATCH (n:Entity {tenant: $t, memory: $m}) WHERE n.name_lower CONTAINS $name "
            f"RETURN {self._ENTITY_FIELDS} ORDER BY mention_count DESC, id LIMIT $limit",
            t=tenant,
            m=memory,
            name=lowered,
            limit=limit,
        )
        seen: set[str] = set()
        result = []
        for record in [*exact, *partial]:
            if record["id"] not in seen:
                seen.add(record["id"])
                result.append(self._entity(tenant, memory, record))
        return result[:limit]

    _RELATION_FIELDS = (
        "r.id AS id, s.id AS source_id, o.id AS target_id, r.type AS type, r.weight AS weight, r.provenance AS provenance"
    )

    @staticmethod
    def _relation(tenant: str, memory: str, record: Any) -> Relation:
        return Relation(
            id=record["id"],
            tenant=tenant,
            memory=memory,
            source_id=record["source_id"],
            target_id=record["target_id"],
            type=record["type"],
            weight=record["weight"],
            provenance=[RelationEvidence(**item) for item in json.loads(record["provenance"])],
        )

    def get_relations(self, tenant: str, memory: str) -> list[Relation]:
        records = self._read(
            f"MATCH (s:Entity {{tenant: $t, memory: $m}})-[r:RELATES]->(o) RETURN {self._RELATION_FIELDS} ORDER BY id",
            t=tenant,
            m=memory,
        )
        return [self._relation(tenant, memory, r) for r in records]

    def get_mention_links(self, tenant: str, memory: str, chunk_ids: Sequence[str]) -> list[MentionLink]:
        records = self._read(
            "UNWIND $ids AS id MATCH (e:Entity)-[k:MENTIONED_IN]->(c:Chunk {tenant: $t, memory: $m, id: id}) "
            "RETURN e.id AS entity_id, c.id AS chunk_id, k.start AS start, k.end AS end, k.text AS text "
            "ORDER BY chunk_id, start, end, entity_id",
            t=tenant,
            m=memory,
            ids=sorted(set(chunk_ids)),
        )
        return [
            MentionLink(entity_id=r["entity_id"], chunk_id=r["chunk_id"], start=r["start"], end=r["end"], text=r["text"])
            for r in records
        ]

    def neighbourhood(self, tenant: str, memory: str, entity_ids: Sequence[str], hops: int = 1, limit: int = 200) -> Neighbourhood:
        reached: list[str] = list(dict.fromkeys(entity_ids))[:limit]
        known = set(reached)
        frontier = list(reached)
        relation_records: dict[str, Any] = {}

        # Breadth-first, one query per hop, in the same order as the libSQL store: heavier relations first.
        for _ in range(max(hops, 0)):
            if not frontier or len(known) >= limit:
                break
            records = self._read(
                "UNWIND $frontier AS id MATCH (n:Entity {tenant: $t, memory: $m, id: id}) "
                "MATCH (n)-[r:RELATES]-() WITH DISTINCT r MATCH (s)-[r]->(o) "
                f"RETURN {self._RELATION_FIELDS} ORDER BY weight DESC, id",
                t=tenant,
                m=memory,
                frontier=frontier,
            )
            next_frontier: list[str] = []
            for record in records:
                source_id, target_id = record["source_id"], record["target_id"]
                for endpoint in (source_id, target_id):
                    if endpoint not in known and len(known) < limit:
                        known.add(endpoint)
                        reached.append(endpoint)
                        next_frontier.append(endpoint)
                if source_id in known and target_id in known:
                    relation_records[record["id"]] = record
            frontier = next_frontier

        ordered = sorted(relation_records.values(), key=lambda r: (-r["weight"], r["id"]))
        relations = [self._relation(tenant, memory, r) for r in ordered]
        entities = {e.id: e for e in self.get_entities(tenant, memory, reached)}
        return Neighbourhood(entities=[entities[i] for i in reached if i in entities], relations=relations)

    # Communities

    def replace_communities(
        self, tenant: str, memory: str, communities: Sequence[Community], based_on: tuple[str, int] | None = None
    ) -> bool:
        ordered = sorted(communities, key=lambda c: (c.level, c.id))
        fingerprint = content_hash(*(c.model_dump_json() for c in ordered))

        def check(tx: ManagedTransaction) -> bool:
            self._check_based_on(tx, tenant, memory, based_on)
            _, stored = self._locked_version(tx, tenant, memory, "communities")
            return stored == fingerprint

        if self._write(check, "checking the stored communities version"):
            return False

        self._run_in_batches(
            "MATCH (c:Community {tenant: $t, memory: $m}) CALL (c) { DETACH DELETE c } IN TRANSACTIONS OF $rows ROWS",
            "deleting the previous communities",
            t=tenant,
            m=memory,
            rows=self.batch_size,
        )
        rows = [
            {
                "id": c.id,
                "level": c.level,
                "parent_id": c.parent_id,
                "title": c.title,
                "member_ids": list(c.member_ids),
                "summary": c.summary.model_dump_json(),
                "size": len(c.member_ids),
            }
            for c in ordered
        ]
        self._write_rows(
            "UNWIND $rows AS row CREATE (c:Community {tenant: $t, memory: $m, id: row.id}) "
            "SET c.level = row.level, c.parent_id = row.parent_id, c.title = row.title, c.member_ids = row.member_ids, "
            "c.summary = row.summary, c.size = row.size",
            rows,
            "storing communities",
            t=tenant,
            m=memory,
        )
        membership = [{"community_id": c.id, "entity_id": member} for c in ordered for member in c.member_ids]
        self._write_rows(
            "UNWIND $rows AS row MATCH (c:Community {tenant: $t, memory: $m, id: row.community_id}) "
            "MATCH (e:Entity {tenant: $t, memory: $m, id: row.entity_id}) CREATE (e)-[:IN_COMMUNITY]->(c)",
            membership,
            "storing community membership",
            t=tenant,
            m=memory,
        )
        self._write_rows(
            "UNWIND $rows AS row MATCH (c:Community {tenant: $t, memory: $m, id: row.id}) "
            "MATCH (p:Community {tenant: $t, memory: $m, id: row.parent_id}) CREATE (c)-[:CHILD_OF]->(p)",
            [row for row in rows if row["parent_id"] is not None],
            "linking communities to their parents",
            t=tenant,
            m=memory,
        )

        def finish(tx: ManagedTransaction) -> None:
            self._check_based_on(tx, tenant, memory, based_on)
            self._bump_version(tx, tenant, memory, "communities", fingerprint)

        self._write(finish, "recording the communities version")
        logger.info("stored %d communities of %s/%s on Neo4j", len(ordered), tenant, memory)
        return True

    def get_communities(
        self, tenant: str, memory: str, *, level: int | None = None, entity_ids: Sequence[str] | None = None
    ) -> list[Community]:
        if entity_ids is None:
            query = "MATCH (c:Community {tenant: $t, memory: $m}) WHERE $level IS NULL OR c.level = $level"
        else:
            query = (
                "UNWIND $ids AS id MATCH (:Entity {tenant: $t, memory: $m, id: id})-[:IN_COMMUNITY]->(c:Community) "
                "WHERE $level IS NULL OR c.level = $level WITH DISTINCT c"
            )
        records = self._read(
            f"{query} RETURN c.id AS id, c.level AS level, c.parent_id AS parent_id, c.title AS title, "
            "c.member_ids AS member_ids, c.summary AS summary, c.size AS size ORDER BY level, size DESC, id",
            t=tenant,
            m=memory,
            level=level,
            ids=sorted(set(entity_ids)) if entity_ids is not None else None,
        )
        return [
            Community(
                id=r["id"],
                tenant=tenant,
                memory=memory,
                level=r["level"],
                parent_id=r["parent_id"],
                title=r["title"],
                member_ids=list(r["member_ids"]),
                summary=CommunitySummary.model_validate_json(r["summary"]),
            )
            for r in records
        ]

    # Listing and deletes

    def list_batches(self, tenant: str, memory: str) -> list[str]:
        records = self._read(
            "CALL () { MATCH (b:Batch {tenant: $t, memory: $m}) WHERE (b)-[:CONTAINS]->() RETURN b.id AS id "
            "UNION MATCH (r:Rejection {tenant: $t, memory: $m}) RETURN r.batch_id AS id } RETURN id ORDER BY id",
            t=tenant,
            m=memory,
        )
        return [r["id"] for r in records]

    def list_batch_namespaces(self, batch_id: str) -> list[tuple[str, str]]:
        records = self._read(
            "MATCH (b:Batch {id: $batch_id}) WHERE (b)-[:CONTAINS]->() RETURN DISTINCT b.tenant AS tenant, b.memory AS memory ORDER BY tenant, memory",
            batch_id=batch_id,
        )
        return [(r["tenant"], r["memory"]) for r in records]

    def list_extractors(self, tenant: str, memory: str) -> list[str]:
        records = self._read(
            "MATCH (x:Extraction {tenant: $t, memory: $m}) RETURN DISTINCT x.extractor AS extractor ORDER BY extractor", t=tenant, m=memory
        )
        return [r["extractor"] for r in records]

    def list_embedding_models(self, tenant: str) -> list[str]:
        records = self._read("MATCH (v:Version {tenant: $t, memory: '*'}) RETURN v.id AS name ORDER BY name", t=tenant)
        return [r["name"].removeprefix("embeddings:") for r in records if r["name"].startswith("embeddings:")]

    def delete_documents(self, tenant: str, memory: str, document_ids: Sequence[str]) -> int:
        ids = sorted(set(document_ids))

        def work(tx: ManagedTransaction) -> int:
            extractors = [
                r["extractor"]
                for r in tx.run(
                    "UNWIND $ids AS id MATCH (c:Chunk {tenant: $t, memory: $m, document_id: id}) "
                    "MATCH (x:Extraction {tenant: $t, memory: $m, chunk_id: c.id}) RETURN DISTINCT x.extractor AS extractor",
                    ids=ids,
                    t=tenant,
                    m=memory,
                )
            ]
            tx.run(
                "UNWIND $ids AS id MATCH (c:Chunk {tenant: $t, memory: $m, document_id: id}) "
                "MATCH (f:ExtractionFailure {tenant: $t, memory: $m, chunk_id: c.id}) DELETE f",
                ids=ids,
                t=tenant,
                m=memory,
            ).consume()
            tx.run(
                "UNWIND $ids AS id MATCH (c:Chunk {tenant: $t, memory: $m, document_id: id}) "
                "OPTIONAL MATCH (x:Extraction {tenant: $t, memory: $m, chunk_id: c.id}) DETACH DELETE x, c",
                ids=ids,
                t=tenant,
                m=memory,
            ).consume()
            counters = tx.run(
                "UNWIND $ids AS id MATCH (d:Document {tenant: $t, memory: $m, id: id}) DETACH DELETE d", ids=ids, t=tenant, m=memory
            ).consume().counters
            if counters.nodes_deleted:
                for name in ("documents", "chunks", *(f"extractions:{extractor}" for extractor in extractors)):
                    self._bump_version(tx, tenant, memory, name)
            return counters.nodes_deleted

        # NOTE: one transaction per call, so deleting many large documents at once needs heap for all of them.
        deleted = self._write(work, "deleting documents")
        logger.info("deleted %d documents of %s/%s on Neo4j", deleted, tenant, memory)
        return deleted

    def delete_namespace(self, tenant: str, memory: str) -> None:
        for label in (
            "Entity", "Community", "Extraction", "Chunk", "Document", "Batch", "Rejection", "ExtractionFailure", "MergeRecord",
            "MergeExclusion",
        ):
            self._run_in_batches(
                f"MATCH (n:{label} {{tenant: $t, memory: $m}}) CALL (n) {{ DETACH DELETE n }} IN TRANSACTIONS OF $rows ROWS",
                f"deleting {label} nodes",
                t=tenant,
                m=memory,
                rows=self.batch_size,
            )
        # Versions only grow, so a reader holding an old version never mistakes new content for it.
        self._write(
            lambda tx: tx.run(
                "MATCH (v:Version {tenant: $t, memory: $m}) SET v.value = v.value + 1, v.fingerprint = null", t=tenant, m=memory
            ).consume(),
            "resetting versions",
        )
        logger.info("deleted namespace %s/%s on Neo4j", tenant, memory)

    # Statistics and integrity

    def counts(self, tenant: str, memory: str) -> dict[str, int]:
        record = self._read(
            "CALL () { MATCH (n:Document {tenant: $t, memory: $m}) RETURN count(n) AS documents } "
            "CALL () { MATCH (n:Chunk {tenant: $t, memory: $m}) WHERE n.text IS NOT NULL RETURN count(n) AS chunks } "
            "CALL () { MATCH (n:Entity {tenant: $t, memory: $m}) WHERE n.name IS NOT NULL RETURN count(n) AS entities } "
            "CALL () { MATCH (:Entity {tenant: $t, memory: $m})-[r:RELATES]->() RETURN count(r) AS relations } "
            "CALL () { MATCH (:Entity {tenant: $t, memory: $m})-[k:MENTIONED_IN]->() RETURN count(k) AS mentions } "
            "CALL () { MATCH (n:Community {tenant: $t, memory: $m}) RETURN count(n) AS communities, count(DISTINCT n.level) AS levels } "
            "CALL () { MATCH (n:Rejection {tenant: $t, memory: $m}) RETURN count(n) AS rejected_inputs } "
            "CALL () { MATCH (b:Batch {tenant: $t, memory: $m}) WHERE (b)-[:CONTAINS]->() RETURN count(b) AS batches } "
            "CALL () { MATCH (c:Chunk {tenant: $t, memory: $m}) WHERE c.text IS NOT NULL "
            "  AND EXISTS { MATCH (:Embedding {tenant: $t, text_hash: c.text_hash}) } RETURN count(c) AS embedded_chunks } "
            "RETURN documents, chunks, entities, relations, mentions, communities, rejected_inputs, embedded_chunks, batches, levels",
            t=tenant,
            m=memory,
        )[0]
        result = {name: int(record[name]) for name in record.keys() if name != "levels"}
        result["community_levels"] = int(record["levels"])
        return result

    def graph_version(self, tenant: str, memory: str) -> int:
        # Vectors are cached per tenant, so their versions count for every memory of the tenant.
        records = self._read(
            "MATCH (v:Version {tenant: $t}) WHERE v.memory IN [$m, '*'] RETURN coalesce(sum(v.value), 0) AS total", t=tenant, m=memory
        )
        return int(records[0]["total"])

    def count_chunks_without_embedding(self, tenant: str, memory: str, model: str, document_ids: Sequence[str] | None = None) -> int:
        query = "MATCH (c:Chunk {tenant: $t, memory: $m}) WHERE c.text IS NOT NULL"
        if document_ids is not None:
            query += " AND c.document_id IN $ids"
        records = self._read(
            f"{query} AND NOT EXISTS {{ MATCH (:Embedding {{tenant: $t, model: $model, text_hash: c.text_hash}}) }} RETURN count(c) AS n",
            t=tenant,
            m=memory,
            model=model,
            ids=list(document_ids) if document_ids is not None else None,
        )
        return int(records[0]["n"])

    def count_dangling_relations(self, tenant: str, memory: str) -> int:
        records = self._read(
            "MATCH (s:Entity {tenant: $t, memory: $m})-[r:RELATES]->(o) WHERE s.name IS NULL OR o.name IS NULL RETURN count(r) AS n",
            t=tenant,
            m=memory,
        )
        return int(records[0]["n"])

    def count_entities_without_community(self, tenant: str, memory: str) -> dict[int, int]:
        levels = [
            int(r["level"])
            for r in self._read(
                "MATCH (c:Community {tenant: $t, memory: $m}) RETURN DISTINCT c.level AS level ORDER BY level", t=tenant, m=memory
            )
        ]
        if not levels:
            total = self._read("MATCH (n:Entity {tenant: $t, memory: $m}) WHERE n.name IS NOT NULL RETURN count(n) AS n", t=tenant, m=memory)
            return {0: int(total[0]["n"])}
        result = {}
        for level in levels:
            records = self._read(
                "MATCH (e:Entity {tenant: $t, memory: $m}) WHERE e.name IS NOT NULL "
                "AND NOT EXISTS { MATCH (e)-[:IN_COMMUNITY]->(c:Community) WHERE c.level = $level } RETURN count(e) AS n",
                t=tenant,
                m=memory,
                level=level,
            )
            result[level] = int(records[0]["n"])
        return result

    def close(self) -> None:
        self._driver.close()
        logger.debug("closed Neo4j graph store at %s", self.uri)

    # LLM responses and extraction failures

    def get_llm_responses(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        records = self._read(
            "UNWIND $keys AS key MATCH (r:LLMResponse {tenant: $t, key: key}) RETURN r.key AS key, r.response AS response",
            t=tenant,
            keys=sorted(set(keys)),
        )
        return {r["key"]: r["response"] for r in records}

    def upsert_llm_responses(self, tenant: str, responses: Mapping[str, str]) -> int:
        rows = [{"key": key, "response": response} for key, response in responses.items()]
        return self._write_rows(
            "UNWIND $rows AS row MERGE (r:LLMResponse {tenant: $t, key: row.key}) ON CREATE SET r.response = row.response",
            rows,
            "storing LLM responses",
            t=tenant,
        )

    def record_extraction_failures(self, tenant: str, memory: str, extractor: str, failures: Sequence[ExtractionFailure]) -> None:
        rows = [{"id": content_hash(extractor, f.chunk_id), "chunk_id": f.chunk_id, "reason": f.reason} for f in failures]
        self._write_rows(
            "UNWIND $rows AS row MERGE (f:ExtractionFailure {tenant: $t, memory: $m, id: row.id}) "
            "SET f.extractor = $extractor, f.chunk_id = row.chunk_id, f.reason = row.reason",
            rows,
            "storing extraction failures",
            t=tenant,
            m=memory,
            extractor=extractor,
        )

    def get_extraction_failures(
        self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str] | None = None
    ) -> list[ExtractionFailure]:
        if chunk_ids is None:
            records = self._read(
                "MATCH (f:ExtractionFailure {tenant: $t, memory: $m, extractor: $extractor}) "
                "RETURN f.chunk_id AS chunk_id, f.reason AS reason ORDER BY chunk_id",
                t=tenant,
                m=memory,
                extractor=extractor,
            )
        else:
            records = self._read(
                "UNWIND $ids AS id MATCH (f:ExtractionFailure {tenant: $t, memory: $m, id: id}) "
                "RETURN f.chunk_id AS chunk_id, f.reason AS reason ORDER BY chunk_id",
                t=tenant,
                m=memory,
                ids=[content_hash(extractor, chunk_id) for chunk_id in sorted(set(chunk_ids))],
            )
        return [ExtractionFailure(chunk_id=r["chunk_id"], reason=r["reason"]) for r in records]

    def clear_extraction_failures(self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str]) -> int:
        ids = [content_hash(extractor, chunk_id) for chunk_id in sorted(set(chunk_ids))]

        def work(tx: ManagedTransaction) -> int:
            counters = tx.run(
                "UNWIND $ids AS id MATCH (f:ExtractionFailure {tenant: $t, memory: $m, id: id}) DELETE f", ids=ids, t=tenant, m=memory
            ).consume().counters
            return counters.nodes_deleted

        return self._write(work, "clearing extraction failures")

    # Merge records and exclusions of entity resolution

    def replace_merge_records(
        self,
        tenant: str,
        memory: str,
        records: Sequence[MergeRecord],
        settings: str,
        based_on: tuple[str, int] | None = None,
    ) -> None:
        rows = [{"id": r.id, "entity_id": r.entity_id, "record": r.model_dump_json()} for r in sorted(records, key=lambda r: r.id)]

        def work(tx: ManagedTransaction) -> bool:
            self._check_based_on(tx, tenant, memory, based_on)
            _, stored_settings = self._locked_version(tx, tenant, memory, "merge_records")
            stored = [
                r["record"]
                for r in tx.run("MATCH (r:MergeRecord {tenant: $t, memory: $m}) RETURN r.record AS record ORDER BY r.id", t=tenant, m=memory)
            ]
            if stored_settings == settings and stored == [row["record"] for row in rows]:
                return False
            tx.run("MATCH (r:MergeRecord {tenant: $t, memory: $m}) DELETE r", t=tenant, m=memory).consume()
            tx.run(
                "UNWIND $rows AS row CREATE (:MergeRecord {tenant: $t, memory: $m, id: row.id, entity_id: row.entity_id, record: row.record})",
                rows=rows,
                t=tenant,
                m=memory,
            ).consume()
            # The settings ride on the version node of the records, which delete_namespace clears.
            self._bump_version(tx, tenant, memory, "merge_records", settings)
            return True

        # NOTE: all records go in one transaction, so that readers never see half of them. A graph
        # with hundreds of thousands of merges needs heap for all of them at once.
        if self._write(work, "storing merge records"):
            logger.info("stored %d merge records of %s/%s on Neo4j", len(rows), tenant, memory)

    def get_merge_records(self, tenant: str, memory: str, entity_ids: Sequence[str] | None = None) -> list[MergeRecord]:
        if entity_ids is None:
            query = "MATCH (r:MergeRecord {tenant: $t, memory: $m})"
        else:
            query = "UNWIND $ids AS id MATCH (r:MergeRecord {tenant: $t, memory: $m, entity_id: id})"
        records = self._read(
            f"{query} RETURN r.record AS record ORDER BY r.id",
            t=tenant,
            m=memory,
            ids=sorted(set(entity_ids)) if entity_ids is not None else None,
        )
        return [MergeRecord.model_validate_json(r["record"]) for r in records]

    def get_merge_settings(self, tenant: str, memory: str) -> str | None:
        records = self._read(
            "MATCH (v:Version {tenant: $t, memory: $m, id: 'merge_records'}) RETURN v.fingerprint AS settings", t=tenant, m=memory
        )
        return records[0]["settings"] if records else None

    def add_merge_exclusions(self, tenant: str, memory: str, exclusions: Sequence[MergeExclusion]) -> int:
        rows = [{"id": e.id, "first": e.first, "second": e.second, "note": e.note} for e in exclusions]

        def work(tx: ManagedTransaction) -> int:
            created = tx.run(
                "UNWIND $rows AS row MERGE (x:MergeExclusion {tenant: $t, memory: $m, id: row.id}) "
                "ON CREATE SET x.first = row.first, x.second = row.second, x.note = row.note",
                rows=rows,
                t=tenant,
                m=memory,
            ).consume().counters.nodes_created
            if created:
                self._bump_version(tx, tenant, memory, "merge_exclusions")
            return created

        return self._write(work, "storing merge exclusions")

    def delete_merge_exclusions(self, tenant: str, memory: str, exclusion_ids: Sequence[str]) -> int:
        def work(tx: ManagedTransaction) -> int:
            deleted = tx.run(
                "UNWIND $ids AS id MATCH (x:MergeExclusion {tenant: $t, memory: $m, id: id}) DELETE x",
                ids=sorted(set(exclusion_ids)),
                t=tenant,
                m=memory,
            ).consume().counters.nodes_deleted
            if deleted:
                self._bump_version(tx, tenant, memory, "merge_exclusions")
            return deleted

        return self._write(work, "deleting merge exclusions")

    def get_merge_exclusions(self, tenant: str, memory: str) -> list[MergeExclusion]:
        records = self._read(
            "MATCH (x:MergeExclusion {tenant: $t, memory: $m}) "
            "RETURN x.id AS id, x.first AS first, x.second AS second, x.note AS note ORDER BY id",
            t=tenant,
            m=memory,
        )
        return [
            MergeExclusion(id=r["id"], tenant=tenant, memory=memory, first=r["first"], second=r["second"], note=r["note"])
            for r in records
        ]
