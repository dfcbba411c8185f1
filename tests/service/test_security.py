"""API keys, tenant isolation, request validation and limits of the query service."""

import httpx
import pytest

from graphmem_core.query import MAX_HOPS, MAX_QUERY_CHARS, MAX_TOP_K
from tests.service.conftest import KEY_A, KEY_B, KEY_FROM_FILE, MEMORY, TENANT_A, TENANT_B, ServiceGraph, ServiceProcess

pytestmark = pytest.mark.slow

QUESTION = "Which companies and people are discussed?"

# The main server runs with the default GRAPHMEM_SERVICE_MAX_BODY_BYTES of 64 KiB.
MAX_BODY_BYTES = 64 * 1024


def test_missing_key_401(anonymous: httpx.Client):
    response = anonymous.post("/v1/query", json={"query": QUESTION})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("header", "challenge_error"),
    [
        ("Bearer not-a-configured-key-123456", "invalid_token"),
        (f"Basic {KEY_A}", "invalid_request"),
        ("Bearer", "invalid_request"),
    ],
)
def test_invalid_key_401(anonymous: httpx.Client, header: str, challenge_error: str):
    response = anonymous.get("/v1/entities", params={"name": "Kevin"}, headers={"Authorization": header})

    assert response.status_code == 401
    assert f'error="{challenge_error}"' in response.headers["www-authenticate"]
    assert KEY_A not in response.text


def test_key_from_file_accepted(anonymous: httpx.Client):
    response = anonymous.post("/v1/query", json={"query": QUESTION, "top_k": 1}, headers={"Authorization": f"Bearer {KEY_FROM_FILE}"})

    assert response.status_code == 200, response.text


def test_memory_outside_key_403(client_b: httpx.Client):
    response = client_b.post("/v1/query", json={"query": QUESTION, "memory": "notes"})

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert error["field"] == "memory"
    assert "notes" in error["message"]


def test_tenant_b_query_sees_own_graph(client_b: httpx.Client, service_graph: ServiceGraph):
    body = client_b.post("/v1/query", json={"query": QUESTION, "top_k": 10, "hops": 2}).json()

    tenant_b = service_graph.tenants[TENANT_B]
    assert body["chunks"]
    assert {chunk["document_id"] for chunk in body["chunks"]} <= tenant_b.document_ids
    assert {entity["tenant"] for entity in body["entities"]} <= {TENANT_B}
    assert {entity["id"] for entity in body["entities"]} <= tenant_b.entity_ids
    assert {community["id"] for community in body["communities"]} <= tenant_b.community_ids


def test_cross_tenant_ids_404(client_b: httpx.Client, service_graph: ServiceGraph):
    tenant_a = service_graph.tenants[TENANT_A]
    paths = [
        f"/v1/entities/{sorted(tenant_a.entity_ids)[0]}",
        f"/v1/documents/{sorted(tenant_a.document_ids)[0]}",
        f"/v1/communities/{sorted(tenant_a.community_ids)[0]}",
    ]

    for path in paths:
        response = client_b.get(path, params={"memory": MEMORY})
        assert response.status_code == 404, f"{path}: {response.status_code} {response.text}"


def test_cross_tenant_name_search_empty(client_a: httpx.Client, client_b: httpx.Client):
    found_by_a = client_a.get("/v1/entities", params={"name": "Kevin"}).json()["entities"]
    found_by_b = client_b.get("/v1/entities", params={"name": "Kevin"}).json()["entities"]

    assert found_by_a, "tenant A's transcripts name their host"
    assert {entity["tenant"] for entity in found_by_b} <= {TENANT_B}
    assert not {entity["id"] for entity in found_by_a} & {entity["id"] for entity in found_by_b}


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"top_k": 0}, "top_k", "1"),
        ({"top_k": MAX_TOP_K + 1}, "top_k", str(MAX_TOP_K)),
        ({"hops": MAX_HOPS + 1}, "hops", str(MAX_HOPS)),
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, "query", str(MAX_QUERY_CHARS)),
        ({"query": ""}, "query", "1"),
        ({"mode": "clever"}, "mode", "hybrid"),
        ({"memory": "x" * 129}, "memory", "128"),
    ],
)
def test_out_of_range_field_422(client_a: httpx.Client, fields: dict, field: str, limit: str):
    response = client_a.post("/v1/query", json={"query": QUESTION, **fields})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert limit in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": QUESTION, "tenant": TENANT_B}, "tenant"),
        ({"query": QUESTION, "top_k": "5"}, "top_k"),
        ({"query": QUESTION, "top_k": 2.5}, "top_k"),
        ({"top_k": 5}, "query"),
    ],
)
def test_invalid_body_field_422(client_a: httpx.Client, body: dict, field: str):
    response = client_a.post("/v1/query", json=body)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_unknown_query_parameter_422(client_a: httpx.Client):
    response = client_a.get("/v1/entities", params={"name": "Kevin", "tenant": TENANT_B})

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "tenant"


def test_invalid_json_400(client_a: httpx.Client):
    response = client_a.post("/v1/query", content=b'{"query": "unterminated', headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]


def test_json_array_body_422(client_a: httpx.Client):
    response = client_a.post("/v1/query", json=[QUESTION])

    assert response.status_code == 422
    assert "JSON object" in response.json()["error"]["message"]


def test_large_body_413(client_a: httpx.Client):
    body = b'{"query": "' + b"a" * MAX_BODY_BYTES + b'"}'

    response = client_a.post("/v1/query", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert str(MAX_BODY_BYTES) in error["message"]


def test_large_chunked_body_413(client_a: httpx.Client):
    def parts():
        for _ in range(5):
            yield b"a" * (MAX_BODY_BYTES // 4)

    response = client_a.post("/v1/query", content=parts(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413


def test_log_never_contains_keys(client_a: httpx.Client, anonymous: httpx.Client, main_server: ServiceProcess):
    client_a.post("/v1/query", json={"query": QUESTION, "top_k": 1})
    anonymous.get("/v1/entities", params={"name": "Kevin"}, headers={"Authorization": "Bearer wrong-key-that-is-long-enough"})

    log = main_server.log()

    assert "GET /v1/entities" in log, "the server should log requests at -v"
    for key in (KEY_A, KEY_B, KEY_FROM_FILE, "wrong-key-that-is-long-enough"):
        assert key not in log
