"""Reading and validating requests: the bearer token, the bounded JSON body and the query parameters."""

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from graphmem_core.errors import ConfigurationError
from graphmem_core.settings import validate_namespace
from graphmem_service.auth import ApiKey, KeyRing
from graphmem_service.errors import ApiError, bearer_challenge
from graphmem_service.schemas import MAX_ID_CHARS

RequestModelT = TypeVar("RequestModelT", bound=BaseModel)

_BEARER_PREFIX = "bearer "


def authenticate(request: Request, keys: KeyRing) -> ApiKey:
    """Return the API key of the request's bearer token, or raise a 401 `ApiError`."""
    header = request.headers.get("authorization")
    if header is None:
        raise ApiError(
            401, "unauthorized", "missing Authorization header: send `Authorization: Bearer <API key>`", headers=bearer_challenge()
        )
    if not header.lower().startswith(_BEARER_PREFIX) or not header[len(_BEARER_PREFIX):].strip():
        raise ApiError(
            401, "unauthorized", "the Authorization header is not a bearer token: send `Authorization: Bearer <API key>`",
            headers=bearer_challenge("invalid_request"),
        )

    key = keys.lookup(header[len(_BEARER_PREFIX):].strip())
    if key is None:
        # Nothing of the token goes into the message or the logs.
        raise ApiError(401, "unauthorized", "the API key is not valid: check the key you were given", headers=bearer_challenge("invalid_token"))
    return key


def authorize_memory(key: ApiKey, memory: str) -> None:
    """Raise 422 for an invalid memory name and 403 when the key may not read that memory of its tenant."""
    try:
        validate_namespace(key.tenant, memory)
    except ConfigurationError as error:
        raise ApiError(422, "invalid_request", str(error), field="memory") from None
    if not key.allows(memory):
        allowed = ", ".join(sorted(key.memories or ()))
        raise ApiError(403, "forbidden", f"this API key may not read memory {memory!r}: it may read {allowed}", field="memory")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Return the request body, raising a 413 `ApiError` as soon as it is longer than `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid_request", f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > max_bytes:
            raise ApiError(413, "body_too_large", f"the request body has {int(declared)} bytes, more than the limit of {max_bytes}: send a shorter query")

    body = bytearray()
    async for part in request.stream():
        body.extend(part)
        if len(body) > max_bytes:
            raise ApiError(413, "body_too_large", f"the request body is longer than the limit of {max_bytes} bytes: send a shorter query")
    return bytes(body)


def parse_json_body(body: bytes, model: type[RequestModelT]) -> RequestModelT:
    """Parse a JSON object into `model`: 400 when the body is not JSON, 422 when a field is missing, unknown or invalid."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as error:
        raise ApiError(400, "invalid_json", f"the request body is not UTF-8 text: {error.reason} at byte {error.start}") from None
    except ValueError as error:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {error}; send a JSON object such as {{\"query\": \"...\"}}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", f"the request body must be a JSON object, not a JSON {type(data).__name__}")
    return validate_fields(model, data, strict=True)


def parse_query_parameters(request: Request, model: type[RequestModelT]) -> RequestModelT:
    """Validate the URL query parameters against `model`; a repeated parameter is rejected with 422."""
    names = list(request.query_params.keys())
    for name in names:
        if len(request.query_params.getlist(name)) > 1:
            raise ApiError(422, "invalid_request", f"query parameter {name!r} is given more than once: give it once", field=name)
    # Parameters arrive as text, so numbers are converted (lax mode) instead of required as JSON numbers.
    return validate_fields(model, dict(request.query_params), strict=False)


def validate_fields(model: type[RequestModelT], data: dict, strict: bool) -> RequestModelT:
    """Validate `data` against `model`, turning a `ValidationError` into a 422 that names the first bad field and the limit."""
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as error:
        raise _validation_failure(model, error) from None


def _validation_failure(model: type[BaseModel], error: ValidationError) -> ApiError:
    problems = error.errors(include_url=False, include_input=False)
    messages = []
    for problem in problems:
        field = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            accepted = ", ".join(model.model_fields)
            messages.append(f"unknown field {field!r}: remove it; accepted fields are {accepted}")
        elif problem["type"] == "missing":
            messages.append(f"{field}: required field is missing")
        else:
            messages.append(f"{field}: {problem['msg']}")
    first_field = ".".join(str(part) for part in problems[0]["loc"]) or None
    return ApiError(422, "invalid_request", "; ".join(messages), field=first_field)


def check_id(kind: str, value: str) -> str:
    """Return a path id, or raise 422 when it is too long to be any stored id."""
    if len(value) > MAX_ID_CHARS:
        raise ApiError(422, "invalid_request", f"the {kind} id has {len(value)} characters, more than {MAX_ID_CHARS}: pass an id from a query result", field=f"{kind}_id")
    return value
