"""The full-text index: SQLite FTS5 on the embedded store, a tsvector with a GIN index on
PostgreSQL, with the same words in both.

The words are made here, in Python, for both databases: text is decomposed (NFKD), its
combining marks dropped and case folded, then cut into runs of letters and digits. SQLite
gets those words joined by spaces (its ``unicode61`` tokenizer then finds the same ones);
PostgreSQL gets a tsvector literal with their positions, so neither its text-search parser
(which treats e-mail addresses, URLs and hyphenated words its own way, and letters by the
server's locale) nor an ``unaccent`` extension (superuser-only) is involved. A query's
words go through the same function, so a query finds the same messages on both.

Each message is indexed in four fields: its subject, its sender (name and address), its
recipients (To and Cc addresses) and its body text. Free words match any of them; ``from:``,
``to:`` and ``subject:`` one. FTS5 keeps the fields as columns (a column filter restricts a
phrase to one); the tsvector holds every word, and the words of the first three fields once
more with a tag (``:f:alice``), so that PostgreSQL's GIN index answers ``from:alice`` exactly,
without reading every message that says "alice" anywhere. A phrase never spans two fields:
the tsvector leaves a position free between them.

GIN cannot check positions: for a phrase PostgreSQL reads back (from TOAST) the tsvector of
every message holding all its words. So each two adjacent words of a field are indexed once
more as their pair, hashed into one of PAIR_BUCKETS lexemes without positions, and a phrase
asks for its pairs' buckets as well as for its words in a row (``'_1a2b' & ('a' <-> 'b')``):
the index then leaves few more candidates than matches, and the positions keep the answer
exact. Buckets rather than the pairs themselves keep the index small and its writes fast.

SQLite's table is contentless (``content=''``): it holds the index only, not a second copy
of every message's text. Its rows cannot be updated or deleted one by one (SQLite 3.40 has
no ``contentless_delete``), which is harmless here: message ids are never reused
(AUTOINCREMENT), so the row of a deleted message matches no message again; :func:`clear`
empties the index for a full rebuild.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    cast,
    column,
    delete,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.sql.elements import ColumnElement

from inboxd.db.tables import messages, thread_keys

#: A word longer than this is no word (base64 runs, hashes): neither indexed nor searched.
MAX_WORD = 64
#: Words indexed per message. PostgreSQL positions stop at 16,383; past that a tsvector
#: would pile every word onto the last position, and phrases would match falsely.
MAX_WORDS = 16_000
#: Positions a tsvector keeps per distinct word (PostgreSQL's limit). FTS5 keeps them all:
#: a phrase at the 257th or later occurrence of a word in one message is found on SQLite
#: only (the one known difference between the two).
MAX_POSITIONS = 256

_WORD = re.compile(r"[^\W_]+")
# The combining marks of the Latin, Greek and Cyrillic scripts (all below U+0591): removed by
# one regex; text with characters beyond those takes the general (per character) way.
_MARKS = re.compile("[\u0300-\u036f\u0483-\u0489]+")
_MARKS_END = "\u0591"

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
        if max(decomposed) < _MARKS_END:
            folded = _MARKS.sub("", decomposed).casefold()
        else:
            folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return [w for w in _WORD.findall(folded) if len(w) <= MAX_WORD]


#: The fields of an entry, in FTS5's column order; the tag of their words in a tsvector.
FIELDS = ("subject", "sender", "recipients", "body")
# A tag starts with a character no word has: no prefix search ("f*") reaches tagged words.
_TAGS = {"subject": ":s:", "sender": ":f:", "recipients": ":t:"}
#: Buckets of word pairs (PostgreSQL). On 50,000 generated messages (~470 pairs each) the
#: benchmark's phrase took 6.9 ms with 4,096, 2.6 ms with 16,384, 1.8 ms with 65,536 (10.6
#: ms without pairs); indexing lost 25%, 45% and 60% of its rate.
PAIR_BUCKETS = 8192
# A bucket's lexeme: "_" and hex digits (no word starts with "_": no prefix search reaches it).
_BUCKETS = [f"'_{n:04x}'" for n in range(PAIR_BUCKETS)]


def _word_hash(word: str) -> int:
    return zlib.crc32(word.encode())


def _bucket(first: int, second: int) -> int:
    """The bucket of the pair of two words, given their hashes (order matters)."""
    return ((first * 0x9E3779B1) ^ second) % PAIR_BUCKETS


#: Every position a tsvector may hold (fields, gaps and all), as text.
_POSITIONS = [str(n) for n in range(MAX_WORDS + len(FIELDS) + 1)]


@dataclass(frozen=True, slots=True)
class Entry:
    """One message's words, by field."""

    message_pk: int
    subject: list[str]
    sender: list[str]
    recipients: list[str]
    body: list[str]


def entry(
    message_pk: int,
    subject: str | None,
    sender: Sequence[str],
    recipients: Sequence[str],
    body: str | None,
) -> Entry:
    """The index entry of one message, capped at MAX_WORDS words in all."""
    fields = [words(subject), words(" ".join(sender)), words(" ".join(recipients)), words(body)]
    room = MAX_WORDS
    for n, found in enumerate(fields):
        fields[n] = found[:room]
        room -= len(fields[n])
    return Entry(message_pk, *fields)


def write(conn: Connection, entries: Sequence[Entry]) -> None:
    """Add ``entries`` to the index (inside the caller's transaction)."""
    write_rows(conn, rows(conn.dialect.name, entries))


def rows(dialect: str, entries: Sequence[Entry]) -> list[tuple[Any, ...]]:
    """The index rows of ``entries`` in the driver's form, for :func:`write_rows` (made
    apart so that the work of making them need not happen inside the transaction)."""
    if dialect == "sqlite":
        return [
            (
                e.message_pk,
                " ".join(e.subject),
                " ".join(e.sender),
                " ".join(e.recipients),
                " ".join(e.body),
            )
            for e in entries
        ]
    return [(e.message_pk, tsvector_literal(e)) for e in entries]


