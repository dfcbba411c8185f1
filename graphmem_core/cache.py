"""Query caches: a byte-level `Cache` interface, an in-process LRU and a Redis backend.

Keys come from `cache_key`, which scopes every entry by kind, tenant, memory and graph version, so
a new materialisation makes older query results unreachable instead of stale. A cache is an
optimisation only, so `RedisCache` turns every Redis failure into a miss or a skipped write.
"""

import json
import logging
import re
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import numpy as np
from pydantic import BaseModel, ValidationError

from graphmem_core.errors import ConfigurationError, InvalidInputError
from graphmem_core.ids import content_hash
from graphmem_core.settings import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "graphmem:"

# Kinds are short lower-case words so that keys stay readable in `redis-cli --scan`.
_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

DEFAULT_TTL_SECONDS: int = Settings.model_fields["cache_ttl_seconds"].default
DEFAULT_MAX_ENTRIES: int = Settings.model_fields["cache_max_entries"].default

# Query results over 60 podcast transcripts were 40 to 70 KB of JSON with the default top_k and about
# 230 KB with top_k=100 and 3 hops, so the default 10,000 entries could take gigabytes. This bound
# caps the values' memory first; keys and per-entry overhead are not counted.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

# A Redis GET on the same network replies in well under a millisecond, while a cache miss costs one
# embedding and one search, tens to hundreds of milliseconds on a CPU. Waiting longer than that for
# an unresponsive Redis would cost more than the cache saves.
DEFAULT_REDIS_TIMEOUT_SECONDS = 0.05

# After a failure Redis is skipped for this long, so an outage costs one timeout per cooldown
# instead of one per call.
DEFAULT_REDIS_COOLDOWN_SECONDS = 5.0

# While Redis stays down, at most one warning is logged per interval, and the others are counted.
REDIS_WARNING_INTERVAL_SECONDS = 60.0

# Vector format: magic, number of dimensions, then each dimension as little-endian uint32, then the
# float32 values in little-endian C order.
_VECTOR_MAGIC = b"GMV1"
_VECTOR_DTYPE = np.dtype("<f4")

# The user name and password part of a URL, which must not reach logs or error messages.
_USERINFO = re.compile(r"//[^/@]*@")

ModelT = TypeVar("ModelT", bound=BaseModel)


def cache_key(kind: str, tenant: str, memory: str, version: int, parameters: dict[str, Any]) -> str:
    """Build the key `graphmem:<kind>:<tenant>:<memory>:v<version>:<hash of the canonical JSON of parameters>`.

    Tenant and memory are percent-encoded, so a ':' inside a name cannot make two namespaces share a key.
    """
    if not _KIND_PATTERN.match(kind):
        raise InvalidInputError(f"cache key kind {kind!r} is invalid: use 1 to 32 lower-case letters, digits or '_', starting with a letter")
    if version < 0:
        raise InvalidInputError(f"cache key version {version} is negative: pass the store's graph version (0 or more)")

    try:
        canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"cache key parameters {parameters!r} are not plain JSON: {error}") from error

    return f"{KEY_PREFIX}{kind}:{quote(tenant, safe='')}:{quote(memory, safe='')}:v{version}:{content_hash(canonical)}"


def encode_vector(vector: np.ndarray) -> bytes:
    """Serialise an array as float32 bytes behind a header that records its shape."""
    array = np.ascontiguousarray(vector, dtype=_VECTOR_DTYPE)
    header = _VECTOR_MAGIC + struct.pack(f"<I{array.ndim}I", array.ndim, *array.shape)
    return header + array.tobytes()


