"""The one path for every change to a mailbox: :func:`apply_changes` (and :func:`undo`,
which replays a job's journal in reverse through it), and the ``change`` and ``undo`` jobs.

Per batch of ``settings.change_batch`` changes (:data:`BATCH` by default): the store says
where each message is; the server says what each location holds now (``current_marks``:
gone ones are skipped, and the marks are the journal's exact ``before``); the caller's
recheck may skip more; one transaction writes a ``planned`` row per location (skips
settled at once); the provider applies the batch (UID sets: one command per folder and
change); one transaction settles every row (``done`` with ``after``, or ``failed``) and
updates the store to match. Progress and cancellation between batches.

A run that died between acting and settling leaves rows ``planned``: the next attempt
asks the server first (still in the old folder: applied again, which changes nothing
twice; gone after a planned move: found in the target by Message-ID), then goes on with
the changes the job has not journaled yet.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, select

from inboxd.config import Settings
from inboxd.db.engine import reading, writing
from inboxd.db.tables import change_journal
from inboxd.errors import InvalidParams
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import task
from inboxd.providers.base import (
    Applied,
    MailProvider,
    Marks,
    Mutation,
    MutationRefused,
    MutationsNotSupported,
    ProviderOptions,
    changed_flags,
    changed_labels,
)
from inboxd.providers.registry import open_provider
from inboxd.store import journal
from inboxd.store.accounts import Account, Accounts
from inboxd.store.journal import Entry, Landing, NewEntry, Outcome, Place
from inboxd.vocabulary import JournalState, MarkAction, Step

__all__ = [
    "ARCHIVE",
    "BATCH",
    "Change",
    "ChangeParams",
    "ChangeReport",
    "Located",
    "Recheck",
    "UndoParams",
    "apply_changes",
    "mark_change",
    "read_only_reason",
    "undo",
    "undo_dedupe_key",
]

#: Changes per batch unless the settings say (``change_batch``): one journal transaction,
#: one provider call, one settling transaction. Dovecot's UID MOVE costs about as much per
#: command as per message moved: 500 -> 2,500 a batch took a 10,000-message archive from
#: 1,381 to 2,573-2,665 msg/s (bench/cleanup.py, SQLite, quiet machine).
BATCH = 2500
#: A move to the account's archive folder (``provider.archive_folder()``, asked once).
ARCHIVE: Final = "\x00archive"
#: Errors a report keeps word for word.
MAX_ERRORS = 5
#: Why a change was not made, in the journal's words.
GONE = "not in {folder} any more"
NOTHING = "nothing to change"
NOT_STORED = "not in this account's mailbox"
#: Flags no client sets (the server's own).
_SERVER_FLAGS = frozenset({"\\Recent"})


@dataclass(frozen=True)
class Change:
    """One change to one stored message (store terms)."""

    message_pk: int
    #: the journal's words: "mark read", "archive", "label newsletter", "undo"
    op: str
    #: IMAP system flags and keywords ("\\Seen", "$inboxd_newsletter")
    add_flags: tuple[str, ...] = ()
    remove_flags: tuple[str, ...] = ()
    #: Gmail labels
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    #: a folder name, or ARCHIVE
    move_to: str | None = None
    #: only this location (folder, key), else every live location of the message
    location: tuple[str, str] | None = None
    #: the journal row this change puts back (an undo's)
    undoes: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The journal's ``change`` column."""
        return {
            "op": self.op,
            "add_flags": list(self.add_flags),
            "remove_flags": list(self.remove_flags),
            "add_labels": list(self.add_labels),
            "remove_labels": list(self.remove_labels),
            "move_to": self.move_to,
            "location": list(self.location) if self.location is not None else None,
            "undoes": self.undoes,
        }

    @classmethod
    def from_json(cls, message_pk: int, data: dict[str, Any]) -> Self:
        """Back from the journal's ``change`` column."""
        location = data.get("location")
        return cls(
            message_pk=message_pk,
            op=str(data.get("op", "")),
            add_flags=tuple(data.get("add_flags") or ()),
            remove_flags=tuple(data.get("remove_flags") or ()),
            add_labels=tuple(data.get("add_labels") or ()),
            remove_labels=tuple(data.get("remove_labels") or ()),
            move_to=data.get("move_to"),
            location=(str(location[0]), str(location[1])) if location else None,
            undoes=data.get("undoes"),
        )


