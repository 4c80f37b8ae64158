"""The ``triage`` job end to end on a Maildir of hand-made and real public mail, on SQLite
and PostgreSQL: queued after the index job, every message categorised with a priority, a
confidence and reasons; the Sent folder; the direct-mail rule; rules in the query
language; corrections kept and made sender rules; the model; cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from inboxd import activity
from inboxd.actions import triage as actions
from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import messages, triage_models
from inboxd.errors import InvalidField, InvalidQuery, NotFound
from inboxd.jobs.model import EventType, Job, JobStatus
from inboxd.pipeline import triage as pipeline
from inboxd.store import triage as store
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import BULK_CATEGORIES, ActivityState, Category, Step, TriageSource
from tests.support.apps import make_app, running_worker, sync_and_index, wait_finished, wait_for

REAL_MAIL = Path(__file__).parents[1] / "fixtures" / "realmail"
ME = "dana@home.example"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=50)
    yield opened
    opened.close()


# -- mail ------------------------------------------------------------------------------------


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    when: datetime | None = None,
    headers: dict[str, str] | None = None,
    reply_to: str | None = None,
    msgid: str | None = None,
) -> bytes:
    """One hand-made message."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when or NOW - timedelta(hours=2))
    msg["Message-ID"] = msgid or make_msgid(domain="test.example")
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


LUNCH_ID = "<lunch-1@home.example>"

#: file name -> bytes, per folder ("" is the INBOX).
HAND_MADE: dict[str, dict[str, bytes]] = {
    "Sent": {
        "sent-alice": mail(
            f"Dana Reader <{ME}>",
            "Alice Friend <alice@friends.example>",
            "Lunch on Friday?",
            "Hi Alice, are you free for lunch on Friday?\n\nDana\n",
            when=NOW - timedelta(days=3),
            msgid=LUNCH_ID,
        ),
        "sent-carol": mail(
            f"Dana Reader <{ME}>",
            "carol@work.example",
            "The quarterly report",
            "Carol, here are my notes on the report.\n\nDana\n",
            when=NOW - timedelta(days=9),
        ),
    },
    "": {
        "alice-reply": mail(
            "Alice Friend <alice@friends.example>",
            f"Dana Reader <{ME}>",
            "Re: Lunch on Friday?",
            "Yes, Friday works for me. Shall we meet at noon?\n\nAlice\n",
            reply_to=LUNCH_ID,
        ),
        "newsletter": mail(
            "The Weekly Digest <news@digest.example>",
            ME,
            "This week: ten stories you missed",
            "Top stories this week.\n\nUnsubscribe: https://digest.example/u\n",
            headers={
                "List-Unsubscribe": "<https://digest.example/unsubscribe?u=1>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Precedence": "bulk",
                "List-Id": "Weekly Digest <weekly.digest.example>",
            },
        ),
        "ci": mail(
            "CI <noreply@builds.example>",
            ME,
            "[builds] Pipeline failed on main",
            "Pipeline #4411 failed. See https://builds.example/p/4411\n",
            headers={"Auto-Submitted": "auto-generated", "X-Mailer": "BuildBot"},
        ),
        "stranger": mail(
            "Bob Stranger <bob@elsewhere.example>",
            f"Dana Reader <{ME}>",
            "A question about your talk",
            "Hello Dana,\n\nI saw your talk last week and wanted to ask about the slides. "
            "Could you send them to me?\n\nThanks,\nBob\n",
        ),
        "shop-1": mail(
            "Deals <deals@shop.example>",
            ME,
            "50% off everything this weekend",
            "Huge sale! Shop now at https://shop.example\n",
            headers={"List-Unsubscribe": "<mailto:unsub@shop.example>", "Precedence": "bulk"},
        ),
        "partner": mail(
            "Partner Deals <big.deals@shop.example>",
            ME,
            "A partner offer",
            "An offer from our partners. https://shop.example/partners\n",
            headers={"List-Unsubscribe": "<mailto:unsub@shop.example>", "Precedence": "bulk"},
        ),
        "shop-2": mail(
            "Deals <deals@shop.example>",
            ME,
            "Last chance: free shipping",
            "Free shipping ends tonight. https://shop.example\n",
            headers={"List-Unsubscribe": "<mailto:unsub@shop.example>", "Precedence": "bulk"},
        ),
    },
}


