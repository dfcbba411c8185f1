"""Tests of `graphmem merges`, `graphmem unmerge` and `graphmem allow-merge` on a real libSQL store."""

import json
from pathlib import Path

import pytest

from graphmem_core import pipeline
from graphmem_core.extraction import get_extractor
from graphmem_core.models import EntityType, ExtractionResult, Mention
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from graphmem_dagster.cli import main as graphmem_main

TENANT = "default"
MEMORY = "default"

# Two chunks that name one person three ways, and a third person with another surname.
CHUNKS = {
    "chk_1": ("Grace Hopper wrote the first compiler.", ["Grace Hopper"]),
    "chk_2": ("Hopper later joined the Navy, and Dr. Hopper taught.", ["Hopper", "Dr. Hopper"]),
    "chk_3": ("Alan Turing wrote about machines.", ["Alan Turing"]),
}


def extraction_results() -> list[ExtractionResult]:
    """Build the fast extractor's view of CHUNKS: one PERSON mention per listed name."""
    results = []
    for chunk_id, (text, names) in CHUNKS.items():
        mentions = []
        for name in names:
            start = text.index(name)
            mentions.append(Mention(chunk_id=chunk_id, text=name, type=EntityType.PERSON, start=start, end=start + len(name)))
        results.append(ExtractionResult(chunk_id=chunk_id, mentions=mentions, relations=[]))
    return results


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return a GRAPHMEM_HOME whose libSQL store contains a resolved graph of CHUNKS."""
    monkeypatch.setenv("GRAPHMEM_HOME", str(tmp_path))
    monkeypatch.setenv("GRAPHMEM_STORE", "libsql")
    monkeypatch.delenv("GRAPHMEM_TENANT", raising=False)
    monkeypatch.delenv("GRAPHMEM_MEMORY", raising=False)
    store = LibsqlGraphStore(tmp_path / "graph.db")
    try:
        extractor = get_extractor("fast")
        store.upsert_extractions(TENANT, MEMORY, extractor.cache_key, extraction_results())
        pipeline.resolve_graph(store, extractor, TENANT, MEMORY, None, 0.9)
    finally:
        store.close()
    return tmp_path


def resolve_again(home: Path) -> pipeline.ResolveReport:
    """Run resolution on the stored extractions, as the next ingestion run would."""
    store = LibsqlGraphStore(home / "graph.db")
    try:
        return pipeline.resolve_graph(store, get_extractor("fast"), TENANT, MEMORY, None, 0.9)
    finally:
        store.close()


def merges_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict:
    """Run `graphmem merges --json` and return its output."""
    capsys.readouterr()
    assert graphmem_main(["merges", "--json", *arguments]) == 0
    return json.loads(capsys.readouterr().out)


def test_merges_lists_records(home: Path, capsys: pytest.CaptureFixture[str]):
    assert graphmem_main(["merges"]) == 0
    output = capsys.readouterr().out

    assert "Hopper (PERSON) + Grace Hopper (PERSON) -> Grace Hopper: surname" in output
    assert "Dr. Hopper (PERSON)" in output
    assert "2 merges" in output


def test_merges_of_one_entity(home: Path, capsys: pytest.CaptureFixture[str]):
    hopper = merges_json(capsys, "--entity", "grace hopper")
    turing = merges_json(capsys, "--entity", "Alan Turing")

    assert [record["rule"] for record in hopper["merges"]] == ["surname", "surname"]
    assert turing["merges"] == []
    assert hopper["exclusions"] == []


def test_merges_unknown_entity_fails(home: Path, capsys: pytest.CaptureFixture[str]):
    assert graphmem_main(["merges", "--entity", "Ada Lovelace"]) == 2
    assert "entity 'Ada Lovelace' not found in default/default" in capsys.readouterr().err


def test_unmerge_then_allow_merge(home: Path, capsys: pytest.CaptureFixture[str]):
    assert graphmem_main(["unmerge", "Grace Hopper", "Hopper", "--note", "two people"]) == 0
    assert "stay apart" in capsys.readouterr().out

    apart = resolve_again(home)
    listed = merges_json(capsys)
    assert (apart.mode, apart.exclusions) == ("full", 1)
    assert listed["exclusions"][0]["note"] == "two people"
    assert merges_json(capsys, "--entity", "Hopper")["merges"] == []
    assert len(merges_json(capsys, "--entity", "Grace Hopper")["merges"]) == 1

    assert graphmem_main(["allow-merge", "hopper", "GRACE HOPPER"]) == 0
    assert "may merge again" in capsys.readouterr().out
    together = resolve_again(home)
    assert together.exclusions == 0
    assert len(merges_json(capsys, "--entity", "Grace Hopper")["merges"]) == 2


def test_allow_merge_without_exclusion(home: Path, capsys: pytest.CaptureFixture[str]):
    assert graphmem_main(["allow-merge", "Grace Hopper", "Alan Turing"]) == 0
    assert "were not excluded" in capsys.readouterr().out


def test_unmerge_same_name_rejected(home: Path, capsys: pytest.CaptureFixture[str]):
    assert graphmem_main(["unmerge", "Hopper", "HOPPER"]) == 2
    assert "fold to the same name" in capsys.readouterr().err


def test_merges_without_store_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("GRAPHMEM_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("GRAPHMEM_STORE", "libsql")

    assert graphmem_main(["merges"]) == 2
    assert "not found" in capsys.readouterr().err
