"""Entity and relation extraction by a chat model behind any OpenAI-compatible endpoint.

The model responds with entities (name, type from the configured list, description, aliases) and
relations between entity names (type, description, confidence, optional validity dates), validated
by Pydantic. `to_extraction_result` turns that output into the `Extractor` contract. Every
case-insensitive, whole-word occurrence of an entity's name or alias in the chunk becomes a mention.
Each relation links the closest pair of its endpoints' mentions within the sentences that contain them. Entities that relations name but the entity list lacks are added with type OTHER, and
whatever has no place in the text is listed in the result instead of being dropped silently.
"""

import logging
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from graphmem_core.errors import ExtractionError
from graphmem_core.extraction.base import ExtractionOutcome, Extractor
from graphmem_core.extraction.fast import split_sentences
from graphmem_core.ids import content_hash
from graphmem_core.llm.cache import ResponseCache, response_key
from graphmem_core.llm.client import LLMClient, LLMRequestError
from graphmem_core.llm.usage import TokenUsage
from graphmem_core.models import Chunk, EntityType, ExtractedRelation, ExtractionFailure, ExtractionResult, Mention
from graphmem_core.settings import DEFAULT_LLM_ENTITY_TYPES, Settings

logger = logging.getLogger(__name__)

# Names longer than this are sentences, not entity names.
MAX_NAME_CHARS = 200

# Descriptions are a sentence or two; longer ones are cut by validation and asked for again.
MAX_DESCRIPTION_CHARS = 1000

# Failures named in the message of `extract`, which raises when any chunk fails.
MAX_FAILURES_IN_MESSAGE = 5

SYSTEM_PROMPT = """You extract a knowledge graph from one passage of text, which the user sends.

Entities: the people, organisations, places, dates, quantities, products, events and concepts the
passage is about. Give each entity:
- name: the name exactly as the passage writes it, so that it can be found in the text;
- type: one of {types};
- description: one sentence on what the passage says about it;
- aliases: other spellings of the same entity that occur in the passage (a surname, an acronym).

Relations: facts the passage states between two of the entities. Give each relation:
- source and target: entity names as listed above;
- type: a short lower-case verb phrase with underscores, such as founded, works_at or born_in;
- description: the fact in one sentence;
- confidence: from 0 to 1, how clearly the passage states the fact;
- valid_from and valid_to: only when the passage says when the fact began or ended.

Use only what the passage states. Leave out generic words that name nothing specific."""


def build_response_model(entity_types: Sequence[str]) -> type[BaseModel]:
    """Return the Pydantic model of the output, with entity types restricted to `entity_types`."""
    type_choice = Literal[tuple(entity_types)]  # type: ignore[valid-type]

    class Entity(BaseModel):
        """An entity the passage names."""

        name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="The name as written in the passage.")
        type: type_choice = Field(description="The entity type.")  # type: ignore[valid-type]
        description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS, description="What the passage states about the entity.")
        aliases: list[str] = Field(default_factory=list, description="Other names of the entity in the passage.")

    class Relation(BaseModel):
        """A fact the passage states between two entities."""

        source: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="Name of the source entity.")
        target: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="Name of the target entity.")
        type: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="Lower-case verb phrase with underscores.")
        description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS, description="The fact in one sentence.")
        confidence: float = Field(ge=0.0, le=1.0, description="How clearly the passage states the fact, 0 to 1.")
        valid_from: str | None = Field(default=None, description="When the fact began to hold, as an ISO 8601 date or a year.")
        valid_to: str | None = Field(default=None, description="When the fact stopped holding, as an ISO 8601 date or a year.")

    class KnowledgeGraph(BaseModel):
        """The entities and relations of one passage."""

        entities: list[Entity]
        relations: list[Relation]

    return KnowledgeGraph


@dataclass
class _Entity:
    """One entity of the output with every surface form to look for in the text."""

    name: str
    type: EntityType
    description: str | None
    forms: list[str] = field(default_factory=list)


