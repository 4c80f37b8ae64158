"""The command line against a running server (``--server URL``): the REST calls and the
job event stream (SSE) it needs, in one place so any command can grow ``--server``.

The key comes from ``INBOXD_API_KEY`` only: a ``--api-key`` flag would leave it in shell
history and in every process listing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer

from inboxd import __version__
from inboxd.config import load_settings
from inboxd.errors import ConfigError, Forbidden, InboxdError, InvalidRequest, NotFound

#: Far above the server's heartbeat (15 s by default): a stream silent this long is dead.
STREAM_READ_TIMEOUT = 45.0
#: Longest pause between two attempts to reopen a dropped stream (the server's ``retry:``
#: lowers it).
MAX_RECONNECT_DELAY = 3.0

#: ``--server URL`` for any command that can work against a running server.
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="Work against a running server (its API key in INBOXD_API_KEY).",
    ),
]


class RemoteError(InboxdError):
    """The server answered with an error, or could not be reached."""

    default_message = "the server could not be reached"


@dataclass(frozen=True)
class StreamEvent:
    """One job event from the server's stream: its id, type and payload."""

    id: int
    type: str
    payload: dict[str, Any]


class Remote:
    """A client of one inboxd server, authenticated with an API key."""

    def __init__(
        self, server: str, api_key: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self._client = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"inboxd-cli/{__version__}",
            },
            timeout=httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT),
            transport=transport,
        )

    @classmethod
    def connect(cls, server: str) -> Remote:
        """A client of ``server`` with the key in INBOXD_API_KEY (ConfigError without one)."""
        key = load_settings().api_key
        if key is None or not key.get_secret_value():
            raise ConfigError("--server needs an API key in INBOXD_API_KEY")
        if not server.startswith(("http://", "https://")):
            raise InvalidRequest(f"--server wants an http:// or https:// URL, got {server!r}")
        return cls(server, key.get_secret_value())

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- REST --------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; its JSON answer, or the server's error as an InboxdError."""
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RemoteError(f"{self.server}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def get_job(self, job_id: str) -> dict[str, Any]:
        """A job's snapshot, as ``Job.to_dict`` shows it."""
        job: dict[str, Any] = self.request("GET", f"/api/jobs/{job_id}")
        return job

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a job (a running one stops at its next checkpoint)."""
        job: dict[str, Any] = self.request("POST", f"/api/jobs/{job_id}/cancel")
        return job

    def find_account(self, ref: str) -> dict[str, Any]:
        """An account by id, or by its name when exactly one account has it."""
        accounts: list[dict[str, Any]] = self.request("GET", "/api/accounts")
        for account in accounts:
            if account["id"] == ref:
                return account
        named = [a for a in accounts if a["name"] == ref]
        if len(named) > 1:
            raise InvalidRequest(f"several accounts are named {ref!r}; use the id")
        if not named:
            raise NotFound(f"no account {ref!r} on {self.server}")
        return named[0]

    def sync_account(self, account_id: str) -> dict[str, Any]:
        """Queue a sync (or get the one already queued or running): the job's snapshot."""
        accepted = self.request("POST", f"/api/accounts/{account_id}/sync")
        return self.get_job(str(accepted["job_id"]))

    # -- the event stream --------------------------------------------------------------------

    def job_events(
        self, job_id: str, *, after: int, stop: threading.Event
    ) -> Iterator[StreamEvent]:
        """The job's events after ``after``, following the stream until ``stop`` is set;
        a dropped stream is reopened with Last-Event-ID, so none is lost or repeated."""
        delay = 0.2
        ceiling = MAX_RECONNECT_DELAY
        while not stop.is_set():
            try:
                for item in self._stream_once(job_id, after):
                    if isinstance(item, int):
                        ceiling = min(MAX_RECONNECT_DELAY, item / 1000)
                        continue
                    if item.id <= after:
                        continue
                    after = item.id
                    delay = 0.2
                    yield item
                    if stop.is_set():
                        return
            except httpx.TransportError:
                pass  # dropped or silent: reopen after the last event seen
            except _TryLater as later:
                stop.wait(later.seconds)
                continue
            stop.wait(delay)
            delay = min(ceiling, delay * 2)

    def _stream_once(self, job_id: str, after: int) -> Iterator[StreamEvent | int]:
        """One connection's events (and its ``retry:`` hint in ms) until it ends."""
        headers = {"Last-Event-ID": str(after), "Accept": "text/event-stream"}
        with self._client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as resp:
            if resp.status_code == 429:
                raise _TryLater(float(resp.headers.get("retry-after", "5")))
            if resp.status_code >= 400:
                resp.read()
                raise _error(resp)
            yield from _parse_sse(resp.iter_lines())


class _TryLater(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _parse_sse(lines: Iterator[str]) -> Iterator[StreamEvent | int]:
    """SSE messages of job events (heartbeats skipped), and ``retry:`` values."""
    event_id: int | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if event_id is not None and data:
                parsed = json.loads("\n".join(data))
                yield StreamEvent(event_id, str(parsed["type"]), dict(parsed.get("payload") or {}))
            event_id, data = None, []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id" and value.isdigit():
            event_id = int(value)
        elif field == "data":
            data.append(value)
        elif field == "retry" and value.isdigit():
            yield int(value)


def _error(response: httpx.Response) -> InboxdError:
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase or f"HTTP {response.status_code}"
    status = response.status_code
    if status == 404:
        return NotFound(message)
    if status == 403:
        return Forbidden(message)
    if status in (400, 409, 422):
        return InvalidRequest(message)
    return RemoteError(f"{message} (HTTP {status})")
