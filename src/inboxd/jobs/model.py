"""Job records and their states (no I/O).

State machine::

    awaiting_approval ──approve──► pending ──claim──► running ──► completed
            │                        ▲  │               │ │
            └──────cancel──────┐     │  └──cancel──┐    │ └──► failed  (permanent, no attempts left)
                               ▼     │             ▼    │
                           cancelled ◄─────────────┴────┘  (cancel at a checkpoint)
                                     │
                     retryable error, lease expired, or released at shutdown → pending
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Row

# Re-exported: the queue's callers have always imported these names from here.
from inboxd.vocabulary import EventType as EventType
from inboxd.vocabulary import JobStatus as JobStatus

FINISHED = tuple(s.value for s in JobStatus if s.finished)


def new_job_id() -> str:
    """A time-ordered UUIDv7 string: the one and only id of a job, made at enqueue."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, kw_only=True)
class Job:
    """A snapshot of one job row."""

    id: str
    kind: str
    owner: str | None
    account_id: str | None
    queue: str
    priority: int
    status: JobStatus
    params: dict[str, Any]
    attempts: int
    max_attempts: int
    run_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    dedupe_key: str | None
    step: str | None
    progress_current: int
    progress_total: int | None
    message: str | None
    rate: float | None
    eta_seconds: float | None
    checkpoint: Any
    result: Any
    error: str | None
    error_detail: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    queue_position: int | None = None
    deduplicated: bool = False

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``jobs`` row."""
        data = dict(row._mapping)
        data["status"] = JobStatus(data["status"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def evolve(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def percent(self) -> float | None:
        """Progress in percent, when the total is known."""
        if not self.progress_total:
            return 100.0 if self.status == JobStatus.COMPLETED else None
        return round(min(100.0, 100.0 * self.progress_current / self.progress_total), 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what ``--json`` and the API show); never any secret."""
        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "account_id": self.account_id,
            "queue": self.queue,
            "priority": self.priority,
            "status": self.status.value,
            "params": self.params,
            "step": self.step,
            "progress": {
                "current": self.progress_current,
                "total": self.progress_total,
                "percent": self.percent,
            },
            "message": self.message,
            "rate": self.rate,
            "eta_seconds": self.eta_seconds,
            "queue_position": self.queue_position,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "cancel_requested": self.cancel_requested,
            "dedupe_key": self.dedupe_key,
            "error": self.error,
            "result": self.result,
            "run_at": _iso(self.run_at),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """One entry of the append-only event log."""

    id: int
    job_id: str
    type: EventType
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``job_events`` row."""
        m = row._mapping
        return cls(
            id=int(m["id"]),
            job_id=m["job_id"],
            type=EventType(m["type"]),
            payload=m["payload"],
            created_at=m["created_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "type": self.type.value,
            "payload": self.payload,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class LeaseState:
    """What a heartbeat learned: jobs to cancel, and jobs this worker no longer holds."""

    cancel_requested: frozenset[str]
    lost: frozenset[str]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
