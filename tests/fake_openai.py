"""A local OpenAI-compatible chat completions server that replays recorded extractions for tests.

`FakeOpenAI` serves `POST /v1/chat/completions` on 127.0.0.1 from a background thread. It responds
the way instructor's modes expect: a forced tool call when the request has `tools` (TOOLS mode),
and JSON message content otherwise (JSON_SCHEMA and the other JSON modes).

The first user message of a request is the text to work on. The server looks up the SHA-256 of that
text (`graphmem_core.ids.text_hash`) among the recordings in `tests/data/llm_recordings/`. A request
for an extraction without a recording gets an empty extraction, and a request for a summary gets a
summary built from the text's first line. A recording is `{"text_hash", "source", "response"}`:
`source` names the transcript in the podcast corpus, and `response` is an extraction written by
hand from it, with names as the transcript spells them and short descriptions, never its text.

Tests inject faults with `add_fault`: HTTP 429 with Retry-After, HTTP 500, a response slower than
the client's timeout, tool arguments that are not JSON, and JSON that violates the response schema.
Every request is recorded in `requests`, and `max_in_flight` is the largest number of requests
the server handled at once.
"""

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from graphmem_core.ids import text_hash

logger = logging.getLogger(__name__)

RECORDINGS_FOLDER = Path(__file__).parent / "data" / "llm_recordings"

FAULT_KINDS = ("rate_limit", "server_error", "slow", "malformed", "schema")

# The usage the server reports is an estimate of what a real model would bill: about four
# characters per token, the usual rule of thumb for English text.
CHARS_PER_TOKEN = 4

# Output that violates any extraction or summary schema: an unknown entity type, a confidence
# above 1 and a summary that is not a string.
_SCHEMA_VIOLATION = {
    "entities": [{"name": "Nobody", "type": "ALIEN", "description": 7, "aliases": "none"}],
    "relations": [{"source": "Nobody", "target": "Nowhere", "type": "visited", "confidence": 7.5}],
    "summary": ["not", "a", "string"],
}


@dataclass
class Fault:
    """A misbehaviour injected into the next `times` matching requests; `times=None` never runs out."""

    kind: str
    times: int | None = 1
    text_hash: str | None = None
    retry_after: float = 1.0
    delay: float = 1.0


@dataclass
class RecordedRequest:
    """One request the server received; the response fields are filled in once it is sent."""

    text_hash: str
    tool_name: str | None
    mode: str
    message_count: int
    started: float
    body: dict[str, Any] = field(repr=False)
    fault: str | None = None
    status: int | None = None
    finished: float | None = None
    usage: dict[str, int] | None = None


