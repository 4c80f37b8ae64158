"""The "repairing" step: a store written when a message's identity was a fingerprint of its
headers is re-keyed by bytes before its account's sync goes on (see
:mod:`inboxd.store.identities`).

It runs in batches, each read (bodies hashed outside the write lock) then committed in one
transaction with the folder state it changes, so a killed or cancelled repair resumes with
the messages it had not done, and a repaired store skips the step (one indexed look).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import zstandard
from sqlalchemy import Connection, Engine

from inboxd.db.engine import reading, writing
from inboxd.errors import NotFound
from inboxd.store import identities
from inboxd.store.bodies import read_body
from inboxd.sync.progress import SyncProgress
from inboxd.vocabulary import Step

#: Messages re-keyed per transaction (their bodies are read and hashed before it begins).
BATCH = 200


@dataclass
class RepairResult:
    """What the repair did in this sync."""

    messages: int = 0
    refetch: int = 0


def repair_identities(
    engine: Engine, account_id: str, progress: SyncProgress, *, batch: int = BATCH
) -> RepairResult:
    """Re-key the account's legacy messages; nothing (and no step) when there are none."""
    result = RepairResult()
    with reading(engine) as conn:
        total = identities.legacy_count(conn, account_id)
    if not total:
        return result
    progress.step(Step.REPAIRING, total=total, message="message identities")
    while True:
        progress.check_cancelled()
        with reading(engine) as conn:
            legacy = identities.legacy_batch(conn, account_id, batch)
            rekeys = [identities.Rekey(pk, key, _identity(conn, pk)) for pk, key in legacy]
        if not rekeys:
            break
        with writing(engine) as conn:
            done = identities.repair(conn, account_id, rekeys)
        result.messages += done.messages
        result.refetch += done.refetch
        progress.update(advance=len(rekeys))
    progress.log(
        f"repaired the identities of {result.messages} messages; "
        f"{result.refetch} locations are fetched again"
    )
    return result


def _identity(conn: Connection, pk: int) -> str | None:
    try:
        return identities.body_identity(read_body(conn, pk))
    except (NotFound, OSError, ValueError, zlib.error, zstandard.ZstdError):
        # No row, a pack file gone, a frame that does not decode: fetched again instead.
        return None
