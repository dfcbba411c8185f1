"""The query service's API routes over a real graph, served by `graphmem serve` on 127.0.0.1."""

import xml.etree.ElementTree as ElementTree

import httpx
import pytest

from graphmem_service.state import engine_accepts_mode
from tests.service.conftest import MEMORY, TENANT_A, ServiceGraph

pytestmark = pytest.mark.slow

QUESTION = "How do engineers think about creativity and building new technology?"

SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"


def query(client: httpx.Client, text: str = QUESTION, **fields) -> httpx.Response:
    return client.post("/v1/query", json={"query": text, **fields})


def test_query_response_shape(client_a: httpx.Client, service_graph: ServiceGraph):
    response = query(client_a, top_k=4, hops=1)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"query", "memory", "mode", "chunks", "entities", "relations", "communities", "timings_ms", "cached"}
    assert body["query"] == QUESTION
    assert body["memory"] == MEMORY
    assert body["mode"] == "hybrid"
    assert len(body["chunks"]) == 4
    assert [chunk["rank"] for chunk in body["chunks"]] == [1, 2, 3, 4]
    scores = [chunk["score"] for chunk in body["chunks"]]
    assert scores == sorted(scores, reverse=True)
    tenant = service_graph.tenants[TENANT_A]
    for chunk in body["chunks"]:
        assert chunk["text"]
        assert chunk["document_id"] in tenant.document_ids
        assert chunk["document_title"]
        assert 0 <= chunk["start"] < chunk["end"]
    assert body["entities"], "the top chunks of three transcripts mention entities"
    assert all(entity["tenant"] == TENANT_A for entity in body["entities"])
    assert all(relation["provenance"] for relation in body["relations"])
    assert {"queue", "total"} <= set(body["timings_ms"])
    assert response.headers["cache-control"] == "no-store"


def test_query_ranks_own_text_first(client_a: httpx.Client, service_graph: ServiceGraph):
    tenant = service_graph.tenants[TENANT_A]
    text = " ".join(tenant.chunk_text.split())[:400]

    body = query(client_a, text, top_k=3).json()

    assert body["chunks"][0]["chunk_id"] == tenant.chunk_id
    assert body["chunks"][0]["score"] > body["chunks"][1]["score"]


def test_repeated_query_cached(client_a: httpx.Client):
    text = "What did the guest say about music and practice?"

    first = query(client_a, text, top_k=2).json()
    second = query(client_a, text, top_k=2).json()

    assert first["cached"] is False
    assert second["cached"] is True
    assert second["chunks"] == first["chunks"]
    assert "embed" in first["timings_ms"]
    assert "cache" in second["timings_ms"]


def test_query_modes(client_a: httpx.Client):
    response = query(client_a, mode="local")

    if engine_accepts_mode():
        assert response.status_code == 200, response.text
        assert response.json()["mode"] == "local"
    else:
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "mode"


def test_entity_routes(client_a: httpx.Client):
    entities = query(client_a).json()["entities"]
    entity = entities[0]

    by_id = client_a.get(f"/v1/entities/{entity['id']}", params={"memory": MEMORY})
    by_name = client_a.get("/v1/entities", params={"name": entity["name"], "memory": MEMORY})

    assert by_id.status_code == 200, by_id.text
    detail = by_id.json()
    assert detail["entity"] == entity
    assert entity["id"] not in {neighbour["id"] for neighbour in detail["neighbours"]}
    for relation in detail["relations"]:
        assert relation["provenance"]
    assert by_name.status_code == 200, by_name.text
    assert entity["id"] in [match["id"] for match in by_name.json()["entities"]]


def test_community_route(client_a: httpx.Client, service_graph: ServiceGraph):
    communities = query(client_a).json()["communities"]
    assert communities, "the entities of the top chunks belong to communities"
    community = communities[0]

    response = client_a.get(f"/v1/communities/{community['id']}")

    assert response.status_code == 200, response.text
    assert response.json() == community
    assert community["id"] in service_graph.tenants[TENANT_A].community_ids


def test_document_route(client_a: httpx.Client):
    chunk = query(client_a, top_k=1).json()["chunks"][0]

    response = client_a.get(f"/v1/documents/{chunk['document_id']}", params={"memory": MEMORY})

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["id"] == chunk["document_id"]
    assert document["text"][chunk["start"] : chunk["end"]] == chunk["text"]


@pytest.mark.parametrize(
    "path",
    ["/v1/entities/ent_0000", "/v1/communities/com_0000", "/v1/documents/doc_0000"],
)
def test_missing_object_404(client_a: httpx.Client, path: str):
    response = client_a.get(path)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert path.rsplit("/", 1)[1] in error["message"]


def test_graph_svg(client_a: httpx.Client):
    entities = query(client_a).json()["entities"]

    response = client_a.get("/v1/graph.svg", params={"query": QUESTION})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(response.text)
    assert root.tag == f"{SVG_NAMESPACE}svg"
    circles = root.findall(f".//{SVG_NAMESPACE}circle")
    assert len(circles) == min(len(entities), 30)
    labels = {element.text for element in root.iter(f"{SVG_NAMESPACE}text")}
    assert entities[0]["name"][:27] in " ".join(label or "" for label in labels)


def test_unknown_route_json_404(anonymous: httpx.Client):
    response = anonymous.get("/v2/query")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
