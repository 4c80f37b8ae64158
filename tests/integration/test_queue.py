"""The queue's client side, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from inboxd.app import App
from inboxd.db.types import utcnow
from inboxd.errors import InvalidParams, InvalidState, NotFound, UnknownJobKind
from inboxd.jobs.model import EventType, JobStatus
from tests.support.apps import make_app


def test_enqueue_makes_the_id_once_and_get_returns_it(app: App) -> None:
    job = app.queue.enqueue("selftest", {"steps": 3})
    assert job.status == JobStatus.PENDING
    assert job.params == {"steps": 3, "step_ms": 100.0, "fail_at": None, "fail_mode": "permanent"}
    again = app.queue.get(job.id)
    assert again.id == job.id and again.kind == "selftest"
    assert again.queue_position == 1
    [event] = app.queue.events(job.id)
    assert event.type == EventType.STATUS and event.payload == {"status": "pending"}


def test_unknown_kind_and_bad_params_are_clear_errors(app: App) -> None:
    with pytest.raises(UnknownJobKind, match=r"unknown job kind 'nope'.*selftest"):
        app.queue.enqueue("nope")
    with pytest.raises(InvalidParams, match="steps"):
        app.queue.enqueue("selftest", {"steps": "many"})
    with pytest.raises(InvalidParams, match="surprise"):
        app.queue.enqueue("selftest", {"surprise": 1})
    # JSON's 3.0 is the integer 3 (as the params' schema says), 2.5 is not.
    assert app.queue.enqueue("selftest", {"steps": 3.0}).params["steps"] == 3
    with pytest.raises(InvalidParams, match="steps"):
        app.queue.enqueue("selftest", {"steps": 2.5})
    with pytest.raises(NotFound):
        app.queue.get("no-such-job")
    assert app.queue.counts() == {"pending": 1}


def test_dedupe_key_returns_the_active_job(app: App) -> None:
    first = app.queue.enqueue("selftest", dedupe_key="sync:acct-1")
    second = app.queue.enqueue("selftest", dedupe_key="sync:acct-1")
    assert second.id == first.id and second.deduplicated
    other = app.queue.enqueue("selftest", dedupe_key="sync:acct-2")
    assert other.id != first.id
    app.queue.cancel(first.id)
    third = app.queue.enqueue("selftest", dedupe_key="sync:acct-1")
    assert third.id != first.id and not third.deduplicated


def test_cancel_pending_is_immediate_and_recorded_in_runs(app: App) -> None:
    job = app.queue.enqueue("selftest")
    cancelled = app.queue.cancel(job.id)
    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    assert app.queue.cancel(job.id).status == JobStatus.CANCELLED  # idempotent
    types = [(e.type, e.payload["status"]) for e in app.queue.events(job.id)]
    assert types == [(EventType.STATUS, "pending"), (EventType.STATUS, "cancelled")]


def test_cancel_racing_a_claim_still_cancels(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    # The job is claimed between cancel's read (pending) and its write: the write matches
    # nothing, so cancel must read again and ask the running job to stop.
    job = app.queue.enqueue("selftest")
    real_get = app.queue.get
    reads = {"n": 0}

    def get_then_claim(job_id: str, **kwargs: object) -> object:
        found = real_get(job_id, **kwargs)  # type: ignore[arg-type]
        reads["n"] += 1
        if reads["n"] == 1:
            assert [c.id for c in app.leases.claim("w", ["default"], 10)] == [job.id]
        return found

    monkeypatch.setattr(app.queue, "get", get_then_claim)
    answered = app.queue.cancel(job.id)
    assert reads["n"] >= 2
    assert answered.status == JobStatus.RUNNING and answered.cancel_requested


def test_approval_gate(app: App) -> None:
    job = app.queue.enqueue("selftest", awaiting_approval=True)
    assert job.status == JobStatus.AWAITING_APPROVAL
    assert app.leases.claim("w", ["default"], 10) == []
    with pytest.raises(InvalidState):
        app.queue.retry(job.id)
    approved = app.queue.approve(job.id)
    assert approved.status == JobStatus.PENDING
    with pytest.raises(InvalidState):
        app.queue.approve(job.id)
    [claimed] = app.leases.claim("w", ["default"], 10)
    assert claimed.id == job.id


def test_priority_then_age_decides_claim_order_and_queue_position(app: App) -> None:
    low = app.queue.enqueue("noop")
    high = app.queue.enqueue("noop", priority=5)
    later = app.queue.enqueue("noop", run_at=utcnow() + timedelta(hours=1))
    assert app.queue.get(high.id).queue_position == 1
    assert app.queue.get(low.id).queue_position == 2
    claimed = app.leases.claim("w", ["default"], 10)
    assert [j.id for j in claimed] == [high.id, low.id]
    assert later.id not in {j.id for j in claimed}
    assert app.queue.get(later.id).status == JobStatus.PENDING


def test_claim_respects_queues(app: App) -> None:
    job = app.queue.enqueue("noop", queue="bulk")
    assert app.leases.claim("w", ["default"], 5) == []
    assert [j.id for j in app.leases.claim("w", ["bulk"], 5)] == [job.id]


def test_owner_limit_and_queue_position(database_url: str, tmp_path: Path) -> None:
    app = make_app(database_url, tmp_path, owner_max_running=2)
    try:
        mine = [app.queue.enqueue("noop", owner="alice") for _ in range(4)]
        theirs = app.queue.enqueue("noop", owner="bob")
        claimed = {j.id for j in app.leases.claim("w", ["default"], 10)}
        assert claimed == {mine[0].id, mine[1].id, theirs.id}
        waiting = [app.queue.get(j.id) for j in mine[2:]]
        assert [j.status for j in waiting] == [JobStatus.PENDING] * 2
        assert [j.queue_position for j in waiting] == [1, 2]
        assert app.leases.claim("w2", ["default"], 10) == []
    finally:
        app.close()


def test_global_running_cap(database_url: str, tmp_path: Path) -> None:
    app = make_app(database_url, tmp_path, max_running_jobs=3)
    try:
        app.queue.enqueue_many("noop", [{}] * 5)
        assert len(app.leases.claim("a", ["default"], 10)) == 3
        assert app.leases.claim("b", ["default"], 10) == []
    finally:
        app.close()


def test_events_are_ordered_and_replayable_after_an_id(app: App) -> None:
    ids = app.queue.enqueue_many("noop", [{}] * 20)
    from inboxd.jobs import events

    everything = events.read_after(app.engine, 0)
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert len({e.id for e in everything}) == 20
    middle = everything[9].id
    rest = events.read_after(app.engine, middle)
    assert [e.job_id for e in rest] == ids[10:]
    assert events.read_after(app.engine, everything[-1].id) == []
    assert events.last_event_id(app.engine) == everything[-1].id


def test_retry_puts_a_failed_job_back_with_the_same_id(app: App) -> None:
    job = app.queue.enqueue("selftest", dedupe_key="k")
    [claimed] = app.leases.claim("w", ["default"], 1)
    from inboxd.jobs.leases import Outcome

    app.leases.finish("w", [Outcome(claimed, "failed", error="it broke")])
    failed = app.queue.get(job.id)
    assert failed.status == JobStatus.FAILED and failed.error == "it broke"
    with pytest.raises(InvalidState):
        app.queue.cancel(job.id)
    again = app.queue.retry(job.id)
    assert again.id == job.id and again.status == JobStatus.PENDING
    assert again.attempts == 0 and again.error is None
    blocker_holder = app.queue.enqueue("selftest", dedupe_key="k")
    assert blocker_holder.id == job.id  # the retried job holds the key again


def test_finish_is_fenced_by_the_lease_owner(app: App) -> None:
    job = app.queue.enqueue("noop")
    [claimed] = app.leases.claim("w1", ["default"], 1)
    from inboxd.jobs.leases import Outcome

    assert app.leases.finish("w2", [Outcome(claimed, "completed")]) == [job.id]
    assert app.queue.get(job.id).status == JobStatus.RUNNING
    assert app.leases.finish("w1", [Outcome(claimed, "completed", result={"ok": 1})]) == []
    done = app.queue.get(job.id)
    assert done.status == JobStatus.COMPLETED and done.result == {"ok": 1}
