"""OAuth settings and the token endpoint's answers (a local RFC 6749 server)."""

from __future__ import annotations

import email.utils
import re
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, PermanentError, RetryableError
from inboxd.providers.base import AuthenticationFailed, ProviderConfigError
from inboxd.providers.oauth import (
    PRESETS,
    OAuthClient,
    TokenEndpointUnavailable,
    oauth_settings,
    redeem,
)
from tests.support.oauth_server import OAuthServer


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    made = OAuthServer(client_secret="s3cret", rotate=True)
    yield made
    made.close()


def client_of(server: OAuthServer) -> OAuthClient:
    return OAuthClient(server.url, server.client_id, "mail")


def test_a_provider_fills_in_its_endpoint_and_scope() -> None:
    google = oauth_settings({"provider": "google", "client_id": " abc "})
    assert google == {
        "token_url": PRESETS["google"][0],
        "client_id": "abc",
        "provider": "google",
        "scope": "https://mail.google.com/",
    }
    own = oauth_settings({"token_url": "http://127.0.0.1:8080/token", "client_id": "x"})
    assert own == {"token_url": "http://127.0.0.1:8080/token", "client_id": "x"}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"client_id": "x"}, "token endpoint (or a provider)"),
        ({"provider": "yahoo", "client_id": "x"}, "unknown OAuth provider"),
        ({"token_url": "http://idp.example.com/token", "client_id": "x"}, "https://"),
        ({"token_url": "ftp://127.0.0.1/token", "client_id": "x"}, "https://"),
        ({"provider": "google"}, "client id"),
        ("google", "must be an object"),
    ],
)
def test_bad_oauth_settings_are_refused(value: object, said: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(said)):
        oauth_settings(value)


def test_a_refresh_gives_an_access_token_its_expiry_and_a_rotated_refresh_token(
    server: OAuthServer,
) -> None:
    grant = server.grant("alice")
    answer = redeem(client_of(server), grant, "s3cret", timeout=5)
    assert answer.access_token in server.access_tokens
    assert answer.refresh_token is not None and answer.refresh_token in server.refresh_tokens
    assert server.token_requests[0]["scope"] == "mail"


@pytest.mark.parametrize(
    ("status", "body", "kind", "said"),
    [
        (400, {"error": "invalid_grant"}, AuthenticationFailed, "refresh token rejected"),
        (401, {"error": "invalid_client"}, ProviderConfigError, "OAuth client rejected"),
        (400, {"error": "invalid_scope", "error_description": "no"}, ProviderConfigError, "(no)"),
        (500, {}, TokenEndpointUnavailable, "answered 500: HTTP 500"),
        (200, {"token_type": "Bearer"}, TokenEndpointUnavailable, "unexpected answer"),
        (404, {}, TokenEndpointUnavailable, "unexpected answer"),
    ],
)
def test_each_kind_of_refusal_says_whether_a_person_or_time_can_fix_it(
    server: OAuthServer,
    status: int,
    body: dict[str, str],
    kind: type[Exception],
    said: str,
) -> None:
    server.scripted.append((status, body, {}))
    with pytest.raises(kind, match=re.escape(said)) as caught:
        redeem(client_of(server), server.grant("bob"), "s3cret", timeout=5)
    permanent = kind in (AuthenticationFailed, ProviderConfigError)
    assert isinstance(caught.value, PermanentError if permanent else RetryableError)


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_a_throttling_endpoint_passes_its_retry_after_on(
    server: OAuthServer, as_date: bool
) -> None:
    later = email.utils.format_datetime(utcnow() + timedelta(seconds=30), usegmt=True)
    server.scripted.append(
        (429, {"error": "slow_down"}, {"Retry-After": later if as_date else "12"})
    )
    with pytest.raises(TokenEndpointUnavailable) as caught:
        redeem(client_of(server), server.grant("c"), None, timeout=5)
    wait = caught.value.retry_after
    assert wait is not None and (27 <= wait <= 30 if as_date else wait == 12.0)


def test_an_unreachable_endpoint_is_tried_again_later() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OAuthClient(f"http://127.0.0.1:{port}/token", "id")
    with pytest.raises(TokenEndpointUnavailable, match="unreachable"):
        redeem(client, "rt", None, timeout=2)
