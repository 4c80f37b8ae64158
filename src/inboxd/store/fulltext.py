"""The full-text index: SQLite FTS5 on the embedded store, a tsvector with a GIN index on
PostgreSQL, with the same words in both.

The words are made here, in Python, for both databases: text is decomposed (NFKD), its
combining marks dropped and case folded, then cut into runs of letters and digits. SQLite
gets those words joined by spaces (its ``unicode61`` tokenizer then finds the same ones);
PostgreSQL gets a tsvector literal with their positions, so neither its text-search parser
(which treats e-mail addresses, URLs and hyphenated words its own way, and letters by the
server's locale) nor an ``unaccent`` extension (superuser-only) is involved. A query's
words go through the same function, so a query finds the same messages on both.

Each message is indexed in three fields (subject; the sender's name and address and the
To/Cc addresses; the body text). A phrase never spans two fields: FTS5 keeps them in
columns, the tsvector leaves a position free between them.

SQLite's table is contentless (``content=''``): it holds the index only, not a second copy
of every message's text. Its rows cannot be updated or deleted one by one (SQLite 3.40 has
no ``contentless_delete``), which is harmless here: message ids are never reused
(AUTOINCREMENT), so the row of a deleted message matches no message again; :func:`clear`
empties the index for a full rebuild.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    column,
    delete,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from inboxd.db.tables import messages, thread_keys

#: A word longer than this is no word (base64 runs, hashes): neither indexed nor searched.
MAX_WORD = 64
#: Words indexed per message. PostgreSQL positions stop at 16,383; past that a tsvector
#: would pile every word onto the last position, and phrases would match falsely.
MAX_WORDS = 16_000
#: Positions kept per distinct word (PostgreSQL keeps 256; FTS5 gets the same words).
MAX_POSITIONS = 256

_WORD = re.compile(r"[^\W_]+")

# The index tables are dialect-specific (a virtual table; a tsvector), so they are not in
# inboxd.db.tables' metadata: these light descriptions are enough to query them.
sqlite_fts = table("message_fts", column("rowid"))
postgres_fts = table("message_fts", column("message_pk"), column("doc"))


def words(value: str | None) -> list[str]:
    """The searchable words of ``value``: case folded, accents removed, letters and digits."""
    if not value:
        return []
    if value.isascii():
        folded = value.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", value)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return [w for w in _WORD.findall(folded) if len(w) <= MAX_WORD]


@dataclass(frozen=True, slots=True)
class Entry:
    """One message's words, by field."""

    message_pk: int
    subject: list[str]
    addresses: list[str]
    body: list[str]


def entry(
    message_pk: int, subject: str | None, addresses: Sequence[str], body: str | None
) -> Entry:
    """The index entry of one message, capped at MAX_WORDS words."""
    subject_words = words(subject)[:MAX_WORDS]
    address_words = words(" ".join(addresses))[: MAX_WORDS - len(subject_words)]
    room = MAX_WORDS - len(subject_words) - len(address_words)
    return Entry(message_pk, subject_words, address_words, words(body)[:room] if room else [])


def write(conn: Connection, entries: Sequence[Entry]) -> None:
    """Add ``entries`` to the index (inside the caller's transaction)."""
    if not entries:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "INSERT INTO message_fts (rowid, subject, addresses, body) VALUES (?, ?, ?, ?)",
            [
                (e.message_pk, " ".join(e.subject), " ".join(e.addresses), " ".join(e.body))
                for e in entries
            ],
        )
        return
    conn.exec_driver_sql(
        "INSERT INTO message_fts (message_pk, doc) VALUES (%s, %s::tsvector) "
        "ON CONFLICT (message_pk) DO UPDATE SET doc = excluded.doc",
        [(e.message_pk, tsvector_literal(e)) for e in entries],
    )


def tsvector_literal(e: Entry) -> str:
    """The PostgreSQL tsvector input of an entry: each word with its positions, one
    position left free between fields."""
    positions: dict[str, list[int]] = {}
    pos = 0
    for field_words in (e.subject, e.addresses, e.body):
        pos += 1
        for word in field_words:
            pos += 1
            found = positions.get(word)
            if found is None:
                positions[word] = [pos]
            elif len(found) < MAX_POSITIONS:
                found.append(pos)
    # Words are letters and digits only: nothing in them needs quoting.
    return " ".join(f"{w}:{','.join(map(str, p))}" for w, p in positions.items())


def clear(conn: Connection, account_id: str | None = None) -> None:
    """Empty the index (all of it, or one account's on PostgreSQL) and mark the messages
    unindexed, so that the index job rebuilds it."""
    where = messages.c.account_id == account_id if account_id is not None else None
    if conn.dialect.name == "sqlite":
        # A contentless table forgets rows only all at once.
        conn.exec_driver_sql("INSERT INTO message_fts (message_fts) VALUES ('delete-all')")
        where = None
    else:
        stale = select(messages.c.id)
        if where is not None:
            stale = stale.where(where)
        conn.execute(delete(postgres_fts).where(postgres_fts.c.message_pk.in_(stale)))
    reset = messages.update().values(indexed_at=None, thread_id=None)
    conn.execute(reset if where is None else reset.where(where))
    keys = delete(thread_keys)
    conn.execute(keys if account_id is None else keys.where(thread_keys.c.account_id == account_id))


def forget_account(conn: Connection, account_id: str) -> None:
    """Drop what the index keeps of an account that is being removed (its threads; on
    PostgreSQL its rows go with its messages, by the foreign key)."""
    conn.execute(delete(thread_keys).where(thread_keys.c.account_id == account_id))


# -- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in a row (one word is a phrase of one); ``prefix``: the last is a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part matches."""

    parts: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part matches."""

    parts: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class Without:
    """``keep`` matches and ``drop`` does not."""

    keep: Match
    drop: Match


Match = Phrase | AllOf | AnyOf | Without


def matching_ids(match: Match, dialect: str) -> Select[tuple[int]]:
    """The ids of the messages whose indexed text matches."""
    if dialect == "sqlite":
        query: ColumnElement[bool] = literal_column("message_fts").op("MATCH")(
            _bound(fts5_query(match))
        )
        return select(sqlite_fts.c.rowid).where(query)
    tsquery = text("CAST(:q AS tsquery)").bindparams(q=tsquery_text(match)).self_group()
    return select(postgres_fts.c.message_pk).where(postgres_fts.c.doc.op("@@")(tsquery))


def _bound(value: str) -> ColumnElement[str]:
    return bindparam(None, value, unique=True)


def fts5_query(match: Match) -> str:
    """An FTS5 MATCH expression (each phrase quoted: no word is read as an operator)."""
    if isinstance(match, Phrase):
        return f'"{" ".join(match.words)}"' + (" *" if match.prefix else "")
    if isinstance(match, Without):
        return f"({fts5_query(match.keep)} NOT {fts5_query(match.drop)})"
    joiner = " AND " if isinstance(match, AllOf) else " OR "
    return "(" + joiner.join(fts5_query(p) for p in match.parts) + ")"


def tsquery_text(match: Match) -> str:
    """A PostgreSQL tsquery in its input form (lexemes quoted, taken as they are)."""
    if isinstance(match, Phrase):
        lexemes = [f"'{w}'" for w in match.words]
        if match.prefix:
            lexemes[-1] += ":*"
        return "(" + " <-> ".join(lexemes) + ")"
    if isinstance(match, Without):
        return f"({tsquery_text(match.keep)} & !{tsquery_text(match.drop)})"
    joiner = " & " if isinstance(match, AllOf) else " | "
    return "(" + joiner.join(tsquery_text(p) for p in match.parts) + ")"
