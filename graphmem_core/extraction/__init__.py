"""Entity and relation extractors, selected by name through `get_extractor`."""

from collections.abc import Callable

from graphmem_core.errors import ConfigurationError
from graphmem_core.extraction.base import Extractor
from graphmem_core.extraction.fast import FastExtractor

# Extractor factories by the name used in settings (`GRAPHMEM_EXTRACTOR`).
_REGISTRY: dict[str, Callable[[], Extractor]] = {
    FastExtractor.name: FastExtractor,
}


def get_extractor(name: str) -> Extractor:
    """Create the extractor registered under `name`."""
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown extractor {name!r}: set GRAPHMEM_EXTRACTOR to one of: {known}")
    return factory()


def known_extractors() -> list[str]:
    """Return the registered extractor names, sorted."""
    return sorted(_REGISTRY)


__all__ = ["Extractor", "FastExtractor", "get_extractor", "known_extractors"]
