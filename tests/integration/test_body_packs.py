"""Bodies of a SQLite store in pack files beside the database: read back byte for byte,
private, gone with their account, rows written before still readable, a lost pack named."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import message_bodies, messages
from inboxd.errors import NotFound
from inboxd.jobs.model import JobStatus
from inboxd.mail.reading import parse_message
from inboxd.providers.base import FetchedMessage
from inboxd.store import bodies
from inboxd.store.accounts import Account, Accounts
from inboxd.store.bodies import read_body
from inboxd.store.folders import ensure_folder
from inboxd.store.packs import SUFFIX, PackWriter, packs_root, read_blob
from inboxd.store.writer import Incoming, PreparedBatch, pack_new_bodies, prepare_batch, write_batch
from tests.support.apps import make_app, sync_now
from tests.support.mail import MALFORMED, huge_message, make_message


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    opened = make_app(f"sqlite:///{tmp_path}/inboxd.db", tmp_path, sync_batch_messages=20)
    yield opened
    opened.close()


def _maildir(root: Path, raws: list[bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for n, raw in enumerate(raws):
        (root / "cur" / f"{n}.test:2,S").write_bytes(raw)
    return root


def _import(app: App, name: str, path: Path) -> Account:
    account = Accounts(app.engine, app.settings).add("maildir", name, {"path": str(path)})
    assert sync_now(app, account).status == JobStatus.COMPLETED
    return account


def _stored(app: App, account: Account) -> dict[int, bytes]:
    with reading(app.engine) as conn:
        pks = conn.execute(select(messages.c.id).where(messages.c.account_id == account.id))
        return {pk: read_body(conn, pk) for (pk,) in pks}


def test_bodies_go_to_private_packs_and_come_back_byte_for_byte(app: App, tmp_path: Path) -> None:
    raws = [make_message(n) for n in range(45)] + [MALFORMED, huge_message(2 * 1024 * 1024)]
    account = _import(app, "a", _maildir(tmp_path / "a", raws))
    assert sorted(_stored(app, account).values()) == sorted(raws)
    with reading(app.engine) as conn:
        rows = conn.execute(select(message_bodies)).all()
    assert len(rows) == len(raws) and all(r.pack and r.raw == b"" for r in rows)
    root = packs_root(app.engine)
    assert root == tmp_path / "inboxd.db.bodies"
    found = list((root / account.id).iterdir())
    assert found and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in found)
    assert stat.S_IMODE((root / account.id).stat().st_mode) == 0o700
    # Compressed: the packs hold less than the mail.
    assert sum(p.stat().st_size for p in found) < sum(map(len, raws))


def test_removing_an_account_removes_its_packs_only(app: App, tmp_path: Path) -> None:
    first = _import(app, "a", _maildir(tmp_path / "a", [make_message(n) for n in range(5)]))
    second = _import(app, "b", _maildir(tmp_path / "b", [make_message(n) for n in range(9, 12)]))
    root = packs_root(app.engine)
    assert root is not None
    Accounts(app.engine, app.settings).remove(first.id)
    assert not (root / first.id).exists()
    assert len(_stored(app, second)) == 3


def test_rows_with_the_body_in_the_database_stay_readable(app: App, tmp_path: Path) -> None:
    # Stores written before pack files (and PostgreSQL stores) keep the body in the row.
    raws = [make_message(n) for n in range(3)]
    account = _import(app, "a", _maildir(tmp_path / "a", raws))
    with writing(app.engine) as conn:
        for pk, raw in _stored(app, account).items():
            conn.execute(
                update(message_bodies)
                .where(message_bodies.c.message_pk == pk)
                .values(raw=bodies.pack(raw), pack=None, pack_offset=None, pack_length=None)
            )
    root = packs_root(app.engine)
    assert root is not None
    for pack in (root / account.id).iterdir():
        pack.unlink()
    assert sorted(_stored(app, account).values()) == sorted(raws)


def test_a_lost_or_cut_pack_is_named(app: App, tmp_path: Path) -> None:
    account = _import(app, "a", _maildir(tmp_path / "a", [make_message(1), make_message(2)]))
    root = packs_root(app.engine)
    assert root is not None
    (pack,) = (root / account.id).iterdir()
    pack.write_bytes(pack.read_bytes()[:10])
    with pytest.raises(NotFound, match="cut short"):
        _stored(app, account)
    pack.unlink()
    with pytest.raises(NotFound, match="is missing"):
        _stored(app, account)


def test_a_failed_append_never_shifts_later_offsets(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path, "acct")
    (first,) = writer.append([b"one"])
    real = writer._current()

    class Full:
        """A pack file whose disk fills up halfway through a write."""

        def write(self, data: bytes) -> int:
            real.write(data[:2])
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            real.close()

    writer._file = Full()  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        writer.append([b"lost"])
    (after,) = writer.append([b"three"])
    writer.close()
    assert after[0] != first[0]  # a new pack, not the one with two stray bytes at its end
    assert read_blob(tmp_path, "acct", *first) == b"one"
    assert read_blob(tmp_path, "acct", *after) == b"three"


def _pack_bytes(app: App, account: Account) -> int:
    root = packs_root(app.engine)
    assert root is not None
    return sum(p.stat().st_size for p in (root / account.id).iterdir())


def test_messages_already_stored_add_nothing_to_the_packs(app: App, tmp_path: Path) -> None:
    raws = [make_message(n) for n in range(30)]
    path = _maildir(tmp_path / "a", raws)
    account = _import(app, "a", path)
    before = _pack_bytes(app, account)
    # New Maildir names: new locations of messages the store already holds.
    for file in (path / "cur").iterdir():
        file.rename(file.with_name("moved-" + file.name))
    assert sync_now(app, account).status == JobStatus.COMPLETED
    assert _pack_bytes(app, account) == before
    assert sorted(_stored(app, account).values()) == sorted(raws)


def test_bodies_packed_before_the_transaction_survive_a_racing_writer(
    app: App, tmp_path: Path
) -> None:
    # Bodies go to the pack before the write transaction; what changed in between is
    # settled inside it: a message another writer stored meanwhile keeps that writer's body,
    # and one the early look found stored but is gone by then is packed in the transaction.
    account = _import(app, "a", _maildir(tmp_path / "a", []))
    raws = [make_message(n) for n in range(6)]
    fetched = [FetchedMessage(remote_key=str(n), raw=raw) for n, raw in enumerate(raws)]
    with writing(app.engine) as conn:
        folder = ensure_folder(conn, account.id, "race")
    root = packs_root(app.engine)
    assert root is not None
    packs = PackWriter(root, account.id)

    def prepared(items: list[FetchedMessage]) -> PreparedBatch:
        return prepare_batch(
            app.engine, account.id, [Incoming(f, parse_message(f.raw)) for f in items]
        )

    early = prepared(fetched)
    with reading(app.engine) as conn:
        placed = pack_new_bodies(conn, early, packs)
    assert len(placed) == 6
    with writing(app.engine) as conn:  # the racing writer stores the first three
        write_batch(conn, folder.id, prepared(fetched[:3]), packs)
    stale = dict(list(placed.items())[3:])  # as if the early look had found the last three
    with writing(app.engine) as conn:
        result = write_batch(
            conn, folder.id, early, packs, {k: placed[k] for k in placed if k not in stale}
        )
    packs.close()
    assert (result.new, result.known) == (3, 3)
    assert sorted(_stored(app, account).values()) == sorted(raws)


def test_a_rewind_drops_what_a_failed_transaction_appended(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path, "acct")
    (kept,) = writer.append([b"kept"])
    mark = writer.mark()
    writer.append([b"from a transaction that failed" * 100])
    writer.rewind(mark)
    (after,) = writer.append([b"next"])
    writer.close()
    path = tmp_path / "acct" / f"{kept[0]}{SUFFIX}"
    assert path.read_bytes() == b"keptnext"
    assert after == (kept[0], 4, 4)
    assert read_blob(tmp_path, "acct", *after) == b"next"
