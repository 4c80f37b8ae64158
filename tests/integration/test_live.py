"""Live channels of a real ``inboxd serve``, on SQLite and PostgreSQL: SSE (``/api/events``,
``/api/jobs/{id}/events``) and the WebSocket ``/ws/status``: protocol, replay, no mixing of
jobs or users, limits, heartbeats, and a shutdown that open streams do not hold up."""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from inboxd.db.engine import writing
from inboxd.jobs import events
from inboxd.jobs.model import EventType
from inboxd.store.users import Users
from tests.services.postgres import PostgresServer
from tests.support.apps import wait_for
from tests.support.server import ServerProcess, start_server

HEARTBEAT_SECONDS = 1.0
MAX_LIVE = 5
ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_LIVE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    "INBOXD_LIVE_MAX_CONNECTIONS": str(MAX_LIVE),
    "INBOXD_OWNER_MAX_RUNNING": "4",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
    "INBOXD_ALLOWED_ORIGINS": "https://dash.example",
}
EVENT_FIELDS = {"id", "job_id", "kind", "account_id", "type", "payload", "created_at"}
PROGRESS_FIELDS = {"step", "current", "total", "percent", "message", "rate", "eta_seconds"}
RUN_FIELDS = {
    "id",
    "job_id",
    "kind",
    "account_id",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "duration_seconds",
    "result",
    "error",
}
FINISHED = ("completed", "failed", "cancelled")


# -- SSE client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One SSE message: its ``id:`` (None for heartbeats), ``event:`` and parsed ``data:``."""

    id: int | None
    event: str
    data: Any

    @property
    def job_id(self) -> str | None:
        """The job of a job message."""
        return self.data.get("job_id") if isinstance(self.data, dict) else None

    @property
    def status(self) -> str | None:
        """The status a ``job_status`` message announces."""
        if self.event != "job_status":
            return None
        status: str = self.data["payload"]["status"]
        return status