@dataclass(frozen=True)
class Located:
    """A message where a change is about to act, with its marks as the server has them
    now (what a :data:`Recheck` judges)."""

    message_pk: int
    folder: str
    key: str
    uid: int | None
    flags: tuple[str, ...]
    #: Gmail labels; None where the server keeps none
    labels: tuple[str, ...] | None
    change: Change


#: Called per batch right before acting; returns message_pk -> why it must be skipped.
Recheck = Callable[[Connection, Sequence[Located]], dict[int, str]]


@dataclass
class ChangeReport:
    """What a job's changes came to, counted in journal rows (a message per location)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    #: reason -> rows
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    #: the first few failures' reasons
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (a job's result)."""
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "skipped_reasons": dict(self.skipped_reasons),
            "errors": list(self.errors),
        }


# -- the path ----------------------------------------------------------------------------


def read_only_reason(engine: Engine, settings: Settings, account: Account) -> str | None:
    """Why inboxd never changes this account (mbox), or None when it may (asked of its
    provider, which is not connected for this)."""
    provider = _provider(engine, settings, account)
    return None if provider.capabilities.mutations else _read_only(account)


def _read_only(account: Account) -> str:
    return f"{account.provider} accounts are read-only: inboxd never changes them"


def _provider(engine: Engine, settings: Settings, account: Account) -> MailProvider:
    """The account's provider, opened as the sync opens it (not connected yet)."""
    options = ProviderOptions(
        timeout=settings.imap_timeout_seconds,
        batch_messages=settings.sync_batch_messages,
        batch_bytes=settings.sync_batch_bytes,
    )
    return open_provider(account, Accounts(engine, settings), options)


def apply_changes(
    ctx: TaskContext,
    account: Account,
    changes: Iterable[Change],
    *,
    recheck: Recheck | None = None,
    step: str = Step.APPLYING,
    total: int | None = None,
) -> ChangeReport:
    """Apply ``changes`` to ``account``'s mailbox under the job ``ctx``, journaled before
    acting and the store updated to match; a resumed job first settles what an earlier
    attempt left planned and skips what it journaled. The job's report (all its rows)."""
    if total is None and isinstance(changes, Sized):
        total = len(changes)
    with _Run(ctx, account) as run:
        ctx.progress.step(step, total=total)
        run.resume()
        done_before = run.journaled_count()
        ctx.progress.update(0)
        size = ctx.settings.change_batch
        for batch in _batches(changes, size):
            fresh = run.fresh(batch)
            if fresh:
                run.apply(fresh, recheck)
            ctx.progress.update(advance=len(batch))
        ctx.log.info(
            "%d changes journaled (%d by earlier attempts)", run.journaled_count(), done_before
        )
    return report(ctx.engine, ctx.job_id)


def report(engine: Engine, job_id: str) -> ChangeReport:
    """A job's report, read from its journal."""
    cj = change_journal.c
    with reading(engine) as conn:
        counts = journal.counts(conn, job_id)
        reasons = conn.execute(
            select(cj.reason, cj.state).where(
                cj.job_id == job_id, cj.state.in_([JournalState.SKIPPED, JournalState.FAILED])
            )
        ).all()
    skipped = Counter(r or "" for r, s in reasons if s == JournalState.SKIPPED)
    errors = list(dict.fromkeys(r or "" for r, s in reasons if s == JournalState.FAILED))
    return ChangeReport(
        done=counts.get(JournalState.DONE, 0) + counts.get(JournalState.UNDONE, 0),
        skipped=counts.get(JournalState.SKIPPED, 0),
        failed=counts.get(JournalState.FAILED, 0),
        skipped_reasons=dict(skipped),
        errors=errors[:MAX_ERRORS],
    )