class LLMExtractor(Extractor):
    """Extractor that requests entities and relations from a chat model, with validated, cached output."""

    name = "llm"
    # The version of the mapping from model output to mentions and relations; the model and the prompt
    # version are part of `cache_key` as well.
    version = "1"

    def __init__(self, settings: Settings, client: LLMClient | None = None) -> None:
        """Create the extractor from the GRAPHMEM_LLM_* settings; pass `client` to share one or to set its backoff."""
        self.client = client if client is not None else LLMClient(settings)
        self.entity_types = tuple(settings.llm_entity_types)
        self.prompt_version = settings.llm_prompt_version
        self.response_model = build_response_model(self.entity_types)
        self.system_prompt = SYSTEM_PROMPT.format(types=", ".join(self.entity_types))

    @property
    def cache_key(self) -> str:
        """`llm@<version>:<model>:<prompt version>`, plus a digest of the entity types when they are not the default."""
        key = f"{self.name}@{self.version}:{self.client.model}:{self.prompt_version}"
        if self.entity_types != DEFAULT_LLM_ENTITY_TYPES:
            key += ":types=" + content_hash(*self.entity_types)[:8]
        return key

    def extract(self, chunks: Sequence[Chunk]) -> list[ExtractionResult]:
        """Extract every chunk without a response cache; raise `ExtractionError` when any chunk fails."""
        outcome = self.extract_outcome(chunks)
        if outcome.failures:
            named = "; ".join(f"{f.chunk_id}: {f.reason}" for f in outcome.failures[:MAX_FAILURES_IN_MESSAGE])
            raise ExtractionError(
                f"{len(outcome.failures)} of {len(chunks)} chunks failed ({named}): "
                "check the LLM endpoint, or use pipeline.extract_batch, which records failures and retries them on the next run"
            )
        return outcome.results

    def extract_outcome(self, chunks: Sequence[Chunk], cache: ResponseCache | None = None) -> ExtractionOutcome:
        """Extract every chunk, reading responses from `cache` where it can; return results, failures and usage.

        Chunks with the same text share one request. Requests run on up to `max_concurrency` threads,
        and each response is stored in `cache` as soon as it arrives.
        """
        usage = TokenUsage()
        results: dict[str, ExtractionResult] = {}
        failures: list[ExtractionFailure] = []

        chunks_by_key: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            if not chunk.text.strip():
                results[chunk.id] = ExtractionResult(chunk_id=chunk.id, mentions=[], relations=[])
            else:
                chunks_by_key.setdefault(self._response_key(chunk), []).append(chunk)

        stored = cache.get(sorted(chunks_by_key)) if cache is not None else {}
        pending: dict[str, list[Chunk]] = {}
        for key, group in chunks_by_key.items():
            output = self._parse_stored(stored.get(key), key)
            if output is None:
                pending[key] = group
                continue
            usage.cached += 1
            for chunk in group:
                results[chunk.id] = to_extraction_result(chunk, output)

        if pending:
            logger.info("requesting %d chunk texts from %s, %d taken from the cache", len(pending), self.client.model, usage.cached)
            self._request_all(pending, cache, usage, results, failures)

        ordered = [results[chunk.id] for chunk in chunks if chunk.id in results]
        failures.sort(key=lambda failure: failure.chunk_id)
        return ExtractionOutcome(results=ordered, failures=failures, usage=usage, estimated_cost=self.client.estimate_cost(usage))

    def _request_all(
        self,
        pending: dict[str, list[Chunk]],
        cache: ResponseCache | None,
        usage: TokenUsage,
        results: dict[str, ExtractionResult],
        failures: list[ExtractionFailure],
    ) -> None:
        """Request every pending chunk text on the thread pool and collect outputs and failures as they arrive."""
        workers = min(self.client.max_concurrency, len(pending))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-extract")
        try:
            futures: dict[Future[tuple[BaseModel | None, str | None, TokenUsage]], str] = {
                pool.submit(self._request, group[0]): key for key, group in pending.items()
            }
            for future in as_completed(futures):
                key = futures[future]
                output, reason, call_usage = future.result()
                usage.add(call_usage)
                if output is None:
                    for chunk in pending[key]:
                        failures.append(ExtractionFailure(chunk_id=chunk.id, reason=reason or "unknown failure"))
                        logger.warning("extraction of chunk %s failed: %s", chunk.id, reason)
                    continue
                if cache is not None:
                    cache.put({key: output.model_dump_json()})
                for chunk in pending[key]:
                    results[chunk.id] = to_extraction_result(chunk, output)
        finally:
            # A ConfigurationError from one request ends the step, so the queued requests are dropped.
            pool.shutdown(wait=True, cancel_futures=True)

    def _request(self, chunk: Chunk) -> tuple[BaseModel | None, str | None, TokenUsage]:
        """Send one chunk to the model; return its output or the reason it failed, and the usage."""
        usage = TokenUsage()
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": chunk.text}]
        try:
            output = self.client.complete(self.response_model, messages, request_id=f"chunk {chunk.id}", usage=usage)
        except LLMRequestError as error:
            return None, str(error), usage
        return output, None, usage

    def _response_key(self, chunk: Chunk) -> str:
        return response_key("extraction", self.client.model, self.prompt_version, chunk.text_hash, *self.entity_types)

    def _parse_stored(self, stored: str | None, key: str) -> BaseModel | None:
        """Return a cached output, or None when there is none or it no longer validates."""
        if stored is None:
            return None
        try:
            return self.response_model.model_validate_json(stored)
        except ValidationError as error:
            logger.warning("cached LLM response %s no longer validates, requesting it again: %s", key, error.errors()[:1])
            return None


