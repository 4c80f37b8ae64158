"""``inboxd serve``: the API and dashboard, the scheduler and supervised worker processes.

Mail work never runs in the web process: the workers are child processes (``inboxd worker
--no-scheduler``), restarted if they die, so a sync's parsing never competes with requests
for the web process's interpreter lock. The IMAP IDLE watcher (``inboxd idle``) is one more
such child when workers run here.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from inboxd import logs
from inboxd.api.http_limits import LimitedHttpProtocol
from inboxd.api.main import DirectStreams, create_api
from inboxd.api.metrics import start_listener
from inboxd.api.pump import EventPump
from inboxd.app import App
from inboxd.jobs.scheduler import Scheduler
from inboxd.mcp.http import mount as mount_mcp
from inboxd.store.users import Users

log = logging.getLogger(__name__)

_RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class WorkerPool:
    """Worker child processes, restarted with backoff when they exit unexpectedly."""

    count: int
    grace_seconds: float = 25.0
    #: the ``inboxd`` command each child runs: workers, or the IDLE watcher
    command: tuple[str, ...] = ("worker", "--no-scheduler")
    #: the children log in the server's format (a --log-format given to serve included)
    log_format: str = "text"
    _procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the workers and their supervisor thread."""
        self._procs = [self._spawn(i) for i in range(self.count)]
        self._failures = [0] * self.count
        self._thread = threading.Thread(target=self._supervise, name="worker-pool", daemon=True)
        self._thread.start()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "inboxd", *self.command]
        if self.command[0] == "worker":
            command += ["--grace", str(self.grace_seconds)]
        command += ["--log-format", self.log_format]
        # Own process group: a Ctrl-C in the terminal reaches the server, which then stops
        # the workers in order (graceful first), instead of all at once.
        proc = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)
        log.info("started %s %d (pid %d)", self.command[0], index, proc.pid)
        return proc

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for index, proc in enumerate(self._procs):
                if proc is None or proc.poll() is None:
                    continue
                failures = self._failures[index]
                delay = _RESTART_BACKOFF[min(failures, len(_RESTART_BACKOFF) - 1)]
                log.warning(
                    "%s %d exited with %s; restarting in %.0fs",
                    self.command[0],
                    index,
                    proc.returncode,
                    delay,
                )
                self._procs[index] = None
                if self._stop.wait(delay):
                    return
                self._failures[index] = failures + 1
                self._procs[index] = self._spawn(index)

    def stop(self) -> None:
        """SIGTERM every worker (running jobs finish or go back to the queue), then wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        alive = [p for p in self._procs if p is not None and p.poll() is None]
        for proc in alive:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds + 10
        for proc in alive:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [p.pid for p in self._procs if p is not None and p.poll() is None]


class _Server(uvicorn.Server):
    """uvicorn, ending live streams as soon as shutdown begins (they never end by
    themselves, and uvicorn waits for open connections)."""

    def __init__(self, config: uvicorn.Config, pump: EventPump) -> None:
        super().__init__(config)
        self.pump = pump

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.pump.close_streams()
        super().handle_exit(sig, frame)


def _ignore_signal(_signum: int, _frame: FrameType | None) -> None:
    return None


def _die_with_parent() -> None:
    # Linux: a worker gets SIGTERM if the server is killed (even by SIGKILL), so no orphan
    # keeps running; its jobs go back to the queue as after any worker shutdown.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: Where the first admin key is also written (0600), since service managers log stdout.
FIRST_KEY_FILE = "first-admin-key"


def login_hint(app: App, *, print_key: bool = True) -> str:
    """How to log in: a first key for a new admin (shown once and written to a file only the
    owner can read), else how to make one."""
    users = Users(app.engine)
    admin, _created = users.ensure_admin()
    has_key = any(not key["revoked"] for key in users.list_keys(admin))
    if not has_key and print_key:
        issued = users.create_key(admin, label="created by inboxd serve")
        saved = _save_first_key(app.settings.data_dir / FIRST_KEY_FILE, issued.key)
        return (
            f"Log in as {admin.name!r} with this API key (shown once; keep it):\n\n"
            f"    {issued.key}\n\n"
            f"It is also in {saved} (readable by you only): delete that file once the key is "
            "kept elsewhere.\n"
        )
    return f"Log in with an API key; make one with:  inboxd keys create --user {admin.name}\n"


def _save_first_key(path: Path, key: str) -> Path:
    """Write the key to ``path``, mode 0600 (a file left by an earlier first start is replaced)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return path


