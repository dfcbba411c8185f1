"""ASGI middleware of the query service: a deadline per API request and headers on every response."""

import asyncio
import logging

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphmem_service.errors import error_response

logger = logging.getLogger(__name__)

# Routes under this prefix get the request deadline; /healthz, /readyz and /metrics bound their own work.
API_PREFIX = "/v1/"


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
            await asyncio.wait_for(self.app(scope, receive, send_tracking_start), self.timeout_seconds)
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

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if scope["path"].startswith(API_PREFIX):
                    # Responses depend on the caller's key, so no shared cache may keep them.
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
