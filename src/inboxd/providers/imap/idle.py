"""IMAP IDLE on INBOX (RFC 2177): one read-only connection that says when the folder changes.

The login (TLS, STARTTLS, password or XOAUTH2) is :class:`ImapConnection`'s; INBOX is
EXAMINEd (read-only: watching never changes a ``\\Recent`` or ``\\Seen``). While IDLE runs
the server writes untagged responses whenever it likes, so they are read straight from the
socket with a short timeout (imaplib's buffered file cannot be read with a timeout without
losing data) and checked against ``stop`` between reads. IDLE is renewed every
``renew_seconds``: servers drop a connection idle for 30 minutes, and answering DONE proves
a connection that has been silent is still there.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable

from inboxd.providers.base import ProviderConfigError, ProviderError, ServerClosedConnection
from inboxd.providers.imap.connection import ImapConnection

#: RFC 2177 asks clients to re-issue IDLE at least every 29 minutes.
RENEW_SECONDS = 25 * 60.0
#: How often a wait looks at its stop event (the latency of stopping a watcher).
TICK_SECONDS = 0.5

#: Untagged responses that mean INBOX changed: new mail, expunges, flag changes.
_CHANGE = re.compile(rb"^\* (?:\d+ (?:EXISTS|EXPUNGE|FETCH)\b|VANISHED\b)", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_MAX_LINE = 1_000_000

#: Called with the untagged responses that meant a change, from the watching thread.
OnChange = Callable[[list[bytes]], None]


class IdleNotOffered(ProviderConfigError):
    """The server does not advertise IDLE: the account is left to the periodic sync."""


class InboxIdle(ImapConnection):
    """A connection that EXAMINEs INBOX and waits in IDLE for changes."""

    _buffer = b""
    _tags = 0

    def open(self) -> None:
        """Log in and EXAMINE INBOX; IdleNotOffered when the server has no IDLE (nothing
        is retried for that)."""
        self.connect()
        if "IDLE" not in self.capabilities:
            self.close()
            raise IdleNotOffered(f"{self.config.host} does not offer IMAP IDLE")
        with self._streaming() as stream:
            answer = stream.command("EXAMINE INBOX")
        self._check(answer, "EXAMINE INBOX")
        self.selected, self.writable = "INBOX", False
        self._take_over_socket()

    def watch(
        self,
        stop: threading.Event,
        on_change: OnChange,
        *,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        """IDLE until ``stop`` is set, calling ``on_change`` for every batch of change
        responses; ProviderError (or ServerClosedConnection) when the connection fails."""
        try:
            while not stop.is_set():
                tag, changes = self._begin_idle()
                if changes:
                    on_change(changes)
                deadline = time.monotonic() + renew_seconds
                while not stop.is_set() and time.monotonic() < deadline:
                    changes = self._read_changes(TICK_SECONDS)
                    if changes:
                        on_change(changes)
                changes = self._end_idle(tag)
                if changes:
                    on_change(changes)
        except (OSError, EOFError) as exc:
            self._abandon()
            raise ProviderError(f"{self.config.host} dropped the IDLE connection: {exc}") from exc
        except ProviderError:
            self._abandon()
            raise

    # -- the IDLE exchange -----------------------------------------------------------------

    def _take_over_socket(self) -> None:
        """From here on the socket is read here, not through imaplib's buffered file: take
        whatever that file holds already (nothing, unless the server spoke unasked)."""
        sock = self.client.socket()
        file = self.client._imap.file
        _keep_alive(sock)
        sock.setblocking(False)
        try:
            # peek gives the buffered bytes without a read; an empty buffer tries one read,
            # which a non-blocking socket answers at once (EAGAIN, or TLS's want-read).
            held = file.peek(1)
        except OSError:
            held = b""
        finally:
            sock.settimeout(self.config.timeout)
        self._buffer = file.read(len(held)) if held else b""

    def _send(self, text: str) -> None:
        self.client.socket().sendall(text.encode() + b"\r\n")

    def _begin_idle(self) -> tuple[str, list[bytes]]:
        """IDLE, up to the server's continuation; its tag, and the changes the server
        reported before it (those since EXAMINE or the last DONE)."""
        self._tags += 1
        tag = f"IDL{self._tags}"
        self._send(f"{tag} IDLE")
        changes: list[bytes] = []
        while True:
            line = self._line(self.config.timeout)
            if line is None:
                raise ProviderError(f"{self.config.host} did not answer IDLE")
            if line.startswith(b"+"):
                return tag, changes
            if line.startswith(tag.encode() + b" "):
                raise ProviderError(f"{self.config.host} refused IDLE: {_text(line)[:200]}")
            if self._untagged(line):
                changes.append(line)

    def _end_idle(self, tag: str) -> list[bytes]:
        """DONE, then the responses up to IDLE's tagged answer (changes among them)."""
        self._send("DONE")
        changes: list[bytes] = []
        deadline = time.monotonic() + self.config.timeout
        while True:
            line = self._line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise ProviderError(f"{self.config.host} did not answer DONE")
            if line.startswith(tag.encode() + b" "):
                if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                    raise ProviderError(f"{self.config.host} ended IDLE: {_text(line)[:200]}")
                return changes
            if self._untagged(line):
                changes.append(line)

    def _read_changes(self, timeout: float) -> list[bytes]:
        """The change responses that arrive within ``timeout`` (and any already read)."""
        changes: list[bytes] = []
        wait = timeout
        while (line := self._line(wait)) is not None:
            if self._untagged(line):
                changes.append(line)
            wait = 0.0  # take what is buffered, wait no more
        return changes

    def _untagged(self, line: bytes) -> bool:
        """True when ``line`` says INBOX changed; a BYE ends the connection."""
        if line[:5].upper() == b"* BYE":
            raise ServerClosedConnection(
                f"{self.config.host} closed the connection: {_text(line)[6:][:200]}"
            )
        return bool(_CHANGE.match(line))

    # -- reading ---------------------------------------------------------------------------

    def _line(self, timeout: float) -> bytes | None:
        """One response line (literals inlined), or None when none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = self._buffer[: end + 2]
                literal = _LITERAL.search(line)
                if literal is None:
                    self._buffer = self._buffer[end + 2 :]
                    return line
                # A response with a literal is only complete once the literal and the rest
                # of the line are here; it is then taken whole.
                size = end + 2 + int(literal.group(1))
                rest = self._buffer.find(b"\r\n", size)
                if rest >= 0:
                    whole = self._buffer[: rest + 2]
                    self._buffer = self._buffer[rest + 2 :]
                    return whole
            if len(self._buffer) > _MAX_LINE:
                raise ProviderError(f"{self.config.host} sent a response line that never ends")
            left = deadline - time.monotonic()
            if left <= 0 and not self._pending():
                return None
            self._receive(max(left, 0.0))

    def _pending(self) -> bool:
        """Decrypted bytes waiting in the TLS layer (a socket wait would not see them)."""
        sock = self.client.socket()
        pending = getattr(sock, "pending", None)
        return bool(pending and pending())

    def _receive(self, timeout: float) -> None:
        sock = self.client.socket()
        sock.settimeout(max(timeout, 0.001))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return
        finally:
            sock.settimeout(self.config.timeout)
        if not data:
            raise EOFError("the server closed the connection")
        self._buffer += data


def _keep_alive(sock: socket.socket) -> None:
    """TCP keepalive probes after a minute of silence: a peer that vanished (a NAT box
    that forgot the connection, a host that died) is noticed in about two minutes, not
    at the next renewal, while IDLE itself sends nothing."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 20)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r\n")
