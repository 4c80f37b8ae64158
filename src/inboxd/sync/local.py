"""Sync of local mail: Maildir trees and mbox files (e.g. a Google Takeout export).

Both are streamed: a Maildir is listed by file name and read one batch at a time; an mbox is
read from the byte offset where the last import stopped, so a re-import of a grown file only
reads the new tail, and a killed import resumes at its last committed batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from inboxd.db.engine import writing
from inboxd.db.types import utcnow
from inboxd.jobs.progress import TaskContext
from inboxd.providers.base import FetchedMessage, ProviderConfigError
from inboxd.providers.maildir import iter_maildir, read_entry, scan_maildir
from inboxd.providers.mbox import iter_mbox
from inboxd.store import folders as store_folders
from inboxd.store.accounts import Account
from inboxd.sync.batch_store import BatchStore
from inboxd.sync.report import SyncReport
from inboxd.vocabulary import Step

MBOX_FOLDER = "mbox"


def sync_maildir(ctx: TaskContext, account: Account) -> dict[str, Any]:
    """Import new messages, flag changes and removals of a Maildir tree."""
    root = Path(account.settings["path"])
    progress = ctx.progress
    progress.step(Step.LISTING_FOLDERS)
    if not root.is_dir():
        raise ProviderConfigError(f"Maildir {root} is gone")
    found = scan_maildir(root)
    report = SyncReport(folders=len(found))
    plans = []
    for folder in found:
        entries = list(iter_maildir(folder.path))
        with writing(ctx.engine) as conn:
            state = store_folders.ensure_folder(conn, account.id, folder.name)
            known = store_folders.live_keys(conn, state.id)
        plans.append((state, entries, known))
    todo = sum(sum(1 for e in entries if e.key not in known) for _, entries, known in plans)
    progress.step(Step.FETCHING, total=todo, message=f"{todo} new messages")
    with BatchStore(ctx.engine, account.id, report, progress) as store:
        for state, entries, known in plans:
            new = [e for e in entries if e.key not in known]
            for batch in _batches(new, ctx.settings.sync_batch_messages):
                progress.check_cancelled()
                fetched = [
                    FetchedMessage(remote_key=e.key, raw=read_entry(e), flags=tuple(e.flags))
                    for e in batch
                ]
                store.put(state.id, state.name, fetched)
    # Counted in folders so the bar ends full instead of falling back to an empty step.
    progress.step(Step.STORING, total=len(plans), message="flags and deletions")
    for state, entries, known in plans:
        present = {e.key for e in entries}
        with writing(ctx.engine) as conn:
            report.flags_changed += store_folders.apply_flags(
                conn, state.id, {e.key: e.flags for e in entries if e.key in known}
            )
            report.expunged += store_folders.mark_expunged(
                conn, state.id, [k for k in known if k not in present]
            )
            store_folders.save_state(
                conn, state.id, server_count=len(entries), last_synced_at=utcnow()
            )
        progress.update(advance=1)
    with writing(ctx.engine) as conn:
        store_folders.mark_gone_folders(conn, account.id, [f.name for f in found])
    return asdict(report)


def sync_mbox(ctx: TaskContext, account: Account) -> dict[str, Any]:
    """Import an mbox file from where the last import stopped."""
    path = Path(account.settings["path"])
    progress = ctx.progress
    progress.step(Step.LISTING_FOLDERS)
    if not path.is_file():
        raise ProviderConfigError(f"mbox file {path} is gone")
    stat = path.stat()
    with writing(ctx.engine) as conn:
        state = store_folders.ensure_folder(conn, account.id, MBOX_FOLDER)
    cursor = state.cursor or {}
    start = int(cursor.get("offset", 0))
    if start > stat.st_size or cursor.get("inode") not in (None, stat.st_ino):
        start = 0  # replaced or truncated: read it all again; identities prevent duplicates
    report = SyncReport(folders=1)
    # Bytes are the honest unit of progress for a multi-GB file.
    progress.step(Step.FETCHING, total=stat.st_size, message=f"reading {path.name}")
    progress.update(start)
    with BatchStore(ctx.engine, account.id, report, progress) as store:
        end = _import_mbox(ctx, store, state.id, path, start, stat.st_ino)
    report.bytes = end - start
    progress.step(Step.STORING)
    with writing(ctx.engine) as conn:
        store_folders.save_state(
            conn,
            state.id,
            server_count=store_folders.local_count(conn, state.id),
            last_synced_at=utcnow(),
        )
    return asdict(report)


def _import_mbox(
    ctx: TaskContext, store: BatchStore, folder_id: int, path: Path, start: int, inode: int
) -> int:
    """Store the messages of ``path`` from byte ``start`` on; returns where they end."""
    batch: list[FetchedMessage] = []
    batch_bytes = 0
    end = start
    for entry in iter_mbox(path, start_offset=start):
        batch.append(
            FetchedMessage(
                remote_key=str(entry.offset), raw=entry.raw, labels=tuple(entry.gmail_labels)
            )
        )
        batch_bytes += len(entry.raw)
        end = entry.end_offset
        if (
            len(batch) >= ctx.settings.sync_batch_messages
            or batch_bytes >= ctx.settings.sync_batch_bytes
        ):
            ctx.progress.check_cancelled()
            _store_mbox_batch(store, folder_id, batch, {"offset": end, "inode": inode})
            ctx.progress.update(end)
            batch, batch_bytes = [], 0
    _store_mbox_batch(store, folder_id, batch, {"offset": end, "inode": inode})
    return end


def _store_mbox_batch(
    store: BatchStore, folder_id: int, batch: list[FetchedMessage], cursor: dict[str, Any]
) -> None:
    """Store a batch with the byte offset after it (progress counts bytes, not messages)."""

    def checkpoint(conn: Connection) -> None:
        store_folders.save_state(conn, folder_id, cursor=cursor)

    store.put(folder_id, MBOX_FOLDER, batch, checkpoint=checkpoint, advance=0)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
