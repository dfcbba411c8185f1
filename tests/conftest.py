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


# Variable that `scripts/services/with-services` sets for each service. Other names read GRAPHMEM_TEST_<NAME>_URL.
SERVICE_VARIABLES = {
    "neo4j": "GRAPHMEM_TEST_NEO4J_URI",
    "kafka": "GRAPHMEM_TEST_KAFKA_BOOTSTRAP",
    "postgres": "GRAPHMEM_TEST_POSTGRES_URL",
    "redis": "GRAPHMEM_TEST_REDIS_URL",
}


def service_url(name: str) -> str:
    """Return the address of the `name` server to test against, from its GRAPHMEM_TEST_* variable, or skip the test.

    With `GRAPHMEM_TEST_REQUIRE_SERVICES=1`, as `with-services` sets it, a missing address fails the
    test instead, so that a run meant to test every service cannot pass by skipping.
    """
    variable = SERVICE_VARIABLES.get(name.lower(), f"GRAPHMEM_TEST_{name.upper()}_URL")
    url = os.environ.get(variable, "").strip()
    if url:
        return url

    message = f"{variable} is not set: point it at a {name} server to run this test, or run the tests under scripts/services/with-services"
    if os.environ.get("GRAPHMEM_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}. GRAPHMEM_TEST_REQUIRE_SERVICES=1 requires every service", pytrace=False)
    pytest.skip(message)


def neo4j_password() -> str:
    """Return the password of the test Neo4j server; the service scripts default to this one."""
    return os.environ.get("GRAPHMEM_TEST_NEO4J_PASSWORD", "graphmem-test-password")


def delete_neo4j_tenants(*tenants: str) -> None:
    """Delete every node of these tenants on the test Neo4j server, so a test starts from an empty store."""
    import neo4j

    with neo4j.GraphDatabase.driver(service_url("neo4j"), auth=("neo4j", neo4j_password())) as driver:
        with driver.session() as session:
            session.run(
                "MATCH (n) WHERE n.tenant IN $tenants CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 5000 ROWS",
                tenants=list(tenants),
            ).consume()


def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete the keys under `prefix` that a test wrote to the test Redis server."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
