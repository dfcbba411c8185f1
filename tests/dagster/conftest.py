"""A project folder with a real batch ingested through `dagster job launch`, shared by the Dagster tests."""

import json
import os
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PODCASTS_ZIP, require_corpus

PODCAST_DOCUMENTS = 300

# Small enough that the oversized test file is rejected, large enough for every transcript.
MAX_FILE_BYTES = 200_000

BAD_FILES = {
    "empty.txt": "empty",
    "binary.txt": "binary",
    "latin1.txt": "UTF-8",
    "oversized.txt": "over the limit",
    "slides.pdf": "unsupported",
}


@dataclass(frozen=True)
class Project:
    """A folder laid out like a user's checkout: instance, graph home and an input folder."""

    root: Path
    dagster_home: Path
    graphmem_home: Path
    inputs: Path

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "GRAPHMEM_HOME": str(self.graphmem_home),
            "GRAPHMEM_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
            "HF_HUB_OFFLINE": "1",
        }

    def run(self, *command: str, timeout: float = 900, extra_environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environment = {**self.environment(), **(extra_environment or {})}
        return subprocess.run(command, cwd=self.root, env=environment, capture_output=True, text=True, timeout=timeout, check=False)


def write_inputs(folder: Path) -> None:
    """Write 300 real transcripts, one JSON Lines file with good and bad lines, and one file of each bad kind."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(require_corpus(PODCASTS_ZIP)) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".txt"))
        texts = [archive.read(name).decode("utf-8") for name in names[: PODCAST_DOCUMENTS + 1]]
    for index, text in enumerate(texts[:PODCAST_DOCUMENTS]):
        (folder / f"transcript-{index:04d}.txt").write_text(text, encoding="utf-8")

    lines = [
        json.dumps({"text": texts[PODCAST_DOCUMENTS], "title": "JSON Lines transcript", "metadata": {"episode": 7}}),
        "{this is not json",
        json.dumps({"title": "no text field"}),
    ]
    (folder / "episodes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 binary payload \x00" * 50)
    (folder / "latin1.txt").write_bytes("Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9.".encode("latin-1"))
    (folder / "oversized.txt").write_text(" ".join(texts) * 2, encoding="utf-8")
    (folder / "slides.pdf").write_bytes(b"%PDF-1.4 not really a pdf")


def launch_with_dagster(project: Project, batch_id: str) -> str:
    """Launch the ingest job for `batch_id` with the `dagster job launch` command; return the run id."""
    run_id = str(uuid.uuid4())
    completed = project.run(
        sys.executable, "-m", "dagster", "job", "launch",
        "-m", "graphmem_dagster.definitions", "-j", "ingest",
        "--run-id", run_id,
        "--tags", json.dumps({"dagster/partition": batch_id}),
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return run_id


@dataclass(frozen=True)
class IngestedProject:
    project: Project
    batch_id: str
    run_id: str


@pytest.fixture(scope="session")
def ingested(tmp_path_factory) -> IngestedProject:
    """Register the input folder as a batch and ingest it once with `dagster job launch`."""
    from graphmem_core.batches import register_batch

    root = tmp_path_factory.mktemp("project")
    project = Project(root=root, dagster_home=root / ".dagster_home", graphmem_home=root / ".graphmem", inputs=root / "inputs")
    project.dagster_home.mkdir()
    (project.dagster_home / "dagster.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    write_inputs(project.inputs)

    manifest = register_batch([project.inputs], "default", "default", project.graphmem_home / "batches")
    add_partition = project.run(
        sys.executable, "-c",
        f"from dagster import DagsterInstance; DagsterInstance.get().add_dynamic_partitions('batches', [{manifest.batch_id!r}])",
    )
    assert add_partition.returncode == 0, add_partition.stderr
    run_id = launch_with_dagster(project, manifest.batch_id)
    return IngestedProject(project=project, batch_id=manifest.batch_id, run_id=run_id)
