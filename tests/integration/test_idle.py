"""New mail within seconds: the IMAP IDLE watcher against a real Dovecot, on SQLite and
PostgreSQL, with a worker of this process doing the syncs it queues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from inboxd.actions.idle import idle_status, run_idle
from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import jobs, messages
from inboxd.db.types import utcnow
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import NEEDS_ATTENTION, Account, Accounts
from inboxd.sync.idle import Backoff, IdleMonitor
from inboxd.sync.idle_status import read_status, status_path
from inboxd.sync.task import enqueue_sync
from tests.integration.test_imap_changes import without
from tests.integration.test_imap_oauth import add_oauth_account, xoauth2_logins
from tests.services.dovecot import DovecotServer, ImapUser
from tests.support.apps import (
    add_imap_account,
    make_app,
    running_worker,
    subprocess_env,
    sync_now,
    wait_for,
)
from tests.support.mail import make_message
from tests.support.oauth_server import OAuthServer
from tests.support.proxy import Proxy
from tests.support.server import start_server

pytestmark = pytest.mark.dovecot


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, idle_max_connections=2)
    yield opened
    opened.close()


@contextmanager
def watching(app: App, **options: Any) -> Iterator[IdleMonitor]:
    """An IdleMonitor running in a thread of this process, stopped on exit."""
    defaults: dict[str, Any] = {"rescan_seconds": 0.1, "backoff": Backoff(base=0.2, cap=0.5)}
    monitor = IdleMonitor(app.engine, app.settings, app.queue, **(defaults | options))
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield monitor
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the IDLE monitor did not stop"


def stored(app: App, account: Account) -> int:
    return int(Accounts(app.engine, app.settings).counts(account.id)["message_count"])


def arrives_within(app: App, account: Account, user: ImapUser, n: int, limit: float) -> float:
    """Deliver message ``n`` and wait until the store has it; returns the seconds it took."""
    before = stored(app, account)
    started = time.monotonic()
    user.append("INBOX", make_message(n))
    wait_for(lambda: stored(app, account) > before, timeout=limit + 5)
    took = time.monotonic() - started
    assert took < limit, f"new mail took {took:.2f}s to be stored"
    return took


def test_a_delivered_message_is_stored_within_two_seconds(app: App, imap_user: ImapUser) -> None:
    imap_user.append("INBOX", make_message(0))
    account = add_imap_account(app, imap_user)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    with running_worker(app, concurrency=2), watching(app) as monitor:
        wait_for(lambda: monitor.live_connections == 1, timeout=5)
        for n in (1, 2):
            arrives_within(app, account, imap_user, n, 2.0)
        # Flags changed elsewhere reach the store the same way.
        uid = imap_user.uids()[0]
        imap_user.set_flags("INBOX", [uid], ["\\Flagged"])
        wait_for(lambda: _flagged(app, account), timeout=2)
    assert stored(app, account) == 3
    # One connection, read-only: watching never marked anything \Seen on the server.
    assert all(
        "\\Seen" not in m.flags
        for m in imap_user.server.fetch_all(imap_user.username, imap_user.password, "INBOX")
    )


def _flagged(app: App, account: Account) -> bool:
    with reading(app.engine) as conn:
        flags = conn.execute(
            select(messages.c.flags).where(messages.c.account_id == account.id)
        ).scalars()
        return any("\\Flagged" in f for f in flags)


def test_a_dropped_connection_is_reopened_with_backoff_and_mail_still_arrives(
    app: App, imap_user: ImapUser
) -> None:
    with Proxy(imap_user.port) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port)
        synced: list[str] = []
        with (
            running_worker(app, concurrency=2),
            watching(app, on_sync=lambda _a, why: synced.append(why)) as monitor,
        ):
            wait_for(lambda: monitor.live_connections == 1, timeout=5)
            first = proxy.accepted
            proxy.cut()  # the server (or a NAT box) drops every connection
            wait_for(lambda: monitor.live_connections == 0, timeout=3)
            # Reopened after the backoff, and a sync queued for what came meanwhile.
            wait_for(lambda: monitor.live_connections == 1 and proxy.accepted > first, timeout=5)
            wait_for(lambda: "reconnected" in synced, timeout=3)
            arrives_within(app, account, imap_user, 1, 2.0)
            # Cut again: the watcher keeps trying.
            proxy.cut()
            wait_for(lambda: monitor.live_connections == 1, timeout=5)
            arrives_within(app, account, imap_user, 2, 2.0)
            # The server ends the session itself (* BYE): the same.
            synced.clear()
            imap_user.server.kick(imap_user.username)
            wait_for(lambda: "reconnected" in synced, timeout=5)
            arrives_within(app, account, imap_user, 3, 2.0)


def test_idle_is_renewed_and_changes_between_renewals_are_not_lost(
    app: App, imap_user: ImapUser
) -> None:
    with Proxy(imap_user.port) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port)
        why: list[str] = []
        with (
            running_worker(app, concurrency=2),
            watching(app, renew_seconds=0.2, on_sync=lambda _a, w: why.append(w)) as monitor,
        ):
            wait_for(lambda: monitor.live_connections == 1, timeout=5)
            time.sleep(0.8)
            for n in range(3):
                arrives_within(app, account, imap_user, n, 2.0)
        idles = bytes(proxy.sent).count(b" IDLE\r\n")
        assert idles >= 4 and bytes(proxy.sent).count(b"DONE\r\n") >= idles - 1
        # Renewed on the same connection: never dropped and reopened.
        assert "reconnected" not in why and len(why) >= 3


def test_idle_over_implicit_tls_and_starttls(
    tmp_path: Path, tls_dovecot_server: DovecotServer
) -> None:
    user = tls_dovecot_server.add_user(f"idletls{time.time_ns()}", "secret-pw")
    ca = tls_dovecot_server.ca_path.read_text()
    with make_app(f"sqlite:///{tmp_path}/inboxd.db", tmp_path) as app:
        ports = {"tls": tls_dovecot_server.tls_port, "starttls": tls_dovecot_server.port}
        accounts = {
            add_imap_account(
                app, user, port=port, name=security, security=security, ca_pem=ca
            ).id: security
            for security, port in ports.items()
        }
        told: dict[str, str] = {}
        with watching(app, on_sync=lambda a, why: told.setdefault(a.id, why)) as monitor:
            wait_for(lambda: monitor.live_connections == 2, timeout=5)
            user.append("INBOX", make_message(1))
            wait_for(lambda: set(told) == set(accounts), timeout=2)
    assert all("EXISTS" in why for why in told.values())


def test_idle_with_xoauth2_renews_its_token_and_stops_on_a_revoked_grant(
    app: App, oauth_server: OAuthServer, oauth_dovecot_server: DovecotServer
) -> None:
    oauth = oauth_server
    user = oauth_dovecot_server.add_user(f"oidle{time.time_ns()}", "unused-password")
    refresh_token = oauth.grant(user.username)
    account = add_oauth_account(app, user, oauth, refresh_token)
    told: list[str] = []
    try:
        with watching(app, on_sync=lambda _a, why: told.append(why)) as monitor:
            wait_for(lambda: monitor.live_connections == 1, timeout=5)
            assert xoauth2_logins(oauth_dovecot_server, user) == 1
            user.append("INBOX", make_message(1))
            wait_for(lambda: any("EXISTS" in why for why in told), timeout=2)
            # The access token ran out while watching: the next login gets a new one.
            oauth.expire_access_tokens()
            requests = len(oauth.token_requests)
            oauth_dovecot_server.kick(user.username)
            wait_for(lambda: "reconnected" in told, timeout=5)
            assert len(oauth.token_requests) == requests + 1
            # Consent withdrawn: the watcher stops at once, without a storm of requests.
            oauth.revoke(refresh_token)
            oauth.expire_access_tokens()
            requests = len(oauth.token_requests)
            oauth_dovecot_server.kick(user.username)
            wait_for(lambda: (s := idle_status(app)) and account.id in s.left_out, timeout=5)
            time.sleep(0.5)
            assert len(oauth.token_requests) == requests + 1 and monitor.live_connections == 0
    finally:
        oauth.token_requests.clear()  # the session's server, shared with other tests


def test_a_server_without_idle_is_left_to_the_periodic_sync(app: App, imap_user: ImapUser) -> None:
    with Proxy(imap_user.port, rewrite=without("IDLE")) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port)
        with watching(app) as monitor:
            wait_for(lambda: (s := idle_status(app)) and account.id in s.left_out, timeout=5)
            assert "does not offer IMAP IDLE" in idle_status(app).left_out[account.id]  # type: ignore[union-attr]
            # A sync that logs in proves nothing new here: no second try.
            assert sync_now(app, account).status == JobStatus.COMPLETED
            connections = proxy.accepted
            time.sleep(0.5)
            assert proxy.accepted == connections and monitor.watching == []


def test_the_connection_budget_is_kept_and_removed_accounts_are_dropped(
    app: App, dovecot_server: Any
) -> None:
    users = [dovecot_server.add_user(f"budget{n}{time.time_ns()}", "pw-budget") for n in range(3)]
    accounts = [add_imap_account(app, u) for u in users]
    with watching(app) as monitor:  # the app's budget: 2 connections
        wait_for(lambda: monitor.live_connections == 2, timeout=5)
        assert sorted(monitor.watching) == sorted(a.id for a in accounts[:2])  # oldest first
        wait_for(lambda: (s := read_status(app.settings)) and s.connections == 2, timeout=3)
        status = idle_status(app)
        assert status is not None and status.max_connections == 2
        assert status.left_out == {accounts[2].id: "over the IDLE connection budget"}
        time.sleep(0.5)
        assert monitor.live_connections == 2  # the third never gets one
        # A removed account's watcher stops (and logs out); the freed slot goes to the next.
        Accounts(app.engine, app.settings).remove(accounts[0].id)
        wait_for(lambda: sorted(monitor.watching) == sorted(a.id for a in accounts[1:]), 3)
        wait_for(lambda: monitor.live_connections == 2, timeout=5)
        # A disabled one too.
        Accounts(app.engine, app.settings).update(accounts[1].id, enabled=False)
        wait_for(lambda: monitor.watching == [accounts[2].id], timeout=3)
        wait_for(lambda: monitor.live_connections == 1, timeout=3)
    assert read_status(app.settings) is None  # a stopped watcher leaves no status behind
    assert not status_path(app.settings).exists()


def test_a_refused_login_stops_watching_until_a_sync_logs_in_again(
    app: App, imap_user: ImapUser
) -> None:
    syncs: list[str] = []
    with Proxy(imap_user.port) as proxy:
        account = add_imap_account(app, imap_user, port=proxy.port, password="wrong")
        registry = Accounts(app.engine, app.settings)
        with watching(app, on_sync=lambda _a, why: syncs.append(why)) as monitor:
            wait_for(lambda: idle_status(app) and account.id in idle_status(app).left_out, 5)  # type: ignore[union-attr]
            reason = idle_status(app).left_out[account.id]  # type: ignore[union-attr]
            assert "rejected" in reason
            logins = proxy.accepted
            time.sleep(1.0)  # several rescans and backoffs: no login is tried again
            assert proxy.accepted == logins and monitor.live_connections == 0
            # The right password alone is not proof (the periodic sync finds out); a sync
            # that logs in is.
            registry.update(account.id, secret={"password": imap_user.password})
            assert sync_now(app, registry.get(account.id)).status == JobStatus.COMPLETED
            wait_for(lambda: monitor.live_connections == 1, timeout=5)
            # An account that needs attention is not watched (same rule as periodic syncs).
            registry.set_state(account.id, NEEDS_ATTENTION, "password rejected")
            wait_for(lambda: monitor.live_connections == 0 and not monitor.watching, 3)
    assert not syncs  # nothing changed in INBOX, and no reconnect after a drop


def test_a_change_during_a_running_sync_is_owed_one_more_sync(
    app: App, imap_user: ImapUser
) -> None:
    account = add_imap_account(app, imap_user)
    monitor = IdleMonitor(app.engine, app.settings, app.queue)
    running = enqueue_sync(app.queue, account)
    with writing(app.engine) as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == running.id).values(status=JobStatus.RUNNING.value)
        )
    # The running sync may have read INBOX already: it cannot absorb this change.
    monitor.changed(account, "1 EXISTS")
    monitor.pay_owed()
    assert [j.id for j in app.queue.list_jobs(kind="sync", account_id=account.id)] == [running.id]
    with writing(app.engine) as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == running.id)
            .values(status=JobStatus.COMPLETED.value, finished_at=utcnow())
        )
    monitor.pay_owed()
    queued = app.queue.list_jobs(kind="sync", account_id=account.id, status=["pending"])
    assert len(queued) == 1 and queued[0].id != running.id
    # A pending sync absorbs further changes: no second one, nothing owed.
    monitor.changed(account, "2 EXISTS")
    monitor.pay_owed()
    assert len(app.queue.list_jobs(kind="sync", account_id=account.id, status=["pending"])) == 1


def test_idle_off_watches_nothing(database_url: str, tmp_path: Path, imap_user: ImapUser) -> None:
    with make_app(database_url, tmp_path, idle_max_connections=0) as app:
        add_imap_account(app, imap_user)
        stop = threading.Event()
        started = time.monotonic()
        run_idle(app, stop)  # returns at once: nothing to watch, nothing connected
        assert time.monotonic() - started < 1.0 and idle_status(app) is None
        env = subprocess_env(database_url, app.settings.data_dir, INBOXD_IDLE_MAX_CONNECTIONS="0")
        done = subprocess.run(
            [sys.executable, "-m", "inboxd", "idle"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0 and "IDLE is off" in done.stderr


def test_the_idle_command_watches_and_stops_on_sigterm(
    app: App, imap_user: ImapUser, tmp_path: Path
) -> None:
    account = add_imap_account(app, imap_user)
    env = subprocess_env(
        app.settings.effective_database_url, app.settings.data_dir, INBOXD_LOG_LEVEL="INFO"
    )
    log = tmp_path / "idle.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inboxd", "idle", "--rescan", "0.2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: (s := idle_status(app)) and s.connections == 1, timeout=15)
        imap_user.append("INBOX", make_message(1))
        # The watcher queues the sync; a worker (here none runs) would take it.
        wait_for(
            lambda: app.queue.list_jobs(kind="sync", account_id=account.id, status=["pending"]),
            timeout=3,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert idle_status(app) is None
    text = log.read_text()
    assert "IDLE on INBOX of account" in text and "queueing a sync" in text


def test_serve_runs_the_watcher_beside_its_workers_and_stops_it(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    data = tmp_path / "data"
    with make_app(f"sqlite:///{data / 'inboxd.db'}", tmp_path) as app:
        account = add_imap_account(app, imap_user)  # there before the watcher starts
        server = start_server(data)
        try:
            status = wait_for(lambda: (s := idle_status(app)) and s.connections == 1 and s, 30)
            assert status.watching == [account.id] and status.pid != server.proc.pid
            arrives_within(app, account, imap_user, 1, 5.0)  # a loaded machine: some slack
        finally:
            assert server.stop() == 0
        assert idle_status(app) is None
        with pytest.raises(ProcessLookupError):
            os.kill(status.pid, 0)  # the watcher went with the server
    assert "started idle 0" in server.log()