class SseStream:
    """One SSE connection, read line by line in a thread of its own."""

    def __init__(
        self,
        server: ServerProcess,
        path: str,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        # The read timeout is far above the heartbeat period: a silent stream fails.
        self._client = httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(10.0))
        request = self._client.build_request("GET", path, headers=sent, params=params)
        self.response = self._client.send(request, stream=True)
        self.status = self.response.status_code
        self.messages: list[Message] = []
        self.retry: int | None = None
        self.first_line: str | None = None
        #: True when the server ended the stream cleanly.
        self.ended = False
        self.error: Exception | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.response.read()
            self.response.close()
            self._client.close()

    def json(self) -> Any:
        """The body of a refused stream."""
        return self.response.json()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if self.first_line is None:
                    self.first_line = line
                if self._stop.is_set():
                    return
                if not line:
                    if fields:
                        self._add(fields)
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry = int(value)
                elif name == "data" and "data" in fields:
                    fields["data"] += "\n" + value
                elif name:
                    fields[name] = value
            self.ended = True
        except httpx.HTTPError as exc:
            if not self._stop.is_set():
                self.error = exc
        finally:
            self.response.close()
            self._client.close()
            with self._cond:
                self._cond.notify_all()

    def _add(self, fields: dict[str, str]) -> None:
        message = Message(
            id=int(fields["id"]) if "id" in fields else None,
            event=fields.get("event", "message"),
            data=json.loads(fields.get("data", "null")),
        )
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[Message]], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate(messages so far)`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.messages)):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise AssertionError(
                        f"stream condition not met (ended={self.ended}, error={self.error!r}); "
                        f"got {self.messages!r}"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_status(self, job_id: str, status: str, timeout: float = 30.0) -> None:
        """Wait for a job's status message."""
        self.wait(lambda ms: any(m.job_id == job_id and m.status == status for m in ms), timeout)

    def job_messages(self) -> list[Message]:
        """Everything but heartbeats."""
        with self._cond:
            return [m for m in self.messages if m.event != "heartbeat"]

    def finished(self, timeout: float) -> bool:
        """Whether the reading thread is done within ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Ask the reader to stop at the next line (heartbeats keep lines coming)."""
        self._stop.set()

    def close(self) -> None:
        """Stop reading and wait until the connection is closed."""
        self.stop()
        if self._thread.is_alive():
            assert self.finished(HEARTBEAT_SECONDS * 5), "SSE reader did not stop"


@pytest.fixture
def streams() -> Iterator[Callable[..., SseStream]]:
    """Open SSE streams, all closed after the test."""
    opened: list[SseStream] = []

    def open_stream(server: ServerProcess, path: str, **kwargs: Any) -> SseStream:
        stream = SseStream(server, path, **kwargs)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.stop()
    for stream in opened:
        stream.close()


# -- WebSocket client -------------------------------------------------------------------------


def ws_connect(
    server: ServerProcess,
    *,
    key: str | None = None,
    cookie: str | None = None,
    origin: str | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """Open ``/ws/status`` (no proxy, loopback only)."""
    headers: dict[str, str] = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if cookie is not None:
        headers["Cookie"] = f"inboxd_session={cookie}"
    return connect(
        server.base_url.replace("http://", "ws://") + "/ws/status",
        additional_headers=headers,
        origin=Origin(origin) if origin is not None else None,
        open_timeout=10,
        close_timeout=2,
        proxy=None,
        legacy=True,  # a plain connection (websockets 17.1 wants a `with` otherwise)
        **kwargs,
    )


def recv_json(ws: ClientConnection, timeout: float = 10.0) -> Any:
    """The next message, parsed."""
    return json.loads(ws.recv(timeout))


def recv_until(
    ws: ClientConnection, predicate: Callable[[Any], bool], timeout: float = 30.0
) -> list[Any]:
    """Messages up to and including the first one that ``predicate`` accepts."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching WebSocket message; got {got!r}")
        try:
            message = recv_json(ws, left)
        except TimeoutError:
            continue
        got.append(message)
        if predicate(message):
            return got


def is_ws_status(job_id: str, status: str) -> Callable[[Any], bool]:
    """Matches the ``status_update`` that announces ``status`` of ``job_id``."""

    def match(message: Any) -> bool:
        event = message.get("data", {}).get("event") if message["type"] == "status_update" else None
        return (
            event is not None
            and event["job_id"] == job_id
            and event["type"] == "status"
            and event["payload"]["status"] == status
        )

    return match


def is_snapshot(message: Any) -> bool:
    """Matches a ``status_update`` snapshot."""
    data = message.get("data")
    return (
        message["type"] == "status_update"
        and isinstance(data, dict)
        and data.get("snapshot") is True
    )


def assert_ws_refused(opening: Callable[[], ClientConnection]) -> None:
    """The socket is refused before it is accepted (HTTP 403), or closed at once with 1008
    before anything is sent."""
    try:
        ws = opening()
    except InvalidStatus as exc:
        assert exc.response.status_code == 403, exc.response.status_code
        return
    with ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# -- servers and users ------------------------------------------------------------------------


def _start(
    request: pytest.FixtureRequest, data_dir: Path, env: dict[str, str]
) -> tuple[ServerProcess, Callable[[], None]]:
    if request.param == "sqlite":
        server = start_server(data_dir, env=env)
        return server, lambda: None
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    if not postgres.running:
        postgres.start()
    name = f"live_{uuid.uuid4().hex}"
    url = postgres.create_database(name)
    try:
        server = start_server(data_dir, database_url=url, env=env)
    except BaseException:
        postgres.drop_database(name)
        raise
    return server, lambda: postgres.drop_database(name)


DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=DATABASES)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per database for the tests that do not stop it (each uses new users)."""
    server, drop = _start(request, tmp_path_factory.mktemp(f"live-{request.param}"), ENV)
    try:
        yield server
    finally:
        server.stop()
        drop()
    log = server.log()
    assert "unexpected error" not in log and "Exception in ASGI application" not in log, log


def _served(
    request: pytest.FixtureRequest, data_dir: Path, env: dict[str, str]
) -> Iterator[ServerProcess]:
    server, drop = _start(request, data_dir, env)
    try:
        yield server
    finally:
        server.stop()
        drop()


@pytest.fixture(params=DATABASES)
def own_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server for one test only (it will be stopped by the test)."""
    yield from _served(request, tmp_path / "data", ENV)


def new_user(server: ServerProcess, prefix: str = "user", *, admin: bool = False) -> str:
    """A new user's key."""
    return server.add_user(f"{prefix}-{uuid.uuid4().hex[:10]}", admin=admin)


def start_job(server: ServerProcess, key: str, kind: str, params: dict[str, Any]) -> str:
    """Queue a job through the API; returns its id."""
    with server.client(key) as client:
        response = client.post("/api/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def wait_job(server: ServerProcess, key: str, job_id: str, timeout: float = 30.0) -> Any:
    """Poll the job until it finished."""
    with server.client(key) as client:
        return wait_for(
            lambda: (job := client.get(f"/api/jobs/{job_id}").json())["status"] in FINISHED and job,
            timeout=timeout,
            interval=0.05,
        )


def logged_events(server: ServerProcess, job_ids: list[str]) -> dict[int, dict[str, Any]]:
    """The event log of some jobs, as the live channels encode events, by id."""
    found: dict[int, dict[str, Any]] = {}
    with server.app() as opened:
        for job_id in job_ids:
            job = opened.queue.get(job_id)
            for event in opened.queue.events(job_id):
                found[event.id] = {
                    "id": event.id,
                    "job_id": job_id,
                    "kind": job.kind,
                    "account_id": job.account_id,
                    "type": event.type.value,
                    "payload": event.payload,
                    "created_at": event.created_at.isoformat(),
                }
    return found


def login(server: ServerProcess, key: str) -> str:
    """Log in with a key; returns the session token of the cookie."""
    response = httpx.post(f"{server.base_url}/api/session", json={"key": key}, timeout=30.0)
    assert response.status_code == 200, response.text
    match = re.search(r"inboxd_session=([^;]+)", response.headers["set-cookie"])
    assert match is not None
    return match.group(1)


def assert_well_formed(messages: list[Message]) -> None:
    """``id:`` is the event id, names match types, ids only grow, nothing twice."""
    ids = [m.id or 0 for m in messages]
    assert all(a < b for a, b in itertools.pairwise(ids)), ids
    for m in messages:
        assert m.id is not None and m.id == m.data["id"], m
        assert set(m.data) == EVENT_FIELDS, m
        assert m.event == ("job_status" if m.data["type"] == "status" else "job_event"), m
        datetime.fromisoformat(m.data["created_at"])
        if m.data["type"] == "progress":
            assert set(m.data["payload"]) == PROGRESS_FIELDS, m


def statuses(messages: list[Message], job_id: str) -> list[str]:
    """The statuses of a job in the order the stream announced them."""
    return [m.status for m in messages if m.job_id == job_id and m.status is not None]


# -- SSE ------------------------------------------------------------------------------------


def test_sse_authenticates_before_streaming(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key = new_user(live)
    for path in ("/api/events", f"/api/jobs/{uuid.uuid4()}/events"):
        for kwargs in (
            {},
            {"key": "ibx_not_a_key"},
            {"params": {"key": key}},
            {"headers": {"Cookie": "inboxd_session=forged"}},
        ):
            refused = streams(live, path, **kwargs)
            assert refused.status == 401, (path, kwargs)
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.response.headers["content-type"].startswith("application/json")
    missing = streams(live, f"/api/jobs/{uuid.uuid4()}/events", key=key)
    assert missing.status == 404 and missing.json()["error"]["code"] == "not_found"
    for header in ("abc", "-1"):
        bad = streams(live, "/api/events", key=key, headers={"Last-Event-ID": header})
        assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_request"
    bad_query = streams(live, "/api/events", key=key, params={"last_event_id": "-1"})
    assert bad_query.status == 422 and bad_query.json()["error"]["code"] == "invalid_request"
    # The dashboard's session cookie is enough (a key never goes into the URL).
    token = login(live, key)
    by_cookie = streams(live, "/api/events", headers={"Cookie": f"inboxd_session={token}"})
    assert by_cookie.status == 200


def test_sse_protocol_retry_heartbeat_and_events(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key = new_user(live)
    stream = streams(live, "/api/events", key=key)
    assert stream.status == 200
    headers = stream.response.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-store"
    # A retry hint first, then a heartbeat every INBOXD_LIVE_HEARTBEAT_SECONDS.
    stream.wait(lambda ms: sum(m.event == "heartbeat" for m in ms) >= 2, timeout=10)
    assert stream.first_line == "retry: 3000" and stream.retry == 3000
    beats = [m for m in stream.messages if m.event == "heartbeat"]
    for beat in beats:
        assert beat.id is None and set(beat.data) == {"timestamp"}
        datetime.fromisoformat(beat.data["timestamp"])
    gap = datetime.fromisoformat(beats[1].data["timestamp"]) - datetime.fromisoformat(
        beats[0].data["timestamp"]
    )
    assert 0.5 * HEARTBEAT_SECONDS <= gap.total_seconds() <= 5 * HEARTBEAT_SECONDS

    job_id = start_job(live, key, "selftest", {"steps": 5, "step_ms": 40})
    stream.wait_status(job_id, "completed")
    got = stream.job_messages()
    assert_well_formed(got)
    assert {m.job_id for m in got} == {job_id}
    assert statuses(got, job_id) == ["pending", "running", "completed"]
    progress = [m.data["payload"] for m in got if m.data["type"] == "progress"]
    assert progress and progress[-1]["current"] == 5 and progress[-1]["total"] == 5
    assert progress[-1]["percent"] == 100.0 and progress[-1]["step"] == "selftest"
    assert [p["current"] for p in progress] == sorted(p["current"] for p in progress)
    # What was streamed is what the event log holds, and no state change was left out.
    log = logged_events(live, [job_id])
    for m in got:
        assert m.data == log[m.data["id"]]
    assert {m.id for m in got} >= {i for i, e in log.items() if e["type"] != "progress"}


def test_last_event_id_replays_from_the_event_log(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key = new_user(live)
    first = start_job(live, key, "selftest", {"steps": 4, "step_ms": 10})
    wait_job(live, key, first)
    second = start_job(live, key, "selftest", {"steps": 2, "step_ms": 10})
    wait_job(live, key, second)
    log = logged_events(live, [first, second])
    first_ids = sorted(i for i, e in log.items() if e["job_id"] == first)
    middle = first_ids[len(first_ids) // 2]

    def open_replays(*requests: tuple[str, dict[str, Any]]) -> list[SseStream]:
        opened: list[SseStream] = []
        for path, kwargs in requests:

            def admitted(p: str = path, k: dict[str, Any] = kwargs) -> SseStream | None:
                # A closed stream frees its place once the server notices: retry while refused.
                s = streams(live, p, key=key, **k)
                return s if s.status != 429 else None

            opened.append(wait_for(admitted, timeout=10, interval=0.1))
        for stream in opened:
            assert stream.status == 200
            # The heartbeat comes after the replay: everything replayed is in by then.
            stream.wait(lambda ms: any(m.event == "heartbeat" for m in ms), timeout=10)
            assert_well_formed(stream.job_messages())
        return opened

    def data(stream: SseStream) -> list[dict[str, Any]]:
        return [m.data for m in stream.job_messages()]

    job_path = f"/api/jobs/{first}/events"
    after_middle = {"Last-Event-ID": str(middle)}
    replays = open_replays(
        (job_path, {"headers": after_middle}),
        (job_path, {"params": {"last_event_id": str(middle)}}),
        # The header wins over the query (it is what a reconnecting EventSource sends).
        (job_path, {"headers": after_middle, "params": {"last_event_id": "0"}}),
        (job_path, {"headers": {"Last-Event-ID": "0"}}),
        (job_path, {"headers": {"Last-Event-ID": str(max(log) + 1000)}}),
    )
    expected = [log[i] for i in first_ids if i > middle]
    assert expected
    assert [data(s) for s in replays] == [
        expected,
        expected,
        expected,
        [log[i] for i in first_ids],
        [],
    ]
    for stream in replays:
        stream.stop()
    for stream in replays:
        stream.close()

    # All of the user's jobs after an id: both jobs, in id order; then the streams go on
    # live: a new job shows up on the user's stream, never on another job's.
    newest = {"Last-Event-ID": str(max(log))}
    all_jobs, quiet, following = open_replays(
        ("/api/events", {"headers": after_middle}),
        (job_path, {"headers": newest}),
        ("/api/events", {"headers": newest}),
    )
    assert data(all_jobs) == [log[i] for i in sorted(log) if i > middle]
    assert data(quiet) == data(following) == []
    third = start_job(live, key, "noop", {})
    following.wait_status(third, "completed")
    all_jobs.wait_status(third, "completed")
    assert {m.job_id for m in following.job_messages()} == {third}
    assert quiet.job_messages() == []


def test_three_concurrent_jobs_never_mix_on_their_streams(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key = new_user(live)
    # Live only (no Last-Event-ID): subscribed before its response starts, so before the jobs.
    everything = streams(live, "/api/events", key=key)
    jobs = [start_job(live, key, "selftest", {"steps": 12, "step_ms": 60}) for _ in range(3)]
    # Each job's stream replays from the start (Last-Event-ID: 0), then goes live.
    per_job = {
        job_id: streams(live, f"/api/jobs/{job_id}/events", key=key, headers={"Last-Event-ID": "0"})
        for job_id in jobs
    }
    for job_id, stream in per_job.items():
        stream.wait_status(job_id, "completed")
        everything.wait_status(job_id, "completed")

    snapshots = [wait_job(live, key, job_id) for job_id in jobs]
    assert all(s["status"] == "completed" for s in snapshots)
    # They really ran at the same time.
    assert max(s["started_at"] for s in snapshots) < min(s["finished_at"] for s in snapshots)

    log = logged_events(live, jobs)
    for job_id, stream in per_job.items():
        got = stream.job_messages()
        assert_well_formed(got)
        assert {m.job_id for m in got} == {job_id}, "another job's event on this job's stream"
        assert statuses(got, job_id) == ["pending", "running", "completed"]
        currents = [m.data["payload"]["current"] for m in got if m.data["type"] == "progress"]
        assert currents == sorted(currents) and currents[-1] == 12
        for m in got:
            assert m.data == log[m.data["id"]]
        own = {i for i, e in log.items() if e["job_id"] == job_id and e["type"] != "progress"}
        assert {m.id for m in got} >= own
    merged = everything.job_messages()
    assert_well_formed(merged)
    assert {m.job_id for m in merged} == set(jobs)
    for job_id in jobs:
        assert statuses(merged, job_id) == ["pending", "running", "completed"]
    for m in merged:
        assert m.data == log[m.data["id"]]
    # Progress ticks may be coalesced (the newest wins); state changes never are.
    assert {m.id for m in merged} >= {i for i, e in log.items() if e["type"] != "progress"}


def test_live_channels_are_isolated_between_users(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    alice, bob = new_user(live, "alice"), new_user(live, "bob")
    admin_all = streams(live, "/api/events", key=live.admin_key)
    bob_live = streams(live, "/api/events", key=bob)
    with ws_connect(live, key=bob) as bob_ws, ws_connect(live, key=alice) as alice_ws:
        assert recv_json(bob_ws)["data"]["snapshot"] is True
        assert recv_json(alice_ws)["data"]["snapshot"] is True
        alice_job = start_job(live, alice, "selftest", {"steps": 3, "step_ms": 20})
        assert wait_job(live, alice, alice_job)["status"] == "completed"
        recv_until(alice_ws, is_ws_status(alice_job, "completed"))  # the positive control
        admin_all.wait_status(alice_job, "completed")

        # Bob's own job comes after Alice's in the event log: once his streams carry it,
        # anything of Alice's would have been there too.
        bob_job = start_job(live, bob, "selftest", {"steps": 3, "step_ms": 20})
        bob_live.wait_status(bob_job, "completed")
        seen = recv_until(bob_ws, is_ws_status(bob_job, "completed"))
        assert {m.job_id for m in bob_live.job_messages()} == {bob_job}
        assert alice_job not in json.dumps(seen)

        replay = streams(live, "/api/events", key=bob, headers={"Last-Event-ID": "0"})
        replay.wait_status(bob_job, "completed")
        assert {m.job_id for m in replay.job_messages()} == {bob_job}
        for headers in ({}, {"Last-Event-ID": "0"}):
            foreign = streams(live, f"/api/jobs/{alice_job}/events", key=bob, headers=headers)
            assert foreign.status == 404 and foreign.json()["error"]["code"] == "not_found"

        bob_ws.send(json.dumps({"type": "get_recent_runs"}))
        runs = recv_until(bob_ws, lambda m: m["type"] == "recent_runs")[-1]["data"]
        assert [r["job_id"] for r in runs] == [bob_job]
        bob_ws.send(json.dumps({"type": "get_status"}))
        status = recv_until(bob_ws, is_snapshot)[-1]["data"]
        assert [r["job_id"] for r in status["recent_runs"]] == [bob_job]
        assert alice_job not in json.dumps(status)
        alice_ws.send(json.dumps({"type": "get_recent_runs"}))
        alice_runs = recv_until(alice_ws, lambda m: m["type"] == "recent_runs")[-1]["data"]
        assert [r["job_id"] for r in alice_runs] == [alice_job]
    # An admin sees everyone's jobs.
    admin_all.wait_status(bob_job, "completed")


# -- WebSocket --------------------------------------------------------------------------------


def test_websocket_is_refused_without_credentials_or_from_a_foreign_origin(
    live: ServerProcess,
) -> None:
    key = new_user(live)
    own = live.base_url
    assert_ws_refused(lambda: ws_connect(live))
    assert_ws_refused(lambda: ws_connect(live, key="ibx_not_a_key"))
    assert_ws_refused(lambda: ws_connect(live, cookie="forged-token"))
    assert_ws_refused(lambda: ws_connect(live, key=key, origin="https://evil.example"))
    token = login(live, key)
    assert_ws_refused(lambda: ws_connect(live, cookie=token, origin="https://evil.example"))
    openings: list[Callable[[], ClientConnection]] = [
        lambda: ws_connect(live, key=key),
        lambda: ws_connect(live, key=key, origin=own),
        lambda: ws_connect(live, cookie=token, origin=own),
        lambda: ws_connect(live, cookie=token, origin="https://dash.example"),
    ]
    for opening in openings:
        with opening() as ws:
            assert recv_json(ws)["type"] == "status_update"
    # A session that ended no longer opens a socket.
    httpx.delete(f"{live.base_url}/api/session", headers={"Cookie": f"inboxd_session={token}"})
    assert_ws_refused(lambda: ws_connect(live, cookie=token, origin=own))


def test_websocket_protocol(live: ServerProcess) -> None:
    key = new_user(live)
    done = start_job(live, key, "noop", {})
    wait_job(live, key, done)
    with ws_connect(live, key=key) as ws:
        snapshot = recv_json(ws)
        assert snapshot["type"] == "status_update"
        data = snapshot["data"]
        assert set(data) == {"current_processing", "recent_runs", "timestamp", "snapshot"}
        assert data["snapshot"] is True and data["current_processing"] == []
        assert [r["job_id"] for r in data["recent_runs"]] == [done]
        assert set(data["recent_runs"][0]) == RUN_FIELDS
        datetime.fromisoformat(data["timestamp"])

        # Every change of the user's jobs, as the SSE data object.
        job_id = start_job(live, key, "selftest", {"steps": 4, "step_ms": 30})
        updates = recv_until(ws, is_ws_status(job_id, "completed"))
        for update in updates:
            assert update["type"] == "status_update" and set(update["data"]) == {
                "event",
                "timestamp",
            }
            assert set(update["data"]["event"]) == EVENT_FIELDS
            datetime.fromisoformat(update["data"]["timestamp"])
        # The earlier job's last events may come just after the snapshot that already
        # counted it (the socket subscribes before it takes the snapshot: nothing is lost).
        assert {u["data"]["event"]["job_id"] for u in updates} <= {job_id, done}
        events = [u["data"]["event"] for u in updates if u["data"]["event"]["job_id"] == job_id]
        log = logged_events(live, [job_id])
        assert all(e == log[e["id"]] for e in events)
        assert [e["id"] for e in events] == sorted({e["id"] for e in events})
        assert [e["payload"]["status"] for e in events if e["type"] == "status"] == [
            "pending",
            "running",
            "completed",
        ]
        assert any(e["type"] == "progress" for e in events)

        ws.send(json.dumps({"type": "get_recent_runs"}))
        runs = recv_json(ws)
        assert runs["type"] == "recent_runs"
        assert [r["job_id"] for r in runs["data"]] == [job_id, done]
        assert all(set(r) == RUN_FIELDS for r in runs["data"])
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"
        ws.send(json.dumps({"type": "get_status"}))
        again = recv_json(ws)
        assert again["type"] == "status_update" and again["data"]["snapshot"] is True
        for junk in ("not json", json.dumps([1, 2]), json.dumps({"type": "shutdown"})):
            ws.send(junk)
            error = recv_json(ws)
            assert error["type"] == "error" and error["data"]["code"] == "invalid_message"
        ws.send(json.dumps({"type": "ping"}))  # still open after nonsense
        assert recv_json(ws)["type"] == "pong"

    # Messages are small: a big one closes the socket (1009: message too big).
    with ws_connect(live, key=key) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "ping", "pad": "x" * 100_000}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


# -- limits, shutdown -------------------------------------------------------------------------


def test_live_connections_are_limited_per_user(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key, other = new_user(live), new_user(live)
    opened = [streams(live, "/api/events", key=key) for _ in range(MAX_LIVE - 2)]
    sockets = [ws_connect(live, key=key) for _ in range(2)]
    try:
        assert all(s.status == 200 for s in opened)
        for ws in sockets:
            assert recv_json(ws)["type"] == "status_update"
        refused = streams(live, "/api/events", key=key)
        assert refused.status == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.response.headers["retry-after"]) >= 1
        job_refused = streams(live, f"/api/jobs/{uuid.uuid4()}/events", key=key)
        assert job_refused.status == 404  # checked before the limit: no existence oracle
        assert_ws_refused(lambda: ws_connect(live, key=key))
        # Another user is not affected.
        assert streams(live, "/api/events", key=other).status == 200
        # A closed stream frees its place (once the server noticed).
        opened[0].close()
        sockets[0].close()

        def reopened() -> bool:
            stream = streams(live, "/api/events", key=key)
            if stream.status == 200:
                return True
            stream.close()
            return False

        wait_for(reopened, timeout=10, interval=0.1)
    finally:
        for ws in sockets:
            ws.close()


def test_logout_and_revoking_the_key_end_open_streams(
    live: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key = new_user(live)
    token = login(live, key)
    cookie = {"Cookie": f"inboxd_session={token}"}
    by_cookie = streams(live, "/api/events", headers=cookie)
    by_key = streams(live, "/api/events", key=key)
    ws = ws_connect(live, cookie=token)
    try:
        assert recv_json(ws)["type"] == "status_update"
        for stream in (by_cookie, by_key):
            stream.wait(lambda ms: any(m.event == "heartbeat" for m in ms), timeout=10)

        logout = httpx.delete(f"{live.base_url}/api/session", headers=cookie, timeout=10)
        assert logout.status_code == 204
        # Within a heartbeat or two the session's streams end; the key's stream lives on.
        assert by_cookie.finished(HEARTBEAT_SECONDS * 5), "stream outlived its session"
        assert by_cookie.ended, by_cookie.error
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(HEARTBEAT_SECONDS * 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        beats = sum(m.event == "heartbeat" for m in by_key.messages)
        by_key.wait(lambda ms: sum(m.event == "heartbeat" for m in ms) >= beats + 2)

        with live.app() as opened:
            Users(opened.engine).revoke_key(key)
        assert by_key.finished(HEARTBEAT_SECONDS * 5), "stream outlived its revoked key"
        assert by_key.ended, by_key.error
        refused = streams(live, "/api/events", key=key)
        assert refused.status == 401
    finally:
        ws.close()


def test_stopping_the_server_does_not_wait_for_open_streams(
    own_server: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    key = new_user(own_server)
    job_id = start_job(own_server, key, "selftest", {"steps": 2, "step_ms": 10})
    job_stream = streams(own_server, f"/api/jobs/{job_id}/events", key=key)
    job_stream.wait_status(job_id, "running", timeout=30)
    all_stream = streams(own_server, "/api/events", key=key)
    ws = ws_connect(own_server, key=key)
    assert recv_json(ws)["type"] == "status_update"
    job_stream.wait_status(job_id, "completed")
    # Open and idle: these streams would never end by themselves.
    all_stream.wait(lambda ms: any(m.event == "heartbeat" for m in ms), timeout=10)
    started = time.monotonic()
    assert own_server.stop() == 0
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"stop took {elapsed:.1f}s with open streams"
    for stream in (job_stream, all_stream):
        assert stream.finished(5.0)
        assert stream.ended, stream.error  # ended by the server, not cut off
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(5)
    ws.close()


@pytest.fixture(params=DATABASES)
def impatient_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that drops a client after 1 s without taking a write."""
    env = ENV | {"INBOXD_LIVE_SEND_TIMEOUT_SECONDS": "1", "INBOXD_LIVE_QUEUE_SIZE": "100000"}
    yield from _served(request, tmp_path / "data", env)


def test_a_client_that_stops_reading_is_dropped_and_slows_nobody(
    impatient_server: ServerProcess, streams: Callable[..., SseStream]
) -> None:
    server = impatient_server
    key = new_user(server)
    with server.app() as opened:
        found = Users(opened.engine).authenticate_key(key)
        assert found is not None
        job = opened.queue.enqueue("noop", {}, owner=found[0].id, awaiting_approval=True)
    healthy = streams(server, "/api/events", key=key)
    # A small receive window (set before connecting): the server's writes to this client
    # soon stop being taken.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", httpx.URL(server.base_url).port or 80))
    request = f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
    stalled.sendall(request.encode())
    try:
        healthy.wait(lambda ms: any(m.event == "heartbeat" for m in ms), timeout=10)
        # About 12 MB of events: far more than the socket buffers between server and client.
        text = "x" * 4000
        with server.app() as opened:
            for start in range(0, 3000, 100):
                with writing(opened.engine) as conn:
                    events.append(
                        conn,
                        [
                            (job.id, EventType.LOG, {"message": text, "n": n})
                            for n in range(start, start + 100)
                        ],
                    )
        healthy.wait(lambda ms: sum(m.event == "job_event" for m in ms) >= 3000, timeout=30)
        got = [m.data["payload"]["n"] for m in healthy.job_messages() if m.event == "job_event"]
        assert got == list(range(3000))
        # Meanwhile the stalled client is cut off (it took nothing for a second) ...
        wait_for(lambda: "stalled for" in server.log(), timeout=15, interval=0.2)
        # ... so reading now only drains what was buffered for it, then meets the end.
        stalled.settimeout(5)
        received, deadline = 0, time.monotonic() + 20
        while (chunk := stalled.recv(1 << 20)) and time.monotonic() < deadline:
            received += len(chunk)
        assert not chunk, f"the stalled client is still being served ({received} bytes)"
        assert 0 < received < 3000 * 4000, received
    finally:
        stalled.close()
