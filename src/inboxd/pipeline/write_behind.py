"""One batch written while the next is prepared: the index and triage jobs spend most of a
batch's time in Python (parsing, deciding) and the database most of its time writing, so
the two overlap on a writer thread. Batches are still written one after the other."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from inboxd import logs

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """At most one write in flight, on a thread of its own."""

    def __init__(self, name: str) -> None:
        self._writer = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=name,
            initializer=logs.adopt,
            initargs=(logs.current_job(),),
        )
        self._pending: Future[T] | None = None

    def submit(self, write: Callable[..., T], *args: Any) -> T | None:
        """Wait for the write in flight (raising its error), then start ``write(*args)``;
        returns what the finished write returned (None when there was none)."""
        done = self.wait()
        self._pending = self._writer.submit(write, *args)
        return done

    def wait(self) -> T | None:
        """Wait for the write in flight; what it returned (raises its error)."""
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else None

    def close(self) -> None:
        """Let the write in flight commit or roll back, then stop the thread. Its error is
        left to whoever waits for it: a job that stops for another reason keeps that one."""
        try:
            if self._pending is not None:
                self._pending.exception()
        finally:
            self._writer.shutdown(wait=True)
