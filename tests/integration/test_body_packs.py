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
from inboxd.mail.accounts import Account, Accounts
from inboxd.store import bodies
from inboxd.store.bodies import read_body
from inboxd.store.packs import PackWriter, packs_root, read_blob
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
