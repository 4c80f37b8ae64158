"""Pipelined IMAP commands on the connection imaplib opened: the bulk path of a sync.

imaplib waits for each answer before the next command and runs Python code for every
response line. A sync of 20,000 messages sends a few hundred UID FETCH commands answered by
20,000 responses, so here several commands are on the wire while the answer to the first is
read (no round trip per batch), and each response costs a few C-level reads: its line, its
literal, the line after it.

Responses are read straight from imaplib's buffered socket file, with tags of our own; the
stream always reads up to the tagged answer of every command it sent before it gives the
connection back, so imaplib (and IMAPClient above it) never sees a reply it did not ask for.
"""

from __future__ import annotations

import imaplib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, cast

#: Longest response line accepted (imaplib's own limit).
MAX_LINE = 1_000_000
#: Longest line of a SEARCH answer: every UID of a folder on one line (7-8 bytes each).
MAX_SEARCH_LINE = 64_000_000

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n\Z")
_BODY_LITERAL = re.compile(rb"BODY\[\] \{\d+\}\r\n\Z")
_UID = re.compile(rb"\bUID (\d+)")


class StreamBroken(Exception):
    """The connection failed mid-answer (EOF, timeout, BYE, garbage); it cannot be reused."""


class ServerSaidBye(StreamBroken):
    """The server ended the connection with a reason (``* BYE ...``)."""


@dataclass
class Response:
    """One untagged response: its text with every literal cut out, and the literals.

    ``parts[i]`` is the text before literal ``i`` (ending in ``{n}\\r\\n``); the last part
    is the text after the last literal."""

    parts: list[bytes]
    literals: list[bytes] = field(default_factory=list)

    @property
    def line(self) -> bytes:
        """The response's text (only meaningful without literals)."""
        return self.parts[0]

    def is_fetch(self) -> bool:
        """True for ``* n FETCH (...)``."""
        return b" FETCH " in self.parts[0][:40]

    def fetch_head_and_body(self) -> tuple[bytes, bytes | None]:
        """The FETCH items other than ``BODY[]`` (other literals inlined as quoted strings)
        and the body literal, if there is one."""
        if not self.literals:
            return self.parts[0], None
        head: list[bytes] = []
        body = None
        for text, literal in zip(self.parts, self.literals, strict=False):
            cut = _LITERAL_AT_END.search(text)
            start = cut.start() if cut else len(text)
            if body is None and _BODY_LITERAL.search(text):
                head.append(text[:start])
                body = literal
            else:
                head.append(text[:start] + _quoted(literal))
        head.append(self.parts[-1])
        return b"".join(head), body


@dataclass
class Answer:
    """Everything the server sent for one command."""

    tag: str
    status: str  # OK, NO or BAD
    text: str
    responses: list[Response]

    @property
    def ok(self) -> bool:
        """True when the command succeeded."""
        return self.status == "OK"


