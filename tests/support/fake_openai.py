"""A local OpenAI-compatible chat-completions server on 127.0.0.1 for refiner tests.

``POST /v1/chat/completions`` answers in OpenAI's response shape (``id``, ``object:
"chat.completion"``, ``created``, ``model``, ``choices[0].message.content``,
``finish_reason``, ``usage``) and errors in its error shape (``{"error": {"message",
"type", "code"}}``). Each request is recorded; scripted behaviours (``junk``, ``429`` with
Retry-After, ``500``, ``hang`` past the client's timeout) are used in turn before the
default ``answer`` resumes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: What the fake model says to a request: the assistant message's content.
Answer = Callable[[dict[str, Any]], str]


def _says_receipt(request: dict[str, Any]) -> str:
    return json.dumps({"category": "receipt", "confidence": 0.9})


@dataclass
class FakeOpenAI:
    """The server; ``url`` is the API base (``.../v1``) a refiner is configured with."""

    answer: Answer = _says_receipt
    #: Bearer token the server demands; None accepts any request.
    api_key: str | None = None
    #: Behaviours to use before the default answer: "junk", "429", "500", "hang", or an
    #: assistant content string to send as is.
    scripted: list[str] = field(default_factory=list)
    retry_after: str = "1"
    hang_seconds: float = 5.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body, headers = owner.handle(
                    self.path, raw, self.headers.get("Authorization")
                )
                if status == 0:
                    # Hang: say nothing until well past the client's timeout.
                    owner._closing.wait(owner.hang_seconds)
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The API base URL, as OpenAI's clients take it."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def close(self) -> None:
        """Stop serving (hanging requests end at once)."""
        self._closing.set()
        self._http.shutdown()
        self._http.server_close()

    def handle(
        self, path: str, raw: bytes, authorization: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        """Status (0: hang), body and extra headers answering a POST to ``path``."""
        if path != "/v1/chat/completions":
            return _error(404, "Unknown request URL", "invalid_request_error", "unknown_url")
        with self._lock:
            self.authorizations.append(authorization)
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided", "invalid_request_error", "bad_key")
        try:
            request = json.loads(raw)
            messages = request["messages"]
            assert isinstance(messages, list) and messages
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "Invalid request body", "invalid_request_error", None)
        with self._lock:
            self.requests.append(request)
            behaviour = self.scripted.pop(0) if self.scripted else None
        if behaviour == "hang":
            return 0, b"", {}
        if behaviour == "429":
            headers = {"Retry-After": self.retry_after}
            status, body, _ = _error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
            return status, body, headers
        if behaviour == "500":
            return _error(500, "The server had an error", "server_error", None)
        if behaviour == "junk":
            return 200, b'{"choices": [{"message": ', {}
        content = behaviour if behaviour is not None else self.answer(request)
        return 200, json.dumps(_completion(request, content)).encode(), {}


def _completion(request: dict[str, Any], content: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "default"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
    }


def _error(
    status: int, message: str, kind: str, code: str | None
) -> tuple[int, bytes, dict[str, str]]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return status, json.dumps(body).encode(), {}
