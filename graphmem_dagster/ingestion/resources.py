"""Dagster resources for the graph store, the embedder and the extractor.

Every field defaults to None, which means "use the environment variable or its default" (see
`graphmem_core.settings.Settings`). Settings are read when a run starts, never at import time.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from graphmem_core.embeddings import Embedder
from graphmem_core.extraction import get_extractor
from graphmem_core.extraction.base import Extractor
from graphmem_core.settings import Settings
from graphmem_core.stores import GraphStore, open_store

if TYPE_CHECKING:
    from graphmem_core.llm.summaries import CommunitySummariser

logger = logging.getLogger(__name__)


def settings_with(overrides: dict[str, object]) -> Settings:
    """Return the environment's settings with every override that is not None applied and validated."""
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
        return settings_with(
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
        return settings_with(
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
    """The extractor that finds entity mentions and relations in chunks, and the LLM that summarises communities."""

    name: str | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_prompt_version: str | None = None

    def settings(self) -> Settings:
        """Return the effective settings: these fields over the environment over the defaults."""
        return settings_with(
            {
                "extractor": self.name,
                "llm_base_url": self.llm_base_url,
                "llm_model": self.llm_model,
                "llm_prompt_version": self.llm_prompt_version,
            }
        )

    def get_extractor(self) -> Extractor:
        """Return the configured extractor, `name`, else GRAPHMEM_EXTRACTOR, else `fast`."""
        settings = self.settings()
        return get_extractor(settings.extractor, settings)

    def get_summariser(self) -> "CommunitySummariser | None":
        """Return an LLM community summariser when a model is configured (GRAPHMEM_LLM_MODEL), else None."""
        settings = self.settings()
        if not settings.llm_configured:
            return None
        # Imported here because openai and instructor take seconds to import and only LLM runs need them.
        from graphmem_core.llm.client import LLMClient
        from graphmem_core.llm.summaries import CommunitySummariser

        return CommunitySummariser(LLMClient(settings))
