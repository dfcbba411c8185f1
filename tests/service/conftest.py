"""Two `graphmem serve` processes over a real graph of podcast transcripts, shared by the service tests.

The main server reads the graphs of two tenants from one libSQL file. The degraded server cannot open its store or
reach its Redis cache and has a one-second request timeout. Both start together, so their model
loading overlaps.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from graphmem_core import pipeline
from graphmem_core.batches import register_batch
from graphmem_core.extraction import get_extractor
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.conftest import PROJECT_ROOT

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"
MEMORY = "default"

# Test keys only: each is long enough for the service's minimum key length.
KEY_A = "test-key-for-tenant-a-7d3f1c"
KEY_B = "test-key-for-tenant-b-91e0aa"
# Read from the keys file as a SHA-256 digest, limited to tenant A's default memory.
KEY_FROM_FILE = "test-key-from-file-4b6e2d"

# Tenant A gets three transcripts and tenant B two others, so the graphs share no document.
TENANT_A_TRANSCRIPTS = slice(0, 3)
TENANT_B_TRANSCRIPTS = slice(10, 12)

# Seconds the degraded server allows per API request; the 504 test keeps a request open longer.
DEGRADED_TIMEOUT_SECONDS = 1.0

# Importing torch and loading the model took 8 to 35 s per process on a busy 2-core machine.
STARTUP_SECONDS = 120
STOP_SECONDS = 20


@dataclass(frozen=True)
class TenantGraph:
    """Ids of what one tenant's ingestion stored, for the tests to ask about."""

    document_ids: frozenset[str]
    entity_ids: frozenset[str]
    community_ids: frozenset[str]
    chunk_id: str
    chunk_text: str


@dataclass(frozen=True)
class ServiceGraph:
    """The libSQL home holding both tenants' graphs."""

    home: Path
    tenants: dict[str, TenantGraph]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ingest(store: LibsqlGraphStore, embedder, tenant: str, folder: Path, batches: Path, texts: list[tuple[str, str]]) -> TenantGraph:
    """Run every pipeline stage on `texts` for `tenant` and return the ids it stored."""
    folder.mkdir(parents=True)
    for name, text in texts:
        (folder / name).write_text(text, encoding="utf-8")
    manifest = register_batch([folder], tenant, MEMORY, batches)
    extractor = get_extractor("fast")
    pipeline.ingest_batch(store, manifest, 10_000_000)
    pipeline.embed_batch(store, embedder, tenant, MEMORY, manifest.batch_id, overlap_tokens=32)
    pipeline.extract_batch(store, extractor, tenant, MEMORY, manifest.batch_id)
    pipeline.resolve_graph(store, extractor, tenant, MEMORY, pipeline.cached_name_encoder(store, embedder, tenant), threshold=0.9)
    pipeline.build_communities(store, tenant, MEMORY, seed=42)

    chunks = store.get_chunks(tenant, MEMORY)
    # A long chunk from the middle, so that a query made of its text has one clear best match.
    chunk = sorted(chunks, key=lambda item: (-len(item.text), item.id))[0]
    return TenantGraph(
        document_ids=frozenset(document.id for document in store.get_batch_documents(tenant, MEMORY, manifest.batch_id)),
        entity_ids=frozenset(entity.id for entity in store.get_entities(tenant, MEMORY)),
        community_ids=frozenset(community.id for community in store.get_communities(tenant, MEMORY)),
        chunk_id=chunk.id,
        chunk_text=chunk.text,
    )


@pytest.fixture(scope="session")
def service_root(tmp_path_factory) -> Path:
    """Return the folder of the graph, the keys file and the server logs."""
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="session")
def service_graph(service_root: Path, podcast_texts, embedder) -> ServiceGraph:
    """Build both tenants' graphs in one libSQL file, which the main server may already have open."""
    root = service_root
    home = root / "home"
    store = LibsqlGraphStore(home / "graph.db")
    try:
        tenants = {
            TENANT_A: ingest(store, embedder, TENANT_A, root / "inputs-a", root / "batches", podcast_texts[TENANT_A_TRANSCRIPTS]),
            TENANT_B: ingest(store, embedder, TENANT_B, root / "inputs-b", root / "batches", podcast_texts[TENANT_B_TRANSCRIPTS]),
        }
    finally:
        store.close()
    return ServiceGraph(home=home, tenants=tenants)


