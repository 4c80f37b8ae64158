"""The one HTTP client for URLs taken from messages: every hop checked, nothing followed blindly.

A link in a message is chosen by its sender. Following it naively lets the sender make
inboxd reach the machine's own services or network (through the link or any redirect),
learn when the user clicks, or act for the user (a GET on an unsubscribe link). So:
- each hop's host is resolved once, all its addresses checked (``addresses.AddressPolicy``),
  and the connection made to that checked address (``transport.PinnedTransport``);
- redirects are followed by hand, at most ``fetch_max_hops`` requests, loops detected;
- HEAD first; a GET only when HEAD is refused, closed right after the headers;
- no cookies, no credentials, a plain User-Agent, no proxies from the environment;
- caps per host and in total, and a cache so a shared link is requested once.
"""

from __future__ import annotations

import concurrent.futures
import html
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import httpx

from inboxd.config import Settings
from inboxd.errors import ConfigError, InboxdError
from inboxd.net.addresses import AddressPolicy, IPAddress, literal_address
from inboxd.net.cache import TTLCache
from inboxd.net.transport import DEADLINE, PIN, Connector, PinnedTransport, connect
from inboxd.net.urls import BadURL, cache_key, parse_url

log = logging.getLogger(__name__)

# (host, port) -> the host's addresses as text. Injectable: tests answer from a mapping.
Resolver = Callable[[str, int], Sequence[str]]

# Reasons, in the words the newsletter and clean-up results show.
PRIVATE = "private address"
NOT_HTTPS = "not https"
SCHEME = "scheme not allowed"
BAD_URL = "bad URL"
TOO_MANY_HOPS = "too many hops"
LOOP = "loop"
TIMEOUT = "timeout"
HTTP_ERROR = "HTTP error"
NAME_NOT_FOUND = "name not found"
CONNECTION_FAILED = "connection failed"
TLS_ERROR = "TLS error"
NETWORK_ERROR = "network error"
_TRANSIENT = frozenset({TIMEOUT, CONNECTION_FAILED, NETWORK_ERROR, NAME_NOT_FOUND})

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Answers to HEAD that often mean "this server does not do HEAD" rather than "no such page".
HEAD_REFUSED = frozenset({400, 403, 405, 501})
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


class Refused(InboxdError):
    """The URL was not requested, or its request did not get an answer."""

    code = "refused"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed (timeouts, connection failures)."""
        return self.reason in _TRANSIENT


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (IDNA-encoded host, TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True)
class Hop:
    """One request of a resolution: where, how, and what came back."""

    url: str
    method: str
    status: int
    address: str
    location: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "url": self.url,
            "method": self.method,
            "status": self.status,
            "address": self.address,
            "location": self.location,
        }


@dataclass(frozen=True)
class Resolution:
    """Where a link leads: its hops, the final URL and status, or why it was refused."""

    url: str
    final_url: str | None = None
    status: int | None = None
    hops: tuple[Hop, ...] = ()
    reason: str | None = None
    detail: str = ""
    title: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        """Whether the link led to a page that answered without an error."""
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "hops": [hop.to_json() for hop in self.hops],
            "reason": self.reason,
            "detail": self.detail,
            "title": self.title,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class PostResult:
    """The answer to an RFC 8058 one-click POST (a redirect is reported, never followed)."""

    url: str
    status: int
    address: str
    location: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the list's server accepted the unsubscription (a 2xx answer)."""
        return 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "url": self.url,
            "status": self.status,
            "ok": self.ok,
            "address": self.address,
            "location": self.location,
        }


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str
    address: str


class _Slots:
    """Per-host and global caps on requests in flight (threads wait for a slot)."""

    def __init__(self, per_host: int, total: int) -> None:
        self._per_host = per_host
        self._total = threading.BoundedSemaphore(total)
        self._lock = threading.Lock()
        self._hosts: dict[str, tuple[threading.BoundedSemaphore, int]] = {}

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            sem, users = self._hosts.get(host, (threading.BoundedSemaphore(self._per_host), 0))
            self._hosts[host] = (sem, users + 1)
        try:
            # The host's slot first: a request waiting on a busy host holds no global slot.
            with sem, self._total:
                yield
        finally:
            with self._lock:
                sem, users = self._hosts[host]
                if users == 1:
                    del self._hosts[host]
                else:
                    self._hosts[host] = (sem, users - 1)


