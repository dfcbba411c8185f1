"""Ingestion batches: a named, content-hashed list of input files.

A batch id is derived from the namespace and the paths and SHA-256 digests of its files, so
registering the same files twice yields the same batch, and a Dagster partition keyed by it can be
re-materialised at any time. The manifest is a JSON file under `GRAPHMEM_HOME/batches/`.
"""

import hashlib
import json
import logging
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from graphmem_core.documents import list_input_files
from graphmem_core.errors import InvalidInputError
from graphmem_core.ids import content_hash

logger = logging.getLogger(__name__)

_BATCH_ID_HEX_CHARS = 16
_HASH_BLOCK_BYTES = 1 << 20


class BatchFile(BaseModel):
    """One input file of a batch, with the digest it had when the batch was created."""

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    size: int


class BatchManifest(BaseModel):
    """The files of one ingestion batch and the namespace they are ingested into."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    tenant: str
    memory: str
    files: list[BatchFile]


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 digest of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def make_manifest(paths: list[Path], tenant: str, memory: str) -> BatchManifest:
    """Describe the files under `paths` as one batch, without writing anything."""
    files: list[BatchFile] = []
    seen: set[str] = set()
    for path in paths:
        for file in list_input_files(path):
            resolved = str(file.resolve())
            if resolved in seen:
                continue
            seen.add(resolved)
            files.append(BatchFile(path=resolved, sha256=file_sha256(file), size=file.stat().st_size))
    if not files:
        raise InvalidInputError(f"no input files found under {', '.join(str(p) for p in paths)}: add .txt, .md, .jsonl or .zip files")

    files.sort(key=lambda f: f.path)
    batch_id = "batch-" + content_hash(tenant, memory, *(f"{f.path}:{f.sha256}" for f in files))[:_BATCH_ID_HEX_CHARS]
    return BatchManifest(batch_id=batch_id, tenant=tenant, memory=memory, files=files)


def manifest_path(batches_folder: Path, batch_id: str) -> Path:
    """Return where the manifest of `batch_id` is stored."""
    return batches_folder / f"{batch_id}.json"


def save_manifest(batches_folder: Path, manifest: BatchManifest) -> Path:
    """Write the manifest atomically; writing the same batch again leaves the same file."""
    batches_folder.mkdir(parents=True, exist_ok=True)
    target = manifest_path(batches_folder, manifest.batch_id)
    temporary = target.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    os.replace(temporary, target)
    logger.info("saved manifest of %s with %d files at %s", manifest.batch_id, len(manifest.files), target)
    return target


def load_manifest(batches_folder: Path, batch_id: str) -> BatchManifest:
    """Read the manifest of `batch_id`, raising `InvalidInputError` when it is missing or invalid."""
    path = manifest_path(batches_folder, batch_id)
    if not path.is_file():
        raise InvalidInputError(
            f"batch {batch_id!r} has no manifest at {path}: create the batch with `graphmem ingest PATH` "
            "or drop files into the inbox, and check that GRAPHMEM_HOME is the same for the run"
        )
    try:
        return BatchManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InvalidInputError(f"manifest {path} of batch {batch_id!r} is invalid: {error}. Recreate the batch") from error


def register_batch(paths: list[Path], tenant: str, memory: str, batches_folder: Path) -> BatchManifest:
    """Create (or find again) the batch for the files under `paths` and save its manifest."""
    manifest = make_manifest(paths, tenant, memory)
    save_manifest(batches_folder, manifest)
    return manifest


def manifest_summary(manifest: BatchManifest) -> str:
    """Return a one-line JSON summary of a manifest for logs and run tags."""
    return json.dumps({"batch_id": manifest.batch_id, "files": len(manifest.files), "bytes": sum(f.size for f in manifest.files)})
