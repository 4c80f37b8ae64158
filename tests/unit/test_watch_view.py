"""What a watch makes of a job's snapshot and events, and of the server's stream text."""

from __future__ import annotations

import io
import re

from rich.console import Console

from inboxd.cli.job_view import JobView
from inboxd.cli.remote import StreamEvent, _parse_sse
from inboxd.cli.watch import final_line, watch
from inboxd.vocabulary import JobStatus


def snapshot(**changes: object) -> dict[str, object]:
    job: dict[str, object] = {
        "id": "j1",
        "kind": "sync",
        "status": "pending",
        "step": None,
        "progress": {"current": 0, "total": None, "percent": None},
        "message": None,
        "rate": None,
        "queue_position": 3,
        "cancel_requested": False,
        "error": None,
        "result": None,
        "started_at": None,
        "finished_at": None,
    }
    job.update(changes)
    return job


def test_a_pending_job_shows_its_queue_position() -> None:
    view = JobView.from_dict(snapshot())
    assert view.line() == "pending #3"
    view.apply("status", {"status": "running", "attempt": 1})
    assert view.queue_position is None and view.line() == "running"


def test_progress_events_move_the_view_on() -> None:
    view = JobView.from_dict(snapshot(status="running"))
    view.apply(
        "progress",
        {"step": "fetching", "current": 1200, "total": 3000, "rate": 812.4, "message": "INBOX"},
    )
    assert view.line() == "running fetching 1,200/3,000 (40%) 812/s INBOX"
    view.apply("log", {"message": "cancellation requested"})
    assert view.headline() == "running (cancelling) fetching"
    view.apply("status", {"status": "cancelled", "reason": "cancelled"})
    assert view.finished and view.status == JobStatus.CANCELLED


def test_the_final_line_says_how_it_ended() -> None:
    done = JobView.from_dict(
        snapshot(
            status="completed",
            result={"new": 5, "folders": 2, "errors": []},
            started_at="2026-01-01T10:00:00+00:00",
            finished_at="2026-01-01T10:00:02.5+00:00",
        )
    )
    assert final_line(done) == "sync completed in 2.5s (job j1): new=5 folders=2"
    failed = JobView.from_dict(snapshot(status="failed", error="login refused"))
    assert final_line(failed) == "sync failed (job j1): login refused"


def test_the_stream_parser_takes_ids_data_and_retry() -> None:
    lines = [
        "retry: 3000",
        "",
        "id: 7",
        "event: job_status",
        'data: {"type": "status", "payload": {"status": "running"}}',
        "",
        "event: heartbeat",
        'data: {"timestamp": "x"}',
        "",
        "id: 8",
        "event: job_event",
        'data: {"type": "progress",',
        'data:  "payload": {"current": 3}}',
        "",
    ]
    assert list(_parse_sse(iter(lines))) == [
        3000,
        StreamEvent(7, "status", {"status": "running"}),
        StreamEvent(8, "progress", {"current": 3}),
    ]


class ScriptedFeed:
    """A job whose events come from a script: one batch per read, the row following them."""

    def __init__(self, batches: list[list[StreamEvent]]) -> None:
        self.batches = batches
        self.row = snapshot()
        self.cancelled = False

    def snapshot(self) -> dict[str, object]:
        return dict(self.row)

    def next_events(self, timeout: float) -> list[StreamEvent]:
        batch = self.batches.pop(0) if self.batches else []
        for event in batch:
            if event.type == "status":
                self.row["status"] = event.payload["status"]
                self.row["queue_position"] = None
            elif event.type == "progress":
                self.row["progress"] = {"current": event.payload["current"], "total": 4}
        return batch

    def cancel(self) -> dict[str, object]:
        self.cancelled = True
        return self.snapshot()

    def close(self) -> None:
        pass


def sync_script() -> list[list[StreamEvent]]:
    progress = [
        StreamEvent(i + 2, "progress", {"step": "fetching", "current": i, "total": 4})
        for i in range(5)
    ]
    return [
        [],
        [StreamEvent(1, "status", {"status": "running"})],
        progress[:3],
        progress[3:],
        [StreamEvent(9, "status", {"status": "completed"})],
    ]


def test_without_a_terminal_the_watch_prints_a_line_per_state() -> None:
    text = io.StringIO()
    console = Console(file=text, width=200, force_terminal=False)
    view = watch(ScriptedFeed(sync_script()), console)
    assert view.status == JobStatus.COMPLETED
    lines = text.getvalue().splitlines()
    # The state changes at once; progress of one state at most once a second.
    assert lines == ["pending #3", "running", "running fetching 2/4 (50%)"]


def test_on_a_terminal_the_watch_draws_a_bar() -> None:
    text = io.StringIO()
    console = Console(file=text, width=120, force_terminal=True)
    view = watch(ScriptedFeed(sync_script()), console)
    assert view.status == JobStatus.COMPLETED
    # The bar's last frame (it is redrawn ten times a second, so earlier ones may not be).
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.getvalue())
    assert re.search(r"completed ━+ 100% 4/4", drawn), drawn
