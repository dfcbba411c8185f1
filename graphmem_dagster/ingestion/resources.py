"""Dagster resources for the graph store, the embedder and the extractor.

Every field defaults to None, which means "use the environment variable or its default" (see
`graphmem_core.settings.Settings`). Settings are read when a run starts, never at import time.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from graphmem_core.embeddings import Embedder
from graphmem_core.extraction import get_extractor
from graphmem_core.extraction.base import Extractor
from graphmem_core.settings import Settings
from graphmem_core.stores import GraphStore, open_store

logger = logging.getLogger(__name__)


def _settings_with(overrides: dict[str, object]) -> Settings:
    settings = Settings.from_env()
    present = {name: value for name, value in overrides.items() if value is not None}
    # model_validate, unlike model_copy, converts the values (a home string into a Path) and checks them.
    return Settings.model_validate({**settings.model_dump(), **present}) if present else settings


class GraphStoreResource(ConfigurableResource):
    """The graph store and the namespace that runs write into."""

    home: str | None = None
    tenant: str | None = None
    memory: str | None = None
    max_file_bytes: int | None = None
    resolution_threshold: float | None = None
    community_seed: int | None = None

    def settings(self) -> Settings:
        """Return the effective settings: these fields over the environment over the defaults."""
        return _settings_with(
            {
                "home": self.home,
                "tenant": self.tenant,
                "memory": self.memory,
                "max_file_bytes": self.max_file_bytes,
                "resolution_threshold": self.resolution_threshold,
                "community_seed": self.community_seed,
            }
        )

    @contextmanager
    def open(self) -> Iterator[GraphStore]:
        """Open the configured store for the duration of a step and close it afterwards."""
        settings = self.settings()
        store = open_store(settings)
        try:
            yield store
        finally:
            store.close()


class EmbedderResource(ConfigurableResource):
    """The sentence-transformers model that embeds chunks and entity names."""

    model: str | None = None
    device: str | None = None
    batch_size: int | None = None
    chunk_overlap_tokens: int | None = None

    _embedder: Embedder | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        """Return the effective settings: these fields over the environment over the defaults."""
        return _settings_with(
            {
                "embedding_model": self.model,
                "embedding_device": self.device,
                "embedding_batch_size": self.batch_size,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
            }
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        settings = self.settings()
        self._embedder = Embedder(settings.embedding_model, settings.embedding_device, settings.embedding_batch_size)

    def get_embedder(self) -> Embedder:
        """Return the run's embedder; its model loads on first use and is shared by every step of the run."""
        if self._embedder is None:
            settings = self.settings()
            self._embedder = Embedder(settings.embedding_model, settings.embedding_device, settings.embedding_batch_size)
        return self._embedder


class ExtractorResource(ConfigurableResource):
    """The extractor that finds entity mentions and relations in chunks."""

    name: str | None = None

    def get_extractor(self) -> Extractor:
        """Return the configured extractor, `name`, else GRAPHMEM_EXTRACTOR, else `fast`."""
        return get_extractor(_settings_with({"extractor": self.name}).extractor)
