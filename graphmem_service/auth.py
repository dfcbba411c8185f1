"""API keys of the query service: parsing the configured keys and matching bearer tokens to tenants.

Only SHA-256 digests of the keys are kept in memory, and a presented token is compared with every
digest by `hmac.compare_digest`, so neither the comparison time nor a memory dump reveals a key.
"""

import hashlib
import hmac
import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graphmem_core.errors import ConfigurationError
from graphmem_core.settings import Settings, validate_namespace

logger = logging.getLogger(__name__)

# Shorter keys can be guessed by trying them against the service.
MIN_KEY_CHARS = 16

# Separators of the GRAPHMEM_API_KEYS format `key:tenant[:memory1|memory2],...`, so keys and names
# given there cannot contain them.
_ENTRY_SEPARATOR = ","
_FIELD_SEPARATOR = ":"
_MEMORY_SEPARATOR = "|"

_SHA256_HEX_CHARS = 64


class ApiKey(BaseModel):
    """One accepted key: the tenant it acts for and, when set, the only memories it may read."""

    model_config = ConfigDict(frozen=True)

    digest: str = Field(description="Hex SHA-256 of the key.")
    tenant: str
    memories: frozenset[str] | None = Field(default=None, description="Memories the key may read; None allows all of its tenant.")

    def allows(self, memory: str) -> bool:
        """Return whether this key may read `memory` of its tenant."""
        return self.memories is None or memory in self.memories


class _FileEntry(BaseModel):
    """One entry of a GRAPHMEM_API_KEYS_FILE list: the key itself or its SHA-256, with a tenant."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    sha256: str | None = None
    tenant: str
    memories: list[str] | None = None


def key_digest(key: str) -> str:
    """Return the hex SHA-256 of a key, the form in which keys are stored and compared."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_key(key: str, where: str) -> None:
    if len(key) < MIN_KEY_CHARS:
        raise ConfigurationError(f"an API key in {where} has {len(key)} characters: use at least {MIN_KEY_CHARS} random characters")
    if not key.isprintable() or any(character.isspace() for character in key):
        raise ConfigurationError(f"an API key in {where} contains spaces or control characters: use printable characters only")


def _make_key(digest: str, tenant: str, memories: list[str] | None, where: str) -> ApiKey:
    """Validate the tenant and memory names of one key, raising `ConfigurationError` that names `where`."""
    try:
        for memory in memories if memories else ["default"]:
            validate_namespace(tenant, memory)
    except ConfigurationError as error:
        raise ConfigurationError(f"API key entry in {where}: {error}") from None
    if memories is not None and not memories:
        raise ConfigurationError(f"API key entry for tenant {tenant!r} in {where} lists no memories: list at least one or leave the list out")
    return ApiKey(digest=digest, tenant=tenant, memories=frozenset(memories) if memories is not None else None)


def parse_api_keys(text: str) -> list[ApiKey]:
    """Parse GRAPHMEM_API_KEYS: comma-separated `key:tenant` or `key:tenant:memory1|memory2` entries."""
    where = "GRAPHMEM_API_KEYS"
    keys: list[ApiKey] = []
    for position, entry in enumerate(text.split(_ENTRY_SEPARATOR), start=1):
        entry = entry.strip()
        if not entry:
            continue
        fields = entry.split(_FIELD_SEPARATOR)
        if len(fields) not in (2, 3):
            # The entry contains a key, so the message names its position instead of its text.
            raise ConfigurationError(
                f"entry {position} of GRAPHMEM_API_KEYS has {len(fields)} ':'-separated fields: write key:tenant or key:tenant:memory1|memory2"
            )
        key, tenant = fields[0], fields[1]
        _check_key(key, f"entry {position} of {where}")
        memories = fields[2].split(_MEMORY_SEPARATOR) if len(fields) == 3 else None
        keys.append(_make_key(key_digest(key), tenant, memories, f"entry {position} of {where}"))
    return keys


def read_api_keys_file(path: Path) -> list[ApiKey]:
    """Read a JSON list of `{"key" or "sha256", "tenant", "memories"?}` objects.

    A `sha256` entry contains the hex SHA-256 of the key, so the file need not contain the key itself.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"API keys file {path} could not be read: {error}. Fix GRAPHMEM_API_KEYS_FILE") from error
    except ValueError as error:
        raise ConfigurationError(f"API keys file {path} is not valid JSON: {error}") from error
    if not isinstance(data, list):
        raise ConfigurationError(f"API keys file {path} must contain a JSON list of objects, not {type(data).__name__}")

    keys: list[ApiKey] = []
    for position, item in enumerate(data, start=1):
        where = f"entry {position} of {path}"
        try:
            entry = _FileEntry.model_validate(item)
        except ValidationError as error:
            # Only field names and messages: pydantic's default text would repeat the input, key included.
            problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc']) or 'entry'}: {problem['msg']}" for problem in error.errors())
            raise ConfigurationError(f"{where} is invalid: {problems}") from None
        if (entry.key is None) == (entry.sha256 is None):
            raise ConfigurationError(f"{where} must have exactly one of `key` and `sha256`")
        if entry.key is not None:
            _check_key(entry.key, where)
            digest = key_digest(entry.key)
        else:
            digest = entry.sha256.lower() if entry.sha256 else ""
            if len(digest) != _SHA256_HEX_CHARS or any(character not in "0123456789abcdef" for character in digest):
                raise ConfigurationError(f"`sha256` of {where} is not a hex SHA-256 digest: write the 64 hex digits of the key's SHA-256")
        keys.append(_make_key(digest, entry.tenant, entry.memories, where))
    return keys


class KeyRing:
    """The accepted API keys, looked up by bearer token."""

    def __init__(self, keys: list[ApiKey]) -> None:
        digests = [key.digest for key in keys]
        if len(set(digests)) != len(digests):
            raise ConfigurationError("the same API key is configured twice: give each key one entry")
        self._keys = list(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def tenants(self) -> list[str]:
        """Tenants that at least one key acts for, sorted."""
        return sorted({key.tenant for key in self._keys})

    def lookup(self, token: str) -> ApiKey | None:
        """Return the key whose digest matches `token`, or None; every digest is compared, so the time does not depend on which matched."""
        presented = key_digest(token)
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found


def load_key_ring(settings: Settings) -> KeyRing:
    """Build the key ring from GRAPHMEM_API_KEYS and GRAPHMEM_API_KEYS_FILE, raising `ConfigurationError` when neither has a key."""
    keys: list[ApiKey] = []
    if settings.api_keys is not None:
        keys.extend(parse_api_keys(settings.api_keys.get_secret_value()))
    if settings.api_keys_file is not None:
        keys.extend(read_api_keys_file(settings.api_keys_file))
    if not keys:
        raise ConfigurationError(
            "the query service has no API keys: set GRAPHMEM_API_KEYS=key:tenant[,key:tenant...] or GRAPHMEM_API_KEYS_FILE to a JSON list of keys"
        )

    ring = KeyRing(keys)
    logger.info("accepting %d API keys for %d tenants", len(ring), len(ring.tenants))
    return ring
