"""The guarded client against local servers: every hop checked, connections only to checked
addresses, bodies never read, caps and cache honoured. Only loopback is ever connected to."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.link_server import Connections, FakeDNS, Harness, LinkServer, Route


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(FakeDNS(), Connections())
    yield h
    for client in h.clients:
        client.close()


@pytest.fixture
def server() -> Iterator[LinkServer]:
    with LinkServer() as s:
        yield s


REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://10.1.2.3/",
    "http://192.168.0.1:8080/admin",
    "http://172.16.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.1/",
    "http://0x7f.1/",
    "http://localhost/",
    "http://app.localhost:3000/",
    "https://user:secret@10.0.0.1/",
    "http://intranet.example/",
    "http://mixed.example/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_private_addresses_are_refused_without_a_connection(harness: Harness, url: str) -> None:
    harness.dns.set("intranet.example", ["10.0.0.7"])
    # One public and one private answer: refused as a whole, not narrowed to the public one.
    harness.dns.set("mixed.example", ["93.184.216.34", "10.0.0.1"])
    client = harness.client(allow=())
    result = client.resolve(url)
    assert result.reason == "private address", result
    assert result.hops == () and result.final_url is None
    assert harness.connections.made == []
    assert client.resolve_many([url])[0].reason == "private address"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.example/a", "scheme not allowed"),
        ("file:///etc/passwd", "scheme not allowed"),
        ("javascript:alert(1)", "scheme not allowed"),
        ("gopher://127.0.0.1:70/", "scheme not allowed"),
        ("http:///nohost", "bad URL"),
        ("http://[::1/", "bad URL"),
        ("http://0251.0376.0251.0376/", "bad URL"),  # httpx refuses this octal spelling
        ("http://nowhere.example/", "name not found"),
    ],
)
def test_other_links_are_refused(harness: Harness, url: str, reason: str) -> None:
    assert harness.client().resolve(url).reason == reason
    assert harness.connections.made == []


def test_loopback_is_reached_only_when_listed(harness: Harness, server: LinkServer) -> None:
    server.routes["/page"] = Route()
    assert harness.client(allow=()).resolve(server.url("/page")).reason == "private address"
    assert server.seen == []
    for allow in (["127.0.0.1"], ["127.0.0.0/8"], ["::ffff:127.0.0.1/128"]):
        result = harness.client(allow=allow).resolve(server.url("/page"))
        assert result.ok and result.status == 200, (allow, result)
    harness.dns.set("news.example", ["127.0.0.1"])
    by_name = harness.client(allow=["news.example"]).resolve(server.url("/page", "news.example"))
    assert by_name.ok and by_name.hops[0].address == "127.0.0.1"
    assert server.count("/page") == 4


def test_a_redirect_to_a_private_address_is_refused_at_that_hop(
    harness: Harness, server: LinkServer
) -> None:
    harness.dns.set("news.example", ["127.0.0.1"])
    harness.dns.set("internal.example", ["192.168.1.10"])
    targets = {
        "/to-private": "http://10.0.0.5/x",
        "/to-loopback-2": f"http://127.0.0.2:{server.port}/x",
        "/to-internal": "http://internal.example/x",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-decimal": "http://2130706434/",
    }
    for path, location in targets.items():
        server.routes[path] = Route(status=302, headers={"Location": location})
    client = harness.client()
    for path, location in targets.items():
        result = client.resolve(server.url(path, "news.example"))
        assert result.reason == "private address", (path, result)
        assert [hop.status for hop in result.hops] == [302]
        assert result.hops[0].location == location.replace(":80/", "/")
    assert {address for address, _ in harness.connections.made} == {"127.0.0.1"}
    assert len(server.seen) == len(targets)


def test_the_connection_goes_to_the_address_that_was_checked(
    harness: Harness, server: LinkServer
) -> None:
    # DNS rebinding: the name answers the allowed address to the check, then another one.
    # The request must still go to the checked address: the name is resolved once per hop.
    harness.dns.set("rebind.example", ["127.0.0.1"], ["127.0.0.2"])
    server.routes["/page"] = Route()
    result = harness.client().resolve(server.url("/page", "rebind.example"))
    assert result.ok, result
    assert harness.dns.calls == ["rebind.example"]
    assert harness.connections.made == [("127.0.0.1", server.port)]
    assert server.seen[0].headers["host"] == f"rebind.example:{server.port}"


def test_every_hop_is_resolved_and_checked_again(harness: Harness, server: LinkServer) -> None:
    # The same name on the next hop now answers a refused address: that hop is refused.
    harness.dns.set("rebind.example", ["127.0.0.1"], ["127.0.0.2"])
    server.routes["/a"] = Route(status=301, headers={"Location": "/b"})
    server.routes["/b"] = Route()
    result = harness.client().resolve(server.url("/a", "rebind.example"))
    assert result.reason == "private address"
    assert "127.0.0.2" in result.detail
    assert harness.dns.calls == ["rebind.example", "rebind.example"]
    assert server.count("/b") == 0


def test_redirect_chains_stop_at_the_hop_limit(harness: Harness, server: LinkServer) -> None:
    for n in range(10):
        server.routes[f"/r{n}"] = Route(status=302, headers={"Location": f"/r{n + 1}"})
    server.routes["/r3"] = Route(status=307, headers={"Location": "/end"})
    server.routes["/end"] = Route()
    client = harness.client(fetch_max_hops=5)
    ok = client.resolve(server.url("/r0"))  # four redirects, five requests: allowed
    assert ok.ok and ok.final_url == server.url("/end")
    assert [hop.status for hop in ok.hops] == [302, 302, 302, 307, 200]
    server.routes["/r3"] = Route(status=302, headers={"Location": "/r4"})
    server.seen.clear()
    too_many = client.resolve(server.url("/r0"))
    assert too_many.reason == "too many hops"
    assert len(too_many.hops) == 5 and len(server.seen) == 5


def test_loops_are_detected(harness: Harness, server: LinkServer) -> None:
    server.routes["/a"] = Route(status=302, headers={"Location": "/b"})
    server.routes["/b"] = Route(status=302, headers={"Location": "/a#again"})
    result = harness.client().resolve(server.url("/a"))
    assert result.reason == "loop"
    assert len(server.seen) == 2


def test_a_hanging_server_times_out(harness: Harness, server: LinkServer) -> None:
    server.routes["/hang"] = Route(hang=True)
    client = harness.client(fetch_timeout_seconds=0.5)
    started = time.monotonic()
    result = client.resolve(server.url("/hang"))
    assert result.reason == "timeout"
    assert time.monotonic() - started < 2


def test_a_hanging_name_lookup_times_out(harness: Harness) -> None:
    harness.dns.set("slow.example", ["127.0.0.1"])
    harness.dns.delay = 3
    started = time.monotonic()
    result = harness.client(fetch_timeout_seconds=0.3).resolve("http://slow.example/")
    assert result.reason == "timeout" and "looking up" in result.detail
    assert time.monotonic() - started < 1.5
    assert harness.connections.made == []


def test_head_refused_then_get_closed_after_the_headers(
    harness: Harness, server: LinkServer
) -> None:
    # The page never ends: reading its body would hang the client until the timeout.
    server.routes["/endless"] = Route(head_status=405, stream_forever=True)
    client = harness.client(fetch_timeout_seconds=5)
    started = time.monotonic()
    result = client.resolve(server.url("/endless"))
    assert time.monotonic() - started < 2
    assert result.ok and result.status == 200
    assert [(hop.method, hop.status) for hop in result.hops] == [("GET", 200)]
    assert [s.method for s in server.seen] == ["HEAD", "GET"]
    assert server.stream_ended.wait(5), "the client kept the endless body's connection open"


def test_http_errors_are_reported(harness: Harness, server: LinkServer) -> None:
    server.routes["/gone"] = Route(status=410)
    server.routes["/broken"] = Route(status=500)
    client = harness.client()
    gone = client.resolve(server.url("/gone"))
    assert (gone.reason, gone.status, gone.detail) == ("HTTP error", 410, "HTTP 410")
    assert client.resolve(server.url("/broken")).reason == "HTTP error"
    assert [s.method for s in server.seen] == ["HEAD", "HEAD"]


def test_no_cookies_no_credentials_a_plain_user_agent(harness: Harness, server: LinkServer) -> None:
    server.routes["/set"] = Route(
        status=302, headers={"Location": "/next", "Set-Cookie": "sid=tracking; Path=/"}
    )
    server.routes["/next"] = Route()
    client = harness.client(fetch_user_agent="inboxd-test/1")
    port = server.port
    result = client.resolve(f"http://alice:secret@127.0.0.1:{port}/set")
    assert result.ok and "alice" not in (result.final_url or "")
    for seen in server.seen:
        assert "cookie" not in seen.headers and "authorization" not in seen.headers
        assert seen.headers["user-agent"] == "inboxd-test/1"


def test_a_link_is_fetched_once_while_cached(harness: Harness, server: LinkServer) -> None:
    now = [1000.0]
    server.routes["/story"] = Route(delay=0.2)
    client = harness.client(fetch_cache_seconds=60, clock=lambda: now[0])
    spellings = [
        server.url("/story"),
        server.url("/story#comments"),
        server.url("/story").replace("http://", "HTTP://"),
        server.url("/story").replace("http://", "http://bob@"),
    ]
    first = client.resolve(spellings[0])
    assert not first.cached
    others = client.resolve_many(spellings[1:] * 10)
    assert all(r.cached and r.ok and r.final_url == first.final_url for r in others)
    assert server.count("/story") == 1
    now[0] += 61
    assert not client.resolve(spellings[0]).cached
    assert server.count("/story") == 2


def test_concurrent_resolutions_of_one_link_share_one_fetch(
    harness: Harness, server: LinkServer
) -> None:
    server.routes["/shared"] = Route(delay=0.3)
    client = harness.client(fetch_cache_seconds=60)
    results = client.resolve_many([server.url("/shared")] * 20)
    assert all(r.ok for r in results)
    assert server.count("/shared") == 1
    assert client.cache_stats == {"hits": 19, "misses": 1}


def test_per_host_cap(harness: Harness, server: LinkServer) -> None:
    for n in range(6):
        server.routes[f"/p{n}"] = Route(delay=0.2)
    client = harness.client(fetch_per_host=2, fetch_concurrency=8)
    started = time.monotonic()
    results = client.resolve_many([server.url(f"/p{n}") for n in range(6)])
    assert all(r.ok for r in results)
    assert server.max_in_flight == 2
    assert time.monotonic() - started >= 0.55  # three rounds of two


def test_global_cap(harness: Harness, server: LinkServer) -> None:
    names = ["a.example", "b.example", "c.example", "d.example"]
    for name in names:
        harness.dns.set(name, ["127.0.0.1"])
    for n in range(8):
        server.routes[f"/q{n}"] = Route(delay=0.2)
    client = harness.client(fetch_per_host=2, fetch_concurrency=3)
    urls = [server.url(f"/q{n}", names[n % 4]) for n in range(8)]
    results = client.resolve_many(urls)
    assert all(r.ok for r in results)
    assert server.max_in_flight == 3


def test_caps_hold_across_threads_sharing_a_client(harness: Harness, server: LinkServer) -> None:
    for n in range(8):
        server.routes[f"/t{n}"] = Route(delay=0.15)
    client = harness.client(fetch_per_host=2, fetch_concurrency=8)
    threads = [
        threading.Thread(target=client.resolve, args=(server.url(f"/t{n}"),)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.count("/t0") == 1 and server.max_in_flight == 2


def test_the_title_is_read_from_a_capped_body(harness: Harness, server: LinkServer) -> None:
    page = b"<html><head><title>Weekly &amp; more\n news</title></head>" + b"x" * 100_000
    server.routes["/article"] = Route(headers={"Content-Type": "text/html"}, body=page)
    server.routes["/endless"] = Route(stream_forever=True)
    client = harness.client()
    result = client.resolve(server.url("/article"), max_body=4096)
    assert result.title == "Weekly & more news"
    assert [s.method for s in server.seen] == ["GET"]
    started = time.monotonic()
    endless = client.resolve(server.url("/endless"), max_body=4096)
    assert endless.ok and endless.title is None
    assert time.monotonic() - started < 2


def test_ipv6_loopback_when_listed(harness: Harness) -> None:
    try:
        server = LinkServer(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        server.routes["/six"] = Route()
        assert harness.client(allow=()).resolve(server.url("/six")).reason == "private address"
        result = harness.client(allow=["::1"]).resolve(server.url("/six"))
        assert result.ok and result.hops[0].address == "::1"
        assert harness.connections.made == [("::1", server.port)]


def test_a_server_trickling_its_headers_cannot_stretch_the_hop(harness: Harness) -> None:
    # Each byte arrives well within the socket timeout; the hop's deadline still ends it.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        client = harness.client(fetch_timeout_seconds=0.6)
        started = time.monotonic()
        result = client.resolve(f"http://127.0.0.1:{listener.getsockname()[1]}/")
        assert result.reason == "timeout"
        assert time.monotonic() - started < 1.2
    finally:
        stop.set()
        listener.close()
        thread.join(2)
