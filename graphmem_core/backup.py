"""Copy one namespace between graph stores: backups to a libSQL file or a remote libSQL database, and restores.

The copy goes through the `GraphStore` interface only, so any store can be the source or the
target. It copies batches with their documents and rejections, chunks, every embedding model's
vectors for the namespace's chunk text hashes, every extractor's results, the resolved graph, the
communities, and the merge records and exclusions of entity resolution. Cached LLM responses and
recorded extraction failures are not copied: the first is a cache, and the second is retried anyway. Content versions are not copied: the target counts its own.

Chunks and vectors are copied in pages of documents. The resolved graph and the communities are
held in memory whole, because `replace_graph` and `replace_communities` take them whole.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from graphmem_core.errors import ConfigurationError, InvalidInputError
from graphmem_core.ids import content_hash
from graphmem_core.models import ExtractionResult, MentionLink, ResolvedGraph
from graphmem_core.settings import Settings
from graphmem_core.stores.base import GraphStore
from graphmem_core.stores.libsql_store import LibsqlGraphStore

logger = logging.getLogger(__name__)

# Documents whose chunks and vectors are read and written together, which bounds the memory of one
# copy step to their chunk texts and vectors.
DOCUMENTS_PER_PAGE = 200

# Extraction results per write to the target, so that a large namespace is never held in full.
EXTRACTIONS_PER_WRITE = 1000

REMOTE_SCHEMES = ("libsql", "https")

_T = TypeVar("_T")


class NamespaceNotEmptyError(InvalidInputError):
    """A restore would mix the backup with content already stored in the target namespace."""


def _pages(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]


def _has_content(counts: dict[str, int]) -> bool:
    return any(value > 0 for value in counts.values())


# Opening the backup target


def is_remote_target(target: str) -> bool:
    """Return True when `target` is a URL of a remote libSQL database rather than a file path."""
    return "://" in target


def display_target(target: str) -> str:
    """Return `target` without user info, query or fragment, where a URL could carry credentials, for logs and metadata."""
    if not is_remote_target(target):
        return target
    parts = urlsplit(target)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def replica_path(target: str, replica_folder: Path) -> Path:
    """Return the local embedded-replica file for a remote `target`, one file per URL."""
    return replica_folder / f"replica-{content_hash(target)[:24]}.db"


def open_backup_store(target: str, *, replica_folder: Path, auth_token: SecretStr | str | None = None) -> LibsqlGraphStore:
    """Open the libSQL backup at `target`: a file path, or a `libsql://` or `https://` URL with an auth token.

    A remote URL is opened as an embedded replica in `replica_folder`; call `sync()` on the store
    after writing. A file path ignores `replica_folder` and `auth_token`.
    """
    if not is_remote_target(target):
        return LibsqlGraphStore(Path(target))

    scheme = urlsplit(target).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise ConfigurationError(
            f"backup target {display_target(target)!r} has the unsupported scheme {scheme!r}: use a file path or a "
            f"{' or '.join(s + '://' for s in REMOTE_SCHEMES)} URL"
        )
    token = auth_token.get_secret_value() if isinstance(auth_token, SecretStr) else auth_token
    if not token:
        raise ConfigurationError(
            f"backup target {display_target(target)} is a remote database but no auth token is set: set GRAPHMEM_BACKUP_AUTH_TOKEN"
        )

    return LibsqlGraphStore(replica_path(target, replica_folder), sync_url=target, auth_token=token)


def open_settings_backup(settings: Settings) -> LibsqlGraphStore:
    """Open `settings.backup_target`, keeping the replica of a remote target in HOME/backups."""
    target = settings.backup_target
    if not is_remote_target(target) and Path(target).resolve() == settings.database_path.resolve():
        raise ConfigurationError(
            f"backup target {target} is the graph store itself: set GRAPHMEM_BACKUP_URL to another file or a remote URL"
        )
    return open_backup_store(target, replica_folder=settings.home / "backups", auth_token=settings.backup_auth_token)


# Copying


def _copy_chunks_and_vectors(
    source: GraphStore, target: GraphStore, tenant: str, memory: str, document_ids: Sequence[str], models: Sequence[str]
) -> tuple[int, list[MentionLink]]:
    """Copy the chunks of these documents and their vectors of every model; return the chunk count and their mention links."""
    chunks = source.get_chunks(tenant, memory, document_ids=document_ids)
    target.upsert_chunks(tenant, memory, chunks)

    text_hashes = sorted({chunk.text_hash for chunk in chunks})
    for model in models:
        vectors = source.get_embeddings(tenant, model, text_hashes)
        if vectors:
            target.upsert_embeddings(tenant, model, vectors)

    links = source.get_mention_links(tenant, memory, [chunk.id for chunk in chunks])
    return len(chunks), links


def _copy_batches(source: GraphStore, target: GraphStore, tenant: str, memory: str) -> list[MentionLink]:
    """Copy every batch with its documents, rejections, chunks and vectors; return the mention links of those chunks."""
    batch_ids = source.list_batches(tenant, memory)
    models = source.list_embedding_models(tenant)
    copied_documents: set[str] = set()
    links: list[MentionLink] = []

    for number, batch_id in enumerate(batch_ids, start=1):
        documents = source.get_batch_documents(tenant, memory, batch_id)
        target.upsert_documents(tenant, memory, batch_id, documents)
        target.record_rejections(tenant, memory, batch_id, source.get_rejections(tenant, memory, batch_id))

        # A document that belongs to several batches has its chunks copied once.
        new_ids = [document.id for document in documents if document.id not in copied_documents]
        copied_documents.update(new_ids)
        chunk_count = 0
        for page in _pages(new_ids, DOCUMENTS_PER_PAGE):
            copied, page_links = _copy_chunks_and_vectors(source, target, tenant, memory, page, models)
            chunk_count += copied
            links.extend(page_links)

        logger.info(
            "copied batch %d of %d (%s) of %s/%s: %d documents, %d new chunks",
            number, len(batch_ids), batch_id, tenant, memory, len(documents), chunk_count,
        )
    return links


def _copy_extractions(source: GraphStore, target: GraphStore, tenant: str, memory: str) -> None:
    """Copy every extractor's results in bounded writes."""
    for extractor in source.list_extractors(tenant, memory):
        page: list[ExtractionResult] = []
        total = 0
        for result in source.iter_extractions(tenant, memory, extractor):
            page.append(result)
            if len(page) == EXTRACTIONS_PER_WRITE:
                target.upsert_extractions(tenant, memory, extractor, page)
                total += len(page)
                page = []
        if page:
            target.upsert_extractions(tenant, memory, extractor, page)
            total += len(page)
        logger.info("copied %d extraction results of %s for %s/%s", total, extractor, tenant, memory)