def decode_vector(data: bytes, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read bytes written by `encode_vector`, raising `ValueError` when they are malformed or of another shape."""
    if not data.startswith(_VECTOR_MAGIC):
        raise ValueError("the value is not a cached vector: its header is missing")

    offset = len(_VECTOR_MAGIC)
    if len(data) < offset + 4:
        raise ValueError("the cached vector is truncated inside its header")
    (ndim,) = struct.unpack_from("<I", data, offset)
    offset += 4
    if len(data) < offset + 4 * ndim:
        raise ValueError(f"the cached vector is truncated inside its header of {ndim} dimensions")
    shape = struct.unpack_from(f"<{ndim}I", data, offset)
    offset += 4 * ndim

    expected_bytes = int(np.prod(shape, dtype=np.int64)) * _VECTOR_DTYPE.itemsize
    if len(data) - offset != expected_bytes:
        raise ValueError(f"the cached vector of shape {shape} has {len(data) - offset} data bytes, expected {expected_bytes}")
    if expected_shape is not None and tuple(shape) != tuple(expected_shape):
        raise ValueError(f"the cached vector has shape {shape}, expected {tuple(expected_shape)}")

    return np.frombuffer(data, dtype=_VECTOR_DTYPE, offset=offset).reshape(shape).astype(np.float32)


def _check_ttl(ttl_seconds: int | None) -> None:
    if ttl_seconds is not None and ttl_seconds < 1:
        raise InvalidInputError(f"cache ttl_seconds={ttl_seconds} is invalid: use a whole number of seconds >= 1, or None for the default")


class Cache(ABC):
    """A byte-level key-value cache with expiry, where a missing or expired key reads as None.

    Implementations are safe to share between threads. The typed helpers below treat an entry that
    cannot be decoded as a miss and log it, so an entry written by another release never breaks a read.
    """

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None when it is missing, expired or unavailable."""

    @abstractmethod
    def set(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        """Store `value` under `key` for `ttl_seconds` (the cache's default when None), replacing any older value."""

    @abstractmethod
    def ping(self) -> bool:
        """Return whether the cache is reachable now."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and memory. The cache must not be used afterwards."""

    def get_json(self, key: str) -> Any | None:
        """Return the JSON value stored under `key`, or None on a miss or an undecodable entry."""
        data = self.get(key)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as error:
            logger.warning("ignoring cache entry %s: invalid JSON (%s)", key, error)
            return None

    def set_json(self, key: str, value: Any, ttl_seconds: int | None = None) -> None:
        """Store `value` as compact JSON."""
        self.set(key, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), ttl_seconds)

    def get_model(self, key: str, model_type: type[ModelT]) -> ModelT | None:
        """Return the `model_type` instance stored under `key`, or None on a miss or an entry that fails validation."""
        data = self.get(key)
        if data is None:
            return None
        try:
            return model_type.model_validate_json(data)
        except ValidationError as error:
            logger.warning("ignoring cache entry %s: not a valid %s (%d errors)", key, model_type.__name__, error.error_count())
            return None

    def set_model(self, key: str, value: BaseModel, ttl_seconds: int | None = None) -> None:
        """Store a Pydantic model as its JSON."""
        self.set(key, value.model_dump_json().encode("utf-8"), ttl_seconds)

    def get_vector(self, key: str, expected_shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """Return the float32 array stored under `key`, or None on a miss, a malformed entry or another shape."""
        data = self.get(key)
        if data is None:
            return None
        try:
            return decode_vector(data, expected_shape)
        except ValueError as error:
            logger.warning("ignoring cache entry %s: %s", key, error)
            return None

    def set_vector(self, key: str, vector: np.ndarray, ttl_seconds: int | None = None) -> None:
        """Store an array as float32 bytes with its shape."""
        self.set(key, encode_vector(vector), ttl_seconds)


class InProcessCache(Cache):
    """A bounded LRU cache in this process's memory, with a lifetime per entry.

    Entries are evicted least recently used first once there are more than `max_entries` of them or
    their values take more than `max_bytes`. Expired entries are dropped when they are read or evicted.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, ttl_seconds: int = DEFAULT_TTL_SECONDS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"cache max_entries={max_entries} is invalid: set GRAPHMEM_CACHE_MAX_ENTRIES to a whole number >= 1")
        if ttl_seconds < 1:
            raise ConfigurationError(f"cache ttl_seconds={ttl_seconds} is invalid: set GRAPHMEM_CACHE_TTL_SECONDS to a whole number >= 1")
        if max_bytes < 1:
            raise ConfigurationError(f"cache max_bytes={max_bytes} is invalid: use a whole number of bytes >= 1")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        # key -> (expiry on the monotonic clock, value). The most recently used entry is last.
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if expires_at <= now:
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        _check_ttl(ttl_seconds)
        value = bytes(value)
        if len(value) > self.max_bytes:
            logger.debug("not caching %s: its %d bytes exceed the cache bound of %d bytes", key, len(value), self.max_bytes)
            with self._lock:
                self._remove(key)
            return

        expires_at = time.monotonic() + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds)
        with self._lock:
            self._remove(key)
            self._entries[key] = (expires_at, value)
            self._bytes += len(value)
            self._evict()

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])

    def _evict(self) -> None:
        """Drop expired entries, then the least recently used ones, until both bounds hold. The caller holds the lock."""
        if len(self._entries) <= self.max_entries and self._bytes <= self.max_bytes:
            return

        now = time.monotonic()
        for key in [key for key, (expires_at, _) in self._entries.items() if expires_at <= now]:
            self._remove(key)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)


def _redacted_url(url: str) -> str:
    """Return `url` with any user name and password replaced by `***`, for logs and errors."""
    return _USERINFO.sub("//***@", url)


def _validate_redis_url(url: str) -> None:
    """Raise `ConfigurationError` unless `url` is a redis://, rediss:// or unix:// address with a valid port and db."""
    display_url = _redacted_url(url)
    fix = "Set GRAPHMEM_REDIS_URL to an address such as redis://127.0.0.1:6379/0"
    parsed = urlparse(url)

    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"Redis URL {display_url!r} is invalid: it must start with redis://, rediss:// or unix://. {fix}")
    if parsed.scheme == "unix":
        if not parsed.path:
            raise ConfigurationError(f"Redis URL {display_url!r} is invalid: a unix:// address needs a socket path. {fix}")
        return

    if not parsed.hostname:
        raise ConfigurationError(f"Redis URL {display_url!r} is invalid: it has no host name. {fix}")
    try:
        parsed.port
    except ValueError:
        raise ConfigurationError(f"Redis URL {display_url!r} is invalid: its port is not a number from 0 to 65535. {fix}") from None
    database = parsed.path.strip("/")
    if database and not database.isdigit():
        raise ConfigurationError(f"Redis URL {display_url!r} is invalid: the database {database!r} after the host is not a number. {fix}")


class RedisCache(Cache):
    """A cache in Redis, shared between processes, that degrades to a miss whenever Redis fails.

    Every Redis error or timeout becomes a miss in `get` and a skipped write in `set`. After a
    failure a circuit breaker skips Redis for `cooldown_seconds`, then the next call tries again.
    The first failure of an outage is logged as a warning, then at most one per
    `REDIS_WARNING_INTERVAL_SECONDS`, and recovery is logged once.
    """

    def __init__(
        self,
        url: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        timeout_seconds: float = DEFAULT_REDIS_TIMEOUT_SECONDS,
        cooldown_seconds: float = DEFAULT_REDIS_COOLDOWN_SECONDS,
        key_prefix: str = "",
    ) -> None:
        _validate_redis_url(url)
        if ttl_seconds < 1:
            raise ConfigurationError(f"cache ttl_seconds={ttl_seconds} is invalid: set GRAPHMEM_CACHE_TTL_SECONDS to a whole number >= 1")
        if timeout_seconds <= 0:
            raise ConfigurationError(f"Redis timeout_seconds={timeout_seconds} is invalid: use a number of seconds > 0")
        if cooldown_seconds < 0:
            raise ConfigurationError(f"Redis cooldown_seconds={cooldown_seconds} is invalid: use a number of seconds >= 0")

        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigurationError("GRAPHMEM_CACHE=redis needs the redis package: install it with `pip install redis`") from None

        self.url = _redacted_url(url)
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self.cooldown_seconds = cooldown_seconds
        self.key_prefix = key_prefix
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

        try:
            # redis-py 8 retries a failed command with backoff by default. Zero retries keep the cost
            # of a dead server at one connect or read timeout, and the circuit breaker retries later.
            self._client = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout_seconds,
                socket_timeout=timeout_seconds,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as error:
            raise ConfigurationError(f"Redis URL {self.url!r} is invalid: {error}. Set GRAPHMEM_REDIS_URL to an address such as redis://127.0.0.1:6379/0") from error

        self._state_lock = threading.Lock()
        self._skip_until = 0.0
        self._down = False
        self._failures = 0
        self._unreported_failures = 0
        self._last_warning_at = float("-inf")

    def get(self, key: str) -> bytes | None:
        if self._circuit_open():
            return None
        try:
            value = self._client.get(self.key_prefix + key)
        except self._errors as error:
            self._record_failure("GET", error)
            return None
        self._record_success()
        return value

    def set(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        _check_ttl(ttl_seconds)
        if self._circuit_open():
            return
        try:
            self._client.set(self.key_prefix + key, bytes(value), ex=ttl_seconds if ttl_seconds is not None else self.ttl_seconds)
        except self._errors as error:
            self._record_failure("SET", error)
            return
        self._record_success()

    def ping(self) -> bool:
        """Send PING even while Redis is skipped after a failure, and stop skipping it when PING succeeds."""
        try:
            self._client.ping()
        except self._errors as error:
            self._record_failure("PING", error)
            return False
        self._record_success()
        return True

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors as error:
            logger.debug("closing the Redis cache at %s failed: %s", self.url, error)

    def _circuit_open(self) -> bool:
        with self._state_lock:
            return time.monotonic() < self._skip_until

    def _record_failure(self, command: str, error: BaseException) -> None:
        now = time.monotonic()
        with self._state_lock:
            self._skip_until = now + self.cooldown_seconds
            first = not self._down
            self._down = True
            self._failures += 1
            if not first and now - self._last_warning_at < REDIS_WARNING_INTERVAL_SECONDS:
                self._unreported_failures += 1
                return
            unreported = self._unreported_failures
            self._unreported_failures = 0
            self._last_warning_at = now

        suppressed = f"; {unreported} more failures since the last warning" if unreported else ""
        logger.warning(
            "Redis cache at %s failed on %s (%s: %s), so queries run without it until it is tried again in %.1f s%s",
            self.url,
            command,
            type(error).__name__,
            error,
            self.cooldown_seconds,
            suppressed,
        )

    def _record_success(self) -> None:
        if not self._down:
            return
        with self._state_lock:
            if not self._down:
                return
            failures = self._failures
            self._down = False
            self._failures = 0
            self._unreported_failures = 0
            self._last_warning_at = float("-inf")
        logger.info("Redis cache at %s is reachable again after %d failed calls", self.url, failures)


def open_cache(settings: Settings) -> Cache:
    """Open the cache that `settings.cache` names. The caller closes it."""
    if settings.cache == "redis":
        return RedisCache(settings.redis_url, ttl_seconds=settings.cache_ttl_seconds)
    if settings.cache == "memory":
        return InProcessCache(max_entries=settings.cache_max_entries, ttl_seconds=settings.cache_ttl_seconds)
    raise ConfigurationError(f"GRAPHMEM_CACHE={settings.cache!r} is not a cache: use memory or redis")
