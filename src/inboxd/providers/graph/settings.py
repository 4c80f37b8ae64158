"""A Graph account's settings: their check, and the token source made from them. Light on
purpose: the web process checks settings through this module without importing httpx."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from inboxd.errors import InvalidField
from inboxd.providers.base import ProviderAccount, SecretStore
from inboxd.providers.oauth import OAuthClient, RefreshingToken, endpoint_allowed

#: What a Graph account's refresh token is redeemed for (mail read and write, and a new
#: refresh token each time).
SCOPE = "https://graph.microsoft.com/Mail.ReadWrite offline_access"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
#: Messages per delta page asked for (Prefer: odata.maxpagesize); Graph may send fewer.
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")


@dataclass(frozen=True)
class GraphConfig:
    """Where and as whom a Graph account syncs (no secrets)."""

    client_id: str
    tenant: str
    authority: str
    graph_url: str
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def token_url(self) -> str:
        """The identity platform's token endpoint for the account's tenant."""
        return f"{self.authority}/{self.tenant}/oauth2/v2.0/token"

    @property
    def oauth(self) -> OAuthClient:
        """The OAuth client its refresh token belongs to."""
        return OAuthClient(self.token_url, self.client_id, SCOPE)


def graph_config(account: ProviderAccount) -> GraphConfig:
    """The config of a Graph account (its settings were checked when stored)."""
    s = account.settings
    return GraphConfig(
        client_id=s["client_id"],
        tenant=s.get("tenant") or "common",
        authority=s.get("authority") or DEFAULT_AUTHORITY,
        graph_url=s.get("graph_url") or DEFAULT_GRAPH_URL,
        page_size=int(s.get("page_size") or DEFAULT_PAGE_SIZE),
    )


def token_source(secrets: SecretStore, account: ProviderAccount, timeout: float) -> RefreshingToken:
    """Access tokens of ``account``, renewed from its refresh token (rotated ones stored)."""
    return RefreshingToken(secrets, account.id, graph_config(account).oauth, timeout)


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Check a Graph account's settings: ``client_id``, optional ``tenant`` (default
    "common"), ``authority`` and ``graph_url`` (https, or http on a loopback address),
    ``page_size``; returns them normalised."""
    client_id = str(settings.get("client_id") or "").strip()
    if not client_id or len(client_id) > 200:
        raise InvalidField("settings.client_id: a Graph account needs its app's client id")
    tenant = str(settings.get("tenant") or "common").strip()
    if not _TENANT.match(tenant):
        raise InvalidField("settings.tenant: a tenant id, domain, common or organizations")
    authority = _url(settings.get("authority") or DEFAULT_AUTHORITY, "authority")
    graph_url = _url(settings.get("graph_url") or DEFAULT_GRAPH_URL, "graph_url")
    clean: dict[str, Any] = {
        "client_id": client_id,
        "tenant": tenant,
        "authority": authority,
        "graph_url": graph_url,
    }
    if settings.get("page_size") is not None:
        size = settings["page_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_PAGE_SIZE:
            raise InvalidField(f"settings.page_size: a number from 1 to {MAX_PAGE_SIZE}")
        clean["page_size"] = size
    return clean


def _url(value: Any, name: str) -> str:
    text = str(value).strip().rstrip("/")
    if len(text) > 2000:
        raise InvalidField(f"settings.{name}: at most 2,000 characters")
    if endpoint_allowed(text):
        return text
    raise InvalidField(f"settings.{name}: an https:// URL (or http:// on a loopback address)")