def to_extraction_result(chunk: Chunk, output: BaseModel) -> ExtractionResult:
    """Map validated model output onto `chunk`: mentions at every occurrence, relations between mention indexes."""
    text = chunk.text
    entities, owners, inferred = _collect_entities(output)
    spans = _locate_mentions(text, entities)

    mentions = []
    mention_indexes: dict[str, list[int]] = {}
    for start, end, key in spans:
        entity = entities[key]
        surface = text[start:end]
        mention_indexes.setdefault(key, []).append(len(mentions))
        mentions.append(
            Mention(
                chunk_id=chunk.id,
                text=surface,
                type=entity.type,
                start=start,
                end=end,
                canonical_name=entity.name if surface.lower() != entity.name.lower() else None,
                description=entity.description,
            )
        )

    sentences = split_sentences(text)
    relations = []
    dropped = []
    for relation in output.relations:  # type: ignore[attr-defined]
        label = _relation_label(relation.type)
        source_key = owners.get(_entity_key(relation.source), "")
        target_key = owners.get(_entity_key(relation.target), "")
        described = f"{relation.source} -[{label or relation.type}]-> {relation.target}"
        pair = _closest_pair(mentions, mention_indexes.get(source_key, []), mention_indexes.get(target_key, []))
        if not label or source_key == target_key or pair is None:
            dropped.append(described)
            continue
        source, target = pair
        start, end = _sentence_span(sentences, mentions[source], mentions[target])
        relations.append(
            ExtractedRelation(
                chunk_id=chunk.id,
                source=source,
                target=target,
                type=label,
                start=start,
                end=end,
                description=relation.description or None,
                confidence=relation.confidence,
                valid_from=relation.valid_from or None,
                valid_to=relation.valid_to or None,
            )
        )

    return ExtractionResult(
        chunk_id=chunk.id,
        mentions=mentions,
        relations=relations,
        inferred_entities=inferred,
        unlocated_entities=[entity.name for key, entity in entities.items() if key not in mention_indexes],
        dropped_relations=dropped,
    )


def _entity_key(name: str) -> str:
    return " ".join(name.split()).lower()


def _relation_label(raw: str) -> str:
    """Return a relation type as a lower-case label without spaces ("Works At" becomes `works_at`)."""
    return re.sub(r"[^0-9a-z]+", "_", raw.lower()).strip("_")


def _collect_entities(output: BaseModel) -> tuple[dict[str, _Entity], dict[str, str], list[str]]:
    """Collect the output's entities by lower-case name, merged where names repeat.

    Returns the entities, the entity key of every lower-case name and alias, and the names that
    relations use without a listed entity, which are added with type OTHER.
    """
    entities: dict[str, _Entity] = {}
    alias_owner: dict[str, str] = {}
    for item in output.entities:  # type: ignore[attr-defined]
        key = _entity_key(item.name)
        if not key:
            continue
        entity = entities.get(key)
        if entity is None:
            entity = _Entity(name=" ".join(item.name.split()), type=EntityType(item.type), description=item.description or None)
            entities[key] = entity
        for form in [item.name, *item.aliases]:
            form_key = _entity_key(form)
            if form_key and form_key not in alias_owner:
                alias_owner[form_key] = key
                entity.forms.append(" ".join(form.split()))

    # A relation may name an entity by one of its aliases, which resolves to that entity.
    inferred = []
    for relation in output.relations:  # type: ignore[attr-defined]
        for endpoint in (relation.source, relation.target):
            key = _entity_key(endpoint)
            if not key or key in alias_owner:
                continue
            name = " ".join(endpoint.split())
            entities[key] = _Entity(name=name, type=EntityType.OTHER, description=None, forms=[name])
            alias_owner[key] = key
            inferred.append(name)
    return entities, alias_owner, inferred


def _locate_mentions(text: str, entities: dict[str, _Entity]) -> list[tuple[int, int, str]]:
    """Find whole-word, case-insensitive occurrences of every entity form; keep the longest where they overlap.

    Returns `(start, end, entity key)` sorted by start, without overlaps.
    """
    candidates = []
    for key, entity in entities.items():
        for form in entity.forms:
            pattern = r"\s+".join(re.escape(word) for word in form.split())
            for match in re.finditer(rf"(?<!\w){pattern}(?!\w)", text, flags=re.IGNORECASE):
                candidates.append((match.start(), match.end(), key))

    candidates.sort(key=lambda span: (-(span[1] - span[0]), span[0], span[2]))
    chosen: list[tuple[int, int, str]] = []
    taken = bytearray(len(text))
    for start, end, key in candidates:
        if taken.find(1, start, end) == -1:
            taken[start:end] = b"\x01" * (end - start)
            chosen.append((start, end, key))
    chosen.sort()
    return chosen


def _closest_pair(mentions: list[Mention], sources: list[int], targets: list[int]) -> tuple[int, int] | None:
    """Return the source and target mention indexes that lie closest together, or None when either list is empty."""
    best: tuple[int, int, int] | None = None
    for source in sources:
        for target in targets:
            distance = abs(mentions[source].start - mentions[target].start)
            if best is None or distance < best[0]:
                best = (distance, source, target)
    return None if best is None else (best[1], best[2])


def _sentence_span(sentences: list[tuple[int, int]], first: Mention, second: Mention) -> tuple[int, int]:
    """Return the span from the start of the sentence of the earlier mention to the end of the later one's.

    NOTE: a model may state a relation across sentences, so unlike the fast extractor's, this span can
    cover several sentences of the chunk.
    """
    start = min(first.start, second.start)
    end = max(first.end, second.end)
    for sentence_start, sentence_end in sentences:
        if sentence_start <= start < sentence_end:
            start = sentence_start
        if sentence_start < end <= sentence_end:
            end = sentence_end
    return start, end
