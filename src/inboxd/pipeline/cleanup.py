"""The ``cleanup`` job: a clean-up a person approves before anything changes.

Run 1 (no approval yet) is read-only: it selects the account's mail by triage category,
age and a search query, keeps every message a person would not want touched as
*protected* with why (mail a person sent to the user, mail naming the user, flagged mail,
threads the user wrote in, mail from people the user wrote to, and anything a check cannot
evaluate), stores the proposal and parks the job (:class:`AwaitApproval`). Run 2 comes
after a person approved (``cleanups.approved_at`` is set): the approved candidates go
through the one journaled path (:func:`inboxd.pipeline.changes.apply_changes`), each
re-checked on the server right before acting; an unsubscribe posts RFC 8058 one-click
requests through the guarded HTTP client instead. Each item's outcome is recorded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import ColumnElement, Connection, Engine, exists, select, true

from inboxd.db.engine import reading, writing
from inboxd.db.tables import folders, locations
from inboxd.db.tables import messages as m
from inboxd.db.types import utcnow
from inboxd.errors import InvalidParams, InvalidQuery
from inboxd.jobs.progress import AwaitApproval, TaskContext
from inboxd.jobs.registry import task
from inboxd.pipeline.triage import sent_folder_ids, user_context
from inboxd.store import cleanups as store
from inboxd.store.accounts import Account, Accounts
from inboxd.store.search import message_filter, parse_query
from inboxd.triage.types import Context
from inboxd.vocabulary import BULK_CATEGORIES, Category, CleanupAction, ItemRole, Step

if TYPE_CHECKING:
    from inboxd.pipeline.changes import Change, Located

__all__ = [
    "DEFAULT_CATEGORIES",
    "CleanupParams",
    "Protection",
    "cleanup",
    "criteria_of",
    "discover",
]

#: What a clean-up looks for when it is given neither categories nor a query.
DEFAULT_CATEGORIES = (Category.NEWSLETTER, Category.PROMOTION, Category.NOTIFICATION)
#: Rows read per round during discovery.
_PAGE = 5000
#: Folders a clean-up never takes mail from (by special use, else by name).
_NEVER_USES = frozenset({"\\sent", "\\drafts", "\\trash", "\\junk"})
_NEVER_NAMES = frozenset({"drafts", "trash", "deleted items", "junk", "spam", "bin"})
#: ... and, for an archive, the archive itself.
_ARCHIVE_USES = frozenset({"\\archive", "\\all"})
_ARCHIVE_NAMES = frozenset({"archive", "archives", "all mail"})
#: Precedence values that say "bulk" (not a person's mail).
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
#: Triage's own reasons that mean a person wrote to the user, or the mail names them.
_DIRECT_REASONS = (
    "addressed to you",
    "a person wrote to few recipients",
    "a person wrote to you",  # priority's word for a decision triage marked direct
    "a person wrote to you: never filed as bulk",
)
_NAMING_REASONS = ("greets you by name", "the subject names your address")
_AGE = re.compile(r"\A\d{1,5}[dwmy]\Z")
_ONE_CLICK = re.compile(r"list-unsubscribe\s*=\s*one-click", re.IGNORECASE)
_LINKS = re.compile(r"<([^<>]+)>")
FLAGGED, ANSWERED, SEEN = "\\Flagged", "\\Answered", "\\Seen"
#: Gmail keeps stars as a label too.
_STARRED_LABELS = frozenset({"\\Starred", "\\starred"})


class CleanupParams(BaseModel, extra="forbid"):
    """Parameters of ``cleanup``: the account, what to look for, and what to do."""

    account_id: str = Field(min_length=1, max_length=36)
    # Names, not enums: params are validated strictly, as JSON (where an enum is a string).
    action: str = Field(default=CleanupAction.ARCHIVE.value, description="archive, mark-read, …")
    categories: list[str] = Field(default_factory=list, max_length=len(Category))
    older_than: str | None = Field(default=None, max_length=8, description="7d, 2w, 3m or 1y")
    query: str | None = Field(default=None, max_length=2000)

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        try:
            return CleanupAction(value).value
        except ValueError:
            known = ", ".join(a.value for a in CleanupAction)
            raise ValueError(f"action must be one of {known}") from None

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        try:
            return list(dict.fromkeys(Category(c).value for c in value))
        except ValueError:
            known = ", ".join(c.value for c in Category)
            raise ValueError(f"categories must be of {known}") from None

    @property
    def cleanup_action(self) -> CleanupAction:
        """The action as the vocabulary names it."""
        return CleanupAction(self.action)

    @field_validator("older_than")
    @classmethod
    def _age(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _AGE.match(value.strip().lower()):
            raise ValueError("older_than must be an age such as 7d, 2w, 3m or 1y")
        return value.strip().lower()

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None


def criteria_of(params: CleanupParams) -> dict[str, Any]:
    """What the clean-up looks for, as shown to people (defaults filled in)."""
    categories = list(params.categories)
    if not categories and params.query is None:
        categories = list(DEFAULT_CATEGORIES)
    return {
        "categories": [str(c) for c in categories],
        "older_than": params.older_than,
        "query": params.query,
    }


@task("cleanup", params=CleanupParams)
def cleanup(ctx: TaskContext, params: CleanupParams) -> dict[str, Any]:
    """Propose a clean-up of an account's mail, then, once a person approved, carry it out."""
    account = Accounts(ctx.engine, ctx.settings).get(params.account_id)
    if ctx.job.account_id not in (None, account.id):
        raise InvalidParams("the job's account and its params' account_id differ")
    job_id = ctx.job.id
    with writing(ctx.engine) as conn:
        store.create(
            conn,
            job_id=job_id,
            account_id=account.id,
            owner=ctx.job.owner if ctx.job.owner is not None else account.owner,
            action=params.action,
            criteria=criteria_of(params),
        )
        found = store.get(conn, job_id, owner=None, any_owner=True)
    if found.approved_at is None:
        # Run again without a clean-up approval (a generic job approval, say), the stored
        # proposal stands and still waits for a person's answer to it.
        summary = discover(ctx, account, params) if found.proposed_at is None else found.summary
        raise AwaitApproval(result=summary)
    return execute(ctx, account, found)


