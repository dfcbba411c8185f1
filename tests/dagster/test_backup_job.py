"""`graphmem backup` and `graphmem restore` as commands, and the `graph_backup` asset materialised in process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import materialize

from graphmem_core.stores.libsql_store import LibsqlGraphStore
from graphmem_dagster.backup.assets import graph_backup
from graphmem_dagster.ingestion.resources import GraphStoreResource
from tests.core.test_backup import MEMORY, TENANT, assert_same_namespace, build_source_graph, snapshot

COMMAND_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def source_home(tmp_path_factory, podcast_texts, embedder) -> Path:
    home = tmp_path_factory.mktemp("source") / "home"
    build_source_graph(home, podcast_texts, embedder)
    return home


def graphmem(home: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Run the `graphmem` command with GRAPHMEM_HOME set to `home`."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GRAPHMEM_")}
    environment["GRAPHMEM_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "graphmem_dagster.cli", *arguments, "--tenant", TENANT, "--memory", MEMORY],
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def test_cli_backup_then_restore(source_home: Path, tmp_path: Path):
    backup_file = tmp_path / "backup.db"
    new_home = tmp_path / "restored"

    backed_up = graphmem(source_home, "backup", "--target", str(backup_file))
    restored = graphmem(new_home, "restore", str(backup_file))

    assert backed_up.returncode == 0, backed_up.stderr
    assert restored.returncode == 0, restored.stderr
    backup_output = json.loads(backed_up.stdout)
    restore_output = json.loads(restored.stdout)
    assert backup_output["target"] == str(backup_file)
    assert restore_output["store"] == "libsql"
    source = LibsqlGraphStore(source_home / "graph.db")
    target = LibsqlGraphStore(new_home / "graph.db")
    try:
        expected = snapshot(source)
        assert {key: backup_output[key] for key in expected.counts} == expected.counts
        assert {key: restore_output[key] for key in expected.counts} == expected.counts
        assert_same_namespace(snapshot(target), expected)
    finally:
        source.close()
        target.close()


def test_cli_restore_needs_replace(source_home: Path, tmp_path: Path):
    backup_file = tmp_path / "backup.db"
    new_home = tmp_path / "restored"
    assert graphmem(source_home, "backup", "--target", str(backup_file)).returncode == 0
    assert graphmem(new_home, "restore", str(backup_file)).returncode == 0

    rejected = graphmem(new_home, "restore", str(backup_file))
    replaced = graphmem(new_home, "restore", str(backup_file), "--replace")

    assert rejected.returncode == 2
    assert f"namespace {TENANT}/{MEMORY}" in rejected.stderr
    assert "--replace" in rejected.stderr
    assert replaced.returncode == 0, replaced.stderr


def test_cli_restore_missing_backup(tmp_path: Path):
    missing = tmp_path / "missing.db"

    completed = graphmem(tmp_path / "home", "restore", str(missing))

    assert completed.returncode == 2
    assert f"backup file {missing} not found" in completed.stderr
    assert not missing.exists()


def test_graph_backup_materialises(source_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GRAPHMEM_BACKUP_URL", raising=False)
    resource = GraphStoreResource(home=str(source_home), tenant=TENANT, memory=MEMORY)
    default_target = source_home / "backups" / "graph.db"

    result = materialize([graph_backup], resources={"graph_store": resource})

    assert result.success
    metadata = result.asset_materializations_for_node("graph_backup")[0].metadata
    assert metadata["target"].value == str(default_target)
    assert metadata["tenant"].value == TENANT
    source = LibsqlGraphStore(source_home / "graph.db")
    backup = LibsqlGraphStore(default_target)
    try:
        expected = snapshot(source)
        assert {key: metadata[key].value for key in expected.counts} == expected.counts
        assert_same_namespace(snapshot(backup), expected)
    finally:
        source.close()
        backup.close()
