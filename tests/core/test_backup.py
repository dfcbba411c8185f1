"""Backup and restore of one namespace between graph stores, on a graph built from real transcripts."""

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from graphmem_core import pipeline
from graphmem_core.backup import (
    NamespaceNotEmptyError,
    backup_namespace,
    display_target,
    open_backup_store,
    restore_namespace,
)
from graphmem_core.batches import register_batch
from graphmem_core.embeddings import Embedder
from graphmem_core.errors import ConfigurationError, InvalidInputError, StoreError
from graphmem_core.extraction import get_extractor
from graphmem_core.models import Document
from graphmem_core.resolution import make_exclusion
from graphmem_core.settings import Settings
from graphmem_core.stores.base import GraphStore
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.core.test_store_contract import BACKENDS, RESETS

TENANT = "acme"
MEMORY = "podcasts"
OTHER_MEMORY = "other"
MAX_FILE_BYTES = 10_000_000

# Two batches that share one transcript, so its document belongs to both.
FIRST_BATCH = slice(0, 5)
SECOND_BATCH = slice(4, 8)
OTHER_NAMESPACE_BATCH = slice(8, 10)


# Restores run into every store of the contract suite, each emptied before the test.
@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> str:
    reset = RESETS.get(request.param)
    if reset is not None:
        reset()
    return request.param


@pytest.fixture
def target_store(backend: str, tmp_path: Path) -> Iterator[GraphStore]:
    folder = tmp_path / f"target-{backend}"
    folder.mkdir()
    opened = BACKENDS[backend](folder)
    yield opened
    opened.close()


def write_inputs(folder: Path, texts: list[tuple[str, str]], empty_file: bool = False) -> Path:
    folder.mkdir(parents=True)
    for name, text in texts:
        (folder / name).write_text(text, encoding="utf-8")
    if empty_file:
        (folder / "empty.txt").write_text("", encoding="utf-8")
    return folder


def ingest(store: GraphStore, embedder: Embedder, home: Path, inputs: Path, tenant: str, memory: str) -> None:
    """Store, chunk, embed and extract one batch of `inputs` with the real pipeline stages."""
    manifest = register_batch([inputs], tenant, memory, home / "batches")
    pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES)
    pipeline.embed_batch(store, embedder, tenant, memory, manifest.batch_id, overlap_tokens=32)
    pipeline.extract_batch(store, get_extractor("fast"), tenant, memory, manifest.batch_id)


def build_source_graph(home: Path, texts: list[tuple[str, str]], embedder: Embedder) -> None:
    """Build `home/graph.db`: two batches (one rejected input) resolved into one graph, and a second memory."""
    store = LibsqlGraphStore(home / "graph.db")
    try:
        ingest(store, embedder, home, write_inputs(home / "in-1", texts[FIRST_BATCH], empty_file=True), TENANT, MEMORY)
        ingest(store, embedder, home, write_inputs(home / "in-2", texts[SECOND_BATCH]), TENANT, MEMORY)
        extractor = get_extractor("fast")
        store.add_merge_exclusions(TENANT, MEMORY, [make_exclusion(TENANT, MEMORY, "Alpha Example", "Beta Example", note="kept apart")])
        encoder = pipeline.cached_name_encoder(store, embedder, TENANT)
        pipeline.resolve_graph(store, extractor, TENANT, MEMORY, encoder, threshold=0.9)
        pipeline.build_communities(store, TENANT, MEMORY, seed=42)

        ingest(store, embedder, home, write_inputs(home / "in-other", texts[OTHER_NAMESPACE_BATCH]), TENANT, OTHER_MEMORY)
    finally:
        store.close()


@pytest.fixture(scope="module")
def source_home(tmp_path_factory, podcast_texts, embedder) -> Path:
    home = tmp_path_factory.mktemp("source") / "home"
    build_source_graph(home, podcast_texts, embedder)
    return home


@pytest.fixture
def source(source_home: Path) -> Iterator[LibsqlGraphStore]:
    opened = LibsqlGraphStore(source_home / "graph.db")
    yield opened
    opened.close()


