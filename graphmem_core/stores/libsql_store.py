"""The embedded graph store: one local libSQL file, with vector search served from memory.

Vectors are kept in the database for durability. Search runs on an in-memory `VectorIndex` that is
saved beside the database and rebuilt when it is missing or older than the stored vectors, because
libSQL's own vector index and a SQL scan are far too slow at 100,000 vectors.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import libsql
import numpy as np

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
from graphmem_core.vector_index import VectorIndex

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Rows per executemany call: large enough to amortise the call, small enough to bound memory.
WRITE_BATCH_ROWS = 1000

# Bounded retries when another process holds the write lock past the busy timeout.
_LOCK_RETRIES = 5
_LOCK_BACKOFF_SECONDS = 0.5
_BUSY_TIMEOUT_MS = 30_000

# Key of tenant-wide versions (embeddings are cached per tenant, not per memory).
_ALL_MEMORIES = "*"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL,
    text TEXT NOT NULL, title TEXT, source TEXT NOT NULL, metadata TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE TABLE IF NOT EXISTS batch_documents (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, batch_id TEXT NOT NULL, document_id TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, batch_id, document_id)
);
CREATE INDEX IF NOT EXISTS batch_documents_by_batch ON batch_documents (batch_id);
CREATE TABLE IF NOT EXISTS rejections (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, batch_id TEXT NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, batch_id, source)
);
CREATE TABLE IF NOT EXISTS chunks (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL, document_id TEXT NOT NULL,
    idx INTEGER NOT NULL, text TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    token_count INTEGER NOT NULL, text_hash TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (tenant, memory, document_id, idx);
CREATE TABLE IF NOT EXISTS embeddings (
    tenant TEXT NOT NULL, model TEXT NOT NULL, text_hash TEXT NOT NULL, dimension INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (tenant, model, text_hash)
);
CREATE TABLE IF NOT EXISTS extractions (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, chunk_id TEXT NOT NULL, extractor TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, extractor, chunk_id)
);
CREATE TABLE IF NOT EXISTS entities (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    aliases TEXT NOT NULL, mention_count INTEGER NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE INDEX IF NOT EXISTS entities_by_name ON entities (tenant, memory, name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS relations (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL, source_id TEXT NOT NULL, target_id TEXT NOT NULL,
    type TEXT NOT NULL, weight REAL NOT NULL, provenance TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE INDEX IF NOT EXISTS relations_by_source ON relations (tenant, memory, source_id);
CREATE INDEX IF NOT EXISTS relations_by_target ON relations (tenant, memory, target_id);
CREATE TABLE IF NOT EXISTS mentions (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, chunk_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    entity_id TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, chunk_id, start, "end", entity_id)
);
CREATE INDEX IF NOT EXISTS mentions_by_entity ON mentions (tenant, memory, entity_id);
CREATE TABLE IF NOT EXISTS communities (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL, level INTEGER NOT NULL, parent_id TEXT,
    title TEXT NOT NULL, member_ids TEXT NOT NULL, summary TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE TABLE IF NOT EXISTS community_members (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, level INTEGER NOT NULL, entity_id TEXT NOT NULL, community_id TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, level, entity_id)
);
CREATE INDEX IF NOT EXISTS community_members_by_community ON community_members (tenant, memory, community_id);
CREATE TABLE IF NOT EXISTS versions (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, fingerprint TEXT,
    PRIMARY KEY (tenant, memory, name)
);
CREATE TABLE IF NOT EXISTS llm_responses (
    tenant TEXT NOT NULL, key TEXT NOT NULL, response TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE IF NOT EXISTS extraction_failures (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, extractor TEXT NOT NULL, chunk_id TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, extractor, chunk_id)
);
CREATE TABLE IF NOT EXISTS merge_records (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL, entity_id TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE INDEX IF NOT EXISTS merge_records_by_entity ON merge_records (tenant, memory, entity_id);
CREATE TABLE IF NOT EXISTS merge_exclusions (
    tenant TEXT NOT NULL, memory TEXT NOT NULL, id TEXT NOT NULL, first TEXT NOT NULL, second TEXT NOT NULL, note TEXT NOT NULL,
    PRIMARY KEY (tenant, memory, id)
);
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);
"""

_T = TypeVar("_T")


def _batches(rows: Sequence[_T], size: int = WRITE_BATCH_ROWS) -> Iterator[Sequence[_T]]:
    for offset in range(0, len(rows), size):
        yield rows[offset : offset + size]


def _json_list(values: Sequence[str]) -> str:
    """Encode a list for `IN (SELECT value FROM json_each(?))`, which keeps any list one parameter."""
    return json.dumps(list(values))


def _is_lock_error(error: Exception) -> bool:
    message = str(error).lower()
    return "database is locked" in message or "database is busy" in message


