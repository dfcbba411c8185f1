"""Query paths of the service without HTTP: in-process cache hits need no worker thread, and hits send cached bodies."""

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest

from graphmem_core.cache import InProcessCache, RedisCache
from graphmem_core.query import QueryEngine
from graphmem_core.settings import Settings
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from graphmem_service.auth import ApiKey, KeyRing
from graphmem_service.metrics import ServiceMetrics
from graphmem_service.routes import compute_response_body, prepare_query, query_response, read_in_process_hit, read_in_process_response
from graphmem_service.schemas import QueryRequest
from graphmem_service.state import ServiceState
from tests.conftest import delete_redis_keys, service_url
from tests.service.conftest import MEMORY, TENANT_A, ServiceGraph

KEY = ApiKey(digest="0" * 64, tenant=TENANT_A)


@pytest.fixture(scope="module")
def state(service_graph: ServiceGraph, embedder) -> Iterator[ServiceState]:
    """Return a service state over the test graph with the in-process cache, without starting a server."""
    store = LibsqlGraphStore(service_graph.home / "graph.db")
    state = ServiceState(Settings(home=service_graph.home), KeyRing([KEY]), ServiceMetrics())
    state.cache = InProcessCache()
    state.store = store
    state.engine = QueryEngine(store, embedder, state.cache)
    yield state
    store.close()


@pytest.fixture
def copied_state(service_graph: ServiceGraph, embedder, tmp_path: Path) -> Iterator[ServiceState]:
    """Return a service state over a copy of the test graph, which a test may write to."""
    home = tmp_path / "home"
    shutil.copytree(service_graph.home, home)
    store = LibsqlGraphStore(home / "graph.db")
    state = ServiceState(Settings(home=home), KeyRing([KEY]), ServiceMetrics())
    state.cache = InProcessCache()
    state.store = store
    state.engine = QueryEngine(store, embedder, state.cache)
    yield state
    store.close()


def without_timings(body: dict) -> dict:
    return {name: value for name, value in body.items() if name != "timings_ms"}


def test_in_process_hit_on_calling_thread(state: ServiceState):
    parameters = QueryRequest(query="Which instruments do the guests play?", memory=MEMORY, top_k=3)
    arguments: dict[str, object] = {"top_k": parameters.top_k, "hops": parameters.hops, "mode": parameters.mode}
    assert state.engine is not None

    before = read_in_process_hit(state, KEY, parameters, arguments)
    state.engine.query(TENANT_A, MEMORY, parameters.query, **arguments)
    threads = threading.active_count()
    hit = read_in_process_hit(state, KEY, parameters, arguments)

    assert before is None, "a miss is left to the worker threads"
    assert hit is not None
    assert hit.cached
    assert threading.active_count() == threads, "the hit started no thread"


def test_response_body_cached_per_version(copied_state: ServiceState):
    state = copied_state
    parameters = QueryRequest(query="What do the guests say about learning?", memory=MEMORY, top_k=3)
    engine, arguments = prepare_query(state, KEY, parameters)
    assert state.cache is not None

    before = read_in_process_response(state, KEY, parameters, arguments)
    # The engine computes the result here, so the service serialises a cached result and encodes nothing.
    result = engine.query(TENANT_A, MEMORY, parameters.query, **arguments)
    first = json.loads(anyio.run(compute_response_body, state, engine, KEY, parameters, arguments))
    hit_bytes = read_in_process_response(state, KEY, parameters, arguments)

    assert before is None
    assert hit_bytes is not None
    hit = json.loads(hit_bytes)
    expected = query_response(result, parameters, 0.0).model_dump(mode="json")
    assert without_timings(hit) == {**without_timings(expected), "cached": True}
    assert without_timings(first) == without_timings(hit)
    assert set(hit["timings_ms"]) == {"queue", "cache", "total"}
    assert hit["timings_ms"]["queue"] == 0.0

    # Any write raises the graph version, so the cached body is no longer read.
    store = state.require_store()
    store.upsert_embeddings(TENANT_A, "version-bump-model", {"0" * 64: np.ones(4, dtype=np.float32)})
    assert read_in_process_response(state, KEY, parameters, arguments) is None


def test_response_body_from_redis(service_graph: ServiceGraph, embedder):
    url = service_url("redis")
    prefix = "graphmem-test-response-body:"
    store = LibsqlGraphStore(service_graph.home / "graph.db")
    cache = RedisCache(url, key_prefix=prefix)
    state = ServiceState(Settings(home=service_graph.home), KeyRing([KEY]), ServiceMetrics())
    state.cache = cache
    state.store = store
    state.engine = QueryEngine(store, embedder, cache)
    parameters = QueryRequest(query="Which places do the guests describe?", memory=MEMORY, top_k=2)
    try:
        engine, arguments = prepare_query(state, KEY, parameters)
        # The engine computes the result here, so the service serialises a cached result and encodes nothing.
        engine.query(TENANT_A, MEMORY, parameters.query, **arguments)
        first = json.loads(anyio.run(compute_response_body, state, engine, KEY, parameters, arguments))
        second = json.loads(anyio.run(compute_response_body, state, engine, KEY, parameters, arguments))

        assert read_in_process_response(state, KEY, parameters, arguments) is None, "Redis hits take a worker thread"
        assert without_timings(second) == without_timings(first)
        assert second["cached"] is True
        assert {"queue", "cache", "total"} <= set(second["timings_ms"])
        assert state.metrics.registry.get_sample_value("graphmem_query_cache_total", {"result": "hit"}) == 2
    finally:
        cache.close()
        store.close()
        delete_redis_keys(url, prefix)
