"""The ``label`` job: write each triaged message's category back to the server, as an IMAP
keyword (``$inboxd_newsletter``) or, where messages carry labels (Gmail), as a label
(``inboxd/Newsletter``), so other mail clients see it. Off unless the account's
``labels_enabled`` is on.

What the server has is what the store says: a message's ``flags`` (or ``labels``), which
sync and :func:`inboxd.pipeline.changes.apply_changes` both keep up to date. A message needs
work when its category's mark is missing or another mark of ours sits beside it; one SQL
scan finds those (none, most of the time). Every change goes through ``apply_changes``:
journaled, batched over UID sets, resumable, undoable (``inboxd undo JOB_ID``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Engine, Text, case, cast, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from inboxd.db.engine import reading
from inboxd.db.tables import accounts
from inboxd.db.tables import messages as m
from inboxd.errors import InboxdError
from inboxd.jobs.model import Job
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.queue import Queue
from inboxd.jobs.registry import task
from inboxd.providers.base import ProviderOptions
from inboxd.providers.registry import open_provider
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import Category, Step

if TYPE_CHECKING:
    from inboxd.pipeline.changes import Change

#: The prefix of inboxd's IMAP keywords and of its Gmail labels: marks with it are ours.
KEYWORD_PREFIX: Final = "$inboxd_"
LABEL_PREFIX: Final = "inboxd/"
#: Messages read per scan of the store (the changes are batched again by apply_changes).
SCAN_ROWS = 2000
#: Passes over the account at most: a pass after the first takes what triage decided
#: while this job ran (its enqueue found this job active, so queued none).
MAX_PASSES = 3


class LabelParams(BaseModel, extra="forbid"):
    """Parameters of ``label``: the account whose categories are written back."""

    account_id: str = Field(min_length=1, max_length=36)


def label_dedupe_key(account_id: str) -> str:
    """At most one active label job per account."""
    return f"label:{account_id}"


def keyword(category: str) -> str:
    """The IMAP keyword of a category: ``$inboxd_action_required``."""
    return f"{KEYWORD_PREFIX}{category}"


def gmail_label(category: str) -> str:
    """The Gmail label of a category: ``inboxd/Action required``."""
    return f"{LABEL_PREFIX}{category.replace('_', ' ').capitalize()}"


def enqueue_label(queue: Queue, account: Account) -> Job:
    """Queue a label job for ``account`` (or give back the one already active)."""
    return queue.enqueue(
        "label",
        {"account_id": account.id},
        owner=account.owner,
        account_id=account.id,
        dedupe_key=label_dedupe_key(account.id),
    )


def after_triage(ctx: TaskContext, account_id: str, *, changed: bool) -> None:
    """The triage job's last word: when it decided something and the account's labels are
    on (read now: they may have been turned on while it ran), queue a label job."""
    if not changed:
        return
    try:
        with reading(ctx.engine) as conn:
            row = conn.execute(
                select(accounts.c.owner, accounts.c.labels_enabled).where(
                    accounts.c.id == account_id
                )
            ).first()
        if row is None or not row.labels_enabled:
            return
        Queue(ctx.engine, ctx.settings).enqueue(
            "label",
            {"account_id": account_id},
            owner=row.owner,
            account_id=account_id,
            dedupe_key=label_dedupe_key(account_id),
        )
    except (InboxdError, SQLAlchemyError) as exc:
        # Triage is stored; the next triage (or turning labels on again) queues it.
        ctx.log.warning("could not queue the label job: %s", exc)


@task("label", params=LabelParams)
def label(ctx: TaskContext, params: LabelParams) -> dict[str, Any]:
    """Write triage categories back as IMAP keywords or Gmail labels (journaled)."""
    from inboxd.pipeline.changes import apply_changes

    account = Accounts(ctx.engine, ctx.settings).get(params.account_id)
    if not account.labels_enabled:
        return {"account_id": account.id, "labels": False, "done": 0}
    gmail = _carries_labels(ctx, account)
    scan = Scan(ctx.engine, account.id, gmail=gmail)
    report: dict[str, Any] = {"done": 0, "skipped": 0, "failed": 0}
    for _ in range(MAX_PASSES):
        changes = scan.changes()
        first = next(changes, None)
        if first is None:
            break  # nothing to write: no connection to the server either
        # Each report is the job's whole journal so far (earlier passes and attempts too).
        report = apply_changes(
            ctx, account, chain([first], changes), step=Step.LABELING, total=scan.count()
        ).to_dict()
    return {"account_id": account.id, "labels": True, "gmail": gmail} | report


def _carries_labels(ctx: TaskContext, account: Account) -> bool:
    """Whether the account's messages carry labels (Gmail). An IMAP provider learns it
    only once connected; the store knows already: mail synced from Gmail has X-GM-MSGIDs."""
    options = ProviderOptions(timeout=ctx.settings.imap_timeout_seconds)
    provider = open_provider(account, Accounts(ctx.engine, ctx.settings), options)
    if provider.capabilities.labels:
        return True
    with reading(ctx.engine) as conn:
        found = conn.execute(
            select(m.c.id).where(m.c.account_id == account.id, m.c.gm_msgid.is_not(None)).limit(1)
        ).first()
    return found is not None


class Scan:
    """The messages of one account whose mark on the server is not their category's,
    read a page at a time; each message is handed out once per job."""

    def __init__(self, engine: Engine, account_id: str, *, gmail: bool) -> None:
        self.engine = engine
        self.account_id = account_id
        self.gmail = gmail
        self.handed: set[int] = set()

    def _where(self, category: str | None = None) -> list[ColumnElement[bool]]:
        """A superset of what needs work (checked exactly in Python): our mark missing, or
        two marks of ours; of one category, or of all."""
        column = m.c.labels if self.gmail else m.c.flags
        mark = gmail_label if self.gmail else keyword
        prefix = LABEL_PREFIX if self.gmail else KEYWORD_PREFIX
        wanted: ColumnElement[Any] | str
        which: ColumnElement[bool]
        if category is None:
            wanted = case({str(c): f'"{mark(c)}"' for c in Category}, value=m.c.category)
            which = m.c.category.is_not(None)
        else:
            wanted, which = f'"{mark(category)}"', m.c.category == category
        text = cast(column, Text)
        find = func.instr if self.engine.dialect.name == "sqlite" else func.strpos
        return [
            m.c.account_id == self.account_id,
            which,
            m.c.expunged_at.is_(None),
            or_(find(text, wanted) == 0, text.like(f"%{prefix}%{prefix}%")),
        ]

    def count(self) -> int:
        """About how many messages need a change now (for progress: the SQL's superset)."""
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.count()).where(*self._where())).scalar_one())

    def changes(self) -> Iterator[Change]:
        """The changes that put each message's category mark on the server, a category at
        a time (a batch then asks the server for few distinct changes: one command each),
        in id order within it; each message once per job."""
        for change in self._pending():
            self.handed.add(change.message_pk)
            yield change

    def _pending(self) -> Iterator[Change]:
        for category in Category:
            after = 0
            while True:
                with reading(self.engine) as conn:
                    rows = conn.execute(
                        select(m.c.id, m.c.flags, m.c.labels)
                        .where(*self._where(category), m.c.id > after)
                        .order_by(m.c.id)
                        .limit(SCAN_ROWS)
                    ).all()
                if not rows:
                    break
                after = int(rows[-1].id)
                for row in rows:
                    pk = int(row.id)
                    if pk in self.handed:
                        continue
                    marks = row.labels if self.gmail else row.flags
                    change = self.change_for(pk, category, marks)
                    if change is not None:
                        yield change

    def change_for(self, pk: int, category: str, marks: Sequence[str] | None) -> Change | None:
        """The change that leaves exactly ``category``'s mark of ours on a message that has
        ``marks`` (None: it has it already)."""
        from inboxd.pipeline.changes import Change

        prefix = LABEL_PREFIX if self.gmail else KEYWORD_PREFIX
        want = gmail_label(category) if self.gmail else keyword(category)
        have = [x for x in marks or () if isinstance(x, str)]
        # Keywords are case-insensitive (RFC 3501); Gmail's labels are not.
        fold = (lambda s: s) if self.gmail else str.lower
        extra = tuple(x for x in have if fold(x).startswith(fold(prefix)) and fold(x) != fold(want))
        present = any(fold(x) == fold(want) for x in have)
        if present and not extra:
            return None
        add = () if present else (want,)
        op = f"label {category}"
        if self.gmail:
            return Change(message_pk=pk, op=op, add_labels=add, remove_labels=extra)
        return Change(message_pk=pk, op=op, add_flags=add, remove_flags=extra)