@dataclass(frozen=True)
class Snapshot:
    """Everything a namespace contains, read through the `GraphStore` interface."""

    counts: dict[str, int]
    batches: list[str]
    batch_documents: dict[str, list[str]]
    rejections: dict[str, list[tuple[str, str]]]
    chunks: list[str]
    chunk_rows: list[dict]
    vectors: dict[str, dict[str, bytes]]
    extractions: dict[str, list[dict]]
    entities: list[dict]
    relations: list[dict]
    mention_links: list[dict]
    communities: list[dict]
    merge_records: list[dict]
    merge_exclusions: list[dict]

    @property
    def document_ids(self) -> set[str]:
        return {document_id for ids in self.batch_documents.values() for document_id in ids}


def snapshot(store: GraphStore, tenant: str = TENANT, memory: str = MEMORY) -> Snapshot:
    batches = store.list_batches(tenant, memory)
    chunks = store.get_chunks(tenant, memory)
    hashes = sorted({chunk.text_hash for chunk in chunks})
    return Snapshot(
        counts=store.counts(tenant, memory),
        batches=batches,
        batch_documents={b: [d.id for d in store.get_batch_documents(tenant, memory, b)] for b in batches},
        rejections={b: [(r.source, r.reason) for r in store.get_rejections(tenant, memory, b)] for b in batches},
        chunks=[chunk.id for chunk in chunks],
        chunk_rows=[chunk.model_dump() for chunk in chunks],
        vectors={
            model: {h: v.tobytes() for h, v in store.get_embeddings(tenant, model, hashes).items()}
            for model in store.list_embedding_models(tenant)
        },
        extractions={
            extractor: [result.model_dump() for result in store.iter_extractions(tenant, memory, extractor)]
            for extractor in store.list_extractors(tenant, memory)
        },
        entities=[entity.model_dump() for entity in store.get_entities(tenant, memory)],
        relations=[relation.model_dump() for relation in store.get_relations(tenant, memory)],
        mention_links=sorted(
            (link.model_dump() for link in store.get_mention_links(tenant, memory, [chunk.id for chunk in chunks])),
            key=lambda link: (link["chunk_id"], link["start"], link["end"], link["entity_id"]),
        ),
        communities=[community.model_dump() for community in store.get_communities(tenant, memory)],
        merge_records=[record.model_dump() for record in store.get_merge_records(tenant, memory)],
        merge_exclusions=[exclusion.model_dump() for exclusion in store.get_merge_exclusions(tenant, memory)],
    )


def assert_same_namespace(actual: Snapshot, expected: Snapshot) -> None:
    assert actual.counts == expected.counts
    assert actual.batches == expected.batches
    assert actual.document_ids == expected.document_ids
    assert actual.batch_documents == expected.batch_documents
    assert actual.rejections == expected.rejections
    assert actual.chunks == expected.chunks
    assert actual.chunk_rows == expected.chunk_rows
    assert actual.vectors == expected.vectors
    assert actual.extractions == expected.extractions
    assert [e["id"] for e in actual.entities] == [e["id"] for e in expected.entities]
    assert actual.entities == expected.entities
    assert [r["id"] for r in actual.relations] == [r["id"] for r in expected.relations]
    assert actual.relations == expected.relations
    assert actual.mention_links == expected.mention_links
    assert [c["id"] for c in actual.communities] == [c["id"] for c in expected.communities]
    assert actual.communities == expected.communities
    assert actual.merge_records == expected.merge_records
    assert actual.merge_exclusions == expected.merge_exclusions


def backup_settings(source_home: Path, backup_file: Path) -> Settings:
    return Settings(home=source_home, backup_url=str(backup_file))


