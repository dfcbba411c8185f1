"""The query engine's cache on a real graph: hits, recomputation after new content, and Redis outages."""

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphmem_core import pipeline
from graphmem_core.batches import register_batch
from graphmem_core.cache import InProcessCache, RedisCache
from graphmem_core.embeddings import Embedder
from graphmem_core.extraction import get_extractor
from graphmem_core.query import QueryEngine, QueryResult
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.conftest import delete_redis_keys, service_url

TENANT = "default"
MEMORY = "default"
MAX_FILE_BYTES = 10_000_000

QUESTIONS = [
    "building computers and software",
    "what did they learn in school",
    "artificial intelligence research",
]

# Short, so that Redis is tried again soon after an outage instead of after the default cooldown.
OUTAGE_COOLDOWN_SECONDS = 0.2

# A loose bound, not a benchmark, on how much slower a query may be with Redis down than with no
# shared cache at all. It is added to the measured time of the same query, because the embedding
# alone can take most of a second on a busy 2-core machine.
MAX_OUTAGE_DELAY_SECONDS = 1.0

# Loose bound on one cache call to a Redis that accepts connections but never replies: the default
# socket timeout of tens of milliseconds, with room for a busy machine.
MAX_UNRESPONSIVE_CALL_SECONDS = 0.5

SERVER_START_SECONDS = 10.0


def ingest_folder(store: LibsqlGraphStore, embedder: Embedder, batches: Path, folder: Path) -> str:
    """Run every pipeline stage on the files of `folder` as one batch and return its id."""
    manifest = register_batch([folder], TENANT, MEMORY, batches)
    extractor = get_extractor("fast")
    pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES)
    pipeline.embed_batch(store, embedder, TENANT, MEMORY, manifest.batch_id, overlap_tokens=32)
    pipeline.extract_batch(store, extractor, TENANT, MEMORY, manifest.batch_id)
    pipeline.resolve_graph(store, extractor, TENANT, MEMORY, pipeline.cached_name_encoder(store, embedder, TENANT), threshold=0.9)
    pipeline.build_communities(store, TENANT, MEMORY, seed=42)
    return manifest.batch_id


def write_texts(folder: Path, texts: list[tuple[str, str]]) -> Path:
    folder.mkdir(parents=True)
    for name, text in texts:
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def answer_of(result: QueryResult) -> dict:
    """Return what a query found, without the timings and the cache flag that differ between calls."""
    return result.model_dump(exclude={"timings_ms", "cached"})



