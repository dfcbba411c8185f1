"""One settings object, read from environment variables when a program starts.

Nothing here runs at import time: call `Settings.from_env()` where the program begins (a CLI
command, a Dagster resource being initialised) and pass the result down.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from graphmem_core.errors import ConfigurationError
from graphmem_core.models import EntityType

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

STORE_KINDS = ("libsql", "neo4j")
CACHE_KINDS = ("memory", "redis")

# A broker request shorter than 0.1 s fails on a loaded machine, and one longer than 10 minutes would
# outlast Dagster's sensor tick.
KAFKA_MIN_TIMEOUT_SECONDS = 0.1
KAFKA_MAX_TIMEOUT_SECONDS = 600.0

# Values of librdkafka's `compression.type` that the producer accepts.
KAFKA_COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Start positions of a partition that the sensor's cursor does not name yet.
KAFKA_START_OFFSETS = ("earliest", "latest")
# Kafka's own default for the largest record batch a broker accepts (`message.max.bytes`).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588

# instructor modes the LLM extractor supports: a forced tool call, or JSON content that follows a schema.
LLM_MODES = ("tools", "json_schema")

# Entity types the LLM may assign by default: every `EntityType` value, in declaration order.
DEFAULT_LLM_ENTITY_TYPES = tuple(entity_type.value for entity_type in EntityType)

# The lower bound only rejects zero and negative values: the tests time requests out after a fraction
# of a second. A request that waits longer than an hour is a mistyped value (milliseconds for seconds).
LLM_MIN_TIMEOUT_SECONDS = 0.001
LLM_MAX_TIMEOUT_SECONDS = 3600.0

# A price above this per 1,000 tokens is taken as a typo, such as a price per million tokens.
LLM_MAX_PRICE_PER_1K_TOKENS = 1000.0

# A query request with the longest text the engine accepts (2,000 characters, up to 8,000 bytes of
# UTF-8) fits in 64 KiB, and no useful request fits in less than 1 KiB.
SERVICE_MIN_BODY_BYTES = 1024

# The lower bound only rejects zero and negative values, so limits below a second are allowed. The
# upper bound keeps a mistyped value (milliseconds for seconds) from keeping requests open for days.
SERVICE_MIN_TIMEOUT_SECONDS = 0.001
SERVICE_MAX_TIMEOUT_SECONDS = 3600.0

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}


def parse_bool(name: str, value: str) -> bool:
    """Parse an environment flag; `bool("false")` is True, so the words are matched explicitly."""
    lowered = value.strip().lower()
    if lowered in _TRUE_WORDS:
        return True
    if lowered in _FALSE_WORDS:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean: use one of {sorted(_TRUE_WORDS | _FALSE_WORDS)}")


def _parse_int(name: str, value: str, minimum: int) -> int:
    try:
        parsed = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an integer: set it to a whole number >= {minimum}") from None
    if parsed < minimum:
        raise ConfigurationError(f"{name}={parsed} is below the minimum {minimum}: set it to a whole number >= {minimum}")
    return parsed


def parse_entity_types(name: str, value: str) -> tuple[str, ...]:
    """Parse a comma-separated list of `EntityType` values, upper-cased and without duplicates."""
    known = [entity_type.value for entity_type in EntityType]
    types = tuple(dict.fromkeys(part.strip().upper() for part in value.split(",") if part.strip()))
    if not types:
        raise ConfigurationError(f"{name}={value!r} names no entity type: list some of {', '.join(known)}")
    unknown = [entity_type for entity_type in types if entity_type not in known]
    if unknown:
        raise ConfigurationError(f"{name} contains unknown entity types {', '.join(unknown)}: use only {', '.join(known)}")
    return types


def _parse_float(name: str, value: str, minimum: float, maximum: float) -> float:
    try:
        parsed = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number: set it between {minimum} and {maximum}") from None
    if not minimum <= parsed <= maximum:
        raise ConfigurationError(f"{name}={parsed} is out of range: set it between {minimum} and {maximum}")
    return parsed


class Settings(BaseModel):
    """Runtime settings of the embedded pipeline; every field has an environment variable."""

    model_config = ConfigDict(frozen=True)

    home: Path = Field(default=Path(".graphmem"), description="GRAPHMEM_HOME: folder holding the libSQL file and vector indexes.")
    tenant: str = Field(default="default", description="GRAPHMEM_TENANT")
    memory: str = Field(default="default", description="GRAPHMEM_MEMORY")
    inbox: Path | None = Field(default=None, description="GRAPHMEM_INBOX: folder the inbox sensor watches; default HOME/inbox.")
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="GRAPHMEM_EMBEDDING_MODEL: sentence-transformers name or path.")
    embedding_device: str | None = Field(default=None, description="GRAPHMEM_EMBEDDING_DEVICE: cpu, cuda, cuda:1, mps; unset picks CUDA when present.")
    embedding_batch_size: int = Field(default=64, description="GRAPHMEM_EMBEDDING_BATCH_SIZE: texts per encode call.")
    torch_threads: int = Field(
        default=1, description="GRAPHMEM_TORCH_THREADS: torch intra-op threads of the query service's encoder; 0 keeps torch's default of one per core."
    )
    blas_threads: int = Field(
        default=1,
        description="GRAPHMEM_BLAS_THREADS: BLAS threads (OpenBLAS, MKL) of the query service; 0 keeps the library's default of one per core.",
    )
    chunk_overlap_tokens: int = Field(default=32, description="GRAPHMEM_CHUNK_OVERLAP_TOKENS: tokens repeated between neighbouring chunks.")
    max_file_bytes: int = Field(default=10 * 1024 * 1024, description="GRAPHMEM_MAX_FILE_BYTES: larger input files are rejected.")
    extractor: str = Field(default="fast", description="GRAPHMEM_EXTRACTOR: name of the extractor to use.")
    resolution_threshold: float = Field(default=0.9, description="GRAPHMEM_RESOLUTION_THRESHOLD: minimum cosine similarity of same-type entity names to merge.")
    community_seed: int = Field(default=42, description="GRAPHMEM_COMMUNITY_SEED: Leiden random seed, fixed so reruns agree.")

    store: str = Field(default="libsql", description="GRAPHMEM_STORE: graph store, libsql (a local file) or neo4j.")
    neo4j_uri: str = Field(default="bolt://127.0.0.1:7687", description="GRAPHMEM_NEO4J_URI: Bolt or neo4j:// address of the server.")
    neo4j_user: str = Field(default="neo4j", description="GRAPHMEM_NEO4J_USER")
    neo4j_password: SecretStr | None = Field(default=None, description="GRAPHMEM_NEO4J_PASSWORD: required when GRAPHMEM_STORE=neo4j.")
    neo4j_database: str = Field(default="neo4j", description="GRAPHMEM_NEO4J_DATABASE: database name on the server.")
    neo4j_batch_size: int = Field(default=2000, description="GRAPHMEM_NEO4J_BATCH_SIZE: rows per UNWIND write statement.")

    cache: str = Field(default="memory", description="GRAPHMEM_CACHE: query cache, memory (in-process) or redis.")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="GRAPHMEM_REDIS_URL: used when GRAPHMEM_CACHE=redis.")
    cache_ttl_seconds: int = Field(default=3600, description="GRAPHMEM_CACHE_TTL_SECONDS: lifetime of a cached answer.")
    cache_max_entries: int = Field(default=10_000, description="GRAPHMEM_CACHE_MAX_ENTRIES: bound of the in-process cache.")

    backup_url: str | None = Field(
        default=None,
        description="GRAPHMEM_BACKUP_URL: libSQL backup target, a file path or a libsql:// Turso URL; default HOME/backups/graph.db.",
    )
    backup_auth_token: SecretStr | None = Field(default=None, description="GRAPHMEM_BACKUP_AUTH_TOKEN: Turso token for a remote backup URL.")

    api_keys: SecretStr | None = Field(
        default=None,
        description="GRAPHMEM_API_KEYS: query service keys as comma-separated `key:tenant` or `key:tenant:memory1|memory2` entries.",
    )
    api_keys_file: Path | None = Field(default=None, description="GRAPHMEM_API_KEYS_FILE: JSON file of query service keys, read besides GRAPHMEM_API_KEYS.")
    service_request_timeout_seconds: float = Field(
        default=10.0, description="GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS: the query service responds with 504 when an API request takes longer."
    )
    service_max_body_bytes: int = Field(
        default=64 * 1024, description="GRAPHMEM_SERVICE_MAX_BODY_BYTES: the query service rejects a larger request body with 413."
    )

    llm_base_url: str | None = Field(
        default=None, description="GRAPHMEM_LLM_BASE_URL: OpenAI-compatible API root such as http://127.0.0.1:8000/v1; unset uses the OpenAI API."
    )
    llm_model: str | None = Field(
        default=None, description="GRAPHMEM_LLM_MODEL: chat model name; setting it enables LLM community summaries, and GRAPHMEM_EXTRACTOR=llm needs it."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="GRAPHMEM_LLM_API_KEY: bearer token of the endpoint; local servers may need none.")
    llm_mode: str = Field(default="tools", description="GRAPHMEM_LLM_MODE: tools (a forced function call) or json_schema (structured JSON content).")
    llm_max_concurrency: int = Field(default=4, description="GRAPHMEM_LLM_MAX_CONCURRENCY: requests in flight at once.")
    llm_requests_per_minute: int = Field(default=60, description="GRAPHMEM_LLM_REQUESTS_PER_MINUTE: request rate limit; 0 turns it off.")
    llm_tokens_per_minute: int = Field(default=60_000, description="GRAPHMEM_LLM_TOKENS_PER_MINUTE: prompt plus completion token rate limit; 0 turns it off.")
    llm_timeout_seconds: float = Field(default=60.0, description="GRAPHMEM_LLM_TIMEOUT_SECONDS: time limit of one HTTP request.")
    llm_max_retries: int = Field(default=5, description="GRAPHMEM_LLM_MAX_RETRIES: retries of a request after HTTP 408, 429 or 5xx, a timeout or a dropped connection.")
    llm_max_reasks: int = Field(default=2, description="GRAPHMEM_LLM_MAX_REASKS: requests again with the validation errors after invalid output.")
    llm_entity_types: tuple[str, ...] = Field(
        default=DEFAULT_LLM_ENTITY_TYPES, description="GRAPHMEM_LLM_ENTITY_TYPES: comma-separated entity types the LLM may assign, a subset of EntityType."
    )
    llm_prompt_version: str = Field(default="1", description="GRAPHMEM_LLM_PROMPT_VERSION: part of the cache keys, so changing it extracts again.")
    llm_price_per_1k_input: float = Field(default=0.0, description="GRAPHMEM_LLM_PRICE_PER_1K_INPUT: price of 1,000 prompt tokens, for the cost estimate.")
    llm_price_per_1k_output: float = Field(default=0.0, description="GRAPHMEM_LLM_PRICE_PER_1K_OUTPUT: price of 1,000 completion tokens, for the cost estimate.")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", description="GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS: comma-separated host:port list of brokers.")
    kafka_raw_topic: str = Field(default="graphmem.ingest.raw", description="GRAPHMEM_KAFKA_RAW_TOPIC: topic of documents to ingest.")
    kafka_dlq_topic: str = Field(default="graphmem.ingest.dlq", description="GRAPHMEM_KAFKA_DLQ_TOPIC: dead-letter topic for messages that cannot be ingested.")
    kafka_raw_partitions: int = Field(default=6, description="GRAPHMEM_KAFKA_RAW_PARTITIONS: partitions of the raw topic when graphmem creates it.")
    kafka_dlq_partitions: int = Field(default=1, description="GRAPHMEM_KAFKA_DLQ_PARTITIONS: partitions of the dead-letter topic when graphmem creates it.")
    kafka_replication_factor: int = Field(default=1, description="GRAPHMEM_KAFKA_REPLICATION_FACTOR: replicas of each topic graphmem creates; use 3 on a production cluster.")
    kafka_security_protocol: str = Field(default="PLAINTEXT", description="GRAPHMEM_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: str | None = Field(default=None, description="GRAPHMEM_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, for the SASL protocols.")
    kafka_sasl_username: str | None = Field(default=None, description="GRAPHMEM_KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="GRAPHMEM_KAFKA_SASL_PASSWORD")
    kafka_consumer_group: str = Field(default="graphmem-ingest", description="GRAPHMEM_KAFKA_CONSUMER_GROUP: group whose committed offsets expose the sensor's lag to lag exporters and autoscalers.")
    kafka_compression: str = Field(default="zstd", description="GRAPHMEM_KAFKA_COMPRESSION: compression of `graphmem produce`: none, gzip, snappy, lz4 or zstd.")
    kafka_max_message_bytes: int = Field(default=KAFKA_DEFAULT_MAX_MESSAGE_BYTES, description="GRAPHMEM_KAFKA_MAX_MESSAGE_BYTES: largest message `graphmem produce` sends; match the topic's max.message.bytes.")
    kafka_batch_max_messages: int = Field(default=500, description="GRAPHMEM_KAFKA_BATCH_MAX_MESSAGES: messages in one batch partition at most.")
    kafka_batch_max_bytes: int = Field(default=16 * 1024 * 1024, description="GRAPHMEM_KAFKA_BATCH_MAX_BYTES: message bytes in one batch partition at most; a larger single message gets a batch of its own.")
    kafka_max_batches_per_tick: int = Field(default=8, description="GRAPHMEM_KAFKA_MAX_BATCHES_PER_TICK: batch partitions one sensor tick creates at most; the rest wait for the next tick.")
    kafka_start_offset: str = Field(default="earliest", description="GRAPHMEM_KAFKA_START_OFFSET: earliest or latest, where the sensor starts on a partition its cursor does not name.")
    kafka_retained_batches: int = Field(default=1000, description="GRAPHMEM_KAFKA_RETAINED_BATCHES: materialised Kafka batch partitions kept in Dagster; older ones are deleted.")
    kafka_timeout_seconds: float = Field(default=10.0, description="GRAPHMEM_KAFKA_TIMEOUT_SECONDS: time limit of one broker request, such as reading metadata or flushing.")

    @property
    def database_path(self) -> Path:
        """Path of the embedded libSQL database file."""
        return self.home / "graph.db"

    @property
    def inbox_path(self) -> Path:
        """Folder the inbox sensor watches for new files."""
        return self.inbox if self.inbox is not None else self.home / "inbox"

    @property
    def backup_target(self) -> str:
        """libSQL file path or remote URL that `graph_backup` writes to."""
        return self.backup_url if self.backup_url else str(self.home / "backups" / "graph.db")

    @property
    def batches_path(self) -> Path:
        """Folder holding one manifest per ingestion batch."""
        return self.home / "batches"

    @property
    def llm_configured(self) -> bool:
        """Whether an LLM is set up, which makes community summaries use it."""
        return bool(self.llm_model)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `environ` (default `os.environ`), raising `ConfigurationError` on invalid values."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        if "GRAPHMEM_HOME" in env:
            values["home"] = Path(env["GRAPHMEM_HOME"])
        if "GRAPHMEM_INBOX" in env:
            values["inbox"] = Path(env["GRAPHMEM_INBOX"])
        if env.get("GRAPHMEM_API_KEYS_FILE"):
            values["api_keys_file"] = Path(env["GRAPHMEM_API_KEYS_FILE"])

        for field, name in (
            ("tenant", "GRAPHMEM_TENANT"),
            ("memory", "GRAPHMEM_MEMORY"),
            ("embedding_model", "GRAPHMEM_EMBEDDING_MODEL"),
            ("embedding_device", "GRAPHMEM_EMBEDDING_DEVICE"),
            ("extractor", "GRAPHMEM_EXTRACTOR"),
            ("store", "GRAPHMEM_STORE"),
            ("neo4j_uri", "GRAPHMEM_NEO4J_URI"),
            ("neo4j_user", "GRAPHMEM_NEO4J_USER"),
            ("neo4j_password", "GRAPHMEM_NEO4J_PASSWORD"),
            ("neo4j_database", "GRAPHMEM_NEO4J_DATABASE"),
            ("cache", "GRAPHMEM_CACHE"),
            ("redis_url", "GRAPHMEM_REDIS_URL"),
            ("backup_url", "GRAPHMEM_BACKUP_URL"),
            ("backup_auth_token", "GRAPHMEM_BACKUP_AUTH_TOKEN"),
            ("api_keys", "GRAPHMEM_API_KEYS"),
            ("llm_base_url", "GRAPHMEM_LLM_BASE_URL"),
            ("llm_model", "GRAPHMEM_LLM_MODEL"),
            ("llm_api_key", "GRAPHMEM_LLM_API_KEY"),
            ("llm_mode", "GRAPHMEM_LLM_MODE"),
            ("llm_prompt_version", "GRAPHMEM_LLM_PROMPT_VERSION"),
            ("kafka_bootstrap_servers", "GRAPHMEM_KAFKA_BOOTSTRAP_SERVERS"),
            ("kafka_raw_topic", "GRAPHMEM_KAFKA_RAW_TOPIC"),
            ("kafka_dlq_topic", "GRAPHMEM_KAFKA_DLQ_TOPIC"),
            ("kafka_security_protocol", "GRAPHMEM_KAFKA_SECURITY_PROTOCOL"),
            ("kafka_sasl_mechanism", "GRAPHMEM_KAFKA_SASL_MECHANISM"),
            ("kafka_sasl_username", "GRAPHMEM_KAFKA_SASL_USERNAME"),
            ("kafka_sasl_password", "GRAPHMEM_KAFKA_SASL_PASSWORD"),
            ("kafka_consumer_group", "GRAPHMEM_KAFKA_CONSUMER_GROUP"),
            ("kafka_compression", "GRAPHMEM_KAFKA_COMPRESSION"),
            ("kafka_start_offset", "GRAPHMEM_KAFKA_START_OFFSET"),
        ):
            if env.get(name):
                values[field] = env[name]

        for field, name, minimum in (
            ("embedding_batch_size", "GRAPHMEM_EMBEDDING_BATCH_SIZE", 1),
            ("torch_threads", "GRAPHMEM_TORCH_THREADS", 0),
            ("blas_threads", "GRAPHMEM_BLAS_THREADS", 0),
            ("chunk_overlap_tokens", "GRAPHMEM_CHUNK_OVERLAP_TOKENS", 0),
            ("max_file_bytes", "GRAPHMEM_MAX_FILE_BYTES", 1),
            ("community_seed", "GRAPHMEM_COMMUNITY_SEED", 0),
            ("neo4j_batch_size", "GRAPHMEM_NEO4J_BATCH_SIZE", 1),
            ("cache_ttl_seconds", "GRAPHMEM_CACHE_TTL_SECONDS", 1),
            ("cache_max_entries", "GRAPHMEM_CACHE_MAX_ENTRIES", 1),
            ("service_max_body_bytes", "GRAPHMEM_SERVICE_MAX_BODY_BYTES", SERVICE_MIN_BODY_BYTES),
            ("llm_max_concurrency", "GRAPHMEM_LLM_MAX_CONCURRENCY", 1),
            ("llm_requests_per_minute", "GRAPHMEM_LLM_REQUESTS_PER_MINUTE", 0),
            ("llm_tokens_per_minute", "GRAPHMEM_LLM_TOKENS_PER_MINUTE", 0),
            ("llm_max_retries", "GRAPHMEM_LLM_MAX_RETRIES", 0),
            ("llm_max_reasks", "GRAPHMEM_LLM_MAX_REASKS", 0),
            ("kafka_raw_partitions", "GRAPHMEM_KAFKA_RAW_PARTITIONS", 1),
            ("kafka_dlq_partitions", "GRAPHMEM_KAFKA_DLQ_PARTITIONS", 1),
            ("kafka_replication_factor", "GRAPHMEM_KAFKA_REPLICATION_FACTOR", 1),
            ("kafka_max_message_bytes", "GRAPHMEM_KAFKA_MAX_MESSAGE_BYTES", 1024),
            ("kafka_batch_max_messages", "GRAPHMEM_KAFKA_BATCH_MAX_MESSAGES", 1),
            ("kafka_batch_max_bytes", "GRAPHMEM_KAFKA_BATCH_MAX_BYTES", 1024),
            ("kafka_max_batches_per_tick", "GRAPHMEM_KAFKA_MAX_BATCHES_PER_TICK", 1),
            ("kafka_retained_batches", "GRAPHMEM_KAFKA_RETAINED_BATCHES", 1),
        ):
            if env.get(name):
                values[field] = _parse_int(name, env[name], minimum)

        if env.get("GRAPHMEM_RESOLUTION_THRESHOLD"):
            values["resolution_threshold"] = _parse_float("GRAPHMEM_RESOLUTION_THRESHOLD", env["GRAPHMEM_RESOLUTION_THRESHOLD"], 0.0, 1.0)
        if env.get("GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS"):
            values["service_request_timeout_seconds"] = _parse_float(
                "GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS",
                env["GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS"],
                SERVICE_MIN_TIMEOUT_SECONDS,
                SERVICE_MAX_TIMEOUT_SECONDS,
            )
        for field, name, low, high in (
            ("llm_timeout_seconds", "GRAPHMEM_LLM_TIMEOUT_SECONDS", LLM_MIN_TIMEOUT_SECONDS, LLM_MAX_TIMEOUT_SECONDS),
            ("llm_price_per_1k_input", "GRAPHMEM_LLM_PRICE_PER_1K_INPUT", 0.0, LLM_MAX_PRICE_PER_1K_TOKENS),
            ("llm_price_per_1k_output", "GRAPHMEM_LLM_PRICE_PER_1K_OUTPUT", 0.0, LLM_MAX_PRICE_PER_1K_TOKENS),
        ):
            if env.get(name):
                values[field] = _parse_float(name, env[name], low, high)
        if env.get("GRAPHMEM_LLM_ENTITY_TYPES"):
            values["llm_entity_types"] = parse_entity_types("GRAPHMEM_LLM_ENTITY_TYPES", env["GRAPHMEM_LLM_ENTITY_TYPES"])

        if env.get("GRAPHMEM_KAFKA_TIMEOUT_SECONDS"):
            values["kafka_timeout_seconds"] = _parse_float(
                "GRAPHMEM_KAFKA_TIMEOUT_SECONDS", env["GRAPHMEM_KAFKA_TIMEOUT_SECONDS"], KAFKA_MIN_TIMEOUT_SECONDS, KAFKA_MAX_TIMEOUT_SECONDS
            )

        settings = cls(**values)
        validate_namespace(settings.tenant, settings.memory)
        settings.validate_services()
        settings.validate_llm()
        settings.validate_kafka()
        return settings

    def validate_services(self) -> None:
        """Raise `ConfigurationError` when the chosen store or cache is unknown or lacks what it needs."""
        if self.store not in STORE_KINDS:
            raise ConfigurationError(f"GRAPHMEM_STORE={self.store!r} is not a graph store: use one of {', '.join(STORE_KINDS)}")
        if self.cache not in CACHE_KINDS:
            raise ConfigurationError(f"GRAPHMEM_CACHE={self.cache!r} is not a cache: use one of {', '.join(CACHE_KINDS)}")
        if self.store == "neo4j" and self.neo4j_password is None:
            raise ConfigurationError("GRAPHMEM_STORE=neo4j needs a password: set GRAPHMEM_NEO4J_PASSWORD")

    def validate_llm(self) -> None:
        """Raise `ConfigurationError` when the LLM settings are inconsistent or the LLM extractor lacks a model."""
        if self.extractor == "llm" and not self.llm_model:
            raise ConfigurationError("GRAPHMEM_EXTRACTOR=llm needs a model: set GRAPHMEM_LLM_MODEL, and GRAPHMEM_LLM_BASE_URL for a non-OpenAI endpoint")
        if self.llm_mode not in LLM_MODES:
            raise ConfigurationError(f"GRAPHMEM_LLM_MODE={self.llm_mode!r} is not supported: use one of {', '.join(LLM_MODES)}")
        parse_entity_types("GRAPHMEM_LLM_ENTITY_TYPES", ",".join(self.llm_entity_types))
        if not self.llm_prompt_version.strip():
            raise ConfigurationError("GRAPHMEM_LLM_PROMPT_VERSION is blank: set it to a short label such as 1 or 2024-06")

    def validate_kafka(self) -> None:
        """Raise `ConfigurationError` when a Kafka setting is not one librdkafka or the sensor accepts."""
        for name, value, allowed in (
            ("GRAPHMEM_KAFKA_COMPRESSION", self.kafka_compression, KAFKA_COMPRESSION_TYPES),
            ("GRAPHMEM_KAFKA_SECURITY_PROTOCOL", self.kafka_security_protocol, KAFKA_SECURITY_PROTOCOLS),
            ("GRAPHMEM_KAFKA_START_OFFSET", self.kafka_start_offset, KAFKA_START_OFFSETS),
        ):
            if value not in allowed:
                raise ConfigurationError(f"{name}={value!r} is not supported: use one of {', '.join(allowed)}")
        for name, topic in (("GRAPHMEM_KAFKA_RAW_TOPIC", self.kafka_raw_topic), ("GRAPHMEM_KAFKA_DLQ_TOPIC", self.kafka_dlq_topic)):
            validate_topic_name(name, topic)
        if self.kafka_raw_topic == self.kafka_dlq_topic:
            raise ConfigurationError(
                f"GRAPHMEM_KAFKA_RAW_TOPIC and GRAPHMEM_KAFKA_DLQ_TOPIC are both {self.kafka_raw_topic!r}: "
                "give the dead-letter topic its own name, or rejected messages would be read again"
            )
        if self.kafka_security_protocol.startswith("SASL") and not (self.kafka_sasl_mechanism and self.kafka_sasl_username):
            raise ConfigurationError(
                f"GRAPHMEM_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs credentials: "
                "set GRAPHMEM_KAFKA_SASL_MECHANISM, GRAPHMEM_KAFKA_SASL_USERNAME and GRAPHMEM_KAFKA_SASL_PASSWORD"
            )


# Kafka's rules for topic names: at most 249 characters of ASCII letters, digits, ".", "_" and "-".
_TOPIC_NAME_MAX_CHARS = 249
_TOPIC_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_topic_name(setting: str, topic: str) -> None:
    """Raise `ConfigurationError` unless `topic` is a name Kafka accepts."""
    if not topic or len(topic) > _TOPIC_NAME_MAX_CHARS or topic in (".", "..") or not set(topic) <= _TOPIC_NAME_CHARACTERS:
        raise ConfigurationError(
            f"{setting}={topic!r} is not a valid Kafka topic name: use 1 to {_TOPIC_NAME_MAX_CHARS} ASCII letters, digits, '.', '_' or '-'"
        )


_NAMESPACE_MAX_CHARS = 128


def validate_namespace(tenant: str, memory: str) -> None:
    """Raise `ConfigurationError` unless tenant and memory are short printable names."""
    for label, value in (("tenant", tenant), ("memory", memory)):
        if not value or len(value) > _NAMESPACE_MAX_CHARS or not value.isprintable() or value != value.strip():
            raise ConfigurationError(
                f"invalid {label} {value!r}: use 1 to {_NAMESPACE_MAX_CHARS} printable characters without leading or trailing spaces"
            )
