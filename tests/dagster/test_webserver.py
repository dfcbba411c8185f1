"""The Dagster webserver, started on 127.0.0.1, serves the asset graph, partitions and checks over GraphQL."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.dagster.conftest import IngestedProject

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 180

ASSET_NODES_QUERY = """
{
  assetNodes {
    assetKey { path }
    isPartitioned
    partitionKeys
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""

MATERIALIZED_PARTITIONS_QUERY = """
query ($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions } }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(ingested: IngestedProject) -> Iterator[str]:
    """Start `dagster-webserver` on a free loopback port and stop it by pid afterwards."""
    port = free_port()
    log_path = ingested.project.root / "webserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "env", "--default-signal=INT,TERM",
                sys.executable, "-m", "dagster_webserver",
                "-h", "127.0.0.1", "-p", str(port),
                "-m", "graphmem_dagster.definitions",
            ],
            cwd=ingested.project.root,
            env=ingested.project.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {process.returncode}: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer within {STARTUP_SECONDS} s: {log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_asset_graph_served(webserver: str):
    nodes = graphql(webserver, ASSET_NODES_QUERY)["assetNodes"]

    partitioned = sorted(node["assetKey"]["path"][-1] for node in nodes if node["isPartitioned"])
    unpartitioned = sorted(node["assetKey"]["path"][-1] for node in nodes if not node["isPartitioned"])
    assert partitioned == ["communities", "embeddings", "extracted_triples", "raw_documents", "resolved_graph"]
    assert unpartitioned == ["graph_backup"]


def test_partitions_served(webserver: str, ingested: IngestedProject):
    nodes = graphql(webserver, ASSET_NODES_QUERY)["assetNodes"]

    for node in nodes:
        if node["isPartitioned"]:
            assert ingested.batch_id in node["partitionKeys"]
    statuses = graphql(webserver, MATERIALIZED_PARTITIONS_QUERY, {"path": ["communities"]})
    materialized = statuses["assetNodeOrError"]["assetPartitionStatuses"]["materializedPartitions"]
    assert ingested.batch_id in materialized


def test_asset_checks_served(webserver: str):
    nodes = graphql(webserver, ASSET_NODES_QUERY)["assetNodes"]

    checks = {node["assetKey"]["path"][-1]: [c["name"] for c in node["assetChecksOrError"]["checks"]] for node in nodes}
    assert checks["embeddings"] == ["chunks_embedded_unit_norm"]
    assert checks["resolved_graph"] == ["relations_have_entities"]
    assert checks["communities"] == ["membership_covers_graph"]
