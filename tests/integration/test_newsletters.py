"""Newsletter extraction end to end on SQLite and PostgreSQL, against a local HTTP server
only: redirect chains resolved, unsubscribe and confirm links never requested (counted),
a redirect to a loopback address that is not allow-listed refused, tracking parameters
stripped and duplicates merged, 1 hour / 1 day / 7 days windows, cancel mid-resolution,
network resolution off, owner-only access, the per-user limit and the command line."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.cli.main import app as cli_app
from inboxd.errors import InvalidState, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from tests.support.apps import AsgiClient as Client
from tests.support.apps import (
    make_app,
    running_worker,
    subprocess_env,
    sync_and_index,
    wait_finished,
    wait_for,
)
from tests.support.link_server import LinkServer, Route

NOW = datetime.now(UTC).replace(microsecond=0)
ARTICLE = b"<html><head><title>Page title</title></head><body>x</body></html>"


def newsletter(
    sender: str, subject: str, html: str, *, age: timedelta, unsubscribe: str | None = None
) -> bytes:
    """One HTML newsletter ``age`` old, with list headers."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "alice@home.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NOW - age)
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@news.example>"
    msg["List-Id"] = f"{subject} <{subject.replace(' ', '.')}.news.example>"
    if unsubscribe:
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg.set_content("See the HTML part.\n")
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def write_maildir(root: Path, raws: list[bytes]) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(raws):
        (root / "cur" / f"{1000 + n}.news.host:2,S").write_bytes(raw)


@dataclass
class World:
    app: App
    server: LinkServer
    other: LinkServer  # on 127.0.0.2: not allow-listed
    account: Account
    slow_account: Account
    alice: Client
    bob: Client
    database_url: str
    data_dir: Path


NEVER = ("/unsub", "/confirm", "/prefs", "/unsubscribe")
SLOW, SLOW_HOPS, SLOW_DELAY = 4, 4, 0.8


def routes(s: LinkServer, other: LinkServer) -> None:
    s.routes["/r1"] = Route(status=302, headers={"Location": s.url("/r2")})
    s.routes["/r2"] = Route(status=301, headers={"Location": "/article1?utm_source=chain"})
    s.routes["/article1"] = Route(body=ARTICLE)
    s.routes["/article2"] = Route(body=ARTICLE)
    s.routes["/article3"] = Route(body=ARTICLE, head_status=405)
    s.routes["/article4"] = Route(body=ARTICLE, headers={"Content-Type": "text/html"})
    s.routes["/evil"] = Route(status=302, headers={"Location": other.url("/internal")})
    s.routes["/gone"] = Route(status=404)
    # A short link whose target is an unsubscribe page: that target is never requested.
    s.routes["/short"] = Route(status=302, headers={"Location": "/unsubscribe?list=1"})
    s.routes["/loop"] = Route(status=302, headers={"Location": s.url("/loop2")})
    s.routes["/loop2"] = Route(status=302, headers={"Location": s.url("/loop")})
    for n in range(7):  # one redirect more than INBOXD_FETCH_MAX_HOPS allows
        s.routes[f"/far{n}"] = Route(status=302, headers={"Location": f"/far{n + 1}"})
    for path in NEVER:
        s.routes[path] = Route(body=b"you are unsubscribed")
    other.routes["/internal"] = Route(body=b"secret")
    # Slow links: four slow hops each, so a cancel lands between two hops of a link.
    for n in range(SLOW):
        for hop in range(1, SLOW_HOPS):
            here = f"/slow{n}" if hop == 1 else f"/slow{n}-{hop}"
            nxt = s.url(f"/slow{n}-{hop + 1}")
            s.routes[here] = Route(status=302, headers={"Location": nxt}, delay=SLOW_DELAY)
        s.routes[f"/slow{n}-{SLOW_HOPS}"] = Route(body=ARTICLE, delay=SLOW_DELAY)


