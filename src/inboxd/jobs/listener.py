"""PostgreSQL LISTEN on its own connection, turning notifications into callbacks.

Notifications are hints: whoever is woken re-reads the database, and callers poll as well,
so a lost notification (connection drop, server restart) only delays work a little.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Engine

log = logging.getLogger(__name__)

Callback = Callable[[str, str], None]


def libpq_url(engine: Engine) -> str:
    """The engine's URL as libpq understands it (no SQLAlchemy driver suffix)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """A background thread that LISTENs on channels and calls ``callback(channel, payload)``."""

    def __init__(self, engine: Engine, channels: Sequence[str], callback: Callback) -> None:
        self._url = libpq_url(engine)
        self._channels = list(channels)
        self._callback = callback
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inboxd-listen", daemon=True)

    def start(self, *, wait: float = 5.0) -> None:
        """Start listening; waits until the first LISTEN is in place."""
        self._thread.start()
        self._ready.wait(wait)

    def stop(self) -> None:
        """Stop the thread (within about a second)."""
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.1
            except psycopg.Error as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
                # Anything missed while disconnected is found by the callers' polling.
                self._callback("", "")
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            for channel in self._channels:
                conn.execute(f'LISTEN "{channel}"')
            self._ready.set()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.5):
                    self._callback(note.channel, note.payload)
                    if self._stop.is_set():
                        return
