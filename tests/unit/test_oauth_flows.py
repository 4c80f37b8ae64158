"""The pure parts of the sign-in flows: PKCE, the redirect's checks, ID tokens, endpoints."""

from __future__ import annotations

import re

import pytest

from inboxd.config import Settings
from inboxd.errors import InvalidRequest
from inboxd.providers.oauth_flows import (
    SignInFailed,
    code_from_redirect,
    google_endpoints,
    id_token_username,
    microsoft_endpoints,
    pkce_pair,
    s256,
)
from tests.support.oauth_servers import id_token


def test_s256_is_rfc_7636s_example() -> None:
    # RFC 7636, appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_verifiers_are_fresh_and_of_the_allowed_alphabet() -> None:
    first, challenge = pkce_pair()
    second, _ = pkce_pair()
    assert first != second and challenge == s256(first)
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", first)


def test_a_redirect_gives_its_code_only_with_the_state_sent() -> None:
    assert code_from_redirect({"code": "c", "state": "s"}, "s") == "c"
    with pytest.raises(SignInFailed, match="state does not match"):
        code_from_redirect({"code": "c", "state": "other"}, "s")
    with pytest.raises(SignInFailed, match="state does not match"):
        code_from_redirect({"code": "c"}, "s")
    with pytest.raises(SignInFailed, match="refused: access_denied"):
        code_from_redirect({"error": "access_denied", "state": "s"}, "s")
    with pytest.raises(SignInFailed, match="no code"):
        code_from_redirect({"state": "s"}, "s")


def test_the_id_token_names_who_signed_in() -> None:
    assert id_token_username(id_token("aud", "pat@example.test")) == "pat@example.test"
    assert id_token_username("not.a-token") is None
    assert id_token_username("a.!!!.c") is None
    assert id_token_username(None) is None


def test_microsoft_endpoints_come_from_the_authority_and_tenant() -> None:
    settings = Settings(graph_authority="http://127.0.0.1:9/", microsoft_client_id="app")
    found = microsoft_endpoints(settings, tenant="contoso.example")
    assert found.token_url == "http://127.0.0.1:9/contoso.example/oauth2/v2.0/token"
    assert found.device_url == "http://127.0.0.1:9/contoso.example/oauth2/v2.0/devicecode"
    assert "openid" in found.scope.split() and "offline_access" in found.scope.split()
    # A refresh asks for the mail scope only (and keeps offline_access, as the preset does).
    assert found.account_oauth()["scope"] == (
        "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
    )
    with pytest.raises(InvalidRequest, match="not a tenant"):
        microsoft_endpoints(settings, tenant="a/../b")


def test_a_sign_in_without_a_client_id_says_which_setting_is_missing() -> None:
    with pytest.raises(InvalidRequest, match="INBOXD_GOOGLE_CLIENT_ID"):
        google_endpoints(Settings(google_client_id=None))
    with pytest.raises(InvalidRequest, match="INBOXD_MICROSOFT_CLIENT_ID"):
        microsoft_endpoints(Settings(microsoft_client_id=None))
