"""Search over synced mail: the index job, every operator, odd mail, threads (SQLite and
PostgreSQL), and the same answers from both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, select, text, update

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.migrate import alembic_config, upgrade
from inboxd.db.tables import messages
from inboxd.jobs.model import JobStatus
from inboxd.mail.demo import generate_demo_maildir
from inboxd.pipeline.index import Indexer, index_dedupe_key
from inboxd.store import fulltext
from inboxd.store.accounts import Account, Accounts
from inboxd.store.search import message_filter, parse_query
from inboxd.sync.task import sync_dedupe_key
from tests.support.apps import make_app, running_worker, sync_and_index, wait_finished, wait_for
from tests.support.mail import MALFORMED, huge_message

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=20)
    yield opened
    opened.close()


def mail(
    subject: str,
    body: bytes | str,
    *,
    sender: str = "Alice Smith <alice@example.org>",
    to: str = "bob@example.com",
    cc: str | None = None,
    date: str = "Tue, 10 Mar 2026 10:00:00 +0000",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """A message in raw bytes; ``body`` as given (bytes: any charset, unchecked)."""
    lines = [
        f"From: {sender}",
        f"To: {to}",
        *([f"Cc: {cc}"] if cc else []),
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: <{message_id or subject.replace(' ', '.').lower() + '@example.org'}>",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}",
    ]
    data = body if isinstance(body, bytes) else body.encode()
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + data + b"\r\n"


class Maildir:
    """A Maildir++ tree written by the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.folder("")

    def folder(self, name: str) -> Path:
        path = self.root / f".{name}" if name else self.root
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        return path

    def add(self, raw: bytes, *, folder: str = "", flags: str = "") -> None:
        self.count += 1
        name = f"{1000 + self.count}.test:2,{flags}"
        (self.folder(folder) / "cur" / name).write_bytes(raw)


def subjects(engine: Engine, query: str, *, now: datetime = NOW) -> set[str]:
    """The subjects of the messages ``query`` finds."""
    condition = message_filter(parse_query(query), dialect=engine.dialect.name, now=now)
    with reading(engine) as conn:
        return {row[0] for row in conn.execute(select(messages.c.subject).where(condition))}


@pytest.fixture
def corpus(app: App, tmp_path: Path) -> dict[str, Account]:
    """Two accounts: one of varied, partly broken mail, and a small second one."""
    box = Maildir(tmp_path / "main")
    box.add(
        mail(
            "Quarterly budget review",
            "The budget meeting is on Thursday.\nBring the spreadsheet, please.",
            cc="Carol <carol@example.net>",
            date="Tue, 10 Mar 2026 10:00:00 +0000",
            headers={"List-Id": "Finance team <finance.lists.example.org>"},
        ),
        flags="S",
    )
    box.add(
        mail(
            "Menu",
            "Caf\xe9 cr\xe8me br\xfbl\xe9e, viele Gr\xfc\xdfe".encode("latin-1"),
            sender="=?iso-8859-1?q?J=F6rg_M=FCller?= <joerg@example.de>",
            content_type="text/plain; charset=iso-8859-1",
            date="Mon, 01 Jun 2026 08:00:00 +0000",
        ),
        flags="FS",
    )
    box.add(
        mail(
            "Weekend plans",
            "<html><body><p>Join the <b>hackathon</b> on Saturday &amp; bring snacks</p>"
            "</body></html>",
            sender="Dave <dave@example.com>",
            content_type="text/html; charset=utf-8",
            date="Fri, 12 Jun 2026 18:00:00 +0000",
        )
    )
    box.add(
        mail(
            "Undeclared charset",
            "na\xefve d\xe9j\xe0 vu".encode("latin-1"),
            sender="eve@example.com",
            content_type="text/plain",
            date="Sat, 13 Jun 2026 09:00:00 +0000",
        )
    )
    box.add(
        mail(
            "Report attached",
            b"--b1\r\nContent-Type: text/plain\r\n\r\nSee the attached report.\r\n"
            b"--b1\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="report.pdf"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--",
            sender="Frank <frank@example.com>",
            content_type='multipart/mixed; boundary="b1"',
            date="Sun, 01 Jan 2023 09:00:00 +0000",
        ),
        folder="Archive",
        flags="S",
    )
    box.add(mail("Empty body", b"", sender="grace@example.com"), folder="Archive")
    box.add(MALFORMED)
    box.add(huge_message(2 * 1024 * 1024))
    registry = Accounts(app.engine, app.settings)
    main = registry.add("maildir", "main box", {"path": str(box.root)})
    other_box = Maildir(tmp_path / "other")
    other_box.add(mail("Budget for the other team", "Another budget.", sender="zed@example.com"))
    other = registry.add("maildir", "other", {"path": str(other_box.root)})
    sync_and_index(app, main)
    sync_and_index(app, other)
    return {"main": main, "other": other}