def mailbox(s: LinkServer) -> list[bytes]:
    one = f"""<html><body>
<p><a href="{s.url("/view?id=1")}">View in browser</a></p>
<h2><a href="{s.url("/r1?utm_source=news&amp;utm_medium=email")}">Article one</a></h2>
<p><a href="{s.url("/article1?fbclid=abc&amp;utm_campaign=x")}">Article one again</a></p>
<p><a href="{s.url("/evil")}">Read inside</a> <a href="{s.url("/gone")}">Gone</a>
<a href="{s.url("/short")}">Short</a> <a href="{s.url("/loop")}">Around</a>
<a href="{s.url("/far0")}">Far away</a></p>
<p><a href="{s.url("/confirm?token=9")}">Confirm your subscription</a>
<a href="{s.url("/prefs?u=1")}">Update your preferences</a>
<a href="{s.url("/unsub?u=1")}">Unsubscribe</a></p></body></html>"""
    return [
        newsletter(
            "Daily <daily@daily.example>",
            "Daily one",
            one,
            age=timedelta(minutes=30),
            unsubscribe=s.url("/unsub?u=1"),
        ),
        newsletter(
            "Weekly <weekly@weekly.example>",
            "Weekly two",
            f'<a href="{s.url("/article2")}">Two</a> <a href="{s.url("/article4")}"> </a>',
            age=timedelta(hours=5),
        ),
        newsletter(
            "Weekly <weekly@weekly.example>",
            "Weekly three",
            f'<a href="{s.url("/article3?mc_cid=1")}">Three</a>',
            age=timedelta(days=3),
        ),
        newsletter(
            "Monthly <m@monthly.example>",
            "Monthly four",
            f'<a href="{s.url("/article4")}">Four</a>',
            age=timedelta(days=20),
        ),
    ]


@pytest.fixture
def w(database_url: str, tmp_path: Path) -> Iterator[World]:
    app = make_app(
        database_url,
        tmp_path,
        fetch_allow_networks=["127.0.0.1/32"],
        fetch_timeout_seconds=3.0,
        fetch_concurrency=2,
    )
    users = Users(app.engine)
    alice, bob = users.add("alice"), users.add("bob")
    with LinkServer() as server, LinkServer(host="127.0.0.2") as other:
        routes(server, other)
        write_maildir(tmp_path / "alice", mailbox(server))
        slow = "".join(f'<a href="{server.url(f"/slow{n}")}">Slow {n}</a>' for n in range(SLOW))
        write_maildir(
            tmp_path / "slow",
            [newsletter("Slow <s@slow.example>", "Slow one", slow, age=timedelta(minutes=5))],
        )
        accounts = Accounts(app.engine, app.settings)
        account = accounts.add("maildir", "news", {"path": str(tmp_path / "alice")}, owner=alice.id)
        slow_account = accounts.add(
            "maildir", "slow", {"path": str(tmp_path / "slow")}, owner=alice.id
        )
        sync_and_index(app, account)
        sync_and_index(app, slow_account)
        api = create_api(app)
        try:
            yield World(
                app,
                server,
                other,
                account,
                slow_account,
                Client(api, users.create_key(alice).key),
                Client(api, users.create_key(bob).key),
                database_url,
                tmp_path / "data",
            )
        finally:
            app.close()
    for path in NEVER:
        assert server.count(path) == 0, f"{path} was requested"
    assert other.seen == [], "the non-allow-listed address was reached"


def run(w: World, body: dict[str, Any]) -> dict[str, Any]:
    """Start an extraction over the API as Alice, run it, and return it as shown."""
    started = w.alice.call("POST", "/api/newsletters/extractions", body)
    assert started.status_code == 202, started.text
    job_id = started.json()["extraction_id"]
    with running_worker(w.app, concurrency=1):
        done = wait_finished(w.app, job_id, timeout=30)
    assert done.status == JobStatus.COMPLETED, done.error
    shown = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}")
    assert shown.status_code == 200, shown.text
    return shown.json()  # type: ignore[no-any-return]


def test_links_are_resolved_safely_cleaned_and_merged(w: World) -> None:
    shown = run(w, {"account_id": w.account.id, "hours_back": 1})
    assert shown["status"] == "completed" and shown["completed_at"]
    result = shown["result"]
    [daily] = result["newsletters"]
    assert daily["subject"] == "Daily one" and daily["from"] == "daily@daily.example"
    assert daily["canonical_url"] == w.server.url("/view?id=1")
    # /r1 → /r2 → /article1?utm_source=… and /article1?fbclid…: one article, cleaned.
    assert len(daily["articles"]) == 1, daily
    [article] = daily["articles"]
    assert article["url"] == w.server.url("/article1")
    assert article["original_url"] == w.server.url("/r1?utm_source=news&utm_medium=email")
    assert article["hops"] == 3 and article["title"] == "Article one"
    reasons = {r["url"]: r["reason"] for r in daily["rejected"]}
    assert reasons[w.server.url("/evil")] == "private address"
    assert reasons[w.server.url("/gone")] == "HTTP error"
    assert reasons[w.server.url("/short")] == "unsubscribe"
    assert reasons[w.server.url("/loop")] == "loop"
    assert reasons[w.server.url("/far0")] == "too many hops"
    assert w.server.count("/far5") == 0  # five requests, /far0 to /far4, then no more
    for path in ("/confirm?token=9", "/prefs?u=1", "/unsub?u=1"):
        assert w.server.url(path) in reasons, path
    assert result["counts"]["newsletters"] == 1 and result["counts"]["articles"] == 1
    assert w.server.count("/article1") == 1  # a second spelling of a link: no second request


