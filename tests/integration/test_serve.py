"""``inboxd serve``: first-start login, supervised workers, --no-worker, --demo, shutdown."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.support.apps import subprocess_env, wait_for
from tests.support.server import free_port, start_server


def _worker_pids(server_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == server_pid and b"worker" in cmdline:
            found.append(int(entry.name))
    return found


def test_first_start_prints_a_working_key_and_later_starts_do_not(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = subprocess_env(f"sqlite:///{data / 'inboxd.db'}", data)
    port = free_port()
    command = [sys.executable, "-m", "inboxd", "serve", "--port", str(port), "--no-worker"]
    keys = []
    for _ in range(2):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(partial(_ready, f"http://127.0.0.1:{port}"), timeout=30)
        finally:
            proc.send_signal(signal.SIGINT)
            output = proc.communicate(timeout=30)[0].decode()
        assert f"http://127.0.0.1:{port}/" in output
        keys.append(re.findall(r"ibx_[A-Za-z0-9_-]+", output))
    assert len(keys[0]) == 1, "the first start shows one key"
    assert keys[1] == [], "a key is shown once only"
    # Service managers log stdout: the key is also in a file only its owner may read.
    saved = data / "first-admin-key"
    assert saved.read_text().strip() == keys[0][0]
    assert saved.stat().st_mode & 0o777 == 0o600
    assert "inboxd keys create --user admin" in output
    # The printed key logs in (checked on a third start).
    server_env = dict(env)
    proc = subprocess.Popen(command, env=server_env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _ready(f"http://127.0.0.1:{port}"), timeout=30)
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {keys[0][0]}"}
        )
        assert me.status_code == 200 and me.json()["name"] == "admin"
        assert me.json()["is_admin"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_worker_process_is_restarted_and_jobs_still_run(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        pids = wait_for(lambda: _worker_pids(server.proc.pid), timeout=20)
        os.kill(pids[0], signal.SIGKILL)
        replaced = wait_for(
            lambda: [p for p in _worker_pids(server.proc.pid) if p not in pids], timeout=30
        )
        assert replaced
        with server.client() as client:
            job_id = client.post("/api/jobs", json={"kind": "noop"}).json()["job_id"]
            done = wait_for(
                lambda: (
                    (j := client.get(f"/api/jobs/{job_id}").json())["status"] == "completed" and j
                ),
                timeout=30,
            )
        assert done["finished_at"] is not None
    finally:
        assert server.stop() == 0


def test_no_worker_leaves_jobs_waiting_for_workers_elsewhere(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", worker=False)
    try:
        assert _worker_pids(server.proc.pid) == []
        with server.client() as client:
            answer = client.post("/api/jobs", json={"kind": "noop"})
            assert answer.status_code == 202
            time.sleep(0.5)
            job = client.get(f"/api/jobs/{answer.json()['job_id']}").json()
        assert job["status"] == "pending"
        assert job["queue_position"] == 1
    finally:
        server.stop()


@pytest.mark.slow
def test_demo_sets_up_a_synced_mailbox_owned_by_the_admin(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", demo=True)
    try:
        with server.client() as client:

            def synced() -> dict[str, object] | None:
                accounts = client.get("/api/accounts").json()
                if accounts and accounts[0]["activity"]["state"] == "completed":
                    return accounts[0]  # type: ignore[no-any-return]
                return None

            demo = wait_for(synced, timeout=120, interval=0.5)
            me = client.get("/api/me").json()
        assert demo["name"] == "Demo mailbox"
        assert demo["owner"] == me["id"]
        # 3,000 generated, a few of them deliberately broken: stored with a parse note.
        assert isinstance(demo["message_count"], int) and demo["message_count"] >= 2990
    finally:
        server.stop()


def test_shutdown_with_open_streams_is_prompt(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", worker=False)
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    clients = [httpx.Client(base_url=server.base_url, headers=headers) for _ in range(3)]
    streams = [c.stream("GET", "/api/events", timeout=30) for c in clients]
    try:
        for stream in streams:
            response = stream.__enter__()
            assert response.status_code == 200
        started = time.monotonic()
        assert server.stop(timeout=20) == 0
        assert time.monotonic() - started < 8
    finally:
        for client in clients:
            client.close()
