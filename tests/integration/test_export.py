"""Exports (mbox and Maildir) of an account synced from a Maildir, on SQLite and PostgreSQL:
every message comes back byte for byte."""

from __future__ import annotations

import json
import mailbox
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inboxd.actions.export import start_export
from inboxd.actions.jobs import start_job
from inboxd.app import App
from inboxd.errors import Forbidden, InvalidField, InvalidQuery, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.pipeline import export as export_task
from inboxd.pipeline.mailfiles import read_mboxrd
from inboxd.providers.maildir import parse_filename
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from tests.support.apps import (
    make_app,
    run_cli,
    running_worker,
    subprocess_env,
    sync_and_index,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.mail import MALFORMED, huge_message, make_message

FROM_LINES = (
    b"From: quoter@example.org\n"
    b"To: user@example.com\n"
    b"Subject: Lines that look like separators\n"
    b"Message-ID: <from-lines@example.org>\n"
    b"\n"
    b"From the start of a line,\n"
    b">From an already quoted line,\n"
    b">>From twice quoted\n"
    b"From \n"
    b" From not at the start\n"
    b"From"
)
EIGHT_BIT = (
    "From: Jörg Müller <joerg@example.de>\n"
    "To: user@example.com\n"
    "Subject: Grüße aus Köln\n"
    "Message-ID: <eight-bit@example.de>\n"
    "Content-Type: text/plain\n"
    "\n"
    "Schöne Grüße, ça va? 日本語\n"
).encode() + b"latin-1 too: \xe9\xe8\n"
EMPTY_BODY = b"From: empty@example.org\r\nSubject: Nothing inside\r\n\r\n"
QUARTERLY = make_message(900, subject="Quarterly figures")
SHARED = make_message(1)  # make_msgid is random: made once, to be in two folders


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=50)
    yield opened
    opened.close()


def _source(root: Path) -> dict[str, list[tuple[str, bytes]]]:
    """A Maildir++ tree: INBOX with the awkward messages, a Work folder; one message in
    both. Returns folder directory → [(file name, bytes)]."""
    tree: dict[str, list[tuple[str, bytes]]] = {
        "": [
            ("1000.a.host:2,S", FROM_LINES),
            ("1001.b.host:2,FS", MALFORMED),
            ("1002.c.host:2,", EIGHT_BIT),
            ("1003.d.host:2,RS", EMPTY_BODY),
            ("1004.e.host:2,S", QUARTERLY),
            ("1005.f.host:2,DS", huge_message(3 * 1024 * 1024)),
            ("1006.g.host:2,S", SHARED),
        ],
        ".Work": [
            ("2000.h.host:2,S", SHARED),
            ("2001.i.host:2,F", make_message(2)),
        ],
    }
    for folder, files in tree.items():
        for sub in ("cur", "new", "tmp"):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
        for name, raw in files:
            (root / folder / "cur" / name).write_bytes(raw)
    return tree


@pytest.fixture
def synced(app: App, tmp_path: Path) -> tuple[Account, dict[str, list[tuple[str, bytes]]]]:
    tree = _source(tmp_path / "source")
    account = Accounts(app.engine, app.settings).add(
        "maildir", "source", {"path": str(tmp_path / "source")}
    )
    sync_and_index(app, account)
    return account, tree


def _run(app: App, account: Account, out: Path, fmt: str, **options: Any) -> Job:
    job = start_export(app, account.id, fmt=fmt, out=str(out), user_id="", admin=True, **options)  # type: ignore[arg-type]
    with running_worker(app, concurrency=1):
        return wait_finished(app, job.id, timeout=60)


def _exported_maildir(root: Path) -> Counter[tuple[str, bytes, str]]:
    found: Counter[tuple[str, bytes, str]] = Counter()
    for directory in [root, *(p for p in root.iterdir() if p.name.startswith("."))]:
        folder = "" if directory == root else directory.name
        assert not list((directory / "tmp").iterdir())
        assert not list((directory / "new").iterdir())
        for path in (directory / "cur").iterdir():
            _, flags = parse_filename(path.name)
            found[(folder, path.read_bytes(), ",".join(sorted(flags)))] += 1
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(directory.stat().st_mode) in (0o700, 0o755)
        assert stat.S_IMODE((directory / "cur").stat().st_mode) == 0o700
    return found


