"""Query responses cached as serialised JSON, so that a cache hit is sent without parsing or serialising a result.

A cached body is the JSON of a `QueryResponse` up to and including `"timings_ms":`. Only the timings
and the `cached` flag differ between requests, and `QueryResponse` declares them last, so a hit
appends them to the cached bytes.

NOTE: the engine still caches its `QueryResult` beside the body, because `/v1/graph.svg` and other
engine users read it. So each query takes two cache entries and about twice the bytes.
"""

import json

from graphmem_service.schemas import QueryResponse

# Cache key kind of response bodies, beside the engine's `answer` entries of the same query.
RESPONSE_CACHE_KIND = "response"

# Part of the key of every cached response body. Raise it when `QueryResponse` or the way it is
# serialised changes, so that a shared cache never returns bodies of an older release.
RESPONSE_CACHE_FORMAT = 1

# The end of a serialised `QueryResponse` with empty timings and `cached` true. The cached prefix is
# everything before it.
_PLACEHOLDER_END = b'{},"cached":true}'

_CACHED_END = b',"cached":true}'
_COMPUTED_END = b',"cached":false}'


def response_prefix(response: QueryResponse) -> bytes:
    """Serialise `response` up to and including `"timings_ms":`, the part that is the same for every request of the query."""
    placeholder = response.model_copy(update={"timings_ms": {}, "cached": True})
    body = QueryResponse.__pydantic_serializer__.to_json(placeholder)
    if not body.endswith(_PLACEHOLDER_END):
        # Only a reordering of the fields of QueryResponse can cause this.
        raise RuntimeError("QueryResponse must declare timings_ms and cached as its last two fields for its body to be cached")
    return body[: -len(_PLACEHOLDER_END)]


def complete_body(prefix: bytes, timings_ms: dict[str, float], cached: bool) -> bytes:
    """Return the whole JSON body of a query response from its cached prefix, this request's timings and the cache flag."""
    timings = json.dumps(timings_ms, separators=(",", ":")).encode("ascii")
    return b"".join((prefix, timings, _CACHED_END if cached else _COMPUTED_END))