WINDOWS: list[tuple[dict[str, int], list[str]]] = [
    ({"hours_back": 1}, ["Daily one"]),
    ({"hours_back": 6}, ["Daily one", "Weekly two"]),
    ({"days_back": 1}, ["Daily one", "Weekly two"]),
    ({"hours_back": 3, "days_back": 1}, ["Daily one", "Weekly two"]),
    ({"days_back": 7}, ["Daily one", "Weekly two", "Weekly three"]),
    ({}, ["Daily one", "Weekly two", "Weekly three"]),  # 7 days when none is given
]


def test_windows(w: World) -> None:
    for window, subjects in WINDOWS:
        shown = run(w, {"account_id": w.account.id} | window)
        assert [n["subject"] for n in shown["result"]["newsletters"]] == subjects, window
    # The generic jobs route starts the same extraction, for the account it names.
    generic = {"kind": "newsletter_extraction", "params": {"hours_back": 1}}
    started = w.alice.call("POST", "/api/jobs", generic | {"account_id": w.account.id})
    assert started.status_code == 202, started.text
    with running_worker(w.app, concurrency=1):
        done = wait_finished(w.app, started.json()["job_id"], timeout=30)
    assert (done.params["hours_back"], done.params["account_id"]) == (1, w.account.id)
    # The job keeps the counts; the result is the extraction's, stored apart from the job.
    assert "newsletters" not in done.result and done.result["counts"]["newsletters"] == 1
    shown = w.alice.call("GET", f"/api/newsletters/extractions/{done.id}").json()
    assert [n["subject"] for n in shown["result"]["newsletters"]] == ["Daily one"]
    theirs = w.bob.call("POST", "/api/jobs", generic | {"account_id": w.account.id})
    assert theirs.status_code == 404


def test_senders_max_results_and_head_refused(w: World) -> None:
    shown = run(w, {"account_id": w.account.id, "days_back": 30, "senders": ["weekly.example"]})
    found = shown["result"]["newsletters"]
    assert [n["subject"] for n in found] == ["Weekly two", "Weekly three"]
    three = found[1]["articles"][0]
    assert three["url"] == w.server.url("/article3") and three["hops"] == 1
    assert [s.method for s in w.server.seen if s.path.startswith("/article3")] == ["HEAD", "GET"]
    two = found[0]["articles"]
    assert [(a["url"], a["title"]) for a in two] == [
        (w.server.url("/article2"), "Two"),
        (w.server.url("/article4"), "Page title"),  # no anchor text: the page's title
    ]
    few = run(w, {"days_back": 30, "max_results": 2, "senders": ["m@monthly.example"]})
    assert [n["subject"] for n in few["result"]["newsletters"]] == ["Monthly four"]


def test_resolution_off_requests_nothing(w: World) -> None:
    w.app.settings.newsletter_resolve = False
    shown = run(w, {"account_id": w.account.id, "hours_back": 1})
    assert w.server.seen == []
    [daily] = shown["result"]["newsletters"]
    urls = {a["url"] for a in daily["articles"]}
    assert urls == {w.server.url(p) for p in ("/r1", "/article1", "/evil", "/gone", "/short",
                                              "/loop", "/far0")}  # fmt: skip
    assert shown["result"]["counts"]["network"] is False


