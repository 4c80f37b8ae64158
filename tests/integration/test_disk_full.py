"""A full disk under the data directory: the sync fails at once with a clear error, the
account and /readyz say why, a graceful stop still works, the database stays intact, and
once space is freed a retry finishes without duplicates.

The data directory lives on a small tmpfs mounted for the test (root only; in CI a missing
mount fails instead of skipping, like a missing service)."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inboxd.mail.demo import generate_demo_maildir
from tests.services import is_root, require_services
from tests.support.apps import wait_for
from tests.support.server import ServerProcess, start_server

MESSAGES = 3000  # about 15 MB of mail: more than the small disk holds
ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_MIN_FREE_DISK_MB": "2",
    "INBOXD_RETRY_BASE_SECONDS": "0.1",
}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 10 MB tmpfs, unmounted at the end."""
    if not is_root():
        require_services("mounting a small filesystem needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        require_services(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _finished(server: ServerProcess, job_id: str) -> dict[str, object] | None:
    with server.client() as client:
        job: dict[str, object] = client.get(f"/api/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def test_a_full_disk_fails_the_sync_clearly_and_a_retry_after_freeing_space_finishes(
    small_disk: Path, tmp_path: Path
) -> None:
    mail = tmp_path / "mail"
    generate_demo_maildir(mail, count=MESSAGES)
    data = small_disk / "data"
    server = start_server(data, env=ENV)
    try:
        with server.client() as client:
            created = client.post(
                "/api/accounts",
                json={"provider": "maildir", "name": "big", "settings": {"path": str(mail)}},
            )
            account_id = created.json()["id"]
            job_id = client.post(f"/api/accounts/{account_id}/sync").json()["job_id"]
        job = wait_for(lambda: _finished(server, job_id), timeout=90)
        assert job["status"] == "failed"
        assert "no space left on the data directory's disk" in str(job["error"]).lower()
        assert job["attempts"] == 1, "a full disk is not retried in a loop"
        with server.client() as client:
            account = client.get(f"/api/accounts/{account_id}").json()
            ready = client.get("/readyz")
        assert account["state"] == "needs_attention"
        assert "no space left" in account["state_message"].lower()
        assert ready.status_code == 503 and "no space left" in ready.json()["error"]["message"]
        began = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - began < 30, "a graceful stop works on a full disk"
    finally:
        server.stop()
    with sqlite3.connect(data / "inboxd.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    subprocess.run(["mount", "-o", "remount,size=128m", str(small_disk)], check=True)
    server = start_server(data, env=ENV)
    try:
        with server.client() as client:
            assert client.post(f"/api/jobs/{job_id}/retry").status_code == 200
        job = wait_for(lambda: _finished(server, job_id), timeout=120)
        assert job["status"] == "completed", job
        with server.client() as client:
            account = client.get(f"/api/accounts/{account_id}").json()
        assert account["message_count"] == MESSAGES
        assert account["state"] == "ok"
    finally:
        server.stop()
    with sqlite3.connect(data / "inboxd.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