class FakeOpenAI:
    """An OpenAI-compatible chat completions server on 127.0.0.1 with recorded responses and injected faults."""

    def __init__(self, recordings_folder: Path = RECORDINGS_FOLDER) -> None:
        self.recordings = load_recordings(recordings_folder)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> "FakeOpenAI":
        """Listen on a free port of 127.0.0.1 and serve from a daemon thread."""
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        logger.info("fake OpenAI server listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """The base URL to give an OpenAI client, ending in `/v1`."""
        if self._server is None:
            raise RuntimeError("the fake OpenAI server is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # Control

    def add_fault(
        self,
        kind: str,
        times: int | None = 1,
        *,
        text_hash: str | None = None,
        retry_after: float = 1.0,
        delay: float = 1.0,
    ) -> None:
        """Make the next `times` requests (for `text_hash` only, when given) misbehave as `kind`.

        `retry_after` is the Retry-After header of `rate_limit`, and `delay` the seconds a `slow`
        response waits before it responds normally. Faults apply in the order they were added.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}: use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(Fault(kind=kind, times=times, text_hash=text_hash, retry_after=retry_after, delay=delay))

    def reset(self) -> None:
        """Forget every fault, recorded request and the in-flight maximum."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._max_in_flight = 0

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in the order they arrived, including those still being handled."""
        with self._lock:
            return list(self._requests)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being handled, such as a slow response its client gave up on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0:
                    return
            time.sleep(0.01)
        raise TimeoutError(f"the fake OpenAI server still handles requests after {timeout} s")

    @property
    def max_in_flight(self) -> int:
        """The largest number of requests that were being handled at the same time."""
        with self._lock:
            return self._max_in_flight

    # Request handling, called from the server's threads

    def _take_fault(self, request_hash: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.text_hash not in (None, request_hash):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _enter(self, body: dict[str, Any]) -> RecordedRequest:
        request = RecordedRequest(
            text_hash=text_hash(_first_user_text(body)),
            tool_name=_tool_name(body),
            mode="tools" if body.get("tools") else "json",
            message_count=len(body.get("messages", [])),
            started=time.monotonic(),
            body=body,
        )
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return request

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def handle(self, body: dict[str, Any], request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """Return the status, headers and body for one chat completions request, and note them in `request`."""
        text = _first_user_text(body)
        fault = self._take_fault(request.text_hash)
        request.fault = fault.kind if fault is not None else None

        if request.fault == "rate_limit":
            assert fault is not None
            error = {"error": {"message": "Rate limit reached, retry later", "type": "requests", "code": "rate_limit_exceeded"}}
            return 429, {"Retry-After": f"{fault.retry_after:g}"}, json.dumps(error).encode()
        if request.fault == "server_error":
            error = {"error": {"message": "The server had an error while processing your request", "type": "server_error"}}
            return 500, {}, json.dumps(error).encode()
        if request.fault == "slow":
            assert fault is not None
            time.sleep(fault.delay)

        if request.fault == "malformed":
            arguments = '{"entities": [{"name": "unterminated'
        elif request.fault == "schema":
            arguments = json.dumps(_SCHEMA_VIOLATION)
        else:
            arguments = json.dumps(self._output(body, request.text_hash, text))
        completion = _completion(body, arguments)
        request.usage = completion["usage"]
        return 200, {}, json.dumps(completion).encode()

    def _output(self, body: dict[str, Any], request_hash: str, text: str) -> dict[str, Any]:
        """Return the recorded output for the text, or a generic one of the requested shape."""
        if request_hash in self.recordings:
            return self.recordings[request_hash]
        properties = _schema_properties(body)
        if "summary" in properties:
            first_line = text.strip().splitlines()[0] if text.strip() else "nothing"
            return {"summary": f"A group about {first_line[:120]}."}
        return {"entities": [], "relations": []}


def load_recordings(folder: Path) -> dict[str, dict[str, Any]]:
    """Read every `*.json` recording in `folder`, keyed by the hash of the text it belongs to."""
    recordings = {}
    for path in sorted(folder.glob("*.json")):
        recording = json.loads(path.read_text(encoding="utf-8"))
        recordings[recording["text_hash"]] = recording["response"]
    return recordings


def _first_user_text(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _tool_name(body: dict[str, Any]) -> str | None:
    tools = body.get("tools") or []
    return tools[0]["function"]["name"] if tools else None


def _schema_properties(body: dict[str, Any]) -> dict[str, Any]:
    """Return the top-level properties of the requested schema, from the tool or the response format."""
    tools = body.get("tools") or []
    if tools:
        return tools[0]["function"].get("parameters", {}).get("properties", {})
    response_format = body.get("response_format") or {}
    schema = response_format.get("json_schema", {}).get("schema", {})
    return schema.get("properties", {})


def _completion(body: dict[str, Any], arguments: str) -> dict[str, Any]:
    """Build a chat completion that carries `arguments` as a tool call or as message content."""
    tool_name = _tool_name(body)
    if tool_name is not None:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_fake", "type": "function", "function": {"name": tool_name, "arguments": arguments}}],
        }
        finish_reason = "tool_calls"
    else:
        message = {"role": "assistant", "content": arguments}
        finish_reason = "stop"

    prompt_chars = sum(len(json.dumps(m.get("content") or "")) for m in body.get("messages", []))
    prompt_tokens = max(1, prompt_chars // CHARS_PER_TOKEN)
    completion_tokens = max(1, len(arguments) // CHARS_PER_TOKEN)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class bound to `server`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802, the name http.server dispatches to
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {}, json.dumps({"error": {"message": f"unknown path {self.path}"}}).encode())
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")

            request = server._enter(body)
            try:
                status, headers, payload = server.handle(body, request)
                request.status = status
                self._send(status, headers, payload)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test); nothing is left to send.
                pass
            finally:
                request.finished = time.monotonic()
                server._leave()

        def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, the signature http.server calls
            logger.debug("fake OpenAI: " + format, *args)

    return Handler