def test_maildir_export_reproduces_the_source_files(
    app: App, synced: tuple[Account, dict[str, list[tuple[str, bytes]]]], tmp_path: Path
) -> None:
    account, tree = synced
    out = tmp_path / "export-md"
    done = _run(app, account, out, "maildir")
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.step == "exporting" and done.progress_current == done.progress_total == 8
    expected: Counter[tuple[str, bytes, str]] = Counter()
    for folder, files in tree.items():
        for name, raw in files:
            expected[(folder, raw, ",".join(sorted(parse_filename(name)[1])))] += 1
    assert _exported_maildir(out) == expected
    assert done.result == {
        "format": "maildir",
        "out": str(out),
        "messages": 8,
        "files": 9,
        "bytes": sum(len(raw) for files in tree.values() for _, raw in files),
        "missing": 0,
    }
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    # The export reads back through inboxd's own Maildir reader as the same account.
    again = Accounts(app.engine, app.settings).add("maildir", "again", {"path": str(out)})
    assert sync_now(app, again).status == JobStatus.COMPLETED
    counts = Accounts(app.engine, app.settings).counts(again.id)
    assert counts["folders"] == {"INBOX": 7, "Work": 2}


def test_flat_maildir_holds_each_message_once(
    app: App, synced: tuple[Account, dict[str, list[tuple[str, bytes]]]], tmp_path: Path
) -> None:
    account, tree = synced
    out = tmp_path / "flat"
    out.mkdir()  # an empty directory is taken too
    done = _run(app, account, out, "maildir", layout="flat")
    assert done.status == JobStatus.COMPLETED, done.error
    contents = sorted(p.read_bytes() for p in (out / "cur").iterdir())
    assert contents == sorted({raw for files in tree.values() for _, raw in files})
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_mbox_export_reads_back_byte_for_byte(
    app: App, synced: tuple[Account, dict[str, list[tuple[str, bytes]]]], tmp_path: Path
) -> None:
    account, tree = synced
    out = tmp_path / "all.mbox"
    done = _run(app, account, out, "mbox")
    assert done.status == JobStatus.COMPLETED, done.error
    data = out.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    unique = {raw for files in tree.values() for _, raw in files}
    # In store order, which is the order the sync found them: INBOX by name, then Work.
    assert sorted(read_mboxrd(data)) == sorted(unique)
    assert len(read_mboxrd(data)) == len(unique) == 8
    assert b"\n>From the start of a line,\n>>From an already quoted line,\n>>>From twice" in data
    assert data.startswith(b"From quoter@example.org ") and b"\nFrom joerg@example.de " in data
    # Other mbox readers find the same messages.
    box = mailbox.mbox(str(out), create=False)
    try:
        assert len(box) == 8
    finally:
        box.close()
    assert done.result is not None and done.result["bytes"] == len(data)


def test_query_exports_only_what_it_matches(
    app: App, synced: tuple[Account, dict[str, list[tuple[str, bytes]]]], tmp_path: Path
) -> None:
    account, _ = synced
    out = tmp_path / "q.mbox"
    done = _run(app, account, out, "mbox", query="subject:quarterly")
    assert done.status == JobStatus.COMPLETED, done.error
    assert read_mboxrd(out.read_bytes()) == [QUARTERLY]
    with pytest.raises(InvalidQuery):
        start_export(
            app,
            account.id,
            fmt="mbox",
            out=str(tmp_path / "x"),
            user_id="",
            admin=True,
            query='"unclosed',
        )


def test_an_existing_output_is_never_written_over(
    app: App, synced: tuple[Account, dict[str, list[tuple[str, bytes]]]], tmp_path: Path
) -> None:
    account, _ = synced
    existing = tmp_path / "existing.mbox"
    existing.write_bytes(b"precious")
    full = tmp_path / "full"
    (full / "cur").mkdir(parents=True)
    for fmt, out in (("mbox", existing), ("maildir", existing), ("maildir", full)):
        with pytest.raises(InvalidField, match=r"exists|not empty"):
            start_export(app, account.id, fmt=fmt, out=str(out), user_id="", admin=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidField, match="absolute"):
        start_export(app, account.id, fmt="mbox", out="rel.mbox", user_id="", admin=True)
    # The job checks again when it runs: the path may have appeared meanwhile.
    job = app.queue.enqueue(
        "export",
        {"account_id": account.id, "format": "mbox", "out": str(existing)},
        account_id=account.id,
    )
    for _ in range(2):  # a retry of the failed job finds no output of its own either
        with running_worker(app, concurrency=1):
            failed = wait_finished(app, job.id)
        assert failed.status == JobStatus.FAILED and "exists" in (failed.error or "")
        assert failed.attempts == 1
        assert existing.read_bytes() == b"precious"
        app.queue.retry(job.id)


