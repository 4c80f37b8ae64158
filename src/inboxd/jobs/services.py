"""What the worker and the scheduler need from whoever wired the process up.

The composition root (:class:`inboxd.app.App`) satisfies this protocol as it is, so jobs/
never imports it: the arrows keep pointing down.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from inboxd.config import Settings
from inboxd.jobs.leases import Leases
from inboxd.jobs.queue import Queue


class JobServices(Protocol):
    """Settings, the engine, and the queue's client and worker sides, already open."""

    @property
    def settings(self) -> Settings:
        """The process's settings."""

    @property
    def engine(self) -> Engine:
        """The database engine."""

    @property
    def queue(self) -> Queue:
        """Enqueue and manage jobs."""

    @property
    def leases(self) -> Leases:
        """Claim, heartbeat, finish and rescue jobs."""
