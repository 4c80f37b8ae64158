"""An httpx transport that connects to an address checked beforehand, never to a name.

httpx would resolve the host itself when connecting; a name that answers a public address to
the check and a private one to the connection (DNS rebinding) would then slip through. Here
the request carries the checked address and the socket goes there; TLS still sends the name
(SNI) and verifies the certificate against it. Every request uses a fresh connection that is
closed with its response: no pooling, so no connection outlives the check that allowed it.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterator
from typing import Any

import httpcore
import httpx

# (address, port, timeout) -> a connected socket. Injectable so tests can see every connection.
Connector = Callable[[str, int, float], socket.socket]

PIN = "inboxd.address"
DEADLINE = "inboxd.deadline"


def connect(address: str, port: int, timeout: float) -> socket.socket:
    """Open a TCP connection to an IP address (never a name: nothing is resolved here)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class _SocketStream(httpcore.NetworkStream):
    """A socket whose every read and write ends by one deadline: a server that trickles bytes
    cannot stretch a hop beyond its timeout."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the hop's time is up")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._sock.settimeout(self._left(timeout))
        try:
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._sock.settimeout(self._left(timeout))
        try:
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._sock.settimeout(self._left(timeout))
        try:
            # The name, not the address: SNI and certificate verification are for the host.
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._sock.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            self._sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _SocketStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            # An SSLSocket answers what httpcore asks of it (selected_alpn_protocol).
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _is_readable(self._sock)
        return None


def _is_readable(sock: socket.socket) -> bool:
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the one checked address whatever host httpcore asks for."""

    def __init__(self, address: str, deadline: float, connector: Connector) -> None:
        self._address = address
        self._deadline = deadline
        self._connector = connector

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the hop's time is up")
        try:
            sock = self._connector(self._address, port, min(left, timeout or left))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return _SocketStream(sock, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable from a message's URL")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _ClosingStream(httpx.SyncByteStream):
    """The response body; closing it closes the connection (the body is usually never read)."""

    def __init__(self, body: Iterator[bytes], connection: httpcore.HTTPConnection) -> None:
        self._body = body
        self._connection = connection

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except httpcore.TimeoutException as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        except httpcore.NetworkError as exc:
            raise httpx.ReadError(str(exc)) from exc

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._connection.close()


class PinnedTransport(httpx.BaseTransport):
    """Sends an ``httpx.Request`` to ``request.extensions[PIN]`` (an IP address), by
    ``request.extensions[DEADLINE]`` (a ``time.monotonic`` instant)."""

    def __init__(self, ssl_context: ssl.SSLContext, connector: Connector = connect) -> None:
        self._ssl_context = ssl_context
        self._connector = connector

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request over a fresh connection to the pinned address."""
        address = request.extensions[PIN]
        deadline = request.extensions[DEADLINE]
        timeout = max(0.001, deadline - time.monotonic())
        url = request.url
        scheme = url.raw_scheme
        port = url.port or (443 if scheme == b"https" else 80)
        connection = httpcore.HTTPConnection(
            origin=httpcore.Origin(scheme, url.raw_host, port),
            ssl_context=self._ssl_context,
            network_backend=_PinnedBackend(address, deadline, self._connector),
        )
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=scheme, host=url.raw_host, port=port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions={
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
            },
        )
        try:
            response = connection.handle_request(core_request)
        except httpcore.TimeoutException as exc:
            connection.close()
            raise httpx.TimeoutException(str(exc) or "timed out", request=request) from exc
        except httpcore.ConnectError as exc:
            connection.close()
            raise httpx.ConnectError(str(exc) or "connection failed", request=request) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            connection.close()
            raise httpx.TransportError(str(exc) or "network error", request=request) from exc
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ClosingStream(typing.cast(Iterator[bytes], response.stream), connection),
            extensions=response.extensions,
            request=request,
        )