def test_only_the_owner_or_an_admin_may_export(app: App, tmp_path: Path) -> None:
    _source(tmp_path / "source")
    users = Users(app.engine)
    alice, bob = users.add("alice"), users.add("bob")
    registry = Accounts(app.engine, app.settings)
    mine = registry.add("maildir", "alice's", {"path": str(tmp_path / "source")}, owner=alice.id)
    out = str(tmp_path / "x.mbox")
    with pytest.raises(NotFound):
        start_export(app, mine.id, fmt="mbox", out=out, user_id=bob.id, admin=False)
    # Its owner may, but a file on the server's host is written for admins only.
    with pytest.raises(Forbidden):
        start_export(app, mine.id, fmt="mbox", out=out, user_id=alice.id, admin=False)
    # The generic way to start a job follows the same rules.
    params = {"account_id": mine.id, "format": "mbox", "out": out}
    with pytest.raises(NotFound):
        start_job(app, "export", params, user_id=bob.id, admin=False)
    with pytest.raises(Forbidden):
        start_job(app, "export", params, user_id=alice.id, admin=False)
    job = start_export(app, mine.id, fmt="mbox", out=out, user_id=bob.id, admin=True)
    assert job.owner == alice.id and job.account_id == mine.id
    again = start_job(app, "export", params, user_id=bob.id, admin=True)
    assert again.id == job.id  # one active export per path
    assert not Path(out).exists()


def _slow_pages(monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
    """Pages of five messages, each taking ``delay`` seconds more, so a cancel lands midway."""
    monkeypatch.setattr(export_task, "PAGE_MESSAGES", 5)
    write_page: Callable[..., tuple[int, int]] = export_task._write_page

    def slow(*args: Any, **kwargs: Any) -> tuple[int, int]:
        import time

        time.sleep(delay)
        return write_page(*args, **kwargs)

    monkeypatch.setattr(export_task, "_write_page", slow)


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_a_cancelled_export_resumes_without_duplicates(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    source = tmp_path / "many"
    for sub in ("cur", "new", "tmp"):
        (source / sub).mkdir(parents=True)
    raws = [make_message(n, body_size=200 + n) for n in range(60)]
    for n, raw in enumerate(raws):
        (source / "cur" / f"{3000 + n}.k.host:2,S").write_bytes(raw)
    account = Accounts(app.engine, app.settings).add("maildir", "many", {"path": str(source)})
    assert sync_now(app, account).status == JobStatus.COMPLETED
    _slow_pages(monkeypatch, 0.05)
    out = tmp_path / f"out-{fmt}"
    job = start_export(app, account.id, fmt=fmt, out=str(out), user_id="", admin=True)  # type: ignore[arg-type]
    with running_worker(app, concurrency=1):
        wait_for(lambda: app.queue.get(job.id).progress_current >= 10, timeout=30)
        app.queue.cancel(job.id)
        cancelled = wait_finished(app, job.id)
    assert cancelled.status == JobStatus.CANCELLED
    assert 10 <= cancelled.progress_current < 60
    # What a crash right after writing (before the commit) would leave behind.
    if fmt == "mbox":
        with out.open("ab") as handle:
            handle.write(b"From torn@example.org Thu Jan  1 00:00:00 2026\nhalf a mess")
    else:
        (out / "cur" / "1.E999999_0.host:2,S").write_bytes(b"not committed")
        (out / "tmp" / "1.E999998_0.host").write_bytes(b"half")
    app.queue.retry(job.id)  # the same job, its checkpoint cleared: the state file remains
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=60)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result is not None and done.result["messages"] == 60
    if fmt == "mbox":
        assert read_mboxrd(out.read_bytes()) == raws  # in order, each once
    else:
        assert sorted(p.read_bytes() for p in (out / "cur").iterdir()) == sorted(raws)
        assert not list((out / "tmp").iterdir())
    assert not export_task.state_path(app.settings, job.id).exists()
    assert os.listdir(app.settings.data_dir / "exports") == []


def test_command_line_export_waits_and_prints_json(
    app: App,
    synced: tuple[Account, dict[str, list[tuple[str, bytes]]]],
    database_url: str,
    tmp_path: Path,
) -> None:
    account, _ = synced
    env = subprocess_env(database_url, app.settings.data_dir)
    out = tmp_path / "cli.mbox"
    done = run_cli(
        env, "export", "source", "--format", "mbox", "--out", str(out), "--wait", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["result"]["messages"] == 8
    assert len(read_mboxrd(out.read_bytes())) == 8
    queued = run_cli(env, "export", account.id, "--format", "maildir", "--out", str(out), "--json")
    assert queued.returncode == 2 and "exists" in queued.stderr
    queued = run_cli(
        env, "export", account.id, "--format", "maildir", "--out", str(tmp_path / "md"), "--json"
    )
    assert queued.returncode == 0, queued.stderr
    assert list(json.loads(queued.stdout)) == ["job_id"]