class LibsqlGraphStore(GraphStore):
    """`GraphStore` over one local libSQL file; safe to share between threads of one process.

    Several processes may open the same file: writes wait for the file's write lock up to a busy
    timeout, then retry a bounded number of times before raising `RetryableStoreError`.
    """

    def __init__(
        self,
        path: Path | str,
        index_folder: Path | str | None = None,
        *,
        sync_url: str | None = None,
        auth_token: str | None = None,
    ) -> None:
        """Open or create the file at `path`.

        With `sync_url`, `path` is a local embedded replica of that remote libSQL database (such as
        Turso), which the libsql client syncs when it connects and on each `sync()`.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index_folder = Path(index_folder) if index_folder is not None else self.path.parent / "index"
        self.sync_url = sync_url
        self._lock = threading.RLock()
        self._indexes: dict[tuple[str, str, str], tuple[str, VectorIndex]] = {}

        if sync_url is None:
            logger.debug("opening libSQL graph store at %s", self.path)
            self._connection = libsql.connect(str(self.path))
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
        else:
            # NOTE: the embedded-replica path has never run against a real remote database in this
            # project's tests; only a refused connection is tested.
            logger.info("opening libSQL embedded replica %s of %s", self.path, sync_url)
            try:
                self._connection = libsql.connect(str(self.path), sync_url=sync_url, auth_token=auth_token or "")
            except ValueError as error:
                raise StoreError(f"could not sync {self.path} with {sync_url}: {error}: check the URL and the auth token") from error
        self._connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._create_schema()

    def sync(self) -> None:
        """Pull the remote database into the embedded replica; does nothing for a plain local file."""
        if self.sync_url is None:
            return
        with self._lock:
            try:
                self._connection.sync()
            except ValueError as error:
                raise RetryableStoreError(f"could not sync {self.path} with {self.sync_url}: {error}: retry later") from error
        logger.info("synced libSQL embedded replica %s with %s", self.path, self.sync_url)

    def _create_schema(self) -> None:
        with self._transaction() as connection:
            connection.executescript(_SCHEMA)
            row = connection.execute("SELECT version FROM schema_info").fetchone()
            if row is None:
                connection.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {row[0]}, this graphmem expects {SCHEMA_VERSION}: "
                    "ingest into a new GRAPHMEM_HOME or restore from a backup made by this version"
                )

    # Transactions

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """Run the block in one write transaction, retrying the BEGIN while another process holds the lock."""
        with self._lock:
            for attempt in range(1, _LOCK_RETRIES + 1):
                try:
                    self._connection.execute("BEGIN IMMEDIATE")
                    break
                except ValueError as error:
                    if not _is_lock_error(error):
                        raise StoreError(f"could not start a transaction on {self.path}: {error}") from error
                    if attempt == _LOCK_RETRIES:
                        raise RetryableStoreError(
                            f"{self.path} stayed locked by another writer for {_LOCK_RETRIES} attempts: retry the run"
                        ) from error
                    logger.warning("graph store %s is locked, retry %d of %d", self.path, attempt, _LOCK_RETRIES - 1)
                    time.sleep(_LOCK_BACKOFF_SECONDS * attempt)
            try:
                yield self._connection
            except BaseException:
                self._connection.rollback()
                raise
            else:
                self._connection.commit()

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._connection.execute(sql, tuple(parameters)).fetchall()
            except ValueError as error:
                raise StoreError(f"query on {self.path} failed: {error}") from error

    def _bump_version(self, connection: Any, tenant: str, memory: str, name: str) -> None:
        connection.execute(
            "INSERT INTO versions (tenant, memory, name, value) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (tenant, memory, name) DO UPDATE SET value = value + 1",
            (tenant, memory, name),
        )

    def _version(self, tenant: str, memory: str, name: str) -> int:
        rows = self._query("SELECT value FROM versions WHERE tenant = ? AND memory = ? AND name = ?", (tenant, memory, name))
        return int(rows[0][0]) if rows else 0

    def content_version(self, tenant: str, memory: str, name: str) -> int:
        return self._version(tenant, memory, name)

    def _check_based_on(self, connection: Any, tenant: str, memory: str, based_on: tuple[str, int] | None) -> None:
        if based_on is None:
            return
        name, expected = based_on
        row = connection.execute(
            "SELECT value FROM versions WHERE tenant = ? AND memory = ? AND name = ?", (tenant, memory, name)
        ).fetchone()
        current = int(row[0]) if row else 0
        if current != expected:
            raise ConcurrentUpdateError(
                f"{name} of {tenant}/{memory} changed from version {expected} to {current} while this write was computed: compute it again"
            )

    def _stored_fingerprint(self, connection: Any, tenant: str, memory: str, name: str) -> str | None:
        row = connection.execute(
            "SELECT fingerprint FROM versions WHERE tenant = ? AND memory = ? AND name = ?", (tenant, memory, name)
        ).fetchone()
        return row[0] if row else None

    def _set_fingerprint(self, connection: Any, tenant: str, memory: str, name: str, fingerprint: str) -> None:
        connection.execute(
            "INSERT INTO versions (tenant, memory, name, value, fingerprint) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (tenant, memory, name) DO UPDATE SET value = value + 1, fingerprint = excluded.fingerprint",
            (tenant, memory, name, fingerprint),
        )

    def _insert_many(self, connection: Any, sql: str, rows: Sequence[tuple]) -> int:
        """Run `sql` for every row in fixed-size batches and return how many rows it changed."""
        changed = 0
        for batch in _batches(rows):
            cursor = connection.cursor()
            cursor.executemany(sql, batch)
            changed += max(cursor.rowcount, 0)
        return changed

    # Documents and batches

    def upsert_documents(self, tenant: str, memory: str, batch_id: str, documents: Sequence[Document]) -> int:
        document_rows = [
            (tenant, memory, d.id, d.text, d.title, d.source, json.dumps(d.metadata, sort_keys=True, ensure_ascii=False))
            for d in documents
        ]
        membership_rows = [(tenant, memory, batch_id, d.id) for d in documents]
        with self._transaction() as connection:
            inserted = self._insert_many(
                connection,
                "INSERT INTO documents (tenant, memory, id, text, title, source, metadata) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, memory, id) DO NOTHING",
                document_rows,
            )
            self._insert_many(
                connection,
                "INSERT INTO batch_documents (tenant, memory, batch_id, document_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                membership_rows,
            )
            if inserted:
                self._bump_version(connection, tenant, memory, "documents")
        return inserted

    def record_rejections(self, tenant: str, memory: str, batch_id: str, rejected: Sequence[RejectedInput]) -> None:
        rows = [(tenant, memory, batch_id, r.source, r.reason) for r in rejected]
        with self._transaction() as connection:
            self._insert_many(
                connection,
                "INSERT INTO rejections (tenant, memory, batch_id, source, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, memory, batch_id, source) DO UPDATE SET reason = excluded.reason",
                rows,
            )

    def get_rejections(self, tenant: str, memory: str, batch_id: str) -> list[RejectedInput]:
        rows = self._query(
            "SELECT source, reason FROM rejections WHERE tenant = ? AND memory = ? AND batch_id = ? ORDER BY source",
            (tenant, memory, batch_id),
        )
        return [RejectedInput(source=source, reason=reason) for source, reason in rows]

    def _documents_from_rows(self, tenant: str, memory: str, rows: list[tuple]) -> list[Document]:
        return [
            Document(id=id_, tenant=tenant, memory=memory, text=text, title=title, source=source, metadata=json.loads(metadata))
            for id_, text, title, source, metadata in rows
        ]

    def get_batch_documents(self, tenant: str, memory: str, batch_id: str) -> list[Document]:
        rows = self._query(
            "SELECT d.id, d.text, d.title, d.source, d.metadata FROM batch_documents b "
            "JOIN documents d ON d.tenant = b.tenant AND d.memory = b.memory AND d.id = b.document_id "
            "WHERE b.tenant = ? AND b.memory = ? AND b.batch_id = ? ORDER BY d.id",
            (tenant, memory, batch_id),
        )
        return self._documents_from_rows(tenant, memory, rows)

    def get_documents(self, tenant: str, memory: str, document_ids: Sequence[str]) -> list[Document]:
        rows = self._query(
            "SELECT id, text, title, source, metadata FROM documents "
            "WHERE tenant = ? AND memory = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (tenant, memory, _json_list(document_ids)),
        )
        return self._documents_from_rows(tenant, memory, rows)

    # Chunks and vectors

    def upsert_chunks(self, tenant: str, memory: str, chunks: Sequence[Chunk]) -> int:
        rows = [
            (tenant, memory, c.id, c.document_id, c.index, c.text, c.start, c.end, c.token_count, c.text_hash) for c in chunks
        ]
        with self._transaction() as connection:
            inserted = self._insert_many(
                connection,
                'INSERT INTO chunks (tenant, memory, id, document_id, idx, text, start, "end", token_count, text_hash) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, memory, id) DO NOTHING",
                rows,
            )
            if inserted:
                self._bump_version(connection, tenant, memory, "chunks")
        return inserted

    def get_chunks(
        self,
        tenant: str,
        memory: str,
        *,
        document_ids: Sequence[str] | None = None,
        chunk_ids: Sequence[str] | None = None,
    ) -> list[Chunk]:
        sql = 'SELECT id, document_id, idx, text, start, "end", token_count, text_hash FROM chunks WHERE tenant = ? AND memory = ?'
        parameters: list[Any] = [tenant, memory]
        if document_ids is not None:
            sql += " AND document_id IN (SELECT value FROM json_each(?))"
            parameters.append(_json_list(document_ids))
        if chunk_ids is not None:
            sql += " AND id IN (SELECT value FROM json_each(?))"
            parameters.append(_json_list(chunk_ids))
        rows = self._query(sql + " ORDER BY document_id, idx", parameters)
        return [
            Chunk(
                id=id_,
                document_id=document_id,
                tenant=tenant,
                memory=memory,
                index=index,
                text=text,
                start=start,
                end=end,
                token_count=token_count,
                text_hash=text_hash,
            )
            for id_, document_id, index, text, start, end, token_count, text_hash in rows
        ]

    def get_embeddings(self, tenant: str, model: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        rows = self._query(
            "SELECT text_hash, vector FROM embeddings WHERE tenant = ? AND model = ? AND text_hash IN (SELECT value FROM json_each(?))",
            (tenant, model, _json_list(text_hashes)),
        )
        return {text_hash: np.frombuffer(vector, dtype=np.float32) for text_hash, vector in rows}

    def upsert_embeddings(self, tenant: str, model: str, vectors: Mapping[str, np.ndarray]) -> int:
        rows = []
        for text_hash, vector in vectors.items():
            array = np.ascontiguousarray(vector, dtype=np.float32)
            if array.ndim != 1:
                raise StoreError(f"embedding for text hash {text_hash} has shape {array.shape}: pass one 1-D vector per text")
            rows.append((tenant, model, text_hash, int(array.shape[0]), array.tobytes()))
        with self._transaction() as connection:
            inserted = self._insert_many(
                connection,
                "INSERT INTO embeddings (tenant, model, text_hash, dimension, vector) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, model, text_hash) DO NOTHING",
                rows,
            )
            if inserted:
                self._bump_version(connection, tenant, _ALL_MEMORIES, f"embeddings:{model}")
        return inserted

    def _index_stamp(self, tenant: str, memory: str, model: str) -> str:
        return f"chunks={self._version(tenant, memory, 'chunks')};embeddings={self._version(tenant, _ALL_MEMORIES, f'embeddings:{model}')}"

    def _index_path(self, tenant: str, memory: str, model: str) -> Path:
        return self.index_folder / content_hash(tenant, memory, model)[:24]

    def chunk_index(self, tenant: str, memory: str, model: str) -> VectorIndex | None:
        """Return the in-memory index of the namespace's chunk vectors, loading or rebuilding it when stale.

        Returns None when the namespace has no chunk vectors of `model`.
        """
        key = (tenant, memory, model)
        stamp = self._index_stamp(tenant, memory, model)
        with self._lock:
            cached = self._indexes.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]

            folder = self._index_path(tenant, memory, model)
            # NOTE: a stale index is rebuilt in full; for 100,000 HNSW vectors that takes 50-85 s.
            index = VectorIndex.load(folder, stamp)
            if index is None:
                started = time.perf_counter()
                rows = self._query(
                    "SELECT c.id, e.vector FROM chunks c JOIN embeddings e "
                    "ON e.tenant = c.tenant AND e.model = ? AND e.text_hash = c.text_hash "
                    "WHERE c.tenant = ? AND c.memory = ? ORDER BY c.id",
                    (model, tenant, memory),
                )
                if not rows:
                    return None
                ids = [row[0] for row in rows]
                index = VectorIndex.build(ids, np.vstack([np.frombuffer(row[1], dtype=np.float32) for row in rows]))
                index.save(folder, stamp)
                logger.info(
                    "rebuilt chunk vector index for %s/%s (%s): %d vectors in %.2f s",
                    tenant,
                    memory,
                    model,
                    len(ids),
                    time.perf_counter() - started,
                )
            self._indexes[key] = (stamp, index)
            return index

    def prepare_search(self, tenant: str, memory: str, model: str) -> None:
        self.chunk_index(tenant, memory, model)

    def search_chunks(self, tenant: str, memory: str, model: str, query: np.ndarray, top_k: int) -> list[ChunkHit]:
        index = self.chunk_index(tenant, memory, model)
        if index is None:
            return []
        hits = index.search(np.asarray(query, dtype=np.float32), top_k)
        chunks = {chunk.id: chunk for chunk in self.get_chunks(tenant, memory, chunk_ids=[chunk_id for chunk_id, _ in hits])}
        titles = {d.id: d.title for d in self.get_documents(tenant, memory, sorted({c.document_id for c in chunks.values()}))}
        return [
            ChunkHit(chunk=chunks[chunk_id], score=float(score), document_title=titles.get(chunks[chunk_id].document_id))
            for chunk_id, score in hits
            if chunk_id in chunks
        ]

    # Extraction

    def upsert_extractions(self, tenant: str, memory: str, extractor: str, results: Sequence[ExtractionResult]) -> int:
        rows = [(tenant, memory, r.chunk_id, extractor, r.model_dump_json()) for r in results]
        with self._transaction() as connection:
            changed = self._insert_many(
                connection,
                "INSERT INTO extractions (tenant, memory, chunk_id, extractor, result) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, memory, extractor, chunk_id) DO UPDATE SET result = excluded.result "
                "WHERE result != excluded.result",
                rows,
            )
            if changed:
                self._bump_version(connection, tenant, memory, f"extractions:{extractor}")
        return changed

    def get_extracted_chunk_ids(self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str]) -> set[str]:
        rows = self._query(
            "SELECT chunk_id FROM extractions WHERE tenant = ? AND memory = ? AND extractor = ? "
            "AND chunk_id IN (SELECT value FROM json_each(?))",
            (tenant, memory, extractor, _json_list(chunk_ids)),
        )
        return {row[0] for row in rows}

    def iter_extractions(self, tenant: str, memory: str, extractor: str) -> Iterator[ExtractionResult]:
        rows = self._query(
            "SELECT result FROM extractions WHERE tenant = ? AND memory = ? AND extractor = ? ORDER BY chunk_id",
            (tenant, memory, extractor),
        )
        for (result,) in rows:
            yield ExtractionResult.model_validate_json(result)

    # Resolved graph

    def replace_graph(self, tenant: str, memory: str, graph: ResolvedGraph, based_on: tuple[str, int] | None = None) -> bool:
        entities = sorted(graph.entities, key=lambda e: e.id)
        relations = sorted(graph.relations, key=lambda r: r.id)
        links = sorted(graph.mention_links, key=lambda m: (m.chunk_id, m.start, m.end, m.entity_id))
        fingerprint = content_hash(
            ResolvedGraph(entities=entities, relations=relations, mention_links=links).model_dump_json()
        )

        with self._transaction() as connection:
            self._check_based_on(connection, tenant, memory, based_on)
            if self._stored_fingerprint(connection, tenant, memory, "graph") == fingerprint:
                return False

            for table in ("entities", "relations", "mentions"):
                connection.execute(f"DELETE FROM {table} WHERE tenant = ? AND memory = ?", (tenant, memory))
            self._insert_many(
                connection,
                "INSERT INTO entities (tenant, memory, id, name, type, aliases, mention_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(tenant, memory, e.id, e.name, e.type.value, json.dumps(e.aliases, ensure_ascii=False), e.mention_count) for e in entities],
            )
            self._insert_many(
                connection,
                "INSERT INTO relations (tenant, memory, id, source_id, target_id, type, weight, provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        tenant,
                        memory,
                        r.id,
                        r.source_id,
                        r.target_id,
                        r.type,
                        r.weight,
                        json.dumps([p.model_dump() for p in r.provenance]),
                    )
                    for r in relations
                ],
            )
            self._insert_many(
                connection,
                'INSERT INTO mentions (tenant, memory, chunk_id, start, "end", entity_id, text) VALUES (?, ?, ?, ?, ?, ?, ?) '
                "ON CONFLICT DO NOTHING",
                [(tenant, memory, m.chunk_id, m.start, m.end, m.entity_id, m.text) for m in links],
            )
            self._set_fingerprint(connection, tenant, memory, "graph", fingerprint)
        logger.info("stored resolved graph of %s/%s: %d entities, %d relations", tenant, memory, len(entities), len(relations))
        return True

    def _entities_from_rows(self, tenant: str, memory: str, rows: list[tuple]) -> list[Entity]:
        return [
            Entity(
                id=id_,
                tenant=tenant,
                memory=memory,
                name=name,
                type=EntityType(type_),
                aliases=json.loads(aliases),
                mention_count=mention_count,
            )
            for id_, name, type_, aliases, mention_count in rows
        ]

    def get_entities(self, tenant: str, memory: str, entity_ids: Sequence[str] | None = None) -> list[Entity]:
        sql = "SELECT id, name, type, aliases, mention_count FROM entities WHERE tenant = ? AND memory = ?"
        parameters: list[Any] = [tenant, memory]
        if entity_ids is not None:
            sql += " AND id IN (SELECT value FROM json_each(?))"
            parameters.append(_json_list(entity_ids))
        return self._entities_from_rows(tenant, memory, self._query(sql + " ORDER BY id", parameters))

    def find_entities(self, tenant: str, memory: str, name: str, limit: int = 20) -> list[Entity]:
        columns = "id, name, type, aliases, mention_count"
        exact = self._query(
            f"SELECT {columns} FROM entities WHERE tenant = ? AND memory = ? AND (name = ? COLLATE NOCASE "
            "OR EXISTS (SELECT 1 FROM json_each(entities.aliases) WHERE value = ? COLLATE NOCASE)) "
            "ORDER BY mention_count DESC, id LIMIT ?",
            (tenant, memory, name, name, limit),
        )
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        partial = self._query(
            f"SELECT {columns} FROM entities WHERE tenant = ? AND memory = ? AND name LIKE ? ESCAPE '\\' "
            "ORDER BY mention_count DESC, id LIMIT ?",
            (tenant, memory, f"%{escaped}%", limit),
        )
        seen: set[str] = set()
        rows = []
        for row in exact + partial:
            if row[0] not in seen:
                seen.add(row[0])
                rows.append(row)
        return self._entities_from_rows(tenant, memory, rows[:limit])

    def _relations_from_rows(self, tenant: str, memory: str, rows: list[tuple]) -> list[Relation]:
        return [
            Relation(
                id=id_,
                tenant=tenant,
                memory=memory,
                source_id=source_id,
                target_id=target_id,
                type=type_,
                weight=weight,
                provenance=[RelationEvidence(**item) for item in json.loads(provenance)],
            )
            for id_, source_id, target_id, type_, weight, provenance in rows
        ]

    def get_relations(self, tenant: str, memory: str) -> list[Relation]:
        rows = self._query(
            "SELECT id, source_id, target_id, type, weight, provenance FROM relations WHERE tenant = ? AND memory = ? ORDER BY id",
            (tenant, memory),
        )
        return self._relations_from_rows(tenant, memory, rows)

    def get_mention_links(self, tenant: str, memory: str, chunk_ids: Sequence[str]) -> list[MentionLink]:
        rows = self._query(
            'SELECT entity_id, chunk_id, start, "end", text FROM mentions WHERE tenant = ? AND memory = ? '
            'AND chunk_id IN (SELECT value FROM json_each(?)) ORDER BY chunk_id, start, "end", entity_id',
            (tenant, memory, _json_list(chunk_ids)),
        )
        return [MentionLink(entity_id=e, chunk_id=c, start=s, end=t, text=x) for e, c, s, t, x in rows]

    def neighbourhood(self, tenant: str, memory: str, entity_ids: Sequence[str], hops: int = 1, limit: int = 200) -> Neighbourhood:
        reached: list[str] = list(dict.fromkeys(entity_ids))[:limit]
        known = set(reached)
        frontier = list(reached)
        relation_rows: dict[str, tuple] = {}

        for _ in range(max(hops, 0)):
            if not frontier or len(known) >= limit:
                break
            rows = self._query(
                "SELECT id, source_id, target_id, type, weight, provenance FROM relations WHERE tenant = ? AND memory = ? "
                "AND (source_id IN (SELECT value FROM json_each(?)) OR target_id IN (SELECT value FROM json_each(?))) "
                "ORDER BY weight DESC, id",
                (tenant, memory, _json_list(frontier), _json_list(frontier)),
            )
            next_frontier: list[str] = []
            for row in rows:
                source_id, target_id = row[1], row[2]
                for endpoint in (source_id, target_id):
                    if endpoint not in known and len(known) < limit:
                        known.add(endpoint)
                        reached.append(endpoint)
                        next_frontier.append(endpoint)
                if source_id in known and target_id in known:
                    relation_rows[row[0]] = row
            frontier = next_frontier

        relations = self._relations_from_rows(tenant, memory, sorted(relation_rows.values(), key=lambda row: (-row[4], row[0])))
        entities = {e.id: e for e in self.get_entities(tenant, memory, reached)}
        return Neighbourhood(entities=[entities[i] for i in reached if i in entities], relations=relations)

    # Communities

    def replace_communities(
        self, tenant: str, memory: str, communities: Sequence[Community], based_on: tuple[str, int] | None = None
    ) -> bool:
        ordered = sorted(communities, key=lambda c: (c.level, c.id))
        fingerprint = content_hash(*(c.model_dump_json() for c in ordered))
        with self._transaction() as connection:
            self._check_based_on(connection, tenant, memory, based_on)
            if self._stored_fingerprint(connection, tenant, memory, "communities") == fingerprint:
                return False
            connection.execute("DELETE FROM communities WHERE tenant = ? AND memory = ?", (tenant, memory))
            connection.execute("DELETE FROM community_members WHERE tenant = ? AND memory = ?", (tenant, memory))
            self._insert_many(
                connection,
                "INSERT INTO communities (tenant, memory, id, level, parent_id, title, member_ids, summary, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        tenant,
                        memory,
                        c.id,
                        c.level,
                        c.parent_id,
                        c.title,
                        json.dumps(c.member_ids),
                        c.summary.model_dump_json(),
                        len(c.member_ids),
                    )
                    for c in ordered
                ],
            )
            self._insert_many(
                connection,
                "INSERT INTO community_members (tenant, memory, level, entity_id, community_id) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, memory, level, entity_id) DO UPDATE SET community_id = excluded.community_id",
                [(tenant, memory, c.level, member, c.id) for c in ordered for member in c.member_ids],
            )
            self._set_fingerprint(connection, tenant, memory, "communities", fingerprint)
        logger.info("stored %d communities of %s/%s", len(ordered), tenant, memory)
        return True

    def get_communities(
        self, tenant: str, memory: str, *, level: int | None = None, entity_ids: Sequence[str] | None = None
    ) -> list[Community]:
        sql = "SELECT id, level, parent_id, title, member_ids, summary FROM communities c WHERE tenant = ? AND memory = ?"
        parameters: list[Any] = [tenant, memory]
        if level is not None:
            sql += " AND level = ?"
            parameters.append(level)
        if entity_ids is not None:
            sql += (
                " AND id IN (SELECT community_id FROM community_members m WHERE m.tenant = c.tenant AND m.memory = c.memory "
                "AND m.entity_id IN (SELECT value FROM json_each(?)))"
            )
            parameters.append(_json_list(entity_ids))
        rows = self._query(sql + " ORDER BY level, size DESC, id", parameters)
        return [
            Community(
                id=id_,
                tenant=tenant,
                memory=memory,
                level=level_,
                parent_id=parent_id,
                title=title,
                member_ids=json.loads(member_ids),
                summary=CommunitySummary.model_validate_json(summary),
            )
            for id_, level_, parent_id, title, member_ids, summary in rows
        ]

    # Listing and deletes

    def list_batches(self, tenant: str, memory: str) -> list[str]:
        rows = self._query(
            "SELECT batch_id FROM batch_documents WHERE tenant = ? AND memory = ? "
            "UNION SELECT batch_id FROM rejections WHERE tenant = ? AND memory = ? ORDER BY batch_id",
            (tenant, memory, tenant, memory),
        )
        return [row[0] for row in rows]

    def list_batch_namespaces(self, batch_id: str) -> list[tuple[str, str]]:
        rows = self._query("SELECT DISTINCT tenant, memory FROM batch_documents WHERE batch_id = ? ORDER BY tenant, memory", (batch_id,))
        return [(row[0], row[1]) for row in rows]

    def list_extractors(self, tenant: str, memory: str) -> list[str]:
        rows = self._query("SELECT DISTINCT extractor FROM extractions WHERE tenant = ? AND memory = ? ORDER BY extractor", (tenant, memory))
        return [row[0] for row in rows]

    def list_embedding_models(self, tenant: str) -> list[str]:
        rows = self._query("SELECT DISTINCT model FROM embeddings WHERE tenant = ? ORDER BY model", (tenant,))
        return [row[0] for row in rows]

    def delete_documents(self, tenant: str, memory: str, document_ids: Sequence[str]) -> int:
        ids = _json_list(document_ids)
        chunk_filter = "chunk_id IN (SELECT id FROM chunks WHERE tenant = ? AND memory = ? AND document_id IN (SELECT value FROM json_each(?)))"
        with self._transaction() as connection:
            extractors = [
                row[0]
                for row in connection.execute(
                    f"SELECT DISTINCT extractor FROM extractions WHERE tenant = ? AND memory = ? AND {chunk_filter}",
                    (tenant, memory, tenant, memory, ids),
                ).fetchall()
            ]
            for table in ("extractions", "extraction_failures", "mentions"):
                connection.execute(
                    f"DELETE FROM {table} WHERE tenant = ? AND memory = ? AND {chunk_filter}", (tenant, memory, tenant, memory, ids)
                )
            connection.execute(
                "DELETE FROM chunks WHERE tenant = ? AND memory = ? AND document_id IN (SELECT value FROM json_each(?))", (tenant, memory, ids)
            )
            connection.execute(
                "DELETE FROM batch_documents WHERE tenant = ? AND memory = ? AND document_id IN (SELECT value FROM json_each(?))",
                (tenant, memory, ids),
            )
            cursor = connection.execute(
                "DELETE FROM documents WHERE tenant = ? AND memory = ? AND id IN (SELECT value FROM json_each(?))", (tenant, memory, ids)
            )
            deleted = max(cursor.rowcount, 0)
            if deleted:
                for name in ("documents", "chunks", *(f"extractions:{extractor}" for extractor in extractors)):
                    self._bump_version(connection, tenant, memory, name)
        logger.info("deleted %d documents of %s/%s", deleted, tenant, memory)
        return deleted

    def delete_namespace(self, tenant: str, memory: str) -> None:
        tables = (
            "documents", "batch_documents", "rejections", "chunks", "extractions", "entities", "relations", "mentions",
            "communities", "community_members", "extraction_failures", "merge_records", "merge_exclusions",
        )
        with self._transaction() as connection:
            for table in tables:
                connection.execute(f"DELETE FROM {table} WHERE tenant = ? AND memory = ?", (tenant, memory))
            # Versions only grow, so a reader holding an old version never mistakes new content for it.
            connection.execute(
                "UPDATE versions SET value = value + 1, fingerprint = NULL WHERE tenant = ? AND memory = ?", (tenant, memory)
            )
        logger.info("deleted namespace %s/%s", tenant, memory)

    # Statistics and integrity

    def counts(self, tenant: str, memory: str) -> dict[str, int]:
        result: dict[str, int] = {}
        for name, table in (
            ("documents", "documents"),
            ("chunks", "chunks"),
            ("entities", "entities"),
            ("relations", "relations"),
            ("mentions", "mentions"),
            ("communities", "communities"),
            ("rejected_inputs", "rejections"),
        ):
            result[name] = int(self._query(f"SELECT COUNT(*) FROM {table} WHERE tenant = ? AND memory = ?", (tenant, memory))[0][0])
        result["embedded_chunks"] = int(
            self._query(
                "SELECT COUNT(DISTINCT c.id) FROM chunks c JOIN embeddings e ON e.tenant = c.tenant AND e.text_hash = c.text_hash "
                "WHERE c.tenant = ? AND c.memory = ?",
                (tenant, memory),
            )[0][0]
        )
        result["batches"] = int(
            self._query(
                "SELECT COUNT(DISTINCT batch_id) FROM batch_documents WHERE tenant = ? AND memory = ?", (tenant, memory)
            )[0][0]
        )
        result["community_levels"] = int(
            self._query("SELECT COUNT(DISTINCT level) FROM communities WHERE tenant = ? AND memory = ?", (tenant, memory))[0][0]
        )
        return result

    def graph_version(self, tenant: str, memory: str) -> int:
        # Vectors are cached per tenant, so their versions count for every memory of the tenant.
        rows = self._query(
            "SELECT COALESCE(SUM(value), 0) FROM versions WHERE tenant = ? AND memory IN (?, ?)", (tenant, memory, _ALL_MEMORIES)
        )
        return int(rows[0][0])

    def count_chunks_without_embedding(self, tenant: str, memory: str, model: str, document_ids: Sequence[str] | None = None) -> int:
        sql = (
            "SELECT COUNT(*) FROM chunks c WHERE c.tenant = ? AND c.memory = ? AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.tenant = c.tenant AND e.model = ? AND e.text_hash = c.text_hash)"
        )
        parameters: list[Any] = [tenant, memory, model]
        if document_ids is not None:
            sql += " AND c.document_id IN (SELECT value FROM json_each(?))"
            parameters.append(_json_list(document_ids))
        return int(self._query(sql, parameters)[0][0])

    def count_dangling_relations(self, tenant: str, memory: str) -> int:
        rows = self._query(
            "SELECT COUNT(*) FROM relations r WHERE r.tenant = ? AND r.memory = ? AND ("
            "NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = r.tenant AND e.memory = r.memory AND e.id = r.source_id) OR "
            "NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = r.tenant AND e.memory = r.memory AND e.id = r.target_id))",
            (tenant, memory),
        )
        return int(rows[0][0])

    def count_entities_without_community(self, tenant: str, memory: str) -> dict[int, int]:
        levels = [row[0] for row in self._query(
            "SELECT DISTINCT level FROM communities WHERE tenant = ? AND memory = ? ORDER BY level", (tenant, memory)
        )]
        if not levels:
            total = int(self._query("SELECT COUNT(*) FROM entities WHERE tenant = ? AND memory = ?", (tenant, memory))[0][0])
            return {0: total}
        result = {}
        for level in levels:
            rows = self._query(
                "SELECT COUNT(*) FROM entities e WHERE e.tenant = ? AND e.memory = ? AND NOT EXISTS "
                "(SELECT 1 FROM community_members m WHERE m.tenant = e.tenant AND m.memory = e.memory AND m.level = ? AND m.entity_id = e.id)",
                (tenant, memory, level),
            )
            result[int(level)] = int(rows[0][0])
        return result

    def close(self) -> None:
        with self._lock:
            self._connection.close()
        logger.debug("closed libSQL graph store at %s", self.path)

    # LLM responses and extraction failures

    def get_llm_responses(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        rows = self._query(
            "SELECT key, response FROM llm_responses WHERE tenant = ? AND key IN (SELECT value FROM json_each(?))",
            (tenant, _json_list(keys)),
        )
        return {key: response for key, response in rows}

    def upsert_llm_responses(self, tenant: str, responses: Mapping[str, str]) -> int:
        rows = [(tenant, key, response) for key, response in responses.items()]
        with self._transaction() as connection:
            return self._insert_many(
                connection,
                "INSERT INTO llm_responses (tenant, key, response) VALUES (?, ?, ?) ON CONFLICT (tenant, key) DO NOTHING",
                rows,
            )

    def record_extraction_failures(self, tenant: str, memory: str, extractor: str, failures: Sequence[ExtractionFailure]) -> None:
        rows = [(tenant, memory, extractor, f.chunk_id, f.reason) for f in failures]
        with self._transaction() as connection:
            self._insert_many(
                connection,
                "INSERT INTO extraction_failures (tenant, memory, extractor, chunk_id, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, memory, extractor, chunk_id) DO UPDATE SET reason = excluded.reason",
                rows,
            )

    def get_extraction_failures(
        self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str] | None = None
    ) -> list[ExtractionFailure]:
        sql = "SELECT chunk_id, reason FROM extraction_failures WHERE tenant = ? AND memory = ? AND extractor = ?"
        parameters: list[Any] = [tenant, memory, extractor]
        if chunk_ids is not None:
            sql += " AND chunk_id IN (SELECT value FROM json_each(?))"
            parameters.append(_json_list(chunk_ids))
        rows = self._query(sql + " ORDER BY chunk_id", parameters)
        return [ExtractionFailure(chunk_id=chunk_id, reason=reason) for chunk_id, reason in rows]

    def clear_extraction_failures(self, tenant: str, memory: str, extractor: str, chunk_ids: Sequence[str]) -> int:
        with self._transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM extraction_failures WHERE tenant = ? AND memory = ? AND extractor = ? "
                "AND chunk_id IN (SELECT value FROM json_each(?))",
                (tenant, memory, extractor, _json_list(chunk_ids)),
            )
            return max(cursor.rowcount, 0)

    # Merge records and exclusions of entity resolution

    def replace_merge_records(
        self,
        tenant: str,
        memory: str,
        records: Sequence[MergeRecord],
        settings: str,
        based_on: tuple[str, int] | None = None,
    ) -> None:
        rows = [(tenant, memory, r.id, r.entity_id, r.model_dump_json()) for r in sorted(records, key=lambda r: r.id)]
        with self._transaction() as connection:
            self._check_based_on(connection, tenant, memory, based_on)
            stored = connection.execute(
                "SELECT id, entity_id, record FROM merge_records WHERE tenant = ? AND memory = ? ORDER BY id", (tenant, memory)
            ).fetchall()
            if self._stored_fingerprint(connection, tenant, memory, "merge_records") == settings and [
                tuple(row) for row in stored
            ] == [row[2:] for row in rows]:
                return
            connection.execute("DELETE FROM merge_records WHERE tenant = ? AND memory = ?", (tenant, memory))
            self._insert_many(
                connection, "INSERT INTO merge_records (tenant, memory, id, entity_id, record) VALUES (?, ?, ?, ?, ?)", rows
            )
            # The settings ride on the version row of the records, which delete_namespace clears.
            self._set_fingerprint(connection, tenant, memory, "merge_records", settings)
        logger.info("stored %d merge records of %s/%s", len(rows), tenant, memory)

    def get_merge_records(self, tenant: str, memory: str, entity_ids: Sequence[str] | None = None) -> list[MergeRecord]:
        sql = "SELECT record FROM merge_records WHERE tenant = ? AND memory = ?"
        parameters: list[Any] = [tenant, memory]
        if entity_ids is not None:
            sql += " AND entity_id IN (SELECT value FROM json_each(?))"
            parameters.append(_json_list(entity_ids))
        return [MergeRecord.model_validate_json(row[0]) for row in self._query(sql + " ORDER BY id", parameters)]

    def get_merge_settings(self, tenant: str, memory: str) -> str | None:
        rows = self._query(
            "SELECT fingerprint FROM versions WHERE tenant = ? AND memory = ? AND name = 'merge_records'", (tenant, memory)
        )
        return rows[0][0] if rows else None

    def add_merge_exclusions(self, tenant: str, memory: str, exclusions: Sequence[MergeExclusion]) -> int:
        rows = [(tenant, memory, e.id, e.first, e.second, e.note) for e in exclusions]
        with self._transaction() as connection:
            inserted = self._insert_many(
                connection,
                "INSERT INTO merge_exclusions (tenant, memory, id, first, second, note) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, memory, id) DO NOTHING",
                rows,
            )
            if inserted:
                self._bump_version(connection, tenant, memory, "merge_exclusions")
        return inserted

    def delete_merge_exclusions(self, tenant: str, memory: str, exclusion_ids: Sequence[str]) -> int:
        with self._transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM merge_exclusions WHERE tenant = ? AND memory = ? AND id IN (SELECT value FROM json_each(?))",
                (tenant, memory, _json_list(exclusion_ids)),
            )
            deleted = max(cursor.rowcount, 0)
            if deleted:
                self._bump_version(connection, tenant, memory, "merge_exclusions")
        return deleted

    def get_merge_exclusions(self, tenant: str, memory: str) -> list[MergeExclusion]:
        rows = self._query(
            "SELECT id, first, second, note FROM merge_exclusions WHERE tenant = ? AND memory = ? ORDER BY id", (tenant, memory)
        )
        return [
            MergeExclusion(id=id_, tenant=tenant, memory=memory, first=first, second=second, note=note)
            for id_, first, second, note in rows
        ]
