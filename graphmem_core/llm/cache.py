"""The persistent cache of validated LLM responses, kept in the graph store.

A response is keyed by what determines it: the kind of request, the model, the prompt version,
any further prompt settings and the hash of the input text. Materialising the same chunks again
therefore sends no request, and a new model or prompt version misses the cache.
"""

from collections.abc import Mapping, Sequence
from typing import Protocol

from graphmem_core.ids import content_hash
from graphmem_core.stores.base import GraphStore


def response_key(kind: str, model: str, prompt_version: str, input_hash: str, *settings: str) -> str:
    """Return the cache key of one request: `kind` (extraction, summary), model, prompt version, input hash and prompt settings."""
    return content_hash("llm-response", kind, model, prompt_version, *settings, input_hash)


class ResponseCache(Protocol):
    """Validated responses as JSON text, by `response_key`."""

    def get(self, keys: Sequence[str]) -> dict[str, str]:
        """Return the stored responses of the keys that have one."""
        ...

    def put(self, responses: Mapping[str, str]) -> None:
        """Store responses; a key that already has one keeps it."""
        ...


class StoreResponseCache:
    """A `ResponseCache` in a graph store, shared by every memory of one tenant."""

    def __init__(self, store: GraphStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def get(self, keys: Sequence[str]) -> dict[str, str]:
        """Return the stored responses of the keys that have one."""
        return self.store.get_llm_responses(self.tenant, keys) if keys else {}

    def put(self, responses: Mapping[str, str]) -> None:
        """Store responses; a key that already has one keeps it."""
        if responses:
            self.store.upsert_llm_responses(self.tenant, responses)