def test_cancel_mid_resolution(w: World) -> None:
    """Cancel lands during the first hops of two slow four-hop links (two at a time): the
    job stops before the next hop, not after the links (or a group of them) end."""
    started = w.alice.call(
        "POST", "/api/newsletters/extractions", {"account_id": w.slow_account.id}
    )
    job_id = started.json()["extraction_id"]
    with running_worker(w.app, concurrency=1):
        wait_for(lambda: w.server.count("/slow0") > 0, timeout=20)
        assert w.app.queue.get(job_id).step == "resolving"
        before = len(w.server.seen)
        asked = time.monotonic()
        assert w.alice.call("POST", f"/api/jobs/{job_id}/cancel").status_code in (200, 202)
        done = wait_finished(w.app, job_id, timeout=20)
        took = time.monotonic() - asked
        after = len(w.server.seen)
        time.sleep(2 * SLOW_DELAY)
        assert len(w.server.seen) == after, "a request after the job ended"
    assert done.status == JobStatus.CANCELLED
    # Ending the links in flight would take three more hops (2.4 s) and 6 requests; here
    # the hops in flight end (0.8 s) and at most one more per link starts before the
    # cancel is seen.
    assert took < SLOW_DELAY + 1.0, took
    assert after - before <= 2, w.server.seen[before:]
    assert w.app.queue.get(job_id).progress_current == 0  # no link got to its end
    shown = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}").json()
    assert shown["status"] == "cancelled" and shown["result"] is None
    # Retry runs it again from the start, to the end this time (fast now).
    for route in w.server.routes.values():
        route.delay = 0.0
    assert w.alice.call("POST", f"/api/jobs/{job_id}/retry").status_code in (200, 202)
    with running_worker(w.app, concurrency=1):
        again = wait_finished(w.app, job_id, timeout=30)
    assert again.status == JobStatus.COMPLETED, again.error
    assert again.result["counts"]["articles"] == SLOW
    shown = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}").json()
    assert shown["status"] == "completed" and shown["counts"]["articles"] == SLOW
    assert all(a["hops"] == SLOW_HOPS for a in shown["result"]["newsletters"][0]["articles"])


def test_owner_only_list_export_and_limit(w: World) -> None:
    shown = run(w, {"account_id": w.account.id, "hours_back": 1})
    job_id = shown["extraction_id"]
    assert w.bob.call("GET", f"/api/newsletters/extractions/{job_id}").status_code == 404
    assert w.bob.call("GET", f"/api/newsletters/extractions/{job_id}/export").status_code == 404
    assert w.bob.call("GET", "/api/newsletters/extractions").json() == {"extractions": []}
    bob_start = {"account_id": w.account.id}
    assert w.bob.call("POST", "/api/newsletters/extractions", bob_start).status_code == 404
    listed = w.alice.call("GET", "/api/newsletters/extractions").json()["extractions"]
    assert [e["extraction_id"] for e in listed] == [job_id]
    as_json = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}/export?format=json")
    assert as_json.status_code == 200 and as_json.json() == shown["result"]
    text = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}/export?format=text")
    assert text.status_code == 200 and "Article one <" + w.server.url("/article1") in text.text
    assert "private address: " + w.server.url("/evil") in text.text
    bad = w.alice.call("POST", "/api/newsletters/extractions", {"days_back": 0})
    assert bad.status_code == 422
    # Two waiting (no worker): a third is refused, with the first's queue position shown;
    # the same as one waiting is that one, limit or not.
    first = w.alice.call("POST", "/api/newsletters/extractions", {"days_back": 1}).json()
    w.alice.call("POST", "/api/newsletters/extractions", {"days_back": 2})
    third = w.alice.call("POST", "/api/newsletters/extractions", {"days_back": 3})
    assert third.status_code == 429
    again = w.alice.call("POST", "/api/newsletters/extractions", {"hours_back": 24})
    assert again.status_code == 202 and again.json() == first | {"deduplicated": True}
    waiting = w.alice.call("GET", f"/api/newsletters/extractions/{first['extraction_id']}")
    assert waiting.json()["status"] == "pending" and waiting.json()["queue_position"] == 1
    listed = w.alice.call("GET", "/api/newsletters/extractions").json()["extractions"]
    assert [e["status"] for e in listed] == ["pending", "pending", "completed"]


