"""Running inboxd as a service: JSON logs (ours, uvicorn's, the access log, a job's lines with
its ids, the workers' lines), and behind a reverse proxy (X-Forwarded-For believed only from
the proxies in INBOXD_FORWARDED_ALLOW_IPS, so rate limits key on the real client)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inboxd.jobs.model import JobStatus
from inboxd.store.users import Users
from tests.support.apps import make_app, subprocess_env, wait_for
from tests.support.server import free_port


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as a JSON object (fails on a line that is not one)."""
    found = []
    for line in text.splitlines():
        if line.strip():
            doc = json.loads(line)
            assert isinstance(doc, dict), line
            assert {"time", "level", "logger", "message"} <= doc.keys(), line
            found.append(doc)
    return found


def test_a_jobs_lines_carry_its_job_and_account_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inboxd.db'}"
    with make_app(url, tmp_path) as app:
        job = app.queue.enqueue("test.chatty", account_id="acct-7")
    env = subprocess_env(url, tmp_path / "data")
    command = [sys.executable, "-m", "inboxd", "worker", "--burst", "1", "--no-scheduler"]
    done = subprocess.run(
        [*command, "--log-format", "json"], env=env, capture_output=True, timeout=60, check=True
    )
    lines = _json_lines(done.stderr.decode())
    of_job = [line for line in lines if line.get("job_id") == job.id]
    # Library code logs with a plain logger; the worker's context adds the ids.
    said = {line["message"]: line for line in of_job}
    assert said["chatty task says hello"]["logger"] == "tests.support.tasks"
    assert said["chatty task says hello"]["account_id"] == "acct-7"
    assert said["and warns once"]["level"] == "WARNING"
    assert said["and warns once"]["account_id"] == "acct-7"
    assert any(m.startswith(f"job {job.id} (test.chatty) completed") for m in said)
    assert all(line["account_id"] == "acct-7" for line in of_job), of_job
    # Lines outside a job carry no job ids.
    outside = [line for line in lines if "job_id" not in line]
    assert outside and not any("account_id" in line for line in outside)
    assert lines[0]["time"].endswith("Z")


@dataclass
class _Server:
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    stderr: Path

    def lines(self) -> list[dict[str, Any]]:
        return _json_lines(self.stderr.read_text())


@contextmanager
def _serve(tmp_path: Path, *args: str, **env: str) -> Iterator[_Server]:
    """``inboxd serve`` with its stderr (the log) kept apart from stdout (the banner)."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'inboxd.db'}"
    with make_app(url, tmp_path) as app:
        users = Users(app.engine)
        key = users.create_key(users.ensure_admin()[0]).key
    port = free_port()
    child_env = subprocess_env(url, data, INBOXD_SYNC_INTERVAL_SECONDS="0", **env)
    stderr = tmp_path / "stderr.log"
    command = [sys.executable, "-m", "inboxd", "serve", "--port", str(port), *args]
    with stderr.open("wb") as err:
        proc = subprocess.Popen(command, env=child_env, stdout=subprocess.DEVNULL, stderr=err)
    server = _Server(f"http://127.0.0.1:{port}", key, proc, stderr)

    def ready() -> bool:
        assert proc.poll() is None, stderr.read_text()
        try:
            return httpx.get(server.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=30, interval=0.1)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=40)


def test_serve_logs_json_with_uvicorn_and_access_lines_and_json_workers(tmp_path: Path) -> None:
    env = {"INBOXD_LOG_FORMAT": "json", "INBOXD_ACCESS_LOG": "true"}
    with _serve(tmp_path, **env) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            job_id = client.post("/api/jobs", json={"kind": "noop"}).json()["job_id"]
            wait_for(
                lambda: (
                    client.get(f"/api/jobs/{job_id}").json()["status"] == JobStatus.COMPLETED.value
                ),
                timeout=30,
            )
            assert client.get("/api/nothing-here").status_code == 404
        time.sleep(0.3)
    lines = server.lines()
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers, "uvicorn's own lines go through the same formatter"
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    missing = next(line for line in access if line["path"] == "/api/nothing-here")
    assert missing["method"] == "GET" and missing["status"] == 404
    assert missing["client"].startswith("127.0.0.1:")
    # The worker child process logs in the server's format, with the job's id.
    assert any(
        line.get("job_id") == job_id and line["logger"] == "inboxd.jobs.worker" for line in lines
    )


def test_access_log_is_off_by_default(tmp_path: Path) -> None:
    with _serve(tmp_path, "--no-worker", "--log-format", "json") as server:
        assert httpx.get(server.url + "/readyz").status_code == 200
        time.sleep(0.3)
    lines = server.lines()
    assert lines and not [line for line in lines if line["logger"] == "uvicorn.access"]


def _login_statuses(server: _Server, *clients: str) -> list[int]:
    """A failed login from each forwarded client address in turn."""
    return [
        httpx.post(
            server.url + "/api/session",
            json={"key": "ibx_wrong_key"},
            headers={"X-Forwarded-For": client},
        ).status_code
        for client in clients
    ]


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(tmp_path: Path) -> None:
    # One login attempt per client in a burst: the second from the same address waits.
    limits = {"INBOXD_LOGIN_RATE_PER_MINUTE": "4", "INBOXD_ACCESS_LOG": "1"}
    proxied = {"INBOXD_FORWARDED_ALLOW_IPS": "127.0.0.1", "INBOXD_LOG_FORMAT": "json"}
    with _serve(tmp_path / "a", "--no-worker", **limits, **proxied) as server:
        statuses = _login_statuses(server, "203.0.113.7", "203.0.113.7", "198.51.100.9")
        time.sleep(0.3)
    # The test talks from 127.0.0.1, the trusted proxy: each forwarded client has its own
    # bucket, and the access log names the real client.
    assert statuses == [401, 429, 401]
    logins = [line for line in server.lines() if line.get("path") == "/api/session"]
    assert [line["client"] for line in logins] == ["203.0.113.7:0"] * 2 + ["198.51.100.9:0"]

    # A peer that is not a trusted proxy cannot pick its address by a forged header.
    untrusted = {"INBOXD_FORWARDED_ALLOW_IPS": "10.9.9.9"}
    with _serve(tmp_path / "b", "--no-worker", **limits, **untrusted) as server:
        assert _login_statuses(server, "203.0.113.7", "198.51.100.9") == [401, 429]
    # Unset: the headers are ignored altogether.
    with _serve(tmp_path / "c", "--no-worker", **limits) as server:
        assert _login_statuses(server, "203.0.113.7", "198.51.100.9") == [401, 429]