def undo(ctx: TaskContext, account: Account, job_id: str) -> ChangeReport:
    """Put back what job ``job_id`` did to ``account``: its done rows, newest first, as
    reverse changes applied (and journaled) under this job; each row put back becomes
    ``undone``."""
    with reading(ctx.engine) as conn:
        rows = [e for e in journal.done_entries(conn, job_id) if e.account_id == account.id]
        places = journal.live_places(conn, account.id, [e.message_pk for e in rows])
    where: dict[tuple[int, str], list[Place]] = defaultdict(list)
    for place in places:
        where[(place.message_pk, place.folder)].append(place)
    reverse = [reverse_change(e, where) for e in rows]
    return apply_changes(ctx, account, reverse, step=Step.UNDOING, total=len(reverse))


def reverse_change(entry: Entry, where: dict[tuple[int, str], list[Place]]) -> Change:
    """The change that puts ``entry`` back: to its folder, its flags and labels as before
    (the difference between ``after`` and ``before``, so what changed since stays)."""
    before, after = entry.before, entry.after or entry.before
    folder = str(after.get("folder") or before["folder"])
    key = after.get("key")
    found = [p.key for p in where.get((entry.message_pk, folder), [])]
    if key not in found and found:
        # Not at the key it was left at (moved away and back since, or moved with no new
        # key named): where the message is in that folder now.
        key = found[0]
    was, now = set(before.get("flags") or ()), set(after.get("flags") or ())
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    if before.get("labels") is not None and after.get("labels") is not None:
        old, new = set(before["labels"]), set(after["labels"])
        add_labels, remove_labels = tuple(sorted(old - new)), tuple(sorted(new - old))
    return Change(
        message_pk=entry.message_pk,
        op="undo",
        add_flags=tuple(sorted(was - now - _SERVER_FLAGS)),
        remove_flags=tuple(sorted(now - was - _SERVER_FLAGS)),
        add_labels=add_labels,
        remove_labels=remove_labels,
        move_to=before["folder"] if before["folder"] != folder else None,
        location=(folder, str(key or "")),
        undoes=entry.id,
    )


