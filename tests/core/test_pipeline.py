"""The pipeline stages over the libSQL store, on real transcripts, without Dagster."""

from pathlib import Path

import numpy as np
import pytest

from graphmem_core import pipeline
from graphmem_core.batches import load_manifest, make_manifest, register_batch
from graphmem_core.embeddings import Embedder, model_key
from graphmem_core.errors import ConfigurationError, InvalidInputError
from graphmem_core.extraction import get_extractor
from graphmem_core.models import EntityType, ExtractionResult, Mention
from graphmem_core.query import QueryEngine
from graphmem_core.stores.libsql_store import LibsqlGraphStore

TENANT = "default"
MEMORY = "default"
MAX_FILE_BYTES = 10_000_000


@pytest.fixture
def inputs(tmp_path: Path, podcast_texts) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, text in podcast_texts[:12]:
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def store(tmp_path: Path):
    opened = LibsqlGraphStore(tmp_path / "home" / "graph.db")
    yield opened
    opened.close()


def run_all(store: LibsqlGraphStore, embedder: Embedder, batches: Path, inputs: Path) -> dict:
    manifest = register_batch([inputs], TENANT, MEMORY, batches)
    extractor = get_extractor("fast")
    return {
        "ingest": pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES),
        "embed": pipeline.embed_batch(store, embedder, TENANT, MEMORY, manifest.batch_id, overlap_tokens=32),
        "extract": pipeline.extract_batch(store, extractor, TENANT, MEMORY, manifest.batch_id),
        "resolve": pipeline.resolve_graph(
            store, extractor, TENANT, MEMORY, pipeline.cached_name_encoder(store, embedder, TENANT), threshold=0.9
        ),
        "communities": pipeline.build_communities(store, TENANT, MEMORY, seed=42),
    }


def test_batch_id_stable(inputs: Path, tmp_path: Path):
    first = make_manifest([inputs], TENANT, MEMORY)
    second = make_manifest([inputs], TENANT, MEMORY)
    other_memory = make_manifest([inputs], TENANT, "other")

    assert first.batch_id == second.batch_id
    assert first.batch_id != other_memory.batch_id
    assert len(first.files) == 12


def test_manifest_missing_raises(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="batch-nope"):
        load_manifest(tmp_path, "batch-nope")


def test_empty_folder_raises(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="no input files"):
        make_manifest([tmp_path], TENANT, MEMORY)


def test_stages_build_graph(store, embedder, inputs: Path, tmp_path: Path):
    reports = run_all(store, embedder, tmp_path / "batches", inputs)

    counts = store.counts(TENANT, MEMORY)
    assert reports["ingest"].new_documents == 12
    assert counts["documents"] == 12
    assert counts["embedded_chunks"] == counts["chunks"] == reports["embed"].chunks
    assert counts["entities"] == reports["resolve"].entities > 0
    assert counts["community_levels"] == reports["communities"].levels >= 1
    assert store.count_dangling_relations(TENANT, MEMORY) == 0
    assert set(store.count_entities_without_community(TENANT, MEMORY).values()) == {0}
    assert any((tmp_path / "home" / "index").iterdir()), "embedding should leave a saved search index"


def test_stages_rerun_changes_nothing(store, embedder, inputs: Path, tmp_path: Path):
    run_all(store, embedder, tmp_path / "batches", inputs)
    counts = store.counts(TENANT, MEMORY)
    version = store.graph_version(TENANT, MEMORY)

    reports = run_all(store, embedder, tmp_path / "batches", inputs)

    assert reports["ingest"].new_documents == 0
    assert reports["embed"].encoded == 0
    assert reports["embed"].new_chunks == 0
    assert reports["extract"].extracted == 0
    assert reports["resolve"].changed is False
    assert reports["communities"].changed is False
    assert store.counts(TENANT, MEMORY) == counts
    assert store.graph_version(TENANT, MEMORY) == version


