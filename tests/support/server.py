"""Running a real ``inboxd serve`` process for API, live-channel and browser tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from inboxd.app import App
from inboxd.config import Settings
from inboxd.store.users import Users
from tests.support.apps import TEST_TASKS, subprocess_env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A started server: where it answers and a key of its admin."""

    base_url: str
    admin_key: str
    data_dir: Path
    database_url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    keys: dict[str, str] = field(default_factory=dict)

    def app(self) -> App:
        """An App on the server's database (for set-up and checks from the test)."""
        return App.open(
            Settings(
                database_url=self.database_url,
                data_dir=self.data_dir,
                task_modules=[TEST_TASKS],
            )
        )

    def add_user(self, name: str, *, admin: bool = False) -> str:
        """Create a user with a key; returns the key."""
        with self.app() as opened:
            users = Users(opened.engine)
            key = users.create_key(users.add(name, admin=admin)).key
        self.keys[name] = key
        return key

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        """An HTTP client authenticated with ``key`` (the admin's by default)."""
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    worker: bool = True,
    demo: bool = False,
    args: tuple[str, ...] = (),
) -> ServerProcess:
    """Start ``inboxd serve`` on a free port with its own data dir; wait until ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{data_dir / 'inboxd.db'}"
    with App.open(Settings(database_url=url, data_dir=data_dir, task_modules=[TEST_TASKS])) as app:
        users = Users(app.engine)
        admin, _ = users.ensure_admin()
        admin_key = users.create_key(admin, label="tests").key
    port = free_port()
    child_env = subprocess_env(url, data_dir, INBOXD_PROGRESS_INTERVAL_MS="100")
    child_env.update(env or {})
    command = [sys.executable, "-m", "inboxd", "serve", "--port", str(port), *args]
    if not worker:
        command.append("--no-worker")
    if demo:
        command.append("--demo")
    log_path = data_dir / "server.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(command, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(
        base_url=f"http://127.0.0.1:{port}",
        admin_key=admin_key,
        data_dir=data_dir,
        database_url=url,
        env=child_env,
        proc=proc,
        log_path=log_path,
        keys={"admin": admin_key},
    )
    wait_ready(server, timeout=60.0 if demo else 30.0)
    return server


@contextmanager
def served(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``inboxd serve`` with a worker for a test module; when it stops, its log must show
    no request that ended in an unhandled exception."""
    started = start_server(data_dir, env=env)
    try:
        yield started
    finally:
        started.stop()
    log = started.log()
    assert "Exception in ASGI application" not in log, log


def wait_ready(server: ServerProcess, timeout: float) -> None:
    """Wait until the server answers /readyz; fail (and stop it) if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"inboxd serve exited early:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"inboxd serve not ready within {timeout}s:\n{server.log()}")
