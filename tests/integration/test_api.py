"""The REST API of a real ``inboxd serve`` as clients see it: the contract of every route,
authentication (keys, sessions, origins), the one error shape, isolation between users,
limits, and the history of runs across a restart.

Pure REST contract: SQLite only (live channels and the queue run on both databases in
test_live.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from inboxd.db.engine import reading
from inboxd.db.tables import api_keys, sessions
from inboxd.store.accounts import Accounts
from inboxd.store.users import Users
from tests.services.dovecot import ImapUser
from tests.support.apps import wait_for
from tests.support.mail import make_message
from tests.support.server import ServerProcess, free_port, start_server

#: Fast retries, no periodic syncs (they would add jobs nobody asked for), generous request
#: rates (the limits have their own server below), a second allowed dashboard origin.
ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_RETRY_BASE_SECONDS": "0.1",
    "INBOXD_RETRY_MAX_SECONDS": "0.5",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
    "INBOXD_OWNER_MAX_RUNNING": "2",
    "INBOXD_ALLOWED_ORIGINS": "https://dash.example",
}

JOB_FIELDS = {
    "id",
    "kind",
    "account_id",
    "status",
    "step",
    "progress",
    "message",
    "rate",
    "eta_seconds",
    "queue_position",
    "attempts",
    "max_attempts",
    "cancel_requested",
    "error",
    "result",
    "created_at",
    "started_at",
    "finished_at",
}
ACCOUNT_FIELDS = {
    "id",
    "name",
    "provider",
    "owner",
    "addresses",
    "owner_name",
    "settings",
    "enabled",
    "sync_interval_seconds",
    "state",
    "state_message",
    "last_sync_at",
    "last_sync_job_id",
    "created_at",
    "labels",
    "message_count",
    "activity",
}
ACTIVITY_FIELDS = {
    "state",
    "job_id",
    "step",
    "progress",
    "message",
    "rate",
    "eta_seconds",
    "error",
}
STATUS_FIELDS = {
    "account_id",
    "account_name",
    "job_id",
    "kind",
    "status",
    "state",
    "step",
    "progress",
    "message",
    "rate",
    "eta_seconds",
    "started_at",
}
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
#: The documented error code of each HTTP status (docs/api.md, "Errors"); 403 is what the
#: server answers for refused origins and admin-only actions.
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}
FINISHED = ("completed", "failed", "cancelled")


# -- helpers ----------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A user or account name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_error(response: httpx.Response, status: int) -> str:
    """The response is the one error shape with the documented code; returns the message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == ERROR_CODES[status], body
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip()
    return message


def iso(value: str) -> datetime:
    """An ISO 8601 time of the API, which must carry its UTC offset."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset() == UTC.utcoffset(None), value
    return parsed


def wait_job(
    client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll ``GET /api/jobs/{id}`` until the job is in one of ``statuses``."""

    def reached() -> dict[str, Any] | None:
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job if job["status"] in statuses else None

    found: dict[str, Any] = wait_for(reached, timeout=timeout, interval=0.05)
    return found


def start_job(client: httpx.Client, kind: str, params: dict[str, Any] | None = None) -> str:
    """``POST /api/jobs``; returns the new job's id."""
    response = client.post("/api/jobs", json={"kind": kind, "params": params or {}})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def imap_account(name: str, port: int, *, password: str = "s3cret-pw") -> dict[str, Any]:
    """A create body for an IMAP account on 127.0.0.1:``port``."""
    return {
        "provider": "imap",
        "name": name,
        "settings": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": f"{name}-login",
        },
        "secret": {"password": password},
        "addresses": [f"{name}@example.com"],
        "owner_name": "Test Person",
        "sync_interval_seconds": 0,
    }


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    return free_port()


@dataclass
class Person:
    """A user of the server with a Bearer client."""

    id: str
    name: str
    key: str
    client: httpx.Client


PersonFactory = Callable[..., Person]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the contract tests (they do not interfere: each uses its own users)."""
    started = start_server(tmp_path_factory.mktemp("api"), env=ENV)
    try:
        yield started
    finally:
        started.stop()
    log = started.log()
    # A 500 or a crash in a handler is logged by the API's last-resort handler or uvicorn.
    assert "unexpected error" not in log and "Exception in ASGI application" not in log, log


@pytest.fixture
def people(server: ServerProcess) -> Iterator[PersonFactory]:
    """Make users (each with a key and a client); clients are closed afterwards."""
    made: list[Person] = []

    def make(prefix: str = "user", *, admin: bool = False) -> Person:
        name = unique(prefix)
        key = server.add_user(name, admin=admin)
        client = server.client(key)
        me = client.get("/api/me")
        assert me.status_code == 200, me.text
        person = Person(id=me.json()["id"], name=name, key=key, client=client)
        made.append(person)
        return person

    yield make
    for person in made:
        person.client.close()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client with the server's admin key."""
    with server.client() as client:
        yield client


def _cookie_client(server: ServerProcess, token: str, **headers: str) -> httpx.Client:
    # The cookie is sent as a header: the test decides exactly what the server gets.
    return httpx.Client(
        base_url=server.base_url,
        headers={"Cookie": f"inboxd_session={token}", **headers},
        timeout=30.0,
    )


def _login(server: ServerProcess, key: str) -> tuple[httpx.Response, str]:
    response = httpx.post(f"{server.base_url}/api/session", json={"key": key}, timeout=30.0)
    assert response.status_code == 200, response.text
    match = re.search(r"inboxd_session=([^;]+)", response.headers["set-cookie"])
    assert match is not None
    return response, match.group(1)


def _operations(server: ServerProcess) -> list[tuple[str, str]]:
    doc = httpx.get(f"{server.base_url}/openapi.json", timeout=30.0).json()
    return [(method.upper(), path) for path, ops in doc["paths"].items() for method in ops]


# -- health, auth, errors ---------------------------------------------------------------------


