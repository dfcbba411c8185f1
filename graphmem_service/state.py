"""State shared by the requests of the query service: settings, keys, metrics, the embedder, the cache and the store.

The embedder and the cache are created when the service starts. The store is opened then too. When
that fails (a Neo4j server not up yet, a missing volume), the service still starts, reports the
store as not ready on /readyz, responds to API requests with 503 and keeps trying to open it.
"""

import asyncio
import gc
import inspect
import logging
import os
import time

import anyio

from graphmem_core.cache import Cache, open_cache
from graphmem_core.query import QueryEngine
from graphmem_core.query_graph import NamespaceGraph
from graphmem_core.settings import Settings
from graphmem_core.stores import open_store
from graphmem_core.stores.base import GraphStore
from graphmem_service.auth import KeyRing
from graphmem_service.batching import BatchingEmbedder
from graphmem_service.errors import ApiError
from graphmem_service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

# Pause between attempts to open a store that failed to open. Opening Neo4j already retries for
# about 15 s inside one attempt, so this mostly spaces attempts at a missing libSQL folder.
STORE_RETRY_SECONDS = 5.0

# While the store stays unavailable, a repeated failure is logged at most this often.
STORE_WARNING_INTERVAL_SECONDS = 60.0

# Bound on each readiness probe (one store read, one cache PING), so /readyz responds even when a
# dependency hangs.
READINESS_TIMEOUT_SECONDS = 2.0

# Namespace read by the store probe: any valid name works, because an unknown namespace has version 0.
_PROBE_TENANT = "graphmem-readiness"
_PROBE_MEMORY = "probe"

# Seconds a client should wait before retrying after a 503 response (the Retry-After header).
RETRY_AFTER_SECONDS = 5

# Worker threads that run the CPU work of queries that miss the cache. That work keeps the GIL most
# of the time, so more threads than cores only make them and the encoder thread wait for each other.
# With anyio's 40 shared threads, 64 concurrent clients made a 5 ms vector search take 1.5 s. A query
# waits for its encoding on the event loop and occupies none of these threads meanwhile.
QUERY_THREADS = max(2, os.cpu_count() or 1)


def limit_blas_threads(threads: int) -> None:
    """Limit the BLAS libraries loaded in this process (numpy's OpenBLAS, MKL) to `threads` threads; 0 leaves them as they are.

    A query's vector search is one small matrix product. After each call, OpenBLAS's idle threads
    spin for a while before they sleep, and that takes a core from the encoder. On the 2-core
    benchmark machine, one product followed by a 20 ms pause cost 17.6 ms of CPU with the default
    threads and 0.7 ms with one.
    """
    if threads == 0:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    logger.info("BLAS libraries limited to %d thread(s) (GRAPHMEM_BLAS_THREADS)", threads)


def freeze_heap(graph: NamespaceGraph) -> None:
    """Collect garbage once, then move every object left to the collector's permanent generation.

    A namespace graph is hundreds of thousands of long-lived objects. Without this, Python's full
    collections walk all of them every so often while queries run: over the podcast graph such a
    collection took 350 to 450 ms, and each one stalled every request in flight. Frozen objects are
    skipped by later collections. Unfreezing first lets this collection reclaim the graph that the
    new one replaced, should it contain reference cycles.
    """
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    logger.info(
        "namespace graph loaded at version %d: a full garbage collection took %.0f ms and freed %d objects, and %d objects are frozen",
        graph.version, (time.perf_counter() - started) * 1000, collected, gc.get_freeze_count(),
    )


def engine_accepts_mode() -> bool:
    """Return whether `QueryEngine.query` takes a `mode` argument, which engines before query modes lack."""
    return "mode" in inspect.signature(QueryEngine.query).parameters