def write_rows(conn: Connection, found: Sequence[tuple[Any, ...]]) -> None:
    """Add rows made by :func:`rows` to the index (inside the caller's transaction)."""
    if not found:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "INSERT INTO message_fts (rowid, subject, sender, recipients, body) "
            "VALUES (?, ?, ?, ?, ?)",
            list(found),
        )
        return
    conn.exec_driver_sql(
        "INSERT INTO message_fts (message_pk, doc) VALUES (%s, %s::tsvector) "
        "ON CONFLICT (message_pk) DO UPDATE SET doc = excluded.doc",
        list(found),
    )


def tsvector_literal(e: Entry) -> str:
    """The PostgreSQL tsvector input of an entry: each word with its positions (the words
    of tagged fields twice, once tagged), one position left free between fields."""
    # The hot loop of indexing on PostgreSQL: positions are kept as the strings they become.
    positions: dict[str, list[str]] = {}
    get = positions.get
    hashes: dict[str, int] = {}
    pairs: set[int] = set()
    pos = 0
    for tag, field_words in (
        (_TAGS["subject"], e.subject),
        (_TAGS["sender"], e.sender),
        (_TAGS["recipients"], e.recipients),
        ("", e.body),
    ):
        pos += 1
        before = -1
        for word in field_words:
            pos += 1
            hashed = hashes.get(word)
            if hashed is None:
                hashed = hashes[word] = _word_hash(word)
            if before >= 0:
                pairs.add(_bucket(before, hashed))
            before = hashed
            at = _POSITIONS[pos]
            found = get(word)
            if found is None:
                positions[word] = [at]
            elif len(found) < MAX_POSITIONS:
                found.append(at)
            if tag:
                tagged = tag + word
                found = get(tagged)
                if found is None:
                    positions[tagged] = [at]
                elif len(found) < MAX_POSITIONS:
                    found.append(at)
    # Words are letters and digits; a tag adds a colon, hence the quotes. Pairs have no
    # positions: only `&` reads them, and the tsvector stays smaller.
    return " ".join(
        [*[f"'{w}':{','.join(p)}" for w, p in positions.items()], *[_BUCKETS[b] for b in pairs]]
    )


#: Rows written by one index job from which it refreshes the planner's statistics itself.
ANALYZE_AFTER = 5_000


def settle(conn: Connection, written: int) -> None:
    """Move what was just written into the index proper (PostgreSQL): GIN keeps new rows in a
    pending list that every search reads whole, and the planner, counting it, can turn to
    reading every message's tsvector instead, until autovacuum merges it. After a big import
    the planner's word frequencies are refreshed too (autovacuum would, a minute later)."""
    if conn.dialect.name == "postgresql":
        if written >= ANALYZE_AFTER:
            conn.exec_driver_sql("ANALYZE message_fts")
        # Only the index's owner may (a role that merely uses the tables leaves it to
        # autovacuum).
        conn.exec_driver_sql(
            "SELECT gin_clean_pending_list(oid) FROM pg_class "
            "WHERE oid = 'ix_message_fts_doc'::regclass AND pg_has_role(relowner, 'USAGE')"
        )


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
    """Words in a row (one word is a phrase of one) in one of FIELDS, or in any when
    ``field`` is None; ``prefix``: the last word is a prefix."""

    words: tuple[str, ...]
    prefix: bool = False
    field: str | None = None


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
    # A cast, not to_tsquery(): the words are taken as they are, not parsed again.
    tsquery = cast(_bound(tsquery_text(match)), TSQUERY)
    return select(postgres_fts.c.message_pk).where(postgres_fts.c.doc.op("@@")(tsquery))


def _bound(value: str) -> ColumnElement[str]:
    return bindparam(None, value, unique=True)


def fts5_query(match: Match) -> str:
    """An FTS5 MATCH expression (each phrase quoted: no word is read as an operator)."""
    if isinstance(match, Phrase):
        column = f"{match.field} : " if match.field else ""
        return f'{column}"{" ".join(match.words)}"' + (" *" if match.prefix else "")
    if isinstance(match, Without):
        return f"({fts5_query(match.keep)} NOT {fts5_query(match.drop)})"
    joiner = " AND " if isinstance(match, AllOf) else " OR "
    return "(" + joiner.join(fts5_query(p) for p in match.parts) + ")"


def tsquery_text(match: Match) -> str:
    """A PostgreSQL tsquery in its input form (lexemes quoted, taken as they are)."""
    if isinstance(match, Phrase):
        tag = _TAGS[match.field] if match.field else ""
        lexemes = [f"'{tag}{w}'" for w in match.words]
        if match.prefix:
            lexemes[-1] += ":*"
        if len(match.words) == 1:
            return f"({lexemes[0]})"
        # The pairs let the GIN index answer (nearly) exactly; the positions, read from the
        # few rows left, keep the answer exact. A field's phrase has its pairs untagged too.
        complete = match.words[:-1] if match.prefix else match.words
        hashes = [_word_hash(w) for w in complete]
        pairs = [_BUCKETS[b] for b in sorted({_bucket(*p) for p in pairwise(hashes)})]
        phrase = "(" + " <-> ".join(lexemes) + ")"
        return "(" + " & ".join([*pairs, phrase]) + ")" if pairs else phrase
    if isinstance(match, Without):
        return f"({tsquery_text(match.keep)} & !{tsquery_text(match.drop)})"
    joiner = " & " if isinstance(match, AllOf) else " | "
    return "(" + joiner.join(tsquery_text(p) for p in match.parts) + ")"
