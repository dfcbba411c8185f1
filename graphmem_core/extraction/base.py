"""The contract every entity and relation extractor implements.

An extractor turns chunks into `ExtractionResult`s, one per chunk and in the same order. Within a
result:

- each `Mention` span is a half-open `[start, end)` offset pair into `chunk.text`, and
  `chunk.text[mention.start:mention.end] == mention.text`;
- mentions are sorted by `start` and do not overlap;
- each `ExtractedRelation` names its source and target by index into the same result's
  `mentions`, and its `start`/`end` span the sentence of `chunk.text` that states it, which
  contains both mentions;
- `relation.type` is a lower-case label without spaces, such as `founded`, `moved_to` or
  `related_to`;
- a chunk with no text, or only whitespace, gives a result without mentions or relations.

`name` selects the extractor in settings, and `version` changes whenever the output for the same
input changes, so that caches keyed on `(name, version, chunk)` stay valid.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphmem_core.llm.usage import TokenUsage
from graphmem_core.models import Chunk, ExtractionFailure, ExtractionResult

if TYPE_CHECKING:
    from graphmem_core.llm.cache import ResponseCache


@dataclass
class ExtractionOutcome:
    """The result of one `extract_outcome` call: results of the chunks that succeeded, failures of the rest, and model usage."""

    results: list[ExtractionResult]
    failures: list[ExtractionFailure] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    estimated_cost: float = 0.0


class Extractor(ABC):
    """Base class of extractors; subclasses set `name` and `version` and implement `extract`."""

    name: str
    version: str

    @abstractmethod
    def extract(self, chunks: Sequence[Chunk]) -> list[ExtractionResult]:
        """Extract mentions and relations from each chunk and return one result per chunk, in order."""

    def extract_outcome(self, chunks: Sequence[Chunk], cache: "ResponseCache | None" = None) -> ExtractionOutcome:
        """Extract like `extract`, but report chunks that failed instead of raising, with the model usage.

        Extractors that call a model override this and keep their responses in `cache`. This default
        calls `extract`, which either succeeds for every chunk or raises.
        """
        return ExtractionOutcome(results=self.extract(chunks))

    @property
    def cache_key(self) -> str:
        """Identifier of this extractor's output format, for example `fast@1`."""
        return f"{self.name}@{self.version}"
