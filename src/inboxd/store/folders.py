"""Per-folder sync state and the changes a sync makes besides new messages: flags, expunges,
UIDVALIDITY resets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, Row, bindparam, exists, func, insert, select, update

from inboxd.db.tables import folders, locations, messages
from inboxd.db.types import utcnow


@dataclass(frozen=True, kw_only=True)
class FolderState:
    """What the last sync saw of one folder."""

    id: int
    account_id: str
    name: str
    uidvalidity: int | None
    uidnext: int | None
    highest_uid: int
    highestmodseq: int | None
    server_count: int | None
    cursor: Any
    last_synced_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``folders`` row."""
        m = row._mapping
        return cls(
            id=int(m["id"]),
            account_id=m["account_id"],
            name=m["name"],
            uidvalidity=m["uidvalidity"],
            uidnext=m["uidnext"],
            highest_uid=int(m["highest_uid"]),
            highestmodseq=m["highestmodseq"],
            server_count=m["server_count"],
            cursor=m["cursor"],
            last_synced_at=m["last_synced_at"],
        )


def ensure_folder(
    conn: Connection,
    account_id: str,
    name: str,
    *,
    delimiter: str | None = None,
    special_use: str | None = None,
) -> FolderState:
    """The folder's state row, created on first sight (and revived if it had gone)."""
    row = conn.execute(
        select(folders).where(folders.c.account_id == account_id, folders.c.name == name)
    ).first()
    if row is None:
        conn.execute(
            insert(folders).values(
                account_id=account_id,
                name=name,
                delimiter=delimiter,
                special_use=special_use,
                highest_uid=0,
            )
        )
        row = conn.execute(
            select(folders).where(folders.c.account_id == account_id, folders.c.name == name)
        ).one()
    elif row.gone_at is not None:
        conn.execute(update(folders).where(folders.c.id == row.id).values(gone_at=None))
    return FolderState.from_row(row)


def save_state(conn: Connection, folder_id: int, **values: Any) -> None:
    """Update a folder's sync state columns."""
    conn.execute(update(folders).where(folders.c.id == folder_id).values(**values))


def reset_folder(conn: Connection, folder_id: int, uidvalidity: int | None) -> int:
    """UIDVALIDITY changed: old UIDs mean nothing now. The folder's locations are marked
    gone and the folder is fetched again from UID 0; messages found again are matched by
    identity (no duplicates) and revived, the others stay marked expunged."""
    gone = mark_expunged(conn, folder_id, live_keys(conn, folder_id))
    save_state(
        conn,
        folder_id,
        uidvalidity=uidvalidity,
        highest_uid=0,
        highestmodseq=None,
        uidnext=None,
        cursor=None,
    )
    return gone


def refetch(conn: Connection, folder_id: int, keys: Mapping[str, int | None]) -> None:
    """Have the folder's next sync fetch these locations (key -> UID) again, whatever the
    provider: they are marked gone, so that one planning by the keys it holds (Maildir)
    sees them as new; the highest UID moves below the lowest of them (IMAP); a stream's
    cursor starts over (an mbox: the cursor is the provider's own, so not moved part-way);
    and the UIDNEXT is forgotten, so the folder does not look unchanged. A location fetched
    again comes back pointing at the message of its bytes; one gone from the server stays
    gone, its message kept."""
    if not keys:
        return
    mark_expunged(conn, folder_id, keys)
    values: dict[str, Any] = {"cursor": None, "uidnext": None}
    uids = [uid for uid in keys.values() if uid is not None]
    if uids:
        highest = conn.execute(
            select(folders.c.highest_uid).where(folders.c.id == folder_id)
        ).scalar_one()
        values["highest_uid"] = max(0, min(int(highest), min(uids) - 1))
    save_state(conn, folder_id, **values)


def live_keys(conn: Connection, folder_id: int) -> dict[str, int]:
    """remote_key → message pk of the folder's locations that are still on the server."""
    rows = conn.execute(
        select(locations.c.remote_key, locations.c.message_pk).where(
            locations.c.folder_id == folder_id, locations.c.expunged_at.is_(None)
        )
    )
    return {key: int(pk) for key, pk in rows}


def mark_expunged(conn: Connection, folder_id: int, keys: Iterable[str]) -> int:
    """Mark locations gone from the server; a message with no location left is marked
    expunged too (kept locally, never dropped silently)."""
    keys = list(keys)
    if not keys:
        return 0
    now = utcnow()
    affected: set[int] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        affected.update(
            int(pk)
            for (pk,) in conn.execute(
                select(locations.c.message_pk).where(
                    locations.c.folder_id == folder_id, locations.c.remote_key.in_(chunk)
                )
            )
        )
        conn.execute(
            update(locations)
            .where(locations.c.folder_id == folder_id, locations.c.remote_key.in_(chunk))
            .values(expunged_at=now)
        )
    still_there = exists().where(
        locations.c.message_pk == messages.c.id, locations.c.expunged_at.is_(None)
    )
    pks = sorted(affected)
    for start in range(0, len(pks), 500):
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(pks[start : start + 500]), ~still_there)
            .values(expunged_at=now, updated_at=now)
        )
    return len(keys)


def apply_flags(
    conn: Connection,
    folder_id: int,
    flags_by_key: Mapping[str, Iterable[str]],
    labels_by_key: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Set the flags (and labels, where given) of messages by their location key; returns
    how many changed."""
    if not flags_by_key:
        return 0
    labels_by_key = labels_by_key or {}
    params = []
    keys = list(flags_by_key)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = conn.execute(
            select(
                locations.c.remote_key, locations.c.message_pk, messages.c.flags, messages.c.labels
            )
            .join(messages, messages.c.id == locations.c.message_pk)
            .where(locations.c.folder_id == folder_id, locations.c.remote_key.in_(chunk))
        )
        for key, pk, old_flags, old_labels in rows:
            flags = sorted(set(flags_by_key[key]))
            given = labels_by_key.get(key)
            labels = list(given) if given is not None else list(old_labels or [])
            # CHANGEDSINCE also lists what was just fetched: only real changes count.
            if flags != sorted(old_flags or []) or labels != list(old_labels or []):
                params.append({"pk": pk, "new_flags": flags, "new_labels": labels})
    if not params:
        return 0
    conn.execute(
        update(messages)
        .where(messages.c.id == bindparam("pk"))
        .values(flags=bindparam("new_flags"), labels=bindparam("new_labels"), updated_at=utcnow()),
        params,
    )
    return len(params)


def local_count(conn: Connection, folder_id: int) -> int:
    """Messages the store holds in this folder (not expunged)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(locations)
            .where(locations.c.folder_id == folder_id, locations.c.expunged_at.is_(None))
        ).scalar_one()
    )


def mark_gone_folders(conn: Connection, account_id: str, present: Iterable[str]) -> None:
    """Folders no longer on the server (or no longer synced) are marked gone."""
    names = list(present)
    conn.execute(
        update(folders)
        .where(
            folders.c.account_id == account_id,
            folders.c.name.not_in(names),
            folders.c.gone_at.is_(None),
        )
        .values(gone_at=utcnow())
    )