def test_every_message_is_indexed_even_broken_ones(app: App, corpus: dict[str, Account]) -> None:
    with reading(app.engine) as conn:
        unindexed = conn.execute(
            select(func.count()).where(messages.c.indexed_at.is_(None))
        ).scalar_one()
        total = conn.execute(select(func.count()).select_from(messages)).scalar_one()
    assert total == 9 and unindexed == 0
    assert "A very large message" in subjects(app.engine, "attachment")  # its body text


def test_a_sync_with_nothing_new_queues_no_index_job(app: App, corpus: dict[str, Account]) -> None:
    account = corpus["main"]
    before = [j.id for j in app.queue.list_jobs(kind="index", account_id=account.id)]
    assert len(before) == 1
    job = app.queue.enqueue("sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id))
    with running_worker(app, concurrency=1):
        assert wait_finished(app, job.id, timeout=60).status == JobStatus.COMPLETED
    assert [j.id for j in app.queue.list_jobs(kind="index", account_id=account.id)] == before


def test_free_words_phrases_and_prefixes(app: App, corpus: dict[str, Account]) -> None:
    e = app.engine
    assert subjects(e, "budget") == {"Quarterly budget review", "Budget for the other team"}
    assert subjects(e, "BUDGET thursday") == {"Quarterly budget review"}
    assert subjects(e, '"bring the spreadsheet"') == {"Quarterly budget review"}
    assert subjects(e, '"the bring spreadsheet"') == set()
    assert subjects(e, "spread*") == {"Quarterly budget review"}
    # A one-letter prefix finds words, not the index's own marks of fields.
    assert subjects(e, "t* from:alice") == {"Quarterly budget review"}
    assert subjects(e, "f* -from:frank") == {"Budget for the other team"}
    # Addresses are in the text too, as words.
    assert subjects(e, "carol@example.net") == {"Quarterly budget review"}
    # Words do not run across fields: the subject's last word and the sender's first.
    assert subjects(e, '"review alice"') == set()


def _pair_lexeme(first: str, second: str) -> str:
    """What a two-word phrase asks PostgreSQL's index for besides its words (its pair)."""
    found = re.findall(r"'_\w+'", fulltext.tsquery_text(fulltext.Phrase((first, second))))
    assert len(found) == 1
    return str(found[0])


def test_a_phrase_is_found_only_where_its_words_are_adjacent_and_in_order(
    app: App, tmp_path: Path
) -> None:
    # Two other words whose pair shares the index's bucket with "amber lantern": such a
    # message is a candidate on PostgreSQL, and only the positions can turn it away.
    bucket = _pair_lexeme("amber", "lantern")
    vocabulary = [f"w{n}" for n in range(400)]
    twin = next((a, b) for a in vocabulary for b in vocabulary if _pair_lexeme(a, b) == bucket)
    box = Maildir(tmp_path / "phrases")
    box.add(mail("Adjacent", "the amber lantern glows"))
    box.add(mail("Apart", "amber light and a lantern"))
    box.add(mail("Reversed", "a lantern of amber"))
    box.add(mail("Across fields amber", "lantern at the start of the body"))
    box.add(mail("Twin pair", f"amber and lantern, and {twin[0]} {twin[1]}"))
    box.add(mail("Amber lantern in the subject", "nothing here"))
    box.add(mail("Three words", "an old amber lantern glows"))
    sync_and_index(
        app, Accounts(app.engine, app.settings).add("maildir", "p", {"path": str(box.root)})
    )
    e = app.engine
    assert subjects(e, '"amber lantern"') == {
        "Adjacent",
        "Amber lantern in the subject",
        "Three words",
    }
    assert subjects(e, '"lantern amber"') == set()
    assert subjects(e, '"amber lantern glows"') == {"Adjacent", "Three words"}
    assert subjects(e, '"old amber lantern"') == {"Three words"}
    assert subjects(e, 'subject:"amber lantern"') == {"Amber lantern in the subject"}
    assert subjects(e, '"amber lantern" -subject:"amber lantern"') == {"Adjacent", "Three words"}
    assert subjects(e, f'"{twin[0]} {twin[1]}"') == {"Twin pair"}


def test_rows_indexed_before_pairs_are_rebuilt_on_upgrade(
    postgres_url: str, tmp_path: Path
) -> None:
    opened = make_app(postgres_url, tmp_path / "app")
    try:
        box = Maildir(tmp_path / "old")
        box.add(mail("Old row", "the amber lantern glows"))
        account = Accounts(opened.engine, opened.settings).add(
            "maildir", "old", {"path": str(box.root)}
        )
        sync_and_index(opened, account)
        assert subjects(opened.engine, '"amber lantern"') == {"Old row"}
        # As a store at revision 0006 holds it: the row without its pairs.
        with writing(opened.engine) as conn:
            conn.execute(
                text(
                    "UPDATE message_fts SET doc = ts_delete(doc, ARRAY(SELECT lexeme "
                    "FROM unnest(doc) WHERE lexeme LIKE '\\_%'))"
                )
            )
        # Down to 0006 the way Alembic goes (later revisions undone), so that 0007 runs again.
        with opened.engine.connect() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
            conn.commit()
        # Its words are found, its phrases no longer: hence the rebuild.
        assert subjects(opened.engine, "amber") == {"Old row"}
        assert subjects(opened.engine, '"amber lantern"') == set()
        upgrade(opened.engine)
        # Emptied for the index job after the next sync: no query sees a row of the old form.
        assert subjects(opened.engine, "amber") == set()
        with reading(opened.engine) as conn:
            target = conn.execute(
                text(
                    "SELECT attstattarget FROM pg_attribute "
                    "WHERE attrelid = 'message_fts'::regclass AND attname = 'doc'"
                )
            ).scalar_one()
        assert target == 1000  # the planner's finer word frequencies
        job = opened.queue.enqueue(
            "sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id)
        )
        with running_worker(opened, concurrency=1):
            assert wait_finished(opened, job.id, timeout=60).status == JobStatus.COMPLETED
            index_job = opened.queue.list_jobs(kind="index", account_id=account.id, limit=1)[0]
            assert wait_finished(opened, index_job.id, timeout=60).status == JobStatus.COMPLETED
        assert subjects(opened.engine, '"amber lantern"') == {"Old row"}
        assert subjects(opened.engine, '"lantern amber"') == set()
    finally:
        opened.close()


def test_charsets_and_html_are_searchable(app: App, corpus: dict[str, Account]) -> None:
    e = app.engine
    assert subjects(e, "crème") == {"Menu"}
    assert subjects(e, "creme brulee") == {"Menu"}  # accents do not matter
    assert subjects(e, "GRÜSSE") == {"Menu"}
    assert subjects(e, "jörg") == {"Menu"}  # the decoded sender name
    assert subjects(e, "hackathon saturday") == {"Weekend plans"}  # HTML only
    assert subjects(e, "html OR amp") == set()  # markup is not text
    assert subjects(e, "deja vu") == {"Undeclared charset"}


def test_header_operators(app: App, corpus: dict[str, Account]) -> None:
    e = app.engine
    assert subjects(e, "from:alice@example.org") == {"Quarterly budget review"}
    assert subjects(e, "from:smith") == {"Quarterly budget review"}  # the name
    assert subjects(e, 'from:"alice smith"') == {"Quarterly budget review"}
    assert subjects(e, "to:carol") == {"Quarterly budget review"}  # Cc counts
    assert "Menu" in subjects(e, "to:bob@example.com")
    assert subjects(e, "subject:QUARTERLY") == {"Quarterly budget review"}
    assert subjects(e, "list:finance.lists") == {"Quarterly budget review"}
    assert subjects(e, "folder:archive") == {"Report attached", "Empty body"}
    assert "Menu" in subjects(e, "folder:INBOX")
    assert subjects(e, "account:other") == {"Budget for the other team"}
    assert subjects(e, f"account:{corpus['other'].id}") == {"Budget for the other team"}
    assert subjects(e, 'account:"main box" budget') == {"Quarterly budget review"}
    assert subjects(e, "from:ali*") == {"Quarterly budget review"}
    assert subjects(e, "from:ali") == set()  # words, not parts of words
    assert subjects(e, "subject:budget -from:alice") == {"Budget for the other team"}
    assert subjects(e, "to:alice") == set()  # she is the sender
    assert subjects(e, "list:100%") == set()  # LIKE's wildcards are plain characters


def test_flags_attachments_and_dates(app: App, corpus: dict[str, Account]) -> None:
    e = app.engine
    assert subjects(e, "is:flagged") == {"Menu"}
    read = {"Quarterly budget review", "Menu", "Report attached"}
    assert subjects(e, "is:read") == read
    assert not subjects(e, "is:unread") & read
    assert "Weekend plans" in subjects(e, "is:unread")
    assert subjects(e, "has:attachment") == {"Report attached", "A very large message"}
    assert subjects(e, "after:2026-06-01 before:2026-06-13") == {"Menu", "Weekend plans"}
    # (Mail without a date sorts by its arrival: today, after NOW.)
    assert subjects(e, "newer_than:7d before:2026-07-01") == {"Weekend plans", "Undeclared charset"}
    assert subjects(e, "older_than:4y") == set()
    assert subjects(e, "older_than:3y") == {"Report attached"}


def test_negation_or_and_groups(app: App, corpus: dict[str, Account]) -> None:
    e = app.engine
    assert subjects(e, "budget -thursday") == {"Budget for the other team"}
    assert subjects(e, "budget NOT account:other") == {"Quarterly budget review"}
    assert subjects(e, "hackathon OR crème") == {"Weekend plans", "Menu"}
    assert subjects(e, "from:dave OR is:flagged") == {"Weekend plans", "Menu"}
    assert subjects(e, "(budget OR from:dave) (thursday OR snacks)") == {
        "Quarterly budget review",
        "Weekend plans",
    }
    assert subjects(e, "(budget OR hackathon) -from:alice") == {
        "Budget for the other team",
        "Weekend plans",
    }
    everything = subjects(e, "")
    assert subjects(e, "-budget") == everything - {
        "Quarterly budget review",
        "Budget for the other team",
    }
    assert subjects(e, "-list:finance") == everything - {"Quarterly budget review"}


def test_threads_join_by_references_and_merge(app: App, tmp_path: Path) -> None:
    box = Maildir(tmp_path / "threads")
    box.add(mail("First", "one", message_id="p1@x"))
    box.add(mail("Second", "two", message_id="p2@x"))
    box.add(mail("Orphan reply", "three", message_id="r1@x", headers={"References": "<gone@x>"}))
    account = Accounts(app.engine, app.settings).add("maildir", "t", {"path": str(box.root)})
    sync_and_index(app, account)

    def threads() -> dict[str, int]:
        with reading(app.engine) as conn:
            rows = conn.execute(
                select(messages.c.subject, messages.c.thread_id).where(
                    messages.c.account_id == account.id
                )
            )
            return {subject: thread for subject, thread in rows}

    first = threads()
    assert len(set(first.values())) == 3
    # A message that names both as its ancestors links the two threads: they merge into the
    # older one. Another reply to the missing message joins the orphan's thread.
    box.add(
        mail(
            "Re: both",
            "four",
            message_id="m@x",
            headers={"References": "<p1@x>", "In-Reply-To": "<p2@x>"},
        )
    )
    box.add(mail("Another orphan", "five", message_id="r2@x", headers={"In-Reply-To": "<gone@x>"}))
    job = sync_and_index(app, account)
    assert job.result == {"indexed": 2, "threads_merged": 1}
    after = threads()
    assert after["First"] == after["Second"] == after["Re: both"] == first["First"]
    assert after["Another orphan"] == after["Orphan reply"] == first["Orphan reply"]
    # A parent that arrives after its reply joins the reply's thread.
    box.add(mail("The missing one", "six", message_id="gone@x"))
    sync_and_index(app, account)
    assert threads()["The missing one"] == first["Orphan reply"]


def test_index_job_resumes_after_cancel(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches: the job is still running when the cancel arrives.
    monkeypatch.setattr("inboxd.pipeline.index.BATCH_MESSAGES", 40)
    box = tmp_path / "demo"
    generate_demo_maildir(box, count=1200)
    account = Accounts(app.engine, app.settings).add("maildir", "demo", {"path": str(box)})
    job = app.queue.enqueue("sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id))
    key = index_dedupe_key(account.id)

    def unindexed() -> int:
        with reading(app.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        messages.c.account_id == account.id, messages.c.indexed_at.is_(None)
                    )
                ).scalar_one()
            )

    with running_worker(app, concurrency=1):
        assert wait_finished(app, job.id, timeout=120).status == JobStatus.COMPLETED
        index_job = app.queue.enqueue("index", {"account_id": account.id}, dedupe_key=key)
        wait_for(lambda: app.queue.get(index_job.id).progress_current > 0, timeout=60)
        app.queue.cancel(index_job.id)
        cancelled = wait_finished(app, index_job.id, timeout=60)
    assert cancelled.status == JobStatus.CANCELLED
    left = unindexed()
    assert 0 < left < 1200
    again = app.queue.enqueue("index", {"account_id": account.id}, dedupe_key=key)
    with running_worker(app, concurrency=1):
        finished = wait_finished(app, again.id, timeout=120)
    assert finished.status == JobStatus.COMPLETED
    assert finished.result is not None and finished.result["indexed"] == left
    assert unindexed() == 0


QUERIES = [
    "meeting",
    "invoice OR receipt",
    '"fix flaky"',
    "revi*",
    "from:code.example",
    "to:you@demo.inboxd.local -is:read",
    "is:flagged OR has:attachment",
    "after:2026-01-01 -newsletter",
    "newer_than:30d older_than:2d",
    "subject:re list:code.example",
    "(team OR release) -from:noreply folder:inbox",
    "crème brulee",
    "jörg OR hackathon",
    "f* OR t*",
    "from:n* -s*",
]


def test_sqlite_and_postgresql_find_the_same(postgres_url: str, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    generate_demo_maildir(demo, count=600, now=NOW)
    extra = Maildir(tmp_path / "extra")
    extra.add(
        mail(
            "Menu",
            "Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"),
            content_type="text/plain; charset=iso-8859-1",
            sender="=?iso-8859-1?q?J=F6rg?= <j@example.de>",
        )
    )
    extra.add(mail("Weekend", "<p>the <b>hackathon</b></p>", content_type="text/html"))
    found: list[dict[str, set[str]]] = []
    for n, url in enumerate((f"sqlite:///{tmp_path}/same.db", postgres_url)):
        opened = make_app(url, tmp_path / f"app{n}")
        try:
            registry = Accounts(opened.engine, opened.settings)
            for name, path in (("demo", demo), ("extra", extra.root)):
                sync_and_index(opened, registry.add("maildir", name, {"path": str(path)}))
            found.append({q: identities(opened.engine, q) for q in QUERIES})
        finally:
            opened.close()
    sqlite_found, postgres_found = found
    for query in QUERIES:
        assert sqlite_found[query] == postgres_found[query], query
    # The comparison means something only if the queries find things.
    assert sum(1 for q in QUERIES if sqlite_found[q]) >= len(QUERIES) - 2


def identities(engine: Engine, query: str) -> set[str]:
    """What ``query`` finds, by the account-independent identity of each message."""
    condition = message_filter(parse_query(query), dialect=engine.dialect.name, now=NOW)
    with reading(engine) as conn:
        return {row[0] for row in conn.execute(select(messages.c.identity).where(condition))}


def test_index_job_takes_mail_stored_while_it_runs(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Maildir(tmp_path / "late")
    for n in range(6):
        box.add(mail(f"Late {n}", f"word{n}", message_id=f"late{n}@x"))
    account = Accounts(app.engine, app.settings).add("maildir", "late", {"path": str(box.root)})
    sync_and_index(app, account)
    with reading(app.engine) as conn:
        pks = sorted(
            conn.execute(select(messages.c.id).where(messages.c.account_id == account.id)).scalars()
        )

    def unindex(*chosen: int) -> None:
        with writing(app.engine) as conn:
            conn.execute(update(messages).where(messages.c.id.in_(chosen)).values(indexed_at=None))

    # The job starts on the two newest; while it writes them, the oldest turns unindexed
    # (below the job's position, as a late PostgreSQL commit or a new sync's message would
    # be after the job's last look). The same run must take it: no index job is queued for it.
    unindex(pks[-2], pks[-1])
    original = Indexer.index
    calls: list[int] = []

    def index_and_meanwhile(self: Indexer, batch: Any) -> int:
        if not calls:
            unindex(pks[0])
        calls.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(Indexer, "index", index_and_meanwhile)
    job = app.queue.enqueue(
        "index", {"account_id": account.id}, dedupe_key=index_dedupe_key(account.id)
    )
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=60)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result is not None and done.result["indexed"] == 3
    with reading(app.engine) as conn:
        left = conn.execute(
            select(func.count()).where(
                messages.c.account_id == account.id, messages.c.indexed_at.is_(None)
            )
        ).scalar_one()
    assert left == 0


def _triage(engine: Engine, verdicts: dict[str, tuple[str, int]]) -> None:
    """Set the triage columns of the messages with these subjects (category, priority), as
    the triage job would; the rest untriaged."""
    columns = ("category", "priority", "confidence", "reasons", "triage_source", "triaged_at")
    with writing(engine) as conn:
        conn.execute(update(messages).values(dict.fromkeys(columns)))
        for subject, (category, priority) in verdicts.items():
            conn.execute(
                update(messages)
                .where(messages.c.subject == subject)
                .values(category=category, priority=priority, confidence=0.9, reasons=["test"])
            )


def test_category_and_priority_terms(app: App, corpus: dict[str, Account]) -> None:
    e = app.engine
    _triage(
        e,
        {
            "Quarterly budget review": ("forum", 40),
            "Menu": ("personal", 80),
            "Weekend plans": ("personal", 60),
            "Report attached": ("receipt", 20),
            "Budget for the other team": ("action_required", 90),
        },
    )
    everything = subjects(e, "")
    triaged = {"Quarterly budget review", "Menu", "Weekend plans", "Report attached"}
    untriaged = everything - triaged - {"Budget for the other team"}
    assert len(untriaged) == 4
    assert subjects(e, "category:personal") == {"Menu", "Weekend plans"}
    assert subjects(e, "category:PERSONAL") == {"Menu", "Weekend plans"}
    assert subjects(e, "priority:>60") == {"Menu", "Budget for the other team"}
    assert subjects(e, "priority:>=60") == {"Menu", "Budget for the other team", "Weekend plans"}
    assert subjects(e, "priority:<40") == {"Report attached"}
    assert subjects(e, "priority:<=40") == {"Report attached", "Quarterly budget review"}
    assert subjects(e, "priority:60") == subjects(e, "priority:=60") == {"Weekend plans"}
    # Untriaged mail matches no category:/priority: term, so it matches their negation.
    assert subjects(e, "-category:personal") == everything - {"Menu", "Weekend plans"}
    assert subjects(e, "-category:personal") >= untriaged
    assert subjects(e, "-priority:>10") == untriaged  # no triaged message is at 10 or below
    assert subjects(e, "is:untriaged") == subjects(e, "-priority:>=0")
    assert subjects(e, "is:triaged") == subjects(e, "priority:>=0")
    # Composed with words, other operators, OR and groups.
    assert subjects(e, "budget category:forum") == {"Quarterly budget review"}
    assert subjects(e, "budget -category:forum") == {"Budget for the other team"}
    assert subjects(e, "category:receipt OR priority:>85") == {
        "Report attached",
        "Budget for the other team",
    }
    assert subjects(e, "(category:personal OR category:forum) priority:<70 is:read") == {
        "Quarterly budget review"
    }
    assert subjects(e, "category:personal has:attachment") == set()
    assert subjects(e, "account:other category:action_required") == {"Budget for the other team"}
