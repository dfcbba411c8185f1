"""Shared fixtures: the real corpora beside the project and one loaded embedding model."""

import os
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

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


def connect_postgres(url: str, database: str | None = None):
    """Open a psycopg2 connection to `database` (default: the URL's own) on the server at `url`."""
    import psycopg2

    parts = urlsplit(url)
    return psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=database or parts.path.lstrip("/") or "postgres",
    )


@pytest.fixture
def postgres_database() -> Iterator[tuple[str, str]]:
    """Create a database with a unique name on the test server; yield (server URL, database name) and drop it."""
    from psycopg2 import sql

    url = service_url("postgres")
    name = f"graphmem_test_{uuid.uuid4().hex[:12]}"
    admin = connect_postgres(url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield url, name
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def postgres_variables(url: str, database: str) -> dict[str, str]:
    """Return the DAGSTER_PG_* variables that point dagster.postgres.yaml at `database` on the server at `url`."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": unquote(parts.username or ""),
        "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
        "DAGSTER_PG_DB": database,
    }
