"""Threads, JWZ-style: messages that share a Message-ID (their own, or one their References
or In-Reply-To name) are one thread, within an account.

Every Message-ID seen is a key of ``thread_keys`` with its thread, including the ids of
messages not stored (JWZ's empty containers): two replies to a message that never arrived
still meet there. A new message joins the thread of any of its keys; when its keys belong
to several threads (it links them), they merge into the oldest, whose id (the smallest
message pk among them) stays the thread's id. Subjects are not used to join threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, insert, select, update

from inboxd.db.tables import messages, thread_keys

#: Keys looked up per statement.
_CHUNK = 500
_KEY_MAX = 500


@dataclass(frozen=True, slots=True)
class Linked:
    """A message and the Message-IDs that tie it to others (its own first)."""

    message_pk: int
    keys: tuple[str, ...]


def keys_of(
    message_id: str | None, references: Iterable[str], in_reply_to: str | None
) -> tuple[str, ...]:
    """The distinct thread keys of a message, usable ones only."""
    seen: dict[str, None] = {}
    for key in (message_id, *references, in_reply_to):
        if key and (key := key.strip()) and len(key) <= _KEY_MAX:
            seen[key] = None
    return tuple(seen)


@dataclass
class Threading:
    """Threads assigned to a batch of messages, from the keys already known."""

    known: dict[str, int]
    #: thread -> the thread it was merged into (union-find)
    merged: dict[int, int] = field(default_factory=dict)
    new_keys: dict[str, int] = field(default_factory=dict)
    assigned: dict[int, int] = field(default_factory=dict)

    def find(self, thread: int) -> int:
        """The thread that ``thread`` is part of now."""
        root = thread
        while (up := self.merged.get(root)) is not None:
            root = up
        while thread != root:  # shorten the path for the next look-up
            self.merged[thread], thread = root, self.merged[thread]
        return root

    def add(self, message: Linked) -> None:
        """Place one message (messages of a batch are added in pk order)."""
        threads = {
            self.find(t)
            for key in message.keys
            if (t := self.known.get(key, self.new_keys.get(key))) is not None
        }
        root = min(threads) if threads else message.message_pk
        for other in threads - {root}:
            self.merged[other] = root
        for key in message.keys:
            if key not in self.known and key not in self.new_keys:
                self.new_keys[key] = root
        self.assigned[message.message_pk] = root

    def merges(self) -> dict[int, int]:
        """Threads already stored that became part of another: old id -> new id."""
        stored = set(self.known.values())
        return {old: self.find(old) for old in self.merged if old in stored}

    def threads(self) -> dict[int, int]:
        """Each added message's thread."""
        return {pk: self.find(t) for pk, t in self.assigned.items()}


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a batch went: each message's thread, and how many stored threads merged."""

    threads: dict[int, int]
    merged: int


def assign(conn: Connection, account_id: str, batch: Sequence[Linked]) -> Placed:
    """Place ``batch`` in its threads, merging threads it links and storing its keys
    (inside the caller's transaction)."""
    wanted = sorted({key for message in batch for key in message.keys})
    known: dict[str, int] = {}
    k = thread_keys.c
    for start in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            select(k.message_id, k.thread_id).where(
                k.account_id == account_id, k.message_id.in_(wanted[start : start + _CHUNK])
            )
        )
        known.update((key, int(thread)) for key, thread in rows)
    threading = Threading(known)
    for message in sorted(batch, key=lambda m: m.message_pk):
        threading.add(message)
    merges = threading.merges()
    for old, new in merges.items():
        conn.execute(
            update(messages)
            .where(messages.c.account_id == account_id, messages.c.thread_id == old)
            .values(thread_id=new)
        )
        conn.execute(
            update(thread_keys)
            .where(k.account_id == account_id, k.thread_id == old)
            .values(thread_id=new)
        )
    if threading.new_keys:
        conn.execute(
            insert(thread_keys),
            [
                {"account_id": account_id, "message_id": key, "thread_id": threading.find(t)}
                for key, t in threading.new_keys.items()
            ],
        )
    return Placed(threading.threads(), len(merges))
