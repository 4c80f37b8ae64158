"""The IDLE watcher as entry points start it and read it: run it, ask how it is doing."""

from __future__ import annotations

import threading

from inboxd.app import App
from inboxd.sync.idle_status import IdleStatus, idle_connections, read_status

__all__ = ["IdleStatus", "idle_connections", "idle_status", "run_idle"]


def run_idle(app: App, stop: threading.Event, *, rescan_seconds: float = 30.0) -> None:
    """Watch every enabled IMAP account's INBOX (within the connection budget) and queue a
    sync when it changes, until ``stop`` is set; returns at once when IDLE is off."""
    if app.settings.idle_max_connections <= 0:
        return
    # Here, not at the top: the web process reads the status without the IMAP stack.
    from inboxd.sync.idle import IdleMonitor

    IdleMonitor(app.engine, app.settings, app.queue, rescan_seconds=rescan_seconds).run(stop)


def idle_status(app: App) -> IdleStatus | None:
    """The running watcher's connections and accounts, or None when none runs."""
    return read_status(app.settings)
