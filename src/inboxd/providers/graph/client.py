"""HTTP to Microsoft Graph for one account: bearer tokens, paging, throttling, faults.

Every request goes through :meth:`GraphClient.request`, which decides what an answer means:

- 401: the access token is renewed once (by whichever thread saw it first) and the request
  sent again; a second 401 means the grant no longer works (AuthenticationFailed).
- 429, 503, 504: Graph is throttling; wait what ``Retry-After`` says (seconds) and try
  again; other 5xx and dropped connections back off exponentially with jitter.
- 410 (``SyncStateNotFound``): a delta or skip token expired (:class:`SyncStateGone`).
- 404: the item is gone (:class:`ItemGone`).
- anything else 4xx: a request Graph will never take (ProviderConfigError; 403:
  AuthenticationFailed, the consent lacks Mail.ReadWrite).

The client is shared by the threads that fetch message bodies (httpx.Client is thread-safe).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from inboxd.providers.base import AuthenticationFailed, ProviderConfigError, ProviderError
from inboxd.providers.oauth import TokenSource

#: Tries of one request before a fault is reported to the engine (which reconnects).
MAX_TRIES = 6
#: Longest Retry-After waited inline; a longer one ends the attempt (the job retries later).
MAX_INLINE_WAIT = 60.0
#: Statuses that mean "throttled or briefly unavailable": Retry-After is honoured.
THROTTLED = frozenset({429, 503, 504})
#: Every request asks for ids that survive moves between folders.
IMMUTABLE_IDS = 'IdType="ImmutableId"'


class SyncStateGone(Exception):
    """A delta (or skip) token expired: the folder's delta starts again (HTTP 410)."""


class ItemGone(Exception):
    """The message or folder is not there (HTTP 404)."""


class BatchRefused(Exception):
    """The endpoint does not take JSON $batch requests."""


class GraphThrottled(ProviderError):
    """Graph kept throttling (or failing) past the tries allowed."""


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code') or ''}: {error.get('message') or ''}".strip(": ")
    return ""


def retry_after(response: httpx.Response) -> float | None:
    """Graph's Retry-After, in seconds (it sends seconds, never a date)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


class GraphClient:
    """Requests to one Graph endpoint as one account."""

    def __init__(
        self,
        graph_url: str,
        token: TokenSource,
        *,
        timeout: float,
        connections: int = 8,
        sleep: Any = time.sleep,
    ) -> None:
        self.base = graph_url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        self._source = token
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=timeout,
            # The fetching threads and the delta walk beside them: every connection kept.
            limits=httpx.Limits(
                max_connections=connections + 1, max_keepalive_connections=connections + 1
            ),
            headers={"Accept": "application/json"},
        )
        #: requests sent, by method (a sync's cost, for the log and the benchmark)
        self.sent = 0

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def url(self, path: str) -> str:
        """An absolute URL for a path under the endpoint (links Graph gave are kept)."""
        return path if path.startswith(("http://", "https://")) else f"{self.base}{path}"

    def _access(self, *, renew_from: str | None = None) -> str:
        with self._token_lock:
            if self._token is None or (renew_from is not None and self._token == renew_from):
                self._token = self._source(renew=renew_from is not None)
            return self._token

    def authenticate(self) -> None:
        """Get an access token now (so a revoked grant shows before any folder)."""
        self._access()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        prefer: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One request with Graph's fault handling (see the module); a 2xx answer."""
        headers = {"Prefer": ", ".join((IMMUTABLE_IDS, *prefer))}
        renewed = False
        backoff = 0.5
        for attempt in range(1, MAX_TRIES + 1):
            token = self._access()
            headers["Authorization"] = f"Bearer {token}"
            try:
                self.sent += 1
                response = self._http.request(
                    method, self.url(path), params=params, json=json, headers=headers
                )
            except httpx.HTTPError as exc:
                if attempt == MAX_TRIES:
                    raise ProviderError(f"Graph at {self.host} unreachable: {exc}") from exc
                self._sleep(_jitter(backoff))
                backoff *= 2
                continue
            status = response.status_code
            if status < 300:
                return response
            said = _error_code(response) or f"HTTP {status}"
            if status == 401 and not renewed:
                renewed = True
                self._access(renew_from=token)
                continue
            if status == 401:
                raise AuthenticationFailed(f"Graph at {self.host} refused the access token: {said}")
            if status == 403:
                raise AuthenticationFailed(f"Graph at {self.host} refused access: {said}")
            if status == 404:
                raise ItemGone(said)
            if status == 410 or "syncstatenotfound" in said.lower():
                raise SyncStateGone(said)
            if status in THROTTLED or status >= 500:
                wait = retry_after(response) if status in THROTTLED else None
                if attempt == MAX_TRIES or (wait is not None and wait > MAX_INLINE_WAIT):
                    raise GraphThrottled(
                        f"Graph at {self.host} answered {status} ({said})", retry_after=wait
                    )
                self._sleep(wait if wait is not None else _jitter(backoff))
                backoff *= 2
                continue
            raise ProviderConfigError(f"Graph at {self.host} refused {method} {path}: {said}")
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def get_json(
        self, path: str, *, params: Mapping[str, str] | None = None, prefer: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """A GET answered with a JSON object."""
        body = self.request("GET", path, params=params, prefer=prefer).json()
        if not isinstance(body, dict):
            raise ProviderError(f"Graph at {self.host} answered {path} with no object")
        return body

    def batch_values(self, keys: list[str]) -> dict[str, bytes | None]:
        """Bodies (``$value``) of up to 20 messages in one JSON $batch request: the bytes,
        None for a message gone (404); a message whose part failed otherwise (throttled,
        a server error) is left out, for the caller to ask for alone."""
        requests = [
            {"id": str(n), "method": "GET", "url": f"/me/messages/{key}/$value"}
            for n, key in enumerate(keys)
        ]
        try:
            answer = self.request("POST", "/$batch", json={"requests": requests}).json()
        except (ProviderConfigError, ItemGone) as exc:
            raise BatchRefused(str(exc)) from exc
        out: dict[str, bytes | None] = {}
        for part in answer.get("responses") or ():
            try:
                key = keys[int(part["id"])]
            except (KeyError, ValueError, IndexError):
                continue
            status = int(part.get("status") or 0)
            if status == 404:
                out[key] = None
            elif status == 200 and isinstance(part.get("body"), str):
                # Graph sends a non-JSON answer inside a batch base64-encoded.
                try:
                    out[key] = base64.b64decode(part["body"], validate=True)
                except ValueError:
                    continue
        return out

    def pages(
        self, path: str, *, params: Mapping[str, str] | None = None, prefer: tuple[str, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        """The items of a collection, following ``@odata.nextLink`` to the last page."""
        page = self.get_json(path, params=params, prefer=prefer)
        while True:
            yield from page.get("value") or ()
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get_json(str(link), prefer=prefer)


def _jitter(seconds: float) -> float:
    """``seconds`` give or take half, so clients that failed together retry apart."""
    return min(30.0, seconds) * random.uniform(0.5, 1.5)
