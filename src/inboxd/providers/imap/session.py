"""IMAP access: IMAPClient for the conversation, a pipelined stream for bulk FETCH.

IMAPClient handles capabilities, login (password or XOAUTH2), LIST, STATUS, SELECT, SEARCH
and CONDSTORE. Its response parser builds Python objects token by token, which caps bulk
downloads at a few thousand messages per second; sizes, bodies and flags are therefore
fetched through :mod:`inboxd.providers.imap.stream` on the same connection, several UID batches
in flight, and only the few fetch items we need are read from each response.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import re
import socket
import ssl
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.response_parser import parse_response
from imapclient.tls import IMAP4_TLS

from inboxd.mail.dates import parse_date
from inboxd.providers.base import (
    AuthenticationFailed,
    FetchedMessage,
    FolderStatus,
    FolderUnavailable,
    Marks,
    ProviderConfigError,
    ProviderError,
    RemoteFolder,
    ServerClosedConnection,
)
from inboxd.providers.imap.stream import (
    MAX_SEARCH_LINE,
    Answer,
    ImapStream,
    Response,
    ServerSaidBye,
    StreamBroken,
    fetch_pipelined,
    parse_uid_set,
)
from inboxd.providers.oauth import TokenSource

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


@functools.lru_cache(maxsize=32)
def tls_context(verify: bool, ca_pem: str | None = None) -> ssl.SSLContext:
    """The client TLS context: the system's CA certificates, or only those of ``ca_pem``
    (PEM text: a CA, or a self-signed server certificate); no checks without ``verify``.

    Cached: loading the system's CA certificates costs about 60 ms of CPU, which every
    sync and helper paid at each connect."""
    try:
        context = ssl.create_default_context(cadata=ca_pem)
    except ssl.SSLError as exc:
        raise ProviderConfigError(f"the account's CA certificate cannot be used: {exc}") from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _GreetingCapabilities:
    """imaplib asks for CAPABILITY right after the greeting, although many servers (Dovecot,
    Cyrus, Courier) list them in it: a round trip per connection saved. Only the first ask
    is answered from the greeting; after STARTTLS imaplib asks the server again."""

    _greeted = False
    untagged_responses: dict[str, list[Any]]
    capabilities: tuple[str, ...]

    def _get_capabilities(self) -> None:
        listed = self.untagged_responses.get("CAPABILITY") if not self._greeted else None
        self._greeted = True
        if not listed or not isinstance(listed[-1], bytes):
            super()._get_capabilities()  # type: ignore[misc]
            return
        del self.untagged_responses["CAPABILITY"]
        self.capabilities = tuple(listed[-1].decode("ascii", "replace").upper().split())


class _PlainImap(_GreetingCapabilities, IMAP4WithTimeout):  # type: ignore[misc]
    pass


class _TlsImap(_GreetingCapabilities, IMAP4_TLS):  # type: ignore[misc]
    pass


class _Client(imapclient.IMAPClient):  # type: ignore[misc]
    """IMAPClient on the connection classes above."""

    def _create_IMAP4(self) -> imaplib.IMAP4:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TlsImap(self.host, self.port, self.ssl_context, timeout)
        return _PlainImap(self.host, self.port, timeout)


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
    ca_pem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ImapSession:
    """One authenticated IMAP connection; raises ProviderError (retryable) on drops."""

    def __init__(self, config: ImapConfig, secret: str | TokenSource) -> None:
        """``secret``: the password or access token, or (XOAUTH2) a source that gives
        access tokens and renews a rejected one."""
        self.config = config
        self._secret = secret
        self._client: imapclient.IMAPClient | None = None
        self._stream: ImapStream | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.selected: str | None = None

    def credentials(self) -> tuple[ImapConfig, str]:
        """What another process needs to open the same kind of session (an access token
        valid for a while yet, when they come from a source)."""
        secret = self._secret
        return self.config, secret if isinstance(secret, str) else secret()

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and log in; AuthenticationFailed when the server says no."""
        cfg = self.config
        context = tls_context(cfg.verify_tls, cfg.ca_pem) if cfg.security != "none" else None
        try:
            client = _Client(
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
            raise _untrusted(cfg, exc) from exc
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
                assert context is not None
                self._starttls(client, context)
            self._login(client)
            self.capabilities = frozenset(
                c.decode() if isinstance(c, bytes) else str(c) for c in client.capabilities()
            )
            if "CONDSTORE" in self.capabilities:
                # Answered along with the next command: one round trip less per connection.
                with self._streaming() as stream:
                    stream.send_unawaited("ENABLE CONDSTORE")
        except (AuthenticationFailed, ProviderConfigError):
            self.close()
            raise
        except _DROPPED as exc:
            self.close()
            raise ProviderError(f"{cfg.host} dropped the connection: {exc}") from exc

    def _starttls(self, client: imapclient.IMAPClient, context: ssl.SSLContext) -> None:
        cfg = self.config
        try:
            client.starttls(context)
        except ssl.SSLCertVerificationError as exc:
            raise _untrusted(cfg, exc) from exc
        except ssl.SSLError as exc:
            raise ProviderConfigError(
                f"STARTTLS with {cfg.host}:{cfg.port} failed ({exc.reason})"
            ) from exc
        except IMAPClientError as exc:
            raise ProviderConfigError(
                f"{cfg.host}:{cfg.port} does not offer STARTTLS ({exc}); "
                "use --security tls (usually port 993)"
            ) from exc

    def _login(self, client: imapclient.IMAPClient) -> None:
        cfg = self.config
        try:
            if cfg.auth == "xoauth2":
                self._oauth2_login(client)
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

    def _oauth2_login(self, client: imapclient.IMAPClient) -> None:
        source = self._secret
        if isinstance(source, str):
            client.oauth2_login(self.config.username, source)
            return
        try:
            client.oauth2_login(self.config.username, source())
        except LoginError:
            # Revoked early, or the clocks disagree: one new token, then the server decides.
            client.oauth2_login(self.config.username, source(renew=True))

    def close(self) -> None:
        """Log out (best effort) and close the socket."""
        client, self._client = self._client, None
        self._stream = None
        self.selected = None
        if client is None:
            return
        # LOGOUT is sent but its answer not awaited (a round trip at the end of every
        # sync); the session only ever EXAMINEs, so there is nothing left to commit.
        with contextlib.suppress(Exception):
            client._imap.send(b"IBXLOGOUT LOGOUT\r\n")
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
        with self._streaming() as stream:
            answer = stream.command('LIST "" "*"')
        self._check(answer, "LIST")
        return _remote_folders(answer.responses)

    def folders_to_sync(self) -> list[RemoteFolder]:
        """The folders this account syncs: the configured ones, or all but Trash/Spam."""
        return self._wanted(self.list_folders())

    def folders_with_status(
        self,
    ) -> tuple[list[tuple[RemoteFolder, FolderStatus]], dict[str, str]]:
        """The folders to sync, each with its STATUS: one round trip when the server offers
        LIST-STATUS (RFC 5819), else LIST and then every STATUS pipelined. Folders whose
        STATUS the server refused come apart, with its reason."""
        if "LIST-STATUS" not in self.capabilities:
            folders = self.folders_to_sync()
            found, refused = self.statuses([f.name for f in folders])
        else:
            with self._streaming() as stream:
                answer = stream.command(f'LIST "" "*" RETURN (STATUS ({self._status_query()}))')
            self._check(answer, "LIST")
            folders = self._wanted(_remote_folders(answer.responses))
            entries = _status_entries(answer.responses)
            found = {name: _folder_status(items) for name, items in entries}
            # A server leaves out the STATUS of a folder it cannot open (just then).
            missing = [f.name for f in folders if f.name not in found]
            more, refused = self.statuses(missing) if missing else ({}, {})
            found.update(more)
        return [(f, found[f.name]) for f in folders if f.name in found], refused

    def _wanted(self, folders: list[RemoteFolder]) -> list[RemoteFolder]:
        every = [f for f in folders if f.selectable]
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

    def _status_query(self) -> str:
        return "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if self.condstore else "")

    def statuses(self, folders: Sequence[str]) -> tuple[dict[str, FolderStatus], dict[str, str]]:
        """MESSAGES, UIDVALIDITY, UIDNEXT (and HIGHESTMODSEQ with CONDSTORE) of each folder,
        their STATUS commands pipelined: one round trip for the lot, not one per folder;
        and, apart, the folders whose STATUS the server refused, with its reason."""
        items = self._status_query()
        with self._streaming() as stream:
            commands = [f"STATUS {mailbox_arg(name)} ({items})" for name in folders]
            answers = list(stream.pipeline(commands))
        out: dict[str, FolderStatus] = {}
        refused: dict[str, str] = {}
        for name, answer in zip(folders, answers, strict=True):
            if answer.status == "NO":  # this folder only (permissions, a broken index)
                refused[name] = self._refusal(answer)
                continue
            self._check(answer, f"STATUS of {name}")
            values = next((items for _name, items in _status_entries(answer.responses)), {})
            out[name] = _folder_status(values)
        return out, refused

    def examine(self, folder: str) -> FolderStatus:
        """Open a folder read-only (EXAMINE never changes flags)."""
        with self._streaming() as stream:
            answer = stream.command(f"EXAMINE {mailbox_arg(folder)}")
        return self._examined(folder, answer)

    def _examined(self, folder: str, answer: Answer) -> FolderStatus:
        self.selected = None
        if answer.status == "NO":
            raise FolderUnavailable(folder, self._refusal(answer))
        self._check(answer, f"EXAMINE of {folder}")
        self.selected = folder
        values: dict[str, int] = {}
        for response in answer.responses:
            line = response.parts[0]
            if (code := _RESPONSE_CODE.match(line)) is not None:
                values[code.group(1).decode()] = int(code.group(2))
            elif (exists := _EXISTS.match(line)) is not None:
                values["EXISTS"] = int(exists.group(1))
        return FolderStatus(
            messages=values.get("EXISTS", 0),
            uidvalidity=values.get("UIDVALIDITY"),
            uidnext=values.get("UIDNEXT"),
            highestmodseq=values.get("HIGHESTMODSEQ"),
        )

    # -- messages --------------------------------------------------------------------------

    def uid_sizes(self, above: int, *, examine: str | None = None) -> dict[int, int]:
        """RFC822.SIZE of every message with a UID above ``above`` in the selected folder,
        in one command (the UIDs, and the sizes that cut batches by bytes). With
        ``examine``, that folder is opened first, in the same round trip."""
        with self._streaming() as stream:
            if examine is not None:
                stream.send(f"EXAMINE {mailbox_arg(examine)}")
            stream.send(f"UID FETCH {above + 1}:* (UID RFC822.SIZE)")
            opened = stream.answer() if examine is not None else None
            answer = stream.answer()
        if examine is not None and opened is not None:
            self._examined(examine, opened)
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
        return self._search("ALL")

    def uids_above(self, above: int) -> list[int]:
        """UIDs above ``above`` in the selected folder (SEARCH: the server reads no mail)."""
        return [uid for uid in self._search(f"UID {above + 1}:*") if uid > above]

    def _search(self, criteria: str) -> list[int]:
        # ESEARCH answers with ranges (a few bytes for a whole folder) instead of every UID.
        esearch = "ESEARCH" in self.capabilities
        command = f"UID SEARCH RETURN (ALL) {criteria}" if esearch else f"UID SEARCH {criteria}"
        with self._streaming() as stream:
            answer = stream.command(command, max_line=MAX_SEARCH_LINE)
        self._check(answer, "UID SEARCH")
        found: set[int] = set()
        for response in answer.responses:
            line = response.parts[0].rstrip()
            if line.startswith(b"* SEARCH"):
                found.update(int(n) for n in line[len(b"* SEARCH") :].split())
            elif line.startswith(b"* ESEARCH") and (ranges := _ESEARCH_ALL.search(line)):
                found.update(parse_uid_set(ranges.group(1).decode()))
        return sorted(found)

    def fetch_batches(
        self,
        batches: Iterable[Sequence[int]],
        *,
        depth: int = 4,
        examine: str | None = None,
        on_examined: Callable[[FolderStatus], None] | None = None,
    ) -> Generator[FetchedBatch, None, None]:
        """Bodies, flags and dates of each batch of UIDs (BODY.PEEK: never sets \\Seen),
        with up to ``depth`` UID FETCH commands in flight; ``batches`` is read as commands
        go out. With ``examine``, that folder is opened in the same round trip as the first
        FETCH, and ``on_examined`` (which may raise to stop) sees its status before any
        batch is read. Stopping early drops the connection (its answers are still
        arriving)."""
        items = "(UID FLAGS INTERNALDATE BODY.PEEK[])"
        if self.is_gmail:
            items = "(UID FLAGS INTERNALDATE X-GM-MSGID X-GM-LABELS BODY.PEEK[])"
        done = False
        try:
            with self._streaming() as stream:
                opening = None
                if examine is not None:

                    def opened(answer: Answer) -> None:
                        status = self._examined(examine, answer)
                        if on_examined is not None:
                            on_examined(status)

                    opening = (f"EXAMINE {mailbox_arg(examine)}", opened)
                answers = fetch_pipelined(stream, batches, items, depth=depth, opening=opening)
                for uids, responses, answer in answers:
                    messages = [m for m in map(_fetched, responses) if m is not None]
                    yield FetchedBatch(list(uids), messages, None if answer.ok else answer.text)
            done = True
        finally:
            if not done and self._stream is not None and not self._stream.clean:
                self._abandon()

    def noop(self) -> None:
        """Say NOOP: keeps an idle connection alive (and finds out it is not)."""
        with self._streaming() as stream:
            answer = stream.command("NOOP")
        self._check(answer, "NOOP")

    def changed_marks(self, modseq: int) -> dict[int, Marks]:
        """Flags (and Gmail's labels, whose changes move MODSEQ too) of the messages
        changed since ``modseq`` (CONDSTORE)."""
        return self._marks(f"1:* ({self._mark_items()}) (CHANGEDSINCE {modseq})")

    def all_marks(self) -> dict[int, Marks]:
        """Flags (and Gmail's labels) of every message in the selected folder."""
        return self._marks(f"1:* ({self._mark_items()})")

    def _mark_items(self) -> str:
        return "UID FLAGS X-GM-LABELS" if self.is_gmail else "UID FLAGS"

    def _marks(self, fetch: str) -> dict[int, Marks]:
        with self._streaming() as stream:
            answer = stream.command(f"UID FETCH {fetch}")
        self._check(answer, "UID FETCH")
        gmail = self.is_gmail
        out: dict[int, Marks] = {}
        for response in answer.responses:
            head, _body = response.fetch_head_and_body()
            uid, flags = _UID.search(head), _FLAGS.search(head)
            if uid and flags:
                labels = _GM_LABELS.search(head) if gmail else None
                out[int(uid.group(1))] = Marks(
                    _flag_names(flags.group(1)), _labels(labels.group(1)) if labels else None
                )
        return out

    # -- plumbing --------------------------------------------------------------------------

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

    def _refusal(self, answer: Answer) -> str:
        """Why the server would not open a folder (its NO answer)."""
        return f"{self.config.host} would not open it: {answer.text[:200]}"

    def _check(self, answer: Answer, what: str) -> None:
        if not answer.ok:
            raise ProviderError(f"{self.config.host}: {what} failed: {answer.text[:200]}")


def _untrusted(cfg: ImapConfig, exc: ssl.SSLCertVerificationError) -> ProviderConfigError:
    hint = "" if cfg.ca_pem else "; trust its CA with the account's ca_pem setting (--ca-file)"
    return ProviderConfigError(
        f"TLS certificate of {cfg.host} not trusted: {exc.verify_message}{hint}"
    )


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
_RESPONSE_CODE = re.compile(rb"\* OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]")
_EXISTS = re.compile(rb"\* (\d+) EXISTS\b")
_ESEARCH_ALL = re.compile(rb"\bALL ([0-9:,]+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_GM_MSGID = re.compile(rb"\bX-GM-MSGID (\d+)")
_GM_LABELS = re.compile(rb"\bX-GM-LABELS \(((?:[^()\"]|\"(?:[^\"\\]|\\.)*\")*)\)")
_LABEL_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s"]+)')


def mailbox_arg(name: str) -> str:
    """A folder name as a command argument: modified UTF-7, quoted."""
    encoded = bytes(imapclient.imap_utf7.encode(name)).decode("ascii")
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parsed(responses: Sequence[Response], prefix: bytes) -> Iterator[list[Any]]:
    """The data of each response starting with ``prefix``, read by IMAPClient's parser
    (mailbox names may be atoms, quoted strings or literals)."""
    for response in responses:
        if not response.parts[0].startswith(prefix):
            continue
        data: list[Any] = []
        parts = [response.parts[0][len(prefix) :], *response.parts[1:]]
        for text, literal in zip(parts, response.literals, strict=False):
            data.append((text.rstrip(b"\r\n"), literal))
        if rest := parts[-1].rstrip(b"\r\n"):
            data.append(rest)
        yield list(parse_response(data))


def _mailbox_name(name: Any) -> str:
    if isinstance(name, int):  # some servers send numeric names unquoted
        return str(name)
    if isinstance(name, bytes):
        return str(imapclient.imap_utf7.decode(name))  # modified UTF-7
    return str(name)


def _list_entries(responses: Sequence[Response]) -> list[tuple[Any, Any, str]]:
    """(flags, delimiter, name) of each ``* LIST`` response."""
    return [
        (flags, delimiter, _mailbox_name(name))
        for flags, delimiter, name in _parsed(responses, b"* LIST ")
    ]


def _status_entries(responses: Sequence[Response]) -> Iterator[tuple[str, dict[str, int]]]:
    """(mailbox, items) of each ``* STATUS`` response (as LIST-STATUS returns them)."""
    for name, items in _parsed(responses, b"* STATUS "):
        if not isinstance(items, tuple):
            continue
        pairs = zip(items[::2], items[1::2], strict=False)
        values = {_text_atom(k).upper(): v for k, v in pairs if isinstance(v, int)}
        yield _mailbox_name(name), values


def _text_atom(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _remote_folders(responses: Sequence[Response]) -> list[RemoteFolder]:
    found = []
    for flags, delimiter, name in _list_entries(responses):
        names = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
        special = next((f for f in names if f in _SPECIAL_USE), None)
        delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
        found.append(
            RemoteFolder(
                name=name,
                delimiter=delim,
                special_use=special,
                selectable="\\Noselect" not in names and "\\NonExistent" not in names,
            )
        )
    return found


def _folder_status(values: dict[str, int]) -> FolderStatus:
    return FolderStatus(
        messages=values.get("MESSAGES", 0),
        uidvalidity=values.get("UIDVALIDITY"),
        uidnext=values.get("UIDNEXT"),
        highestmodseq=values.get("HIGHESTMODSEQ"),
    )


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
