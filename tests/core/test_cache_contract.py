"""One contract for every query cache: the in-process LRU and Redis.

The Redis cases run against the server at `GRAPHMEM_TEST_REDIS_URL` and skip when it is unset. Each
run writes under its own key prefix and deletes those keys afterwards.
"""

import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from pydantic import BaseModel

from graphmem_core.cache import Cache, InProcessCache, RedisCache, cache_key, decode_vector, encode_vector, open_cache
from graphmem_core.errors import ConfigurationError, InvalidInputError
from graphmem_core.settings import Settings
from tests.conftest import delete_redis_keys, service_url

BACKENDS = ["memory", "redis"]

# Generous, so that a slow reply on a loaded CI machine is not mistaken for an outage here. The
# default timeout of tens of milliseconds is tested in test_query_cache.py.
CONTRACT_REDIS_TIMEOUT_SECONDS = 1.0

CacheFactory = Callable[..., Cache]


class Point(BaseModel):
    x: int
    label: str



@pytest.fixture(params=BACKENDS)
def make_cache(request) -> Iterator[CacheFactory]:
    """Yield a factory of caches of one backend, each opened with the given TTL, and close them afterwards."""
    opened: list[Cache] = []
    url = service_url("redis") if request.param == "redis" else ""
    # Unique per test without randomness: the process id and the clock at setup.
    prefix = f"graphmem-test-{os.getpid()}-{time.monotonic_ns()}:"

    def make(ttl_seconds: int = 3600) -> Cache:
        if request.param == "memory":
            cache: Cache = InProcessCache(max_entries=10_000, ttl_seconds=ttl_seconds)
        else:
            cache = RedisCache(url, ttl_seconds=ttl_seconds, timeout_seconds=CONTRACT_REDIS_TIMEOUT_SECONDS, key_prefix=prefix)
        opened.append(cache)
        return cache

    yield make

    for cache in opened:
        cache.close()
    if request.param == "redis":
        delete_redis_keys(url, prefix)


@pytest.fixture
def cache(make_cache: CacheFactory) -> Cache:
    return make_cache()


def key(name: str, tenant: str = "acme", memory: str = "notes", version: int = 1) -> str:
    return cache_key("answer", tenant, memory, version, {"name": name})


# Contract: every backend


def test_cache_set_get_miss(cache: Cache):
    assert cache.ping() is True
    assert cache.get(key("absent")) is None

    cache.set(key("present"), b"value")

    assert cache.get(key("present")) == b"value"
    assert cache.get(key("absent")) is None


def test_cache_binary_values(cache: Cache):
    every_byte = bytes(range(256)) * 4

    cache.set(key("binary"), every_byte)
    cache.set(key("empty"), b"")

    assert cache.get(key("binary")) == every_byte
    assert cache.get(key("empty")) == b""


def test_cache_ttl_expiry(make_cache: CacheFactory):
    cache = make_cache(ttl_seconds=1)
    cache.set(key("default ttl"), b"a")
    cache.set(key("short ttl"), b"b", ttl_seconds=1)
    cache.set(key("long ttl"), b"c", ttl_seconds=60)
    cache.set(key("renewed"), b"old")
    cache.set(key("renewed"), b"new", ttl_seconds=60)
    assert cache.get(key("default ttl")) == b"a"
    assert cache.get(key("short ttl")) == b"b"

    time.sleep(1.3)

    assert cache.get(key("default ttl")) is None
    assert cache.get(key("short ttl")) is None
    assert cache.get(key("long ttl")) == b"c"
    assert cache.get(key("renewed")) == b"new", "an overwrite should replace the TTL"


def test_cache_ttl_rejects_zero(cache: Cache):
    with pytest.raises(InvalidInputError, match="ttl_seconds=0"):
        cache.set(key("zero"), b"x", ttl_seconds=0)


def test_cache_overwrite(cache: Cache):
    cache.set(key("same"), b"first")
    cache.set(key("same"), b"second, longer than the first")

    assert cache.get(key("same")) == b"second, longer than the first"


