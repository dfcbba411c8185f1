"""Counts of LLM requests and tokens, kept apart from the client so that reports need no openai import."""

from dataclasses import dataclass


@dataclass
class TokenUsage:
    """HTTP requests sent and tokens the endpoint reported; `cached` counts responses taken from the cache."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0

    def add(self, other: "TokenUsage") -> None:
        """Add another usage to this one."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached += other.cached
