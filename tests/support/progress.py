"""A stand-in for a job's progress handle, for code driven outside a worker."""

from __future__ import annotations

from typing import Any

from inboxd.errors import JobCancelled


class Recorder:
    """A SyncProgress that records steps and log lines, and can stop the sync: cancel it
    (as a person would) or crash it (as a killed worker would) after some updates."""

    def __init__(self, *, stop_after: int | None = None, stop: Exception | None = None) -> None:
        self.steps: list[str] = []
        self.logs: list[str] = []
        self.current = 0
        self.updates = 0
        self.stop_after = stop_after
        self.stop = stop or JobCancelled()

    def step(self, name: str, *, total: int | None = None, message: str | None = None) -> None:
        self.steps.append(name)
        self.current = 0

    def update(
        self,
        current: int | None = None,
        *,
        advance: int = 0,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        self.current = (current if current is not None else self.current) + advance
        self.updates += 1
        self.check_cancelled()

    def log(self, message: str, **data: Any) -> None:
        self.logs.append(message)

    def check_cancelled(self) -> None:
        if self.stop_after is not None and self.updates >= self.stop_after:
            raise self.stop
