"""Structured chat requests through instructor over the openai client, with limits and retries.

`LLMClient.complete` sends one request and returns output validated by a Pydantic model:

- at most `GRAPHMEM_LLM_MAX_CONCURRENCY` requests are in flight at once, across threads;
- a `RateLimiter` spaces requests and tokens to the per-minute limits, reserving an estimate of the
  tokens before each HTTP request and correcting it from the usage the response reports;
- HTTP 429, 408 and 5xx, timeouts and dropped connections are retried up to `max_retries` times
  with exponential backoff and jitter, waiting at least as long as the Retry-After header requests;
- output that fails validation goes back to the model with the errors (instructor's re-ask) up to
  `max_reasks` times.

A rejected API key or an unknown model raises `ConfigurationError`, because no retry can fix it.
Any other failure raises `LLMRequestError`, which callers record against the input they sent.
"""

import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import instructor
import openai
from instructor.core.exceptions import IncompleteOutputException, InstructorRetryException
from instructor.core.hooks import Hooks
from pydantic import BaseModel

from graphmem_core.errors import ConfigurationError, GraphmemError
from graphmem_core.ids import content_hash
from graphmem_core.llm.usage import TokenUsage
from graphmem_core.settings import Settings

logger = logging.getLogger(__name__)

# Token counts are estimated before a request at about four characters per token, a rough rule for
# English text. The usage in the response replaces the estimate afterwards.
CHARS_PER_TOKEN = 4

# Completion tokens reserved for each request until its usage is known.
ESTIMATED_COMPLETION_TOKENS = 512

# Each rate limit allows a burst of this many seconds' worth of its rate, and at least one request.
BURST_SECONDS = 1.0

# Backoff before retry n is up to BACKOFF_BASE_SECONDS * 2 ** (n - 1), capped at BACKOFF_MAX_SECONDS.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0

# A Retry-After beyond this is not waited out in full, so one response cannot stall a run for hours.
MAX_RETRY_AFTER_SECONDS = 300.0

# Error texts in logs and failure records are cut to this length; validation errors can be long.
MAX_REASON_CHARS = 500

# The API key sent when none is configured. Local servers accept any key, and the OpenAI API
# rejects this one with HTTP 401, which is reported as a missing GRAPHMEM_LLM_API_KEY.
PLACEHOLDER_API_KEY = "unset"

# HTTP statuses worth retrying: request timeout, too many requests, and server errors from 500 up.
_RETRYABLE_STATUSES = frozenset({408, 429})
_MIN_SERVER_ERROR_STATUS = 500

_LEVEL_TOLERANCE = 1e-6

_INSTRUCTOR_MODES = {"tools": instructor.Mode.TOOLS, "json_schema": instructor.Mode.JSON_SCHEMA}

ResponseModel = TypeVar("ResponseModel", bound=BaseModel)


class LLMRequestError(GraphmemError):
    """A request failed for good: its retries or re-asks ran out, or the endpoint rejected it."""


class _Bucket:
    """A token bucket that refills at `per_minute / 60` units a second up to a one-burst capacity."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.level = self.capacity

    def refill(self, seconds: float) -> None:
        self.level = min(self.capacity, self.level + seconds * self.rate)

    def wait_seconds(self, cost: float) -> float:
        """Return how long until `cost` may be taken; a cost above the capacity waits for a full bucket."""
        needed = min(cost, self.capacity)
        # The tolerance absorbs rounding, which could otherwise ask for sleeps shorter than the clock resolves.
        return 0.0 if self.level >= needed - _LEVEL_TOLERANCE else (needed - self.level) / self.rate


class RateLimiter:
    """Spaces requests and tokens to per-minute limits across threads; a limit of 0 is no limit.

    A request takes its estimated tokens up front. A request larger than one burst waits for a
    full bucket and then drives the level below zero, so the average rate still holds.
    """

    def __init__(
        self,
        requests_per_minute: int,
        tokens_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._requests = _Bucket(requests_per_minute) if requests_per_minute > 0 else None
        self._tokens = _Bucket(tokens_per_minute) if tokens_per_minute > 0 else None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._updated = clock()

    def acquire(self, tokens: int) -> float:
        """Block until one request of `tokens` estimated tokens fits both limits; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                wait = max(
                    self._requests.wait_seconds(1) if self._requests else 0.0,
                    self._tokens.wait_seconds(tokens) if self._tokens else 0.0,
                )
                if wait <= 0.0:
                    if self._requests:
                        self._requests.level -= 1
                    if self._tokens:
                        self._tokens.level -= tokens
                    return waited
            self._sleep(wait)
            waited += wait

    def correct(self, tokens: int) -> None:
        """Charge `tokens` more (or give back, when negative) once a request's real usage is known."""
        if self._tokens is None or tokens == 0:
            return
        with self._lock:
            self._refill()
            self._tokens.level = min(self._tokens.capacity, self._tokens.level - tokens)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.refill(elapsed)


