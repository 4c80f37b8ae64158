"""An IMAP account's settings: their check, the connection config made from them, and the
secret its login sends. Light on purpose: the web process checks settings through this
module without importing the IMAP stack."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from inboxd.errors import InvalidField, InvalidRequest
from inboxd.providers.base import AuthenticationFailed, ProviderAccount, SecretStore
from inboxd.providers.oauth import OAuthClient, RefreshingToken, TokenSource, oauth_settings

Security = Literal["tls", "starttls", "none"]

#: Longest CA bundle accepted (a handful of certificates).
MAX_CA_PEM = 64 * 1024


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


def imap_config(account: ProviderAccount, timeout: float) -> ImapConfig:
    """Connection settings of an IMAP account."""
    s = account.settings
    return ImapConfig(
        host=s["host"],
        port=int(s["port"]),
        security=s["security"],
        username=s["username"],
        auth=s.get("auth", "password"),
        folders=tuple(s.get("folders") or ()),
        exclude=tuple(s.get("exclude") or ()),
        timeout=timeout,
        verify_tls=bool(s.get("verify_tls", True)),
        ca_pem=s.get("ca_pem") or None,
    )


def login_secret(
    secrets: SecretStore, account: ProviderAccount, timeout: float
) -> str | TokenSource:
    """What an IMAP login of ``account`` sends: its password, its stored access token,
    or (with OAuth settings) access tokens renewed from its refresh token."""
    oauth = account.settings.get("oauth")
    if account.settings.get("auth") == "xoauth2" and oauth:
        return RefreshingToken(secrets, account.id, OAuthClient.from_settings(oauth), timeout)
    secret = secrets.secret(account.id)
    value = secret.get("password") or secret.get("token")
    if not value:
        raise AuthenticationFailed(f"no password stored for account {account.name!r}")
    return str(value)


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Check an IMAP account's settings; returns them normalised."""
    host = check_host(str(settings.get("host") or "").strip())
    username = str(settings.get("username") or "").strip()
    security = settings.get("security", "tls")
    if not username or len(username) > MAX_USERNAME:
        raise InvalidField(f"settings.username: 1 to {MAX_USERNAME} characters, please")
    if security not in ("tls", "starttls", "none"):
        raise InvalidField("settings.security: tls, starttls or none")
    port = _port(settings.get("port"), 993 if security == "tls" else 143)
    auth = settings.get("auth", "password")
    if auth not in ("password", "xoauth2"):
        raise InvalidRequest("auth must be password or xoauth2")
    clean = {
        "host": host,
        "port": port,
        "security": security,
        "username": username,
        "auth": auth,
        "folders": list(settings.get("folders") or []),
        "exclude": list(settings.get("exclude") or []),
        "verify_tls": bool(settings.get("verify_tls", True)),
        "ca_pem": _ca_pem(settings.get("ca_pem")),
    }
    if settings.get("oauth"):
        if auth != "xoauth2":
            raise InvalidRequest("oauth settings are for an account with auth xoauth2")
        clean["oauth"] = oauth_settings(settings["oauth"])
    return clean


#: Longest user name a server is asked to take.
MAX_USERNAME = 320
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def check_host(host: str) -> str:
    """A host name (international names allowed) or an IP address, else InvalidField; what
    a connection would choke on later (a 100,000-character name) is refused here."""
    if not host:
        raise InvalidField("settings.host: an IMAP account needs a host")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host.strip("[]")))
    try:
        ascii_name = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidField("settings.host: not a valid host name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidField("settings.host: not a valid host name")
    return host.rstrip(".")


def _port(value: Any, default: int) -> int:
    if isinstance(value, bool):
        raise InvalidField("settings.port: a number from 1 to 65535")
    try:
        port = int(value or default)
    except (TypeError, ValueError) as exc:
        raise InvalidField("settings.port: a number from 1 to 65535") from exc
    if not 0 < port < 65536:
        raise InvalidField("settings.port: a number from 1 to 65535")
    return port


def _ca_pem(value: Any) -> str | None:
    """PEM text of at least one certificate, or None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) > MAX_CA_PEM or "-----BEGIN CERTIFICATE-----" not in text:
        raise InvalidRequest("ca_pem must be PEM certificates (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        raise InvalidRequest(f"ca_pem holds no usable certificate: {exc.reason}") from exc
    return text + "\n"
