"""Community summaries written by a chat model from each community's extractive summary.

The model receives a community's title, its top entities with their types, its key relations and its
representative sentence, and writes a few sentences about what connects them. Requests go through the
same `LLMClient` as extraction (concurrency, rate limits, retries) and the same response cache, so
recomputing unchanged communities sends no request. A community whose request fails keeps its
extractive summary without text.
"""

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from graphmem_core.ids import text_hash
from graphmem_core.llm.cache import ResponseCache, response_key
from graphmem_core.llm.client import LLMClient, LLMRequestError
from graphmem_core.llm.usage import TokenUsage
from graphmem_core.models import Community, CommunitySummary, EntityType

logger = logging.getLogger(__name__)

# A community of one entity has no relations to describe, so its extractive summary is kept alone.
MIN_MEMBERS_FOR_SUMMARY = 2

# Summaries are a short paragraph. Longer output fails validation, and the request is sent again with the error.
MAX_SUMMARY_CHARS = 1500

SUMMARY_PROMPT = """You summarise one community of a knowledge graph that was extracted from documents.
The user sends the community's main entities, the relations between them and one sentence from the
documents. Write two to four sentences on what the community is about and how its entities are
connected. Use only the facts given; do not add knowledge of your own."""


class CommunityText(BaseModel):
    """A short summary of one community of a knowledge graph."""

    summary: str = Field(min_length=1, max_length=MAX_SUMMARY_CHARS, description="Two to four sentences about the community.")


@dataclass
class SummaryOutcome:
    """Communities with LLM text where it was written, and the counts and usage of writing it."""

    communities: list[Community]
    written: int = 0
    failed: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    estimated_cost: float = 0.0


def describe_community(community: Community, entity_types: Mapping[str, EntityType]) -> str:
    """Return the text the model summarises: title, entities with types, relations and the sentence."""
    summary = community.summary
    lines = [f"Community: {community.title}", f"Members: {len(community.member_ids)}", "Entities:"]
    lines += [f"- {name} ({entity_types[name].value})" if name in entity_types else f"- {name}" for name in summary.top_entities]
    if summary.key_relations:
        lines.append("Relations:")
        lines += [f"- {relation}" for relation in summary.key_relations]
    if summary.representative_sentence:
        lines.append(f"Sentence: {summary.representative_sentence}")
    return "\n".join(lines)


class CommunitySummariser:
    """Writes `CommunitySummary.text` for communities of two or more members with an `LLMClient`."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def summarise(
        self, communities: Sequence[Community], entity_types: Mapping[str, EntityType], cache: ResponseCache | None = None
    ) -> SummaryOutcome:
        """Return `communities` in the same order, each with LLM text when its request succeeded.

        `entity_types` maps entity names to their types for the prompt. Responses come from `cache`
        when present and are stored there when new.
        """
        usage = TokenUsage()
        prompts = {
            community.id: describe_community(community, entity_types)
            for community in communities
            if len(community.member_ids) >= MIN_MEMBERS_FOR_SUMMARY
        }
        keys = {community_id: self._key(prompt) for community_id, prompt in prompts.items()}
        stored = cache.get(sorted(set(keys.values()))) if cache is not None else {}

        texts: dict[str, str] = {}
        for community_id, key in keys.items():
            if key in stored:
                texts[community_id] = CommunityText.model_validate_json(stored[key]).summary
        usage.cached = len(texts)
        missing = sorted(community_id for community_id in prompts if community_id not in texts)

        failed = 0
        if missing:
            logger.info("requesting summaries of %d communities from %s, %d taken from the cache", len(missing), self.client.model, len(texts))
            with ThreadPoolExecutor(max_workers=min(self.client.max_concurrency, len(missing)), thread_name_prefix="llm-summary") as pool:
                outputs = list(pool.map(lambda community_id: self._request(community_id, prompts[community_id]), missing))
            for community_id, (output, call_usage) in zip(missing, outputs, strict=True):
                usage.add(call_usage)
                if output is None:
                    failed += 1
                    continue
                texts[community_id] = output.summary
                if cache is not None:
                    cache.put({keys[community_id]: output.model_dump_json()})

        updated = [self._with_text(community, texts.get(community.id)) for community in communities]
        return SummaryOutcome(
            communities=updated, written=len(texts), failed=failed, usage=usage, estimated_cost=self.client.estimate_cost(usage)
        )

    def _request(self, community_id: str, prompt: str) -> tuple[CommunityText | None, TokenUsage]:
        usage = TokenUsage()
        messages = [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": prompt}]
        try:
            return self.client.complete(CommunityText, messages, request_id=f"community {community_id}", usage=usage), usage
        except LLMRequestError as error:
            logger.warning("summary of community %s failed, keeping the extractive summary: %s", community_id, error)
            return None, usage

    def _key(self, prompt: str) -> str:
        return response_key("community-summary", self.client.model, self.client.prompt_version, text_hash(prompt))

    @staticmethod
    def _with_text(community: Community, text: str | None) -> Community:
        if text is None:
            return community
        summary = CommunitySummary(**{**community.summary.model_dump(), "text": text})
        return community.model_copy(update={"summary": summary})