def write_maildir(root: Path, folders: dict[str, dict[str, bytes]], *, real: bool = False) -> None:
    """A Maildir++ tree: the INBOX at ``root``, other folders as ``.Name``."""
    for name, files in folders.items():
        base = root if not name else root / f".{name}"
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for key, raw in files.items():
            (base / "cur" / f"{key}:2,").write_bytes(raw)
    if real:
        notes = ("LICENSE", "NOTICE", "README.md")
        paths = sorted(p for p in REAL_MAIL.rglob("*") if p.is_file() and p.name not in notes)
        for n, path in enumerate(paths):
            (root / "cur" / f"real{n:04d}:2,S").write_bytes(path.read_bytes())


def make_account(app: App, root: Path, **extra: Any) -> Account:
    values: dict[str, Any] = {"addresses": [ME], "owner_name": "Dana Reader"} | extra
    return Accounts(app.engine, app.settings).add("maildir", "home", {"path": str(root)}, **values)


def finish_triage(app: App, account: Account, timeout: float = 120) -> Job:
    """Run the account's queued triage jobs to their end; the last one."""
    with running_worker(app, concurrency=1):
        jobs = wait_for(lambda: app.queue.list_jobs(kind="triage", account_id=account.id))
        done = [wait_finished(app, j.id, timeout=timeout) for j in jobs]
        wait_for(
            lambda: all(
                j.status.finished for j in app.queue.list_jobs(kind="triage", account_id=account.id)
            ),
            timeout=timeout,
        )
    for job in done:
        assert job.status == JobStatus.COMPLETED, job.error
    return app.queue.list_jobs(kind="triage", account_id=account.id)[0]


def run_job(app: App, job: Job, timeout: float = 120) -> Job:
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=timeout)
    assert done.status == JobStatus.COMPLETED, done.error
    return done


def triaged(app: App, account: Account) -> dict[str, dict[str, Any]]:
    """Each message's triage by the file name's subject."""
    m = messages.c
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(
                m.id,
                m.subject,
                m.from_addr,
                m.category,
                m.priority,
                m.confidence,
                m.reasons,
                m.triage_source,
                m.triaged_at,
            ).where(m.account_id == account.id)
        ).all()
    return {f"{r.id}": dict(r._mapping) for r in rows}


def by_subject(app: App, account: Account, subject: str) -> dict[str, Any]:
    found = [r for r in triaged(app, account).values() if r["subject"] == subject]
    assert len(found) == 1, subject
    return found[0]


@pytest.fixture
def home(app: App, tmp_path: Path) -> Account:
    """The hand-made mailbox with the real public mail, synced, indexed and triaged."""
    root = tmp_path / "mail"
    write_maildir(root, HAND_MADE, real=True)
    account = make_account(app, root)
    sync_and_index(app, account)
    finish_triage(app, account)
    return account


# -- the job ---------------------------------------------------------------------------------


def test_the_index_job_queues_triage_and_every_message_gets_a_verdict(
    app: App, home: Account
) -> None:
    [job] = app.queue.list_jobs(kind="triage", account_id=home.id)
    assert job.status == JobStatus.COMPLETED
    rows = triaged(app, home)
    assert len(rows) >= 100
    assert job.result["triaged"] == len(rows)
    for row in rows.values():
        assert row["triaged_at"] is not None
        assert Category(row["category"]) in Category
        assert 0 <= row["priority"] <= 100
        assert 0.0 <= row["confidence"] <= 1.0
        assert row["reasons"] and all(isinstance(r, str) and r for r in row["reasons"])
        assert TriageSource(row["triage_source"]) in TriageSource
    # Real public mail spans several categories (lists, spam, notices), not one.
    assert len({r["category"] for r in rows.values()}) >= 4
    steps = {
        e.payload.get("step") for e in app.queue.events(job.id) if e.type == EventType.PROGRESS
    }
    assert Step.CATEGORIZING in steps
    # Nothing is left to do: the next index run queues no triage.
    with reading(app.engine) as conn:
        assert store.untriaged_count(conn, home.id) == 0


def test_a_person_the_user_wrote_to_is_personal_and_ranks_high(app: App, home: Account) -> None:
    alice = by_subject(app, home, "Re: Lunch on Friday?")
    assert alice["category"] == Category.PERSONAL
    why = " ".join(alice["reasons"]).lower()
    assert "wrote to" in why or "replied" in why, alice["reasons"]
    newsletter = by_subject(app, home, "This week: ten stories you missed")
    assert alice["priority"] >= 60
    assert alice["priority"] > newsletter["priority"]


