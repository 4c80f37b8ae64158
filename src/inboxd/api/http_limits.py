"""Caps on the request head, enforced while it is read (nginx-like defaults).

uvicorn's httptools protocol buffers a request's head without limit before the application
sees it: one client sending a 96 MB header line held every other client for seconds and grew
the server's memory by as much. Here a request line over :data:`MAX_LINE_BYTES` answers 414,
a header line over it, more than :data:`MAX_HEADERS` header lines or a head over
:data:`MAX_HEAD_BYTES` answer 431, as soon as the limit is passed; the connection then closes.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Longest request line (method, target, version) or header line (nginx: 8 KiB buffers).
MAX_LINE_BYTES = 8 * 1024
#: Most header lines in one request.
MAX_HEADERS = 100
#: Longest request head in all: request line and every header line (nginx: 4 x 8 KiB).
MAX_HEAD_BYTES = 32 * 1024

_REASONS = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop reading a request whose head is too large."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request head capped (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        #: bytes received while the head was unfinished (a bound on what the parser holds)
        self._head_bytes = 0
        #: bytes of the head's lines parsed so far
        self._line_bytes = 0
        self._refusal: tuple[int, str] | None = None

    def on_message_begin(self) -> None:
        """A new request: its head is being read."""
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._line_bytes = 0

    def on_url(self, url: bytes) -> None:
        """Part of the request target (httptools may deliver it in pieces)."""
        super().on_url(url)
        if len(self.url) > MAX_LINE_BYTES:
            self._refuse(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        """One whole header line."""
        if len(name) + len(value) > MAX_LINE_BYTES:
            self._refuse(431, "header line too long")
        if len(self.headers) >= MAX_HEADERS:
            self._refuse(431, "too many header lines")
        self._line_bytes += len(name) + len(value) + 4
        if self._line_bytes + len(self.url) > MAX_HEAD_BYTES:
            self._refuse(431, "request head too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is read; what follows is the body."""
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        """Feed the parser, then refuse a head that is still unfinished past the cap (a long
        line is buffered by the parser itself before any callback sees it)."""
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refusal = (431, "request head too large")
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """The parser stopped: answer with the refusal that stopped it, else uvicorn's 400."""
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, text = self._refusal
        body = f"{text}\n".encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()

    def _refuse(self, status: int, text: str) -> None:
        self._refusal = (status, text)
        raise HeadTooLarge(text)
