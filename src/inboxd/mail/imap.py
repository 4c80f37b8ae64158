"""IMAP access: IMAPClient for the conversation, a pipelined stream for bulk FETCH.

IMAPClient handles capabilities, login (password or XOAUTH2), LIST, STATUS, SELECT, SEARCH
and CONDSTORE. Its response parser builds Python objects token by token, which caps bulk
downloads at a few thousand messages per second; sizes, bodies and flags are therefore
fetched through :mod:`inboxd.mail.imap_stream` on the same connection, several UID batches
in flight, and only the few fetch items we need are read from each response.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from inboxd.mail.imap_stream import (
    Answer,
    ImapStream,
    Response,
    ServerSaidBye,
    StreamBroken,
    fetch_pipelined,
)
from inboxd.mail.message import parse_date
from inboxd.mail.provider import (
    AuthenticationFailed,
    FetchedMessage,
    FolderStatus,
    ProviderConfigError,
    ProviderError,
    RemoteFolder,
    ServerClosedConnection,
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
        self._stream: ImapStream | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.selected: str | None = None

    def credentials(self) -> tuple[ImapConfig, str]:
        """What another process needs to open the same kind of session."""
        return self.config, self._secret

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
        stream, self._stream = self._stream, None
        self.selected = None
        if client is None:
            return
        if stream is not None and not stream.clean:
            # Answers are still on their way: LOGOUT would be read as one of them.
            with contextlib.suppress(Exception):
                client.shutdown()
            return
        try:
            client.logout()
        except Exception:  # the connection may already be gone
            with contextlib.suppress(Exception):
                client.shutdown()

    def _abandon(self) -> None:
        """Close the socket of a connection that broke (no LOGOUT: nobody is listening)."""
        client, self._client = self._client, None
        self._stream = None
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

    def uid_sizes(self, above: int) -> dict[int, int]:
        """RFC822.SIZE of every message with a UID above ``above`` in the selected folder,
        in one command (the UIDs, and the sizes that cut batches by bytes)."""
        with self._streaming() as stream:
            answer = stream.command(f"UID FETCH {above + 1}:* (UID RFC822.SIZE)")
        self._check(answer, "UID FETCH")
        out: dict[int, int] = {}
        for response in answer.responses:
            uid, size = _UID.search(response.line), _SIZE.search(response.line)
            # "n:*" always matches the highest message even when its UID is below n.
            if uid and size and int(uid.group(1)) > above:
                out[int(uid.group(1))] = int(size.group(1))
        return out

    def all_uids(self) -> list[int]:
        """Every UID in the selected folder."""
        return sorted(self._call(self.client.search, ["ALL"]))

    def uids_above(self, above: int) -> list[int]:
        """UIDs above ``above`` in the selected folder (SEARCH: the server reads no mail)."""
        found = self._call(self.client.search, ["UID", f"{above + 1}:*"])
        return sorted(uid for uid in found if uid > above)

    def fetch_batches(
        self, batches: Iterable[Sequence[int]], *, depth: int = 4
    ) -> Generator[FetchedBatch, None, None]:
        """Bodies, flags and dates of each batch of UIDs (BODY.PEEK: never sets \\Seen),
        with up to ``depth`` UID FETCH commands in flight; ``batches`` is read as commands
        go out. Stopping early drops the connection (its answers are still arriving)."""
        items = "(UID FLAGS INTERNALDATE BODY.PEEK[])"
        if self.is_gmail:
            items = "(UID FLAGS INTERNALDATE X-GM-MSGID X-GM-LABELS BODY.PEEK[])"
        done = False
        try:
            with self._streaming() as stream:
                answers = fetch_pipelined(stream, batches, items, depth=depth)
                for uids, responses, answer in answers:
                    messages = [m for m in map(_fetched, responses) if m is not None]
                    yield FetchedBatch(list(uids), messages, None if answer.ok else answer.text)
            done = True
        finally:
            if not done and self._stream is not None and not self._stream.clean:
                self._abandon()

    def changed_flags(self, modseq: int) -> dict[int, tuple[str, ...]]:
        """FLAGS of messages changed since ``modseq`` (CONDSTORE)."""
        return self._flags(f"UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq})")

    def all_flags(self) -> dict[int, tuple[str, ...]]:
        """FLAGS of every message in the selected folder."""
        return self._flags("UID FETCH 1:* (UID FLAGS)")

    def _flags(self, command: str) -> dict[int, tuple[str, ...]]:
        with self._streaming() as stream:
            answer = stream.command(command)
        self._check(answer, "UID FETCH")
        out: dict[int, tuple[str, ...]] = {}
        for response in answer.responses:
            head, _body = response.fetch_head_and_body()
            uid, flags = _UID.search(head), _FLAGS.search(head)
            if uid and flags:
                out[int(uid.group(1))] = _flag_names(flags.group(1))
        return out

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _DROPPED as exc:
            self._abandon()
            raise ProviderError(f"{self.config.host} dropped the connection: {exc}") from exc
        except IMAPClientError as exc:
            raise ProviderError(f"{self.config.host} answered with an error: {exc}") from exc

    @contextmanager
    def _streaming(self) -> Iterator[ImapStream]:
        """The command stream on the live connection; a broken stream drops it."""
        imap = self.client._imap
        if self._stream is None:
            self._stream = ImapStream(imap)
        try:
            yield self._stream
        except ServerSaidBye as exc:
            self._abandon()
            reason = f"{self.config.host} closed the connection: {exc}"
            raise ServerClosedConnection(reason) from exc
        except StreamBroken as exc:
            self._abandon()
            raise ProviderError(f"{self.config.host} dropped the connection: {exc}") from exc

    def _check(self, answer: Answer, what: str) -> None:
        if not answer.ok:
            raise ProviderError(f"{self.config.host}: {what} failed: {answer.text[:200]}")


@dataclass(frozen=True)
class FetchedBatch:
    """The answer to one UID FETCH of bodies: what came back, and the server's complaint
    if it answered NO or BAD (some messages may then be missing)."""

    uids: list[int]
    messages: list[FetchedMessage]
    failed: str | None = None


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


def _fetched(response: Response) -> FetchedMessage | None:
    """A FETCH response with a body as a FetchedMessage; None for other FETCH responses
    (an unsolicited flag update, or a body the server answered as NIL)."""
    head, body = response.fetch_head_and_body()
    if body is None:
        return None
    message = _message(head, body)
    return message if message.uid is not None else None


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
        flags=_flag_names(flags.group(1)) if flags else (),
        internal_date=_internal_date(date.group(1)) if date else None,
        gm_msgid=int(gm_id.group(1)) if gm_id else None,
        labels=_labels(labels.group(1)) if labels else (),
    )


def _flag_names(raw: bytes) -> tuple[str, ...]:
    return tuple(f.decode("utf-8", "replace") for f in raw.split())


def _labels(raw: bytes) -> tuple[str, ...]:
    out = []
    for quoted, bare in _LABEL_TOKEN.findall(raw):
        token = quoted.replace(b'\\"', b'"').replace(b"\\\\", b"\\") if quoted else bare
        out.append(imapclient.imap_utf7.decode(token) if b"&" in token else token.decode())
    return tuple(out)


def _internal_date(raw: bytes) -> datetime | None:
    # INTERNALDATE is "17-Jul-1996 02:44:25 -0700": an RFC 5322 date once the dashes go.
    return parse_date(raw.decode("ascii", "replace").replace("-", " ", 2))


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
