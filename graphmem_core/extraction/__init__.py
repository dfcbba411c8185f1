"""Entity and relation extractors, selected by name through `get_extractor`."""

from collections.abc import Callable

from graphmem_core.errors import ConfigurationError
from graphmem_core.extraction.base import ExtractionOutcome, Extractor
from graphmem_core.extraction.fast import FastExtractor
from graphmem_core.settings import Settings


def _create_fast(settings: Settings) -> Extractor:
    return FastExtractor()


def _create_llm(settings: Settings) -> Extractor:
    # Imported here because openai and instructor take seconds to import and only this extractor needs them.
    from graphmem_core.extraction.llm import LLMExtractor

    return LLMExtractor(settings)


# Extractor factories by the name used in settings (`GRAPHMEM_EXTRACTOR`).
_REGISTRY: dict[str, Callable[[Settings], Extractor]] = {
    FastExtractor.name: _create_fast,
    "llm": _create_llm,
}


def get_extractor(name: str, settings: Settings | None = None) -> Extractor:
    """Create the extractor registered under `name`; `settings` (default: the environment) configure the LLM extractor."""
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown extractor {name!r}: set GRAPHMEM_EXTRACTOR to one of: {known}")
    if settings is None and name != FastExtractor.name:
        settings = Settings.from_env()
    return factory(settings if settings is not None else Settings())


def known_extractors() -> list[str]:
    """Return the registered extractor names, sorted."""
    return sorted(_REGISTRY)


__all__ = ["ExtractionOutcome", "Extractor", "FastExtractor", "get_extractor", "known_extractors"]
