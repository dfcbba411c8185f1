"""The same ingestion job, launched with `graphmem ingest`, writing into a real Neo4j server chosen by configuration alone."""

import json
import sys
from pathlib import Path

from tests.conftest import delete_neo4j_tenants, neo4j_password, service_url
from tests.dagster.conftest import Project

TENANT = "dagster-neo4j-test"
DOCUMENTS = 12


def test_ingest_job_writes_to_neo4j(tmp_path: Path, podcast_texts):
    uri = service_url("neo4j")
    password = neo4j_password()
    delete_neo4j_tenants(TENANT)
    project = Project(root=tmp_path, dagster_home=tmp_path / ".dagster_home", graphmem_home=tmp_path / ".graphmem", inputs=tmp_path / "inputs")
    project.dagster_home.mkdir()
    (project.dagster_home / "dagster.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    project.inputs.mkdir()
    for name, text in podcast_texts[:DOCUMENTS]:
        (project.inputs / name).write_text(text, encoding="utf-8")
    neo4j_environment = {
        "GRAPHMEM_STORE": "neo4j",
        "GRAPHMEM_NEO4J_URI": uri,
        "GRAPHMEM_NEO4J_PASSWORD": password,
        "GRAPHMEM_TENANT": TENANT,
    }

    ingest = project.run(sys.executable, "-m", "graphmem_dagster.cli", "ingest", str(project.inputs), extra_environment=neo4j_environment)
    stats = project.run(sys.executable, "-m", "graphmem_dagster.cli", "stats", "--json", extra_environment=neo4j_environment)
    query = project.run(
        sys.executable, "-m", "graphmem_dagster.cli", "query", "--json", "what the guest said about music", extra_environment=neo4j_environment
    )

    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert json.loads(ingest.stdout.strip().splitlines()[-1])["status"] == "SUCCESS"
    counts = json.loads(stats.stdout)
    assert counts["store"] == "neo4j"
    assert counts["documents"] == DOCUMENTS
    assert counts["embedded_chunks"] == counts["chunks"] > 0
    assert counts["entities"] > 0
    assert counts["community_levels"] >= 1
    assert not (project.graphmem_home / "graph.db").exists(), "nothing should be written to the embedded store"
    assert query.returncode == 0, query.stderr[-3000:]
    result = json.loads(query.stdout)
    assert len(result["chunks"]) == 5
    assert all(hit["chunk"]["tenant"] == TENANT for hit in result["chunks"])
