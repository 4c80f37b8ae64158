"""Periodic jobs. Safe to run in several processes at once.

Time is cut into slots of ``every`` seconds. For each slot, exactly one scheduler wins the
slot (a compare-and-set on ``schedules.last_slot``) and enqueues; its job also carries a
dedupe key, so a slow run is never doubled by the next slot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from inboxd.db.engine import writing
from inboxd.db.tables import schedules
from inboxd.db.types import utcnow
from inboxd.errors import InboxdError
from inboxd.jobs.model import Job
from inboxd.jobs.services import JobServices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """Enqueue ``kind`` with ``params`` every ``every`` seconds."""

    name: str
    kind: str
    every: float
    params: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    account_id: str | None = None
    dedupe_key: str | None = None

    def slot(self, now: datetime) -> int:
        """The number of the time slot ``now`` falls in."""
        return int(now.timestamp() // self.every)

    def slot_start(self, slot: int) -> datetime:
        """When time slot ``slot`` begins."""
        return datetime.fromtimestamp(slot * self.every, UTC)


#: Functions that list schedules; evaluated on every tick so they follow data changes.
ScheduleSource = Callable[[JobServices], list[Schedule]]
_SOURCES: list[ScheduleSource] = []


def schedule_source(source: ScheduleSource) -> ScheduleSource:
    """Register a function that lists schedules (decorator)."""
    _SOURCES.append(source)
    return source


@schedule_source
def _builtin(app: JobServices) -> list[Schedule]:
    found = [Schedule(name="prune", kind="prune", every=3600.0, dedupe_key="schedule:prune")]
    for spec in app.settings.schedules:
        try:
            found.append(
                Schedule(
                    name=str(spec["name"]),
                    kind=str(spec["kind"]),
                    every=float(spec["every"]),
                    params=dict(spec.get("params") or {}),
                    dedupe_key=f"schedule:{spec['name']}",
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.error("ignoring invalid schedule %r: %s", spec, exc)
    return found


class Scheduler:
    """Enqueues due periodic jobs; call :meth:`tick` or run it in a thread."""

    def __init__(self, app: JobServices, *, interval: float = 1.0) -> None:
        self.app = app
        self.interval = interval

    def schedules(self) -> list[Schedule]:
        """Every schedule in force now."""
        found: list[Schedule] = []
        for source in _SOURCES:
            found.extend(source(self.app))
        return found

    def tick(self, now: datetime | None = None) -> list[Job]:
        """Enqueue the jobs whose slot has come and that no other scheduler took."""
        now = now or utcnow()
        enqueued = []
        for item in self.schedules():
            if item.every <= 0:
                continue
            slot = item.slot(now)
            if not self._win_slot(item.name, slot, now):
                continue
            try:
                job = self.app.queue.enqueue(
                    item.kind,
                    item.params,
                    owner=item.owner,
                    account_id=item.account_id,
                    dedupe_key=item.dedupe_key,
                    # Due at the start of its slot (so the job says which slot it is for,
                    # however late a busy scheduler got to it), never later than now.
                    run_at=min(item.slot_start(slot), utcnow()),
                )
            except InboxdError as exc:
                log.error("schedule %s could not enqueue: %s", item.name, exc)
                continue
            enqueued.append(job)
        return enqueued

    def _win_slot(self, name: str, slot: int, now: datetime) -> bool:
        try:
            with writing(self.app.engine) as conn:
                last = conn.execute(
                    select(schedules.c.last_slot).where(schedules.c.name == name)
                ).scalar()
                if last is None:
                    conn.execute(
                        insert(schedules).values(name=name, last_slot=slot, last_enqueued_at=now)
                    )
                    return True
                return bool(
                    conn.execute(
                        update(schedules)
                        .where(schedules.c.name == name, schedules.c.last_slot < slot)
                        .values(last_slot=slot, last_enqueued_at=now)
                    ).rowcount
                )
        except IntegrityError:
            return False  # another scheduler inserted the row first: it owns this slot

    def run_until(self, stop: threading.Event) -> Callable[[], None]:
        """A loop for a thread: tick every ``interval`` until ``stop`` is set."""

        def loop() -> None:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("scheduler tick failed")
                stop.wait(self.interval)

        return loop