# -- discovery ----------------------------------------------------------------------------------


def _folder_ids(
    conn: Connection, account_id: str, action: CleanupAction
) -> tuple[list[int], list[int]]:
    """The folders a clean-up may take mail from, and those it never does."""
    sent = set(sent_folder_ids(conn, account_id))
    uses, names = set(_NEVER_USES), set(_NEVER_NAMES)
    if action == CleanupAction.ARCHIVE:
        uses |= _ARCHIVE_USES
        names |= _ARCHIVE_NAMES
    rows = conn.execute(
        select(folders.c.id, folders.c.name, folders.c.special_use, folders.c.delimiter).where(
            folders.c.account_id == account_id, folders.c.gone_at.is_(None)
        )
    ).all()
    allowed: list[int] = []
    never: list[int] = []
    for pk, name, special, delimiter in rows:
        leaf = name
        for sep in {delimiter or "/", "/", "."}:
            leaf = leaf.rsplit(sep, 1)[-1]
        if int(pk) in sent or (special or "").lower() in uses or leaf.lower() in names:
            never.append(int(pk))
        else:
            allowed.append(int(pk))
    return allowed, never


def _selection(
    engine: Engine, params: CleanupParams, criteria: dict[str, Any]
) -> ColumnElement[bool]:
    """The criteria as one condition over ``messages`` (the search language's compiler for
    the age and the query, as triage rules use it)."""
    condition: ColumnElement[bool] = true()
    if criteria["categories"]:
        condition = condition & m.c.category.in_(criteria["categories"])
    now = utcnow()
    try:
        if params.older_than:
            age = parse_query(f"older_than:{params.older_than}")
            condition = condition & message_filter(age, dialect=engine.dialect.name, now=now)
        if params.query:
            query = parse_query(params.query)
            condition = condition & message_filter(query, dialect=engine.dialect.name, now=now)
    except InvalidQuery as exc:
        raise InvalidParams(f"query: {exc.message}") from None
    if params.cleanup_action == CleanupAction.UNSUBSCRIBE:
        condition = condition & m.c.list_unsubscribe.is_not(None)
    return condition


