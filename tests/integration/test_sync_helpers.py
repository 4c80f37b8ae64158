"""Helper processes that share a big folder's sync, against a real Dovecot, on SQLite and
PostgreSQL: every message is stored once whoever fetched it, and a helper never outlives
its sync (killed helper, cancelled sync, SIGKILLed worker)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import locations, messages
from inboxd.jobs.model import Job, JobStatus
from inboxd.providers.base import FetchPlan, ProviderOptions, ProviderSpec
from inboxd.providers.imap.session import ImapSession
from inboxd.providers.imap.settings import ImapConfig, imap_config
from inboxd.store.accounts import Account
from inboxd.store.bodies import read_body
from inboxd.store.folders import ensure_folder
from inboxd.sync import helpers as imap_helper
from inboxd.sync.helpers import BatchClaims, FolderWork, HelperSpec, LocalClaims, _HelperRun
from tests.services.dovecot import ImapUser
from tests.support.apps import (
    add_imap_account,
    make_app,
    running_worker,
    start_worker_process,
    subprocess_env,
    wait_finished,
    wait_for,
)
from tests.support.mail import make_message
from tests.support.proxy import Proxy

pytestmark = pytest.mark.dovecot

HELPED = {
    "sync_batch_messages": 10,
    "sync_processes": 3,
    "sync_helper_min_messages": 50,
}


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, **HELPED)
    yield opened
    opened.close()


def fill(user: ImapUser, count: int, folder: str = "INBOX", first: int = 0) -> None:
    """``count`` messages (``make_message(first)`` on) straight into a folder's Maildir
    (APPENDing them one by one would cost most of each test); Dovecot indexes them at the
    next SELECT."""
    owner = user.maildir.stat()
    if folder == "INBOX":
        target = user.maildir
    else:
        user.create_folder(folder)
        target = user.maildir / f".{folder}"  # Maildir++
    for n in range(first, first + count):
        raw = make_message(n)
        crlf = len(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        # Sizes in the name, as Dovecot writes them: it then answers RFC822.SIZE unread.
        name = f"{1_700_000_000 + n}.M{n}P1.inboxd-test,S={len(raw)},W={crlf}"
        path = target / "new" / name
        path.write_bytes(raw)
        if os.geteuid() == 0:
            os.chown(path, owner.st_uid, owner.st_gid)
    assert user.message_count(folder) == count


def logins(user: ImapUser) -> int:
    """Logins of the user that Dovecot has logged so far."""
    text = user.server.log_path.read_text(errors="replace")
    return text.count(f"Login: user=<{user.username}>")


def counts(app: App) -> tuple[int, int]:
    with reading(app.engine) as conn:
        return (
            conn.execute(select(func.count()).select_from(messages)).scalar_one(),
            conn.execute(select(func.count()).select_from(locations)).scalar_one(),
        )


# -- processes seen from /proc ---------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process; None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = raw.rsplit(")", 1)[1].split()[:2]
    return None if state in ("Z", "X") else (state, int(ppid))


def children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None and st[1] == parent:
            found.append(int(entry))
    return found


def forkservers(parent: int) -> list[int]:
    out = []
    for pid in children(parent):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.forkserver" in cmdline:
            out.append(pid)
    return out


def helper_pids(parent: int) -> list[int]:
    """Helper processes (and probes) forked for the process ``parent``."""
    return [pid for server in forkservers(parent) for pid in children(server)]


# -- tests -------------------------------------------------------------------------------------


def test_claims_meet_in_the_middle_and_hand_out_each_batch_once() -> None:
    claims = BatchClaims(7)
    front = [claims.take_front(), claims.take_front()]
    back = [claims.take_back(), claims.take_back(), claims.take_back()]
    assert front == [0, 1] and back == [6, 5, 4]
    assert [claims.take_front(), claims.take_back(), claims.take_front()] == [2, 3, None]
    assert claims.take_back() is None and claims.first_of_back == 3
    local = LocalClaims(2)
    assert [local.take_front(), local.take_front(), local.take_front()] == [0, 1, None]
    assert local.first_of_back == 2


@contextmanager
def syncing(app: App, user: ImapUser, *, delay: float = 0.004) -> Iterator[tuple[Account, Job]]:
    """A sync of the user's mail running in a worker thread; each command is held back
    ``delay`` seconds, so the sync cannot finish before its helpers start."""
    imap_helper.warm_up(wait=True)
    with Proxy(user.port, delay=delay) as proxy:
        account = add_imap_account(app, user, port=proxy.port)
        job = app.queue.enqueue("sync", account_id=account.id)
        with running_worker(app, concurrency=1):
            yield account, job


def test_helpers_share_a_big_folder_and_every_message_is_stored_once(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, 400)
    with syncing(app, imap_user) as (account, job):
        done = wait_finished(app, job.id, timeout=120)
        # The folder's highest UID covers what the helpers stored: a re-sync fetches nothing.
        again = app.queue.enqueue("sync", account_id=account.id)
        second = wait_finished(app, again.id, timeout=60)
    assert done.status == JobStatus.COMPLETED, done.error
    result = done.result
    assert result["fetched"] == 400 and result["new"] == 400 and result["duplicates"] == 0
    assert result["helpers"] == 2 and 0 < result["fetched_by_helpers"] < 400
    assert result["helper_peak_rss_kb"] > 0
    assert done.progress_current == done.progress_total
    assert counts(app) == (400, 400)
    user, password = imap_user.username, imap_user.password
    server = {m.uid: m.raw for m in imap_user.server.fetch_all(user, password)}
    with reading(app.engine) as conn:
        rows = conn.execute(select(locations.c.uid, locations.c.message_pk)).all()
        assert {int(uid): read_body(conn, pk) for uid, pk in rows} == server
    assert second.status == JobStatus.COMPLETED and second.result["fetched"] == 0
    assert not helper_pids(os.getpid())


def test_the_same_helpers_serve_every_big_folder_of_a_sync(app: App, imap_user: ImapUser) -> None:
    fill(imap_user, 200)
    fill(imap_user, 200, folder="Archive", first=200)
    fill(imap_user, 5, folder="Small", first=400)
    before = logins(imap_user)
    with syncing(app, imap_user) as (_account, job):
        done = wait_finished(app, job.id, timeout=120)
        # Dovecot's log process may write the last line a moment later.
        wait_for(lambda: logins(imap_user) - before >= 3, timeout=10)
        during = logins(imap_user) - before
    assert done.status == JobStatus.COMPLETED, done.error
    result = done.result
    assert result["per_folder"] == {"INBOX": 200, "Archive": 200, "Small": 5}
    assert result["new"] == 405 and result["duplicates"] == 0
    assert result["helpers"] == 2 and 0 < result["fetched_by_helpers"] < 400
    assert result["helper_peak_rss_kb"] > 0
    assert during == 3  # the sync's own session and one per helper, for all three folders
    assert counts(app) == (405, 405)
    assert not helper_pids(os.getpid())


def test_a_helper_still_logging_in_joins_the_folder_once_ready(
    app: App, imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with a folder whose batch list is too large to leave unread in the pipe: the sync
    # starts alone and the helper is given the folder when it says it is logged in.
    monkeypatch.setattr(imap_helper, "UNREAD_SEND_MAX", 0)
    fill(imap_user, 400)
    with syncing(app, imap_user, delay=0.01) as (_account, job):
        done = wait_finished(app, job.id, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["fetched"] == 400 and 0 < done.result["fetched_by_helpers"] < 400
    assert counts(app) == (400, 400)


def test_a_helper_killed_mid_sync_leaves_its_batches_to_the_sync(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, 400)
    with syncing(app, imap_user) as (_account, job):
        victims = wait_for(lambda: helper_pids(os.getpid()), timeout=60, interval=0.005)
        wait_for(lambda: app.queue.get(job.id).progress_current >= 40, timeout=60)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        done = wait_finished(app, job.id, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["fetched"] == 400
    assert counts(app) == (400, 400)
    logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
    assert any("helper stopped early" in m for m in logs)


def _file_of_highest_uid(user: ImapUser) -> Path:
    """The Maildir file Dovecot gave the highest UID (from its dovecot-uidlist)."""
    last = (user.maildir / "dovecot-uidlist").read_text().splitlines()[-1]
    base = last.split(":", 1)[1].strip()
    (found,) = [p for sub in ("new", "cur") for p in (user.maildir / sub).glob(f"{base}*")]
    return found


def test_a_message_the_server_cannot_read_in_a_helpers_part_is_skipped_alone(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, 400)
    # The first batch a helper takes is the last one: Dovecot answers a FETCH of this file
    # with "* BYE FETCH failed: Internal error occurred" and hangs up.
    unreadable = _file_of_highest_uid(imap_user)
    unreadable.chmod(0)
    try:
        with syncing(app, imap_user) as (_account, job):
            done = wait_finished(app, job.id, timeout=120)
    finally:
        unreadable.chmod(0o600)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["unavailable"] == 1 and done.result["fetched"] == 399
    assert counts(app) == (399, 399)
    logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
    assert any("helper stopped early" in m for m in logs)
    assert any("skipped message UID 400 " in m for m in logs)


def test_cancelling_a_helped_sync_stops_its_helpers(app: App, imap_user: ImapUser) -> None:
    fill(imap_user, 400)
    with syncing(app, imap_user, delay=0.01) as (_account, job):
        wait_for(lambda: helper_pids(os.getpid()), timeout=60, interval=0.005)
        app.queue.cancel(job.id)
        done = wait_finished(app, job.id, timeout=60)
        assert done.status == JobStatus.CANCELLED
        wait_for(lambda: not helper_pids(os.getpid()), timeout=20)
    stored, located = counts(app)
    assert stored == located < 400


def test_sigkill_of_the_worker_ends_its_helpers_and_the_rescue_stores_every_message_once(
    app: App, imap_user: ImapUser, database_url: str, tmp_path: Path
) -> None:
    fill(imap_user, 600)
    with Proxy(imap_user.port, delay=0.004) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port)
        job = app.queue.enqueue("sync", account_id=account.id)
        env = subprocess_env(
            database_url,
            tmp_path / "data",
            INBOXD_SYNC_BATCH_MESSAGES="10",
            INBOXD_SYNC_PROCESSES="3",
            INBOXD_SYNC_HELPER_MIN_MESSAGES="50",
        )
        first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
        try:
            helpers = wait_for(lambda: helper_pids(first.pid), timeout=60, interval=0.005)
            wait_for(lambda: app.queue.get(job.id).progress_current >= 100, timeout=60)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        # Orphaned helpers notice that their sync is gone and stop after their batch.
        wait_for(lambda: all(_stat(pid) is None for pid in helpers), timeout=20)
        second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
        try:
            done = wait_finished(app, job.id, timeout=120)
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(timeout=30)
            except subprocess.TimeoutExpired:
                second.kill()
    assert done.status == JobStatus.COMPLETED and done.attempts == 2, done.error
    assert counts(app) == (600, 600)


def test_helpers_do_not_import_the_callers_main_module_again(tmp_path: Path) -> None:
    # A main script with code outside any __name__ guard (like `python -` or a console
    # script importing the whole CLI): a helper must start without running it again.
    marker = tmp_path / "runs"
    script = tmp_path / "main_script.py"
    script.write_text(
        "import pathlib, sys\n"
        f"with open({str(marker)!r}, 'a') as f:\n"
        "    f.write('run\\n')\n"
        "if __name__ == '__main__':\n"
        "    from inboxd.sync import helpers as imap_helper\n"
        "    imap_helper.warm_up(wait=True)\n"
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    assert marker.read_text() == "run\n"


def test_a_helper_whose_connection_drops_mid_folder_reconnects_and_finishes_its_part(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, 400)
    imap_helper.warm_up(wait=True)
    # Connection 1 is the sync's own, 2 and 3 its helpers': one helper's is cut mid-FETCH.
    with Proxy(imap_user.port, delay=0.004, drop_after=30_000, only_connection=2) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port)
        job = app.queue.enqueue("sync", account_id=account.id)
        with running_worker(app, concurrency=1):
            done = wait_finished(app, job.id, timeout=120)
        assert proxy.drops == 1 and proxy.accepted == 4
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["fetched"] == 400 and done.result["duplicates"] == 0
    assert done.result["reconnects"] == 0  # the sync's own connection never broke
    assert counts(app) == (400, 400)
    logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
    assert any(m.startswith("sync helper: ") and "reconnected" in m for m in logs), logs
    assert not any("helper stopped early" in m for m in logs)


def test_an_idle_helper_finds_its_lost_connection_and_reopens_it_for_the_next_folder(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, 30)
    direct = ImapSession(
        ImapConfig(
            host=imap_user.host, port=imap_user.port, security="none", username=imap_user.username
        ),
        imap_user.password,
    )
    uidvalidity = direct.examine("INBOX").uidvalidity
    direct.close()
    with Proxy(imap_user.port) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port)
        with writing(app.engine) as conn:
            folder_id = ensure_folder(conn, account.id, "INBOX").id
        spec = HelperSpec(
            database_url=app.engine.url.render_as_string(hide_password=False),
            busy_timeout_ms=app.settings.sqlite_busy_timeout_ms,
            provider=ProviderSpec(
                "imap", imap_config(account, 10.0), imap_user.password, ProviderOptions(10.0)
            ),
            account_id=account.id,
            keepalive_seconds=0.1,
        )
        claims = BatchClaims(3)
        ours, theirs = multiprocessing.Pipe()
        # In a thread of this process (not forked): the same code, easier to watch.
        helper = threading.Thread(target=_HelperRun(spec, claims, theirs).run, daemon=True)
        helper.start()
        try:
            assert ours.recv() == ("ready",)
            time.sleep(0.3)  # a few NOOPs go by unnoticed
            assert not ours.poll()
            proxy.cut()
            assert ours.poll(5)
            kind, what = ours.recv()
            assert kind == "reconnected" and "idle connection lost" in what
            batches = tuple(tuple(map(str, range(n, n + 10))) for n in (1, 11, 21))
            plan = FetchPlan(folder="INBOX", batches=batches, validity=uidvalidity)
            ours.send(("folder", FolderWork(folder_id, plan)))
            news = [ours.recv() for _ in range(4) if ours.poll(20)]
            assert len(news) == 4, news
            assert sorted(m[1] for m in news[:3]) == [0, 1, 2]
            assert all(m[0] == "stored" and m[2]["new"] == 10 for m in news[:3])
            assert news[3] == ("folder-done",)
            ours.send(("stop",))
            assert ours.recv()[0] == "done"
        finally:
            ours.close()
            helper.join(10)
        assert proxy.accepted == 2
    assert counts(app) == (30, 30)
