"""Prometheus metrics of the query service and the ASGI middleware that records per-request ones.

Every app gets its own `CollectorRegistry`, so two apps in one process (as in tests) count apart.
Routes are labelled by their path template (`/v1/entities/{entity_id}`), which keeps the number of
label values bounded whatever paths clients request.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Label of requests that matched no route, so that unknown paths cannot add label values.
UNMATCHED_ROUTE = "unmatched"

# Methods labelled by name; any other method a client sends is labelled `OTHER`.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Seconds: from a cached result (about a millisecond) to a slow uncached query on a busy CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Texts per encode call, up to the default embedding batch size of 64.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServiceMetrics:
    """The service's counters, gauges and histograms in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "graphmem_http_requests", "HTTP responses sent, by route template, method and status code.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.request_seconds = Histogram(
            "graphmem_http_request_duration_seconds", "Time from receiving a request to sending its last byte, by route template and method.",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge("graphmem_http_requests_in_flight", "HTTP requests being handled now.", registry=self.registry)
        self.query_seconds = Histogram(
            "graphmem_query_duration_seconds", "Time the query engine took per query, by query mode and whether the result came from the cache.",
            ["mode", "cached"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.query_cache = Counter(
            "graphmem_query_cache", "Query results read from the cache (hit) or computed (miss).", ["result"], registry=self.registry,
        )
        self.embedding_batch_texts = Histogram(
            "graphmem_embedding_batch_texts", "Query texts encoded together in one call.", buckets=BATCH_SIZE_BUCKETS, registry=self.registry,
        )
        for result in ("hit", "miss"):
            self.query_cache.labels(result=result)
        # Children of the labelled metrics by label values. `labels` takes a lock and builds a key on
        # every call, which costs more than the increment itself on a cache hit. The label values
        # are bounded (route templates, known methods, status codes, modes), and so are these dicts.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._query_children: dict[tuple[str, bool], tuple[Histogram, Counter]] = {}

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one response by route template, method and status, and record its duration."""
        children = self._request_children.get((route, method, status))
        if children is None:
            children = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.request_seconds.labels(route=route, method=method),
            )
            self._request_children[(route, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def record_query(self, mode: str, cached: bool, seconds: float) -> None:
        """Record the duration and the cache outcome of one query."""
        children = self._query_children.get((mode, cached))
        if children is None:
            children = (
                self.query_seconds.labels(mode=mode, cached=str(cached).lower()),
                self.query_cache.labels(result="hit" if cached else "miss"),
            )
            self._query_children[(mode, cached)] = children
        children[0].observe(seconds)
        children[1].inc()

    def render(self) -> tuple[bytes, str]:
        """Return the Prometheus text exposition of every metric and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count requests by route, method and status, time them, and track how many are in flight."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            # The router stores the matched route in the scope, which this middleware shares.
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            self.metrics.record_request(template, method, status, time.perf_counter() - started)

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            # Counted before the last body part leaves, so a client that has read the whole
            # response already finds its request in /metrics.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_flight.dec()
            record()
