"""Two different messages never become one (IMAP, Maildir and mbox; SQLite and PostgreSQL):
messages that share a Message-ID but differ in bytes are stored apart, identical bytes in
two places are one message with two locations, and a store keyed by headers (as earlier
versions wrote it, different messages collapsed) is repaired by the next sync."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, literal, select, update

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import folders, locations, message_bodies, messages
from inboxd.errors import JobCancelled
from inboxd.jobs.model import EventType, JobStatus
from inboxd.mail.message import header_fingerprint, summarize_message
from inboxd.store.accounts import Account, Accounts
from inboxd.store.bodies import read_body
from inboxd.store.identities import body_identity
from inboxd.sync.repair import repair_identities
from tests.services.dovecot import ImapUser
from tests.support.apps import add_imap_account, make_app, sync_now
from tests.support.mail import make_message
from tests.support.progress import Recorder

SHARED_ID = "<shared.17@example.org>"


def _mail(subject: str, body: str, *, date: str, extra: tuple[str, ...] = ()) -> bytes:
    head = [
        "From: Ann Sender <ann@example.org>",
        "To: user@example.com",
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: {SHARED_ID}",
        *extra,
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


ORIGINAL = _mail("Quarterly figures", "The figures are attached.\r\n", date="Thu, 1 Jan 2026")
# Re-sent by a broken sender with the same Message-ID and another body.
RESENT = _mail("Quarterly figures", "Sorry, forgot the table.\r\n", date="Thu, 1 Jan 2026")
# The copy a mailing list delivered: a List-Id header and a footer.
LIST_COPY = _mail(
    "Quarterly figures",
    "The figures are attached.\r\n-- \r\nfinance mailing list\r\n",
    date="Thu, 1 Jan 2026",
    extra=("List-Id: <finance.example.org>",),
)
DRAFT = _mail("Quarterly figures", "Draft: figures tbd\r\n", date="Wed, 31 Dec 2025")
SENT = _mail(
    "Quarterly figures",
    "The figures are attached.\r\n",
    date="Thu, 1 Jan 2026",
    extra=("X-Mailer: sent version",),
)

#: folder -> its messages (bytes, flags); ORIGINAL sits in two folders, byte for byte.
LAYOUT: dict[str, list[tuple[bytes, tuple[str, ...]]]] = {
    "INBOX": [(ORIGINAL, ()), (RESENT, ()), (LIST_COPY, ()), (make_message(1), ())],
    "Archive": [(ORIGINAL, ("\\Seen",)), (make_message(2), ())],
    "Drafts": [(DRAFT, ("\\Draft",))],
    "Sent": [(SENT, ("\\Seen",))],
}
#: distinct byte sequences of LAYOUT
DISTINCT = 7
#: what a header-keyed store holds of LAYOUT: the five sharing a Message-ID are one
LEGACY_MESSAGES = 3


@dataclass
class Source:
    """A mail source holding LAYOUT, as an account of one provider."""

    kind: str
    account: Any = None
    #: the bytes of every place the source holds a message, as the source gives them
    expected: list[bytes] = field(default_factory=list)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=3)
    yield opened
    opened.close()


@pytest.fixture(
    params=[
        pytest.param("imap", marks=pytest.mark.dovecot),
        pytest.param("maildir"),
        pytest.param("mbox"),
    ]
)
def source(request: pytest.FixtureRequest, app: App, tmp_path: Path) -> Source:
    kind = request.param
    if kind == "imap":
        return _imap_source(app, request.getfixturevalue("imap_user"))
    if kind == "maildir":
        return _maildir_source(app, tmp_path / "maildir")
    return _mbox_source(app, tmp_path / "all.mbox")


def _imap_source(app: App, user: ImapUser) -> Source:
    for folder, items in LAYOUT.items():
        if folder != "INBOX":
            user.create_folder(folder)
        for raw, flags in items:
            user.append(folder, raw, flags)
    # What the server gives back is the truth (it may have rewritten line ends).
    expected = [
        m.raw
        for folder in LAYOUT
        for m in user.server.fetch_all(user.username, user.password, folder)
    ]
    return Source("imap", add_imap_account(app, user), expected)


def _maildir_source(app: App, root: Path) -> Source:
    letters = {"\\Seen": "S", "\\Draft": "D"}
    expected = []
    for folder, items in LAYOUT.items():
        path = root if folder == "INBOX" else root / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True)
        for n, (raw, flags) in enumerate(items):
            info = "".join(sorted(letters[f] for f in flags))
            (path / "cur" / f"17000{n}.{folder}.host:2,{info}").write_bytes(raw)
            expected.append(raw)
    account = Accounts(app.engine, app.settings).add("maildir", "md", {"path": str(root)})
    return Source("maildir", account, expected)


def _mbox_source(app: App, path: Path) -> Source:
    raws = [raw.replace(b"\r\n", b"\n") for items in LAYOUT.values() for raw, _ in items]
    path.write_bytes(
        b"".join(b"From ann@example.org Thu Jan  1 00:00:00 2026\n" + r + b"\n" for r in raws)
    )
    account = Accounts(app.engine, app.settings).add("mbox", "takeout", {"path": str(path)})
    return Source("mbox", account, raws)


# -- what the store holds ------------------------------------------------------------------


def _sync(app: App, account: Account) -> dict[str, Any]:
    done = sync_now(app, account, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    assert isinstance(done.result, dict)
    return done.result


def _places(app: App, account: Account) -> list[tuple[int, bytes]]:
    """(message pk, its bytes) of every live location of the account."""
    with reading(app.engine) as conn:
        pks = conn.execute(
            select(locations.c.message_pk)
            .join(folders, folders.c.id == locations.c.folder_id)
            .where(folders.c.account_id == account.id, locations.c.expunged_at.is_(None))
        ).scalars()
        return [(int(pk), read_body(conn, pk)) for pk in pks]


def _identities(app: App, account: Account) -> list[str]:
    with reading(app.engine) as conn:
        return list(
            conn.execute(
                select(messages.c.identity).where(messages.c.account_id == account.id)
            ).scalars()
        )


def assert_faithful(app: App, source: Source) -> None:
    """Every place holds its own bytes, and identical bytes are one message."""
    places = _places(app, source.account)
    assert Counter(body for _, body in places) == Counter(source.expected)
    by_body: dict[bytes, set[int]] = {}
    for pk, body in places:
        by_body.setdefault(body, set()).add(pk)
    assert all(len(pks) == 1 for pks in by_body.values())
    assert len(by_body) == DISTINCT
    with reading(app.engine) as conn:
        for body, pks in by_body.items():
            identity = conn.execute(
                select(messages.c.identity).where(messages.c.id == next(iter(pks)))
            ).scalar_one()
            assert identity == body_identity(body)


def make_legacy(app: App, account: Account) -> None:
    """Turn a fresh store into what the header-keyed writer made of the same mail: each
    message keyed ``h:<header fingerprint>``, and messages sharing one collapsed into the
    first stored (the others' bytes lost, their locations pointing at it)."""
    with writing(app.engine) as conn:
        pks = conn.execute(
            select(messages.c.id).where(messages.c.account_id == account.id).order_by(messages.c.id)
        ).scalars()
        groups: dict[str, list[int]] = {}
        for pk in pks:
            key = "h:" + header_fingerprint(summarize_message(read_body(conn, pk)))
            groups.setdefault(key, []).append(int(pk))
        for key, (first, *rest) in groups.items():
            if rest:
                conn.execute(
                    update(locations)
                    .where(locations.c.message_pk.in_(rest))
                    .values(message_pk=first)
                )
                conn.execute(delete(message_bodies).where(message_bodies.c.message_pk.in_(rest)))
                conn.execute(delete(messages).where(messages.c.id.in_(rest)))
            conn.execute(update(messages).where(messages.c.id == first).values(identity=key))


def _legacy_left(app: App, account: Account) -> int:
    return sum(1 for identity in _identities(app, account) if identity.startswith("h:"))


# -- the tests -----------------------------------------------------------------------------


def test_messages_sharing_a_message_id_are_stored_apart(app: App, source: Source) -> None:
    first = _sync(app, source.account)
    assert first["new"] == DISTINCT
    assert_faithful(app, source)
    # ORIGINAL, in two folders: one message with two locations.
    places = _places(app, source.account)
    assert sum(1 for _, body in places if body == source.expected[0]) == 2
    again = _sync(app, source.account)
    assert (again["fetched"], again["new"], again["repaired"]) == (0, 0, 0)
    assert_faithful(app, source)


def test_a_store_keyed_by_headers_is_repaired_by_the_next_sync(app: App, source: Source) -> None:
    _sync(app, source.account)
    make_legacy(app, source.account)
    with reading(app.engine) as conn:
        count = conn.execute(
            select(func.count())
            .select_from(messages)
            .where(messages.c.account_id == source.account.id)
        ).scalar_one()
    assert count == LEGACY_MESSAGES
    with pytest.raises(AssertionError):
        assert_faithful(app, source)  # the collapsed store lost bytes: the test can fail
    done = sync_now(app, source.account, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["repaired"] == LEGACY_MESSAGES
    steps = [
        e.payload.get("step") for e in app.queue.events(done.id) if e.type == EventType.PROGRESS
    ]
    assert steps[0] == "repairing"
    assert _legacy_left(app, source.account) == 0
    assert_faithful(app, source)
    again = _sync(app, source.account)
    assert (again["fetched"], again["new"], again["repaired"]) == (0, 0, 0)
    assert_faithful(app, source)


def test_an_interrupted_repair_resumes_and_the_sync_then_fetches_what_it_must(
    app: App, source: Source
) -> None:
    _sync(app, source.account)
    make_legacy(app, source.account)
    stopping = Recorder(stop_after=1)
    with pytest.raises(JobCancelled):
        repair_identities(app.engine, source.account.id, stopping, batch=1)
    assert stopping.steps == ["repairing"]
    assert _legacy_left(app, source.account) == LEGACY_MESSAGES - 1  # one batch committed
    rest = repair_identities(app.engine, source.account.id, Recorder(), batch=1)
    assert rest.messages == LEGACY_MESSAGES - 1
    # Run again, it finds nothing to do (and shows no step).
    idle = Recorder()
    assert repair_identities(app.engine, source.account.id, idle).messages == 0
    assert idle.steps == []
    # The repair is done, but what it asked for is not fetched yet (as if the sync had been
    # killed right after it): the next sync fetches it.
    result = _sync(app, source.account)
    assert result["repaired"] == 0 and result["new"] == DISTINCT - LEGACY_MESSAGES
    assert_faithful(app, source)


def test_bytes_stored_twice_or_lost_under_header_keys_are_repaired(
    app: App, tmp_path: Path
) -> None:
    src = _maildir_source(app, tmp_path / "maildir")
    _sync(app, src.account)
    make_legacy(app, src.account)
    with writing(app.engine) as conn:
        shared, single = conn.execute(
            select(messages.c.id, messages.c.identity)
            .where(messages.c.account_id == src.account.id)
            .order_by(messages.c.id)
        ).all()[:2]
        # The same bytes under a second header key (a fingerprint of another version),
        # holding one of their places (Archive's copy of ORIGINAL, as such a version would
        # have stored it).
        columns = [c for c in messages.c if c.name not in ("id", "identity")]
        conn.execute(
            insert(messages).from_select(
                [c.name for c in columns] + ["identity"],
                select(*columns, messages.c.identity + "-old").where(messages.c.id == shared.id),
            )
        )
        twin = conn.execute(
            select(messages.c.id).where(messages.c.identity == shared.identity + "-old")
        ).scalar_one()
        b = message_bodies.c
        conn.execute(
            insert(message_bodies).from_select(
                ["message_pk", "compression", "raw", "pack", "pack_offset", "pack_length"],
                select(
                    literal(twin), b.compression, b.raw, b.pack, b.pack_offset, b.pack_length
                ).where(b.message_pk == shared.id),
            )
        )
        moved = conn.execute(
            update(locations)
            .where(locations.c.remote_key == "170000.Archive.host")
            .values(message_pk=twin)
        )
        assert moved.rowcount == 1
        # And a message whose body is lost.
        conn.execute(delete(message_bodies).where(message_bodies.c.message_pk == single.id))
    result = _sync(app, src.account)
    assert result["repaired"] == LEGACY_MESSAGES + 1
    assert_faithful(app, src)
    set_aside = [i for i in _identities(app, src.account) if i.startswith("x:")]
    assert sorted(set_aside) == sorted([f"x:{twin}", f"x:{single.id}"])