def copy_namespace(source: GraphStore, target: GraphStore, tenant: str, memory: str) -> dict[str, int]:
    """Copy everything stored for the namespace from `source` into `target`; return the target's counts.

    Every write is an upsert, and the resolved graph and communities replace the target's, so
    copying into an empty namespace yields the same content as the source.
    """
    links = _copy_batches(source, target, tenant, memory)
    _copy_extractions(source, target, tenant, memory)

    graph = ResolvedGraph(
        entities=source.get_entities(tenant, memory),
        relations=source.get_relations(tenant, memory),
        mention_links=links,
    )
    target.replace_graph(tenant, memory, graph)
    target.replace_communities(tenant, memory, source.get_communities(tenant, memory))

    # Exclusions are user decisions ("never merge these names"), so a restore must keep them. The
    # copied resolver settings name the source's versions, so the target's next resolution runs in
    # full, which is always correct.
    target.add_merge_exclusions(tenant, memory, source.get_merge_exclusions(tenant, memory))
    merge_settings = source.get_merge_settings(tenant, memory)
    if merge_settings is not None:
        target.replace_merge_records(tenant, memory, source.get_merge_records(tenant, memory), merge_settings)
    return target.counts(tenant, memory)


def _require_content(store: GraphStore, tenant: str, memory: str, role: str) -> dict[str, int]:
    counts = store.counts(tenant, memory)
    if not _has_content(counts):
        raise InvalidInputError(
            f"the {role} has nothing stored for namespace {tenant}/{memory}: check the tenant and memory "
            "(--tenant and --memory, or GRAPHMEM_TENANT and GRAPHMEM_MEMORY)"
        )
    return counts


# Backup and restore


def backup_namespace(source: GraphStore, target: Settings | GraphStore, tenant: str, memory: str) -> dict[str, int]:
    """Replace the backup of the namespace in `target` with the source's content; return the backup's counts.

    `target` is either settings, whose `backup_target` is opened, written, synced and closed here,
    or an open store that the caller syncs and closes. The previous backup of the namespace is
    deleted first, so backing up twice leaves the same backup. An empty source namespace raises
    `InvalidInputError` instead of overwriting a good backup with nothing.
    """
    if source is target:
        raise ConfigurationError("the backup target is the source store itself: back up into another store")
    _require_content(source, tenant, memory, "source store")

    if isinstance(target, Settings):
        store = open_settings_backup(target)
        try:
            counts = _replace_namespace(source, store, tenant, memory, "backup", display_target(target.backup_target))
            store.sync()
        finally:
            store.close()
        return counts
    return _replace_namespace(source, target, tenant, memory, "backup", "the target store")


def restore_namespace(backup: GraphStore, target: GraphStore, tenant: str, memory: str, replace: bool = False) -> dict[str, int]:
    """Copy the namespace from `backup` into `target`; return the target's counts.

    Raises `NamespaceNotEmptyError` when the target namespace already contains data, unless
    `replace` is True, which deletes it first.
    """
    if backup is target:
        raise ConfigurationError("the backup and the restore target are the same store: restore into another store")
    _require_content(backup, tenant, memory, "backup")

    existing = target.counts(tenant, memory)
    if _has_content(existing) and not replace:
        raise NamespaceNotEmptyError(
            f"namespace {tenant}/{memory} in the target store is not empty ({existing.get('documents', 0)} documents, "
            f"{existing.get('entities', 0)} entities): pass replace=True (graphmem restore --replace) to delete it first"
        )
    return _replace_namespace(backup, target, tenant, memory, "restore", "the target store")


def _replace_namespace(source: GraphStore, target: GraphStore, tenant: str, memory: str, action: str, target_name: str) -> dict[str, int]:
    """Delete the namespace in `target`, copy it from `source` and log the start and the end."""
    started = time.perf_counter()
    logger.info("%s of %s/%s into %s started", action, tenant, memory, target_name)

    # NOTE: the delete and each copy step are separate transactions, so a failure part-way leaves
    # the namespace incomplete in the target until the backup or restore runs again.
    target.delete_namespace(tenant, memory)
    counts = copy_namespace(source, target, tenant, memory)

    logger.info(
        "%s of %s/%s into %s finished in %.1f s: %d documents, %d chunks, %d entities, %d relations, %d communities",
        action, tenant, memory, target_name, time.perf_counter() - started,
        counts.get("documents", 0), counts.get("chunks", 0), counts.get("entities", 0),
        counts.get("relations", 0), counts.get("communities", 0),
    )
    return counts