def test_cache_keys_isolate_namespaces(cache: Cache):
    # Names with ':' that would give the same key if they were joined as they are.
    variants = {
        "tenant a:b, memory c": cache_key("answer", "a:b", "c", 1, {"q": 1}),
        "tenant a, memory b:c": cache_key("answer", "a", "b:c", 1, {"q": 1}),
        "tenant a, memory b": cache_key("answer", "a", "b", 1, {"q": 1}),
        "other tenant": cache_key("answer", "z", "b", 1, {"q": 1}),
        "other memory": cache_key("answer", "a", "z", 1, {"q": 1}),
        "version 2": cache_key("answer", "a", "b", 2, {"q": 1}),
        "other parameters": cache_key("answer", "a", "b", 1, {"q": 2}),
        "other kind": cache_key("query_vector", "a", "b", 1, {"q": 1}),
        "percent in name": cache_key("answer", "a%3Ab", "c", 1, {"q": 1}),
    }
    assert len(set(variants.values())) == len(variants)

    for label, variant_key in variants.items():
        cache.set(variant_key, label.encode())

    for label, variant_key in variants.items():
        assert cache.get(variant_key) == label.encode(), label


def test_cache_large_value(cache: Cache):
    large = np.random.default_rng(7).bytes(8 * 1024 * 1024)

    cache.set(key("large"), large)

    assert cache.get(key("large")) == large


def test_cache_concurrent_threads(cache: Cache):
    threads_count = 8
    rounds = 100
    shared_values = {f"writer {i}".encode() for i in range(threads_count)}
    errors: list[str] = []

    def work(worker: int) -> None:
        for round_index in range(rounds):
            own = key(f"worker {worker} round {round_index}")
            cache.set(own, f"{worker}/{round_index}".encode())
            cache.set(key("shared"), f"writer {worker}".encode())
            if cache.get(own) != f"{worker}/{round_index}".encode():
                errors.append(f"worker {worker} lost its own key in round {round_index}")
            if cache.get(key("shared")) not in shared_values:
                errors.append(f"worker {worker} read a torn shared value in round {round_index}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert cache.get(key("worker 3 round 50")) == b"3/50"


def test_cache_json_and_model_helpers(cache: Cache):
    cache.set_json(key("json"), {"b": [1, 2.5, None], "a": "ü"})
    cache.set_model(key("model"), Point(x=3, label="three"))

    assert cache.get_json(key("json")) == {"b": [1, 2.5, None], "a": "ü"}
    assert cache.get_model(key("model"), Point) == Point(x=3, label="three")
    assert cache.get_json(key("missing")) is None
    assert cache.get_model(key("missing"), Point) is None


def test_cache_undecodable_entries_miss(cache: Cache):
    cache.set(key("not json"), b"\xff\x00 not json")
    cache.set_json(key("wrong model"), {"x": "not a number"})

    assert cache.get_json(key("not json")) is None
    assert cache.get_model(key("wrong model"), Point) is None
    assert cache.get_vector(key("not json")) is None


def test_cache_vector_helpers(cache: Cache):
    vector = np.linspace(-1.0, 1.0, 384, dtype=np.float32)
    matrix = np.arange(12, dtype=np.float64).reshape(3, 4)

    cache.set_vector(key("vector"), vector)
    cache.set_vector(key("matrix"), matrix)

    read = cache.get_vector(key("vector"), expected_shape=(384,))
    assert read is not None
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, vector)
    read_matrix = cache.get_vector(key("matrix"))
    assert read_matrix is not None
    assert read_matrix.shape == (3, 4)
    np.testing.assert_array_equal(read_matrix, matrix.astype(np.float32))
    assert cache.get_vector(key("vector"), expected_shape=(768,)) is None


# Keys and vector encoding


def test_cache_key_stable_and_readable():
    first = cache_key("answer", "acme", "notes", 12, {"text": "q", "top_k": 5})
    reordered = cache_key("answer", "acme", "notes", 12, {"top_k": 5, "text": "q"})

    assert first == reordered
    assert first.startswith("graphmem:answer:acme:notes:v12:")
    assert len(first.rsplit(":", 1)[1]) == 64


def test_cache_key_escapes_colons():
    escaped = cache_key("answer", "a:b", "m", 0, {})

    assert escaped.startswith("graphmem:answer:a%3Ab:m:v0:")