class ImapStream:
    """Sends tagged commands and reads their answers on an open imaplib connection."""

    def __init__(self, imap: imaplib.IMAP4) -> None:
        self._imap = imap
        self._counter = 0
        self._outstanding: list[str] = []
        self._unawaited: set[str] = set()

    @property
    def clean(self) -> bool:
        """True when every command sent has been answered."""
        return not self._outstanding

    def send(self, command: str) -> str:
        """Put one command on the wire; returns its tag."""
        self._counter += 1
        tag = f"IBX{self._counter}"
        try:
            self._imap.send(f"{tag} {command}\r\n".encode())
        except OSError as exc:
            raise StreamBroken(f"sending failed: {exc}") from exc
        self._outstanding.append(tag)
        return tag

    def send_unawaited(self, command: str) -> None:
        """Put a command on the wire whose answer nobody waits for (ENABLE): it is read
        and dropped on the way to the next answer, so it costs no round trip of its own."""
        self._unawaited.add(self.send(command))

    def answer(
        self,
        on_response: Callable[[Response], None] | None = None,
        *,
        max_line: int = MAX_LINE,
    ) -> Answer:
        """Read up to the tagged answer of the oldest outstanding command that someone
        waits for. Untagged responses go to ``on_response`` (when given) or into the
        answer; lines longer than ``max_line`` break the stream."""
        while self._outstanding[0] in self._unawaited:
            self._unawaited.discard(self._outstanding[0])
            self._answer(None, MAX_LINE)
        return self._answer(on_response, max_line)

    def _answer(self, on_response: Callable[[Response], None] | None, max_line: int) -> Answer:
        tag = self._outstanding[0]
        prefix = tag.encode() + b" "
        collected: list[Response] = []
        while True:
            response = self._response(max_line)
            first = response.parts[0]
            if first.startswith(b"* "):
                if first.startswith(b"* BYE"):
                    raise ServerSaidBye(_text(first)[len("* BYE ") :])
                if on_response is not None:
                    on_response(response)
                else:
                    collected.append(response)
                continue
            if first.startswith(prefix):
                self._outstanding.pop(0)
                status, _, text = _text(first[len(prefix) :]).partition(" ")
                return Answer(tag, status.upper(), text, collected)
            if first.startswith(b"+"):
                raise StreamBroken("unexpected continuation request")
            raise StreamBroken(f"unexpected response line: {_text(first)[:200]}")

    def command(self, command: str, *, max_line: int = MAX_LINE) -> Answer:
        """Send one command and read its whole answer."""
        self.send(command)
        return self.answer(max_line=max_line)

    def pipeline(self, commands: Iterable[str], *, depth: int = 32) -> Iterator[Answer]:
        """The answers to ``commands``, in order, with up to ``depth`` of them on the wire
        (a bounded window: a server that writes while we only send could otherwise fill
        both sockets' buffers and wait forever)."""
        source = iter(commands)
        in_flight = 0
        for command in source:
            self.send(command)
            in_flight += 1
            if in_flight == depth:
                yield self.answer()
                in_flight -= 1
        for _ in range(in_flight):
            yield self.answer()

    # -- reading ---------------------------------------------------------------------------

    def _response(self, max_line: int = MAX_LINE) -> Response:
        # Looked up per response, not once: STARTTLS replaces imaplib's file object.
        file = cast(IO[bytes], self._imap.file)
        line = self._line(file, max_line)
        if not line.endswith(b"}\r\n"):
            return Response([line])
        response = Response([line])
        while (found := _LITERAL_AT_END.search(line)) is not None:
            response.literals.append(self._exact(file, int(found.group(1))))
            line = self._line(file, max_line)
            response.parts.append(line)
        return response

    def _line(self, file: IO[bytes], max_line: int = MAX_LINE) -> bytes:
        try:
            line = file.readline(max_line + 1)
        except OSError as exc:  # includes timeouts and TLS errors
            raise StreamBroken(f"reading failed: {exc}") from exc
        if not line:
            raise StreamBroken("the server closed the connection (EOF)")
        if len(line) > max_line:
            raise StreamBroken(f"response line longer than {max_line} bytes")
        if not line.endswith(b"\r\n"):
            raise StreamBroken("response line cut off")
        return line

    def _exact(self, file: IO[bytes], size: int) -> bytes:
        try:
            data = file.read(size)
        except OSError as exc:
            raise StreamBroken(f"reading failed: {exc}") from exc
        if len(data) != size:
            raise StreamBroken(f"connection closed after {len(data)} of {size} literal bytes")
        return data


def fetch_pipelined(
    stream: ImapStream,
    batches: Iterable[Sequence[int]],
    items: str,
    *,
    depth: int = 4,
    opening: tuple[str, Callable[[Answer], None]] | None = None,
) -> Iterator[tuple[Sequence[int], list[Response], Answer]]:
    """``UID FETCH`` each batch with up to ``depth`` commands in flight; yields, in batch
    order, the batch, its FETCH responses and its tagged answer. ``batches`` is read
    lazily, a batch when its command is sent, so it may hand out work as it goes. A
    response is given to the batch whose command it answered, so the server may interleave
    as it likes. ``opening`` is a command (EXAMINE) sent before the first FETCH, in the same
    round trip, and the callback its answer goes to before any batch is read; when the
    callback raises, the FETCH answers are left unread."""
    source = iter(batches)
    in_flight: deque[tuple[int, Sequence[int]]] = deque()
    owner: dict[int, int] = {}
    found: dict[int, list[Response]] = {}
    sent = 0

    def route(response: Response) -> None:
        if not response.is_fetch():
            return  # EXISTS, EXPUNGE, OK [...]: the folder's state is re-read next sync
        uid = _UID.search(response.parts[0])
        n = owner.get(int(uid.group(1))) if uid else None
        if n is not None:
            found.setdefault(n, []).append(response)

    def fill() -> None:
        nonlocal sent
        while len(in_flight) < depth and (batch := next(source, None)) is not None:
            stream.send(f"UID FETCH {uid_set(batch)} {items}")
            owner.update(dict.fromkeys(batch, sent))
            in_flight.append((sent, batch))
            sent += 1

    if opening is not None:
        stream.send(opening[0])
    fill()
    if opening is not None:
        opening[1](stream.answer())
    while in_flight:
        n, batch = in_flight[0]
        answer = stream.answer(on_response=route)
        in_flight.popleft()
        for uid in batch:
            owner.pop(uid, None)
        # The next command goes out before this batch is handed over, so the server keeps
        # streaming while the caller parses and stores.
        fill()
        yield batch, found.pop(n, []), answer


def uid_set(uids: Sequence[int]) -> str:
    """Compact sequence set: 1:5,7,9:12."""
    parts: list[str] = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def _quoted(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r\n")


def parse_uid_set(text: str) -> list[int]:
    """The UIDs of a sequence set without ``*`` (``1:3,7`` -> 1, 2, 3, 7)."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        first, last = int(low), int(high or low)
        out.extend(range(min(first, last), max(first, last) + 1))
    return out