def estimate_request_tokens(request: Mapping[str, Any]) -> int:
    """Estimate the tokens of one chat request: its messages and schema, plus the completion reserve."""
    schema = request.get("tools") or request.get("response_format") or {}
    characters = len(json.dumps(request.get("messages", []), ensure_ascii=False, default=str))
    characters += len(json.dumps(schema, ensure_ascii=False, default=str))
    return math.ceil(characters / CHARS_PER_TOKEN) + ESTIMATED_COMPLETION_TOKENS


def backoff_seconds(attempt: int, request_id: str, base: float, cap: float) -> float:
    """Return the delay before retry `attempt` (from 1): exponential, capped, with "equal jitter".

    The jitter is half the delay, scaled by a hash of the request id and the attempt. So delays
    differ between requests, which keeps their retries apart, yet a rerun waits the same.
    """
    ceiling = min(cap, base * 2 ** (attempt - 1))
    fraction = int(content_hash(request_id, str(attempt))[:8], 16) / 0xFFFFFFFF
    return ceiling / 2 + ceiling / 2 * fraction


def retry_after_seconds(error: BaseException) -> float | None:
    """Return the wait that an HTTP error's `retry-after-ms` or `retry-after` header requests, if any."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None

    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass

    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        logger.warning("ignoring unparseable Retry-After header %r", value)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def short_reason(error: BaseException | str) -> str:
    """Return an error's text on one line, cut to MAX_REASON_CHARS."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "\u2026"


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _is_transient(error: openai.APIError) -> bool:
    if isinstance(error, openai.APIConnectionError):
        return True
    status = getattr(error, "status_code", None)
    return status is not None and (status in _RETRYABLE_STATUSES or status >= _MIN_SERVER_ERROR_STATUS)


def _describe(error: openai.APIError) -> str:
    """Name an API error the way a log reader searches for it: the HTTP status or timeout, then the message."""
    if isinstance(error, openai.APITimeoutError):
        return "request timed out"
    if isinstance(error, openai.APIConnectionError):
        return f"connection failed: {short_reason(error)}"
    status = getattr(error, "status_code", None)
    body = error.body
    # OpenAI-style error bodies carry a readable `message`; other servers may send anything.
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {status}: {short_reason(message if isinstance(message, str) and message else error.message)}"