def cli(w: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``inboxd ARGS`` in this process (a child process costs seconds of imports each)."""
    for name, value in subprocess_env(w.database_url, w.data_dir).items():
        if name.startswith("INBOXD_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("INBOXD_FETCH_ALLOW_NETWORKS", "127.0.0.1/32")
    return CliRunner().invoke(cli_app, list(args))


def test_the_command_line(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    done = cli(w, monkeypatch, "newsletters", "extract", "--account", w.account.id,
               "--hours-back", "1", "--wait", "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["status"] == "completed"
    [daily] = body["result"]["newsletters"]
    assert [a["url"] for a in daily["articles"]] == [w.server.url("/article1")]
    job_id = body["extraction_id"]
    shown = cli(w, monkeypatch, "newsletters", "show", job_id, "--format", "text")
    assert shown.exit_code == 0 and w.server.url("/article1") in shown.stdout
    listed = cli(w, monkeypatch, "newsletters", "list", "--json")
    assert [e["extraction_id"] for e in json.loads(listed.stdout)["extractions"]] == [job_id]
    plain = cli(w, monkeypatch, "newsletters", "extract", "--days-back", "1")
    assert plain.exit_code == 0
    job: Job = w.app.queue.get(plain.stdout.strip())
    assert job.kind == "newsletter_extraction"
    bad = cli(w, monkeypatch, "newsletters", "extract", "--days-back", "0")
    assert bad.exit_code == 2
    # The same while it waits: that one, said so.
    same = cli(w, monkeypatch, "newsletters", "extract", "--days-back", "1", "--json")
    assert same.exit_code == 0
    assert json.loads(same.stdout) == {
        "extraction_id": job.id,
        "status": "pending",
        "deduplicated": True,
    }
    busy = cli(w, monkeypatch, "newsletters", "delete", job.id)
    # (inboxd's main() turns these errors into a message and an exit status)
    assert isinstance(busy.exception, InvalidState), busy.output
    assert cli(w, monkeypatch, "newsletters", "delete", job_id).exit_code == 0
    gone = cli(w, monkeypatch, "newsletters", "show", job_id)
    assert isinstance(gone.exception, NotFound), gone.output
    listed = cli(w, monkeypatch, "newsletters", "list", "--json")
    assert [e["extraction_id"] for e in json.loads(listed.stdout)["extractions"]] == [job.id]


def test_an_extraction_outlives_its_job(w: World) -> None:
    from inboxd.jobs.retention import prune

    shown = run(w, {"account_id": w.account.id, "hours_back": 1})
    job_id = shown["extraction_id"]
    # Cancelled while it waited: its task never ran, the job tells the end.
    waiting = w.alice.call("POST", "/api/newsletters/extractions", {"days_back": 2}).json()
    cancelled_id = waiting["extraction_id"]
    assert w.alice.call("POST", f"/api/jobs/{cancelled_id}/cancel").status_code in (200, 202)
    prune(w.app.engine, w.app.settings.model_copy(update={"retention_days": 0}))
    for pruned in (job_id, cancelled_id):
        with pytest.raises(NotFound):
            w.app.queue.get(pruned)
    again = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}")
    assert again.status_code == 200
    kept = again.json()
    assert kept["result"] == shown["result"] and kept["counts"] == shown["result"]["counts"]
    assert (kept["status"], kept["completed_at"]) == ("completed", shown["completed_at"])
    assert kept["params"] == shown["params"]
    assert kept["params"] | {"days_back": None} == {
        "account_id": w.account.id,
        "hours_back": 1,
        "days_back": None,
        "max_results": 50,
        "senders": [],
    }
    gone = w.alice.call("GET", f"/api/newsletters/extractions/{cancelled_id}").json()
    assert gone["status"] == "cancelled" and gone["result"] is None
    listed = w.alice.call("GET", "/api/newsletters/extractions").json()["extractions"]
    assert [(e["extraction_id"], e["status"]) for e in listed] == [
        (cancelled_id, "cancelled"),
        (job_id, "completed"),
    ]
    text = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}/export?format=text")
    assert text.status_code == 200 and w.server.url("/article1") in text.text
    for path in (f"/{job_id}", f"/{job_id}/export", f"/{cancelled_id}"):
        assert w.bob.call("GET", "/api/newsletters/extractions" + path).status_code == 404
    assert w.bob.call("DELETE", f"/api/newsletters/extractions/{job_id}").status_code == 404
    assert w.bob.call("GET", "/api/newsletters/extractions").json() == {"extractions": []}


def test_kept_per_user_and_deleted(w: World) -> None:
    w.app.settings.newsletter_keep = 2
    first, second, third = (
        run(w, {"account_id": w.account.id, "hours_back": h})["extraction_id"] for h in (1, 2, 3)
    )
    listed = w.alice.call("GET", "/api/newsletters/extractions").json()["extractions"]
    assert [e["extraction_id"] for e in listed] == [third, second]
    assert w.alice.call("GET", f"/api/newsletters/extractions/{first}").status_code == 404
    # Bob's extractions are kept apart from Alice's.
    assert w.bob.call("DELETE", f"/api/newsletters/extractions/{third}").status_code == 404
    assert w.alice.call("DELETE", f"/api/newsletters/extractions/{third}").status_code == 204
    assert w.alice.call("GET", f"/api/newsletters/extractions/{third}").status_code == 404
    assert w.alice.call("DELETE", f"/api/newsletters/extractions/{third}").status_code == 404
    live = w.alice.call("POST", "/api/newsletters/extractions", {"days_back": 1}).json()
    refused = w.alice.call("DELETE", f"/api/newsletters/extractions/{live['extraction_id']}")
    assert refused.status_code == 409


def test_a_second_start_is_the_same_extraction(w: World) -> None:
    start = "/api/newsletters/extractions"
    body = {"account_id": w.account.id, "days_back": 1, "senders": ["b.example", "a.example"]}
    first = w.alice.call("POST", start, body)
    assert first.status_code == 202 and first.json()["deduplicated"] is False
    job_id = first.json()["extraction_id"]
    same = body | {"days_back": None, "hours_back": 24, "senders": ["a.example", "B.example"]}
    again = w.alice.call("POST", start, same)
    assert again.status_code == 202
    assert again.json() == {"extraction_id": job_id, "status": "pending", "deduplicated": True}
    others: list[dict[str, Any]] = [
        {"max_results": 10},
        {"days_back": 2},
        {"senders": []},
        {"account_id": None},
    ]
    for other in others:
        got = w.alice.call("POST", start, {k: v for k, v in (body | other).items() if v})
        assert got.json()["extraction_id"] != job_id, other
        w.app.queue.cancel(got.json()["extraction_id"])
    # Another user's same parameters are another extraction (Bob has no account: all his).
    bobs = w.bob.call("POST", start, {"days_back": 1}).json()
    alices = w.alice.call("POST", start, {"days_back": 1}).json()
    assert bobs["extraction_id"] != alices["extraction_id"]
    with running_worker(w.app, concurrency=1):
        wait_finished(w.app, job_id, timeout=30)
    # Once it ended, the same parameters run again.
    fresh = w.alice.call("POST", start, body).json()
    assert fresh["extraction_id"] != job_id and fresh["deduplicated"] is False


def test_concurrent_starts_make_one_extraction(w: World) -> None:
    from inboxd.actions.newsletters import start_extraction

    owner = w.account.owner
    for days in range(1, 6):
        params = {"account_id": w.account.id, "days_back": days}
        barrier = threading.Barrier(4)
        got: list[Job] = []

        def start(params: dict[str, Any], barrier: threading.Barrier, got: list[Job]) -> None:
            barrier.wait()
            got.append(start_extraction(w.app, params, owner=owner, any_account=False))

        threads = [threading.Thread(target=start, args=(params, barrier, got)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(got) == 4
        assert len({j.id for j in got}) == 1, [j.id for j in got]
        assert sorted(j.deduplicated for j in got) == [False, True, True, True]
        w.app.queue.cancel(got[0].id)
    jobs = w.app.queue.list_jobs(kind="newsletter_extraction")
    assert len(jobs) == 5
    listed = w.alice.call("GET", "/api/newsletters/extractions").json()["extractions"]
    assert len(listed) == 5 and {e["status"] for e in listed} == {"cancelled"}
    # Their task never ran: the next one to complete writes their end into their rows.
    from inboxd.db.engine import reading
    from inboxd.store import newsletters as stored

    def rows() -> list[str]:
        with reading(w.app.engine) as conn:
            return [e.status for e in stored.list_extractions(conn, owner=owner, limit=10)]

    assert rows() == ["pending"] * 5
    run(w, {"account_id": w.account.id, "hours_back": 1})
    assert rows() == ["completed"] + ["cancelled"] * 5


def test_extractions_from_before_the_table_are_copied_into_it(w: World) -> None:
    from alembic import command
    from sqlalchemy import update

    from inboxd.db.engine import writing
    from inboxd.db.migrate import alembic_config, upgrade
    from inboxd.db.tables import jobs

    shown = run(w, {"account_id": w.account.id, "hours_back": 1})
    job_id = shown["extraction_id"]
    with w.app.engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
        conn.commit()
    # As an earlier version left it: the whole result in the job row, and nowhere else.
    with writing(w.app.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(result=shown["result"]))
    upgrade(w.app.engine)
    kept = w.alice.call("GET", f"/api/newsletters/extractions/{job_id}").json()
    assert kept["status"] == "completed" and kept["result"] == shown["result"]
    assert kept["counts"] == shown["counts"]
    assert w.bob.call("GET", f"/api/newsletters/extractions/{job_id}").status_code == 404
