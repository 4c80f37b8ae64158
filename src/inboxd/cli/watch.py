"""Watching one job to its end with a live progress bar, from this machine's database or
from a server's event stream (``jobs watch``, ``sync --watch``).

Ctrl-C asks whether to cancel the job or only stop watching; a second Ctrl-C while asked
exits at once. With stdin not a terminal, an answer already waiting there is taken, and
without one the watch just stops.
"""

from __future__ import annotations

import contextlib
import queue
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn, Protocol

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from inboxd.actions import jobs as actions
from inboxd.app import App
from inboxd.cli.common import EXIT_FAILED, err, out, print_json
from inboxd.cli.job_view import JobView
from inboxd.cli.remote import Remote, StreamEvent
from inboxd.vocabulary import JobStatus

#: Exit code when the watch stopped and the job goes on (as a shell reports SIGINT).
EXIT_STOPPED = 130
#: How often a pending job's queue position is read again, and how long events may stay
#: away before the snapshot is read anyway (the stream could be reconnecting).
SNAPSHOT_PENDING, SNAPSHOT_QUIET = 1.0, 5.0
#: Without a terminal, a line per change at most this often (state changes print at once).
LINE_INTERVAL = 1.0


class StoppedWatching(KeyboardInterrupt):
    """The person chose to stop watching; the job goes on. A KeyboardInterrupt, so that a
    job run in this process stops with the watch (it goes back to the queue)."""


class JobFeed(Protocol):
    """Where a watch reads a job: its snapshot, its events, and how to cancel it."""

    def snapshot(self) -> dict[str, Any]:
        """The job as ``Job.to_dict`` shows it."""
        ...

    def next_events(self, timeout: float) -> list[StreamEvent]:
        """Events after the last ones returned, waiting up to ``timeout`` for some."""
        ...

    def cancel(self) -> dict[str, Any]:
        """Ask for the job to be cancelled; its snapshot."""
        ...

    def close(self) -> None:
        """Stop reading."""
        ...


class LocalFeed:
    """A job of this machine's database, read through the actions layer."""

    def __init__(self, app: App, job_id: str) -> None:
        self.app, self.job_id = app, job_id
        self._after = 0

    def snapshot(self) -> dict[str, Any]:
        """The job's row."""
        return actions.get_job(self.app, self.job_id).to_dict()

    def next_events(self, timeout: float) -> list[StreamEvent]:
        """New rows of the job's event log (polled: the worker may be another process)."""
        found = actions.job_events(self.app, self.job_id, after_id=self._after)
        if not found:
            time.sleep(timeout)
            return []
        self._after = found[-1].id
        return [StreamEvent(e.id, e.type.value, e.payload) for e in found]

    def cancel(self) -> dict[str, Any]:
        """Cancel through the actions layer."""
        return actions.cancel_job(self.app, self.job_id).to_dict()

    def close(self) -> None:
        """Nothing to release: the App belongs to the command."""


class RemoteFeed:
    """A job of a server, followed over its SSE stream in a reader thread."""

    def __init__(self, remote: Remote, job_id: str) -> None:
        self.remote, self.job_id = remote, job_id
        self._events: queue.Queue[StreamEvent | BaseException] = queue.Queue()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def snapshot(self) -> dict[str, Any]:
        """``GET /api/jobs/{id}``."""
        return self.remote.get_job(self.job_id)

    def next_events(self, timeout: float) -> list[StreamEvent]:
        """What the stream brought since the last call (errors of the stream raised here)."""
        if self._reader is None:
            # From the job's first event: nothing between snapshot and stream is missed.
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        found: list[StreamEvent] = []
        with contextlib.suppress(queue.Empty):
            found.append(self._take(self._events.get(timeout=timeout)))
            while True:
                found.append(self._take(self._events.get_nowait()))
        return found

    @staticmethod
    def _take(item: StreamEvent | BaseException) -> StreamEvent:
        if isinstance(item, BaseException):
            raise item
        return item

    def _read(self) -> None:
        try:
            for event in self.remote.job_events(self.job_id, after=0, stop=self._stop):
                self._events.put(event)
        except Exception as exc:  # handed to the watching thread, which reports it
            self._events.put(exc)

    def cancel(self) -> dict[str, Any]:
        """``POST /api/jobs/{id}/cancel``."""
        return self.remote.cancel_job(self.job_id)

    def close(self) -> None:
        """Stop the reader (it ends with its connection)."""
        self._stop.set()


def watch(feed: JobFeed, console: Console, *, quiet: bool = False) -> JobView:
    """Follow a job to its end state, showing its progress on ``console`` (nothing when
    ``quiet``); StoppedWatching when the person stops watching first."""
    with _Display(console, quiet=quiet) as display, _sigint_flag() as interrupted:
        view = JobView.from_dict(feed.snapshot())
        display.show(view)
        last_read = time.monotonic()
        last_event = last_read
        while not view.finished:
            events = feed.next_events(0.2)
            now = time.monotonic()
            for event in events:
                view.apply(event.type, event.payload)
                last_event = now
            quiet_for = now - max(last_event, last_read)
            due = SNAPSHOT_PENDING if view.status != JobStatus.RUNNING else SNAPSHOT_QUIET
            if view.finished or quiet_for >= due:
                # The row is the truth for the end state (result, error) and for what no
                # event carries (the queue position).
                view = JobView.from_dict(feed.snapshot())
                last_read = now
            display.show(view)
            if interrupted.is_set() and not view.finished:
                interrupted.clear()
                display.pause()
                if _ask(console, interrupted) != "c":
                    raise StoppedWatching
                view = JobView.from_dict(feed.cancel())
                console.print(f"cancellation requested for job {view.id}", highlight=False)
                display.resume()
        return view