def test_health_readiness_and_openapi_answer_without_a_key(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        doc = anonymous.get("/openapi.json")
        assert doc.status_code == 200
        paths = doc.json()["paths"]
        # The kinds a client may ask for are the ones the server runs (selftest: the tests').
        kinds = doc.json()["components"]["schemas"]["JobCreate"]["properties"]["kind"]["enum"]
        assert {"sync", "noop", "prune", "selftest"} <= set(kinds)
    for path in (
        "/api/accounts",
        "/api/accounts/{account_id}/sync",
        "/api/jobs",
        "/api/jobs/{job_id}/events",
        "/api/processing/current-status",
        "/api/runs",
        "/api/events",
        "/api/session",
        "/api/me",
    ):
        assert path in paths, path


def test_every_api_route_needs_a_valid_key(server: ServerProcess, people: PersonFactory) -> None:
    person = people()
    # The OAuth callback comes from the provider's redirect, without a key or session: its
    # sealed state and nonce cookie are what it checks (tests/integration/test_signin.py).
    operations = [
        (method, path)
        for method, path in _operations(server)
        if path.startswith("/api/")
        and path != "/api/session"
        and path != "/api/oauth/{provider}/callback"
    ]
    assert len(operations) >= 15
    some_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.base_url, timeout=30.0) as anonymous:
        for method, template in operations:
            path = template.replace("{account_id}", some_id).replace("{job_id}", some_id)
            path = path.replace("{provider}", "google")
            body: dict[str, Any] | None = {} if method in ("POST", "PATCH") else None
            missing = anonymous.request(method, path, json=body)
            assert_error(missing, 401)
            assert missing.headers["www-authenticate"] == "Bearer", (method, path)
            wrong = anonymous.request(
                method, path, json=body, headers={"Authorization": "Bearer ibx_nope_nope"}
            )
            assert "invalid or revoked" in assert_error(wrong, 401)
            # A key never travels in a URL: one in the query string is not a credential.
            in_url = anonymous.request(
                method, path, json=body, params={"key": person.key, "api_key": person.key}
            )
            assert_error(in_url, 401)
    # Other schemes are not mistaken for a key.
    basic = httpx.get(f"{server.base_url}/api/me", headers={"Authorization": f"Basic {person.key}"})
    assert_error(basic, 401)


def test_me_names_the_caller(server: ServerProcess, people: PersonFactory) -> None:
    person = people("me")
    assert person.client.get("/api/me").json() == {
        "id": person.id,
        "name": person.name,
        "is_admin": False,
    }
    boss = people("boss", admin=True)
    assert boss.client.get("/api/me").json()["is_admin"] is True