def _batches(items: Iterable[Change], size: int) -> Iterator[list[Change]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# -- one run -----------------------------------------------------------------------------


@dataclass
class _Target:
    """A change at one location, with what the server holds there now."""

    change: Change
    place: Place
    marks: Marks


@dataclass
class _Acting:
    """A planned row and the mutation that carries it out."""

    entry_id: int
    message_pk: int
    change: Change
    before: dict[str, Any]
    mutation: Mutation


class _Run:
    """One attempt of a job's changes: its provider, what its journal holds."""

    def __init__(self, ctx: TaskContext, account: Account) -> None:
        self.ctx = ctx
        self.account = account
        self.provider = _provider(ctx.engine, ctx.settings, account)
        if not self.provider.capabilities.mutations:
            raise MutationsNotSupported(_read_only(account))
        self._archive: str | None = None
        self._messages: set[int] = set()
        self._places: set[tuple[int, str | None, str | None]] = set()
        with reading(ctx.engine) as conn:
            for pk, folder, key in journal.journaled(conn, ctx.job_id):
                self._note(pk, folder, key)

    def __enter__(self) -> Self:
        self.provider.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.provider.close()

    def _note(self, pk: int, folder: str | None, key: str | None) -> None:
        self._messages.add(pk)
        self._places.add((pk, folder, key))

    def journaled(self, change: Change) -> bool:
        """This job already has a row for this change (from an earlier attempt, or this
        message twice in one run)."""
        if change.location is not None:
            return (change.message_pk, *change.location) in self._places
        return change.message_pk in self._messages

    def fresh(self, batch: list[Change]) -> list[Change]:
        """The batch's changes not journaled yet, each message (or location) once."""
        seen: set[tuple[int, str, str] | int] = set()
        out = []
        for change in batch:
            mark = (change.message_pk, *change.location) if change.location else change.message_pk
            if mark not in seen and not self.journaled(change):
                seen.add(mark)
                out.append(change)
        return out

    def journaled_count(self) -> int:
        return len(self._places)

    def archive(self) -> str:
        if self._archive is None:
            self._archive = self.provider.archive_folder()
        return self._archive

    # -- resuming ------------------------------------------------------------------------

    def resume(self) -> None:
        """Settle the rows an earlier attempt left planned, asking the server."""
        with reading(self.ctx.engine) as conn:
            left = journal.planned(conn, self.ctx.job_id)
            ids = journal.message_ids(conn, [e.message_pk for e in left])
        if not left:
            return
        self.ctx.log.info(
            "resuming: %d changes were planned when the last attempt stopped", len(left)
        )
        by_folder: dict[str, list[Entry]] = defaultdict(list)
        for entry in left:
            by_folder[entry.before["folder"]].append(entry)
        again: list[_Acting] = []
        outcomes: list[Outcome] = []
        landings: list[Landing] = []
        for folder, entries in by_folder.items():
            validity = entries[0].before.get("validity")
            keys = [e.before["key"] for e in entries]
            now = self.provider.current_marks(folder, keys, validity=validity)
            for entry in entries:
                change = Change.from_json(entry.message_pk, entry.change)
                if entry.before["key"] in now:
                    # Not moved yet: apply it again (adding a flag it has changes nothing).
                    mutation = _mutation(change, entry.before, ids.get(entry.message_pk))
                    again.append(
                        _Acting(entry.id, entry.message_pk, change, entry.before, mutation)
                    )
                    continue
                found = self._found_moved(change, ids.get(entry.message_pk))
                if found is None:
                    state = JournalState.FAILED if change.move_to else JournalState.SKIPPED
                    reason = GONE.format(folder=folder)
                    if change.move_to:
                        reason += f" and not found in {change.move_to}"
                    outcomes.append(Outcome(entry_id=entry.id, state=state, reason=reason))
                    continue
                key, marks = found
                after = _state(str(change.move_to), key, entry.before, marks)
                outcomes.append(_done(entry.id, change, after))
                landings.append(self._landing(entry.message_pk, entry.before, after))
        settled = self._act(again)
        self._settle(outcomes + settled[0], landings + settled[1])

    def _found_moved(self, change: Change, message_id: str | None) -> tuple[str, Marks] | None:
        """Where a planned move's message is in its target now, if it got there."""
        if not change.move_to or not message_id:
            return None
        keys = self.provider.locate(change.move_to, _header_id(message_id))
        if not keys:
            return None
        with reading(self.ctx.engine) as conn:
            known = {
                p.key
                for p in journal.live_places(conn, self.account.id, [change.message_pk])
                if p.folder == change.move_to
            }
        fresh = [k for k in keys if k not in known] or keys
        key = fresh[-1]
        marks = self.provider.current_marks(change.move_to, [key]).get(key)
        return (key, marks or Marks(()))

    # -- a batch -------------------------------------------------------------------------

    def apply(self, batch: list[Change], recheck: Recheck | None) -> None:
        """Journal, act on and settle one batch."""
        self.ctx.progress.check_cancelled()
        skipped: list[NewEntry] = []
        wanted = self._where([self._resolved(c) for c in batch], skipped)
        targets, gone = self._ask_server(wanted)
        skipped.extend(gone)
        if recheck is not None and targets:
            located = [_located(t) for t in targets]
            with reading(self.ctx.engine) as conn:
                why = recheck(conn, located)
            kept = []
            for t in targets:
                if t.change.message_pk in why:
                    skipped.append(_skip(t.change, _before(t), why[t.change.message_pk]))
                else:
                    kept.append(t)
            targets = kept
        acting_targets = []
        undone_now: list[int] = []
        for t in targets:
            if _changes_nothing(t):
                skipped.append(_skip(t.change, _before(t), NOTHING))
                if t.change.undoes is not None:
                    # Already as it was before: the row is put back all the same.
                    undone_now.append(t.change.undoes)
            else:
                acting_targets.append(t)
        planned = [
            NewEntry(
                message_pk=t.change.message_pk,
                op=t.change.op,
                change=t.change.to_json(),
                before=_before(t),
            )
            for t in acting_targets
        ]
        # Journaled before the server is touched: a crash after this leaves a record.
        with writing(self.ctx.engine) as conn:
            journal.write(conn, self.ctx.job_id, self.account.id, skipped)
            ids = journal.write(conn, self.ctx.job_id, self.account.id, planned)
            journal.mark_undone(conn, undone_now, self.ctx.job_id)
        for entry in skipped:
            self._note(entry.message_pk, entry.before.get("folder"), entry.before.get("key"))
        for t in acting_targets:
            self._note(t.change.message_pk, t.place.folder, t.place.key)
        acting = [
            _Acting(
                entry_id,
                t.change.message_pk,
                t.change,
                _before(t),
                _mutation(t.change, _before(t), t.place.message_id),
            )
            for entry_id, t in zip(ids, acting_targets, strict=True)
        ]
        outcomes, landings = self._act(acting)
        self._settle(outcomes, landings)

    def _where(self, changes: list[Change], skipped: list[NewEntry]) -> list[tuple[Change, Place]]:
        """Each change at each location it acts on (as the store knows them); a change
        with none is skipped."""
        with reading(self.ctx.engine) as conn:
            places = journal.live_places(conn, self.account.id, [c.message_pk for c in changes])
        at: dict[int, list[Place]] = defaultdict(list)
        for place in places:
            at[place.message_pk].append(place)
        wanted: list[tuple[Change, Place]] = []
        for change in changes:
            here = at.get(change.message_pk, [])
            if change.location is not None:
                here = [p for p in here if (p.folder, p.key) == change.location]
            elif _only_moves(change):
                # A copy already in the target (Gmail's All Mail beside the INBOX) needs
                # nothing; it is journaled only when it is the message's one location.
                here = [p for p in here if p.folder != change.move_to] or here
            if not here:
                folder, key = change.location or (None, None)
                reason = GONE.format(folder=folder) if folder else NOT_STORED
                skipped.append(_skip(change, {"folder": folder, "key": key}, reason))
            wanted.extend((change, p) for p in here)
        return wanted

    def _resolved(self, change: Change) -> Change:
        if change.move_to != ARCHIVE:
            return change
        return Change(
            message_pk=change.message_pk,
            op=change.op,
            add_flags=change.add_flags,
            remove_flags=change.remove_flags,
            add_labels=change.add_labels,
            remove_labels=change.remove_labels,
            move_to=self.archive(),
            location=change.location,
            undoes=change.undoes,
        )

    def _ask_server(
        self, wanted: list[tuple[Change, Place]]
    ) -> tuple[list[_Target], list[NewEntry]]:
        """Each location's marks now; the locations gone from the server are skipped."""
        by_folder: dict[str, list[tuple[Change, Place]]] = defaultdict(list)
        for change, place in wanted:
            by_folder[place.folder].append((change, place))
        targets: list[_Target] = []
        gone: list[NewEntry] = []
        for folder, items in by_folder.items():
            keys = sorted({p.key for _, p in items})
            now = self.provider.current_marks(folder, keys, validity=items[0][1].validity)
            for change, place in items:
                marks = now.get(place.key)
                if marks is None:
                    before = {
                        "folder": place.folder,
                        "key": place.key,
                        "uid": place.uid,
                        "validity": place.validity,
                    }
                    gone.append(_skip(change, before, GONE.format(folder=folder)))
                else:
                    targets.append(_Target(change, place, marks))
        return targets, gone

    def _act(self, acting: list[_Acting]) -> tuple[list[Outcome], list[Landing]]:
        """Carry out the planned rows on the server (one call for the batch)."""
        if not acting:
            return [], []
        try:
            applied = self.provider.apply([a.mutation for a in acting])
        except MutationRefused as exc:
            # Nothing of the batch was applied: each row says why, and the job goes on.
            reason = exc.message
            return [
                Outcome(entry_id=a.entry_id, state=JournalState.FAILED, reason=reason)
                for a in acting
            ], []
        if len(applied) != len(acting):
            raise InvalidParams(f"the provider answered {len(applied)} of {len(acting)} mutations")
        outcomes: list[Outcome] = []
        landings: list[Landing] = []
        for a, result in zip(acting, applied, strict=True):
            if not result.ok:
                outcomes.append(
                    Outcome(entry_id=a.entry_id, state=JournalState.FAILED, reason=result.error)
                )
                continue
            after = _after(a, result)
            outcomes.append(_done(a.entry_id, a.change, after))
            landings.append(self._landing(a.message_pk, a.before, after))
        return outcomes, landings

    def _landing(self, pk: int, before: dict[str, Any], after: dict[str, Any]) -> Landing:
        return Landing(
            account_id=self.account.id,
            message_pk=pk,
            old_folder=before["folder"],
            old_key=before["key"],
            old_uid=before.get("uid"),
            folder=after["folder"],
            key=after.get("key"),
            flags=tuple(after.get("flags") or ()),
            labels=tuple(after["labels"]) if after.get("labels") is not None else None,
        )

    def _settle(self, outcomes: list[Outcome], landings: list[Landing]) -> None:
        if not outcomes:
            return
        with writing(self.ctx.engine) as conn:
            journal.settle(conn, self.ctx.job_id, outcomes)
            journal.record(conn, landings)


# -- small pieces ------------------------------------------------------------------------


def _located(t: _Target) -> Located:
    return Located(
        message_pk=t.change.message_pk,
        folder=t.place.folder,
        key=t.place.key,
        uid=t.place.uid,
        flags=tuple(t.marks.flags),
        labels=tuple(t.marks.labels) if t.marks.labels is not None else None,
        change=t.change,
    )


def _before(t: _Target) -> dict[str, Any]:
    return {
        "folder": t.place.folder,
        "key": t.place.key,
        "uid": t.place.uid,
        "flags": sorted(t.marks.flags),
        "labels": list(t.marks.labels) if t.marks.labels is not None else None,
        "validity": t.place.validity,
    }


def _skip(change: Change, before: dict[str, Any], reason: str) -> NewEntry:
    return NewEntry(
        message_pk=change.message_pk,
        op=change.op,
        change=change.to_json(),
        before=before,
        state=JournalState.SKIPPED,
        reason=reason,
    )


def _done(entry_id: int, change: Change, after: dict[str, Any]) -> Outcome:
    return Outcome(entry_id=entry_id, state=JournalState.DONE, after=after, undoes=change.undoes)


def _only_moves(change: Change) -> bool:
    return change.move_to is not None and not (
        change.add_flags or change.remove_flags or change.add_labels or change.remove_labels
    )


def _changes_nothing(t: _Target) -> bool:
    change, marks = t.change, t.marks
    if change.move_to is not None and change.move_to != t.place.folder:
        return False
    mutation = _mutation(change, _before(t), None)
    if changed_flags(marks.flags, mutation) != tuple(marks.flags):
        return False
    if change.add_labels or change.remove_labels:
        if marks.labels is None:
            return False  # the provider says why it cannot
        return changed_labels(marks.labels, mutation) == tuple(marks.labels)
    return True


def _header_id(message_id: str) -> str:
    """A stored Message-ID (kept without its angle brackets) as its header has it."""
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _mutation(change: Change, before: dict[str, Any], message_id: str | None) -> Mutation:
    folder = str(before["folder"])
    return Mutation(
        folder=folder,
        key=str(before["key"]),
        add_flags=change.add_flags,
        remove_flags=change.remove_flags,
        add_labels=change.add_labels,
        remove_labels=change.remove_labels,
        move_to=change.move_to if change.move_to != folder else None,
        message_id=_header_id(message_id) if message_id else None,
        validity=before.get("validity"),
    )


def _state(folder: str, key: str | None, before: dict[str, Any], marks: Marks) -> dict[str, Any]:
    return {
        "folder": folder,
        "key": key,
        "uid": journal.uid_of(before.get("uid"), key),
        "flags": sorted(marks.flags),
        "labels": list(marks.labels) if marks.labels is not None else before.get("labels"),
        # a key in a folder we moved to: its UIDVALIDITY is the sync's to learn
        "validity": before.get("validity") if folder == before.get("folder") else None,
    }


def _after(a: _Acting, result: Applied) -> dict[str, Any]:
    marks = result.marks
    if marks is None:
        labels = a.before.get("labels")
        marks = Marks(
            changed_flags(a.before.get("flags") or (), a.mutation),
            changed_labels(labels, a.mutation) if labels is not None else None,
        )
    return _state(result.folder, result.new_key, a.before, marks)


# -- the jobs ----------------------------------------------------------------------------

MarkName = Literal["read", "unread", "flagged", "unflagged"]


class ChangeParams(BaseModel, extra="forbid"):
    """Parameters of ``change`` (the account is the job's account_id): messages and what
    to do to each (a mark, flags to add or remove, a folder to move to)."""

    message_ids: list[int] = Field(min_length=1, max_length=10_000)
    mark: MarkName | None = None
    move_to: str | None = Field(default=None, min_length=1, max_length=500)
    #: move to the account's archive folder
    archive: bool = False
    add_flags: list[str] = Field(default_factory=list, max_length=20)
    remove_flags: list[str] = Field(default_factory=list, max_length=20)


class UndoParams(BaseModel, extra="forbid"):
    """Parameters of ``undo``: the job whose changes to put back."""

    job_id: str = Field(min_length=1, max_length=36)


def undo_dedupe_key(job_id: str) -> str:
    """At most one active undo of a job."""
    return f"undo:{job_id}"


_MARKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    MarkAction.READ: (("\\Seen",), ()),
    MarkAction.UNREAD: ((), ("\\Seen",)),
    MarkAction.FLAGGED: (("\\Flagged",), ()),
    MarkAction.UNFLAGGED: ((), ("\\Flagged",)),
}


