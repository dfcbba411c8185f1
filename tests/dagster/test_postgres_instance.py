"""The PostgreSQL Dagster instance: selection by GRAPHMEM_DAGSTER_INSTANCE, and an ingest run stored in PostgreSQL."""

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from graphmem_core.errors import ConfigurationError
from graphmem_dagster.cli import INSTANCE_KINDS, ensure_dagster_home
from tests.conftest import PODCASTS_ZIP, PROJECT_ROOT, connect_postgres, postgres_variables, require_corpus
from tests.daemon import daemon_environment, start_daemon, stop_daemon, wait_for

POSTGRES_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
TRANSCRIPTS = 3
LAUNCH_TIMEOUT_SECONDS = 300


def load_yaml(text: str) -> dict:
    return yaml.safe_load(text)


@pytest.mark.parametrize("kind", sorted(INSTANCE_KINDS))
def test_project_file_matches_fallback(kind: str):
    project_name, fallback_text = INSTANCE_KINDS[kind]

    project_config = load_yaml((PROJECT_ROOT / project_name).read_text(encoding="utf-8"))

    assert project_config == load_yaml(fallback_text)


def test_postgres_file_queues_runs():
    sqlite_config = load_yaml((PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8"))
    postgres_config = load_yaml((PROJECT_ROOT / "dagster.postgres.yaml").read_text(encoding="utf-8"))

    for section in ("run_launcher", "python_logs", "telemetry"):
        assert postgres_config[section] == sqlite_config[section], section
    for section in ("run_storage", "event_log_storage", "schedule_storage"):
        assert postgres_config[section]["module"].startswith("dagster_postgres."), section
    assert sqlite_config["run_coordinator"]["class"] == "DefaultRunCoordinator"
    assert postgres_config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert postgres_config["run_coordinator"]["config"]["max_concurrent_runs"] == 4


@pytest.fixture
def instance_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the project root with DAGSTER_HOME in a new folder and placeholder PostgreSQL variables."""
    monkeypatch.chdir(PROJECT_ROOT)
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("GRAPHMEM_DAGSTER_INSTANCE", raising=False)
    for name in POSTGRES_VARIABLES:
        monkeypatch.setenv(name, "unused")
    return home


def test_ensure_home_default_sqlite(instance_environment: Path):
    home = ensure_dagster_home()

    assert (home / "dagster.yaml").read_text(encoding="utf-8") == (PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8")


def test_ensure_home_postgres(instance_environment: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRAPHMEM_DAGSTER_INSTANCE", "postgres")

    home = ensure_dagster_home()

    assert (home / "dagster.yaml").read_text(encoding="utf-8") == (PROJECT_ROOT / "dagster.postgres.yaml").read_text(encoding="utf-8")


def test_ensure_home_postgres_without_checkout(instance_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRAPHMEM_DAGSTER_INSTANCE", "postgres")

    home = ensure_dagster_home()

    assert (home / "dagster.yaml").read_text(encoding="utf-8") == INSTANCE_KINDS["postgres"][1]


def test_ensure_home_unknown_kind_raises(instance_environment: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRAPHMEM_DAGSTER_INSTANCE", "mysql")

    with pytest.raises(ConfigurationError, match="GRAPHMEM_DAGSTER_INSTANCE='mysql'.*sqlite, postgres"):
        ensure_dagster_home()

    assert not (instance_environment / "dagster.yaml").exists()


def test_ensure_home_keeps_other_kind(instance_environment: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    ensure_dagster_home()
    sqlite_text = (instance_environment / "dagster.yaml").read_text(encoding="utf-8")
    monkeypatch.setenv("GRAPHMEM_DAGSTER_INSTANCE", "postgres")

    with caplog.at_level(logging.WARNING, logger="graphmem"):
        ensure_dagster_home()

    assert (instance_environment / "dagster.yaml").read_text(encoding="utf-8") == sqlite_text
    assert f"using the existing sqlite instance {instance_environment / 'dagster.yaml'}" in caplog.text


def test_ensure_home_missing_variable_raises(instance_environment: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRAPHMEM_DAGSTER_INSTANCE", "postgres")
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")

    with pytest.raises(ConfigurationError, match="missing environment variables DAGSTER_PG_PASSWORD, which"):
        ensure_dagster_home()


def make_instance(home: Path, kind: str) -> subprocess.CompletedProcess:
    """Run the Makefile rule that creates `home/dagster.yaml` for `kind`."""
    return subprocess.run(
        ["make", "-s", f"{home}/dagster.yaml", f"DAGSTER_HOME={home}", f"GRAPHMEM_DAGSTER_INSTANCE={kind}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_selects_instance_file(tmp_path: Path):
    home = tmp_path / "home"

    created = make_instance(home, "postgres")
    reused = make_instance(home, "sqlite")
    rejected = make_instance(tmp_path / "other", "mysql")

    assert created.returncode == 0, created.stderr
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == (PROJECT_ROOT / "dagster.postgres.yaml").read_text(encoding="utf-8")
    assert reused.returncode == 0, reused.stderr
    assert "using the existing postgres instance" in reused.stdout
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == (PROJECT_ROOT / "dagster.postgres.yaml").read_text(encoding="utf-8")
    assert rejected.returncode != 0
    assert "GRAPHMEM_DAGSTER_INSTANCE=mysql is not a Dagster instance kind" in rejected.stderr


# End to end against a PostgreSQL server


@pytest.mark.slow
def test_ingest_run_stored_in_postgres(postgres_database: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dagster import DagsterInstance, DagsterRunStatus

    from graphmem_core.batches import register_batch

    url, database = postgres_database
    dagster_home = tmp_path / "dagster_home"
    graphmem_home = tmp_path / "graphmem_home"
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    with zipfile.ZipFile(require_corpus(PODCASTS_ZIP)) as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".txt"))[:TRANSCRIPTS]
        for index, name in enumerate(names):
            (inputs / f"transcript-{index}.txt").write_bytes(archive.read(name))

    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("GRAPHMEM_HOME", str(graphmem_home))
    monkeypatch.setenv("GRAPHMEM_DAGSTER_INSTANCE", "postgres")
    for name, value in postgres_variables(url, database).items():
        monkeypatch.setenv(name, value)
    ensure_dagster_home()
    manifest = register_batch([inputs], "default", "default", graphmem_home / "batches")
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("batches", [manifest.batch_id])

    run_id = str(uuid.uuid4())
    launched = subprocess.run(
        [
            sys.executable, "-m", "dagster", "job", "launch",
            "-m", "graphmem_dagster.definitions", "-j", "ingest",
            "--run-id", run_id,
            "--tags", json.dumps({"dagster/partition": manifest.batch_id}),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT_SECONDS,
        check=False,
    )

    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.QUEUED

    log_path = tmp_path / "daemon.log"
    daemon = start_daemon(PROJECT_ROOT, daemon_environment(), log_path)
    try:
        run = wait_for(
            lambda: (found := instance.get_run_by_id(run_id)) is not None and found.is_finished and found,
            LAUNCH_TIMEOUT_SECONDS,
            f"run {run_id} did not finish",
            process=daemon,
            log_path=log_path,
        )
        assert run.status == DagsterRunStatus.SUCCESS
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    finally:
        stop_daemon(daemon)
        instance.dispose()
    with connect_postgres(url, database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        rows = cursor.fetchall()
    connection.close()
    assert rows == [("SUCCESS",)]
    assert not list(dagster_home.rglob("*.db")), "no sqlite storage should be created in DAGSTER_HOME"
