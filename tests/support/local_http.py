"""What the tests' small HTTP servers share: a threaded listener on 127.0.0.1, reading a
form, and answering JSON (or bytes)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class LoopbackServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 with a free port."""

    # socketserver's backlog of 5 overflows when a client opens several connections at
    # once; Linux then drops the handshake's last ACK and the request stalls for seconds.
    request_queue_size = 128
    daemon_threads = True

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def serve(handler: type[BaseHTTPRequestHandler]) -> LoopbackServer:
    """A listener for ``handler`` on a free loopback port, already serving (in a daemon
    thread; ``shutdown()`` and ``server_close()`` end it)."""
    server = LoopbackServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def read_form(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """The request's application/x-www-form-urlencoded body (first value of each name)."""
    length = int(handler.headers.get("Content-Length") or 0)
    return {k: v[0] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: dict[str, Any] | list[Any] | bytes | None,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with ``body`` as JSON (bytes as text/plain, None: empty), never cached."""
    if isinstance(body, bytes):
        payload, ctype = body, "text/plain"
    else:
        payload, ctype = (
            (json.dumps(body).encode() if body is not None else b""),
            ("application/json"),
        )
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(payload)))
    handler.send_header("Cache-Control", "no-store")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)