def test_source_graph_is_complete(source):
    assert source.get_merge_records(TENANT, MEMORY), "resolution should record its merges"
    assert len(source.get_merge_exclusions(TENANT, MEMORY)) == 1

    expected = snapshot(source)

    assert len(expected.batches) == 2
    assert set(expected.batch_documents[expected.batches[0]]) & set(expected.batch_documents[expected.batches[1]])
    assert sum(len(reasons) for reasons in expected.rejections.values()) == 1
    assert expected.counts["embedded_chunks"] == expected.counts["chunks"] > 0
    assert expected.counts["entities"] > 0
    assert expected.counts["relations"] > 0
    assert expected.counts["mentions"] > 0
    assert expected.counts["communities"] > 0


def test_backup_copies_namespace(source, tmp_path: Path):
    backup_file = tmp_path / "backup.db"

    counts = backup_namespace(source, backup_settings(source.path.parent, backup_file), TENANT, MEMORY)

    backup = LibsqlGraphStore(backup_file)
    try:
        assert counts == source.counts(TENANT, MEMORY)
        assert_same_namespace(snapshot(backup), snapshot(source))
    finally:
        backup.close()


def test_backup_skips_other_namespaces(source, tmp_path: Path):
    backup_file = tmp_path / "backup.db"
    other_hashes = sorted({chunk.text_hash for chunk in source.get_chunks(TENANT, OTHER_MEMORY)})
    namespace_hashes = {chunk.text_hash for chunk in source.get_chunks(TENANT, MEMORY)}
    only_other = sorted(set(other_hashes) - namespace_hashes)

    backup_namespace(source, backup_settings(source.path.parent, backup_file), TENANT, MEMORY)

    backup = LibsqlGraphStore(backup_file)
    try:
        assert source.counts(TENANT, OTHER_MEMORY)["documents"] > 0
        assert set(backup.counts(TENANT, OTHER_MEMORY).values()) == {0}
        assert only_other, "the other memory should have chunk texts of its own"
        for model in source.list_embedding_models(TENANT):
            assert backup.get_embeddings(TENANT, model, only_other) == {}
    finally:
        backup.close()


def test_backup_twice_idempotent(source, tmp_path: Path):
    backup_file = tmp_path / "backup.db"
    settings = backup_settings(source.path.parent, backup_file)
    first_counts = backup_namespace(source, settings, TENANT, MEMORY)
    backup = LibsqlGraphStore(backup_file)
    try:
        first = snapshot(backup)
    finally:
        backup.close()

    second_counts = backup_namespace(source, settings, TENANT, MEMORY)

    backup = LibsqlGraphStore(backup_file)
    try:
        assert second_counts == first_counts
        assert_same_namespace(snapshot(backup), first)
    finally:
        backup.close()


def test_backup_replaces_stale_backup(source, tmp_path: Path):
    backup_file = tmp_path / "backup.db"
    stale = LibsqlGraphStore(backup_file)
    extra = Document(id="doc_stale", tenant=TENANT, memory=MEMORY, text="stale", source="/stale.txt")
    stale.upsert_documents(TENANT, MEMORY, "batch-stale", [extra])
    stale.close()

    backup_namespace(source, backup_settings(source.path.parent, backup_file), TENANT, MEMORY)

    backup = LibsqlGraphStore(backup_file)
    try:
        assert "batch-stale" not in backup.list_batches(TENANT, MEMORY)
        assert_same_namespace(snapshot(backup), snapshot(source))
    finally:
        backup.close()


@pytest.fixture
def backup_file(source, tmp_path: Path) -> Path:
    path = tmp_path / "backup.db"
    backup_namespace(source, backup_settings(source.path.parent, path), TENANT, MEMORY)
    return path


def test_restore_matches_source(source, backup_file: Path, target_store: GraphStore):
    backup = open_backup_store(str(backup_file), replica_folder=backup_file.parent)
    try:
        counts = restore_namespace(backup, target_store, TENANT, MEMORY)
    finally:
        backup.close()

    assert counts == source.counts(TENANT, MEMORY)
    assert_same_namespace(snapshot(target_store), snapshot(source))


