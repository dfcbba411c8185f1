"""Query paths of the service without HTTP: in-process cache hits need no worker thread."""

import threading
from collections.abc import Iterator

import pytest

from graphmem_core.cache import InProcessCache
from graphmem_core.query import QueryEngine
from graphmem_core.settings import Settings
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from graphmem_service.auth import ApiKey, KeyRing
from graphmem_service.metrics import ServiceMetrics
from graphmem_service.routes import read_in_process_hit
from graphmem_service.schemas import QueryRequest
from graphmem_service.state import ServiceState
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
