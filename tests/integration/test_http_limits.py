"""The request head is capped while it is read: an oversized request line or header is
refused at once (414/431), and a client sending one never slows the others down."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from inboxd.api.http_limits import MAX_HEAD_BYTES, MAX_HEADERS, MAX_LINE_BYTES
from tests.support.server import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = start_server(tmp_path_factory.mktemp("limits"), worker=False)
    yield started
    started.stop()


def _raw(server: ServerProcess, head: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``head`` as it is; the server's whole answer (it closes after a refusal)."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # Refused before we finished sending: the answer is already waiting.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"connection: close" in answer.lower() and answer.endswith(b"\n"):
                break
        return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_long_request_line_is_414(server: ServerProcess) -> None:
    target = b"/healthz?pad=" + b"a" * (MAX_LINE_BYTES + 10)
    assert _status(_raw(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414


@pytest.mark.parametrize("size", [MAX_LINE_BYTES + 100, 1024 * 1024])
def test_a_long_header_line_is_431(server: ServerProcess, size: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size + b"\r\n\r\n"
    assert _status(_raw(server, head)) == 431


def test_too_many_header_lines_are_431(server: ServerProcess) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % n for n in range(MAX_HEADERS + 1))
    assert _status(_raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")) == 431


def test_a_head_too_large_in_all_is_431(server: ServerProcess) -> None:
    line = b"X-Mid-%d: " + b"m" * (MAX_LINE_BYTES // 2) + b"\r\n"
    lines = b"".join(line % n for n in range(2 * MAX_HEAD_BYTES // MAX_LINE_BYTES + 2))
    assert _status(_raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")) == 431


def test_ordinary_large_headers_still_pass(server: ServerProcess) -> None:
    headers = {"X-Big": "c" * (MAX_LINE_BYTES - 100), "X-Other": "d" * 4000}
    assert httpx.get(f"{server.base_url}/healthz", headers=headers).status_code == 200


def test_a_client_sending_a_huge_header_does_not_slow_the_others(server: ServerProcess) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    sent = 0
    cut = threading.Event()

    def flood() -> None:
        nonlocal sent
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
            chunk = b"f" * 65536
            try:
                while sent < 96 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                cut.set()

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    slowest = 0.0
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(20):
            began = time.monotonic()
            assert client.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - began)
    flooder.join(timeout=30)
    assert cut.is_set(), "the flooding connection was never cut"
    # Cut after the cap plus what the kernel's socket buffers held, not after 96 MB.
    assert sent < 16 * 1024 * 1024, sent
    assert slowest < 1.0, f"another client waited {slowest:.2f}s"
