"""Webhooks end to end on SQLite and PostgreSQL, against a receiver on loopback that only an
exact allow-list entry lets inboxd reach: deliveries on finished and failed jobs, signatures
checked here with the secret, filters, retries then success, disabling after failures and
enabling again, a private receiver refused, no message content in any payload, owner-only
access over the API, the command line, and pruning of old deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.cli.main import app as cli_app
from inboxd.db.engine import writing
from inboxd.db.tables import webhook_deliveries
from inboxd.db.types import utcnow
from inboxd.errors import InvalidField
from inboxd.jobs.model import JobStatus
from inboxd.jobs.retention import prune
from inboxd.store.accounts import Accounts
from inboxd.store.users import Users
from inboxd.store.webhooks import Delivery, Webhooks
from tests.support.apps import AsgiClient, make_app, running_worker, wait_finished, wait_for
from tests.support.link_server import LinkServer, Route, Seen

HOOK = "/hook"
RECEIVER = "127.0.0.1"


class Answers(dict[str, Route]):
    """Routes whose answers for a path follow a script, one answer per request, the last
    one repeated: a receiver that fails, then recovers."""

    def __init__(self, script: dict[str, list[Route]]) -> None:
        super().__init__()
        self.script = script

    def get(self, path: str, default: Any = None) -> Any:
        answers = self.script.get(path)
        if not answers:
            return default
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def receiver() -> Iterator[LinkServer]:
    with LinkServer(RECEIVER) as server:
        server.routes[HOOK] = Route(status=204)
        yield server


def hooked_app(database_url: str, tmp_path: Path, **overrides: Any) -> App:
    values: dict[str, Any] = {
        "fetch_allow_networks": [RECEIVER],
        "fetch_timeout_seconds": 3.0,
        "webhook_max_attempts": 3,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
    }
    return make_app(database_url, tmp_path, **(values | overrides))


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = hooked_app(database_url, tmp_path)
    yield opened
    opened.close()


def verify(seen: Seen, secret: str) -> dict[str, Any]:
    """Check a request as a receiver would (the documented recipe); returns its payload."""
    fields = dict(part.split("=", 1) for part in seen.headers["x-inboxd-signature"].split(","))
    signed = fields["t"].encode() + b"." + seen.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"]), "bad signature"
    assert abs(time.time() - int(fields["t"])) < 60
    assert seen.headers["content-type"] == "application/json"
    payload: dict[str, Any] = json.loads(seen.body)
    assert seen.headers["x-inboxd-event"] == payload["event"]
    return payload


def run_jobs(app: App, *job_ids: str) -> None:
    """Run jobs and then every delivery job they caused."""
    with running_worker(app, concurrency=2):
        for job_id in job_ids:
            wait_finished(app, job_id)
        wait_for(lambda: not app.queue.list_jobs(status=["pending", "running"]), timeout=30)


def deliveries(app: App, webhook_id: str) -> list[Delivery]:
    return Webhooks(app.engine, app.settings).deliveries(webhook_id)


def test_finished_and_failed_jobs_are_delivered_signed(app: App, receiver: LinkServer) -> None:
    hooks = Webhooks(app.engine, app.settings)
    hook, secret = hooks.create(owner="alice", url=receiver.url(HOOK))
    bobs, _ = hooks.create(owner="bob", url=receiver.url("/bob"))
    done = app.queue.enqueue("selftest", {"steps": 2, "step_ms": 1}, owner="alice")
    failed = app.queue.enqueue(
        "selftest", {"steps": 2, "step_ms": 1, "fail_at": 1}, owner="alice", max_attempts=1
    )
    ownerless = app.queue.enqueue("noop")
    run_jobs(app, done.id, failed.id, ownerless.id)

    payloads = {p["job"]["id"]: p for p in (verify(s, secret) for s in receiver.seen)}
    assert set(payloads) == {done.id, failed.id}, "one delivery per ending of Alice's jobs"
    finished = payloads[done.id]
    assert finished["event"] == "job.finished" and finished["webhook_id"] == hook.id
    assert finished["job"]["status"] == "completed" and finished["job"]["kind"] == "selftest"
    assert finished["job"]["counts"] == {"steps": 2, "resumed_from": 0, "attempt": 1}
    assert finished["job"]["finished_at"] and finished["job"]["duration_seconds"] >= 0
    lost = payloads[failed.id]
    assert lost["event"] == "job.failed" and "asked to fail at step 1" in lost["job"]["error"]
    assert receiver.count("/bob") == 0

    log = deliveries(app, hook.id)
    assert sorted(d.job_id or "" for d in log) == sorted([done.id, failed.id])
    assert {(d.status, d.attempts, d.last_status_code) for d in log} == {("delivered", 1, 204)}
    ids = {s.headers["x-inboxd-delivery"] for s in receiver.seen}
    assert ids == {str(d.id) for d in log}
    # The delivery jobs ended too, and told nobody: no webhook hears of its own deliveries.
    sent = [app.queue.get(d.delivery_job_id or "") for d in log]
    assert all(j.kind == "webhook_delivery" and j.status == JobStatus.COMPLETED for j in sent)
    assert len(receiver.seen) == 2 and deliveries(app, bobs.id) == []


def test_filters_choose_events_accounts_and_kinds(app: App, receiver: LinkServer) -> None:
    hooks = Webhooks(app.engine, app.settings)
    _, secret = hooks.create(
        owner="alice", url=receiver.url(HOOK), events=["job.failed"], kinds=["selftest"]
    )
    only_a, other_secret = hooks.create(
        owner="alice", url=receiver.url("/a"), account_ids=["acct-a"]
    )
    receiver.routes["/a"] = Route(status=200)
    fail = {"steps": 1, "step_ms": 1, "fail_at": 1}
    jobs = [
        app.queue.enqueue("selftest", fail, owner="alice", max_attempts=1),  # both
        app.queue.enqueue("selftest", {"steps": 1}, owner="alice", account_id="acct-a"),
        app.queue.enqueue("noop", owner="alice", account_id="acct-b"),  # neither
        app.queue.enqueue("selftest", fail, owner="alice", account_id="acct-a", max_attempts=1),
    ]
    run_jobs(app, *(j.id for j in jobs))

    first = [verify(s, secret)["job"]["id"] for s in receiver.seen if s.path == HOOK]
    assert sorted(first) == sorted([jobs[0].id, jobs[3].id])
    second = [verify(s, other_secret) for s in receiver.seen if s.path == "/a"]
    assert sorted(p["job"]["id"] for p in second) == sorted([jobs[1].id, jobs[3].id])
    assert {p["event"] for p in second} == {"job.finished", "job.failed"}
    assert len(deliveries(app, only_a.id)) == 2


def test_a_failing_receiver_is_retried_until_it_answers(app: App, receiver: LinkServer) -> None:
    receiver.routes = Answers(
        {HOOK: [Route(status=503), Route(status=302, headers={"Location": "/x"}), Route(200)]}
    )
    hook, secret = Webhooks(app.engine, app.settings).create(owner="al", url=receiver.url(HOOK))
    run_jobs(app, app.queue.enqueue("noop", owner="al").id)

    (delivery,) = deliveries(app, hook.id)
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert delivery.last_status_code == 200 and delivery.last_error is None
    assert receiver.count("/x") == 0, "a redirect answering a webhook is never followed"
    bodies = {s.body for s in receiver.seen}
    assert len(receiver.seen) == 3 and len(bodies) == 1, "every attempt sends the same event"
    for seen in receiver.seen:
        verify(seen, secret)
    sent = app.queue.get(delivery.delivery_job_id or "")
    assert sent.status == JobStatus.COMPLETED and sent.attempts == 3


def test_repeated_failures_disable_the_webhook_until_enabled(
    database_url: str, tmp_path: Path, receiver: LinkServer
) -> None:
    app = hooked_app(database_url, tmp_path, webhook_max_attempts=2, webhook_disable_after=2)
    try:
        receiver.routes[HOOK] = Route(status=500)
        hooks = Webhooks(app.engine, app.settings)
        hook, _ = hooks.create(owner="al", url=receiver.url(HOOK))
        run_jobs(app, app.queue.enqueue("noop", owner="al").id)
        assert hooks.get(hook.id).consecutive_failures == 1 and hooks.get(hook.id).enabled
        run_jobs(app, app.queue.enqueue("noop", owner="al").id)

        now = hooks.get(hook.id)
        assert not now.enabled and now.consecutive_failures == 2
        assert now.disabled_reason == (
            "disabled after 2 failed deliveries in a row (last: HTTP 500)"
        )
        log = deliveries(app, hook.id)
        assert [(d.status, d.attempts, d.last_error) for d in log] == [
            ("failed", 2, "HTTP 500")
        ] * 2
        assert len(receiver.seen) == 4
        run_jobs(app, app.queue.enqueue("noop", owner="al").id)
        assert len(receiver.seen) == 4 and len(deliveries(app, hook.id)) == 2

        receiver.routes[HOOK] = Route(status=200)
        again = hooks.update(hook.id, {"enabled": True})
        assert again.enabled and again.consecutive_failures == 0 and not again.disabled_reason
        run_jobs(app, app.queue.enqueue("noop", owner="al").id)
        assert deliveries(app, hook.id)[0].status == "delivered"
    finally:
        app.close()


def test_a_private_receiver_is_refused_unless_allow_listed(
    database_url: str, tmp_path: Path, receiver: LinkServer
) -> None:
    # 127.0.0.1 is allowed, 127.0.0.2 is not: the allow-list entry is taken exactly.
    other = LinkServer("127.0.0.2")
    other.routes[HOOK] = Route(status=200)
    app = hooked_app(database_url, tmp_path)
    wider = hooked_app(database_url, tmp_path, fetch_allow_networks=["127.0.0.0/8"])
    try:
        hooks = Webhooks(app.engine, app.settings)
        for url in (other.url(HOOK), "http://localhost/x", "http://[::1]:8/x", "http://0/x"):
            with pytest.raises(InvalidField, match="INBOXD_FETCH_ALLOW_NETWORKS"):
                hooks.create(owner="al", url=url)
        # Made while the operator allowed more: each delivery checks again.
        hook, _ = Webhooks(wider.engine, wider.settings).create(owner="al", url=other.url(HOOK))
        run_jobs(app, app.queue.enqueue("noop", owner="al").id)
        (delivery,) = deliveries(app, hook.id)
        assert delivery.status == "failed" and delivery.attempts == 1, "refused: no retry"
        assert delivery.last_status_code is None
        assert (delivery.last_error or "").startswith("private address: 127.0.0.2 is loopback")
        assert other.seen == []
        sent = app.queue.get(delivery.delivery_job_id or "")
        assert sent.status == JobStatus.FAILED and sent.attempts == 1
    finally:
        app.close()
        wider.close()
        other.close()


def test_payloads_hold_no_message_content(app: App, receiver: LinkServer, tmp_path: Path) -> None:
    root = tmp_path / "mail"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1.host:2,S").write_bytes(
        b"From: Carol Quux <carol@secret.example>\r\nTo: al@home.example\r\n"
        b"Subject: Zanzibar merger plans\r\nMessage-ID: <m1@secret.example>\r\n"
        b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nThe password is hunter2.\r\n"
    )
    account = Accounts(app.engine, app.settings).add(
        "maildir", "mine", {"path": str(root)}, owner="al"
    )
    _, secret = Webhooks(app.engine, app.settings).create(owner="al", url=receiver.url(HOOK))
    sync = app.queue.enqueue("sync", owner="al", account_id=account.id)
    run_jobs(app, sync.id)

    payloads = [verify(s, secret) for s in receiver.seen]
    kinds = {p["job"]["kind"] for p in payloads}
    assert {"sync", "index"} <= kinds, kinds
    assert all(p["job"]["account_id"] == account.id for p in payloads)
    # Deliveries are no work on the account: its state never shows one.
    kinds_on_account = {j.kind for j in app.queue.list_jobs(account_id=account.id)}
    assert "webhook_delivery" not in kinds_on_account and "sync" in kinds_on_account
    text = b" ".join(s.body for s in receiver.seen).lower()
    for word in (b"zanzibar", b"carol", b"secret.example", b"hunter2", b"merger", str(root)):
        assert (word if isinstance(word, bytes) else word.encode()) not in text


@pytest.fixture
def api_world(app: App) -> Iterator[tuple[App, AsgiClient, AsgiClient, str, str]]:
    users = Users(app.engine)
    alice, bob = users.add("alice"), users.add("bob")
    api = create_api(app)
    yield (
        app,
        AsgiClient(api, users.create_key(alice).key),
        AsgiClient(api, users.create_key(bob).key),
        alice.id,
        bob.id,
    )


def test_the_api_is_owner_only_and_shows_the_secret_once(
    api_world: tuple[App, AsgiClient, AsgiClient, str, str], receiver: LinkServer
) -> None:
    app, alice, bob, alice_id, _ = api_world
    made = alice.call("POST", "/api/webhooks", {"url": receiver.url(HOOK), "kinds": ["noop"]})
    assert made.status_code == 201, made.text
    created = made.json()
    hook_id, secret = created["id"], created["secret"]
    assert secret.startswith("whsec_") and created["events"] == ["job.finished", "job.failed"]
    shown = alice.call("GET", f"/api/webhooks/{hook_id}").json()
    assert "secret" not in shown and shown["kinds"] == ["noop"]
    listed = alice.call("GET", "/api/webhooks").json()["webhooks"]
    assert [h["id"] for h in listed] == [hook_id] and secret not in json.dumps(listed)

    for method, path, body in (
        ("GET", f"/api/webhooks/{hook_id}", None),
        ("PATCH", f"/api/webhooks/{hook_id}", {"enabled": False}),
        ("GET", f"/api/webhooks/{hook_id}/deliveries", None),
        ("POST", f"/api/webhooks/{hook_id}/test", None),
        ("DELETE", f"/api/webhooks/{hook_id}", None),
    ):
        answer = bob.call(method, path, body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert bob.call("GET", "/api/webhooks").json() == {"webhooks": []}

    for bad in (
        {"url": "ftp://127.0.0.1/x"},
        {"url": "http://user:pw@127.0.0.1/x"},
        {"url": "not a url"},
        {"url": "http://127.0.0.2/x"},
        {"url": receiver.url(HOOK), "kinds": ["no-such-kind"]},
        {"url": receiver.url(HOOK), "events": ["job.started"]},
    ):
        assert alice.call("POST", "/api/webhooks", bad).status_code in (400, 422), bad
    bobs_account = Accounts(app.engine, app.settings).add(
        "maildir", "b", {"path": str(app.settings.data_dir)}, owner="someone-else"
    )
    refused = alice.call(
        "POST", "/api/webhooks", {"url": receiver.url(HOOK), "account_ids": [bobs_account.id]}
    )
    assert refused.status_code == 404

    tested = alice.call("POST", f"/api/webhooks/{hook_id}/test")
    assert tested.status_code == 202 and tested.json()["event"] == "webhook.test"
    run_jobs(app, app.queue.enqueue("noop", owner=alice_id).id)
    log = alice.call("GET", f"/api/webhooks/{hook_id}/deliveries").json()["deliveries"]
    assert sorted(d["event"] for d in log) == ["job.finished", "webhook.test"]
    assert {d["status"] for d in log} == {"delivered"}
    events = sorted(verify(s, secret)["event"] for s in receiver.seen)
    assert events == ["job.finished", "webhook.test"]

    off = alice.call("PATCH", f"/api/webhooks/{hook_id}", {"enabled": False, "kinds": None})
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert off.json()["kinds"] is None and off.json()["disabled_reason"] == "disabled by its owner"
    assert alice.call("DELETE", f"/api/webhooks/{hook_id}").status_code == 204
    assert alice.call("GET", f"/api/webhooks/{hook_id}").status_code == 404


def test_the_command_line_adds_lists_tests_and_removes(
    app: App, receiver: LinkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.settings
    monkeypatch.setenv("INBOXD_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("INBOXD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("INBOXD_FETCH_ALLOW_NETWORKS", RECEIVER)
    Users(app.engine).add("carol")
    runner = CliRunner()

    added = runner.invoke(
        cli_app, ["webhooks", "add", receiver.url(HOOK), "--user", "carol", "--json"]
    )
    assert added.exit_code == 0, added.output
    created = json.loads(added.stdout)
    listed = runner.invoke(cli_app, ["webhooks", "list", "--json"])
    assert [h["id"] for h in json.loads(listed.stdout)["webhooks"]] == [created["id"]]
    assert created["secret"] not in listed.stdout

    tested = runner.invoke(cli_app, ["webhooks", "test", created["id"]])
    assert tested.exit_code == 0 and "queued" in tested.stdout
    run_jobs(app)
    shown = runner.invoke(cli_app, ["webhooks", "deliveries", created["id"], "--json"])
    (delivery,) = json.loads(shown.stdout)["deliveries"]
    assert delivery["status"] == "delivered" and delivery["event"] == "webhook.test"
    assert verify(receiver.seen[0], created["secret"])["webhook_id"] == created["id"]

    bad = runner.invoke(cli_app, ["webhooks", "add", "http://u:p@127.0.0.1/x"])
    assert bad.exit_code != 0 and "no user name or password" in str(bad.exception)
    removed = runner.invoke(cli_app, ["webhooks", "remove", created["id"]])
    assert removed.exit_code == 0
    assert json.loads(runner.invoke(cli_app, ["webhooks", "list", "--json"]).stdout) == {
        "webhooks": []
    }


def test_ended_deliveries_are_pruned_with_old_jobs(app: App, receiver: LinkServer) -> None:
    hooks = Webhooks(app.engine, app.settings)
    hook, _ = hooks.create(owner="al", url=receiver.url(HOOK))
    old_done, old_pending, new_done = (hooks.send_test(hook.id) for _ in range(3))
    long_ago = utcnow() - timedelta(days=app.settings.retention_days + 1)
    with writing(app.engine) as conn:
        for delivery, status, created in (
            (old_done, "delivered", long_ago),
            (old_pending, "pending", long_ago),
            (new_done, "failed", utcnow()),
        ):
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery.id)
                .values(status=status, created_at=created)
            )
    assert prune(app.engine, app.settings).deliveries == 1
    assert {d.id for d in deliveries(app, hook.id)} == {old_pending.id, new_done.id}


def test_test_deliveries_count_against_the_job_rate(
    database_url: str, tmp_path: Path, receiver: LinkServer
) -> None:
    app = hooked_app(database_url, tmp_path, jobs_rate_per_minute=8)  # bursts of 2
    try:
        users = Users(app.engine)
        alice = users.add("alice")
        client = AsgiClient(create_api(app), users.create_key(alice).key)
        made = client.call("POST", "/api/webhooks", {"url": receiver.url(HOOK)}).json()
        answers = [client.call("POST", f"/api/webhooks/{made['id']}/test") for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 429]
        assert answers[2].headers["Retry-After"]
        assert len(deliveries(app, made["id"])) == 2
    finally:
        app.close()