def serve(
    app: App,
    *,
    host: str,
    port: int,
    workers: int,
    scheduler: bool,
    demo: bool = False,
) -> None:
    """Run until SIGINT/SIGTERM; then stop the API, the scheduler and the workers."""
    settings = app.settings
    api = create_api(app)
    state = api.state.inboxd
    # First, so that a bad address stops the start before anything else runs.
    metrics_server = None
    if settings.metrics_listen:
        metrics_server = start_listener(state.metrics, settings.metrics_listen)
        log.info("metrics on http://%s/metrics (no key: loopback only)", settings.metrics_listen)
    hint = login_hint(app)
    if demo:
        _prepare_demo(app)
    pool = WorkerPool(workers, log_format=settings.log_format) if workers > 0 else None
    idle = _idle_watcher(app, workers)
    stop = threading.Event()
    sched_thread = None
    if scheduler:
        sched_thread = threading.Thread(
            target=Scheduler(app).run_until(stop), name="scheduler", daemon=True
        )
        sched_thread.start()
    if pool is not None:
        pool.start()
    if idle is not None:
        idle.start()
    mount_mcp(api, app)
    server = _Server(uvicorn_config(app, DirectStreams(api), host=host, port=port), state.pump)
    shown = f"http://{host}:{port}/" if ":" not in host else f"http://[{host}]:{port}/"
    sys.stdout.write(f"\ninboxd is running: dashboard {shown}  (API docs {shown}docs)\n{hint}\n")
    sys.stdout.flush()
    # uvicorn restores the handlers it found and re-raises the signal once it has shut
    # down; with the default handler that would kill this process before the workers are
    # stopped below. These handlers let the re-raised signal pass.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore_signal)
    try:
        server.run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        stop.set()
        if idle is not None:
            idle.stop()
        if pool is not None:
            pool.stop()
        if sched_thread is not None:
            sched_thread.join(timeout=5)


def _idle_watcher(app: App, workers: int) -> WorkerPool | None:
    """The IMAP IDLE watcher (``inboxd idle``) as one more supervised child, beside the
    workers: its connections and threads stay out of the web process, a crash restarts it
    alone, and a split deployment runs the very same command next to its workers. None
    without workers here (run ``inboxd idle`` beside them) or with IDLE off."""
    if workers <= 0 or app.settings.idle_max_connections <= 0:
        return None
    # Its connections log out at once on SIGTERM: a short grace is plenty.
    return WorkerPool(1, grace_seconds=5.0, command=("idle",), log_format=app.settings.log_format)


def uvicorn_config(app: App, asgi: ASGIApp, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for ``asgi``: our log format, the access log if asked for, and
    X-Forwarded-* believed only from the proxies in INBOXD_FORWARDED_ALLOW_IPS."""
    settings = app.settings
    proxies = settings.forwarded_allow_ips
    return uvicorn.Config(
        asgi,
        host=host,
        port=port,
        http=LimitedHttpProtocol,
        log_config=logs.uvicorn_log_config(),
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.live_heartbeat_seconds,
        ws_ping_timeout=settings.live_heartbeat_seconds,
        timeout_graceful_shutdown=5,
        server_header=False,
        # Without trusted proxies the headers are ignored altogether (uvicorn would
        # otherwise believe any local peer by default).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=list(proxies) if proxies else None,
    )


def _prepare_demo(app: App) -> None:
    from inboxd.actions.demo import start_demo

    account, job = start_demo(app)
    sys.stdout.write(f"demo mailbox ready: account {account.name!r}, sync job {job.id}\n")
