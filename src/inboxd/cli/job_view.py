"""What a watch knows of a job: built from a snapshot (``Job.to_dict``, locally or from the
API, which have the same shape) and moved on by the job's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inboxd.vocabulary import JobStatus


@dataclass
class JobView:
    """A job as the watch shows it."""

    id: str
    kind: str
    status: JobStatus
    step: str | None = None
    current: int = 0
    total: int | None = None
    message: str | None = None
    rate: float | None = None
    queue_position: int | None = None
    cancel_requested: bool = False
    error: str | None = None
    result: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    #: The snapshot this view was built from (what ``--json`` prints at the end).
    snapshot: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, job: dict[str, Any]) -> JobView:
        """From a job snapshot."""
        progress = job.get("progress") or {}
        return cls(
            id=str(job["id"]),
            kind=str(job["kind"]),
            status=JobStatus(job["status"]),
            step=job.get("step"),
            current=int(progress.get("current") or 0),
            total=progress.get("total"),
            message=job.get("message"),
            rate=job.get("rate"),
            queue_position=job.get("queue_position"),
            cancel_requested=bool(job.get("cancel_requested")),
            error=job.get("error"),
            result=job.get("result"),
            started_at=job.get("started_at"),
            finished_at=job.get("finished_at"),
            snapshot=job,
        )

    @property
    def finished(self) -> bool:
        """Whether the job reached an end state."""
        return self.status.finished

    def apply(self, event_type: str, payload: dict[str, Any]) -> None:
        """Move on by one event of the job (``status``, ``progress``, ``log``, ``error``)."""
        if event_type == "progress":
            self.step = payload.get("step", self.step)
            self.current = int(payload.get("current") or 0)
            self.total = payload.get("total")
            self.message = payload.get("message")
            self.rate = payload.get("rate")
        elif event_type == "status":
            self.status = JobStatus(payload["status"])
            if self.status != JobStatus.PENDING:
                self.queue_position = None
            if payload.get("error"):
                self.error = str(payload["error"])
        elif event_type == "log" and payload.get("message") == "cancellation requested":
            self.cancel_requested = True

    def headline(self) -> str:
        """Status (with the queue position while pending) and step."""
        text = self.status.value.replace("_", " ")
        if self.status == JobStatus.PENDING and self.queue_position:
            text += f" #{self.queue_position}"
        if self.cancel_requested and self.status == JobStatus.RUNNING:
            text += " (cancelling)"
        if self.step and self.status == JobStatus.RUNNING:
            text += f" {self.step}"
        return text

    def counts(self) -> str:
        """done/total, or done alone when the total is unknown."""
        if self.total:
            return f"{self.current:,}/{self.total:,}"
        return f"{self.current:,}" if self.current else ""

    def rate_text(self) -> str:
        """Items per second, when known."""
        return f"{self.rate:,.0f}/s" if self.rate else ""

    def line(self) -> str:
        """All of it on one line (the display without a terminal)."""
        parts = [self.headline(), self.counts()]
        if self.total:
            parts.append(f"({min(100, self.current * 100 // self.total)}%)")
        parts += [self.rate_text(), self.message or ""]
        return " ".join(p for p in parts if p)