def test_direct_mail_from_a_person_is_never_bulk_and_bulk_mail_is(app: App, home: Account) -> None:
    stranger = by_subject(app, home, "A question about your talk")
    assert Category(stranger["category"]) not in BULK_CATEGORIES
    for subject in ("This week: ten stories you missed", "50% off everything this weekend"):
        assert Category(by_subject(app, home, subject)["category"]) in BULK_CATEGORIES, subject
    ci = by_subject(app, home, "[builds] Pipeline failed on main")
    assert ci["category"] == Category.NOTIFICATION
    assert any("auto" in r.lower() for r in ci["reasons"]), ci["reasons"]


def test_the_sent_folder_tells_who_the_user_is_when_the_account_does_not(
    app: App, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    write_maildir(root, HAND_MADE)
    account = make_account(app, root, addresses=[], owner_name=None)
    sync_and_index(app, account)
    with reading(app.engine) as conn:
        ctx = pipeline.user_context(conn, account)
    assert ctx.addresses == {ME}
    assert ctx.name == "Dana Reader"
    assert ctx.correspondents.keys() == {"alice@friends.example", "carol@work.example"}
    assert len(ctx.replied_threads) == 2
    finish_triage(app, account)
    assert by_subject(app, account, "Re: Lunch on Friday?")["category"] == Category.PERSONAL


# -- rules and corrections ---------------------------------------------------------------------


def test_a_rule_in_the_query_language_files_what_it_matches(app: App, home: Account) -> None:
    rule, jobs = actions.add_rule(
        app,
        match="from:deals@shop.example OR subject:pipeline",
        category="receipt",
        priority=7,
        user_id=None,
        admin=True,
    )
    assert [(j.params["account_id"], j.params["query"]) for j in jobs] == [(home.id, rule.match)]
    run_job(app, jobs[0])
    for subject in (
        "50% off everything this weekend",
        "Last chance: free shipping",
        "[builds] Pipeline failed on main",
    ):
        row = by_subject(app, home, subject)
        assert (row["category"], row["priority"], row["triage_source"]) == (
            Category.RECEIPT,
            7,
            TriageSource.RULE,
        ), subject
        assert any(rule.match in r for r in row["reasons"])
    # The newest rule decides where two match.
    newer, jobs = actions.add_rule(
        app, match="subject:pipeline", category="action_required", user_id=None, admin=True
    )
    run_job(app, jobs[0])
    ci = by_subject(app, home, "[builds] Pipeline failed on main")
    assert ci["category"] == Category.ACTION_REQUIRED
    # Removing it gives the mail back to the older rule.
    run_job(app, actions.remove_rule(app, newer.id, owner=None)[0])
    assert by_subject(app, home, "[builds] Pipeline failed on main")["category"] == "receipt"
    assert [r.id for r in actions.list_rules(app, owner=None)] == [rule.id]


def test_a_bad_rule_is_refused_and_a_broken_stored_one_skipped(app: App, home: Account) -> None:
    with pytest.raises(InvalidQuery):
        actions.add_rule(app, match="from:(", category="spam", user_id=None, admin=True)
    with pytest.raises(InvalidField):
        actions.add_rule(app, match="from:x", category="junk", user_id=None, admin=True)
    with writing(app.engine) as conn:
        store.add_rule(
            conn, owner=None, account_id=home.id, match='subject:"unclosed', category=Category.SPAM
        )
    done = run_job(app, actions.start_triage(app, home, all_messages=True))
    assert done.result["rules_skipped"] == 1
    assert done.result["triaged"] == len(triaged(app, home))
    logs = [e.payload["message"] for e in app.queue.events(done.id) if e.type == EventType.LOG]
    assert any("skipped" in line for line in logs)


def test_a_correction_is_kept_across_a_full_retriage(app: App, home: Account) -> None:
    stranger = by_subject(app, home, "A question about your talk")
    done = actions.categorize(app, int(stranger["id"]), "action_required", owner=None)
    assert done["rule"] is None and done["job_id"] is None
    assert done["message"]["category"] == "action_required"
    row = by_subject(app, home, "A question about your talk")
    assert (row["category"], row["triage_source"], row["confidence"]) == (
        Category.ACTION_REQUIRED,
        TriageSource.CORRECTION,
        1.0,
    )
    run_job(app, actions.start_triage(app, home, all_messages=True))
    again = by_subject(app, home, "A question about your talk")
    assert again["category"] == Category.ACTION_REQUIRED
    assert again["triage_source"] == TriageSource.CORRECTION
    assert again["triaged_at"] > row["triaged_at"]


def test_a_correction_for_the_sender_becomes_a_rule_and_retriages_their_mail(
    app: App, home: Account
) -> None:
    first = by_subject(app, home, "50% off everything this weekend")
    done = actions.categorize(app, int(first["id"]), "spam", owner=None, sender=True)
    rule = done["rule"]
    assert rule["match"] == 'from:"deals@shop.example"' and rule["source"] == "sender"
    assert rule["account_id"] == home.id
    job = app.queue.get(done["job_id"])
    assert (job.params["account_id"], job.params["query"]) == (home.id, rule["match"])
    run_job(app, job)
    second = by_subject(app, home, "Last chance: free shipping")
    assert (second["category"], second["triage_source"]) == (Category.SPAM, TriageSource.RULE)
    assert by_subject(app, home, "50% off everything this weekend")["triage_source"] == (
        TriageSource.CORRECTION
    )
    # Other senders' mail is left alone, even where the index's words would match; a
    # second "always" replaces the first.
    assert by_subject(app, home, "A question about your talk")["category"] != Category.SPAM
    partner = by_subject(app, home, "A partner offer")
    assert partner["triage_source"] != TriageSource.RULE and partner["category"] != "spam"
    actions.categorize(app, int(second["id"]), "promotion", owner=None, sender=True)
    assert [(r.match, r.category) for r in actions.list_rules(app, owner=None)] == [
        ('from:"deals@shop.example"', Category.PROMOTION)
    ]


def test_rules_and_messages_of_another_user_are_not_found(app: App, home: Account) -> None:
    pk = int(by_subject(app, home, "A question about your talk")["id"])
    with pytest.raises(NotFound):
        actions.categorize(app, pk, "spam", owner="someone-else")
    rule, _ = actions.add_rule(app, match="from:bob", category="spam", user_id=None, admin=True)
    with pytest.raises(NotFound):
        actions.remove_rule(app, rule.id, owner="someone-else")
    assert actions.list_rules(app, owner="someone-else") == []
    with pytest.raises(NotFound):
        actions.add_rule(
            app,
            match="from:bob",
            category="spam",
            account_id=home.id,
            user_id="someone-else",
            admin=False,
        )


# -- the model ---------------------------------------------------------------------------------


def test_the_model_is_trained_on_confident_labels_and_used_for_the_unsure(
    app: App, tmp_path: Path
) -> None:
    from inboxd.triage import model as learning

    root = tmp_path / "mail"
    files: dict[str, bytes] = {}
    # Confident labels of two kinds (the user's rules file the power company's bills and
    # the developers' list), and messages that say little: not to the user, no list or
    # machine headers. The model is trained and asked about those.
    count = max(learning.MIN_SAMPLES, 30)
    for n in range(count):
        files[f"list{n}"] = mail(
            f"Member {n} <member{n}@lists.example>",
            "dev@lists.example",
            f"[dev] patch series {n} for the parser",
            f"Here is version {n} of the parser patches, please review on the list.\n",
            headers={"List-Id": "Developers <dev.lists.example>"},
        )
        files[f"bill{n}"] = mail(
            "Billing <billing@power.example>",
            ME,
            f"Statement {1000 + n} for your power account",
            f"Billing statement {1000 + n}: 42.00 EUR for the power account, paid by card.\n",
        )
    for n in range(5):
        files[f"vague{n}"] = mail(
            f"Billing Desk <desk{n}@power.example>",
            f"other{n}@power.example",
            f"Statement {2000 + n} for your power account",
            f"Billing statement {2000 + n}: 42.00 EUR for the power account, paid by card.\n",
        )
    write_maildir(root, {"": files})
    account = make_account(app, root)
    with writing(app.engine) as conn:
        for match, category in (
            ("from:billing@power.example", Category.RECEIPT),
            ("list:dev.lists.example", Category.FORUM),
        ):
            store.add_rule(conn, owner=None, account_id=account.id, match=match, category=category)
    sync_and_index(app, account)
    job = finish_triage(app, account)
    trained = job.result["model"]
    assert trained is not None, job.result
    assert trained["samples"] == 2 * count
    assert set(trained["labels"]) == {"receipt", "forum"}
    with reading(app.engine) as conn:
        stored = conn.execute(
            select(triage_models).where(triage_models.c.account_id == account.id)
        ).one()
    assert stored.samples == trained["samples"] and len(stored.blob) > 0
    steps = [
        e.payload.get("step") for e in app.queue.events(job.id) if e.type == EventType.PROGRESS
    ]
    assert Step.TRAINING in steps
    # The new model was applied at once to what the rules and headers left unsure.
    assert trained["reapplied"] == 5

    def vague() -> list[dict[str, Any]]:
        rows = triaged(app, account).values()
        return [r for r in rows if r["subject"].startswith("Statement 2")]

    assert all(r["triage_source"] == TriageSource.MODEL for r in vague()), vague()
    assert all(r["category"] == Category.RECEIPT for r in vague())
    assert all(any("learned from" in why for why in r["reasons"]) for r in vague())
    # Later runs use the stored model, and train none while nothing new was learned.
    with writing(app.engine) as conn:
        conn.execute(
            update(messages)
            .where(messages.c.account_id == account.id, messages.c.subject.like("Statement 2%"))
            .values(triaged_at=None, category=None, triage_source=None)
        )
    again = run_job(app, actions.start_triage(app, account))
    assert again.result["model"] is None and again.result["triaged"] == 5
    assert [r["triage_source"] for r in vague()] == [TriageSource.MODEL] * 5
    # A correction is a new label: the next run trains again.
    actions.categorize(app, int(vague()[0]["id"]), "spam", owner=None)
    retrained = run_job(app, actions.start_triage(app, account))
    assert retrained.result["model"] is not None
    assert retrained.result["model"]["samples"] == 2 * count + 1


# -- running ------------------------------------------------------------------------------------


@pytest.fixture
def slow_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small batches that each take a while (workers here are threads of this process)."""
    monkeypatch.setattr(pipeline, "BATCH_MESSAGES", 5)
    decide = pipeline.Triager.decide

    def slowly(self: pipeline.Triager, rows: Any) -> Any:
        time.sleep(0.05)
        return decide(self, rows)

    monkeypatch.setattr(pipeline.Triager, "decide", slowly)


def test_the_account_shows_categorizing_while_triage_runs_and_cancel_stops_it(
    app: App, home: Account, slow_batches: None
) -> None:
    job = actions.start_triage(app, home, all_messages=True)
    with running_worker(app, concurrency=1):
        seen = wait_for(
            lambda: (j := app.queue.get(job.id)).progress_current >= 10 and j, timeout=30
        )
        assert activity.job_state(seen) == ActivityState.CATEGORIZING
        state = activity.activity(activity.latest_jobs(app.engine, [home.id])[home.id])
        assert state["state"] == ActivityState.CATEGORIZING
        app.queue.cancel(job.id)
        done = wait_finished(app, job.id, timeout=30)
    assert done.status == JobStatus.CANCELLED
    with reading(app.engine) as conn:
        left = store.untriaged_count(conn, home.id)
    total = len(triaged(app, home))
    # What was done stays done; the rest waits for the next run, which finishes it.
    assert 0 < left < total
    rest = run_job(app, actions.start_triage(app, home))
    assert rest.result["triaged"] == left
    with reading(app.engine) as conn:
        assert store.untriaged_count(conn, home.id) == 0


def test_an_all_job_resumed_after_a_crash_does_not_start_over(
    app: App, home: Account, slow_batches: None
) -> None:
    job = actions.start_triage(app, home, all_messages=True)
    with running_worker(app, concurrency=1) as worker:
        wait_for(lambda: app.queue.get(job.id).progress_current >= 20, timeout=30)
        worker.stop(hard=True)  # the job goes back to the queue, its checkpoint kept
    with reading(app.engine) as conn:
        left = store.untriaged_count(conn, home.id)
        assert left > 0
    done = run_job(app, app.queue.get(job.id))
    with reading(app.engine) as conn:
        assert store.untriaged_count(conn, home.id) == 0
        total = conn.execute(
            select(func.count()).where(messages.c.account_id == home.id)
        ).scalar_one()
    # The second attempt did not mark everything untriaged again.
    assert done.result["triaged"] == total
