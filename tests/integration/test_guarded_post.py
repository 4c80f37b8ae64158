"""RFC 8058 one-click unsubscribe and HTTPS through the guarded client, on loopback only."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inboxd.errors import ConfigError
from inboxd.net import Refused
from tests.support.link_server import (
    Connections,
    FakeDNS,
    Harness,
    LinkServer,
    LocalTLS,
    Route,
    tls_contexts,
)

NAME = "lists.example"


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(FakeDNS(), Connections())
    h.dns.set(NAME, ["127.0.0.1"])
    yield h
    for client in h.clients:
        client.close()


@pytest.fixture(scope="module")
def tls() -> LocalTLS:
    return tls_contexts([NAME])


@pytest.fixture
def sni_seen(tls: LocalTLS) -> Iterator[list[str | None]]:
    names: list[str | None] = []

    def record(sock: ssl.SSLObject, name: str, ctx: ssl.SSLContext) -> None:
        names.append(name)

    tls.server.sni_callback = record
    yield names
    tls.server.sni_callback = None


@pytest.fixture
def https(tls: LocalTLS) -> Iterator[LinkServer]:
    with LinkServer(tls=tls.server) as server:
        yield server


def test_one_click_posts_exactly_the_rfc_8058_request(
    harness: Harness,
    https: LinkServer,
    tls: LocalTLS,
    sni_seen: list[str | None],
) -> None:
    https.routes["/unsub"] = Route(status=200, body=b"bye")
    client = harness.client(ssl_context=tls.client, fetch_user_agent="inboxd-test/1")
    result = client.post_one_click(https.url("/unsub?u=42&l=7", NAME))
    assert result.ok and result.status == 200 and result.location is None
    assert result.address == "127.0.0.1"
    assert [(s.method, s.path) for s in https.seen] == [("POST", "/unsub?u=42&l=7")]
    seen = https.seen[0]
    assert seen.body == b"List-Unsubscribe=One-Click"
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.headers["content-length"] == "26"
    assert seen.headers["host"] == f"{NAME}:{https.port}"
    assert seen.headers["user-agent"] == "inboxd-test/1"
    assert "cookie" not in seen.headers and "authorization" not in seen.headers
    assert sni_seen == [NAME]  # TLS was for the name, though the socket went to the address
    assert harness.connections.made == [("127.0.0.1", https.port)]


def test_one_click_drops_credentials_from_the_link(
    harness: Harness, https: LinkServer, tls: LocalTLS
) -> None:
    https.routes["/unsub"] = Route()
    client = harness.client(ssl_context=tls.client)
    result = client.post_one_click(https.url("/unsub", f"mallory:pw@{NAME}"))
    assert result.ok and "mallory" not in result.url
    assert "authorization" not in https.seen[0].headers


def test_one_click_never_follows_a_redirect(
    harness: Harness, https: LinkServer, tls: LocalTLS
) -> None:
    https.routes["/unsub"] = Route(status=302, headers={"Location": "/confirm"})
    https.routes["/confirm"] = Route()
    client = harness.client(ssl_context=tls.client)
    result = client.post_one_click(https.url("/unsub", NAME))
    assert not result.ok and result.status == 302 and result.location == "/confirm"
    assert [s.method for s in https.seen] == ["POST"]
    assert https.count("/confirm") == 0


def test_one_click_is_https_only(harness: Harness, tls: LocalTLS) -> None:
    with LinkServer() as plain:
        plain.routes["/unsub"] = Route()
        client = harness.client(ssl_context=tls.client)
        for url in (plain.url("/unsub", NAME), "ftp://lists.example/unsub", "mailto:u@x.example"):
            with pytest.raises(Refused) as refused:
                client.post_one_click(url)
            assert refused.value.reason == "not https"
        assert plain.seen == [] and harness.connections.made == []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/unsub",
        "https://169.254.169.254/unsub",
        "https://[::ffff:192.168.0.1]/unsub",
        "https://2130706433/unsub",
        "https://internal.example/unsub",
        "https://localhost/unsub",
    ],
)
def test_one_click_refuses_private_addresses(harness: Harness, url: str) -> None:
    harness.dns.set("internal.example", ["172.20.0.3"])
    with pytest.raises(Refused) as refused:
        harness.client(allow=()).post_one_click(url)
    assert refused.value.reason == "private address" and not refused.value.retryable
    assert harness.connections.made == []


def test_one_click_to_loopback_needs_the_allow_list(
    harness: Harness, https: LinkServer, tls: LocalTLS
) -> None:
    https.routes["/unsub"] = Route()
    with pytest.raises(Refused, match="private address"):
        harness.client(allow=(), ssl_context=tls.client).post_one_click(https.url("/unsub", NAME))
    assert https.seen == []


def test_one_click_timeout_is_retryable(harness: Harness, https: LinkServer, tls: LocalTLS) -> None:
    https.routes["/unsub"] = Route(hang=True)
    client = harness.client(ssl_context=tls.client, fetch_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        client.post_one_click(https.url("/unsub", NAME))
    assert refused.value.reason == "timeout" and refused.value.retryable
    assert time.monotonic() - started < 2


def test_the_certificate_must_match_the_name(
    harness: Harness, https: LinkServer, tls: LocalTLS
) -> None:
    https.routes["/page"] = Route()
    harness.dns.set("other.example", ["127.0.0.1"])
    client = harness.client(ssl_context=tls.client)
    assert client.resolve(https.url("/page", NAME)).ok
    wrong = client.resolve(https.url("/page", "other.example"))
    assert wrong.reason == "TLS error", wrong
    with pytest.raises(Refused, match="TLS error"):
        client.post_one_click(https.url("/page", "other.example"))
    # A client that trusts the system store only does not trust the test CA.
    untrusted = harness.client().resolve(https.url("/page", NAME))
    assert untrusted.reason == "TLS error"
    assert https.count("/page") == 1


def test_https_redirect_to_http_private_is_refused(
    harness: Harness, https: LinkServer, tls: LocalTLS
) -> None:
    https.routes["/r"] = Route(status=301, headers={"Location": "http://192.168.0.1/admin"})
    result = harness.client(ssl_context=tls.client).resolve(https.url("/r", NAME))
    assert result.reason == "private address"
    assert [hop.status for hop in result.hops] == [301]


def test_extra_cas_come_from_the_settings(
    harness: Harness, https: LinkServer, tls: LocalTLS, tmp_path: Path
) -> None:
    https.routes["/unsub"] = Route()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls.ca_pem)
    client = harness.client(fetch_ca_file=ca_file)
    assert client.post_one_click(https.url("/unsub", NAME)).ok
    with pytest.raises(ConfigError, match="fetch_ca_file"):
        harness.client(fetch_ca_file=tmp_path / "missing.pem")


def test_one_click_to_an_allowed_ip_literal_with_its_certificate(
    harness: Harness, tmp_path: Path
) -> None:
    # How a clean-up test reaches its local list server: an address, no name to resolve.
    ip_tls = tls_contexts(["127.0.0.1"])
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ip_tls.ca_pem)
    with LinkServer(tls=ip_tls.server) as server:
        server.routes["/u"] = Route(status=202)
        result = harness.client(fetch_ca_file=ca_file).post_one_click(server.url("/u"))
        assert result.ok and result.status == 202 and result.address == "127.0.0.1"
        assert harness.dns.calls == []
        assert server.seen[0].body == b"List-Unsubscribe=One-Click"