_COLUMNS = (
    m.c.id,
    m.c.from_addr,
    m.c.to_addrs,
    m.c.cc_addrs,
    m.c.subject,
    m.c.snippet,
    m.c.date,
    m.c.sort_date,
    m.c.flags,
    m.c.labels,
    m.c.thread_id,
    m.c.list_id,
    m.c.list_unsubscribe,
    m.c.list_unsubscribe_post,
    m.c.precedence,
    m.c.category,
    m.c.reasons,
    m.c.triaged_at,
)


@dataclass(frozen=True)
class Protection:
    """The checks that keep a message out of a clean-up, for one account's user."""

    context: Context
    #: the user's display name and addresses, as searched for in subjects and snippets
    naming: re.Pattern[str] | None

    @classmethod
    def of(cls, conn: Connection, account: Account) -> Protection:
        """The checks for ``account``'s user as the store knows them now."""
        context = user_context(conn, account)
        words = [a for a in context.addresses if a]
        if context.name and len(context.name.strip()) >= 3 and " " in context.name.strip():
            words.append(context.name.strip())
        naming = (
            re.compile(
                r"(?<![\w.@-])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w@-])",
                re.IGNORECASE,
            )
            if words
            else None
        )
        return cls(context, naming)

    def why(self, row: Any) -> list[str]:
        """Why this message must not be touched (empty: it may be a candidate)."""
        return [
            *self._marks(row),
            *self._people(row),
            *self._addressed(row),
            *self._named(row),
        ]

    def _marks(self, row: Any) -> list[str]:
        why: list[str] = []
        flags = {str(f) for f in (row.flags or ())}
        labels = {str(x) for x in (row.labels or ())}
        if FLAGGED in flags or labels & _STARRED_LABELS:
            why.append("flagged (starred)")
        if ANSWERED in flags:
            why.append("you replied to it")
        if row.thread_id is None:
            why.append("could not check the thread: not indexed yet")
        elif int(row.thread_id) in self.context.replied_threads:
            why.append("a thread you wrote in")
        return why

    def _people(self, row: Any) -> list[str]:
        sender = (row.from_addr or "").strip().lower()
        if not sender:
            return ["could not check the sender: no From address"]
        if sender in self.context.addresses:
            return ["sent by you"]
        if sender in self.context.correspondents:
            return [f"from someone you wrote to ({sender})"]
        return []

    def _addressed(self, row: Any) -> list[str]:
        ctx = self.context
        why: list[str] = []
        bulk = bool(
            row.list_id
            or row.list_unsubscribe
            or (row.precedence or "").strip().lower() in _BULK_PRECEDENCE
            or row.category in BULK_CATEGORIES
        )
        recipients = {
            a.strip().lower()
            for a in (*(row.to_addrs or ()), *(row.cc_addrs or ()))
            if isinstance(a, str)
        }
        if not bulk and not ctx.addresses:
            why.append("could not check whether it was sent to you: your addresses are unknown")
        elif not bulk and recipients & ctx.addresses:
            why.append("sent directly to you")
        reasons = {str(r) for r in (row.reasons or ())}
        if reasons & set(_DIRECT_REASONS) and not why:
            why.append("a person wrote to you")
        if row.triaged_at is None:
            why.append("could not check what it is: not triaged yet")
        return why

    def _named(self, row: Any) -> list[str]:
        named = next((str(r) for r in (row.reasons or ()) if r in _NAMING_REASONS), None)
        if named is not None:
            return [f"names you ({named})"]
        if self.naming is not None:
            for where, text in (("subject", row.subject), ("text", row.snippet)):
                if text and self.naming.search(text):
                    return [f"names you (in the {where})"]
        return []


