"""IMAP access: IMAPClient for the conversation, a lean path for bulk body FETCH.

IMAPClient handles capabilities, login (password or XOAUTH2), LIST, STATUS, SELECT, SEARCH
and CONDSTORE. Its response parser builds Python objects token by token, which caps bulk
downloads at a few thousand messages per second; bodies are therefore fetched through the
underlying imaplib connection in UID batches and only the few fetch items we need are read
from each response line.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from inboxd.mail.provider import (
    AuthenticationFailed,
    FetchedMessage,
    FolderStatus,
    ProviderConfigError,
    ProviderError,
    RemoteFolder,
)

Security = Literal["tls", "starttls", "none"]

#: Folders skipped unless asked for: by special-use flag, then by common names.
SKIPPED_SPECIAL_USE = {"\\Trash", "\\Junk"}
SKIPPED_NAMES = {
    "trash",
    "spam",
    "junk",
    "deleted items",
    "deleted messages",
    "[gmail]/trash",
    "[gmail]/spam",
    "junk e-mail",
    "bin",
    "[gmail]/bin",
}

_DROPPED = (imaplib.IMAP4.abort, OSError, EOFError, socket.timeout, ssl.SSLError)


@dataclass(frozen=True)
class ImapConfig:
    """Connection settings of an IMAP account (no secrets)."""

    host: str
    port: int
    security: Security
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    folders: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    timeout: float = 60.0
    verify_tls: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class ImapSession:
    """One authenticated IMAP connection; raises ProviderError (retryable) on drops."""

    def __init__(self, config: ImapConfig, secret: str) -> None:
        self.config = config
        self._secret = secret
        self._client: imapclient.IMAPClient | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.selected: str | None = None

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and log in; AuthenticationFailed when the server says no."""
        cfg = self.config
        context = ssl.create_default_context()
        if not cfg.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            client = imapclient.IMAPClient(
                cfg.host,
                port=cfg.port,
                use_uid=True,
                ssl=cfg.security == "tls",
                ssl_context=context,
                timeout=cfg.timeout,
            )
        except socket.gaierror as exc:
            raise ProviderError(f"cannot resolve {cfg.host}: {exc.strerror}") from exc
        except ConnectionRefusedError as exc:
            raise ProviderError(f"connection to {cfg.host}:{cfg.port} refused") from exc
        except ssl.SSLCertVerificationError as exc:
            raise ProviderConfigError(
                f"TLS certificate of {cfg.host} not trusted: {exc.verify_message}"
            ) from exc
        except ssl.SSLError as exc:
            raise ProviderConfigError(
                f"TLS handshake with {cfg.host}:{cfg.port} failed ({exc.reason}); "
                "check the port and security setting"
            ) from exc
        except (OSError, IMAPClientError) as exc:
            raise ProviderError(f"cannot connect to {cfg.host}:{cfg.port}: {exc}") from exc
        self._client = client
        with contextlib.suppress(OSError):
            # IMAPClient writes some commands and their CRLF separately; with Nagle on, the
            # CRLF waits for the server's delayed ACK (40 ms on Linux) or a round trip.
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if cfg.security == "starttls":
                client.starttls(context)
            self._login(client)
            self.capabilities = frozenset(
                c.decode() if isinstance(c, bytes) else str(c) for c in client.capabilities()
            )
            if "CONDSTORE" in self.capabilities:
                client.enable("CONDSTORE")
        except (AuthenticationFailed, ProviderConfigError):
            self.close()
            raise
        except _DROPPED as exc:
            self.close()
            raise ProviderError(f"{cfg.host} dropped the connection: {exc}") from exc

    def _login(self, client: imapclient.IMAPClient) -> None:
        cfg = self.config
        try:
            if cfg.auth == "xoauth2":
                client.oauth2_login(cfg.username, self._secret)
            else:
                client.login(cfg.username, self._secret)
        except LoginError as exc:
            raise AuthenticationFailed(
                f"password rejected by {cfg.host} for {cfg.username}"
                if cfg.auth == "password"
                else f"OAuth token rejected by {cfg.host} for {cfg.username}"
            ) from exc
        except IMAPClientError as exc:
            if "STARTTLS" in str(exc) or "LOGINDISABLED" in str(exc):
                raise ProviderConfigError(
                    f"{cfg.host} refuses plain-text login; use --security starttls or tls"
                ) from exc
            raise AuthenticationFailed(f"login to {cfg.host} failed: {exc}") from exc

    def close(self) -> None:
        """Log out (best effort) and close the socket."""
        client, self._client = self._client, None
        self.selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # the connection may already be gone
            with contextlib.suppress(Exception):
                client.shutdown()

    def _abandon(self) -> None:
        """Close the socket of a connection that broke (no LOGOUT: nobody is listening)."""
        client, self._client = self._client, None
        self.selected = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    @property
    def client(self) -> imapclient.IMAPClient:
        """The live IMAPClient (connects lazily)."""
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    @property
    def is_gmail(self) -> bool:
        """True when the server speaks Gmail's extensions."""
        return "X-GM-EXT-1" in self.capabilities

    @property
    def condstore(self) -> bool:
        """True when the server supports CONDSTORE (MODSEQ per message)."""
        return "CONDSTORE" in self.capabilities

    # -- folders ---------------------------------------------------------------------------

    def list_folders(self) -> list[RemoteFolder]:
        """Every folder on the server."""
        found = []
        for flags, delimiter, name in self._call(self.client.list_folders):
            names = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
            special = next((f for f in names if f in _SPECIAL_USE), None)
            delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
            found.append(
                RemoteFolder(
                    name=str(name),
                    delimiter=delim,
                    special_use=special,
                    selectable="\\Noselect" not in names and "\\NonExistent" not in names,
                )
            )
        return found

    def folders_to_sync(self) -> list[RemoteFolder]:
        """The folders this account syncs: the configured ones, or all but Trash/Spam."""
        every = [f for f in self.list_folders() if f.selectable]
        if self.config.folders:
            wanted = set(self.config.folders)
            missing = wanted - {f.name for f in every}
            if missing:
                raise ProviderConfigError(f"no such folder on server: {sorted(missing)[0]}")
            return [f for f in every if f.name in wanted]
        excluded = {e.lower() for e in self.config.exclude}
        return [
            f
            for f in every
            if f.special_use not in SKIPPED_SPECIAL_USE
            and f.name.lower() not in SKIPPED_NAMES
            and f.name.lower() not in excluded
        ]

    def status(self, folder: str) -> FolderStatus:
        """MESSAGES, UIDVALIDITY, UIDNEXT (and HIGHESTMODSEQ with CONDSTORE) of a folder."""
        items = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"]
        if self.condstore:
            items.append(b"HIGHESTMODSEQ")
        raw = self._call(self.client.folder_status, folder, items)
        return FolderStatus(
            messages=int(raw.get(b"MESSAGES", 0)),
            uidvalidity=_opt_int(raw.get(b"UIDVALIDITY")),
            uidnext=_opt_int(raw.get(b"UIDNEXT")),
            highestmodseq=_opt_int(raw.get(b"HIGHESTMODSEQ")),
        )

    def examine(self, folder: str) -> FolderStatus:
        """Open a folder read-only (EXAMINE never changes flags)."""
        info = self._call(self.client.select_folder, folder, readonly=True)
        self.selected = folder
        return FolderStatus(
            messages=int(info.get(b"EXISTS", 0)),
            uidvalidity=_opt_int(info.get(b"UIDVALIDITY")),
            uidnext=_opt_int(info.get(b"UIDNEXT")),
            highestmodseq=_opt_int(info.get(b"HIGHESTMODSEQ")),
        )

    # -- messages --------------------------------------------------------------------------

    def uids_above(self, uid: int) -> list[int]:
        """UIDs greater than ``uid`` in the selected folder, ascending."""
        found = self._call(self.client.search, ["UID", f"{uid + 1}:*"])
        # "n:*" always matches the highest message even when its UID is below n.
        return sorted(u for u in found if u > uid)

    def all_uids(self) -> list[int]:
        """Every UID in the selected folder."""
        return sorted(self._call(self.client.search, ["ALL"]))

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID (cheap: lets batches be cut by bytes)."""
        out: dict[int, int] = {}
        for chunk in _chunks(uids, 5000):
            _, data = self._raw_uid("FETCH", _uid_set(chunk), "(UID RFC822.SIZE)")
            for line in data:
                if isinstance(line, bytes):
                    uid, size = _UID.search(line), _SIZE.search(line)
                    if uid and size:
                        out[int(uid.group(1))] = int(size.group(1))
        return out

    def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """Bodies, flags and dates of ``uids`` in one UID FETCH (BODY.PEEK: never sets
        \\Seen)."""
        items = "UID FLAGS INTERNALDATE BODY.PEEK[]"
        if self.is_gmail:
            items += " X-GM-MSGID X-GM-LABELS"
        _, data = self._raw_uid("FETCH", _uid_set(uids), f"({items})")
        return parse_fetch_response(data)

    def changed_flags(self, modseq: int) -> dict[int, tuple[str, ...]]:
        """FLAGS of messages changed since ``modseq`` (CONDSTORE)."""
        _, data = self._raw_uid("FETCH", "1:*", "(UID FLAGS)", f"(CHANGEDSINCE {modseq})")
        return _flags_by_uid(data)

    def all_flags(self) -> dict[int, tuple[str, ...]]:
        """FLAGS of every message in the selected folder."""
        _, data = self._raw_uid("FETCH", "1:*", "(UID FLAGS)")
        return _flags_by_uid(data)

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _DROPPED as exc:
            self._abandon()
            raise ProviderError(f"{self.config.host} dropped the connection: {exc}") from exc
        except IMAPClientError as exc:
            raise ProviderError(f"{self.config.host} answered with an error: {exc}") from exc

    def _raw_uid(self, command: str, *args: str) -> tuple[str, list[Any]]:
        imap = self.client._imap
        try:
            typ, data = imap.uid(command, *args)
        except _DROPPED as exc:
            self._abandon()
            raise ProviderError(f"{self.config.host} dropped the connection: {exc}") from exc
        except imaplib.IMAP4.error as exc:
            raise ProviderError(f"{self.config.host} answered with an error: {exc}") from exc
        if typ != "OK":
            raise ProviderError(f"{self.config.host}: UID {command} failed: {data!r:.200}")
        return typ, data


_SPECIAL_USE = {
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
    "\\Important",
}
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_GM_MSGID = re.compile(rb"\bX-GM-MSGID (\d+)")
_GM_LABELS = re.compile(rb"\bX-GM-LABELS \(((?:[^()\"]|\"(?:[^\"\\]|\\.)*\")*)\)")
_LABEL_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s"]+)')


def parse_fetch_response(data: Sequence[Any]) -> list[FetchedMessage]:
    """Turn imaplib's FETCH answer (``(head, literal)`` tuples with trailing bytes) into
    FetchedMessages; unsolicited FETCH lines without a body are skipped."""
    found: list[FetchedMessage] = []
    head: bytes | None = None
    body = b""
    for item in data:
        if isinstance(item, tuple):
            if head is not None:
                found.append(_message(head, body))
            head, body = item[0], item[1]
        elif isinstance(item, bytes) and head is not None and not item.startswith(b"* "):
            # Items after the literal (some servers send FLAGS last) end with ")".
            head += b" " + item
    if head is not None:
        found.append(_message(head, body))
    return [m for m in found if m.uid is not None]


def _message(head: bytes, body: bytes) -> FetchedMessage:
    uid = _UID.search(head)
    flags = _FLAGS.search(head)
    date = _DATE.search(head)
    gm_id = _GM_MSGID.search(head)
    labels = _GM_LABELS.search(head)
    return FetchedMessage(
        remote_key=uid.group(1).decode() if uid else "",
        uid=int(uid.group(1)) if uid else None,
        raw=body,
        flags=tuple(f.decode("utf-8", "replace") for f in flags.group(1).split()) if flags else (),
        internal_date=_internal_date(date.group(1)) if date else None,
        gm_msgid=int(gm_id.group(1)) if gm_id else None,
        labels=_labels(labels.group(1)) if labels else (),
    )


def _flags_by_uid(data: Sequence[Any]) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    for line in data:
        if isinstance(line, tuple):
            line = line[0]
        if not isinstance(line, bytes):
            continue
        uid, flags = _UID.search(line), _FLAGS.search(line)
        if uid and flags:
            out[int(uid.group(1))] = tuple(
                f.decode("utf-8", "replace") for f in flags.group(1).split()
            )
    return out


def _labels(raw: bytes) -> tuple[str, ...]:
    out = []
    for quoted, bare in _LABEL_TOKEN.findall(raw):
        token = quoted.replace(b'\\"', b'"').replace(b"\\\\", b"\\") if quoted else bare
        out.append(imapclient.imap_utf7.decode(token) if b"&" in token else token.decode())
    return tuple(out)


def _internal_date(raw: bytes) -> datetime | None:
    try:
        # INTERNALDATE is "17-Jul-1996 02:44:25 -0700"; email.utils reads that shape too.
        return parsedate_to_datetime(raw.decode().replace("-", " ", 2))
    except (TypeError, ValueError, IndexError):
        return None


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _uid_set(uids: Sequence[int]) -> str:
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
