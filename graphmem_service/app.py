"""The Starlette application of the query service and its factory `create_app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from graphmem_core.settings import Settings
from graphmem_service import routes
from graphmem_service.auth import load_key_ring
from graphmem_service.errors import ApiError, api_error_response, error_response
from graphmem_service.metrics import MetricsMiddleware, ServiceMetrics
from graphmem_service.middleware import SecurityHeadersMiddleware, TimeoutMiddleware
from graphmem_service.openapi import build_openapi_document
from graphmem_service.state import ServiceState

logger = logging.getLogger(__name__)

STATIC_FOLDER = Path(__file__).resolve().parent / "static"

# Codes of the HTTP errors that Starlette raises itself, for unknown paths and methods.
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


def _release() -> str:
    try:
        return version("graphmem")
    except PackageNotFoundError:
        return "unknown"


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return api_error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = _HTTP_ERROR_CODES.get(error.status_code, "http_error")
    if error.status_code == 404:
        message = f"no route for {request.url.path}: see /openapi.json for the routes of this service"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}: see /openapi.json for the methods of each route"
    else:
        message = str(error.detail)
    return error_response(error.status_code, code, message, headers=dict(error.headers or {}))


async def _unexpected_error(request: Request, error: Exception) -> Response:
    # Starlette re-raises the error after this response is sent, and the server logs its traceback.
    return error_response(500, "internal_error", "the request failed inside the service: retry later or report it with the time of the request")


def build_routes() -> list[Route | Mount]:
    """Return every route of the service; the OpenAPI document lists each of them."""
    return [
        Route("/v1/query", routes.post_query, methods=["POST"]),
        Route("/v1/graph.svg", routes.get_graph_svg, methods=["GET"]),
        Route("/v1/entities", routes.find_entities, methods=["GET"]),
        Route("/v1/entities/{entity_id}", routes.get_entity, methods=["GET"]),
        Route("/v1/communities/{community_id}", routes.get_community, methods=["GET"]),
        Route("/v1/documents/{document_id}", routes.get_document, methods=["GET"]),
        Route("/healthz", routes.healthz, methods=["GET"]),
        Route("/readyz", routes.readyz, methods=["GET"]),
        Route("/metrics", routes.metrics, methods=["GET"]),
        Route("/openapi.json", routes.openapi_document, methods=["GET"]),
        Route("/", routes.page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_FOLDER), name="static"),
    ]


def create_app(settings: Settings | None = None) -> ASGIApp:
    """Build the service from `settings` (default: the environment), raising `ConfigurationError` for invalid settings or keys.

    Nothing is loaded or opened here: the embedder, cache and store are created when the server
    starts the application's lifespan.
    """
    settings = settings if settings is not None else Settings.from_env()
    keys = load_key_ring(settings)
    metrics = ServiceMetrics()
    state = ServiceState(settings, keys, metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info("query service starting with the %s store and the %s cache", settings.store, settings.cache)
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = Starlette(
        routes=build_routes(),
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected_error},
    )
    app.state.service = state
    app.state.static_folder = STATIC_FOLDER
    app.state.openapi = build_openapi_document(_release())

    # Outermost first: metrics see every response, 504s included, and every response gets the headers.
    wrapped: ASGIApp = TimeoutMiddleware(app, settings.service_request_timeout_seconds)
    wrapped = SecurityHeadersMiddleware(wrapped)
    wrapped = MetricsMiddleware(wrapped, metrics)
    return wrapped