def _reasons(row: Any, params: CleanupParams, criteria: dict[str, Any]) -> list[str]:
    """Why a candidate was chosen."""
    out: list[str] = []
    if criteria["categories"] and row.category:
        first = next(iter(row.reasons or ()), None)
        out.append(f"{row.category}" + (f" ({first})" if first else ""))
    if params.older_than:
        when = row.date or row.sort_date
        out.append(f"older than {params.older_than}" + (f" ({when:%Y-%m-%d})" if when else ""))
    if params.query:
        out.append(f"matches “{params.query}”")
    if params.cleanup_action == CleanupAction.UNSUBSCRIBE:
        target = one_click_target(row.list_unsubscribe, row.list_unsubscribe_post)
        out.append(
            "one-click unsubscribe offered"
            if target
            else "no one-click unsubscribe: listed for you to act on"
        )
    return out


def one_click_target(header: str | None, post: str | None) -> str | None:
    """The https URL an RFC 8058 one-click unsubscribe posts to, or None when the list does
    not offer one (no List-Unsubscribe-Post: List-Unsubscribe=One-Click, or no https link)."""
    if not header or not post or not _ONE_CLICK.search(post):
        return None
    for link in _LINKS.findall(header):
        if link.strip().lower().startswith("https://"):
            return str(link).strip()
    return None


def discover(ctx: TaskContext, account: Account, params: CleanupParams) -> dict[str, Any]:
    """Find the candidates and the protected messages, store the proposal, and return its
    summary (nothing on the server is read or changed)."""
    criteria = criteria_of(params)
    where = _selection(ctx.engine, params, criteria)
    with reading(ctx.engine) as conn:
        protection = Protection.of(conn, account)
        allowed, never = _folder_ids(conn, account.id, params.cleanup_action)
        total = 0
        # The folders left out, not those let in: PostgreSQL, its statistics stale after a
        # big sync, would otherwise AND the folder's whole index into every row's look-up.
        live = exists().where(
            locations.c.message_pk == m.c.id,
            locations.c.expunged_at.is_(None),
            locations.c.folder_id.not_in(never) if never else true(),
        )
        base = (m.c.account_id == account.id) & m.c.expunged_at.is_(None) & live & where
        ctx.progress.step(Step.DISCOVERING)
        found: list[store.Item] = []
        why_counts: Counter[str] = Counter()
        after = 0
        while allowed:
            rows = conn.execute(
                select(*_COLUMNS).where(base, m.c.id > after).order_by(m.c.id).limit(_PAGE)
            ).all()
            if not rows:
                break
            after = int(rows[-1].id)
            for row in rows:
                why = protection.why(row)
                if why:
                    found.append(store.Item(int(row.id), ItemRole.PROTECTED, tuple(why)))
                    why_counts.update(why)
                else:
                    reasons = _reasons(row, params, criteria)
                    found.append(store.Item(int(row.id), ItemRole.CANDIDATE, tuple(reasons)))
            total += len(rows)
            ctx.progress.update(total)
            ctx.progress.check_cancelled()
    candidates = sum(1 for item in found if item.role == ItemRole.CANDIDATE)
    with writing(ctx.engine) as conn:
        summary_base = {
            "cleanup": ctx.job.id,
            "account_id": account.id,
            "action": params.action,
            "criteria": criteria,
            "counts": {"candidates": candidates, "protected": len(found) - candidates},
            "protected_why": dict(why_counts.most_common(20)),
        }
        store.write_proposal(conn, ctx.job.id, found, summary_base)
        summary = summary_base | {
            "senders": store.senders(conn, ctx.job.id, limit=10),
            "preview": [
                {"id": i["id"], "from": i["from"], "subject": i["subject"]}
                for i in store.items(conn, ctx.job.id, ItemRole.CANDIDATE, limit=store.PREVIEW)
            ],
        }
        store.merge_summary(conn, ctx.job.id, summary)
    return summary