@pytest.fixture(scope="module")
def graph(tmp_path_factory, podcast_texts, embedder) -> Iterator[LibsqlGraphStore]:
    """Yield a store holding a small graph of three transcripts, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("query-cache-graph")
    store = LibsqlGraphStore(root / "home" / "graph.db")
    ingest_folder(store, embedder, root / "batches", write_texts(root / "inputs", podcast_texts[:3]))
    yield store
    store.close()


class RedisProcess:
    """A `redis-server` of this test alone, on a fixed port of 127.0.0.1, that can be killed and started again."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = self._free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def _free_port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    def start(self) -> None:
        log = open(self.folder / "redis.log", "ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + SERVER_START_SECONDS
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    log = (self.folder / "redis.log").read_text(errors="replace")
                    pytest.fail(f"redis-server on port {self.port} exited with code {self.process.returncode}:\n{log}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        pytest.fail(f"redis-server on port {self.port} did not answer PING within {SERVER_START_SECONDS} s")

    def pause(self) -> None:
        """Stop the server process without closing its port, so that connections open but nothing replies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """Yield a running redis-server of this test, or skip when the binary is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server not found: install the Debian package redis-server to run this test"
        if os.environ.get("GRAPHMEM_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; GRAPHMEM_TEST_REQUIRE_SERVICES=1 requires every service", pytrace=False)
        pytest.skip(message)

    server = RedisProcess(binary, tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=["memory", "redis"])
def engine_factory(request, tmp_path: Path):
    """Yield a function that builds a QueryEngine with the default in-process cache or a Redis cache."""
    caches: list[RedisCache] = []
    url = service_url("redis") if request.param == "redis" else ""
    prefix = f"graphmem-test-{os.getpid()}-{time.monotonic_ns()}:"

    def make(store: LibsqlGraphStore, embedder: Embedder) -> QueryEngine:
        if request.param == "memory":
            return QueryEngine(store, embedder)
        cache = RedisCache(url, timeout_seconds=1.0, key_prefix=prefix)
        caches.append(cache)
        return QueryEngine(store, embedder, cache)

    yield make

    for cache in caches:
        cache.close()
    if request.param == "redis":
        delete_redis_keys(url, prefix)


def test_default_engine_cache_in_process(graph, embedder):
    engine = QueryEngine(graph, embedder)

    assert isinstance(engine.cache, InProcessCache)


def test_cached_answer_recomputed_after_write(engine_factory, podcast_texts, embedder, tmp_path: Path):
    store = LibsqlGraphStore(tmp_path / "home" / "graph.db")
    try:
        ingest_folder(store, embedder, tmp_path / "batches", write_texts(tmp_path / "first", podcast_texts[:2]))
        engine = engine_factory(store, embedder)
        # A query taken from the transcript that arrives later, so that its chunk must rank first once it is stored.
        late_name, late_text = podcast_texts[-1]
        question = " ".join(late_text.split())[:300]

        first = engine.query(TENANT, MEMORY, question, top_k=3)
        second = engine.query(TENANT, MEMORY, question, top_k=3)

        assert first.cached is False
        assert second.cached is True
        assert answer_of(second) == answer_of(first)
        assert set(second.timings_ms) == {"cache", "total"}
        assert set(first.timings_ms) == {"embed", "search", "graph", "communities", "total"}

        version = store.graph_version(TENANT, MEMORY)
        late_batch = ingest_folder(store, embedder, tmp_path / "batches", write_texts(tmp_path / "late", [(late_name, late_text)]))
        late_document_ids = {document.id for document in store.get_batch_documents(TENANT, MEMORY, late_batch)}
        assert store.graph_version(TENANT, MEMORY) > version

        after_write = engine.query(TENANT, MEMORY, question, top_k=3)
        after_write_again = engine.query(TENANT, MEMORY, question, top_k=3)

        assert after_write.cached is False
        assert after_write.chunks[0].chunk.document_id in late_document_ids
        assert first.chunks[0].chunk.document_id not in late_document_ids
        assert after_write_again.cached is True
        assert answer_of(after_write_again) == answer_of(after_write)
    finally:
        store.close()


def test_cache_keyed_by_parameters(graph, embedder):
    engine = QueryEngine(graph, embedder)

    base = engine.query(TENANT, MEMORY, QUESTIONS[0], top_k=3, hops=1)
    more_chunks = engine.query(TENANT, MEMORY, QUESTIONS[0], top_k=5, hops=1)
    more_hops = engine.query(TENANT, MEMORY, QUESTIONS[0], top_k=3, hops=2)
    other_memory = engine.query(TENANT, "other", QUESTIONS[0], top_k=3, hops=1)

    assert base.cached is False
    assert more_chunks.cached is False
    assert len(more_chunks.chunks) == 5
    assert more_hops.cached is False
    assert other_memory.cached is False
    assert other_memory.chunks == []


def test_redis_outage_served_without_cache(graph, embedder, redis_server: RedisProcess, caplog):
    caplog.set_level(logging.INFO, logger="graphmem_core.cache")
    reference = QueryEngine(graph, embedder, InProcessCache())
    expected: dict[str, dict] = {}
    reference_seconds: dict[str, float] = {}
    for question in QUESTIONS:
        started = time.perf_counter()
        expected[question] = answer_of(reference.query(TENANT, MEMORY, question))
        reference_seconds[question] = time.perf_counter() - started
    cache = RedisCache(redis_server.url, cooldown_seconds=OUTAGE_COOLDOWN_SECONDS)
    engine = QueryEngine(graph, embedder, cache)

    assert engine.query(TENANT, MEMORY, QUESTIONS[0]).cached is False
    assert engine.query(TENANT, MEMORY, QUESTIONS[0]).cached is True

    redis_server.kill()
    # Two rounds with a pause longer than the cooldown, so that Redis is tried again and fails again.
    for _ in range(2):
        for question in QUESTIONS:
            started = time.perf_counter()
            result = engine.query(TENANT, MEMORY, question)
            elapsed = time.perf_counter() - started

            assert result.cached is False
            assert answer_of(result) == expected[question]
            limit = reference_seconds[question] + MAX_OUTAGE_DELAY_SECONDS
            assert elapsed < limit, f"query took {elapsed:.2f} s with Redis down, {reference_seconds[question]:.2f} s without a shared cache"
        time.sleep(OUTAGE_COOLDOWN_SECONDS * 2)

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING and record.name == "graphmem_core.cache"]
    assert len(warnings) == 1, "repeated failures within the warning interval should be logged once"
    assert redis_server.url.rsplit("/", 1)[0] in warnings[0].getMessage()

    redis_server.start()
    time.sleep(OUTAGE_COOLDOWN_SECONDS * 2)
    # The restarted server is empty, so the first result is computed and stored, and the second is read back.
    refilled = engine.query(TENANT, MEMORY, QUESTIONS[0])
    served = engine.query(TENANT, MEMORY, QUESTIONS[0])

    assert refilled.cached is False
    assert served.cached is True
    assert answer_of(served) == expected[QUESTIONS[0]]
    assert any("reachable again" in record.getMessage() for record in caplog.records)
    cache.close()


def test_redis_unresponsive_times_out(redis_server: RedisProcess):
    cache = RedisCache(redis_server.url, cooldown_seconds=OUTAGE_COOLDOWN_SECONDS)
    cache.set("graphmem-test:unresponsive", b"value")
    assert cache.get("graphmem-test:unresponsive") == b"value"

    redis_server.pause()
    try:
        started = time.perf_counter()
        value = cache.get("graphmem-test:unresponsive")
        first_call = time.perf_counter() - started
        started = time.perf_counter()
        cache.set("graphmem-test:unresponsive", b"skipped")
        second_call = time.perf_counter() - started
    finally:
        redis_server.resume()

    assert value is None
    assert first_call < MAX_UNRESPONSIVE_CALL_SECONDS, f"GET took {first_call:.3f} s against a paused server"
    assert second_call < first_call, "the open circuit should skip Redis without waiting for a timeout"

    time.sleep(OUTAGE_COOLDOWN_SECONDS * 2)
    assert cache.get("graphmem-test:unresponsive") == b"value"
    cache.close()
