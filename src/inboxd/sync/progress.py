"""What the sync reports to: its step, counts, log lines, and the cancellation check
(:class:`inboxd.jobs.progress.Progress` is one; unit tests pass a fake)."""

from __future__ import annotations

from typing import Any, Protocol


class SyncProgress(Protocol):
    """The progress handle the engine, its batch stores and its helper sharing use."""

    def step(self, name: str, *, total: int | None = None, message: str | None = None) -> None:
        """Start a step; resets the counts."""
        ...

    def update(
        self,
        current: int | None = None,
        *,
        advance: int = 0,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Set or advance the count."""
        ...

    def log(self, message: str, **data: Any) -> None:
        """A line of the job's log."""
        ...

    def check_cancelled(self) -> None:
        """Raise JobCancelled when the job was cancelled."""
        ...
