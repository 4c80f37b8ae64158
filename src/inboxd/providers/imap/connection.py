"""An IMAP connection: connect, TLS, login (password or XOAUTH2), log out.

IMAPClient handles the greeting, capabilities and login; commands after that go through
:class:`inboxd.providers.imap.stream.ImapStream` on the same socket (see
:mod:`inboxd.providers.imap.session`).
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS

from inboxd.providers.base import (
    AuthenticationFailed,
    ProviderConfigError,
    ProviderError,
    ServerClosedConnection,
)
from inboxd.providers.imap.settings import ImapConfig
from inboxd.providers.imap.stream import Answer, ImapStream, ServerSaidBye, StreamBroken
from inboxd.providers.oauth import TokenSource

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


class ImapConnection:
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
        #: the selected folder was opened read-write (SELECT, for changes), not EXAMINEd
        self.writable = False
        #: the selected folder's UIDVALIDITY when it was opened
        self.selected_validity: int | None = None

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
        except UnicodeError as exc:  # a name IDNA cannot encode: no retry will help
            raise ProviderConfigError(
                f"the host name {cfg.host[:80]!r} cannot be used; change the account's host"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise _untrusted(cfg, exc) from exc
        except ssl.SSLError as exc:
            raise ProviderConfigError(
                f"TLS handshake with {cfg.host}:{cfg.port} failed ({exc.reason}); "
                "check the port and security setting"
            ) from exc
        except (OSError, IMAPClientError) as exc:
            # One wording for refused, timed out and unreachable: an account test must not
            # tell open, closed and filtered ports apart (the cause stays in the chain).
            raise ProviderError(
                f"cannot connect to {cfg.host}:{cfg.port} (refused, timed out or unreachable)"
            ) from exc
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
        self.writable = False
        if client is None:
            return
        # LOGOUT is sent but its answer not awaited (a round trip at the end of every
        # sync): every change was committed when its command was answered, and LOGOUT
        # expunges nothing (only CLOSE would; it is never sent).
        with contextlib.suppress(Exception):
            client._imap.send(b"IBXLOGOUT LOGOUT\r\n")
        with contextlib.suppress(Exception):
            client.shutdown()

    def _abandon(self) -> None:
        """Close the socket of a connection that broke (no LOGOUT: nobody is listening)."""
        client, self._client = self._client, None
        self._stream = None
        self.selected = None
        self.writable = False
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