class GuardedClient:
    """Resolves links and posts one-click unsubscribes under the rules of the module docstring.

    Thread-safe: one client may serve many threads; its caps and cache are shared by them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connector: Connector | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = AddressPolicy.from_entries(settings.fetch_allow_networks)
        self._timeout = settings.fetch_timeout_seconds
        self._max_hops = settings.fetch_max_hops
        self._concurrency = settings.fetch_concurrency
        self._headers = {
            "User-Agent": settings.fetch_user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }
        self._resolver = resolver or system_resolver
        self._transport = PinnedTransport(
            ssl_context or _ssl_context(settings), connector or connect
        )
        self._slots = _Slots(settings.fetch_per_host, settings.fetch_concurrency)
        self._cache: TTLCache[tuple[str, int], Resolution] = TTLCache(
            settings.fetch_cache_seconds, clock
        )
        # getaddrinfo has no timeout of its own: it runs here so a hop can stop waiting for it.
        self._lookups = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.fetch_concurrency, thread_name_prefix="inboxd-lookup"
        )

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the look-up threads (a look-up still hanging is abandoned)."""
        self._lookups.shutdown(wait=False, cancel_futures=True)

    @property
    def cache_stats(self) -> dict[str, int]:
        """Cache hits and misses since the client was made."""
        return {"hits": self._cache.hits, "misses": self._cache.misses}

    # -- resolving links -------------------------------------------------------------------

    def resolve(self, url: str, *, max_body: int = 0) -> Resolution:
        """Follow ``url``'s redirects (each hop checked) to its final URL, or say why not.

        With ``max_body`` > 0 each hop is a GET and up to that many bytes of a final HTML
        page are read for its ``<title>``; otherwise HEAD, and a GET only if HEAD is refused.
        """
        try:
            start = parse_url(url)
        except BadURL as exc:
            return Resolution(url=url, reason=BAD_URL, detail=str(exc))
        found, hit = self._cache.get_or_compute(
            (cache_key(start), max_body), lambda: self._resolve(url, start, max_body)
        )
        return replace(found, url=url, cached=True) if hit else found

    def resolve_many(self, urls: Sequence[str], *, max_body: int = 0) -> list[Resolution]:
        """``resolve`` each URL, ``fetch_concurrency`` at a time; results in the given order."""
        if not urls:
            return []
        workers = min(len(urls), self._concurrency)
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="inboxd-fetch"
        ) as pool:
            return list(pool.map(lambda u: self.resolve(u, max_body=max_body), urls))

    def _resolve(self, original: str, start: httpx.URL, max_body: int) -> Resolution:
        hops: list[Hop] = []
        current = start
        seen = {cache_key(start)}
        for _ in range(self._max_hops):
            try:
                target = self._target(current, https_only=False)
                method, response, title = self._hop(target, max_body)
            except Refused as refused:
                log.debug("link %s refused: %s", current, refused)
                return Resolution(
                    url=original, hops=tuple(hops), reason=refused.reason, detail=refused.detail
                )
            status = response.status_code
            location = response.headers.get("location")
            if status in REDIRECTS and location:
                try:
                    following = parse_url(location, base=current)
                except BadURL as exc:
                    hops.append(Hop(str(current), method, status, target.address, location))
                    return Resolution(
                        url=original, hops=tuple(hops), reason=BAD_URL, detail=str(exc)
                    )
                hops.append(Hop(str(current), method, status, target.address, str(following)))
                key = cache_key(following)
                if key in seen:
                    return Resolution(
                        url=original, hops=tuple(hops), reason=LOOP, detail=f"back to {key}"
                    )
                seen.add(key)
                current = following
                continue
            hops.append(Hop(str(current), method, status, target.address))
            failed = status >= 400
            return Resolution(
                url=original,
                final_url=str(current),
                status=status,
                hops=tuple(hops),
                reason=HTTP_ERROR if failed else None,
                detail=f"HTTP {status}" if failed else "",
                title=title,
            )
        return Resolution(
            url=original,
            hops=tuple(hops),
            reason=TOO_MANY_HOPS,
            detail=f"still redirecting after {self._max_hops} requests",
        )

    def _hop(self, target: _Target, max_body: int) -> tuple[str, httpx.Response, str | None]:
        """One hop's request: HEAD (GET when refused, or when a title is wanted)."""
        with self._slots.slot(target.host):
            if max_body <= 0:
                response = self._send("HEAD", target)
                response.close()
                if response.status_code not in HEAD_REFUSED:
                    return "HEAD", response, None
            response = self._send("GET", target)
            try:
                title = None
                if max_body > 0 and 200 <= response.status_code < 300:
                    title = _read_title(response, max_body)
            finally:
                # Closing before the body is read drops the connection: a page that streams
                # forever costs the headers and nothing more.
                response.close()
            return "GET", response, title

    # -- one-click unsubscribe -------------------------------------------------------------

    def post_one_click(self, url: str) -> PostResult:
        """RFC 8058 one-click unsubscribe: one POST of ``List-Unsubscribe=One-Click`` to an
        https URL whose address passes the checks; a redirect is reported, never followed.

        Raises ``Refused`` when the URL is not requested or no answer comes back.
        """
        try:
            parsed = parse_url(url)
        except BadURL as exc:
            raise Refused(BAD_URL, str(exc)) from exc
        target = self._target(parsed, https_only=True)
        with self._slots.slot(target.host):
            response = self._send(
                "POST",
                target,
                content=ONE_CLICK_BODY,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response.close()
        location = response.headers.get("location") if 300 <= response.status_code < 400 else None
        # The host only: the URL's token identifies the user to the list.
        log.info("one-click unsubscribe at %s: HTTP %s", target.host, response.status_code)
        return PostResult(str(target.url), response.status_code, target.address, location)

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> PostResult:
        """One POST of ``content`` to an http(s) URL whose address passes the checks (a
        webhook's); a redirect is reported, never followed, and the answer's body unread.

        Raises ``Refused`` when the URL is not requested or no answer comes back.
        """
        try:
            parsed = parse_url(url)
        except BadURL as exc:
            raise Refused(BAD_URL, str(exc)) from exc
        target = self._target(parsed, https_only=False)
        with self._slots.slot(target.host):
            response = self._send("POST", target, content=content, headers=headers)
            response.close()
        location = response.headers.get("location") if 300 <= response.status_code < 400 else None
        return PostResult(str(target.url), response.status_code, target.address, location)

    # -- every hop's checks ----------------------------------------------------------------

    def _target(self, url: httpx.URL, *, https_only: bool) -> _Target:
        """Where a request for ``url`` may go: its checked address, or ``Refused``."""
        scheme = url.scheme
        if https_only and scheme != "https":
            raise Refused(NOT_HTTPS, f"{scheme or 'no'} scheme")
        if scheme not in ("http", "https"):
            raise Refused(SCHEME, f"{scheme or 'no'} scheme")
        host = url.raw_host.decode("ascii")
        if not host:
            raise Refused(BAD_URL, "no host")
        why = self._policy.host_refusal(host)
        if why:
            raise Refused(PRIVATE, why)
        literal = literal_address(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            addresses = self._lookup(host, url.port or (443 if scheme == "https" else 80))
        # Every address is checked, not just the one used: a name answering one public and
        # one private address is someone's trick.
        for address in addresses:
            why = self._policy.address_refusal(address, host=host)
            if why:
                raise Refused(PRIVATE, f"{host}: {why}" if literal is None else why)
        if literal is not None and literal.version == 4 and str(literal) != host:
            # An odd IPv4 spelling (0x7f.1) is sent, and capped, as the address it stands for.
            url = url.copy_with(host=str(literal))
            host = str(literal)
        return _Target(url=url, host=host.lower(), address=str(addresses[0]))

    def _lookup(self, host: str, port: int) -> list[IPAddress]:
        """The host's addresses, asked once per hop, within the hop's timeout."""
        future = self._lookups.submit(self._resolver, host, port)
        try:
            answers = future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise Refused(TIMEOUT, f"looking up {host}") from exc
        except (OSError, UnicodeError) as exc:
            raise Refused(NAME_NOT_FOUND, f"{host}: {exc}") from exc
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer))
            except ValueError as exc:
                raise Refused(NAME_NOT_FOUND, f"{host}: odd answer {answer!r}") from exc
        if not addresses:
            raise Refused(NAME_NOT_FOUND, host)
        return addresses

    def _send(
        self,
        method: str,
        target: _Target,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request to the target's checked address; the response's body is unread."""
        request = httpx.Request(
            method,
            target.url,
            headers={**self._headers, **(headers or {})},
            content=content,
            extensions={PIN: target.address, DEADLINE: time.monotonic() + self._timeout},
        )
        try:
            return self._transport.handle_request(request)
        except httpx.TimeoutException as exc:
            raise Refused(TIMEOUT, f"{target.url.host} after {self._timeout:g} s") from exc
        except httpx.ConnectError as exc:
            if _is_tls(exc):
                raise Refused(TLS_ERROR, f"{target.url.host}: {exc}") from exc
            raise Refused(CONNECTION_FAILED, f"{target.address}: {exc}") from exc
        except httpx.TransportError as exc:
            raise Refused(NETWORK_ERROR, f"{target.url.host}: {exc}") from exc


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """The usual trust store, plus the operator's extra CAs (``fetch_ca_file``)."""
    context = httpx.create_ssl_context()
    if settings.fetch_ca_file is not None:
        try:
            context.load_verify_locations(cafile=settings.fetch_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"fetch_ca_file {settings.fetch_ca_file}: {exc}") from exc
    return context


def _is_tls(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _read_title(response: httpx.Response, max_body: int) -> str | None:
    """The page's <title> from at most ``max_body`` bytes of it (HTML, not compressed)."""
    content_type = response.headers.get("content-type", "")
    if "html" not in content_type.lower() or response.headers.get("content-encoding"):
        return None
    head = b""
    try:
        for chunk in response.iter_raw():
            head += chunk
            if len(head) >= max_body or b"</title" in head.lower():
                break
    except httpx.TransportError:
        pass
    match = _TITLE.search(head[:max_body])
    if not match:
        return None
    charset = _CHARSET.search(content_type)
    try:
        text = match.group(1).decode(charset.group(1) if charset else "utf-8", "replace")
    except LookupError:
        text = match.group(1).decode("utf-8", "replace")
    title = " ".join(html.unescape(text).split())
    return title or None
