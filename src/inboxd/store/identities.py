"""Message identities: what makes two locations one stored message, and the repair of
stores written when an identity was a fingerprint of the headers.

``g:<X-GM-MSGID>`` (Gmail) or ``b:<sha256 of the raw bytes>``: two locations share one
stored message only when their bytes are identical. Stores written before hold ``h:``
identities (the Message-ID, or From/Date/Subject/size, hashed), under which different
messages that shared a Message-ID were collapsed into one, the later one's bytes never
stored. :func:`repair` re-keys such messages by the bytes they hold and has the locations
that may have been collapsed fetched again (see :func:`inboxd.store.folders.refetch`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, exists, func, select, update

from inboxd.db.tables import locations, messages
from inboxd.db.types import utcnow
from inboxd.store import folders as store_folders

BODY = "b:"
GMAIL = "g:"
#: a header fingerprint, as stores written before identities were bytes hold them
LEGACY = "h:"
#: a message set aside by the repair (its bytes unreadable, or stored again under another
#: row): never matched by a fetched message, so it can only be found by its locations
SET_ASIDE = "x:"

_CHUNK = 500


def body_identity(raw: bytes) -> str:
    """The identity of a message without an X-GM-MSGID: the sha256 of its exact bytes."""
    return BODY + hashlib.sha256(raw).hexdigest()


def _legacy(account_id: str) -> ColumnElement[bool]:
    m = messages.c
    # The range lets the (account_id, identity) index find them (LIKE alone may not use
    # it); the LIKE keeps the answer exact whatever the collation orders between them.
    return and_(
        m.account_id == account_id,
        m.identity >= LEGACY,
        m.identity < "i",
        m.identity.startswith(LEGACY, autoescape=True),
    )


def legacy_count(conn: Connection, account_id: str) -> int:
    """Messages of the account still keyed by a header fingerprint."""
    return int(
        conn.execute(
            select(func.count()).select_from(messages).where(_legacy(account_id))
        ).scalar_one()
    )


def legacy_batch(conn: Connection, account_id: str, limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` of them, (pk, identity), oldest first."""
    rows = conn.execute(
        select(messages.c.id, messages.c.identity)
        .where(_legacy(account_id))
        .order_by(messages.c.id)
        .limit(limit)
    )
    return [(int(pk), str(identity)) for pk, identity in rows]


@dataclass(frozen=True)
class Rekey:
    """One legacy message and the identity of the bytes it holds (None: unreadable)."""

    pk: int
    legacy: str
    identity: str | None


@dataclass
class Repaired:
    """What one :func:`repair` did."""

    messages: int = 0
    refetch: int = 0  # live locations to be fetched again


def repair(conn: Connection, account_id: str, rekeys: Sequence[Rekey]) -> Repaired:
    """Re-key legacy messages by their bytes, in the caller's transaction (with the folder
    state it changes, so a killed repair either did a message wholly or not at all).

    A message with more than one location (live or gone: a location gone now may be the
    one its bytes came from) may be several messages collapsed into one; its live
    locations are fetched again, and each then points at a message holding its own bytes
    (the same one where they are these bytes). A message whose bytes cannot be read is
    set aside and its locations fetched again too. Nothing is deleted: a message that no
    place shows any more (its bytes were those of a place since gone from the server)
    stays, marked expunged like any mail that left the server, because it is the one copy
    of something the server once held."""
    done = Repaired()
    # Only what still holds the identity it was read with (a repair run twice, or raced).
    current = _current(conn, [r.pk for r in rekeys])
    rekeys = [r for r in rekeys if current.get(r.pk) == r.legacy]
    if not rekeys:
        return done
    places = _locations(conn, [r.pk for r in rekeys])
    suspect = {r.pk for r in rekeys if r.identity is None or len(places.get(r.pk, ())) > 1}
    by_folder: dict[int, dict[str, int | None]] = {}
    for pk in suspect:
        for folder_id, key, uid, live in places.get(pk, ()):
            if live:
                by_folder.setdefault(folder_id, {})[key] = uid
    for folder_id, keys in by_folder.items():
        store_folders.refetch(conn, folder_id, keys)
        done.refetch += len(keys)
    taken = _owners(conn, account_id, [r.identity for r in rekeys if r.identity is not None])
    for r in rekeys:
        owner = taken.get(r.identity) if r.identity is not None else None
        if r.identity is None or (owner is not None and owner != r.pk):
            _set_aside(conn, r, owner)
        else:
            _set_identity(conn, r.pk, r.legacy, r.identity)
            taken[r.identity] = r.pk
        done.messages += 1
    return done


def _current(conn: Connection, pks: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(pks), _CHUNK):
        rows = conn.execute(
            select(messages.c.id, messages.c.identity).where(
                messages.c.id.in_(pks[start : start + _CHUNK])
            )
        )
        found.update((int(pk), str(identity)) for pk, identity in rows)
    return found


def _locations(
    conn: Connection, pks: list[int]
) -> dict[int, list[tuple[int, str, int | None, bool]]]:
    """pk -> its locations (folder, key, uid, live)."""
    found: dict[int, list[tuple[int, str, int | None, bool]]] = {}
    lo = locations.c
    for start in range(0, len(pks), _CHUNK):
        rows = conn.execute(
            select(lo.message_pk, lo.folder_id, lo.remote_key, lo.uid, lo.expunged_at).where(
                lo.message_pk.in_(pks[start : start + _CHUNK])
            )
        )
        for pk, folder_id, key, uid, gone in rows:
            found.setdefault(int(pk), []).append(
                (int(folder_id), str(key), None if uid is None else int(uid), gone is None)
            )
    return found


def _owners(conn: Connection, account_id: str, identities: list[str]) -> dict[str | None, int]:
    found: dict[str | None, int] = {}
    for start in range(0, len(identities), _CHUNK):
        rows = conn.execute(
            select(messages.c.identity, messages.c.id).where(
                messages.c.account_id == account_id,
                messages.c.identity.in_(identities[start : start + _CHUNK]),
            )
        )
        found.update((str(identity), int(pk)) for identity, pk in rows)
    return found


def _set_identity(conn: Connection, pk: int, legacy: str, identity: str) -> None:
    conn.execute(
        update(messages)
        .where(messages.c.id == pk, messages.c.identity == legacy)
        .values(identity=identity)
    )


def _set_aside(conn: Connection, rekey: Rekey, owner: int | None) -> None:
    """Its bytes are unreadable, or already stored under ``owner`` (only a fingerprint that
    changed between versions gives identical bytes two legacy identities). The row stays
    (other tables may refer to it, and nothing of it is lost by keeping it), without the
    identity a fetch would match; its locations move to ``owner``, which holds the same
    bytes."""
    now = utcnow()
    if owner is not None:
        conn.execute(
            update(locations).where(locations.c.message_pk == rekey.pk).values(message_pk=owner)
        )
        live = exists().where(locations.c.message_pk == owner, locations.c.expunged_at.is_(None))
        conn.execute(update(messages).where(messages.c.id == owner, live).values(expunged_at=None))
    values: dict[str, object] = {"identity": f"{SET_ASIDE}{rekey.pk}", "updated_at": now}
    if owner is not None:
        values["expunged_at"] = now  # no location left
    conn.execute(
        update(messages)
        .where(messages.c.id == rekey.pk, messages.c.identity == rekey.legacy)
        .values(**values)
    )
