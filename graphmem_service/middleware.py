"""ASGI middleware of the query service: a deadline per API request and headers on every response."""

import asyncio
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphmem_service.errors import error_response

logger = logging.getLogger(__name__)

# Routes under this prefix get the request deadline; /healthz, /readyz and /metrics bound their own work.
API_PREFIX = "/v1/"

# Headers added to every response that does not set them itself, as ASGI (lower-case name, value) pairs.
_SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))

# Added to API responses too: they depend on the caller's key, so no shared cache may keep them.
_API_HEADERS = (*_SECURITY_HEADERS, (b"cache-control", b"no-store"))


class TimeoutMiddleware:
    """Respond with 504 when an API request, body reading included, takes longer than `timeout_seconds`.

    The work of a timed-out request is abandoned, not stopped: a query already running in a worker
    thread finishes there, and its result is dropped.
    """

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            # asyncio.timeout cancels the request's own task, so unlike wait_for it starts no task per request.
            async with asyncio.timeout(self.timeout_seconds):
                await self.app(scope, receive, send_tracking_start)
        except TimeoutError:
            logger.warning("%s %s timed out after %g s", scope["method"], scope["path"], self.timeout_seconds)
            if response_started:
                # Part of the response is on the wire, so the client sees a truncated reply instead of a 504.
                return
            response = error_response(
                504,
                "timeout",
                f"the request took longer than the service's limit of {self.timeout_seconds:g} s: retry it, or ask for less (smaller top_k or hops)",
            )
            await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """Add headers that stop browsers from sniffing content types and proxies from caching API responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        added = _API_HEADERS if scope["path"].startswith(API_PREFIX) else _SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_default_headers(message.get("headers", ()), added)}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_default_headers(headers: Iterable[tuple[bytes, bytes]], defaults: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """Return the ASGI `headers` with each of `defaults` appended unless a header of that name is already there."""
    merged = list(headers)
    present = {name.lower() for name, _ in merged}
    merged.extend(header for header in defaults if header[0] not in present)
    return merged