def _ask(console: Console, interrupted: threading.Event) -> str:
    """The answer: c (cancel the job) or w (stop watching: the default, and what a closed
    or silent stdin means)."""
    question = "cancel the job or stop watching? [c/w] (w) "
    interactive = sys.stdin.isatty()
    if interactive:
        console.print(question, end="", highlight=False, markup=False)
    elif not _waiting(sys.stdin):
        return "w"
    interrupted.set()  # marks "asking": a second Ctrl-C now exits (see _sigint_flag)
    try:
        answer = sys.stdin.readline().strip().lower()
    finally:
        interrupted.clear()
    if not interactive:
        console.print(f"{question}{answer}", highlight=False, markup=False)
    return "c" if answer.startswith("c") else "w"


def _waiting(stream: Any) -> bool:
    """Whether something (an answer, or the end) can be read from a non-terminal stdin now."""
    try:
        ready, _, _ = select.select([stream], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(ready)


@contextlib.contextmanager
def _sigint_flag() -> Iterator[threading.Event]:
    """Ctrl-C sets the flag instead of interrupting whatever runs (a request, a database
    read); a Ctrl-C while the flag is already set (the question is open) exits."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if flag.is_set():
            raise StoppedWatching
        flag.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class _Display:
    """A Rich progress bar on a terminal; otherwise a plain line per change, so logs and
    tests read the same text."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[message]}"),
            console=console,
            disable=not self.live,
            transient=True,
        )
        self._task: TaskID | None = None
        self._line = ""
        self._state: tuple[str, str | None] | None = None
        self._printed_at = 0.0

    def __enter__(self) -> _Display:
        if self.live:
            self._bar.start()
            self._task = self._bar.add_task("", total=None, counts="", rate="", message="")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.live:
            self._bar.stop()

    def pause(self) -> None:
        """Take the bar off the screen (a question is asked)."""
        if self.live:
            self._bar.stop()

    def resume(self) -> None:
        """Show the bar again."""
        if self.live:
            self._bar.start()

    def show(self, view: JobView) -> None:
        """Bring the display up to ``view``."""
        if self.quiet:
            return
        if self.live and self._task is not None:
            self._bar.update(
                self._task,
                description=view.headline(),
                total=view.total,
                completed=view.current,
                counts=view.counts(),
                rate=view.rate_text(),
                message=view.message or "",
            )
            return
        if view.finished:
            return  # the final line says it
        line = view.line()
        state = (view.status.value, view.step)
        now = time.monotonic()
        changed_state = state != self._state
        if line != self._line and (changed_state or now - self._printed_at >= LINE_INTERVAL):
            self.console.print(line, highlight=False, soft_wrap=True)
            self._line, self._state, self._printed_at = line, state, now


def follow(feed: JobFeed, job_id: str, *, as_json: bool) -> None:
    """Watch a job (progress on stderr), then report its end on stdout; exit 1 unless it
    completed, 130 when the person stopped watching."""
    try:
        view = watch(feed, err, quiet=as_json)
    except StoppedWatching:
        stopped(job_id)
    finally:
        feed.close()
    report(view, as_json=as_json)


def stopped(job_id: str, *, here: bool = False) -> NoReturn:
    """Say that the job goes on (back in the queue when it ran here), and exit 130."""
    where = "goes back to the queue" if here else "goes on"
    err.print(
        f"stopped watching; job {job_id} {where} (inboxd jobs watch {job_id})",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(EXIT_STOPPED)


def report(view: JobView, *, as_json: bool) -> None:
    """Print how the job ended (its snapshot with --json); exit 1 unless it completed."""
    if as_json:
        print_json(view.snapshot)
    else:
        out.print(final_line(view), highlight=False, soft_wrap=True)
    if view.status != JobStatus.COMPLETED:
        raise typer.Exit(EXIT_FAILED)


def final_line(view: JobView) -> str:
    """The last line of a watch: how the job ended, in what time, with its result."""
    took = _seconds_between(view.started_at, view.finished_at)
    text = f"{view.kind} {view.status.value}"
    if took is not None:
        text += f" in {took:.1f}s"
    text += f" (job {view.id})"
    if view.status == JobStatus.COMPLETED and isinstance(view.result, dict):
        shown = [f"{k}={v}" for k, v in view.result.items() if isinstance(v, int | float | str)]
        if shown:
            text += ": " + " ".join(shown[:8])
    elif view.error:
        text += f": {view.error}"
    return text


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None
