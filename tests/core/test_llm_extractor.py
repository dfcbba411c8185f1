"""The LLM extractor against a local OpenAI-compatible server that replays recorded responses for real podcast chunks.

The server (`tests/fake_openai.py`) listens on 127.0.0.1 and injects HTTP 429, 500, slow responses,
malformed JSON and schema violations on request. Backoff times are cut to milliseconds so the
retry tests stay fast.
"""

import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphmem_core import ids, pipeline
from graphmem_core.errors import ConfigurationError, ExtractionError
from graphmem_core.extraction import get_extractor
from graphmem_core.extraction.llm import LLMExtractor
from graphmem_core.llm.cache import StoreResponseCache
from graphmem_core.llm.client import LLMClient, RateLimiter, backoff_seconds
from graphmem_core.llm.summaries import CommunitySummariser
from graphmem_core.models import Chunk, Document, EntityType, ExtractionResult
from graphmem_core.settings import Settings
from graphmem_core.stores.libsql_store import LibsqlGraphStore
from tests.conftest import PODCASTS_ZIP, require_corpus
from tests.fake_openai import RECORDINGS_FOLDER, FakeOpenAI

TENANT = "acme"
MEMORY = "podcasts"
BATCH = "batch-llm"
MODEL = "fake-extractor-model"

# Retries wait milliseconds here; production waits start at a second.
TEST_BACKOFF_SECONDS = 0.01


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def clean_server(server: FakeOpenAI) -> Iterator[None]:
    server.wait_idle()
    server.reset()
    yield
    server.wait_idle()


@pytest.fixture(scope="module")
def recorded_chunks() -> list[Chunk]:
    """Return the real transcript chunks that have recorded responses, one chunk per transcript file."""
    archive = require_corpus(PODCASTS_ZIP)
    chunks = []
    with zipfile.ZipFile(archive) as zipped:
        for path in sorted(RECORDINGS_FOLDER.glob("*.json")):
            recording = json.loads(path.read_text(encoding="utf-8"))
            member = recording["source"].split(":", 1)[1]
            text = zipped.read(member).decode("utf-8")
            assert ids.text_hash(text) == recording["text_hash"], f"{path.name} does not match {member}"
            chunks.append(make_chunk(text))
    return chunks


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LibsqlGraphStore]:
    opened = LibsqlGraphStore(tmp_path / "graph.db")
    yield opened
    opened.close()


def make_chunk(text: str, memory: str = MEMORY) -> Chunk:
    document_id = ids.document_id(TENANT, memory, text)
    return Chunk(
        id=ids.chunk_id(document_id, 0, len(text), text),
        document_id=document_id,
        tenant=TENANT,
        memory=memory,
        index=0,
        text=text,
        start=0,
        end=len(text),
        token_count=len(text.split()),
        text_hash=ids.text_hash(text),
    )


def make_settings(server: FakeOpenAI, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm_base_url": server.base_url,
        "llm_model": MODEL,
        "llm_requests_per_minute": 0,
        "llm_tokens_per_minute": 0,
        "llm_timeout_seconds": 5.0,
        "llm_max_retries": 3,
        "llm_max_reasks": 2,
    }
    values.update(overrides)
    return Settings(**values)


def make_extractor(server: FakeOpenAI, **overrides: object) -> LLMExtractor:
    settings = make_settings(server, **overrides)
    client = LLMClient(settings, backoff_base_seconds=TEST_BACKOFF_SECONDS, backoff_max_seconds=TEST_BACKOFF_SECONDS * 4)
    return LLMExtractor(settings, client)


def store_batch(store: LibsqlGraphStore, chunks: list[Chunk], memory: str = MEMORY) -> list[Chunk]:
    """Store one document per chunk text in `memory` under BATCH and return the chunks as stored there."""
    placed = [make_chunk(chunk.text, memory) for chunk in chunks]
    documents = [
        Document(id=chunk.document_id, tenant=TENANT, memory=memory, text=chunk.text, source=f"podcast-{index}.txt")
        for index, chunk in enumerate(placed)
    ]
    store.upsert_documents(TENANT, memory, BATCH, documents)
    store.upsert_chunks(TENANT, memory, placed)
    return placed


def chunk_named(chunks: list[Chunk], name: str) -> Chunk:
    return next(chunk for chunk in chunks if name in chunk.text)