class LLMClient:
    """A chat model behind an OpenAI-compatible endpoint, called with validated structured output."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        """Create the client from the GRAPHMEM_LLM_* settings; tests pass short backoff times."""
        if not settings.llm_model:
            raise ConfigurationError("no LLM model is configured: set GRAPHMEM_LLM_MODEL, and GRAPHMEM_LLM_BASE_URL for a non-OpenAI endpoint")
        settings.validate_llm()

        self.model = settings.llm_model
        self.endpoint = settings.llm_base_url or "the OpenAI API"
        self.prompt_version = settings.llm_prompt_version
        self.max_concurrency = settings.llm_max_concurrency
        self.max_retries = settings.llm_max_retries
        self.max_reasks = settings.llm_max_reasks
        self.price_per_1k_input = settings.llm_price_per_1k_input
        self.price_per_1k_output = settings.llm_price_per_1k_output
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.rate_limiter = RateLimiter(settings.llm_requests_per_minute, settings.llm_tokens_per_minute)
        self._slots = threading.BoundedSemaphore(settings.llm_max_concurrency)

        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key is not None else PLACEHOLDER_API_KEY
        # openai's own retries are off: this client retries, so that it can log and bound them.
        http_client = openai.OpenAI(
            base_url=settings.llm_base_url, api_key=api_key, timeout=settings.llm_timeout_seconds, max_retries=0
        )
        self._instructor = instructor.from_openai(http_client, mode=_INSTRUCTOR_MODES[settings.llm_mode])
        logger.info(
            "LLM client for model %s at %s: %d concurrent requests, %d requests and %d tokens a minute (0 = no limit)",
            self.model,
            self.endpoint,
            settings.llm_max_concurrency,
            settings.llm_requests_per_minute,
            settings.llm_tokens_per_minute,
        )

    def estimate_cost(self, usage: TokenUsage) -> float:
        """Return the cost of `usage` at the configured prices per 1,000 tokens."""
        return usage.prompt_tokens / 1000 * self.price_per_1k_input + usage.completion_tokens / 1000 * self.price_per_1k_output

    def complete(
        self, response_model: type[ResponseModel], messages: list[dict[str, str]], request_id: str, usage: TokenUsage
    ) -> ResponseModel:
        """Send one request and return its output validated by `response_model`.

        `request_id` names the request in logs (a chunk id, say). Every HTTP request, re-asks and
        retries included, is added to `usage`. Raises `LLMRequestError` when the request fails for
        good, and `ConfigurationError` when the endpoint rejects the key or does not know the model.
        """
        hooks = self._usage_hooks(request_id, usage)
        # NOTE: instructor 1.17 logs each failed HTTP request at ERROR level ("API call failed",
        # "Max retries exceeded") before this loop retries it; the WARNING below is the retry itself.
        for attempt in range(1, self.max_retries + 2):
            try:
                with self._slots:
                    return self._instructor.create(
                        response_model=response_model,
                        messages=list(messages),
                        model=self.model,
                        max_retries=self.max_reasks,
                        hooks=hooks,
                    )
            except InstructorRetryException as error:
                cause = error.__cause__
                if not isinstance(cause, openai.APIError):
                    reason = short_reason(cause if cause is not None else error)
                    raise LLMRequestError(f"invalid output after {_attempts(error.n_attempts)}: {reason}") from error
                failure = cause
            except openai.APIError as error:
                failure = error
            except IncompleteOutputException as error:
                raise LLMRequestError("the output was cut off at the model's output token limit: use a model with a larger limit") from error

            self._raise_if_misconfigured(failure)
            if not _is_transient(failure):
                raise LLMRequestError(f"the endpoint rejected the request: {_describe(failure)}") from failure
            if attempt > self.max_retries:
                raise LLMRequestError(f"{_describe(failure)}; gave up after {_attempts(attempt)}") from failure
            self._wait_before_retry(failure, request_id, attempt)
        raise AssertionError("unreachable: the loop returns or raises")

    def _wait_before_retry(self, failure: openai.APIError, request_id: str, attempt: int) -> None:
        delay = backoff_seconds(attempt, request_id, self.backoff_base_seconds, self.backoff_max_seconds)
        requested = retry_after_seconds(failure)
        if requested is not None:
            if requested > MAX_RETRY_AFTER_SECONDS:
                logger.warning("Retry-After of %.0f s for %s exceeds %.0f s; waiting %.0f s", requested, request_id, MAX_RETRY_AFTER_SECONDS, MAX_RETRY_AFTER_SECONDS)
            delay = max(delay, min(requested, MAX_RETRY_AFTER_SECONDS))
        logger.warning(
            "LLM request for %s failed (%s), retry %d of %d in %.2f s", request_id, _describe(failure), attempt, self.max_retries, delay
        )
        time.sleep(delay)

    def _raise_if_misconfigured(self, failure: openai.APIError) -> None:
        if isinstance(failure, (openai.AuthenticationError, openai.PermissionDeniedError)):
            raise ConfigurationError(
                f"{self.endpoint} rejected the API key ({_describe(failure)}): set GRAPHMEM_LLM_API_KEY to a key with access to {self.model!r}"
            ) from failure
        if isinstance(failure, openai.NotFoundError):
            raise ConfigurationError(
                f"{self.endpoint} does not serve model {self.model!r} ({_describe(failure)}): check GRAPHMEM_LLM_MODEL and GRAPHMEM_LLM_BASE_URL"
            ) from failure

    def _usage_hooks(self, request_id: str, usage: TokenUsage) -> Hooks:
        """Return instructor hooks that rate-limit each HTTP request of one call and count its usage."""
        hooks = Hooks()
        reserved = [0]

        def before_request(*args: Any, **request: Any) -> None:
            estimate = estimate_request_tokens(request)
            waited = self.rate_limiter.acquire(estimate)
            if waited > 0:
                logger.debug("rate limit held the LLM request for %s for %.2f s", request_id, waited)
            reserved[0] = estimate
            usage.requests += 1

        def after_response(response: Any) -> None:
            billed = getattr(response, "usage", None)
            prompt_tokens = int(getattr(billed, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(billed, "completion_tokens", 0) or 0)
            usage.prompt_tokens += prompt_tokens
            usage.completion_tokens += completion_tokens
            if billed is not None:
                self.rate_limiter.correct(prompt_tokens + completion_tokens - reserved[0])
            reserved[0] = 0

        def after_error(error: Exception, **details: Any) -> None:
            # A failed request is taken as unbilled and its reservation given back, though a provider
            # may still bill a request that timed out on the client side.
            self.rate_limiter.correct(-reserved[0])
            reserved[0] = 0

        def after_invalid_output(error: Exception, **details: Any) -> None:
            if not details.get("is_last_attempt", False):
                logger.warning(
                    "LLM output for %s is invalid, sending the request again with the errors (attempt %s of %s): %s",
                    request_id,
                    details.get("attempt_number"),
                    details.get("max_attempts"),
                    short_reason(error),
                )

        hooks.on("completion:kwargs", before_request)
        hooks.on("completion:response", after_response)
        hooks.on("completion:error", after_error)
        hooks.on("parse:error", after_invalid_output)
        return hooks
