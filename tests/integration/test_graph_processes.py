"""Graph accounts from the command line and across processes, against the local Graph
server: ``account add graph`` / ``account test`` / ``sync --wait`` / ``account show``, the API's
account creation, a worker killed with
SIGKILL mid-folder resuming from the last stored delta link, and ``inboxd mark`` / archive
/ ``inboxd undo`` through the journaled change path."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inboxd.actions import changes as actions
from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import change_journal, messages
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import Accounts
from inboxd.store.users import Users
from tests.support.apps import (
    AsgiClient,
    make_app,
    run_cli,
    running_worker,
    start_worker_process,
    subprocess_env,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.graph_accounts import (
    add_graph_account,
    fill,
    folder_cursor,
    message_count,
    stored_keys,
)
from tests.support.graph_server import GraphServer


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    server = GraphServer()
    yield server
    server.close()


@pytest.fixture
def app(database_url: str, tmp_path: Path, graph: GraphServer) -> Iterator[App]:
    opened = make_app(
        database_url, tmp_path, graph_authority=graph.authority, graph_url=graph.graph_url
    )
    yield opened
    opened.close()


def _env(database_url: str, tmp_path: Path, graph: GraphServer, **extra: str) -> dict[str, str]:
    return subprocess_env(
        database_url,
        tmp_path / "data",
        INBOXD_GRAPH_AUTHORITY=graph.authority,
        INBOXD_GRAPH_URL=graph.graph_url,
        **extra,
    )


def test_add_sync_show_from_the_command_line(
    app: App, graph: GraphServer, database_url: str, tmp_path: Path
) -> None:
    fill(graph, "Inbox", 0, 30)
    graph.add_message("Sent Items", b"From: me@example.com\r\nSubject: sent\r\n\r\nhi\r\n")
    env = _env(database_url, tmp_path, graph)
    token = graph.tokens.issue()
    base = ("account", "add", "graph", "--name", "outlook", "--client-id")
    # Without a refresh token it signs in with a device code, which this server refuses.
    refused = run_cli(env, *base, graph.tokens.client_id)
    assert refused.returncode != 0 and "OAuth" in refused.stderr
    assert json.loads(run_cli(env, "account", "list", "--json").stdout) == []
    added = run_cli(
        env, *base, graph.tokens.client_id, "--refresh-token-stdin", "--json", stdin=token + "\n"
    )
    assert added.returncode == 0, added.stderr
    account_id = json.loads(added.stdout)["id"]

    tested = run_cli(env, "account", "test", account_id)
    assert tested.returncode == 0 and "INBOX: 30" in tested.stdout, tested.stderr
    synced = run_cli(env, "sync", account_id, "--wait", "--json")  # no worker: runs here

    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["result"]["new"] == 31
    shown = json.loads(run_cli(env, "account", "show", account_id, "--json").stdout)
    assert shown["provider"] == "graph" and shown["state"] == "ok"
    assert shown["settings"]["graph_url"] == graph.graph_url
    assert shown["message_count"] == 31
    assert shown["folders"]["INBOX"] == 30 and shown["folders"]["Sent Items"] == 1
    assert token not in json.dumps(shown)


def test_sigkill_mid_folder_resumes_from_the_stored_link(
    app: App, graph: GraphServer, database_url: str, tmp_path: Path
) -> None:
    ids = fill(graph, "Inbox", 0, 1200)
    graph.delay = 0.004  # slow enough to be killed part-way
    account = add_graph_account(app, graph, page_size=50)
    job = app.queue.enqueue("sync", account_id=account.id)
    env = _env(database_url, tmp_path, graph, INBOXD_SYNC_BATCH_MESSAGES="25")
    first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
    try:
        wait_for(lambda: app.queue.get(job.id).progress_current >= 300, timeout=90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    cursor = folder_cursor(app, account, "INBOX")
    assert cursor["partial"] is True and "$skiptoken" in cursor["link"]
    fetched_before = graph.counts["batch:value"]
    second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
    try:
        done = wait_finished(app, job.id, timeout=120)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    assert set(stored_keys(app, account, "INBOX")) == set(ids)
    assert message_count(app, account) == 1200
    # The second attempt went on from the stored page: at most the page it was in and
    # the bodies in flight were asked for again, not the folder.
    assert graph.counts["batch:value"] - fetched_before <= 1200 - 300 + 50 + 8 * 20
    assert graph.counts["batch:value"] < 1200 + 50 + 8 * 20


def _pks(app: App, account_id: str) -> list[int]:
    with reading(app.engine) as conn:
        return list(
            conn.execute(
                select(messages.c.id)
                .where(messages.c.account_id == account_id)
                .order_by(messages.c.id)
            ).scalars()
        )


def test_mark_archive_and_undo(
    app: App, graph: GraphServer, database_url: str, tmp_path: Path
) -> None:
    ids = fill(graph, "Inbox", 0, 4)
    account = add_graph_account(app, graph)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    first, second, *_ = _pks(app, account.id)
    env = _env(database_url, tmp_path, graph)

    marked = run_cli(env, "mark", str(first), "read", "--json")  # no worker: runs here
    assert marked.returncode == 0, marked.stderr
    job = json.loads(marked.stdout)
    assert job["status"] == "completed" and job["result"]["done"] == 1
    read = [m for m in graph.in_folder("Inbox") if m.is_read]
    assert len(read) == 1
    assert stored_keys(app, account, "INBOX")[read[0].id]["flags"] == ["\\Seen"]
    undone = run_cli(env, "undo", job["id"], "--wait")
    assert undone.returncode == 0, undone.stderr
    assert not any(m.is_read for m in graph.in_folder("Inbox"))

    # Archive: Exchange has no Archive folder here yet, so it is made; the id stays.
    archive = actions.start_change(app, account, {"message_ids": [second], "archive": True})
    with running_worker(app, concurrency=1):
        moved = wait_finished(app, archive.id, timeout=60)
        assert moved.status == JobStatus.COMPLETED, moved.error
        archived = graph.in_folder("Archive")
        assert len(archived) == 1 and len(graph.in_folder("Inbox")) == 3
        assert set(stored_keys(app, account, "Archive")) == {archived[0].id}
        with reading(app.engine) as conn:
            rows = conn.execute(
                select(change_journal.c.state).where(change_journal.c.job_id == archive.id)
            ).all()
        assert [r.state for r in rows] == ["done"]
        back = actions.undo_job(app, archive.id, owner=None)
        assert wait_finished(app, back.id, timeout=60).status == JobStatus.COMPLETED
    assert len(graph.in_folder("Inbox")) == 4 and graph.in_folder("Archive") == []
    assert set(stored_keys(app, account, "INBOX")) == set(ids)


def test_api_creates_a_graph_account_pointed_at_the_configured_endpoints(
    app: App, graph: GraphServer
) -> None:
    users = Users(app.engine)
    admin, _ = users.ensure_admin()
    api = AsgiClient(create_api(app), users.create_key(admin).key)
    fill(graph, "Inbox", 0, 5)
    body = {
        "provider": "graph",
        "name": "work",
        # A client may not send Graph's tokens elsewhere: the service's settings decide.
        "settings": {"client_id": graph.tokens.client_id, "graph_url": "https://evil.test"},
        "secret": {"refresh_token": graph.tokens.issue()},
    }
    assert api.call("POST", "/api/accounts", body | {"secret": {}}).status_code == 422

    created = api.call("POST", "/api/accounts", body)

    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["provider"] == "graph" and shown["settings"]["graph_url"] == graph.graph_url
    assert shown["settings"]["tenant"] == "common"
    assert "refresh_token" not in created.text
    account = Accounts(app.engine, app.settings).get(shown["id"])
    assert sync_now(app, account).status == JobStatus.COMPLETED
    assert message_count(app, account) == 5