@pytest.mark.parametrize(
    ("kind", "version", "parameters", "message"),
    [
        ("Answer", 1, {}, "kind 'Answer'"),
        ("an:swer", 1, {}, "kind 'an:swer'"),
        ("answer", -1, {}, "version -1"),
        ("answer", 1, {"vector": np.zeros(2)}, "not plain JSON"),
        ("answer", 1, {"score": float("nan")}, "not plain JSON"),
    ],
)
def test_cache_key_rejects_invalid(kind, version, parameters, message):
    with pytest.raises(InvalidInputError, match=message):
        cache_key(kind, "acme", "notes", version, parameters)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"nothing like a vector", "header is missing"),
        (encode_vector(np.ones(4))[:-1], "data bytes"),
        (encode_vector(np.ones(4))[:6], "truncated"),
    ],
)
def test_decode_vector_rejects_malformed(data: bytes, message: str):
    with pytest.raises(ValueError, match=message):
        decode_vector(data)


# In-process cache


def test_memory_cache_evicts_least_recently_used():
    cache = InProcessCache(max_entries=3, ttl_seconds=60)
    for name in ("a", "b", "c"):
        cache.set(name, name.encode())
    assert cache.get("a") == b"a"

    cache.set("d", b"d")

    assert len(cache) == 3
    assert cache.get("b") is None
    assert cache.get("a") == b"a"
    assert cache.get("c") == b"c"
    assert cache.get("d") == b"d"


def test_memory_cache_bounds_bytes():
    cache = InProcessCache(max_entries=100, ttl_seconds=60, max_bytes=10)
    cache.set("first", b"12345")
    cache.set("second", b"12345")

    cache.set("third", b"123")
    cache.set("too large", b"12345678901")

    assert cache.get("first") is None
    assert cache.get("second") == b"12345"
    assert cache.get("third") == b"123"
    assert cache.get("too large") is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_entries": 0}, "GRAPHMEM_CACHE_MAX_ENTRIES"),
        ({"ttl_seconds": 0}, "GRAPHMEM_CACHE_TTL_SECONDS"),
        ({"max_bytes": 0}, "max_bytes=0"),
    ],
)
def test_memory_cache_rejects_invalid_bounds(arguments: dict, message: str):
    with pytest.raises(ConfigurationError, match=message):
        InProcessCache(**arguments)


# Redis configuration, checked without a server


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379/0", "must start with redis://"),
        ("127.0.0.1:6379", "must start with redis://"),
        ("redis://127.0.0.1:port/0", "port is not a number"),
        ("redis://127.0.0.1:6379/cache", "database 'cache'"),
        ("redis:///0", "no host name"),
        ("unix://", "socket path"),
    ],
)
def test_redis_cache_rejects_invalid_url(url: str, message: str):
    with pytest.raises(ConfigurationError, match=message) as raised:
        RedisCache(url)

    assert "GRAPHMEM_REDIS_URL" in str(raised.value)


def test_redis_cache_hides_password_in_errors():
    with pytest.raises(ConfigurationError) as raised:
        RedisCache("redis://user:s3cret-word@127.0.0.1:port/0")

    assert "s3cret-word" not in str(raised.value)
    assert "***@127.0.0.1" in str(raised.value)


def test_redis_cache_unreachable_is_miss():
    # Port 1 on the loopback address refuses connections, so every call fails at once.
    cache = RedisCache("redis://127.0.0.1:1/0", cooldown_seconds=0.0)

    assert cache.get(key("any")) is None
    cache.set(key("any"), b"ignored")
    assert cache.ping() is False
    cache.close()


def test_open_cache_follows_settings():
    memory = open_cache(Settings(cache="memory", cache_max_entries=7, cache_ttl_seconds=9))
    redis_cache = open_cache(Settings(cache="redis", redis_url="redis://127.0.0.1:1/2", cache_ttl_seconds=11))

    assert isinstance(memory, InProcessCache)
    assert memory.max_entries == 7
    assert memory.ttl_seconds == 9
    assert isinstance(redis_cache, RedisCache)
    assert redis_cache.ttl_seconds == 11
    memory.close()
    redis_cache.close()
