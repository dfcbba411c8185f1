"""Request and response models of the HTTP API; the OpenAPI document is built from their JSON schemas."""

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from graphmem_core.models import Community, Document, Entity, Relation
from graphmem_core.query import MAX_HOPS, MAX_QUERY_CHARS, MAX_TOP_K

try:
    from graphmem_core.query import QueryMode
except ImportError:  # an engine from before query modes: the API still names the four modes

    class QueryMode(str, Enum):  # type: ignore[no-redef]
        """Retrieval strategies of the query engine."""

        NAIVE = "naive"
        LOCAL = "local"
        GLOBAL = "global"
        HYBRID = "hybrid"


QUERY_MODES: tuple[str, ...] = tuple(mode.value for mode in QueryMode)
DEFAULT_MODE = "hybrid"
DEFAULT_MEMORY = "default"

# The limits of `graphmem_core.settings.validate_namespace`, so a memory name is checked before it reaches a store.
MAX_NAME_CHARS = 128

# Entity names are short, and `find_entities` scans with a substring match, so long names only cost time.
MAX_ENTITY_NAME_CHARS = 200
MAX_ENTITY_MATCHES = 100
DEFAULT_ENTITY_MATCHES = 20

# Stored ids are SHA-256 hex digests with a short prefix; anything much longer cannot be an id.
MAX_ID_CHARS = 256

ModeName = Literal[QUERY_MODES]  # type: ignore[valid-type]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueryRequest(_Request):
    """A question to the memory of the caller's tenant."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question or text to search for.")
    memory: str = Field(default=DEFAULT_MEMORY, min_length=1, max_length=MAX_NAME_CHARS, description="Memory of the key's tenant to search.")
    mode: ModeName = Field(default=DEFAULT_MODE, description="Retrieval strategy of the query engine.")
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K, description="Number of chunks to return.")
    hops: int = Field(default=1, ge=0, le=MAX_HOPS, description="Relation hops around the entities of the top chunks.")


class MemoryParameters(_Request):
    """Query parameters of the routes that read one object of a memory."""

    memory: str = Field(default=DEFAULT_MEMORY, min_length=1, max_length=MAX_NAME_CHARS)


class EntitySearchParameters(_Request):
    """Query parameters of `GET /v1/entities`."""

    name: str = Field(min_length=1, max_length=MAX_ENTITY_NAME_CHARS, description="Name or alias to match, ignoring case.")
    memory: str = Field(default=DEFAULT_MEMORY, min_length=1, max_length=MAX_NAME_CHARS)
    limit: int = Field(default=DEFAULT_ENTITY_MATCHES, ge=1, le=MAX_ENTITY_MATCHES)


class RankedChunk(BaseModel):
    """A chunk that matched the query, with its rank, similarity and document."""

    rank: int = Field(description="Position in the ranking, from 1.")
    score: float = Field(description="Cosine similarity of the chunk to the query.")
    chunk_id: str
    document_id: str
    document_title: str | None
    index: int = Field(description="Position of the chunk within its document, from 0.")
    start: int = Field(description="Offset of the chunk's first character in the document text.")
    end: int = Field(description="Offset one past the chunk's last character in the document text.")
    text: str


class QueryResponse(BaseModel):
    """The ranked chunks of a query and the part of the graph around them."""

    query: str
    memory: str
    mode: str = Field(description="Mode the engine ran.")
    chunks: list[RankedChunk]
    entities: list[Entity] = Field(description="Entities of the top chunks, most relevant first, then their neighbours.")
    relations: list[Relation] = Field(description="Relations among those entities, each with the sentences that state it.")
    communities: list[Community]
    timings_ms: dict[str, float] = Field(description="Milliseconds per step: `queue` (waiting for a worker thread), then the engine's steps and `total`.")
    cached: bool = Field(description="Whether the engine read the result from its cache.")


class EntityDetail(BaseModel):
    """One entity with its direct neighbours and the relations between them."""

    entity: Entity
    neighbours: list[Entity]
    relations: list[Relation]


class EntityList(BaseModel):
    """Entities whose name or alias matches, exact matches first."""

    entities: list[Entity]


class CheckStatus(BaseModel):
    """Readiness of the service and of each part it depends on."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description="`ok` or the reason a part failed, per part: store, cache, embedder.")


class HealthStatus(BaseModel):
    """Liveness of the process."""

    status: Literal["ok"]


class ErrorDetail(BaseModel):
    """Description of a failure: a stable code and a message for people."""

    code: str
    message: str
    field: str | None = Field(default=None, description="The request field or parameter at fault, when there is one.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    QueryResponse,
    EntityDetail,
    EntityList,
    Community,
    Document,
    CheckStatus,
    HealthStatus,
    ErrorResponse,
)
