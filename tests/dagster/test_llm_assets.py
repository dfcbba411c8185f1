"""The `extracted_triples` asset with the LLM extractor reports failures, token usage and cost in its metadata."""

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from graphmem_core import ids
from graphmem_core.batches import register_batch
from graphmem_core.models import Chunk, Document
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from graphmem_dagster.ingestion.assets import extracted_triples
from graphmem_dagster.ingestion.resources import ExtractorResource, GraphStoreResource
from tests.conftest import PODCASTS_ZIP, require_corpus
from tests.fake_openai import RECORDINGS_FOLDER, FakeOpenAI

TENANT = "default"
MEMORY = "default"
RECORDED_CHUNKS = 3


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def recorded_texts() -> list[str]:
    with zipfile.ZipFile(require_corpus(PODCASTS_ZIP)) as zipped:
        texts = []
        for path in sorted(RECORDINGS_FOLDER.glob("*.json"))[:RECORDED_CHUNKS]:
            member = json.loads(path.read_text(encoding="utf-8"))["source"].split(":", 1)[1]
            texts.append(zipped.read(member).decode("utf-8"))
    return texts


def store_batch(home: Path, texts: list[str]) -> str:
    """Register a batch and store one document and one chunk per text under it, as the earlier assets would."""
    inputs = home / "inputs"
    inputs.mkdir(parents=True)
    for index, text in enumerate(texts):
        (inputs / f"transcript-{index}.txt").write_text(text, encoding="utf-8")
    manifest = register_batch([inputs], TENANT, MEMORY, home / "batches")

    documents = [Document(id=ids.document_id(TENANT, MEMORY, t), tenant=TENANT, memory=MEMORY, text=t, source=f"t{i}.txt") for i, t in enumerate(texts)]
    chunks = [
        Chunk(
            id=ids.chunk_id(d.id, 0, len(d.text), d.text),
            document_id=d.id,
            tenant=TENANT,
            memory=MEMORY,
            index=0,
            text=d.text,
            start=0,
            end=len(d.text),
            token_count=len(d.text.split()),
            text_hash=ids.text_hash(d.text),
        )
        for d in documents
    ]
    store = LibsqlGraphStore(home / "graph.db")
    try:
        store.upsert_documents(TENANT, MEMORY, manifest.batch_id, documents)
        store.upsert_chunks(TENANT, MEMORY, chunks)
    finally:
        store.close()
    return manifest.batch_id


def test_extraction_metadata_reports_llm(server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    texts = recorded_texts()
    batch_id = store_batch(tmp_path / "home", texts)
    monkeypatch.setenv("GRAPHMEM_LLM_MAX_REASKS", "0")
    monkeypatch.setenv("GRAPHMEM_LLM_PRICE_PER_1K_INPUT", "0.5")
    monkeypatch.setenv("GRAPHMEM_LLM_PRICE_PER_1K_OUTPUT", "1.5")
    server.add_fault("schema", times=None, text_hash=ids.text_hash(texts[0]))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batches", [batch_id])
    resources = {
        "graph_store": GraphStoreResource(home=str(tmp_path / "home")),
        "extractor": ExtractorResource(name="llm", llm_base_url=server.base_url, llm_model="fake-model"),
    }

    result = materialize([extracted_triples], partition_key=batch_id, instance=instance, resources=resources)

    assert result.success
    [materialization] = result.asset_materializations_for_node("extracted_triples")
    assert materialization.asset_key == AssetKey("extracted_triples")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    prompt = sum(r.usage["prompt_tokens"] for r in server.requests if r.usage)
    completion = sum(r.usage["completion_tokens"] for r in server.requests if r.usage)
    assert metadata["extracted"] == RECORDED_CHUNKS - 1
    assert metadata["failed"] == 1
    assert metadata["llm_requests"] == RECORDED_CHUNKS
    assert metadata["prompt_tokens"] == prompt
    assert metadata["completion_tokens"] == completion
    assert metadata["estimated_cost"] == pytest.approx(prompt / 1000 * 0.5 + completion / 1000 * 1.5, abs=1e-6)
    assert metadata["extractor"] == "llm@1:fake-model:1"
    assert "invalid output after 1 attempt:" in metadata["failures"]
