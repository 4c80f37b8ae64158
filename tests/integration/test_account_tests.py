"""Account connection tests (``POST /api/accounts/{id}/test``) wait on mail servers: they
run on a small pool of their own, with a per-user rate, so a user testing against a server
that never answers cannot slow down anyone else's requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, start_server

SLOTS = 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose connections are accepted by the kernel and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        yield int(listener.getsockname()[1])


def _server(tmp_path: Path, per_minute: int) -> ServerProcess:
    env = {
        "INBOXD_ACCOUNT_TESTS_PER_MINUTE": str(per_minute),
        "INBOXD_ACCOUNT_TEST_CONCURRENCY": str(SLOTS),
        "INBOXD_IMAP_TIMEOUT_SECONDS": "3",
        "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    }
    return start_server(tmp_path, env=env, worker=False)


def _silent_account(client: httpx.Client, port: int) -> str:
    body = {
        "provider": "imap",
        "name": "silent",
        "settings": {"host": "127.0.0.1", "port": port, "security": "none", "username": "u"},
        "secret": {"password": "p"},
    }
    created = client.post("/api/accounts", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_tests_against_a_silent_server_leave_other_users_unhurt(
    tmp_path: Path, silent_port: int
) -> None:
    server = _server(tmp_path, per_minute=10_000)
    try:
        other_key = server.add_user("bob")
        with server.client() as admin:
            account_id = _silent_account(admin, silent_port)
        answers: list[int] = []

        def test_once() -> None:
            with server.client() as client:
                answers.append(client.post(f"/api/accounts/{account_id}/test").status_code)

        testers = [threading.Thread(target=test_once) for _ in range(60)]
        for tester in testers:
            tester.start()
        time.sleep(0.5)  # the first tests now hold their slots, waiting on the silent server
        slowest = 0.0
        with server.client(other_key) as bob:
            for _ in range(10):
                began = time.monotonic()
                assert bob.get("/api/me").status_code == 200
                slowest = max(slowest, time.monotonic() - began)
        for tester in testers:
            tester.join(timeout=60)
        assert slowest < 1.0, f"another user's request took {slowest:.2f}s"
        assert answers.count(200) >= SLOTS, answers
        assert answers.count(429) >= 60 - 3 * SLOTS, "tests beyond the slots are refused at once"
        assert set(answers) <= {200, 429}
    finally:
        server.stop()


def test_each_user_may_run_a_few_tests_a_minute(tmp_path: Path, silent_port: int) -> None:
    server = _server(tmp_path, per_minute=2)
    try:
        with server.client() as admin:
            account_id = _silent_account(admin, silent_port)
            statuses = [admin.post(f"/api/accounts/{account_id}/test") for _ in range(3)]
        assert [s.status_code for s in statuses[:2]] == [200, 200]
        refused = statuses[2]
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert statuses[0].json()["ok"] is False
    finally:
        server.stop()


def test_a_test_does_not_tell_closed_ports_from_silent_ones(
    tmp_path: Path, silent_port: int
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = int(probe.getsockname()[1])  # bound, never listening: refused
    server = _server(tmp_path, per_minute=100)
    try:
        with server.client() as admin:
            errors = []
            for port in (closed_port, silent_port):
                account_id = _silent_account(admin, port)
                tested = admin.post(f"/api/accounts/{account_id}/test").json()
                assert tested["ok"] is False
                errors.append(tested["error"].replace(str(port), "PORT"))
        assert errors[0] == errors[1], errors
        assert "refused, timed out or unreachable" in errors[0]
    finally:
        server.stop()
