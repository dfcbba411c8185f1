"""The OpenAPI 3.1 document of the service, with component schemas taken from the Pydantic models.

Pydantic writes JSON Schema draft 2020-12, the dialect of OpenAPI 3.1, so its schemas go into
`components.schemas` unchanged.
"""

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from graphmem_core.query import MAX_HOPS, MAX_QUERY_CHARS, MAX_TOP_K
from graphmem_service.schemas import (
    DEFAULT_ENTITY_MATCHES,
    DEFAULT_MEMORY,
    DEFAULT_MODE,
    MAX_ENTITY_MATCHES,
    MAX_ENTITY_NAME_CHARS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    QUERY_MODES,
    RESPONSE_MODELS,
    QueryRequest,
)

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"
_BEARER = [{"bearerAuth": []}]


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": _REF.format(model=name)}


def _json(description: str, model: type[BaseModel] | str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "The body is not valid JSON.",
        401: "The bearer token is missing or not a valid API key.",
        403: "The API key may not read this memory.",
        404: "No object with this id in the memory of the key's tenant.",
        413: "The request body is larger than GRAPHMEM_SERVICE_MAX_BODY_BYTES.",
        422: "A field or parameter is missing, unknown or out of range; `field` names it.",
        503: "The graph store is not available; retry after the Retry-After seconds.",
        504: "The request took longer than GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS.",
    }
    return {str(status): _json(descriptions[status], "ErrorResponse") for status in statuses}


def _parameter(name: str, location: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": location, "required": required or location == "path", "description": description, "schema": schema}


_MEMORY = _parameter("memory", "query", {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "default": DEFAULT_MEMORY}, "Memory of the key's tenant.")


def _path_id(name: str, kind: str) -> dict[str, Any]:
    return _parameter(name, "path", {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}, f"Id of the {kind}, as query results give it.")


def _query_parameters() -> list[dict[str, Any]]:
    """Parameters of GET /v1/graph.svg, the fields of the query request body."""
    return [
        _parameter("query", "query", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}, "The question or text to search for.", required=True),
        _MEMORY,
        _parameter("mode", "query", {"type": "string", "enum": list(QUERY_MODES), "default": DEFAULT_MODE}, "Retrieval strategy."),
        _parameter("top_k", "query", {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 5}, "Number of chunks."),
        _parameter("hops", "query", {"type": "integer", "minimum": 0, "maximum": MAX_HOPS, "default": 1}, "Relation hops around the entities."),
    ]


def _paths() -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/v1/query": {
            "post": {
                "operationId": "query",
                "summary": "Search the memory: ranked chunks, entities, relations and communities.",
                "security": _BEARER,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(QueryRequest)}}},
                "responses": {"200": _json("The query result.", "QueryResponse"), **_errors(400, 401, 403, 413, 422, 503, 504)},
            }
        },
        "/v1/graph.svg": {
            "get": {
                "operationId": "graphSvg",
                "summary": "Draw the entity neighbourhood of a query's top chunks.",
                "security": _BEARER,
                "parameters": _query_parameters(),
                "responses": {
                    "200": {"description": "An SVG drawing.", "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
                    **_errors(401, 403, 422, 503, 504),
                },
            }
        },
        "/v1/entities": {
            "get": {
                "operationId": "findEntities",
                "summary": "Find entities by name or alias, exact matches first.",
                "security": _BEARER,
                "parameters": [
                    _parameter("name", "query", {"type": "string", "minLength": 1, "maxLength": MAX_ENTITY_NAME_CHARS}, "Name to match, ignoring case.", required=True),
                    _MEMORY,
                    _parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_ENTITY_MATCHES, "default": DEFAULT_ENTITY_MATCHES}, "Most entities to return."),
                ],
                "responses": {"200": _json("Matching entities.", "EntityList"), **_errors(401, 403, 422, 503, 504)},
            }
        },
        "/v1/entities/{entity_id}": {
            "get": {
                "operationId": "getEntity",
                "summary": "Read one entity with its direct neighbours and their relations.",
                "security": _BEARER,
                "parameters": [_path_id("entity_id", "entity"), _MEMORY],
                "responses": {"200": _json("The entity.", "EntityDetail"), **_errors(401, 403, 404, 422, 503, 504)},
            }
        },
        "/v1/communities/{community_id}": {
            "get": {
                "operationId": "getCommunity",
                "summary": "Read one community with its members and summary.",
                "security": _BEARER,
                "parameters": [_path_id("community_id", "community"), _MEMORY],
                "responses": {"200": _json("The community.", "Community"), **_errors(401, 403, 404, 422, 503, 504)},
            }
        },
        "/v1/documents/{document_id}": {
            "get": {
                "operationId": "getDocument",
                "summary": "Read one stored document with its text.",
                "security": _BEARER,
                "parameters": [_path_id("document_id", "document"), _MEMORY],
                "responses": {"200": _json("The document.", "Document"), **_errors(401, 403, 404, 422, 503, 504)},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process serves requests.",
                "security": [],
                "responses": {"200": _json("The process is up.", "HealthStatus")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the store and the cache respond.",
                "security": [],
                "responses": {"200": _json("Ready.", "CheckStatus"), "503": _json("A part is not ready; `checks` names it.", "CheckStatus")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics in the text exposition format.",
                "security": [],
                "responses": {"200": {"description": "Metrics.", "content": text}},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document.", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        },
        "/": {
            "get": {
                "operationId": "page",
                "summary": "The search page for browsers, which requests the API key in a form field.",
                "security": [],
                "responses": {"200": {"description": "The HTML page.", "content": html}},
            }
        },
        "/static/{path}": {
            "get": {
                "operationId": "staticFile",
                "summary": "Script and style sheet of the search page.",
                "security": [],
                "parameters": [_parameter("path", "path", {"type": "string"}, "File name.")],
                "responses": {"200": {"description": "The file."}, "404": {"description": "No such file."}},
            }
        },
    }


def build_openapi_document(version: str) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the API; `version` is the graphmem release."""
    models: list[tuple[type[BaseModel], str]] = [(QueryRequest, "validation")]
    models.extend((model, "serialization") for model in RESPONSE_MODELS)
    _, definitions = models_json_schema(models, ref_template=_REF)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "graphmem query service",
            "version": version,
            "description": "Questions to a knowledge-graph memory. Every /v1 route needs `Authorization: Bearer <API key>`; "
            "the key decides the tenant, and errors are JSON objects `{\"error\": {\"code\", \"message\", \"field\"}}`.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": _BEARER,
        "paths": _paths(),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key from GRAPHMEM_API_KEYS."}},
        },
    }