def label_of(category: str | None, gmail: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keyword (IMAP) or label (Gmail) a category is written as: (flags, labels)."""
    if not category:
        return (), ()
    if gmail:
        title = category.replace("_", " ").capitalize()
        return (), (f"inboxd/{title}",)
    return (f"$inboxd_{category}",), ()


def changes_for(action: CleanupAction, rows: Sequence[Any]) -> list[Change]:
    """The journaled changes an approved clean-up makes (rows: id, category, gm_msgid)."""
    from inboxd.pipeline.changes import ARCHIVE, Change

    out: list[Change] = []
    for row in rows:
        pk = int(row.id)
        if action == CleanupAction.ARCHIVE:
            out.append(Change(pk, "archive", move_to=ARCHIVE))
        elif action == CleanupAction.MARK_READ:
            out.append(Change(pk, "mark read", add_flags=(SEEN,)))
        elif action == CleanupAction.LABEL:
            flags, labels = label_of(row.category, row.gm_msgid is not None)
            if flags or labels:
                out.append(Change(pk, f"label {row.category}", add_flags=flags, add_labels=labels))
    return out


# -- execution ----------------------------------------------------------------------------------

_EXEC_COLUMNS = (*_COLUMNS, m.c.gm_msgid, m.c.expunged_at)
GONE = "gone since the proposal"


def _rows_of(conn: Connection, pks: Sequence[int]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for start in range(0, len(pks), 1000):
        part = list(pks[start : start + 1000])
        for row in conn.execute(select(*_EXEC_COLUMNS).where(m.c.id.in_(part))):
            found[int(row.id)] = row
    return found


def _changed(protection: Protection, row: Any) -> str | None:
    """Why a message approved for a clean-up must be left alone now (None: go on)."""
    if row is None or row.expunged_at is not None:
        return GONE
    why = protection.why(row)
    return f"changed since the proposal: {why[0]}" if why else None


def execute(ctx: TaskContext, account: Account, found: store.Cleanup) -> dict[str, Any]:
    """Carry out an approved clean-up: each approved candidate still as it was is changed
    through the journal (undoable), the others skipped with why; outcomes recorded."""
    action = CleanupAction(found.action)
    with reading(ctx.engine) as conn:
        pks = store.approved_items(conn, found.job_id)
        rows = _rows_of(conn, pks)
        protection = Protection.of(conn, account)
    skipped: dict[int, tuple[str, str | None]] = {}
    ready: list[Any] = []
    for pk in pks:
        why = _changed(protection, rows.get(pk))
        if why is not None:
            skipped[pk] = (store.SKIPPED, why)
        else:
            ready.append(rows[pk])
    if skipped:
        with writing(ctx.engine) as conn:
            store.record_outcomes(conn, found.job_id, skipped)
    if action == CleanupAction.UNSUBSCRIBE:
        unsubscribed = _unsubscribe(ctx, found.job_id, ready)
        report: dict[str, Any] = {"unsubscribe": unsubscribed}
    else:
        report = _apply(ctx, account, action, ready, protection)
    with reading(ctx.engine) as conn:
        done = store.execution(conn, found.job_id) or {"done": 0, "skipped": [], "failed": 0}
    reasons = Counter(s["why"] for s in done["skipped"])
    return {
        "cleanup": found.job_id,
        "action": found.action,
        "approved": found.approved_count or 0,
        "done": done["done"],
        "skipped": len(done["skipped"]),
        "failed": done["failed"],
        "skipped_reasons": dict(reasons.most_common(20)),
    } | report


def _apply(
    ctx: TaskContext,
    account: Account,
    action: CleanupAction,
    ready: Sequence[Any],
    protection: Protection,
) -> dict[str, Any]:
    """Archive, mark read or label through the journal, re-checking each batch on the server
    right before acting."""
    from inboxd.pipeline.changes import apply_changes

    changes = changes_for(action, ready)
    planned = {c.message_pk for c in changes}
    unlabeled = {int(r.id): (store.SKIPPED, "no category to label") for r in ready}
    unlabeled = {pk: v for pk, v in unlabeled.items() if pk not in planned}
    if unlabeled:
        with writing(ctx.engine) as conn:
            store.record_outcomes(conn, ctx.job.id, unlabeled)

    def recheck(conn: Connection, located: Sequence[Located]) -> dict[int, str]:
        # The server's marks now (a message gone is skipped by apply_changes itself), and
        # the store as the latest sync left it (a reply in the thread, a new address).
        skip: dict[int, str] = {}
        now = _rows_of(conn, sorted({loc.message_pk for loc in located}))
        for loc in located:
            pk = loc.message_pk
            flags = set(loc.flags)
            labels = set(loc.labels or ())
            if FLAGGED in flags or labels & _STARRED_LABELS:
                skip[pk] = "flagged since the proposal"
            elif ANSWERED in flags:
                skip[pk] = "replied to since the proposal"
            elif (why := _changed(protection, now.get(pk))) is not None:
                skip[pk] = why
        return skip

    result = apply_changes(ctx, account, changes, recheck=recheck, total=len(changes))
    with writing(ctx.engine) as conn:
        store.record_outcomes(conn, ctx.job.id, store.outcomes_from_journal(conn, ctx.job.id))
    return {"changed": result.to_dict()}


def _unsubscribe(ctx: TaskContext, job_id: str, ready: Sequence[Any]) -> dict[str, Any]:
    """RFC 8058 one-click POSTs, once per list (never a GET); lists that offer only mail
    are listed for the user. Each list's outcome is stored before the next is asked, so a
    resumed run never posts twice."""
    from inboxd.net.guarded import GuardedClient, Refused

    lists: dict[str, list[Any]] = {}
    for row in ready:
        key = (row.list_id or row.from_addr or f"message {row.id}").strip()
        lists.setdefault(key, []).append(row)
    with reading(ctx.engine) as conn:
        summary = store.get(conn, job_id, owner=None, any_owner=True).summary
    earlier = dict(summary.get("unsubscribe") or {})
    posted: list[dict[str, Any]] = list(earlier.get("posted") or ())
    mailto_only: list[dict[str, Any]] = list(earlier.get("mailto_only") or ())
    failed: list[dict[str, Any]] = list(earlier.get("failed") or ())
    ctx.progress.step(Step.APPLYING, total=len(lists))
    client = GuardedClient(ctx.settings)
    try:
        for n, (key, group) in enumerate(sorted(lists.items())):
            ctx.progress.check_cancelled()
            target = next(
                (
                    t
                    for r in group
                    if (t := one_click_target(r.list_unsubscribe, r.list_unsubscribe_post))
                ),
                None,
            )
            outcome: tuple[str, str | None]
            if target is None:
                mailto = next(
                    (
                        link
                        for r in group
                        for link in _LINKS.findall(r.list_unsubscribe or "")
                        if link.lower().startswith("mailto:")
                    ),
                    None,
                )
                mailto_only.append({"list": key, "mailto": mailto, "messages": len(group)})
                outcome = (store.SKIPPED, "no one-click unsubscribe: listed for you to act on")
            else:
                try:
                    answer = client.post_one_click(target)
                except Refused as exc:
                    failed.append({"list": key, "url": target, "why": exc.reason})
                    outcome = (store.FAILED, f"unsubscribe refused: {exc.reason}")
                else:
                    if answer.ok:
                        posted.append({"list": key, "url": target, "status": answer.status})
                        outcome = (store.DONE, None)
                    else:
                        why = f"the list's server answered {answer.status}"
                        failed.append({"list": key, "url": target, "why": why})
                        outcome = (store.FAILED, f"unsubscribe not accepted: {why}")
            with writing(ctx.engine) as conn:
                store.record_outcomes(conn, job_id, {int(r.id): outcome for r in group})
                store.merge_summary(
                    conn,
                    job_id,
                    {
                        "unsubscribe": {
                            "posted": posted,
                            "mailto_only": mailto_only,
                            "failed": failed,
                        }
                    },
                )
            ctx.progress.update(n + 1)
    finally:
        client.close()
    return {"posted": len(posted), "mailto_only": len(mailto_only), "failed": len(failed)}
