"""What the IDLE watcher is doing, for other processes: a small JSON file in the data dir.

The watcher runs in its own process (``inboxd idle``, or the child ``inboxd serve`` starts),
so its count of live connections reaches the web process (``/metrics``, status pages) through
this file, rewritten whenever the count changes and at least every :data:`HEARTBEAT_SECONDS`.
A file older than :data:`STALE_SECONDS` belongs to a watcher that is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inboxd.config import Settings

STATUS_FILE = "idle-status.json"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS


@dataclass(frozen=True)
class IdleStatus:
    """One snapshot of a watcher process."""

    #: IMAP connections in IDLE now
    connections: int
    #: accounts with a watcher (connected, or reconnecting after a drop)
    watching: list[str] = field(default_factory=list)
    #: accounts not watched, with why: no IDLE on the server, login refused, over budget
    left_out: dict[str, str] = field(default_factory=dict)
    max_connections: int = 0
    pid: int = 0
    updated_at: float = 0.0


def status_path(settings: Settings) -> Path:
    """Where the watcher of ``settings``' data dir writes its status."""
    return settings.data_dir / STATUS_FILE


def write_status(path: Path, status: IdleStatus) -> None:
    """Replace the status file at once (readers never see half of it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(status)), encoding="utf-8")
    tmp.replace(path)


def remove_status(path: Path) -> None:
    """A watcher that stops takes its status with it."""
    with contextlib.suppress(OSError):
        path.unlink()


def read_status(settings: Settings, *, now: float | None = None) -> IdleStatus | None:
    """The running watcher's status, or None when none runs (no file, or a stale one)."""
    try:
        data = json.loads(status_path(settings).read_text(encoding="utf-8"))
        status = IdleStatus(**data)
    except (OSError, ValueError, TypeError):
        return None
    if (now if now is not None else time.time()) - status.updated_at > STALE_SECONDS:
        return None
    return status


def idle_connections(settings: Settings) -> int:
    """Live IDLE connections of the watcher on this data dir (0 when none runs)."""
    status = read_status(settings)
    return status.connections if status is not None else 0