class ServiceProcess:
    """One `graphmem serve` subprocess on a free loopback port, with its output in a log file."""

    def __init__(self, name: str, folder: Path, environment: dict[str, str]) -> None:
        self.name = name
        self.home = Path(environment["GRAPHMEM_HOME"])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "graphmem_dagster.cli", "-v", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=PROJECT_ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until_serving(self, path: str) -> None:
        """Wait until GET `path` returns any status, failing with the log when the process exits or never responds."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} server exited with code {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                httpx.get(f"{self.url}{path}", timeout=2.0)
                return
            except httpx.TransportError:
                time.sleep(0.25)
        pytest.fail(f"{self.name} server did not respond to {path} within {STARTUP_SECONDS} s:\n{self.log()[-4000:]}")

    def request_stop(self) -> None:
        """Send SIGINT to the server's pid, as Ctrl-C would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait_stopped(self) -> None:
        """Wait for the server to exit after `request_stop`, killing it when it takes longer than STOP_SECONDS."""
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_SECONDS)


def base_environment(home: Path, keys_file: Path) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GRAPHMEM_")}
    environment.update(
        {
            "GRAPHMEM_HOME": str(home),
            "GRAPHMEM_STORE": "libsql",
            "GRAPHMEM_CACHE": "memory",
            "GRAPHMEM_API_KEYS": f"{KEY_A}:{TENANT_A},{KEY_B}:{TENANT_B}:{MEMORY}",
            "GRAPHMEM_API_KEYS_FILE": str(keys_file),
            "HF_HUB_OFFLINE": "1",
            # The access log goes to stdout, which is a file here: unbuffered, a test reads it at once.
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment


@pytest.fixture(scope="session")
def servers(service_root: Path) -> Iterator[dict[str, ServiceProcess]]:
    """Start the main and the degraded server together, and stop both when the session ends.

    They start before the graph is built, so that their model loading overlaps the ingestion. The
    main server opens the libSQL file while the test process writes it, as a running service does
    while a Dagster run ingests.
    """
    folder = service_root
    keys_file = folder / "keys.json"
    digest = hashlib.sha256(KEY_FROM_FILE.encode("utf-8")).hexdigest()
    keys_file.write_text(json.dumps([{"sha256": digest, "tenant": TENANT_A, "memories": [MEMORY]}]), encoding="utf-8")

    # A regular file where the degraded server's GRAPHMEM_HOME folder would have to be created.
    blocker = folder / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    degraded_environment = base_environment(blocker / "home", keys_file)
    degraded_environment.update(
        {
            "GRAPHMEM_CACHE": "redis",
            # Nothing listens on a port that was just free, so every Redis call is refused.
            "GRAPHMEM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS": str(DEGRADED_TIMEOUT_SECONDS),
        }
    )

    started = {
        "main": ServiceProcess("main", folder, base_environment(folder / "home", keys_file)),
        "degraded": ServiceProcess("degraded", folder, degraded_environment),
    }
    try:
        yield started
    finally:
        # Both are asked to stop before waiting for either, so that their shutdowns overlap.
        for server in started.values():
            server.request_stop()
        for server in started.values():
            server.wait_stopped()


@pytest.fixture(scope="session")
def main_server(servers: dict[str, ServiceProcess], service_graph: ServiceGraph) -> ServiceProcess:
    """Return the server of both tenants' graphs once they are built and /readyz reports it ready."""
    server = servers["main"]
    server.wait_until_serving("/healthz")
    response = httpx.get(f"{server.url}/readyz", timeout=10.0)
    assert response.status_code == 200, f"main server is not ready: {response.text}\n{server.log()[-4000:]}"
    return server


@pytest.fixture(scope="session")
def degraded_server(servers: dict[str, ServiceProcess]) -> ServiceProcess:
    """Return the server whose store and cache are unreachable once it serves /healthz."""
    server = servers["degraded"]
    server.wait_until_serving("/healthz")
    return server


@pytest.fixture
def client_a(main_server: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=main_server.url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60.0) as client:
        yield client


@pytest.fixture
def client_b(main_server: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=main_server.url, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=60.0) as client:
        yield client


@pytest.fixture
def anonymous(main_server: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=main_server.url, timeout=60.0) as client:
        yield client
