"""Graph accounts synced from a local server that answers as Microsoft Graph does, on
SQLite and PostgreSQL: many pages stored exactly once, incremental changes from the delta
(new, read, flagged, categories, removed, moved), throttling, an expired delta token, an
access token renewed on 401, and a revoked grant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inboxd.app import App
from inboxd.jobs.model import JobStatus
from inboxd.providers import registry
from inboxd.providers.base import Marks, Mutation, MutationRefused, ProviderOptions
from inboxd.providers.graph.provider import CONCURRENCY
from inboxd.store.accounts import NEEDS_SIGN_IN, Accounts
from tests.support.apps import make_app, sync_now
from tests.support.graph_accounts import (
    add_graph_account,
    fill,
    folder_cursor,
    message_count,
    real_mail,
    stored_keys,
)
from tests.support.graph_server import GraphServer


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    server = GraphServer(folder_page=2)
    yield server
    server.close()


@pytest.fixture
def app(database_url: str, tmp_path: Path, graph: GraphServer) -> Iterator[App]:
    opened = make_app(
        database_url, tmp_path, graph_authority=graph.authority, graph_url=graph.graph_url
    )
    yield opened
    opened.close()


def test_thousands_over_many_pages_stored_once(app: App, graph: GraphServer) -> None:
    inbox = fill(graph, "Inbox", 0, 2500)
    projects = graph.add_folder("Projects", parent=graph.folder_id("inbox"))
    deep = graph.add_folder("2026", parent=projects)
    graph.add_folder("Empty")
    real = [graph.add_message(deep, raw) for raw in real_mail(40)]
    fill(graph, projects, 5000, 30)
    account = add_graph_account(app, graph, page_size=100)

    job = sync_now(app, account, timeout=120)

    assert job.status == JobStatus.COMPLETED, job.error
    assert set(stored_keys(app, account, "INBOX")) == set(inbox)
    assert set(stored_keys(app, account, "INBOX/Projects/2026")) == set(real)
    assert len(stored_keys(app, account, "INBOX/Projects")) == 30
    assert message_count(app, account) == 2500 + 30 + len({*map(bytes, real_mail(40))})
    assert graph.counts["batch:value"] == 2500 + 30 + 40  # each body asked for once
    assert graph.counts["value"] == 0  # twenty to a $batch request
    assert graph.counts["batch"] <= (2500 + 30 + 40) // 20 + 30
    assert graph.counts["delta"] >= 25 + 1  # 100 per page, as asked
    # Top-level folders come two per page here: the listing followed every nextLink.
    counts = Accounts(app.engine, app.settings).counts(account.id)["folders"]
    assert {"INBOX", "Sent Items", "Drafts", "Deleted Items", "Junk Email", "Empty"} <= set(counts)
    cursor = folder_cursor(app, account, "INBOX")
    assert cursor["partial"] is False and "$deltatoken" in cursor["link"]

    # Nothing changed: one delta request per folder, no body, nothing stored again.
    graph.counts.clear()
    again = sync_now(app, account)
    assert again.status == JobStatus.COMPLETED, again.error
    assert graph.counts["delta"] == len(counts)
    assert graph.counts["batch"] == graph.counts["value"] == 0
    assert again.result["new"] == 0


def test_new_changed_removed_and_moved_picked_up(app: App, graph: GraphServer) -> None:
    ids = fill(graph, "Inbox", 0, 40)
    archive = graph.add_folder("Archive", well_known="archive")
    account = add_graph_account(app, graph, page_size=7)
    assert sync_now(app, account).status == JobStatus.COMPLETED

    graph.change(ids[0], is_read=True)
    graph.change(ids[1], flagged=True)
    graph.change(ids[2], categories=["Blue category"])
    graph.delete(ids[3])
    moved = graph.move(ids[4], archive)
    new = fill(graph, "Inbox", 100, 5)
    graph.counts.clear()
    job = sync_now(app, account)

    assert job.status == JobStatus.COMPLETED, job.error
    inbox = stored_keys(app, account, "INBOX")
    assert set(inbox) == (set(ids) - {ids[3], ids[4]}) | set(new)
    assert inbox[ids[0]]["flags"] == ["\\Seen"]
    assert inbox[ids[1]]["flags"] == ["\\Flagged"]
    assert inbox[ids[2]]["labels"] == ["Blue category"]
    assert inbox[ids[5]] == {"flags": [], "labels": []}
    assert moved == ids[4]  # immutable ids: the key survives the move
    assert set(stored_keys(app, account, "Archive")) == {ids[4]}
    # the new ones, and the moved one's new place (alone in its folder: no $batch)
    assert graph.counts["batch:value"] + graph.counts["value"] == 5 + 1
    assert message_count(app, account) == 40 + 5  # the moved one is the same message


def test_throttled_and_failing_pages_are_retried(app: App, graph: GraphServer) -> None:
    ids = fill(graph, "Inbox", 0, 300)
    graph.fail("delta", 429, times=2, retry_after=0.2)
    graph.fail("batch", 429, retry_after=0.1)
    graph.fail("batch", 502)
    graph.fail("value", 503, times=3, retry_after=0.1)  # parts of a batch, then alone
    graph.fail("value", 500, times=4)
    graph.fail("folders", 504, retry_after=0)
    account = add_graph_account(app, graph, page_size=50)

    job = sync_now(app, account)

    assert job.status == JobStatus.COMPLETED, job.error
    assert job.attempts == 1  # retried inside the request, not by failing the job
    assert set(stored_keys(app, account, "INBOX")) == set(ids)
    assert message_count(app, account) == 300
    # 7 parts failed inside batches (503, 500) and were asked for alone.
    assert graph.counts["value"] == 7
    assert graph.counts["delta"] == 6 + 2 + (len(graph.folders) - 1)  # 2 throttled


def test_without_batch_bodies_come_one_request_each(app: App, graph: GraphServer) -> None:
    ids = fill(graph, "Inbox", 0, 120)
    graph.batch_enabled = False
    graph.fail("value", 503, times=2, retry_after=0.05)
    graph.fail("value", 500)
    account = add_graph_account(app, graph, page_size=50)

    job = sync_now(app, account)

    assert job.status == JobStatus.COMPLETED, job.error
    assert set(stored_keys(app, account, "INBOX")) == set(ids)
    # Refused by the first answer; only those already sent alongside it were asked too.
    assert 1 <= graph.counts["batch"] <= CONCURRENCY
    assert graph.counts["value"] == 120 + 3  # three retried after a 503 or a 500


def test_expired_delta_token_restarts_the_folder_without_duplicates(
    app: App, graph: GraphServer
) -> None:
    ids = fill(graph, "Inbox", 0, 60)
    account = add_graph_account(app, graph, page_size=25)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    graph.change(ids[0], is_read=True, categories=["Red category"])
    graph.delete(ids[1])
    new = fill(graph, "Inbox", 500, 3)
    graph.expire_delta()
    graph.counts.clear()

    job = sync_now(app, account)

    assert job.status == JobStatus.COMPLETED, job.error
    inbox = stored_keys(app, account, "INBOX")
    assert set(inbox) == (set(ids) - {ids[1]}) | set(new)
    assert inbox[ids[0]] == {"flags": ["\\Seen"], "labels": ["Red category"]}
    # the folder came again; stored mail was skipped
    assert graph.counts["batch:value"] + graph.counts["value"] == 3
    assert graph.counts["list"] >= 1  # one listing learned the marks and the removal
    assert message_count(app, account) == 63
    logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
    assert any("delta token of INBOX expired" in m for m in logs)
    # The new delta link works again: a sync after it asks for nothing more.
    graph.counts.clear()
    assert sync_now(app, account).status == JobStatus.COMPLETED
    assert graph.counts["batch"] == graph.counts["list"] == 0


def test_expired_access_token_is_renewed_once(app: App, graph: GraphServer) -> None:
    fill(graph, "Inbox", 0, 10)
    account = add_graph_account(app, graph)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    before = len(graph.tokens.requests)
    graph.tokens.expire_access()
    fill(graph, "Inbox", 10, 2)

    job = sync_now(app, account)

    assert job.status == JobStatus.COMPLETED, job.error
    assert message_count(app, account) == 12
    # The cached token was still "fresh" by its expiry time: Graph's 401 renewed it, once;
    # the refresh token rotated and the new one is what the account keeps.
    assert len(graph.tokens.requests) == before + 1
    secret = Accounts(app.engine, app.settings).secret(account.id)
    assert secret["refresh_token"] in graph.tokens.refresh_tokens


def test_revoked_refresh_token_needs_sign_in(app: App, graph: GraphServer) -> None:
    fill(graph, "Inbox", 0, 3)
    account = add_graph_account(app, graph)
    graph.tokens.revoke_all()

    job = sync_now(app, account)

    assert job.status == JobStatus.FAILED
    assert job.attempts == 1  # a person must sign in again: no retries
    assert "invalid_grant" in str(job.error)
    assert Accounts(app.engine, app.settings).get(account.id).state == NEEDS_SIGN_IN
    assert graph.counts["delta"] == 0


def test_provider_writes_marks_and_categories_and_refuses_keywords(
    app: App, graph: GraphServer
) -> None:
    ids = fill(graph, "Inbox", 0, 3)
    graph.change(ids[1], categories=["Blue category"])
    account = add_graph_account(app, graph)
    secrets = Accounts(app.engine, app.settings)
    with registry.open_provider(account, secrets, ProviderOptions()) as provider:
        provider.open()
        assert provider.capabilities.labels and provider.capabilities.mutations
        done = provider.apply(
            [
                Mutation("INBOX", ids[0], add_flags=("\\Seen", "\\Flagged")),
                Mutation("INBOX", ids[1], add_labels=("inboxd/Newsletter",)),
                Mutation("Drafts", ids[2], add_flags=("\\Seen",)),  # not there
            ]
        )
        assert [a.ok for a in done] == [True, True, False]
        assert done[0].marks == Marks(("\\Seen", "\\Flagged"), ())
        assert done[1].marks == Marks((), ("Blue category", "inboxd/Newsletter"))
        assert done[2].error == "not in Drafts any more"
        with pytest.raises(MutationRefused):
            provider.apply([Mutation("INBOX", ids[2], add_flags=("$inboxd_newsletter",))])
        with pytest.raises(MutationRefused):
            provider.apply([Mutation("INBOX", ids[2], add_flags=("\\Deleted",))])
        marks = provider.current_marks("INBOX", [ids[0], ids[1], "AAMkMnothere="])
        assert set(marks) == {ids[0], ids[1]}
        message_id = graph.messages[ids[2]].message_id
        assert provider.locate("INBOX", message_id) == [ids[2]]
        assert provider.locate("Drafts", message_id) == []
        assert provider.archive_folder() == "Archive"  # made, as Exchange has none yet
    assert graph.messages[ids[0]].is_read and graph.messages[ids[0]].flagged
    assert graph.messages[ids[1]].categories == ["Blue category", "inboxd/Newsletter"]
    assert not graph.messages[ids[2]].is_read
    assert graph.counts["create_folder"] == 1
