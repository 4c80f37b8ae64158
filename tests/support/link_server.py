"""A scriptable HTTP(S) server on loopback for the guarded client: redirects, slow and hanging
answers, endless bodies; it records every request and how many were in flight at once."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from inboxd.config import Settings
from inboxd.net import GuardedClient
from inboxd.net.transport import connect
from tests.services import certs


@dataclass
class Route:
    """What the server answers on one path."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    head_status: int | None = None  # the answer to HEAD, when it differs (405: no HEAD here)
    delay: float = 0.0  # seconds before the answer
    hang: bool = False  # never answer (until the server stops)
    stream_forever: bool = False  # after the headers, send body bytes until the client leaves


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LinkServer:
    """A threaded HTTP server on ``host`` (a loopback address), HTTPS with ``tls``."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.max_in_flight = 0
        self.stream_ended = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type(
            "_Server", (ThreadingHTTPServer,), {"address_family": family, "request_queue_size": 128}
        )
        self._server: ThreadingHTTPServer = server_class((host, 0), self._handler_class())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.host = host
        self.port: int = self._server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str, host: str | None = None) -> str:
        """The URL of ``path`` on this server, under ``host`` (a name) or its address."""
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{self.scheme}://{name}:{self.port}{path}"

    def count(self, path: str, method: str | None = None) -> int:
        """Requests received for ``path`` (of ``method``, when given)."""
        with self._lock:
            return sum(
                1 for s in self.seen if s.path == path and (method is None or s.method == method)
            )

    def close(self) -> None:
        """Release hanging handlers and stop serving."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LinkServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                server._answer(self, "HEAD")

            def do_GET(self) -> None:
                server._answer(self, "GET")

            def do_POST(self) -> None:
                server._answer(self, "POST")

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        route = self.routes.get(handler.path.split("?")[0], Route(status=404))
        with self._lock:
            self.seen.append(Seen(method, handler.path, headers, body))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if route.hang:
                self._stop.wait(30)
                return
            if route.delay:
                self._stop.wait(route.delay)
        finally:
            # Counted only while the client waits for the answer, i.e. while it holds its
            # slot: the count can then never exceed the client's caps by a race.
            with self._lock:
                self._in_flight -= 1
        self._respond(handler, method, route)

    def _respond(self, handler: BaseHTTPRequestHandler, method: str, route: Route) -> None:
        status = route.head_status if method == "HEAD" and route.head_status else route.status
        handler.send_response(status)
        for name, value in route.headers.items():
            handler.send_header(name, value)
        if route.stream_forever and method == "GET":
            handler.send_header("Content-Type", "text/html")
            handler.end_headers()
            self._stream(handler)
            return
        handler.send_header("Content-Length", str(len(route.body)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(route.body)

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        chunk = b"<p>" + b"x" * 8192 + b"</p>\n"
        deadline = time.monotonic() + 30
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                handler.wfile.write(chunk)
                handler.wfile.flush()
        except OSError:
            pass  # the client hung up: what it should do
        finally:
            handler.close_connection = True
            self.stream_ended.set()


@dataclass(frozen=True)
class LocalTLS:
    """A server context, a client context trusting only its CA, and that CA in PEM."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    ca_pem: bytes


def tls_contexts(names: list[str], directory: Path | None = None) -> LocalTLS:
    """A server context with a certificate for ``names`` (host names or IPs) signed by a
    throwaway CA, and a client context that trusts only that CA."""
    made = certs.issue(names, lifetime=dt.timedelta(hours=1), ca_name="inboxd link test CA")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        cert_file = Path(tmp) / "cert.pem"
        key_file = Path(tmp) / "key.pem"
        cert_file.write_bytes(made.cert_pem)
        key_file.write_bytes(made.key_pem)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
    ca_pem = made.ca_pem
    client = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    return LocalTLS(server, client, ca_pem)


@dataclass
class FakeDNS:
    """Answers from a mapping (a list per call, the last one repeated); records every call."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    delay: float = 0.0

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if self.delay:
            time.sleep(self.delay)
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]


@dataclass
class Connections:
    """A connector that only ever reaches loopback, and logs where it went."""

    made: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        assert address in ("127.0.0.1", "::1"), f"test tried to connect to {address}"
        self.made.append((address, port))
        return connect(address, port, timeout)


@dataclass
class Harness:
    dns: FakeDNS
    connections: Connections
    clients: list[GuardedClient] = field(default_factory=list)

    def client(self, allow: Sequence[str] = ("127.0.0.1",), **settings: Any) -> GuardedClient:
        options: dict[str, Any] = {
            "fetch_allow_networks": list(allow),
            "fetch_timeout_seconds": 1.0,
            "fetch_cache_seconds": 0,
        }
        options.update(settings)
        ssl_context = options.pop("ssl_context", None)
        clock = options.pop("clock", time.monotonic)
        client = GuardedClient(
            Settings(**options),
            resolver=self.dns,
            connector=self.connections,
            ssl_context=ssl_context,
            clock=clock,
        )
        self.clients.append(client)
        return client