class ServiceState:
    """Shared objects of one running service, created by `start` and released by `stop`."""

    def __init__(self, settings: Settings, keys: KeyRing, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
        self.accepts_mode = engine_accepts_mode()
        self.embedder: BatchingEmbedder | None = None
        self.cache: Cache | None = None
        self.store: GraphStore | None = None
        self.engine: QueryEngine | None = None
        self.store_error: str | None = None
        self.query_threads: anyio.CapacityLimiter | None = None
        self._retry_task: asyncio.Task | None = None
        self._last_store_warning = float("-inf")
        self._unreported_store_failures = 0

    async def start(self) -> None:
        """Load the embedding model, open the cache and try to open the store."""
        settings = self.settings
        limit_blas_threads(settings.blas_threads)

        # Created on the event loop, which an anyio limiter belongs to.
        self.query_threads = anyio.CapacityLimiter(QUERY_THREADS)
        self.embedder = BatchingEmbedder(
            settings.embedding_model,
            settings.embedding_device,
            settings.embedding_batch_size,
            on_batch=self.metrics.embedding_batch_texts.observe,
            torch_threads=settings.torch_threads,
        )
        started = time.perf_counter()
        # Loading imports torch and reads the weights, which takes seconds, so it runs off the event loop.
        await anyio.to_thread.run_sync(self._load_model)
        logger.info("embedding model %s ready on %s in %.1f s", settings.embedding_model, self.embedder.device, time.perf_counter() - started)

        self.cache = open_cache(settings)
        if not self.accepts_mode:
            logger.info("this query engine has no query modes, so the service accepts only mode=hybrid")

        if not await self._try_open_store():
            self._retry_task = asyncio.create_task(self._keep_opening_store(), name="graphmem-store-retry")

    async def stop(self) -> None:
        """Stop retrying the store and release the store, the cache and the batching thread."""
        if self._retry_task is not None:
            self._retry_task.cancel()
            try:
                await self._retry_task
            except asyncio.CancelledError:
                pass
        if self.embedder is not None:
            await anyio.to_thread.run_sync(self.embedder.close)
        if self.cache is not None:
            self.cache.close()
        if self.store is not None:
            self.store.close()
        logger.info("query service stopped")

    def require_engine(self) -> QueryEngine:
        """Return the query engine, or raise a 503 `ApiError` while the store is not open."""
        if self.engine is None:
            raise ApiError(
                503,
                "store_unavailable",
                "the graph store is not available yet: retry later, and see /readyz for when the service is ready",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return self.engine

    def require_store(self) -> GraphStore:
        """Return the open store, or raise a 503 `ApiError` while it is not open."""
        return self.require_engine().store

    async def readiness(self) -> dict[str, str]:
        """Probe the store and the cache, and return `ok` or the reason of the failure per part."""
        checks = {"embedder": "ok" if self.embedder is not None else "not loaded"}

        store = self.store
        if store is None:
            checks["store"] = f"not open: {self.store_error or 'opening'}"
        else:
            checks["store"] = await self._probe("store", lambda: store.graph_version(_PROBE_TENANT, _PROBE_MEMORY) >= 0)

        if self.cache is None:
            checks["cache"] = "not open"
        else:
            checks["cache"] = await self._probe("cache", self.cache.ping)
        return checks

    def _load_model(self) -> None:
        assert self.embedder is not None
        self.embedder.model

    async def _probe(self, part: str, call) -> str:
        """Run a blocking check in a worker thread within READINESS_TIMEOUT_SECONDS; return `ok` or why it failed."""
        try:
            with anyio.fail_after(READINESS_TIMEOUT_SECONDS):
                passed = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            logger.warning("readiness probe of the %s timed out after %.1f s", part, READINESS_TIMEOUT_SECONDS)
            return f"timed out after {READINESS_TIMEOUT_SECONDS:g} s"
        except Exception as error:  # noqa: BLE001 - any failure makes the part not ready, and the reason is reported
            logger.warning("readiness probe of the %s failed: %s: %s", part, type(error).__name__, error)
            return f"failed: {type(error).__name__}"
        return "ok" if passed else "failed: no reply"

    async def _try_open_store(self) -> bool:
        """Open the store and the engine over it; return False and record the reason when that fails."""
        try:
            store = await anyio.to_thread.run_sync(open_store, self.settings)
        except Exception as error:  # noqa: BLE001 - the service stays up and reports the store as not ready
            # Only the error type reaches /readyz, which needs no key; the message may name hosts and paths.
            self.store_error = f"{type(error).__name__}"
            self._log_store_failure(error)
            return False

        assert self.embedder is not None and self.cache is not None
        self.store = store
        self.engine = QueryEngine(store, self.embedder, self.cache, on_graph_load=freeze_heap)
        if self.store_error is not None:
            logger.info("graph store (%s) is open after earlier failures", self.settings.store)
        self.store_error = None
        return True

    def _log_store_failure(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_store_warning < STORE_WARNING_INTERVAL_SECONDS:
            self._unreported_store_failures += 1
            return
        suppressed = f"; {self._unreported_store_failures} more failures since the last warning" if self._unreported_store_failures else ""
        self._last_store_warning = now
        self._unreported_store_failures = 0
        logger.error(
            "could not open the %s graph store (%s: %s), so API requests get 503; retrying every %.0f s%s",
            self.settings.store, type(error).__name__, error, STORE_RETRY_SECONDS, suppressed,
        )

    async def _keep_opening_store(self) -> None:
        while self.store is None:
            await asyncio.sleep(STORE_RETRY_SECONDS)
            await self._try_open_store()
