"""Live figures of long-running parts of a process, read by /metrics at scrape time.

A part that keeps state worth watching (e.g. the IMAP IDLE watcher's open connections)
provides a reader under a name here; a name nobody provides reads 0. Readers report only
the process they run in: ``/metrics`` is served by the web process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Open IMAP IDLE (or NOTIFY) connections of the watcher.
IDLE_CONNECTIONS = "idle_connections"

_readers: dict[str, Callable[[], float]] = {}
_lock = threading.Lock()


def provide(name: str, reader: Callable[[], float]) -> None:
    """Report ``reader()`` under ``name`` from now on (replacing an earlier reader)."""
    with _lock:
        _readers[name] = reader


def withdraw(name: str) -> None:
    """Stop reporting ``name`` (it reads 0 again)."""
    with _lock:
        _readers.pop(name, None)


def read(name: str) -> float:
    """The current value of ``name``; 0 when nothing provides it or its reader fails."""
    with _lock:
        reader = _readers.get(name)
    if reader is None:
        return 0.0
    try:
        return float(reader())
    except Exception:
        # A broken reader must not take the whole scrape down with it.
        log.exception("reading the gauge %s failed", name)
        return 0.0