def test_errors_have_one_shape_and_the_documented_codes(
    server: ServerProcess, people: PersonFactory
) -> None:
    client = people().client
    assert_error(client.get("/api/nothing-here"), 404)
    assert_error(client.get(f"/api/jobs/{uuid.uuid4()}"), 404)
    assert_error(client.get(f"/api/accounts/{uuid.uuid4()}"), 404)
    method_not_allowed = client.put("/api/jobs", json={})
    assert method_not_allowed.status_code == 405
    assert method_not_allowed.json()["error"]["code"] == "method_not_allowed"
    # Request validation: unknown fields, wrong types, bad JSON, bad query values.
    assert "bogus" in assert_error(client.post("/api/jobs", json={"kind": "noop", "bogus": 1}), 422)
    assert_error(client.post("/api/jobs", json={"kind": 5}), 422)
    assert_error(
        client.post(
            "/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        422,
    )
    assert_error(client.get("/api/jobs", params={"status": "sleeping"}), 422)
    assert_error(client.get("/api/jobs", params={"limit": 0}), 422)
    assert_error(client.get("/api/runs", params={"limit": 100_000}), 422)
    # Domain validation.
    assert "nope" in assert_error(client.post("/api/jobs", json={"kind": "nope"}), 422)
    assert "steps" in assert_error(
        client.post("/api/jobs", json={"kind": "selftest", "params": {"steps": "many"}}), 422
    )
    assert "account_id" in assert_error(client.post("/api/jobs", json={"kind": "sync"}), 422)
    bad_settings = imap_account(unique("bad"), 143)
    del bad_settings["settings"]["host"]
    assert "host" in assert_error(client.post("/api/accounts", json=bad_settings), 422)
    # Conflicts: a finished job cannot be cancelled, a completed one not retried.
    job_id = start_job(client, "noop")
    wait_job(client, job_id, ("completed",))
    assert "completed" in assert_error(client.post(f"/api/jobs/{job_id}/cancel"), 409)
    assert "completed" in assert_error(client.post(f"/api/jobs/{job_id}/retry"), 409)
    # Admin-only work.
    assert_error(client.post("/api/jobs", json={"kind": "prune"}), 403)


def test_api_answers_carry_security_headers_and_are_not_cached(
    server: ServerProcess, people: PersonFactory
) -> None:
    response = people().client.get("/api/jobs")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers


# -- accounts ---------------------------------------------------------------------------------


def test_account_crud_never_shows_the_secret(server: ServerProcess, people: PersonFactory) -> None:
    person = people()
    client = person.client
    body = imap_account(unique("mail"), closed_port(), password="hunter2-very-secret")
    made = client.post("/api/accounts", json=body)
    assert made.status_code == 201, made.text
    account = made.json()
    assert set(account) == ACCOUNT_FIELDS
    assert "hunter2-very-secret" not in made.text
    assert account["owner"] == person.id and account["provider"] == "imap"
    assert account["name"] == body["name"] and account["owner_name"] == "Test Person"
    assert account["addresses"] == body["addresses"]
    assert account["settings"]["host"] == "127.0.0.1"
    assert account["settings"]["username"] == body["settings"]["username"]
    assert account["enabled"] is True and account["state"] == "ok"
    assert account["sync_interval_seconds"] == 0 and account["message_count"] == 0
    assert account["last_sync_at"] is None and account["last_sync_job_id"] is None
    assert account["labels"] is False  # off until the user turns them on
    iso(account["created_at"])
    assert account["activity"] == {
        "state": "idle",
        "job_id": None,
        "step": None,
        "progress": None,
        "message": None,
        "rate": None,
        "eta_seconds": None,
        "error": None,
    }
    account_id = account["id"]

    shown = client.get(f"/api/accounts/{account_id}")
    assert shown.status_code == 200 and shown.json() == account
    listed = client.get("/api/accounts")
    assert listed.status_code == 200 and listed.json() == [account]

    changed = client.patch(
        f"/api/accounts/{account_id}",
        json={
            "name": "renamed",
            "enabled": False,
            "addresses": ["New@Example.com"],
            "sync_interval_seconds": 600,
            "secret": {"password": "another-secret-pw"},
            "settings": {"port": 1143},
        },
    )
    assert changed.status_code == 200, changed.text
    updated = changed.json()
    assert "another-secret-pw" not in changed.text
    assert updated["name"] == "renamed" and updated["enabled"] is False
    assert updated["addresses"] == ["new@example.com"]
    assert updated["sync_interval_seconds"] == 600
    assert updated["settings"]["port"] == 1143 and updated["settings"]["host"] == "127.0.0.1"
    assert_error(client.patch(f"/api/accounts/{account_id}", json={"name": ""}), 422)
    assert_error(client.patch(f"/api/accounts/{account_id}", json={"owner": "me"}), 422)
    # JSON has one number type: 900.0 is the integer the schema asks for; 900.5 and "900" not.
    interval = client.patch(f"/api/accounts/{account_id}", json={"sync_interval_seconds": 900.0})
    assert interval.status_code == 200 and interval.json()["sync_interval_seconds"] == 900
    for bad in (900.5, "900", True):
        patched = client.patch(f"/api/accounts/{account_id}", json={"sync_interval_seconds": bad})
        assert_error(patched, 422)
    # Labels on: a label job is queued for the mail triaged so far; off again.
    labels_on = client.patch(f"/api/accounts/{account_id}", json={"labels": True})
    assert labels_on.status_code == 200 and labels_on.json()["labels"] is True
    jobs = client.get("/api/jobs", params={"kind": "label", "account_id": account_id}).json()
    assert [j["kind"] for j in jobs] == ["label"]
    labels_off = client.patch(f"/api/accounts/{account_id}", json={"labels": False})
    assert labels_off.status_code == 200 and labels_off.json()["labels"] is False
    assert_error(client.patch(f"/api/accounts/{account_id}", json={"labels": "on"}), 422)

    # The connection test says plainly what is wrong (nobody listens on that port).
    client.patch(f"/api/accounts/{account_id}", json={"settings": {"port": closed_port()}})
    tested = client.post(f"/api/accounts/{account_id}/test")
    assert tested.status_code == 200, tested.text
    probe = tested.json()
    assert probe["ok"] is False and probe["folders"] == {}
    assert "refused" in probe["error"]

    deleted = client.delete(f"/api/accounts/{account_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(client.get(f"/api/accounts/{account_id}"), 404)
    assert_error(client.delete(f"/api/accounts/{account_id}"), 404)
    assert client.get("/api/accounts").json() == []

    # Creating: an IMAP account needs a secret; paths on the server's disk are admin-only.
    no_secret = imap_account(unique("nosecret"), 143)
    del no_secret["secret"]
    assert "secret" in assert_error(client.post("/api/accounts", json=no_secret), 422)
    local = {"provider": "maildir", "name": "local", "settings": {"path": str(server.data_dir)}}
    assert "admin" in assert_error(client.post("/api/accounts", json=local), 403)
    assert client.get("/api/accounts").json() == []


def test_admin_may_add_a_local_maildir(
    server: ServerProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    made = admin.post(
        "/api/accounts",
        json={"provider": "maildir", "name": unique("md"), "settings": {"path": str(maildir)}},
    )
    assert made.status_code == 201, made.text
    account_id = made.json()["id"]
    probe = admin.post(f"/api/accounts/{account_id}/test").json()
    assert probe["ok"] is True and probe["folders"] == {"INBOX": 0}
    assert admin.delete(f"/api/accounts/{account_id}").status_code == 204


class SilentImapServer:
    """A loopback port that accepts TCP connections but never says a word (a hung mail
    server): the kernel completes the handshake, nobody ever reads or writes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        """Close the listener: waiting connections are reset."""
        self.sock.close()


def test_sync_is_accepted_at_once_while_the_mail_server_hangs(
    server: ServerProcess, people: PersonFactory
) -> None:
    person = people()
    client = person.client
    silent = SilentImapServer()
    try:
        name = unique("hung")
        account = client.post("/api/accounts", json=imap_account(name, silent.port)).json()
        account_id = account["id"]
        started = time.monotonic()
        accepted = client.post(f"/api/accounts/{account_id}/sync")
        elapsed = time.monotonic() - started
        assert accepted.status_code == 202, accepted.text
        assert set(accepted.json()) == {"job_id", "status"}
        # An idle worker may claim the job between the enqueue's commit and the answer.
        assert accepted.json()["status"] in ("pending", "running")
        assert elapsed < 1.0, f"POST /sync took {elapsed:.2f}s"
        job_id = accepted.json()["job_id"]

        # The worker is now stuck waiting for a greeting that never comes...
        job = wait_job(client, job_id, ("running",))
        assert job["kind"] == "sync" and job["account_id"] == account_id
        wait_for(lambda: client.get(f"/api/jobs/{job_id}").json()["step"] == "connecting")
        # ...and the API still answers at once, with the job that is already active.
        started = time.monotonic()
        again = client.post(f"/api/accounts/{account_id}/sync")
        assert time.monotonic() - started < 1.0
        assert again.status_code == 202 and again.json() == {
            "job_id": job_id,
            "status": "running",
        }

        status = client.get("/api/processing/current-status").json()
        assert set(status) == {"current_processing", "recent_runs", "timestamp"}
        iso(status["timestamp"])
        [item] = status["current_processing"]
        assert set(item) == STATUS_FIELDS
        assert item["job_id"] == job_id and item["account_id"] == account_id
        assert item["account_name"] == name and item["kind"] == "sync"
        assert item["status"] == "running" and item["state"] == "connecting"
        assert item["step"] == "connecting" and iso(item["started_at"])
        assert set(item["progress"]) == {"current", "total", "percent"}

        activity = client.get(f"/api/accounts/{account_id}").json()["activity"]
        assert set(activity) == ACTIVITY_FIELDS
        assert activity["state"] == "connecting" and activity["job_id"] == job_id
    finally:
        silent.close()
    cancelled = client.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code in (200, 409), cancelled.text
    final = wait_job(client, job_id, FINISHED)
    assert final["status"] in ("cancelled", "failed")


@pytest.mark.dovecot
def test_sync_of_a_real_mailbox_keeps_private_data_out_of_statuses(
    server: ServerProcess, people: PersonFactory, imap_user: ImapUser
) -> None:
    for n in range(7):
        imap_user.append("INBOX", make_message(n, to=f"{imap_user.username}@example.com"))
    person = people()
    client = person.client
    body = {
        "provider": "imap",
        "name": unique("real"),
        "settings": {
            "host": imap_user.host,
            "port": imap_user.port,
            "security": "none",
            "username": imap_user.username,
        },
        "secret": {"password": imap_user.password},
        "sync_interval_seconds": 0,
    }
    made = client.post("/api/accounts", json=body)
    assert made.status_code == 201, made.text
    account_id = made.json()["id"]
    probe = client.post(f"/api/accounts/{account_id}/test").json()
    assert probe["ok"] is True and probe["folders"]["INBOX"] == 7
    assert "7 message" in probe["summary"]

    accepted = client.post(f"/api/accounts/{account_id}/sync")
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    job = wait_job(client, job_id, FINISHED, timeout=60)
    assert job["status"] == "completed", job
    assert set(job) >= JOB_FIELDS
    assert job["result"]["new"] == 7 and job["error"] is None and job["attempts"] == 1
    assert job["progress"]["percent"] == 100.0 and job["queue_position"] is None
    assert iso(job["created_at"]) <= iso(job["started_at"]) <= iso(job["finished_at"])

    # The sync queued the index job of the new mail: the account's activity follows it.
    listed = client.get("/api/jobs", params={"kind": "index"}).json()
    [indexing] = [j for j in listed if j["account_id"] == account_id]
    indexed = wait_job(client, indexing["id"], FINISHED, timeout=60)
    assert indexed["status"] == "completed" and indexed["result"]["indexed"] == 7
    # ... which queued the triage of that mail.
    listed = client.get("/api/jobs", params={"kind": "triage"}).json()
    [triaging] = [j for j in listed if j["account_id"] == account_id]
    triaged = wait_job(client, triaging["id"], FINISHED, timeout=60)
    assert triaged["status"] == "completed" and triaged["result"]["triaged"] == 7

    account = client.get(f"/api/accounts/{account_id}").json()
    assert account["message_count"] == 7 and account["state"] == "ok"
    assert account["last_sync_job_id"] == job_id and account["last_sync_at"] is not None
    assert account["activity"]["state"] == "completed"
    assert account["activity"]["job_id"] == triaging["id"]
    assert imap_user.password not in json.dumps(account)

    runs = client.get("/api/runs", params={"account_id": account_id}).json()
    assert [r["job_id"] for r in runs] == [triaging["id"], indexing["id"], job_id]
    assert all(set(r) == RUN_FIELDS for r in runs)
    assert runs[2]["status"] == "completed"
    assert runs[2]["result"]["new"] == 7 and runs[2]["duration_seconds"] >= 0

    # Statuses say how far a sync (or the index) is, never what the mail says or who wrote it.
    with server.app() as opened:
        events = [e.to_dict() for e in opened.queue.events(job_id)]
        events += [e.to_dict() for e in opened.queue.events(indexing["id"])]
        events += [e.to_dict() for e in opened.queue.events(triaging["id"])]
    assert any(e["type"] == "progress" for e in events)
    seen = json.dumps(
        [
            job,
            indexed,
            triaged,
            events,
            client.get("/api/processing/current-status").json(),
            runs,
            account,
        ]
    )
    for n in range(7):
        assert f"sender{n % 17}@example.org" not in seen
        assert f"Line of message {n}." not in seen
    assert f"{imap_user.username}@example.com" not in seen
    assert imap_user.password not in seen


# -- jobs -------------------------------------------------------------------------------------


def test_job_contract_and_lifecycle(server: ServerProcess, people: PersonFactory) -> None:
    person = people()
    client = person.client
    accepted = client.post("/api/jobs", json={"kind": "selftest", "params": {"steps": 3}})
    assert accepted.status_code == 202
    assert set(accepted.json()) == {"job_id", "status"}
    assert accepted.json()["status"] in ("pending", "running")  # a worker may be that quick
    quick = accepted.json()["job_id"]
    done = wait_job(client, quick, FINISHED)
    assert set(done) >= JOB_FIELDS
    assert done["id"] == quick and done["kind"] == "selftest" and done["account_id"] is None
    assert done["status"] == "completed" and done["step"] == "selftest"
    assert done["progress"] == {"current": 3, "total": 3, "percent": 100.0}
    assert done["message"] == "step 3 of 3" and done["queue_position"] is None
    assert done["attempts"] == 1 and done["cancel_requested"] is False
    assert done["error"] is None and done["result"]["steps"] == 3
    assert iso(done["created_at"]) <= iso(done["started_at"]) <= iso(done["finished_at"])

    # Two long jobs fill this user's share of the workers (INBOXD_OWNER_MAX_RUNNING=2):
    # a third one waits with its place in the queue.
    long_params = {"steps": 100_000, "step_ms": 20}
    first, second = (start_job(client, "selftest", long_params) for _ in range(2))
    for job_id in (first, second):
        running = wait_job(client, job_id, ("running",))
        assert running["queue_position"] is None and running["started_at"] is not None
    third = start_job(client, "selftest", {"steps": 2, "step_ms": 1})
    waiting = client.get(f"/api/jobs/{third}").json()
    assert waiting["status"] == "pending"
    assert isinstance(waiting["queue_position"], int) and waiting["queue_position"] >= 1
    assert waiting["started_at"] is None and waiting["progress"]["percent"] is None
    moving = wait_for(
        lambda: (j := client.get(f"/api/jobs/{first}").json())["progress"]["current"] > 0 and j
    )
    assert moving["progress"]["total"] == 100_000 and moving["rate"] is not None
    assert moving["eta_seconds"] is not None and moving["eta_seconds"] > 0

    # Cancel a running job: asked at once, done at its next checkpoint.
    asked = client.post(f"/api/jobs/{first}/cancel")
    assert asked.status_code == 200 and set(asked.json()) >= JOB_FIELDS
    assert asked.json()["cancel_requested"] is True or asked.json()["status"] == "cancelled"
    assert wait_job(client, first, FINISHED)["status"] == "cancelled"
    assert_error(client.post(f"/api/jobs/{second}/retry"), 409)
    assert client.post(f"/api/jobs/{second}/cancel").status_code == 200
    assert wait_job(client, second, FINISHED)["status"] == "cancelled"
    assert wait_job(client, third, FINISHED)["status"] == "completed"
    again = client.post(f"/api/jobs/{first}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"

    # Retry: same id, back in the queue from the start.
    retried = client.post(f"/api/jobs/{first}/retry")
    assert retried.status_code == 200 and retried.json()["id"] == first
    assert retried.json()["status"] in ("pending", "running")
    assert retried.json()["error"] is None and retried.json()["finished_at"] is None
    client.post(f"/api/jobs/{first}/cancel")
    assert wait_job(client, first, FINISHED)["status"] == "cancelled"

    # A task that crashes fails with a readable error; a flaky one succeeds on retry.
    crashed = wait_job(client, start_job(client, "test.crash"), FINISHED)
    assert crashed["status"] == "failed" and crashed["error"]
    assert "ZeroDivisionError" in crashed["error"] or "boom" in crashed["error"]
    flaky = wait_job(client, start_job(client, "test.flaky", {"fail_times": 1}), FINISHED)
    assert flaky["status"] == "completed" and flaky["attempts"] == 2
    assert flaky["result"] == {"attempt": 2}

    # Listing: newest first, filtered.
    mine = client.get("/api/jobs").json()
    assert {j["id"] for j in mine} == {quick, first, second, third, crashed["id"], flaky["id"]}
    created = [iso(j["created_at"]) for j in mine]
    assert created == sorted(created, reverse=True)
    assert all(set(j) >= JOB_FIELDS for j in mine)
    cancelled = client.get("/api/jobs", params={"status": "cancelled"}).json()
    assert {j["id"] for j in cancelled} == {first, second}
    both = client.get("/api/jobs", params=[("status", "cancelled"), ("status", "failed")])
    assert {j["id"] for j in both.json()} == {first, second, crashed["id"]}
    assert [j["id"] for j in client.get("/api/jobs", params={"kind": "test.flaky"}).json()] == [
        flaky["id"]
    ]
    assert len(client.get("/api/jobs", params={"limit": 2}).json()) == 2
    assert client.get("/api/jobs", params={"account_id": str(uuid.uuid4())}).json() == []

    # The history of runs: one per finished attempt cycle, newest first.
    runs = client.get("/api/runs").json()
    assert all(set(r) == RUN_FIELDS for r in runs)
    by_job = {r["job_id"]: r for r in runs}
    assert by_job[crashed["id"]]["status"] == "failed" and by_job[crashed["id"]]["error"]
    assert by_job[flaky["id"]]["attempts"] == 2
    assert by_job[quick]["result"]["steps"] == 3
    finished = [iso(r["finished_at"]) for r in runs]
    assert finished == sorted(finished, reverse=True)
    assert len(client.get("/api/runs", params={"limit": 1}).json()) == 1
    assert client.get("/api/processing/current-status").json()["current_processing"] == []


def test_a_job_may_belong_to_an_account(server: ServerProcess, people: PersonFactory) -> None:
    client = people().client
    account_id = client.post(
        "/api/accounts", json=imap_account(unique("acct"), closed_port())
    ).json()["id"]
    made = client.post(
        "/api/jobs", json={"kind": "selftest", "params": {"steps": 1}, "account_id": account_id}
    )
    assert made.status_code == 202
    job = wait_job(client, made.json()["job_id"], FINISHED)
    assert job["account_id"] == account_id
    assert [j["id"] for j in client.get("/api/jobs", params={"account_id": account_id}).json()] == [
        job["id"]
    ]
    runs = client.get("/api/runs", params={"account_id": account_id, "limit": 5}).json()
    assert [r["job_id"] for r in runs] == [job["id"]]
    assert client.get(f"/api/accounts/{account_id}").json()["activity"]["job_id"] == job["id"]


# -- sessions ---------------------------------------------------------------------------------


def test_session_cookie_login_use_origin_and_logout(
    server: ServerProcess, people: PersonFactory
) -> None:
    person = people("web")
    response, token = _login(server, person.key)
    assert response.json() == {"id": person.id, "name": person.name, "is_admin": False}
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert "httponly" in attributes and "secure" not in attributes
    assert attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/"
    assert int(attributes["max-age"].split("=")[1]) == 14 * 86400
    assert person.key not in cookie and token != person.key

    own_origin = server.base_url
    with _cookie_client(server, token) as browser:
        assert browser.get("/api/me").json()["id"] == person.id
        # Writes by cookie: only from the server's own or an allowed origin.
        evil = browser.post(
            "/api/jobs", json={"kind": "noop"}, headers={"Origin": "https://x.example"}
        )
        assert "origin" in assert_error(evil, 403)
        for origin in (own_origin, "https://dash.example"):
            ok = browser.post("/api/jobs", json={"kind": "noop"}, headers={"Origin": origin})
            assert ok.status_code == 202, (origin, ok.text)
        # Reading is harmless (and a browser would not show the answer to that site).
        assert browser.get("/api/jobs", headers={"Origin": "https://x.example"}).status_code == 200
        assert len(browser.get("/api/jobs").json()) == 2

        # A Bearer key wins over the cookie, and a wrong one is not rescued by it.
        wrong = browser.get("/api/me", headers={"Authorization": "Bearer ibx_wrong_key"})
        assert_error(wrong, 401)

        logout = browser.delete("/api/session", headers={"Origin": own_origin})
        assert logout.status_code == 204
        cleared = logout.headers["set-cookie"]
        assert cleared.startswith("inboxd_session=") and re.search(
            r"max-age=0|expires=thu, 01 jan 1970", cleared.lower()
        )
        assert_error(browser.get("/api/me"), 401)
    # The key itself still works.
    assert person.client.get("/api/me").status_code == 200

    # Logging in from another site is refused; so are wrong keys.
    foreign = httpx.post(
        f"{server.base_url}/api/session",
        json={"key": person.key},
        headers={"Origin": "https://x.example"},
    )
    assert_error(foreign, 403)
    assert "set-cookie" not in foreign.headers
    for bad in ("ibx_not_a_key", "x" * 200):
        assert_error(httpx.post(f"{server.base_url}/api/session", json={"key": bad}), 401)
    assert_error(httpx.post(f"{server.base_url}/api/session", json={"key": ""}), 422)
    assert_error(httpx.post(f"{server.base_url}/api/session", json={}), 422)
    assert_error(
        httpx.post(f"{server.base_url}/api/session", json={"key": person.key, "admin": True}), 422
    )
    with _cookie_client(server, "forged-session-token") as forged:
        assert_error(forged.get("/api/me"), 401)


def test_revoking_a_key_ends_its_sessions(server: ServerProcess, people: PersonFactory) -> None:
    person = people("revoked")
    _, token = _login(server, person.key)
    with server.app() as opened:
        users = Users(opened.engine)
        other_key = users.create_key(users.by_name(person.name), label="second").key
    _, other_token = _login(server, other_key)
    with (
        _cookie_client(server, token) as browser,
        _cookie_client(server, other_token) as other_browser,
    ):
        assert browser.get("/api/me").status_code == 200
        with server.app() as opened:
            Users(opened.engine).revoke_key(person.key)
        assert_error(browser.get("/api/me"), 401)
        assert "revoked" in assert_error(person.client.get("/api/me"), 401)
        # A session opened with another key of the same user lives on.
        assert other_browser.get("/api/me").json()["id"] == person.id
        assert_error(httpx.post(f"{server.base_url}/api/session", json={"key": person.key}), 401)


def test_keys_and_session_tokens_are_stored_only_hashed(
    server: ServerProcess, people: PersonFactory
) -> None:
    person = people("hashed")
    _, token = _login(server, person.key)
    with server.app() as opened, reading(opened.engine) as conn:
        key_rows = [dict(r._mapping) for r in conn.execute(select(api_keys))]
        session_rows = [dict(r._mapping) for r in conn.execute(select(sessions))]
    everything = json.dumps([key_rows, session_rows], default=str)
    assert person.key not in everything and token not in everything
    assert person.key.split("_", 2)[2] not in everything  # not even the random part
    hashes = {r["key_hash"] for r in key_rows}
    assert hashlib.sha256(person.key.encode()).hexdigest() in hashes
    assert hashlib.sha256(token.encode()).hexdigest() in {r["token_hash"] for r in session_rows}


# -- isolation --------------------------------------------------------------------------------


def _covered_routes() -> set[tuple[str, str]]:
    return {
        ("GET", "/api/accounts/{account_id}"),
        ("GET", "/api/accounts/{account_id}/folders"),
        ("GET", "/api/accounts/{account_id}/categories"),
        ("PATCH", "/api/accounts/{account_id}"),
        ("DELETE", "/api/accounts/{account_id}"),
        ("POST", "/api/accounts/{account_id}/test"),
        ("POST", "/api/accounts/{account_id}/sync"),
        ("POST", "/api/accounts/{account_id}/sign-in"),
        ("GET", "/api/jobs/{job_id}"),
        ("POST", "/api/jobs/{job_id}/cancel"),
        ("POST", "/api/jobs/{job_id}/retry"),
        ("GET", "/api/jobs/{job_id}/events"),
        ("GET", "/api/messages/{message_id}"),
        ("GET", "/api/messages/{message_id}/raw"),
        ("GET", "/api/messages/{message_id}/html"),
        ("GET", "/api/messages/{message_id}/attachments/{index}"),
        ("GET", "/api/threads/{thread_id}"),
        ("POST", "/api/messages/{message_id}/category"),
        ("DELETE", "/api/rules/{rule_id}"),
        ("POST", "/api/messages/{message_id}/mark"),
        ("POST", "/api/jobs/{job_id}/undo"),
        ("GET", "/api/jobs/{job_id}/journal"),
        ("GET", "/api/cleanups/{cleanup_id}"),
        ("POST", "/api/cleanups/{cleanup_id}/approve"),
        ("GET", "/api/newsletters/extractions/{extraction_id}"),
        ("GET", "/api/newsletters/extractions/{extraction_id}/export"),
        ("DELETE", "/api/newsletters/extractions/{extraction_id}"),
        ("GET", "/api/webhooks/{webhook_id}"),
        ("PATCH", "/api/webhooks/{webhook_id}"),
        ("DELETE", "/api/webhooks/{webhook_id}"),
        ("GET", "/api/webhooks/{webhook_id}/deliveries"),
        ("POST", "/api/webhooks/{webhook_id}/test"),
    }


def _synced_mail(server: ServerProcess, client: httpx.Client) -> tuple[str, dict[str, Any]]:
    """A Maildir account of ``client``'s user holding one message, synced: its id and the
    message (a path account is made on the server's side: only admins may add one)."""
    root = server.data_dir / unique("maildir")
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1.host:2,S").write_bytes(make_message(1))
    owner = client.get("/api/me").json()["id"]
    with server.app() as opened:
        account = Accounts(opened.engine, opened.settings).add(
            "maildir", unique("md"), {"path": str(root)}, owner=owner
        )
    job_id = client.post(f"/api/accounts/{account.id}/sync").json()["job_id"]
    assert wait_job(client, job_id, FINISHED)["status"] == "completed"
    found = client.get("/api/messages", params={"account_id": account.id}).json()["messages"]
    assert len(found) == 1
    return account.id, found[0]


def test_another_users_objects_answer_404_on_every_route(
    server: ServerProcess, people: PersonFactory, admin: httpx.Client
) -> None:
    alice, bob, carol = people("alice"), people("bob"), people("carol")
    a = alice.client
    mail_account, message = _synced_mail(server, carol.client)
    account = a.post("/api/accounts", json=imap_account(unique("alice"), closed_port())).json()
    account_id = account["id"]
    done = start_job(a, "selftest", {"steps": 1})
    wait_job(a, done, FINISHED)
    crashed = start_job(a, "test.crash")
    wait_job(a, crashed, ("failed",))
    running = a.post(
        "/api/jobs",
        json={
            "kind": "selftest",
            "params": {"steps": 100_000, "step_ms": 20},
            "account_id": account_id,
        },
    ).json()["job_id"]
    wait_job(a, running, ("running",))
    alice_jobs = {done, crashed, running}

    # Every route that names an object is covered here, including ones added later.
    # (A sign-in provider, google or microsoft, is not an object of anyone's.)
    named = {(m, p) for m, p in _operations(server) if "{" in p and "{provider}" not in p}
    assert named == _covered_routes(), named ^ _covered_routes()

    b = bob.client
    unknown = str(uuid.uuid4())

    def same_as_unknown(
        method: str, template: str, real: str, body: Any = None, missing: str = unknown
    ) -> None:
        mine = b.send(b.build_request(method, template.format(id=real), json=body), stream=True)
        try:
            mine.read()
        finally:
            mine.close()
        message = assert_error(mine, 404)
        nothing = b.request(method, template.format(id=missing), json=body)
        # Indistinguishable from an id that does not exist: nothing leaks its existence.
        assert message.replace(real, "ID") == assert_error(nothing, 404).replace(missing, "ID")

    patch = {"name": "stolen", "enabled": False}
    same_as_unknown("GET", "/api/accounts/{id}", account_id)
    same_as_unknown("GET", "/api/accounts/{id}/folders", account_id)
    same_as_unknown("GET", "/api/accounts/{id}/categories", account_id)
    same_as_unknown("PATCH", "/api/accounts/{id}", account_id, patch)
    same_as_unknown("POST", "/api/accounts/{id}/test", account_id)
    same_as_unknown("POST", "/api/accounts/{id}/sync", account_id)
    same_as_unknown("POST", "/api/accounts/{id}/sign-in", account_id)
    same_as_unknown("DELETE", "/api/accounts/{id}", account_id)
    for job_id in alice_jobs:
        same_as_unknown("GET", "/api/jobs/{id}", job_id)
        same_as_unknown("POST", "/api/jobs/{id}/cancel", job_id)
        same_as_unknown("POST", "/api/jobs/{id}/retry", job_id)
        same_as_unknown("GET", "/api/jobs/{id}/events", job_id)
        same_as_unknown("POST", "/api/jobs/{id}/undo", job_id)
        same_as_unknown("GET", "/api/jobs/{id}/journal", job_id)
    # Carol's mail (message ids are numbers).
    for template in (
        "/api/messages/{id}",
        "/api/messages/{id}/raw",
        "/api/messages/{id}/html",
        "/api/messages/{id}/attachments/0",
    ):
        same_as_unknown("GET", template, str(message["id"]), missing=str(2**62))
    same_as_unknown("GET", "/api/threads/{id}", str(message["thread_id"]), missing=str(2**62))
    category = {"category": "spam", "sender": True}
    same_as_unknown("POST", "/api/messages/{id}/category", str(message["id"]), category, str(2**62))
    marked = {"action": "read"}
    same_as_unknown("POST", "/api/messages/{id}/mark", str(message["id"]), marked, str(2**62))
    cleanup = carol.client.post("/api/cleanups", json={"account_id": mail_account})
    assert cleanup.status_code == 202, cleanup.text
    same_as_unknown("GET", "/api/cleanups/{id}", cleanup.json()["job_id"])
    same_as_unknown("POST", "/api/cleanups/{id}/approve", cleanup.json()["job_id"], {})
    assert b.get("/api/cleanups").json() == {"cleanups": []}
    assert_error(b.post("/api/cleanups", json={"account_id": mail_account}), 404)
    extraction = carol.client.post("/api/newsletters/extractions", json={"days_back": 1})
    assert extraction.status_code == 202, extraction.text
    same_as_unknown("GET", "/api/newsletters/extractions/{id}", extraction.json()["extraction_id"])
    exported = extraction.json()["extraction_id"]
    same_as_unknown("GET", "/api/newsletters/extractions/{id}/export", exported)
    same_as_unknown("DELETE", "/api/newsletters/extractions/{id}", exported)
    assert b.get("/api/newsletters/extractions").json() == {"extractions": []}
    aimed_at = {"account_id": mail_account}
    assert_error(b.post("/api/newsletters/extractions", json=aimed_at), 404)
    # A kind Carol never runs here: nothing is ever sent to the (public) URL.
    hook = carol.client.post(
        "/api/webhooks", json={"url": "https://hooks.example/in", "kinds": ["noop"]}
    )
    assert hook.status_code == 201, hook.text
    hook_id = hook.json()["id"]
    same_as_unknown("GET", "/api/webhooks/{id}", hook_id)
    same_as_unknown("PATCH", "/api/webhooks/{id}", hook_id, {"enabled": False})
    same_as_unknown("GET", "/api/webhooks/{id}/deliveries", hook_id)
    same_as_unknown("POST", "/api/webhooks/{id}/test", hook_id)
    same_as_unknown("DELETE", "/api/webhooks/{id}", hook_id)
    assert b.get("/api/webhooks").json() == {"webhooks": []}
    assert carol.client.get(f"/api/webhooks/{hook_id}").json()["enabled"] is True
    assert carol.client.get(f"/api/webhooks/{hook_id}/deliveries").json() == {"deliveries": []}
    aimed_hook = {"url": "https://hooks.example/in", "account_ids": [mail_account]}
    assert_error(b.post("/api/webhooks", json=aimed_hook), 404)
    rule = carol.client.post("/api/rules", json={"match": "from:x", "category": "spam"})
    assert rule.status_code == 201, rule.text
    same_as_unknown("DELETE", "/api/rules/{id}", str(rule.json()["rule"]["id"]), missing=str(2**62))
    assert b.get("/api/rules").json() == {"rules": []}
    aimed = {"match": "from:x", "category": "spam", "account_id": account_id}
    assert_error(b.post("/api/rules", json=aimed), 404)
    assert_error(b.get("/api/messages", params={"account_id": mail_account}), 404)
    assert_error(b.get("/api/threads", params={"account_id": mail_account}), 404)
    assert b.get("/api/messages").json()["messages"] == []
    assert b.get("/api/threads").json()["threads"] == []
    assert_error(b.get("/api/messages/top", params={"account_id": mail_account}), 404)
    assert b.get("/api/messages/top", params={"since": "7d"}).json()["messages"] == []
    assert b.get("/api/messages", params={"sort": "priority"}).json()["messages"] == []
    assert carol.client.get(f"/api/messages/{message['id']}").status_code == 200
    assert len(carol.client.get("/api/rules").json()["rules"]) == 1
    # Where an account is a query or body value.
    assert_error(b.get("/api/runs", params={"account_id": account_id}), 404)
    assert_error(b.post("/api/jobs", json={"kind": "noop", "account_id": account_id}), 404)
    assert_error(b.post("/api/jobs", json={"kind": "sync", "account_id": account_id}), 404)
    export = {"account_id": account_id, "format": "mbox", "out": "/tmp/stolen.mbox"}
    assert_error(b.post("/api/jobs", json={"kind": "export", "params": export}), 404)
    # A task's params may not name an account the job's own account_id does not.
    index = {"account_id": account_id}
    assert_error(b.post("/api/jobs", json={"kind": "index", "params": index}), 422)
    for_alice = {"kind": "index", "account_id": account_id, "params": index}
    assert_error(b.post("/api/jobs", json=for_alice), 404)
    assert b.get("/api/jobs", params={"account_id": account_id}).json() == []
    # Lists and snapshots do not show them either.
    assert b.get("/api/accounts").json() == []
    assert b.get("/api/jobs").json() == []
    assert b.get("/api/runs").json() == []
    assert b.get("/api/processing/current-status").json()["current_processing"] == []
    assert b.get("/api/processing/current-status").json()["recent_runs"] == []

    # Nothing of Alice's changed; she (and an admin) still see everything.
    assert a.get(f"/api/accounts/{account_id}").json()["name"] == account["name"]
    assert a.get(f"/api/accounts/{account_id}").json()["enabled"] is True
    assert a.get(f"/api/jobs/{running}").json()["cancel_requested"] is False
    assert a.get(f"/api/jobs/{crashed}").json()["status"] == "failed"
    assert {j["id"] for j in a.get("/api/jobs").json()} == alice_jobs
    assert len(a.get("/api/jobs", params={"account_id": account_id}).json()) == 1
    assert {r["job_id"] for r in a.get("/api/runs").json()} == {done, crashed}
    status = a.get("/api/processing/current-status").json()
    assert [s["job_id"] for s in status["current_processing"]] == [running]
    assert admin.get(f"/api/accounts/{account_id}").status_code == 200
    assert admin.get(f"/api/jobs/{running}").json()["id"] == running
    assert {account_id} <= {acc["id"] for acc in admin.get("/api/accounts").json()}

    assert a.post(f"/api/jobs/{running}/cancel").status_code == 200
    assert wait_job(a, running, FINISHED)["status"] == "cancelled"


# -- limits and restarts (servers of their own) -----------------------------------------------


def test_job_creation_and_login_are_rate_limited_per_user_and_address(tmp_path: Path) -> None:
    # 4 a minute: a burst of 1, then one every 15 s.
    limited = start_server(
        tmp_path / "limits",
        env={
            "INBOXD_SYNC_INTERVAL_SECONDS": "0",
            "INBOXD_JOBS_RATE_PER_MINUTE": "4",
            "INBOXD_LOGIN_RATE_PER_MINUTE": "4",
        },
        worker=False,
    )
    try:
        alice = limited.client(limited.add_user(unique("alice")))
        bob = limited.client(limited.add_user(unique("bob")))
        with alice, bob:
            account_id = alice.post(
                "/api/accounts", json=imap_account(unique("acct"), closed_port())
            ).json()["id"]
            # Bob's 404 on Alice's account costs him nothing.
            assert_error(bob.post(f"/api/accounts/{account_id}/sync"), 404)
            assert bob.post("/api/jobs", json={"kind": "noop"}).status_code == 202
            assert alice.post("/api/jobs", json={"kind": "noop"}).status_code == 202
            limited_calls: list[Callable[[], httpx.Response]] = [
                lambda: alice.post("/api/jobs", json={"kind": "noop"}),
                lambda: alice.post(f"/api/accounts/{account_id}/sync"),
                lambda: bob.post("/api/jobs", json={"kind": "noop"}),
            ]
            for limited_call in limited_calls:
                refused = limited_call()
                assert_error(refused, 429)
                assert 1 <= int(refused.headers["retry-after"]) <= 15
            assert len(alice.get("/api/jobs").json()) == 1  # nothing was queued
            assert alice.get("/api/me").status_code == 200  # reading is not limited

            # Logins per client address: the wrong key spends the one try, the right one
            # then has to wait (guessing keys is throttled).
            login = f"{limited.base_url}/api/session"
            assert_error(httpx.post(login, json={"key": "ibx_guess_guess"}), 401)
            throttled = httpx.post(login, json={"key": limited.admin_key})
            assert_error(throttled, 429)
            assert 1 <= int(throttled.headers["retry-after"]) <= 15
            assert "set-cookie" not in throttled.headers
    finally:
        limited.stop()


def test_runs_are_kept_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "restart"
    first = start_server(data_dir, env={"INBOXD_SYNC_INTERVAL_SECONDS": "0"})
    try:
        key = first.add_user("keeper")
        with first.client(key) as client:
            account_id = client.post(
                "/api/accounts", json=imap_account(unique("acct"), closed_port())
            ).json()["id"]
            plain = wait_job(client, start_job(client, "selftest", {"steps": 1}), FINISHED)
            tied = client.post(
                "/api/jobs",
                json={"kind": "selftest", "params": {"steps": 2}, "account_id": account_id},
            ).json()["job_id"]
            wait_job(client, tied, FINISHED)
            before = client.get("/api/runs").json()
    finally:
        first.stop()
    assert [r["job_id"] for r in before] == [tied, plain["id"]]

    second = start_server(data_dir, env={"INBOXD_SYNC_INTERVAL_SECONDS": "0"})
    try:
        with second.client(key) as client:
            assert client.get("/api/runs").json() == before
            only = client.get("/api/runs", params={"account_id": account_id, "limit": 10})
            assert only.json() == [before[0]]
            assert client.get("/api/runs", params={"limit": 1}).json() == [before[0]]
            assert client.get("/api/processing/current-status").json()["recent_runs"] == before
    finally:
        second.stop()


def test_values_the_database_cannot_store_are_refused_not_a_server_error(
    database_url: str, tmp_path: Path
) -> None:
    # PostgreSQL refuses NUL characters in text; malformed settings must not reach the
    # account registry. Either way the caller gets a 4xx in the one error shape.
    started = start_server(tmp_path / "data", database_url=database_url, env=ENV, worker=False)
    try:
        with started.client() as client:
            imap = imap_account(unique("nul"), 143)
            nul, in_url = "a\x00b", "a%00b"
            attempts: list[tuple[str, str, dict[str, Any] | None]] = [
                ("GET", f"/api/jobs/{in_url}", None),
                ("POST", f"/api/jobs/{in_url}/cancel", None),
                ("GET", f"/api/accounts/{in_url}", None),
                ("PATCH", f"/api/accounts/{in_url}", {"name": "x"}),
                ("GET", f"/api/jobs?kind={in_url}", None),
                ("GET", f"/api/jobs?account_id={in_url}", None),
                ("GET", f"/api/runs?account_id={in_url}", None),
                ("POST", "/api/jobs", {"kind": "noop", "account_id": nul}),
                ("POST", "/api/accounts", {**imap, "name": nul}),
                ("POST", "/api/accounts", {**imap, "addresses": [nul]}),
                ("POST", "/api/accounts", {**imap, "settings": {**imap["settings"], "host": nul}}),
                ("POST", "/api/accounts", {**imap, "settings": {**imap["settings"], "x": nul}}),
            ]
            for folders in (5, "INBOX", [1], {"INBOX": 1}):
                settings = {**imap["settings"], "folders": folders}
                attempts.append(("POST", "/api/accounts", {**imap, "settings": settings}))
            for method, path, body in attempts:
                # A new connection each time: a server error would also drop the connection.
                with started.client() as fresh:
                    response = fresh.request(method, path, json=body)
                if response.status_code in (200, 201):
                    continue  # SQLite stores a NUL: fine, as long as nothing breaks
                assert 400 <= response.status_code < 500, (method, path, body, response.text)
                assert_error(response, response.status_code)
            assert client.get("/readyz").status_code == 200
    finally:
        started.stop()
    log = started.log()
    assert "unexpected error" not in log and "Exception in ASGI application" not in log, log


def test_an_oversized_body_is_refused_before_it_is_read_whole(
    server: ServerProcess, people: PersonFactory
) -> None:
    person = people("big")
    padding = "a" * (1024 * 1024)
    declared = person.client.post("/api/jobs", json={"kind": "noop", "params": {"x": padding}})
    assert "over 1048576 bytes" in assert_error(declared, 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"kind": "noop", "params": {"x": "'
        for _ in range(30):
            yield b"a" * 50_000
        yield b'"}}'

    streamed = person.client.post(
        "/api/jobs", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert_error(streamed, 413)
    assert person.client.get("/api/jobs").json() == []  # nothing was queued
    assert person.client.post("/api/jobs", json={"kind": "noop"}).status_code == 202