def assert_contract(chunk: Chunk, result: ExtractionResult) -> None:
    """Check the `Extractor` contract: exact, sorted, disjoint spans and relations inside their sentence span."""
    assert result.chunk_id == chunk.id
    previous_end = 0
    for mention in result.mentions:
        assert chunk.text[mention.start : mention.end] == mention.text
        assert mention.start >= previous_end
        previous_end = mention.end
    for relation in result.relations:
        source, target = result.mentions[relation.source], result.mentions[relation.target]
        assert relation.start <= min(source.start, target.start)
        assert max(source.end, target.end) <= relation.end
        assert relation.type == relation.type.lower()
        assert " " not in relation.type


def relation_triples(result: ExtractionResult) -> set[tuple[str, str, str]]:
    return {(result.mentions[r.source].text, r.type, result.mentions[r.target].text) for r in result.relations}


# Mapping model output onto chunks


def test_output_mapped_to_spans(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    chunk = chunk_named(recorded_chunks, "Landing.AI")
    outcome = make_extractor(server).extract_outcome([chunk])

    assert outcome.failures == []
    [result] = outcome.results
    assert_contract(chunk, result)
    by_text = {m.text: m for m in result.mentions}
    assert by_text["Landing.AI"].type == EntityType.ORGANIZATION
    assert by_text["Landing.AI"].description == "Company that Andrew Ng founded and leads as CEO."
    assert by_text["Christina"].canonical_name == "Christina Warren"
    assert by_text["Raffles"].type == EntityType.OTHER
    assert result.inferred_entities == ["Raffles"]
    assert result.unlocated_entities == []

    founded = next(r for r in result.relations if r.type == "founded")
    assert result.mentions[founded.target].text == "Landing.AI"
    assert result.mentions[founded.source].text.lower().startswith("andrew")
    assert founded.confidence == 0.95
    assert founded.description == "Andrew Ng founded Landing.AI and is its CEO."
    assert "Landing.AI" in chunk.text[founded.start : founded.end]

    [request] = server.requests
    assert request.mode == "tools"
    assert request.tool_name == "KnowledgeGraph"
    assert request.text_hash == chunk.text_hash


def test_every_recording_served(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    outcome = make_extractor(server).extract_outcome(recorded_chunks)

    assert outcome.failures == []
    assert [r.chunk_id for r in outcome.results] == [c.id for c in recorded_chunks]
    assert {r.text_hash for r in server.requests} == set(server.recordings)
    for chunk, result in zip(recorded_chunks, outcome.results, strict=True):
        assert_contract(chunk, result)
        assert len(result.relations) >= 4, chunk.text[:60]
    assert outcome.usage.requests == len(recorded_chunks)


def test_alias_names_resolve_to_entity(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    chunk = chunk_named(recorded_chunks, "Dr. Lisa Su")
    [result] = make_extractor(server).extract_outcome([chunk]).results

    triples = relation_triples(result)
    born = [(s, t) for s, kind, t in triples if kind == "born_in"]
    assert born and all(target == "Taiwan" for _, target in born)
    longest = next(m for m in result.mentions if m.text == "Dr. Lisa Su")
    assert longest.canonical_name == "Lisa Su"
    assert result.dropped_relations == []
    member = next(r for r in result.relations if r.type == "member_of" and r.valid_from is not None)
    assert member.valid_from == "2018"


def test_unicode_name_matched_ignoring_case(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    chunk = chunk_named(recorded_chunks, "Shopify")
    [result] = make_extractor(server).extract_outcome([chunk]).results

    speaker_labels = [m for m in result.mentions if m.text == "TOBI L\u00dcTKE"]
    assert speaker_labels
    # A case variant of the name is the name itself; only a different alias gets the canonical name.
    assert all(m.type == EntityType.PERSON and m.canonical_name is None for m in speaker_labels)
    short = [m for m in result.mentions if m.text == "Tobi"]
    assert short
    assert all(m.canonical_name == "Tobi L\u00fctke" for m in short)


def test_json_schema_mode_same_result(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    chunk = chunk_named(recorded_chunks, "Cryptonomicon")
    tools = make_extractor(server).extract_outcome([chunk]).results
    schema = make_extractor(server, llm_mode="json_schema").extract_outcome([chunk]).results

    assert schema == tools
    assert [r.mode for r in server.requests] == ["tools", "json"]
    assert "response_format" in server.requests[1].body


def test_blank_chunk_sends_nothing(server: FakeOpenAI):
    [result] = make_extractor(server).extract_outcome([make_chunk("  \n ")]).results

    assert result.mentions == []
    assert result.relations == []
    assert server.requests == []


# Invalid output and re-asks


@pytest.mark.parametrize("fault", ["schema", "malformed"])
def test_invalid_output_reasked(server: FakeOpenAI, recorded_chunks: list[Chunk], fault: str):
    chunk = chunk_named(recorded_chunks, "Shopify")
    server.add_fault(fault, times=1)

    outcome = make_extractor(server).extract_outcome([chunk])

    assert outcome.failures == []
    assert outcome.usage.requests == 2
    first, second = server.requests
    assert first.fault == fault
    assert second.fault is None
    # The re-ask carries the invalid output and the validation errors after the original messages.
    assert second.message_count > first.message_count
    assert "Validation Error found" in json.dumps(second.body["messages"][-1])


def test_reasks_bounded_then_failure(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    chunk = chunk_named(recorded_chunks, "Shopify")
    server.add_fault("schema", times=None)

    outcome = make_extractor(server, llm_max_reasks=2).extract_outcome([chunk])

    assert outcome.results == []
    [failure] = outcome.failures
    assert failure.chunk_id == chunk.id
    assert failure.reason.startswith("invalid output after 3 attempts")
    assert "ALIEN" in failure.reason
    assert len(server.requests) == 3


def test_extract_raises_on_failure(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    server.add_fault("schema", times=None)

    with pytest.raises(ExtractionError, match="1 of 1 chunks failed"):
        make_extractor(server, llm_max_reasks=0).extract([recorded_chunks[0]])


# HTTP errors, timeouts and limits


def test_rate_limit_waits_retry_after(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    server.add_fault("rate_limit", times=1, retry_after=1)

    started = time.monotonic()
    outcome = make_extractor(server).extract_outcome([recorded_chunks[0]])
    elapsed = time.monotonic() - started

    assert outcome.failures == []
    limited, accepted = server.requests
    assert limited.status == 429
    assert accepted.status == 200
    # The backoff alone is milliseconds, so the second request waited for the Retry-After header.
    assert accepted.started - limited.started >= 0.95
    assert elapsed < 5


def test_server_error_retried(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    server.add_fault("server_error", times=2)

    outcome = make_extractor(server).extract_outcome([recorded_chunks[0]])

    assert outcome.failures == []
    assert [r.status for r in server.requests] == [500, 500, 200]
    assert outcome.usage.requests == 3


def test_server_errors_bounded(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    server.add_fault("server_error", times=None)

    outcome = make_extractor(server, llm_max_retries=2).extract_outcome([recorded_chunks[0]])

    [failure] = outcome.failures
    assert failure.reason.startswith("HTTP 500: The server had an error")
    assert failure.reason.endswith("gave up after 3 attempts")
    assert len(server.requests) == 3


def test_timeout_retried_then_failure(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    chunk = recorded_chunks[0]
    server.add_fault("slow", times=1, delay=0.6)
    recovered = make_extractor(server, llm_timeout_seconds=0.25).extract_outcome([chunk])

    assert recovered.failures == []
    assert [r.fault for r in server.requests] == ["slow", None]

    server.wait_idle()
    server.reset()
    server.add_fault("slow", times=None, delay=0.6)
    started = time.monotonic()
    failed = make_extractor(server, llm_timeout_seconds=0.25, llm_max_retries=2).extract_outcome([chunk])

    [failure] = failed.failures
    assert failure.reason == "request timed out; gave up after 3 attempts"
    assert len(server.requests) == 3
    assert time.monotonic() - started >= 0.75


def test_unknown_path_is_configuration_error(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    extractor = make_extractor(server, llm_base_url=server.base_url + "/missing")

    with pytest.raises(ConfigurationError, match="GRAPHMEM_LLM_MODEL"):
        extractor.extract_outcome([recorded_chunks[0]])


def test_concurrency_limit_respected(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    server.add_fault("slow", times=None, delay=0.15)

    outcome = make_extractor(server, llm_max_concurrency=3).extract_outcome(recorded_chunks)

    assert outcome.failures == []
    assert len(server.requests) == len(recorded_chunks)
    assert server.max_in_flight == 3


def test_rate_limiter_spaces_requests(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    # 120 requests a minute is 2 a second with a burst of 2, so requests 3 to 5 come 0.5 s apart.
    make_extractor(server, llm_requests_per_minute=120, llm_max_concurrency=5).extract_outcome(recorded_chunks[:5])

    starts = sorted(r.started for r in server.requests)
    assert starts[1] - starts[0] < 0.25
    for earlier, later in zip(starts[1:], starts[2:], strict=False):
        assert later - earlier >= 0.4


class FakeClock:
    """A clock that only moves when the rate limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_rate_limiter_request_spacing():
    clock = FakeClock()
    limiter = RateLimiter(60, 0, clock=clock.time, sleep=clock.sleep)

    for _ in range(3):
        limiter.acquire(tokens=10_000)

    assert clock.sleeps == [1.0, 1.0]


def test_rate_limiter_token_correction():
    clock = FakeClock()
    # 600 tokens a minute refill 10 a second, with a burst of 10 tokens.
    limiter = RateLimiter(0, 600, clock=clock.time, sleep=clock.sleep)

    assert limiter.acquire(tokens=10) == 0.0
    limiter.correct(-10)
    assert limiter.acquire(tokens=10) == 0.0
    limiter.correct(5)
    assert limiter.acquire(tokens=10) == pytest.approx(1.5)
    # A request above the burst waits for a full bucket, then leaves the level below zero.
    assert limiter.acquire(tokens=30) == pytest.approx(1.0)
    assert limiter.acquire(tokens=1) == pytest.approx(2.1)


def test_backoff_grows_with_jitter():
    delays = [backoff_seconds(attempt, "chunk chk_1", base=1.0, cap=8.0) for attempt in range(1, 7)]

    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays == [backoff_seconds(attempt, "chunk chk_1", base=1.0, cap=8.0) for attempt in range(1, 7)]
    assert backoff_seconds(3, "chunk chk_2", base=1.0, cap=8.0) != delays[2]


def test_token_estimate_reserved_and_corrected(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    # 60,000 tokens a minute refill 1,000 a second; one request's estimate is larger than that burst.
    extractor = make_extractor(server, llm_tokens_per_minute=60_000)
    bucket = extractor.client.rate_limiter._tokens
    assert bucket is not None

    started = time.monotonic()
    extractor.extract_outcome([recorded_chunks[0]])
    elapsed = time.monotonic() - started

    [request] = server.requests
    billed = request.usage["prompt_tokens"] + request.usage["completion_tokens"]
    assert billed > bucket.capacity
    # After the call the bucket is short by the billed tokens, not by the larger estimate.
    assert bucket.capacity - billed <= bucket.level <= bucket.capacity - billed + bucket.rate * elapsed


# Response cache, stored failures and reports through the pipeline


def test_cache_second_run_no_requests(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    extractor = make_extractor(server)
    store_batch(store, recorded_chunks)
    first = pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)
    requests_after_first = len(server.requests)

    # Another memory of the same tenant contains the same texts under new chunk ids: nothing to skip, all cached.
    store_batch(store, recorded_chunks, memory="copy")
    second = pipeline.extract_batch(store, extractor, TENANT, "copy", BATCH)

    assert first.extracted == len(recorded_chunks)
    assert first.llm.requests == len(recorded_chunks)
    assert second.extracted == len(recorded_chunks)
    assert second.llm.requests == 0
    assert second.llm.cached_responses == len(recorded_chunks)
    assert len(server.requests) == requests_after_first
    stored = {r.chunk_id: r for r in store.iter_extractions(TENANT, "copy", extractor.cache_key)}
    for result in store.iter_extractions(TENANT, MEMORY, extractor.cache_key):
        copy_id = make_chunk(next(c.text for c in recorded_chunks if c.id == result.chunk_id), "copy").id
        assert relation_triples(stored[copy_id]) == relation_triples(result)


def test_rerun_same_batch_skips(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    extractor = make_extractor(server)
    store_batch(store, recorded_chunks[:3])
    pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)

    again = pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)

    assert again.skipped == 3
    assert again.extracted == 0
    assert again.llm.requests == 0
    assert len(server.requests) == 3


def test_prompt_version_change_reextracts(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    store_batch(store, recorded_chunks[:4])
    first = make_extractor(server, llm_prompt_version="1")
    second = make_extractor(server, llm_prompt_version="2")
    pipeline.extract_batch(store, first, TENANT, MEMORY, BATCH)

    report = pipeline.extract_batch(store, second, TENANT, MEMORY, BATCH)

    assert first.cache_key == f"llm@1:{MODEL}:1"
    assert second.cache_key == f"llm@1:{MODEL}:2"
    assert report.skipped == 0
    assert report.llm.requests == 4
    assert len(server.requests) == 8
    assert store.list_extractors(TENANT, MEMORY) == sorted([first.cache_key, second.cache_key])


def test_failed_chunks_retried_next_run(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    chunks = store_batch(store, recorded_chunks)
    failing = chunks[:2]
    for chunk in failing:
        server.add_fault("server_error", times=None, text_hash=chunk.text_hash)
    extractor = make_extractor(server, llm_max_retries=1)

    first = pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)

    assert first.extracted == len(chunks) - 2
    assert first.failed == 2
    assert sorted(f.chunk_id for f in first.failures) == sorted(c.id for c in failing)
    stored_failures = store.get_extraction_failures(TENANT, MEMORY, extractor.cache_key)
    assert [f.chunk_id for f in stored_failures] == sorted(c.id for c in failing)
    assert all(f.reason.startswith("HTTP 500") for f in stored_failures)
    assert len(list(store.iter_extractions(TENANT, MEMORY, extractor.cache_key))) == len(chunks) - 2

    server.reset()
    second = pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)

    assert second.extracted == 2
    assert second.skipped == len(chunks) - 2
    assert second.failed == 0
    assert sorted(r.text_hash for r in server.requests) == sorted(c.text_hash for c in failing)
    assert store.get_extraction_failures(TENANT, MEMORY, extractor.cache_key) == []
    assert len(list(store.iter_extractions(TENANT, MEMORY, extractor.cache_key))) == len(chunks)


def test_usage_and_cost_reported(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    store_batch(store, recorded_chunks[:3])
    extractor = make_extractor(server, llm_price_per_1k_input=0.15, llm_price_per_1k_output=0.6)
    server.add_fault("schema", times=1)

    report = pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)

    prompt = sum(r.usage["prompt_tokens"] for r in server.requests)
    completion = sum(r.usage["completion_tokens"] for r in server.requests)
    assert report.llm.requests == 4
    assert report.llm.prompt_tokens == prompt
    assert report.llm.completion_tokens == completion
    assert report.llm.estimated_cost == pytest.approx(prompt / 1000 * 0.15 + completion / 1000 * 0.6)
    assert report.llm.estimated_cost > 0


def test_llm_community_summaries(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    settings = make_settings(server)
    client = LLMClient(settings, backoff_base_seconds=TEST_BACKOFF_SECONDS)
    extractor = LLMExtractor(settings, client)
    store_batch(store, recorded_chunks)
    pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)
    pipeline.resolve_graph(store, extractor, TENANT, MEMORY, embed=None, threshold=0.9)
    server.reset()

    report = pipeline.build_communities(store, TENANT, MEMORY, seed=42, summariser=CommunitySummariser(client))

    communities = store.get_communities(TENANT, MEMORY)
    summarised = [c for c in communities if len(c.member_ids) >= 2]
    assert summarised
    assert report.llm_summaries == len(summarised)
    assert report.llm_summary_failures == 0
    assert report.llm.requests == len(summarised)
    assert all(c.summary.text and c.summary.text.startswith("A group about Community:") for c in summarised)
    assert all(c.summary.text is None for c in communities if len(c.member_ids) < 2)
    assert all(r.tool_name == "CommunityText" for r in server.requests)

    server.reset()
    again = pipeline.build_communities(store, TENANT, MEMORY, seed=42, summariser=CommunitySummariser(client))

    assert again.changed is False
    assert again.llm.requests == 0
    assert again.llm.cached_responses == len(summarised)
    assert server.requests == []


def test_summary_failure_keeps_extractive(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    settings = make_settings(server, llm_max_reasks=0)
    extractor = LLMExtractor(settings, LLMClient(settings))
    store_batch(store, recorded_chunks[:2])
    pipeline.extract_batch(store, extractor, TENANT, MEMORY, BATCH)
    pipeline.resolve_graph(store, extractor, TENANT, MEMORY, embed=None, threshold=0.9)
    server.add_fault("schema", times=None)

    report = pipeline.build_communities(store, TENANT, MEMORY, seed=42, summariser=CommunitySummariser(extractor.client))

    assert report.llm_summaries == 0
    assert report.llm_summary_failures > 0
    assert all(c.summary.text is None and c.summary.top_entities for c in store.get_communities(TENANT, MEMORY))


# Settings and selection


def test_settings_from_environment():
    settings = Settings.from_env(
        {
            "GRAPHMEM_EXTRACTOR": "llm",
            "GRAPHMEM_LLM_BASE_URL": "http://127.0.0.1:8000/v1",
            "GRAPHMEM_LLM_MODEL": "local-model",
            "GRAPHMEM_LLM_API_KEY": "secret-key",
            "GRAPHMEM_LLM_MODE": "json_schema",
            "GRAPHMEM_LLM_MAX_CONCURRENCY": "8",
            "GRAPHMEM_LLM_REQUESTS_PER_MINUTE": "0",
            "GRAPHMEM_LLM_TOKENS_PER_MINUTE": "90000",
            "GRAPHMEM_LLM_TIMEOUT_SECONDS": "12.5",
            "GRAPHMEM_LLM_MAX_RETRIES": "4",
            "GRAPHMEM_LLM_MAX_REASKS": "1",
            "GRAPHMEM_LLM_ENTITY_TYPES": "person, Organization,PERSON",
            "GRAPHMEM_LLM_PROMPT_VERSION": "2024-06",
            "GRAPHMEM_LLM_PRICE_PER_1K_INPUT": "0.15",
            "GRAPHMEM_LLM_PRICE_PER_1K_OUTPUT": "0.6",
        }
    )

    assert settings.llm_configured
    assert settings.llm_api_key is not None and settings.llm_api_key.get_secret_value() == "secret-key"
    assert "secret-key" not in repr(settings)
    assert settings.llm_entity_types == ("PERSON", "ORGANIZATION")
    assert (settings.llm_max_concurrency, settings.llm_requests_per_minute, settings.llm_tokens_per_minute) == (8, 0, 90000)
    assert (settings.llm_timeout_seconds, settings.llm_max_retries, settings.llm_max_reasks) == (12.5, 4, 1)
    assert (settings.llm_price_per_1k_input, settings.llm_price_per_1k_output) == (0.15, 0.6)
    assert Settings.from_env({}).llm_configured is False


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"GRAPHMEM_EXTRACTOR": "llm"}, "set GRAPHMEM_LLM_MODEL"),
        ({"GRAPHMEM_LLM_ENTITY_TYPES": "PERSON,ALIEN"}, "unknown entity types ALIEN"),
        ({"GRAPHMEM_LLM_ENTITY_TYPES": " , "}, "names no entity type"),
        ({"GRAPHMEM_LLM_MODE": "md_json"}, "GRAPHMEM_LLM_MODE='md_json'"),
        ({"GRAPHMEM_LLM_MAX_CONCURRENCY": "0"}, "below the minimum 1"),
        ({"GRAPHMEM_LLM_TIMEOUT_SECONDS": "0"}, "out of range"),
        ({"GRAPHMEM_LLM_PRICE_PER_1K_INPUT": "-1"}, "out of range"),
    ],
)
def test_invalid_settings_rejected(environment: dict[str, str], message: str):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(environment)


def test_get_extractor_selects_llm(server: FakeOpenAI):
    extractor = get_extractor("llm", make_settings(server, llm_entity_types=("PERSON", "ORGANIZATION")))

    assert isinstance(extractor, LLMExtractor)
    assert extractor.cache_key.startswith(f"llm@1:{MODEL}:1:types=")
    assert get_extractor("fast").cache_key == "fast@1"


def test_restricted_types_in_schema(server: FakeOpenAI, recorded_chunks: list[Chunk]):
    extractor = make_extractor(server, llm_entity_types=("PERSON", "ORGANIZATION"))
    chunk = chunk_named(recorded_chunks, "Landing.AI")

    outcome = extractor.extract_outcome([chunk])

    # The recording types London as a LOCATION, which these settings do not allow.
    assert outcome.results == []
    assert "LOCATION" in outcome.failures[0].reason
    schema = json.dumps(server.requests[0].body["tools"][0]["function"]["parameters"])
    assert '"PERSON", "ORGANIZATION"]' in schema


def test_store_cache_shared_by_tenant(server: FakeOpenAI, recorded_chunks: list[Chunk], store: LibsqlGraphStore):
    extractor = make_extractor(server)
    extractor.extract_outcome(recorded_chunks[:2], StoreResponseCache(store, TENANT))

    other_tenant = extractor.extract_outcome(recorded_chunks[:2], StoreResponseCache(store, "rival"))
    same_tenant = extractor.extract_outcome(recorded_chunks[:2], StoreResponseCache(store, TENANT))

    assert other_tenant.usage.requests == 2
    assert same_tenant.usage.requests == 0
    assert same_tenant.usage.cached == 2
    assert same_tenant.results == other_tenant.results
