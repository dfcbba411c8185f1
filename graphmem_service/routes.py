"""Endpoints of the query service. Every /v1 route takes the tenant from the API key, never from the request."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio
import numpy as np
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from graphmem_core.cache import InProcessCache
from graphmem_core.errors import GraphmemError, InvalidInputError, RetryableError, StoreError
from graphmem_core.query import QueryEngine, QueryResult
from graphmem_service.auth import ApiKey
from graphmem_service.errors import ApiError
from graphmem_service.request_input import (
    authenticate,
    authorize_memory,
    check_id,
    parse_json_body,
    parse_query_parameters,
    read_body,
)
from graphmem_service.response_cache import RESPONSE_CACHE_FORMAT, RESPONSE_CACHE_KIND, complete_body, response_prefix
from graphmem_service.schemas import (
    DEFAULT_MODE,
    EntityDetail,
    EntityList,
    EntitySearchParameters,
    MemoryParameters,
    QueryMode,
    QueryRequest,
    QueryResponse,
    RankedChunk,
)
from graphmem_service.state import RETRY_AFTER_SECONDS, ServiceState
from graphmem_service.svg import render_graph_svg

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# Neighbours returned with one entity; a hub entity can have thousands.
MAX_NEIGHBOURS = 50

# The page loads only its own script and style sheet, talks only to this service, and shows the
# graph as a blob: image.
PAGE_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# An SVG opened on its own is a document, so it gets no scripts and no outside resources.
SVG_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def service_state(request: Request) -> ServiceState:
    """Return the state that `create_app` attached to the application."""
    return request.app.state.service


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise a Pydantic model with its own JSON encoder."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


async def call_store(function: Callable[[], ResultT], limiter: anyio.CapacityLimiter | None = None) -> ResultT:
    """Run blocking store work in a worker thread (of `limiter`, default anyio's shared ones) and turn store failures into 503."""
    try:
        return await anyio.to_thread.run_sync(function, abandon_on_cancel=True, limiter=limiter)
    except (StoreError, RetryableError) as error:
        logger.error("graph store call failed: %s: %s", type(error).__name__, error)
        raise ApiError(
            503, "store_unavailable", "the graph store request failed: retry later", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        ) from error


async def run_query(state: ServiceState, key: ApiKey, parameters: QueryRequest) -> tuple[QueryResult, float]:
    """Run a query for the key's tenant; return the result and the milliseconds it waited for a query thread.

    An in-process cache hit is served on the event loop. Otherwise a query thread looks the result up
    in the cache and lists the texts to encode, the event loop awaits their encoding by the batching
    thread, and a query thread computes the result with those vectors.
    """
    engine, arguments = prepare_query(state, key, parameters)
    hit = read_in_process_hit(state, key, parameters, arguments)
    if hit is not None:
        return hit, 0.0

    with query_errors(key, parameters):
        return await compute_query(state, engine, key, parameters, arguments)


def prepare_query(state: ServiceState, key: ApiKey, parameters: QueryRequest) -> tuple[QueryEngine, dict[str, object]]:
    """Check that the key may query the memory in this mode; return the engine and its keyword arguments."""
    authorize_memory(key, parameters.memory)
    if not state.accepts_mode and parameters.mode != DEFAULT_MODE:
        raise ApiError(422, "invalid_request", f"mode {parameters.mode!r} is not available in this release of the query engine: use {DEFAULT_MODE}", field="mode")
    engine = state.require_engine()
    arguments: dict[str, object] = {"top_k": parameters.top_k, "hops": parameters.hops}
    if state.accepts_mode:
        arguments["mode"] = QueryMode(parameters.mode)
    return engine, arguments


@contextmanager
def query_errors(key: ApiKey, parameters: QueryRequest) -> Iterator[None]:
    """Turn an invalid query into 422 and any other engine failure into 500, logged with the namespace."""
    try:
        yield
    except InvalidInputError as error:
        raise ApiError(422, "invalid_request", str(error), field="query") from None
    except GraphmemError as error:
        logger.error("query in %s/%s failed: %s: %s", key.tenant, parameters.memory, type(error).__name__, error)
        raise ApiError(500, "query_failed", "the query failed inside the service: retry later or report it with the time of the request") from error


@contextmanager
def cache_read_errors() -> Iterator[None]:
    """Turn the errors of a cache read on the event loop into 422 (invalid query) and 503 (store unavailable)."""
    try:
        yield
    except InvalidInputError as error:
        raise ApiError(422, "invalid_request", str(error), field="query") from None
    except (StoreError, RetryableError) as error:
        logger.error("graph store call failed: %s: %s", type(error).__name__, error)
        raise ApiError(
            503, "store_unavailable", "the graph store request failed: retry later", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        ) from error


async def compute_query(
    state: ServiceState, engine: QueryEngine, key: ApiKey, parameters: QueryRequest, arguments: dict[str, object]
) -> tuple[QueryResult, float]:
    """Read the cache, encode the query texts in a shared batch and compute the result. Return it and the thread wait in ms."""
    mode = arguments.get("mode", DEFAULT_MODE)
    queued_ms = 0.0
    started = time.perf_counter()

    def look_up() -> tuple[QueryResult | None, list[str]]:
        nonlocal queued_ms
        queued_ms += (time.perf_counter() - started) * 1000
        found = engine.cached_query(key.tenant, parameters.memory, parameters.query, **arguments)
        if found is not None:
            return found, []
        return None, engine.texts_to_encode(key.tenant, parameters.memory, parameters.query, mode)

    cached, texts = await call_store(look_up, state.query_threads)
    if cached is not None:
        state.metrics.record_query(parameters.mode, True, time.perf_counter() - started)
        return cached, queued_ms

    assert state.embedder is not None
    encode_started = time.perf_counter()
    vectors = dict(zip(texts, await asyncio.wrap_future(state.embedder.submit(texts)), strict=True)) if texts else {}
    encode_ms = (time.perf_counter() - encode_started) * 1000
    submitted = time.perf_counter()

    def compute() -> QueryResult:
        nonlocal queued_ms
        queued_ms += (time.perf_counter() - submitted) * 1000
        return engine.query(key.tenant, parameters.memory, parameters.query, vectors=vectors, **arguments)

    result = await call_store(compute, state.query_threads)
    state.metrics.record_query(parameters.mode, result.cached, time.perf_counter() - started)
    # The engine's own timings leave out the encoding that the batching thread did for it.
    timings = dict(result.timings_ms)
    timings["embed"] = timings.get("embed", 0.0) + encode_ms
    timings["total"] = timings.get("total", 0.0) + encode_ms
    return result.model_copy(update={"timings_ms": timings}), queued_ms


def read_in_process_hit(state: ServiceState, key: ApiKey, parameters: QueryRequest, arguments: dict[str, object]) -> QueryResult | None:
    """Return the cached result from the in-process cache on the event loop, or None to run the query in a worker thread.

    A hit costs well under a millisecond (a graph version read and a dictionary lookup), less than the
    hop to a worker thread. Other caches, such as Redis, wait on the network, so their hits take the thread.
    """
    engine = state.require_engine()
    if not isinstance(state.cache, InProcessCache):
        return None

    started = time.perf_counter()
    with cache_read_errors():
        result = engine.cached_query(key.tenant, parameters.memory, parameters.query, **arguments)
    if result is not None:
        state.metrics.record_query(parameters.mode, True, time.perf_counter() - started)
    return result


def response_key(engine: QueryEngine, key: ApiKey, parameters: QueryRequest, arguments: dict[str, object]) -> str:
    """Return the cache key of the response body of this query at the memory's current graph version."""
    return engine.result_key(
        key.tenant, parameters.memory, parameters.query, kind=RESPONSE_CACHE_KIND, format_version=RESPONSE_CACHE_FORMAT, **arguments
    )


def read_in_process_response(state: ServiceState, key: ApiKey, parameters: QueryRequest, arguments: dict[str, object]) -> bytes | None:
    """Return the whole response body of a query from the in-process cache, on the event loop, or None to compute it.

    A hit reads the graph version and one dictionary entry, and appends this request's timings to the
    cached bytes, so no result is parsed or serialised.
    """
    if not isinstance(state.cache, InProcessCache):
        return None

    started = time.perf_counter()
    with cache_read_errors():
        prefix = state.cache.get(response_key(state.require_engine(), key, parameters, arguments))
    if prefix is None:
        return None
    seconds = time.perf_counter() - started
    state.metrics.record_query(parameters.mode, True, seconds)
    return complete_body(prefix, {"queue": 0.0, "cache": seconds * 1000, "total": seconds * 1000}, cached=True)


async def compute_response_body(
    state: ServiceState, engine: QueryEngine, key: ApiKey, parameters: QueryRequest, arguments: dict[str, object]
) -> bytes:
    """Return the response body of a query from the cache, or compute the result and cache its body.

    A query thread reads the cached body, then the cached result, and lists the texts to encode. The
    event loop awaits their encoding by the batching thread. Then a query thread computes the result,
    serialises it and caches the body.
    """
    assert state.cache is not None
    cache = state.cache
    queued_ms = 0.0
    started = time.perf_counter()

    def look_up() -> tuple[str, bytes | None, QueryResult | None, list[str]]:
        nonlocal queued_ms
        queued_ms += (time.perf_counter() - started) * 1000
        # The key takes the graph version before the result is computed, so a body that raced with a
        # write is cached under the older version, which no later request reads.
        body_key = response_key(engine, key, parameters, arguments)
        prefix = cache.get(body_key)
        if prefix is not None:
            return body_key, prefix, None, []
        found = engine.cached_query(key.tenant, parameters.memory, parameters.query, **arguments)
        if found is not None:
            return body_key, None, found, []
        return body_key, None, None, engine.texts_to_encode(key.tenant, parameters.memory, parameters.query, arguments.get("mode", DEFAULT_MODE))

    body_key, prefix, result, texts = await call_store(look_up, state.query_threads)
    if prefix is not None:
        seconds = time.perf_counter() - started
        state.metrics.record_query(parameters.mode, True, seconds)
        return complete_body(prefix, {"queue": queued_ms, "cache": seconds * 1000, "total": seconds * 1000}, cached=True)

    encode_ms = 0.0
    vectors: dict[str, np.ndarray] = {}
    if texts:
        assert state.embedder is not None
        encode_started = time.perf_counter()
        vectors = dict(zip(texts, await asyncio.wrap_future(state.embedder.submit(texts)), strict=True))
        encode_ms = (time.perf_counter() - encode_started) * 1000
    submitted = time.perf_counter()

    def compute() -> tuple[QueryResult, bytes]:
        nonlocal queued_ms
        queued_ms += (time.perf_counter() - submitted) * 1000
        computed = result if result is not None else engine.query(key.tenant, parameters.memory, parameters.query, vectors=vectors, **arguments)
        computed_prefix = response_prefix(query_response(computed, parameters, 0.0))
        cache.set(body_key, computed_prefix)
        return computed, computed_prefix

    computed, prefix = await call_store(compute, state.query_threads)
    state.metrics.record_query(parameters.mode, computed.cached, time.perf_counter() - started)
    # The engine's own timings leave out the encoding that the batching thread did for it.
    timings = {"queue": queued_ms, **computed.timings_ms}
    if texts:
        timings["embed"] = timings.get("embed", 0.0) + encode_ms
        timings["total"] = timings.get("total", 0.0) + encode_ms
    return complete_body(prefix, timings, cached=computed.cached)


def mode_of(result: QueryResult, requested: str) -> str:
    """Return the mode the engine reports in its result, or the requested one for an engine without modes."""
    mode = getattr(result, "mode", None)
    if mode is None:
        return requested
    return str(getattr(mode, "value", mode))


def query_response(result: QueryResult, parameters: QueryRequest, queued_ms: float) -> QueryResponse:
    """Build the API response of a query result."""
    chunks = [
        RankedChunk(
            rank=rank,
            score=hit.score,
            chunk_id=hit.chunk.id,
            document_id=hit.chunk.document_id,
            document_title=hit.document_title,
            index=hit.chunk.index,
            start=hit.chunk.start,
            end=hit.chunk.end,
            text=hit.chunk.text,
        )
        for rank, hit in enumerate(result.chunks, start=1)
    ]
    return QueryResponse(
        query=result.query,
        memory=parameters.memory,
        mode=mode_of(result, parameters.mode),
        chunks=chunks,
        entities=result.entities,
        relations=result.relations,
        communities=result.communities,
        timings_ms={"queue": queued_ms, **result.timings_ms},
        cached=result.cached,
    )


async def post_query(request: Request) -> Response:
    """POST /v1/query: ranked chunks, entities, relations and communities for a question."""
    state = service_state(request)
    key = authenticate(request, state.keys)
    body = await read_body(request, state.settings.service_max_body_bytes)
    parameters = parse_json_body(body, QueryRequest)
    engine, arguments = prepare_query(state, key, parameters)

    cached = read_in_process_response(state, key, parameters, arguments)
    if cached is not None:
        return Response(cached, media_type="application/json")

    with query_errors(key, parameters):
        computed = await compute_response_body(state, engine, key, parameters, arguments)
    return Response(computed, media_type="application/json")


async def get_graph_svg(request: Request) -> Response:
    """GET /v1/graph.svg: the entity neighbourhood of a query's top chunks as an SVG drawing."""
    state = service_state(request)
    key = authenticate(request, state.keys)
    parameters = parse_query_parameters(request, QueryRequest)
    result, _ = await run_query(state, key, parameters)
    svg = render_graph_svg(result.entities, result.relations, title=f"Entities around the top chunks for: {parameters.query}")
    return Response(svg, media_type="image/svg+xml", headers={"Content-Security-Policy": SVG_SECURITY_POLICY})


def _not_found(kind: str, object_id: str, memory: str) -> ApiError:
    return ApiError(
        404, "not_found", f"{kind} {object_id!r} not found in memory {memory!r} of this API key's tenant: take ids from query results", field=f"{kind}_id"
    )


async def get_entity(request: Request) -> Response:
    """GET /v1/entities/{entity_id}: one entity with its direct neighbours."""
    state = service_state(request)
    key = authenticate(request, state.keys)
    entity_id = check_id("entity", request.path_params["entity_id"])
    memory = parse_query_parameters(request, MemoryParameters).memory
    authorize_memory(key, memory)
    store = state.require_store()

    def read() -> EntityDetail | None:
        found = store.get_entities(key.tenant, memory, [entity_id])
        if not found:
            return None
        around = store.neighbourhood(key.tenant, memory, [entity_id], hops=1, limit=MAX_NEIGHBOURS + 1)
        neighbours = [entity for entity in around.entities if entity.id != entity_id]
        return EntityDetail(entity=found[0], neighbours=neighbours, relations=around.relations)

    detail = await call_store(read)
    if detail is None:
        raise _not_found("entity", entity_id, memory)
    return model_response(detail)


async def find_entities(request: Request) -> Response:
    """GET /v1/entities?name=...: entities whose name or alias matches, exact matches first."""
    state = service_state(request)
    key = authenticate(request, state.keys)
    parameters = parse_query_parameters(request, EntitySearchParameters)
    authorize_memory(key, parameters.memory)
    store = state.require_store()

    entities = await call_store(lambda: store.find_entities(key.tenant, parameters.memory, parameters.name, limit=parameters.limit))
    return model_response(EntityList(entities=entities))


async def get_community(request: Request) -> Response:
    """GET /v1/communities/{community_id}: one community with its members and summary."""
    state = service_state(request)
    key = authenticate(request, state.keys)
    community_id = check_id("community", request.path_params["community_id"])
    memory = parse_query_parameters(request, MemoryParameters).memory
    authorize_memory(key, memory)
    store = state.require_store()

    # NOTE: the store has no lookup by community id, so this reads every community of the memory.
    # A memory of a few thousand documents has thousands of them.
    communities = await call_store(lambda: store.get_communities(key.tenant, memory))
    for community in communities:
        if community.id == community_id:
            return model_response(community)
    raise _not_found("community", community_id, memory)


async def get_document(request: Request) -> Response:
    """GET /v1/documents/{document_id}: one stored document with its text."""
    state = service_state(request)
    key = authenticate(request, state.keys)
    document_id = check_id("document", request.path_params["document_id"])
    memory = parse_query_parameters(request, MemoryParameters).memory
    authorize_memory(key, memory)
    store = state.require_store()

    documents = await call_store(lambda: store.get_documents(key.tenant, memory, [document_id]))
    if not documents:
        raise _not_found("document", document_id, memory)
    return model_response(documents[0])


async def healthz(request: Request) -> Response:
    """GET /healthz: the process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """GET /readyz: 200 when the store and the cache respond, else 503 naming the failing part."""
    checks = await service_state(request).readiness()
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """GET /metrics: every metric in the Prometheus text format."""
    body, content_type = service_state(request).metrics.render()
    return Response(body, headers={"Content-Type": content_type})


async def openapi_document(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI 3.1 description of this API."""
    return JSONResponse(request.app.state.openapi)


async def page(request: Request) -> Response:
    """GET /: the search page, which requests the API key in a form field and sends it from script as a bearer token."""
    return FileResponse(request.app.state.static_folder / "index.html", headers={"Content-Security-Policy": PAGE_SECURITY_POLICY})
