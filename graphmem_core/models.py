"""Plain Pydantic models for every object the pipeline reads or writes.

Models carry data only. Stores map rows to these models, and pipeline stages take and return them.
Character spans are half-open `[start, end)` offsets into the text named beside them.
"""

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _is_none(value: object) -> bool:
    return value is None


def _is_empty(value: object) -> bool:
    return not value


# Optional fields added after results were first stored are left out of the JSON while unset, so
# results without them serialise exactly as before and stored JSON compares equal.
def _optional_text(description: str) -> Any:
    return Field(default=None, exclude_if=_is_none, description=description)


def _optional_list(description: str) -> Any:
    return Field(default_factory=list, exclude_if=_is_empty, description=description)


class Namespace(_Frozen):
    """The tenant and memory that scope every stored object."""

    tenant: str = "default"
    memory: str = "default"


class Document(_Frozen):
    """A normalised input document; `id` is derived from tenant, memory and `text`."""

    id: str
    tenant: str
    memory: str
    text: str
    title: str | None = None
    source: str = Field(description="Path of the file the text came from, with `!member` for zip archives and `#line` for JSON Lines.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RejectedInput(_Frozen):
    """One input that could not be accepted, with the reason a user can act on."""

    source: str
    reason: str


class Chunk(_Frozen):
    """A sentence-aligned piece of a document sized to the embedder's maximum sequence length."""

    id: str
    document_id: str
    tenant: str
    memory: str
    index: int = Field(description="Position of the chunk within its document, from 0.")
    text: str
    start: int = Field(description="Offset of the first character in the document text.")
    end: int = Field(description="Offset one past the last character in the document text.")
    token_count: int
    text_hash: str = Field(description="Hash of `text`, which keys the embedding cache.")


class EntityType(str, Enum):
    """Coarse entity types shared by every extractor."""

    PERSON = "PERSON"
    ORGANIZATION = "ORGANIZATION"
    LOCATION = "LOCATION"
    DATE = "DATE"
    QUANTITY = "QUANTITY"
    PRODUCT = "PRODUCT"
    EVENT = "EVENT"
    CONCEPT = "CONCEPT"
    OTHER = "OTHER"


class Mention(_Frozen):
    """A span of a chunk that names an entity."""

    chunk_id: str
    text: str = Field(description="The surface form exactly as it appears in the chunk.")
    type: EntityType
    start: int = Field(description="Offset of the mention in the chunk text.")
    end: int
    canonical_name: str | None = _optional_text("Name of the entity the extractor meant, when `text` is an alias of it.")
    description: str | None = _optional_text("The extractor's description of the entity, from this chunk.")


class ExtractedRelation(_Frozen):
    """A relation between two mentions of the same extraction result, found within one sentence."""

    chunk_id: str
    source: int = Field(description="Index of the source mention in `ExtractionResult.mentions`.")
    target: int = Field(description="Index of the target mention in `ExtractionResult.mentions`.")
    type: str = Field(description="Lower-case label: the linking verb, or `related_to`.")
    start: int = Field(description="Offset of the sentence that states the relation, in the chunk text.")
    end: int
    description: str | None = _optional_text("The relation in the extractor's words.")
    confidence: float | None = Field(default=None, ge=0.0, le=1.0, exclude_if=_is_none, description="The extractor's confidence, 0 to 1.")
    valid_from: str | None = _optional_text("When the relation began to hold, as the text states it (an ISO 8601 date or a year).")
    valid_to: str | None = _optional_text("When the relation stopped holding, as the text states it.")


class ExtractionResult(_Frozen):
    """Everything one extractor found in one chunk."""

    chunk_id: str
    mentions: list[Mention]
    relations: list[ExtractedRelation]
    inferred_entities: list[str] = _optional_list("Entities that relations named but the extractor did not list; they were added with type OTHER.")
    unlocated_entities: list[str] = _optional_list("Entities whose name and aliases do not occur in the chunk text, so they have no mention.")
    dropped_relations: list[str] = _optional_list(
        "Relations, as `source -[type]-> target`, left out because an endpoint has no mention, both endpoints are one entity, or the type is blank."
    )


class ExtractionFailure(_Frozen):
    """A chunk an extractor could not process, with the reason; the next run tries it again."""

    chunk_id: str
    reason: str


class Entity(_Frozen):
    """A resolved real-world thing; `id` is derived from tenant, memory, `name` and `type`."""

    id: str
    tenant: str
    memory: str
    name: str = Field(description="Canonical name, the most frequent surface form of the cluster.")
    type: EntityType
    aliases: list[str] = Field(default_factory=list, description="Other surface forms merged into this entity, sorted.")
    mention_count: int = 0


class MentionLink(_Frozen):
    """Provenance of one entity: a mention span in a chunk resolved to that entity."""

    entity_id: str
    chunk_id: str
    start: int
    end: int
    text: str


class Relation(_Frozen):
    """Relations merged per (source, type, target); `weight` counts the supporting sentences."""

    id: str
    tenant: str
    memory: str
    source_id: str
    target_id: str
    type: str
    weight: float
    provenance: list["RelationEvidence"] = Field(default_factory=list)


class RelationEvidence(_Frozen):
    """One sentence that states a relation: its chunk, its character span in that chunk and what the extractor said of it."""

    chunk_id: str
    start: int
    end: int
    description: str | None = _optional_text("The relation in the extractor's words, from this sentence.")
    confidence: float | None = Field(default=None, ge=0.0, le=1.0, exclude_if=_is_none, description="The extractor's confidence, 0 to 1.")
    valid_from: str | None = _optional_text("When the relation began to hold, as this sentence states it.")
    valid_to: str | None = _optional_text("When the relation stopped holding, as this sentence states it.")


class ResolvedGraph(_Frozen):
    """The output of entity resolution for a whole namespace."""

    entities: list[Entity]
    relations: list[Relation]
    mention_links: list[MentionLink]


class MergeRecord(_Frozen):
    """One merge of entity resolution: which two names joined, by which rule, with what scores.

    `id` is derived from the namespace, the rule and the two names with their types, so the same
    merge keeps its id across runs.
    """

    id: str
    tenant: str
    memory: str
    entity_id: str = Field(description="The entity that both names belong to after resolution.")
    first: str = Field(description="A surface form of the first name.")
    first_type: EntityType
    second: str = Field(description="A surface form of the second name.")
    second_type: EntityType
    rule: str = Field(description="The rule that matched, such as `same_key`, `surname` or `similarity`.")
    score: float = Field(description="Strength of the match in [0, 1], which is 1.0 for the alias rules.")
    features: dict[str, float] = Field(default_factory=dict, description="The pair's string, vector and neighbour scores.")


class MergeExclusion(_Frozen):
    """Two names that resolution must never put into one entity, such as an undone merge.

    The names are compared after folding (case, accents, a leading "the"), whatever their types.
    """

    id: str
    tenant: str
    memory: str
    first: str
    second: str
    note: str = ""


class CommunitySummary(_Frozen):
    """A community's summary: extractive parts from its own entities, relations and text, and optional LLM text."""

    top_entities: list[str]
    key_relations: list[str] = Field(description="Relations written as `source -[type]-> target`.")
    representative_sentence: str | None = None
    text: str | None = _optional_text("Summary written by an LLM, when one is configured.")


class Community(_Frozen):
    """A Leiden community at one level; level 0 is the finest, each higher level merges lower ones."""

    id: str
    tenant: str
    memory: str
    level: int
    parent_id: str | None = None
    title: str
    member_ids: list[str] = Field(description="Ids of the member entities, sorted.")
    summary: CommunitySummary


class ChunkHit(_Frozen):
    """A chunk returned by a search with its score for the query."""

    chunk: Chunk
    score: float = Field(description="Cosine similarity from a store's vector search and the naive mode; a rank score in the graph query modes.")
    document_title: str | None = None


class Neighbourhood(_Frozen):
    """Entities and relations within a number of hops of some seed entities."""

    entities: list[Entity]
    relations: list[Relation]


Relation.model_rebuild()