def test_changed_file_rejected(store, inputs: Path, tmp_path: Path):
    manifest = register_batch([inputs], TENANT, MEMORY, tmp_path / "batches")
    changed = sorted(inputs.iterdir())[0]
    changed.write_text("Different text now.", encoding="utf-8")
    removed = sorted(inputs.iterdir())[1]
    removed.unlink()

    report = pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES)

    reasons = {Path(r.source).name: r.reason for r in report.rejected}
    assert "changed after the batch was created" in reasons[changed.name]
    assert "not found" in reasons[removed.name]
    assert report.documents == 10


def test_embeddings_unit_norm(store, embedder, inputs: Path, tmp_path: Path):
    run_all(store, embedder, tmp_path / "batches", inputs)
    chunks = store.get_chunks(TENANT, MEMORY)

    vectors = store.get_embeddings(TENANT, model_key(embedder.model_name), [c.text_hash for c in chunks])

    assert pipeline.unit_norm_violations(list(vectors.values()), 384) == (0, 0)
    assert all(c.token_count <= embedder.max_tokens for c in chunks)


def test_query_returns_graph(store, embedder, inputs: Path, tmp_path: Path):
    run_all(store, embedder, tmp_path / "batches", inputs)

    result = QueryEngine(store, embedder).query(TENANT, MEMORY, "building computers and software", top_k=3)

    assert len(result.chunks) == 3
    assert result.entities
    top_chunk_entities = {link.entity_id for link in store.get_mention_links(TENANT, MEMORY, [result.chunks[0].chunk.id])}
    assert result.entities[0].id in top_chunk_entities
    assert set(result.timings_ms) == {"embed", "search", "graph", "communities", "total"}


@pytest.mark.parametrize(
    ("text", "top_k", "hops", "message"),
    [("", 5, 1, "empty"), ("x" * 3000, 5, 1, "limit"), ("ok", 0, 1, "top_k"), ("ok", 5, 9, "hops")],
)
def test_query_rejects_bad_arguments(store, embedder, text, top_k, hops, message):
    with pytest.raises(InvalidInputError, match=message):
        QueryEngine(store, embedder).query(TENANT, MEMORY, text, top_k=top_k, hops=hops)


def test_embedder_unit_vectors(embedder):
    vectors = embedder.encode(["graph memory for agents", "another sentence"])

    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedder_missing_model_folder(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="not found"):
        Embedder(str(tmp_path / "no-such-model")).encode(["text"])


def test_resolve_retries_after_concurrent_write(store, embedder, inputs: Path, tmp_path: Path):
    run_all(store, embedder, tmp_path / "batches", inputs)
    extractor = get_extractor("fast")
    late = ExtractionResult(
        chunk_id="chk_late",
        mentions=[Mention(chunk_id="chk_late", text="Zyxwv Quartz", type=EntityType.PERSON, start=0, end=12)],
        relations=[],
    )
    encode = pipeline.cached_name_encoder(store, embedder, TENANT)
    calls = []

    def encode_while_another_run_writes(names: list[str]) -> np.ndarray:
        # The first resolution attempt reads the extractions, then another run stores a new one.
        if not calls:
            store.upsert_extractions(TENANT, MEMORY, extractor.cache_key, [late])
        calls.append(len(names))
        return encode(names)

    report = pipeline.resolve_graph(store, extractor, TENANT, MEMORY, encode_while_another_run_writes, threshold=0.9)

    assert len(calls) >= 2
    assert report.changed is True
    assert "Zyxwv Quartz" in {e.name for e in store.get_entities(TENANT, MEMORY)}


def test_summary_vectors_stored_for_global_ranking(store, embedder, inputs: Path, tmp_path: Path):
    from graphmem_core.ids import text_hash
    from graphmem_core.query_graph import summary_texts

    run_all(store, embedder, tmp_path / "batches", inputs)

    count = pipeline.store_summary_vectors(store, embedder, TENANT, MEMORY)

    texts = summary_texts(store.get_communities(TENANT, MEMORY))
    stored = store.get_embeddings(TENANT, model_key(embedder.model_name), [text_hash(text) for text in texts])
    assert count == len(texts) > 0
    assert len(stored) == len(set(texts))
