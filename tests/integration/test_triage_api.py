"""Steering triage through the API and the command line (SQLite and PostgreSQL): a
message's category, sender rules, rules CRUD, a triage by hand; another user's message or
rule is not found; bad input is refused with the one error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from tests.integration.test_triage import HAND_MADE, ME, finish_triage, write_maildir
from tests.support.apps import AsgiClient as Client
from tests.support.apps import make_app, run_cli, subprocess_env, sync_and_index


@dataclass
class World:
    app: App
    alice: Client
    bob: Client
    account: Account
    env: dict[str, str]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    app = make_app(database_url, tmp_path)
    users = Users(app.engine)
    alice, bob = users.add("alice"), users.add("bob")
    api = create_api(app)
    root = tmp_path / "mail"
    write_maildir(root, HAND_MADE)
    account = Accounts(app.engine, app.settings).add(
        "maildir", "home", {"path": str(root)}, owner=alice.id, addresses=[ME]
    )
    sync_and_index(app, account)
    finish_triage(app, account)
    try:
        yield World(
            app,
            Client(api, users.create_key(alice).key),
            Client(api, users.create_key(bob).key),
            account,
            subprocess_env(database_url, tmp_path / "data"),
        )
    finally:
        app.close()


def message_id(app: App, subject: str) -> int:
    with reading(app.engine) as conn:
        return int(
            conn.execute(select(messages.c.id).where(messages.c.subject == subject)).scalar_one()
        )


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_setting_a_category_through_the_api(world: World) -> None:
    pk = message_id(world.app, "A question about your talk")
    answer = world.alice.call("POST", f"/api/messages/{pk}/category", {"category": "receipt"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["message"]["id"] == pk and body["rule"] is None and body["job_id"] is None
    with reading(world.app.engine) as conn:
        stored = conn.execute(
            select(messages.c.category, messages.c.triage_source).where(messages.c.id == pk)
        ).one()
    assert tuple(stored) == ("receipt", "correction")

    shop = message_id(world.app, "50% off everything this weekend")
    answer = world.alice.call(
        "POST", f"/api/messages/{shop}/category", {"category": "spam", "sender": True}
    )
    assert answer.status_code == 200, answer.text
    rule, job_id = answer.json()["rule"], answer.json()["job_id"]
    assert rule["match"] == 'from:"deals@shop.example"' and rule["source"] == "sender"
    job = world.app.queue.get(job_id)
    assert job.kind == "triage" and job.params["query"] == rule["match"]
    assert job.account_id == world.account.id

    listed = world.alice.call("GET", "/api/rules").json()["rules"]
    assert [r["id"] for r in listed] == [rule["id"]]
    assert set(listed[0]) == {
        "id",
        "account_id",
        "match",
        "category",
        "priority",
        "source",
        "created_at",
    }


def test_another_users_message_and_bad_bodies(world: World) -> None:
    pk = message_id(world.app, "A question about your talk")
    path = f"/api/messages/{pk}/category"
    assert world.bob.call("POST", path, {"category": "spam"}).status_code == 404
    assert (
        world.alice.call("POST", "/api/messages/999999/category", {"category": "spam"}).status_code
        == 404
    )
    for bad in (
        {"category": "junk"},
        {"category": 3},
        {"category": "spam", "sender": "yes"},
        {"category": "spam", "extra": 1},
        {},
    ):
        answer = world.alice.call("POST", path, bad)
        assert answer.status_code == 422, (bad, answer.text)
        assert error_code(answer)
    assert (
        world.alice.call("POST", "/api/messages/0/category", {"category": "spam"}).status_code
        == 422
    )


def test_rules_through_the_api(world: World) -> None:
    answer = world.alice.call(
        "POST",
        "/api/rules",
        {"match": "from:deals@shop.example", "category": "promotion", "priority": 5},
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    rule = created["rule"]
    assert (rule["account_id"], rule["category"], rule["priority"], rule["source"]) == (
        None,
        "promotion",
        5,
        "user",
    )
    [job_id] = created["job_ids"]
    params = world.app.queue.get(job_id).params
    assert (params["account_id"], params["query"]) == (world.account.id, "from:deals@shop.example")
    assert not params.get("all")
    one = world.alice.call(
        "POST",
        "/api/rules",
        {"match": "subject:pipeline", "category": "notification", "account_id": world.account.id},
    )
    assert one.status_code == 201 and one.json()["rule"]["account_id"] == world.account.id
    listed = [r["id"] for r in world.alice.call("GET", "/api/rules").json()["rules"]]
    assert listed == [one.json()["rule"]["id"], rule["id"]]  # newest first
    assert world.bob.call("GET", "/api/rules").json() == {"rules": []}

    # Another user may neither see, remove nor aim a rule at Alice's account.
    assert world.bob.call("DELETE", f"/api/rules/{rule['id']}").status_code == 404
    aimed = world.bob.call(
        "POST", "/api/rules", {"match": "x", "category": "spam", "account_id": world.account.id}
    )
    assert aimed.status_code == 404
    bad_query = world.alice.call("POST", "/api/rules", {"match": "from:(", "category": "spam"})
    assert bad_query.status_code == 400 and "from:" in bad_query.json()["error"]["message"]
    for bad in (
        {"match": "x", "category": "spam", "priority": 101},
        {"match": "", "category": "spam"},
        {"match": "x", "category": "nope"},
        {"match": "x"},
    ):
        assert world.alice.call("POST", "/api/rules", bad).status_code == 422, bad

    removed = world.alice.call("DELETE", f"/api/rules/{rule['id']}")
    assert removed.status_code == 204 and removed.content == b""
    assert world.alice.call("DELETE", f"/api/rules/{rule['id']}").status_code == 404
    assert [r["id"] for r in world.alice.call("GET", "/api/rules").json()["rules"]] == [
        one.json()["rule"]["id"]
    ]


def test_a_triage_by_hand_is_a_generic_job(world: World) -> None:
    answer = world.alice.call(
        "POST",
        "/api/jobs",
        {"kind": "triage", "account_id": world.account.id, "params": {"all": True}},
    )
    assert answer.status_code == 202, answer.text
    job = world.app.queue.get(answer.json()["job_id"])
    assert job.kind == "triage" and job.params["all"] is True
    assert job.params["account_id"] == world.account.id and not job.params.get("query")
    missing = world.alice.call("POST", "/api/jobs", {"kind": "triage", "params": {}})
    assert missing.status_code == 422
    unknown = world.alice.call(
        "POST",
        "/api/jobs",
        {"kind": "triage", "account_id": world.account.id, "params": {"everything": True}},
    )
    assert unknown.status_code == 422
    others = world.bob.call(
        "POST", "/api/jobs", {"kind": "triage", "account_id": world.account.id, "params": {}}
    )
    assert others.status_code == 404


# -- the command line ---------------------------------------------------------------------------


def test_the_command_line(world: World) -> None:
    env = world.env
    done = run_cli(env, "triage", world.account.name, "--all", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["kind"] == "triage" and job["status"] == JobStatus.COMPLETED
    assert job["result"]["triaged"] == len(HAND_MADE[""]) + len(HAND_MADE["Sent"])

    text = run_cli(env, "triage", world.account.id, "--wait")
    assert text.returncode == 0, text.stderr
    assert "triage completed: 0 messages" in text.stdout
    queued = run_cli(env, "triage", world.account.id)
    assert queued.returncode == 0 and world.app.queue.get(queued.stdout.strip()).kind == "triage"

    pk = message_id(world.app, "Last chance: free shipping")
    changed = run_cli(env, "categorize", str(pk), "spam", "--sender", "--json")
    assert changed.returncode == 0, changed.stderr
    body = json.loads(changed.stdout)
    assert body["message"]["id"] == pk and body["rule"]["match"] == 'from:"deals@shop.example"'
    assert body["job_id"]

    added = run_cli(
        env, "rules", "add", "--match", "subject:pipeline", "--category", "action_required",
        "--priority", "90", "--account", world.account.id, "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)["rule"]
    assert (rule["match"], rule["priority"], rule["account_id"]) == (
        "subject:pipeline",
        90,
        world.account.id,
    )
    listed = json.loads(run_cli(env, "rules", "list", "--json").stdout)["rules"]
    assert [r["id"] for r in listed] == [rule["id"], body["rule"]["id"]]
    table = run_cli(env, "rules", "list")
    assert "subject:pipeline" in table.stdout and "action_required" in table.stdout

    assert run_cli(env, "rules", "remove", str(rule["id"])).returncode == 0
    again = run_cli(env, "rules", "remove", str(rule["id"]))
    assert again.returncode == 1 and f"no rule {rule['id']}" in again.stderr

    bad = run_cli(env, "categorize", str(pk), "junk")
    assert bad.returncode == 2 and "unknown category" in bad.stderr
    query = run_cli(env, "rules", "add", "--match", "from:(", "--category", "spam")
    assert query.returncode == 2 and "error:" in query.stderr
