"""The live fan-out's per-subscriber rules: rights per event, coalescing, overflow."""

from __future__ import annotations

import asyncio

import pytest

from inboxd.api.pump import LiveEvent, Overflow, Subscriber


def event(
    event_id: int, job_id: str = "j1", owner: str | None = "alice", kind: str = "progress"
) -> LiveEvent:
    return LiveEvent(
        id=event_id,
        job_id=job_id,
        owner=owner,
        type=kind,
        data={"id": event_id, "job_id": job_id, "type": kind, "payload": {"n": event_id}},
    )


def subscriber(
    owner: str | None = "alice", job_id: str | None = None, backlog: int = 100
) -> Subscriber:
    return Subscriber(user_id=owner or "admin", owner=owner, job_id=job_id, max_backlog=backlog)


def test_a_subscriber_sees_only_its_owners_events_and_an_admin_sees_all() -> None:
    alice, admin = subscriber("alice"), subscriber(None)
    mine, theirs = event(1, owner="alice"), event(2, owner="bob")
    assert alice.wants(mine) and not alice.wants(theirs)
    assert admin.wants(mine) and admin.wants(theirs)


def test_a_job_stream_never_takes_another_jobs_events() -> None:
    sub = subscriber(job_id="j1")
    assert sub.wants(event(1, job_id="j1"))
    assert not sub.wants(event(2, job_id="j2"))


def test_progress_ticks_coalesce_but_state_changes_are_all_kept_in_order() -> None:
    async def run() -> list[int]:
        sub = subscriber()
        for item in (
            event(1),
            event(2, kind="status"),
            event(3),
            event(4, job_id="j2"),
            event(5),
            event(6, kind="log"),
        ):
            sub.offer(item)
        batch = await sub.next_batch(1.0)
        assert batch is not None
        return [e.id for e in batch]

    # progress 1 and 3 of job j1 were replaced by 5; status 2 and log 6 stay.
    assert asyncio.run(run()) == [2, 4, 5, 6]


def test_events_already_replayed_are_not_sent_twice() -> None:
    async def run() -> list[int]:
        sub = subscriber()
        sub.offer(event(7, kind="status"))
        sub.offer(event(8, kind="status"))
        sub.after_id = 7  # 7 went out in the replay from the log
        batch = await sub.next_batch(1.0)
        assert batch is not None
        return [e.id for e in batch]

    assert asyncio.run(run()) == [8]


def test_a_subscriber_that_falls_behind_is_closed_not_silently_thinned() -> None:
    async def run() -> None:
        sub = subscriber(backlog=3)
        for n in range(1, 6):
            sub.offer(event(n, kind="status"))
        assert sub.closed
        await sub.next_batch(1.0)

    with pytest.raises(Overflow):
        asyncio.run(run())


def test_waiting_times_out_empty_and_close_wakes_the_waiter() -> None:
    async def run() -> tuple[list[LiveEvent] | None, list[LiveEvent] | None]:
        sub = subscriber()
        empty = await sub.next_batch(0.01)
        asyncio.get_running_loop().call_later(0.01, sub.close)
        closed = await sub.next_batch(10.0)
        return empty, closed

    assert asyncio.run(run()) == ([], None)


def test_each_event_is_encoded_once_as_sse() -> None:
    item = event(42, kind="status")
    assert item.sse is item.sse
    text = item.sse.decode()
    assert text.startswith("id: 42\nevent: job_status\ndata: {")
    assert text.endswith("\n\n")
    assert event(43).sse.decode().split("\n")[1] == "event: job_event"
