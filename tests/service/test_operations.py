"""Health, readiness, metrics and the OpenAPI document, on a working server and on one whose store and cache fail."""

import json
import re
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount

from graphmem_service.app import build_routes
from tests.service.conftest import DEGRADED_TIMEOUT_SECONDS, KEY_A, ServiceProcess

pytestmark = pytest.mark.slow

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# The degraded server tries to open its store every 5 s, so it opens within this after the cause is removed.
STORE_RECOVERY_SECONDS = 30.0

# Seconds the 504 test waits for a reply before it gives up; the server should respond after about one.
REPLY_WAIT_SECONDS = 15.0


def metric_samples(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    """Return every sample of /metrics keyed by (sample name, label items)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_healthz_ok(anonymous: httpx.Client):
    response = anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ready(anonymous: httpx.Client):
    response = anonymous.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"embedder": "ok", "store": "ok", "cache": "ok"}}


def test_metrics_count_requests(anonymous: httpx.Client, client_a: httpx.Client):
    before = metric_samples(anonymous)
    anonymous.get("/healthz")
    anonymous.get("/healthz")
    question = {"query": "Which tools do musicians use?", "top_k": 2}
    client_a.post("/v1/query", json=question)
    client_a.post("/v1/query", json=question)
    client_a.get("/v1/entities/ent_missing")

    after = metric_samples(anonymous)

    requests = "graphmem_http_requests_total"
    assert sample(after, requests, route="/healthz", method="GET", status="200") == sample(before, requests, route="/healthz", method="GET", status="200") + 2
    assert sample(after, requests, route="/v1/query", method="POST", status="200") >= sample(before, requests, route="/v1/query", method="POST", status="200") + 2
    assert sample(after, requests, route="/v1/entities/{entity_id}", method="GET", status="404") >= 1
    latency = "graphmem_http_request_duration_seconds_count"
    assert sample(after, latency, route="/v1/query", method="POST") >= sample(before, latency, route="/v1/query", method="POST") + 2
    assert sample(after, "graphmem_query_cache_total", result="hit") >= sample(before, "graphmem_query_cache_total", result="hit") + 1
    assert sample(after, "graphmem_query_cache_total", result="miss") >= 1
    assert sample(after, "graphmem_query_duration_seconds_count", mode="hybrid", cached="true") >= 1
    assert sample(after, "graphmem_embedding_batch_texts_count") >= 1
    # The /metrics request itself is in flight while the metrics are written.
    assert sample(after, "graphmem_http_requests_in_flight") >= 1


def resolve_reference(document: dict, reference: str) -> object:
    assert reference.startswith("#/"), f"reference {reference} is not local"
    node: object = document
    for part in reference[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"reference {reference} does not resolve"
        node = node[part]
    return node


def references_in(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found.extend(references_in(value))
        return found
    if isinstance(node, list):
        return [reference for item in node for reference in references_in(item)]
    return []


def test_openapi_document_valid(anonymous: httpx.Client):
    response = anonymous.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/")
        assert set(item) <= HTTP_METHODS | {"parameters", "summary", "description"}, path
        template_names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            assert operation["responses"], f"{method} {path} has no responses"
            for status, declared in operation["responses"].items():
                assert status == "default" or re.fullmatch(r"[1-5]\d\d", status), f"{method} {path}: status {status}"
                assert declared["description"], f"{method} {path} {status} has no description"
            path_parameters = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "path"}
            assert path_parameters == template_names, f"{method} {path}"
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in {"query", "header", "path", "cookie"}
                assert "schema" in parameter
                if parameter["in"] == "path":
                    assert parameter["required"] is True
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(schemes)
    assert len(operation_ids) == len(set(operation_ids)), "operationId values must be unique"
    for reference in references_in(document):
        resolve_reference(document, reference)
    json.dumps(document, allow_nan=False)


def test_openapi_lists_every_route(anonymous: httpx.Client):
    paths = anonymous.get("/openapi.json").json()["paths"]

    for route in build_routes():
        if isinstance(route, Mount):
            assert f"{route.path}/{{path}}" in paths
            continue
        assert route.path in paths, f"{route.path} is missing from the OpenAPI document"
        for method in route.methods - {"HEAD"}:
            assert method.lower() in paths[route.path], f"{method} {route.path} is missing from the OpenAPI document"


def test_page_served_without_key(anonymous: httpx.Client):
    page = anonymous.get("/")
    script = anonymous.get("/static/app.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert "Bearer" in script.text


def test_degraded_readyz_503(degraded_server: ServiceProcess):
    health = httpx.get(f"{degraded_server.url}/healthz", timeout=10.0)
    ready = httpx.get(f"{degraded_server.url}/readyz", timeout=10.0)

    assert health.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["store"].startswith("not open")
    assert body["checks"]["cache"] != "ok"
    assert body["checks"]["embedder"] == "ok"


def test_degraded_api_503(degraded_server: ServiceProcess):
    response = httpx.post(
        f"{degraded_server.url}/v1/query", json={"query": "anything"}, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10.0
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_slow_request_504(degraded_server: ServiceProcess):
    # The body is announced but never finished, so the request is still being read when the timeout ends it.
    head = (
        "POST /v1/query HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{degraded_server.port}\r\n"
        f"Authorization: Bearer {KEY_A}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 100\r\n"
        "\r\n"
        '{"query": '
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", degraded_server.port), timeout=REPLY_WAIT_SECONDS) as connection:
        connection.sendall(head.encode("ascii"))
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            part = connection.recv(65536)
            if not part:
                break
            reply += part
    elapsed = time.monotonic() - started

    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 504"), reply[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "timeout"
    assert elapsed >= DEGRADED_TIMEOUT_SECONDS


def test_degraded_store_recovers(degraded_server: ServiceProcess):
    # Runs after the other tests of the degraded server, which need its store to stay unavailable.
    blocker = degraded_server.home.parent
    blocker.unlink()
    blocker.mkdir()

    deadline = time.monotonic() + STORE_RECOVERY_SECONDS
    checks = httpx.get(f"{degraded_server.url}/readyz", timeout=10.0).json()["checks"]
    while checks["store"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.5)
        checks = httpx.get(f"{degraded_server.url}/readyz", timeout=10.0).json()["checks"]

    assert checks["store"] == "ok", f"the store did not open within {STORE_RECOVERY_SECONDS} s: {checks}"
    assert checks["cache"] != "ok"
    assert "open after earlier failures" in degraded_server.log()