def mark_change(message_pk: int, params: ChangeParams) -> Change:
    """The change a ``change`` job makes to one of its messages."""
    add, remove = list(params.add_flags), list(params.remove_flags)
    words = []
    if params.mark is not None:
        plus, minus = _MARKS[params.mark]
        add += plus
        remove += minus
        words.append(f"mark {params.mark}")
    move_to = ARCHIVE if params.archive else params.move_to
    if params.archive:
        words.append("archive")
    elif params.move_to is not None:
        words.append(f"move to {params.move_to}")
    if params.add_flags or params.remove_flags:
        words.append("flags")
    return Change(
        message_pk=message_pk,
        op=", ".join(words)[:40] or "change",
        add_flags=tuple(dict.fromkeys(add)),
        remove_flags=tuple(dict.fromkeys(remove)),
        move_to=move_to,
    )


def _job_account(ctx: TaskContext) -> Account:
    if ctx.job.account_id is None:
        raise InvalidParams(f"a {ctx.job.kind} job needs an account_id")
    return Accounts(ctx.engine, ctx.settings).get(ctx.job.account_id)


@task("change", params=ChangeParams)
def change_task(ctx: TaskContext, params: ChangeParams) -> dict[str, Any]:
    """Change messages on the server (marks, flags, a move), journaled and undoable."""
    if params.archive and params.move_to is not None:
        raise InvalidParams("a change archives or moves to a folder, not both")
    if not (
        params.mark or params.move_to or params.archive or params.add_flags or params.remove_flags
    ):
        raise InvalidParams("a change needs a mark, flags or a folder to move to")
    account = _job_account(ctx)
    changes = [mark_change(pk, params) for pk in dict.fromkeys(params.message_ids)]
    done = apply_changes(ctx, account, changes)
    return {"account_id": account.id, **done.to_dict()}


@task("undo", params=UndoParams)
def undo_task(ctx: TaskContext, params: UndoParams) -> dict[str, Any]:
    """Put back what a change job did (itself journaled)."""
    account = _job_account(ctx)
    done = undo(ctx, account, params.job_id)
    return {"account_id": account.id, "undoes": params.job_id, **done.to_dict()}
