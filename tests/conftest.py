"""Shared fixtures: the real corpora beside the project and one loaded embedding model."""

import os
import zipfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPORA = PROJECT_ROOT.parent / "shared" / "corpora"
PODCASTS_ZIP = CORPORA / "podcasts" / "transcripts.zip"
MUSIQUE_CORPUS = CORPORA / "musique" / "corpus.json"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def require_corpus(path: Path) -> Path:
    """Return `path`, or skip the test when the shared corpora are not beside the project."""
    if not path.exists():
        pytest.skip(f"corpus {path} not found: clone the project next to its shared/ folder to run this test")
    return path


@pytest.fixture(scope="session")
def podcast_texts() -> list[tuple[str, str]]:
    """Return (file name, text) of every podcast transcript, in archive order."""
    archive = require_corpus(PODCASTS_ZIP)
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(name for name in zipped.namelist() if name.endswith(".txt"))
        return [(Path(name).name, zipped.read(name).decode("utf-8")) for name in names]


@pytest.fixture(scope="session")
def embedder():
    """Return the default embedder, loaded once per test session."""
    from graphmem_core.embeddings import Embedder

    return Embedder()