def test_round_trip_through_backup(source, backup_file: Path, target_store: GraphStore, tmp_path: Path):
    # Restore, back the restored store up again, and restore that second backup over it: with the
    # Neo4j backend this is Neo4j to libSQL to a fresh Neo4j namespace.
    first = LibsqlGraphStore(backup_file)
    try:
        restore_namespace(first, target_store, TENANT, MEMORY)
    finally:
        first.close()
    second = LibsqlGraphStore(tmp_path / "second-backup.db")
    try:
        backup_namespace(target_store, second, TENANT, MEMORY)
        assert_same_namespace(snapshot(second), snapshot(source))

        target_store.delete_namespace(TENANT, MEMORY)
        counts = restore_namespace(second, target_store, TENANT, MEMORY)
    finally:
        second.close()

    assert counts == source.counts(TENANT, MEMORY)
    assert_same_namespace(snapshot(target_store), snapshot(source))


def test_restore_into_non_empty_raises(backup_file: Path, target_store: GraphStore):
    backup = LibsqlGraphStore(backup_file)
    try:
        restore_namespace(backup, target_store, TENANT, MEMORY)

        with pytest.raises(NamespaceNotEmptyError, match=f"{TENANT}/{MEMORY}.*replace"):
            restore_namespace(backup, target_store, TENANT, MEMORY)
    finally:
        backup.close()


def test_restore_replace_deletes_first(source, backup_file: Path, target_store: GraphStore):
    extra = Document(id="doc_extra", tenant=TENANT, memory=MEMORY, text="extra", source="/extra.txt")
    target_store.upsert_documents(TENANT, MEMORY, "batch-extra", [extra])
    backup = LibsqlGraphStore(backup_file)
    try:
        counts = restore_namespace(backup, target_store, TENANT, MEMORY, replace=True)
    finally:
        backup.close()

    assert counts == source.counts(TENANT, MEMORY)
    assert "batch-extra" not in target_store.list_batches(TENANT, MEMORY)
    assert_same_namespace(snapshot(target_store), snapshot(source))


def test_restore_empty_backup_raises(tmp_path: Path, target_store: GraphStore):
    backup = LibsqlGraphStore(tmp_path / "empty-backup.db")
    try:
        with pytest.raises(InvalidInputError, match=f"backup has nothing stored for namespace {TENANT}/{MEMORY}"):
            restore_namespace(backup, target_store, TENANT, MEMORY)
    finally:
        backup.close()


def test_backup_empty_source_raises(source, tmp_path: Path):
    backup_file = tmp_path / "backup.db"

    with pytest.raises(InvalidInputError, match="source store has nothing stored for namespace acme/nothing"):
        backup_namespace(source, backup_settings(source.path.parent, backup_file), TENANT, "nothing")

    assert not backup_file.exists()


def test_backup_into_store_itself_raises(source):
    settings = Settings(home=source.path.parent, backup_url=str(source.path))

    with pytest.raises(ConfigurationError, match="is the graph store itself"):
        backup_namespace(source, settings, TENANT, MEMORY)

    assert source.counts(TENANT, MEMORY)["documents"] > 0


def test_backup_unknown_scheme_raises(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="unsupported scheme 'ftp'"):
        open_backup_store("ftp://backups.example/graph.db", replica_folder=tmp_path, auth_token="token")


def test_remote_backup_without_token_raises(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="GRAPHMEM_BACKUP_AUTH_TOKEN"):
        open_backup_store("libsql://graph-backups.example.turso.io", replica_folder=tmp_path)


def closed_port() -> int:
    """Return a local port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_remote_backup_unreachable_raises(tmp_path: Path):
    url = f"libsql://127.0.0.1:{closed_port()}"

    with pytest.raises(StoreError, match="could not sync"):
        open_backup_store(url, replica_folder=tmp_path, auth_token="token")


def test_display_target_drops_credentials():
    assert display_target("libsql://user:secret@db.example.turso.io/x?authToken=secret") == "libsql://db.example.turso.io/x"
    assert display_target("https://db.example.turso.io:8443") == "https://db.example.turso.io:8443"
    assert display_target("/var/backups/graph.db") == "/var/backups/graph.db"
