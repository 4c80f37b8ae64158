"""The ``triage`` job: a category, a priority, a confidence and reasons for an account's
messages, queued by the index job when it stored new mail.

Tiers, first that applies: the user's correction of the message, the user's rules (newest
first; a rule's match is the search language, evaluated in SQL over each batch's ids),
then :func:`inboxd.triage.classify.classify` (sender memory, header and content signals),
the account's model for what that leaves unsure, and the optional refiner for what stays
unsure. :func:`inboxd.triage.priority.prioritize` then gives the priority (a rule's own
priority wins).

Like the index job, batches are read and decided outside any transaction and written in
one each (columns and ``triaged_at`` together): a cancelled or killed run loses nothing,
the next starts with the first message still untriaged. ``all`` first marks the account's
mail untriaged, once (the checkpoint says so); ``query`` re-triages the messages it
matches, in id order, the last id done kept in the checkpoint of each batch's transaction.
After categorising, the model is trained again when its labels changed enough (new
corrections, or enough confident decisions and none yet), stored, and applied to the
account's messages that were left unsure.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Connection, Engine, Text, func, or_, select, type_coerce

from inboxd.config import Settings
from inboxd.db.engine import reading, writing
from inboxd.db.tables import folders, locations
from inboxd.db.tables import messages as m
from inboxd.db.types import utcnow
from inboxd.errors import InvalidParams, InvalidQuery, NotFound
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import task
from inboxd.pipeline.index import read_bodies
from inboxd.pipeline.write_behind import WriteBehind
from inboxd.store import bodies, packs
from inboxd.store import triage as store
from inboxd.store.accounts import Account, Accounts
from inboxd.store.search import message_filter, parse_query
from inboxd.triage.types import Context, Decision, Mail, Verdict
from inboxd.vocabulary import Category, Step, TriageSource

if TYPE_CHECKING:
    from inboxd.triage.model import Model
    from inboxd.triage.refiner import Refiner

log = logging.getLogger(__name__)

#: Messages per batch (and transaction), and the bytes of mail read for one at most.
BATCH_MESSAGES = 500
#: Messages per batch when a refiner is configured: each unsure one may wait for a model
#: server, and progress, cancel and checkpoints must keep up.
REFINER_BATCH_MESSAGES = 50
BATCH_BYTES = 8 * 1024 * 1024
#: Decisions at least this sure, by these tiers, are labels the model learns from.
LABEL_CONFIDENCE = 0.9
LABEL_SOURCES = (TriageSource.RULE, TriageSource.SENDER, TriageSource.HEADERS)
#: Most training samples per category (newest first), so training reads a bounded amount.
MAX_SAMPLES_PER_CATEGORY = 1500
#: What a training sample keeps: the values of these fields (of the others, the names),
#: so many characters of a value, and of the text (the model reads its first 1,000).
SAMPLE_VALUES = frozenset(
    {
        "precedence",
        "auto-submitted",
        "x-auto-response-suppress",
        "return-path",
        "list-id",
        "message-id",
    }
)
SAMPLE_VALUE_CHARS = 256
SAMPLE_TEXT_CHARS = 1000
_NONE: tuple[str, ...] = ("",)
#: A model is trained again, without new corrections, once its labels are this much more.
RETRAIN_GROWTH = 2.0
#: Most reasons stored per message.
MAX_REASONS = 8
#: Names of a Sent folder when the server does not mark it ``\\Sent``.
SENT_NAMES = frozenset(
    {"sent", "sent items", "sent mail", "sent messages", "sent-mail", "envoyés", "gesendet"}
)
#: The match of a sender rule (actions.triage.sender_match).
_SENDER_MATCH = re.compile(r'from:"([^"()\s]+)"\Z')
#: A run of at least this many messages reads each rule's matches once, not per batch;
#: at most this many message ids of them are kept (about 10 MB).
RULE_CACHE_FROM = 5000
RULE_CACHE_IDS = 200_000
#: Rows read per round while learning whom the user wrote to.
_HISTORY_PAGE = 5000
#: Ids of unsure messages read per query when a new model is applied (each query scans
#: the account's rows: there is no index on confidence).
_UNSURE_PAGE = 20_000
#: Most unsure messages whose tier-3 decision a run keeps for applying a new model.
MAX_KEPT_DECISIONS = 200_000


class TriageParams(BaseModel, extra="forbid"):
    """Parameters of ``triage``: the account; ``all`` re-triages every message, ``query``
    only the messages it matches (a correction's sender, a new rule's match)."""

    account_id: str = Field(min_length=1, max_length=36)
    all: bool = False
    query: str | None = Field(default=None, max_length=2000)


def triage_dedupe_key(account_id: str) -> str:
    """At most one active triage of an account's new mail."""
    return f"triage:{account_id}"


@dataclass
class _Counts:
    messages: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)

    def add(self, verdicts: Sequence[Verdict]) -> None:
        self.messages += len(verdicts)
        self.by_source.update(str(v.source) for v in verdicts)
        self.by_category.update(str(v.category) for v in verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "by_source": dict(self.by_source),
            "by_category": dict(self.by_category),
        }

    @classmethod
    def from_dict(cls, data: Any) -> _Counts:
        if not isinstance(data, dict):
            return cls()
        return cls(
            int(data.get("messages", 0)),
            Counter(data.get("by_source") or {}),
            Counter(data.get("by_category") or {}),
        )


@task("triage", params=TriageParams)
def triage(ctx: TaskContext, params: TriageParams) -> dict[str, Any]:
    """Categorise and prioritise an account's messages (new ones, all, or a query's)."""
    account = Accounts(ctx.engine, ctx.settings).get(params.account_id)
    if ctx.job.account_id not in (None, account.id):
        raise InvalidParams("the job's account and its params' account_id differ")
    saved = ctx.checkpoint if isinstance(ctx.checkpoint, dict) else {}
    counts = _Counts.from_dict(saved.get("counts"))
    state: dict[str, Any] = {"reset": bool(saved.get("reset")), "after": int(saved.get("after", 0))}
    state["counts"] = counts.to_dict()
    query = _query(ctx.engine, params.query) if params.query and params.query.strip() else None
    if params.all and not state["reset"]:
        # Once per job: a resumed run must not make undone what it already did.
        state["reset"] = True
        with writing(ctx.engine) as conn:
            store.mark_untriaged(conn, account.id)
            ctx.progress.keep_in(conn, dict(state))
    before = counts.messages

    def done(verdicts: Sequence[Verdict], conn: Connection, after: int) -> None:
        # On the writer's thread, inside the batch's transaction.
        counts.add(verdicts)
        state["after"], state["counts"] = after, counts.to_dict()
        ctx.progress.keep_in(conn, dict(state))

    with Triager(ctx.engine, ctx.settings, account, log_to=ctx) as triager:
        triager.keep_samples = _may_train(ctx.engine, triager)
        left = triager.total(query, state["after"])
        ctx.progress.step(Step.CATEGORIZING, total=before + left)
        ctx.progress.update(before)
        for batch in triager.batches(query, after=state["after"]):
            ctx.progress.check_cancelled()
            triager.submit(batch, on_write=done)
            ctx.progress.update(before + triager.written)
        triager.wait()
        ctx.progress.update(before + triager.written)
        trained = _train(ctx, triager)
    from inboxd.pipeline.labels import after_triage  # the label job's trigger

    after_triage(ctx, account.id, changed=bool(counts.messages or trained))
    return {
        "account_id": account.id,
        "triaged": counts.messages,
        "by_source": dict(counts.by_source),
        "by_category": dict(counts.by_category),
        "rules": len(triager.rules),
        "rules_skipped": triager.rules_skipped,
        "model": trained,
        "refined": triager.refined,
    }


def _query(engine: Engine, text: str) -> ColumnElement[bool]:
    try:
        return message_filter(parse_query(text), dialect=engine.dialect.name, now=utcnow())
    except InvalidQuery as exc:
        raise InvalidParams(f"query: {exc.message}") from None


# -- what a batch is made of --------------------------------------------------------------------


#: Called with a batch's verdicts, the connection of its transaction and its last id.
OnWrite = Callable[[Sequence[Verdict], Connection, int], None]


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: store.Rule
    condition: ColumnElement[bool]


_COLUMNS = (
    m.c.id,
    m.c.size,
    m.c.from_addr,
    m.c.from_name,
    m.c.to_addrs,
    m.c.cc_addrs,
    m.c.subject,
    m.c.date,
    m.c.sort_date,
    m.c.flags,
    m.c.labels,
    m.c.thread_id,
    m.c.has_attachments,
    m.c.list_id,
    m.c.list_unsubscribe,
    m.c.precedence,
    m.c.auto_submitted,
)


#: The columns holding JSON lists of strings (addresses, flags, labels).
_LIST_COLUMNS = frozenset({"to_addrs", "cc_addrs", "flags", "labels"})


@lru_cache(maxsize=4)
def _columns(dialect: str) -> tuple[ColumnElement[Any], ...]:
    """The columns a batch reads. SQLite gives the JSON lists as their text, which
    :func:`_lists` parses a batch at a time: a parse per value cost more than the rest of
    the row."""
    if dialect != "sqlite":
        return _COLUMNS
    return tuple(
        type_coerce(c, Text).label(c.name) if c.name in _LIST_COLUMNS else c for c in _COLUMNS
    )


def _lists(rows: Sequence[Any], as_text: bool) -> list[tuple[str, ...]]:
    """Each row's to, cc, flags and labels (four entries a row), strings only."""
    values: list[Any] = [v for r in rows for v in (r.to_addrs, r.cc_addrs, r.flags, r.labels)]
    if as_text:
        texts = [v if isinstance(v, str) else "null" for v in values]
        try:
            parsed = json.loads("[" + ",".join(texts) + "]")
        except ValueError:
            # Something no JSON parser took: each value alone, the bad one left empty.
            parsed = [_loads(t) for t in texts]
        # A value parsed already (rows read with the plain columns) stays as it is.
        values = [p if isinstance(v, str) else v for v, p in zip(values, parsed, strict=True)]
    return [_strings(v) for v in values]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _strings(value: Any) -> tuple[str, ...]:
    if not value or not isinstance(value, list):
        return ()
    found = tuple(value)
    if all(map(isinstance, found, repeat(str))):
        return found
    return tuple(a for a in found if isinstance(a, str))


class Triager:
    """Decides and stores triage for one account's messages, a batch at a time."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        account: Account,
        *,
        log_to: TaskContext | None = None,
        use_model: bool = True,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.account = account
        self.columns = _columns(engine.dialect.name)
        self._lists_as_text = self.columns is not _COLUMNS
        self._task = log_to
        self._root = packs.packs_root(engine)
        self.rules_skipped = 0
        self.refined = 0
        with reading(engine) as conn:
            self.context = user_context(conn, account)
            self.rules = self._compile(store.rules_for_account(conn, account.id, account.owner))
            stored = store.load_model(conn, account.id) if use_model else None
        self.stored_model = stored
        self.model: Model | None = None
        if stored is not None:
            self.model = _load_model(stored.blob)
        self.refiner: Refiner | None = _refiner(settings) if use_model else None
        self.batch_messages = REFINER_BATCH_MESSAGES if self.refiner else BATCH_MESSAGES
        #: how many messages the run expects (see :meth:`total`)
        self.expected = 0
        #: each rule's matches, by its place in ``rules``, read once for a long run
        self._matches: dict[int, tuple[frozenset[int], int]] | None = None
        #: messages written by :meth:`submit` so far
        self.written = 0
        #: when set (by the job), the labelled mail this run decides is kept, slimmed, the
        #: newest of each category, for training (see :meth:`take_samples`)
        self.keep_samples = False
        self._samples: dict[Category, dict[int, Mail]] = {}
        #: classify's decision of the messages this run left unsure, by pk: a new model
        #: is applied to them without deciding them again (see :meth:`decide`)
        self._unsure: dict[int, Decision] = {}
        self._writes: WriteBehind[None] = WriteBehind("triage-writer")

    def __enter__(self) -> Triager:
        return self

    def __exit__(self, *_exc: object) -> None:
        # Whatever stops the run, the batch being written is committed or rolled back
        # before the job ends.
        try:
            self._writes.close()
        finally:
            if self.refiner is not None:
                self.refiner.close()

    def _warn(self, message: str) -> None:
        log.warning("account %s: %s", self.account.id, message)
        if self._task is not None:
            self._task.progress.log(message)

    def _compile(self, rules: Sequence[store.Rule]) -> list[_Rule]:
        compiled: list[_Rule] = []
        now = utcnow()
        for rule in rules:
            exact = _SENDER_MATCH.match(rule.match) if rule.source == store.SENDER else None
            if exact is not None:
                # "Always for this sender": that address exactly (the index's words would
                # also find x.sender@ and sender@host.example.net).
                compiled.append(_Rule(rule, m.c.from_addr == exact.group(1)))
                continue
            try:
                condition = message_filter(
                    parse_query(rule.match), dialect=self.engine.dialect.name, now=now
                )
            except InvalidQuery as exc:
                # A rule stored before the language changed, say: skipped, not a failed job.
                self.rules_skipped += 1
                self._warn(f"rule {rule.id} skipped: {exc.message}")
                continue
            compiled.append(_Rule(rule, condition))
        return compiled

    # -- choosing messages -------------------------------------------------------------------

    def _where(self, query: ColumnElement[bool] | None) -> ColumnElement[bool]:
        if query is None:
            return (m.c.account_id == self.account.id) & m.c.triaged_at.is_(None)
        return (m.c.account_id == self.account.id) & query

    def total(self, query: ColumnElement[bool] | None, after: int = 0) -> int:
        """How many messages a run over ``query`` (None: the untriaged) has to do."""
        with reading(self.engine) as conn:
            self.expected = int(
                conn.execute(
                    select(func.count()).where(self._where(query), m.c.id > after)
                ).scalar_one()
            )
        return self.expected

    def batches(self, query: ColumnElement[bool] | None, *, after: int = 0) -> Iterator[list[Any]]:
        """Batches of rows to triage, in id order after ``after``. For the untriaged (no
        query) one more pass from the start follows, until a pass finds none: mail stored
        while this ran, or committed late under a lower id."""
        where = self._where(query)
        while True:
            found = False
            while True:
                with reading(self.engine) as conn:
                    rows = conn.execute(
                        select(*self.columns)
                        .where(where, m.c.id > after)
                        .order_by(m.c.id)
                        .limit(self.batch_messages)
                    ).all()
                if not rows:
                    break
                batch: list[Any] = []
                size = 0
                for row in rows:
                    if batch and size + row.size > BATCH_BYTES:
                        break
                    size += row.size
                    batch.append(row)
                found = True
                after = int(batch[-1].id)
                yield batch
            if query is not None or not found:
                return
            # What is being written must be before the next pass looks for the untriaged;
            # what it finds is new since the rules' matches were read: ask per batch.
            self.wait()
            self._matches, self.expected = None, 0
            after = 0

    # -- deciding ----------------------------------------------------------------------------

    def mails(self, conn: Connection, rows: Sequence[Any]) -> list[Mail]:
        """The batch's messages as triage reads them."""
        from inboxd.triage.extract import Stored, mail_from

        pks = [int(r.id) for r in rows]
        raws = _bodies(conn, self._root, self.account.id, pks)
        places = _folders_of(conn, pks)
        lists = _lists(rows, self._lists_as_text)
        out: list[Mail] = []
        for n, r in enumerate(rows):
            pk = pks[n]
            to, cc, flags, labels = lists[4 * n : 4 * n + 4]
            stored = Stored(
                pk=pk,
                from_addr=r.from_addr,
                from_name=r.from_name,
                to=to,
                cc=cc,
                subject=r.subject,
                date=r.date or r.sort_date,
                flags=flags,
                labels=labels,
                folders=places.get(pk, ()),
                thread_id=r.thread_id,
                has_attachments=bool(r.has_attachments),
                list_id=r.list_id,
                list_unsubscribe=r.list_unsubscribe,
                precedence=r.precedence,
                auto_submitted=r.auto_submitted,
            )
            out.append(mail_from(raws.get(pk, b""), stored))
        return out

    def _matching_rules(self, conn: Connection, pks: Sequence[int]) -> dict[int, store.Rule]:
        """The rule that decides each message of the batch a rule matches (newest first)."""
        if self._matches is None and self.expected >= RULE_CACHE_FROM:
            self._matches = self._all_matches(conn)
        cached = self._matches or {}
        decided: dict[int, store.Rule] = {}
        left = list(pks)
        for n, compiled in enumerate(self.rules):
            if not left:
                break
            known = cached.get(n)
            if known is not None:
                ids, upto = known
                hit = {pk for pk in left if pk in ids}
                late = [pk for pk in left if pk > upto]
            else:
                hit, late = set(), left
            if late:
                found = conn.execute(
                    select(m.c.id).where(m.c.id.in_(late), compiled.condition)
                ).scalars()
                hit.update(int(pk) for pk in found)
            if hit:
                for pk in hit:
                    decided[pk] = compiled.rule
                left = [pk for pk in left if pk not in hit]
        return decided

    def _all_matches(self, conn: Connection) -> dict[int, tuple[frozenset[int], int]]:
        """For a long run: each rule's matches among the account's messages, read once
        (a full-text match costs a look-up of every match however few a batch holds),
        as of the highest id now; later mail is asked per batch. A rule matching more than
        the rest of RULE_CACHE_IDS allows is asked per batch too."""
        upto = conn.execute(
            select(func.max(m.c.id)).where(m.c.account_id == self.account.id)
        ).scalar_one()
        if upto is None:
            return {}
        room = RULE_CACHE_IDS
        found: dict[int, tuple[frozenset[int], int]] = {}
        for n, compiled in enumerate(self.rules):
            ids = list(
                conn.execute(
                    select(m.c.id)
                    .where(m.c.account_id == self.account.id, m.c.id <= upto, compiled.condition)
                    .limit(room + 1)
                ).scalars()
            )
            if len(ids) > room:
                continue
            room -= len(ids)
            found[n] = (frozenset(int(pk) for pk in ids), int(upto))
        return found

    def decide(self, rows: Sequence[Any], *, again: bool = False) -> list[Verdict]:
        """The verdicts of a batch (nothing written). ``again``: the batch's unsure
        messages were decided earlier in this run; classify's word on them is reused."""
        from inboxd.triage.classify import UNSURE
        from inboxd.triage.priority import prioritize

        pks = [int(r.id) for r in rows]
        with reading(self.engine) as conn:
            mails = self.mails(conn, rows)
            corrected = store.corrections_for(conn, pks)
            ruled = self._matching_rules(conn, pks) if self.rules else {}
        ctx = self.context
        decisions, unsure = self._tiers(mails, corrected, ruled, again)
        if unsure and self.model is not None:
            from inboxd.triage.model import combine

            predicted = self.model.predict([mails[i] for i in unsure])
            for i, guess in zip(unsure, predicted, strict=True):
                decisions[i] = combine(decisions[i], guess)
            unsure = [i for i in unsure if decisions[i].confidence < UNSURE]
        if unsure and self.refiner is not None:
            better = self.refiner.refine([(mails[i], decisions[i]) for i in unsure])
            for i in unsure:
                if (new := better.get(mails[i].pk)) is not None:
                    decisions[i] = new
                    self.refined += 1
        verdicts: list[Verdict] = []
        for mail, decision in zip(mails, decisions, strict=True):
            priority, why = prioritize(mail, decision, ctx)
            rule = ruled.get(mail.pk) if decision.source == TriageSource.RULE else None
            if rule is not None and rule.priority is not None:
                priority, why = rule.priority, (f"priority {rule.priority} from your rule",)
            reasons = tuple(dict.fromkeys((*decision.reasons, *why)))[:MAX_REASONS]
            verdicts.append(
                Verdict(
                    mail.pk,
                    decision.category,
                    max(0, min(100, int(priority))),
                    round(max(0.0, min(1.0, float(decision.confidence))), 4),
                    reasons,
                    decision.source,
                )
            )
        if self.keep_samples and not again:
            self._keep_samples(mails, verdicts)
        return verdicts

    def _tiers(
        self,
        mails: Sequence[Mail],
        corrected: dict[int, Category],
        ruled: dict[int, store.Rule],
        again: bool,
    ) -> tuple[list[Decision], list[int]]:
        """Each message's decision by correction, rule or classify; which are unsure."""
        from inboxd.triage.classify import UNSURE, classify

        ctx = self.context
        kept = self._unsure
        decisions: list[Decision] = []
        unsure: list[int] = []
        for i, mail in enumerate(mails):
            # A message decided earlier in this run, by the same context, gets the same
            # decision (its stored columns may have moved since: the rules and the
            # priority still read them fresh).
            known = kept.pop(mail.pk, None) if again else None
            decision = known if known is not None else classify(mail, ctx)
            if mail.pk in corrected:
                category = corrected[mail.pk]
                decision = Decision(
                    category,
                    1.0,
                    (f"you filed this message as {category}",),
                    TriageSource.CORRECTION,
                    decision.direct,
                )
            elif mail.pk in ruled:
                decision = _by_rule(ruled[mail.pk], decision.direct)
            elif decision.confidence < UNSURE:
                unsure.append(i)
                if not again and len(kept) < MAX_KEPT_DECISIONS:
                    kept[mail.pk] = decision
            decisions.append(decision)
        return decisions, unsure

    def _keep_samples(self, mails: Sequence[Mail], verdicts: Sequence[Verdict]) -> None:
        """Keep the batch's would-be labels (see _samples), at most the newest
        MAX_SAMPLES_PER_CATEGORY of a category (and a batch), slimmed."""
        for mail, verdict in zip(mails, verdicts, strict=True):
            if verdict.source != TriageSource.CORRECTION and (
                verdict.source not in LABEL_SOURCES or verdict.confidence < LABEL_CONFIDENCE
            ):
                continue
            window = self._samples.setdefault(verdict.category, {})
            window[mail.pk] = _slim(mail)
            if len(window) > MAX_SAMPLES_PER_CATEGORY + BATCH_MESSAGES:
                for pk in sorted(window)[:-MAX_SAMPLES_PER_CATEGORY]:
                    del window[pk]

    def take_samples(self) -> dict[int, Mail]:
        """The slimmed mail kept by :meth:`_keep_samples`, by pk (given away once)."""
        found = {pk: mail for window in self._samples.values() for pk, mail in window.items()}
        self._samples = {}
        return found

    def run(self, rows: Sequence[Any]) -> list[Verdict]:
        """Decide a batch and store it in one transaction, now."""
        if not rows:
            return []
        verdicts = self.decide(rows)
        self._write(verdicts, int(rows[-1].id), None)
        return verdicts

    def submit(
        self, rows: Sequence[Any], *, on_write: OnWrite | None = None, again: bool = False
    ) -> None:
        """Decide a batch, then have it written (one transaction) once the batch before
        is, on the writer's thread: while the database writes one batch, the next is read
        and decided. ``on_write(verdicts, conn, last_id)`` runs inside the transaction;
        ``again`` as for :meth:`decide`."""
        if not rows:
            return
        verdicts = self.decide(rows, again=True) if again else self.decide(rows)
        self._writes.submit(self._write, verdicts, int(rows[-1].id), on_write)

    def wait(self) -> None:
        """Wait for the batch being written (raises its error)."""
        self._writes.wait()

    def _write(self, verdicts: Sequence[Verdict], last: int, on_write: OnWrite | None) -> None:
        with writing(self.engine) as conn:
            store.write_verdicts(conn, [_row(v) for v in verdicts], utcnow())
            if on_write is not None:
                on_write(verdicts, conn, last)
        self.written += len(verdicts)

    def unsure_batches(self, below: float) -> Iterator[list[Any]]:
        """The account's messages left unsure, in id order, a batch at a time. Their ids
        are found a page at a time (each look-up scans the account's rows), each batch's
        rows read by id, the condition checked again."""
        after = 0
        where = store.unsure_condition(self.account.id, below)
        while True:
            with reading(self.engine) as conn:
                ids = [
                    int(pk)
                    for pk in conn.execute(
                        select(m.c.id)
                        .where(where, m.c.id > after)
                        .order_by(m.c.id)
                        .limit(_UNSURE_PAGE)
                    ).scalars()
                ]
            if not ids:
                return
            after = ids[-1]
            for start in range(0, len(ids), self.batch_messages):
                chunk = ids[start : start + self.batch_messages]
                with reading(self.engine) as conn:
                    rows = conn.execute(
                        select(*self.columns).where(m.c.id.in_(chunk), where).order_by(m.c.id)
                    ).all()
                if rows:
                    yield list(rows)


def _bodies(
    conn: Connection, root: Path | None, account_id: str, pks: list[int]
) -> dict[int, bytes]:
    """The batch's raw messages: neighbours in a pack read at once, one decompressor for
    all; when one is lost or damaged, read one by one, leaving that one out (its headers
    columns still get it triaged)."""
    try:
        return bodies.read_bodies(conn, pks)
    except (NotFound, ValueError, zstandard.ZstdError):
        return read_bodies(conn, root, account_id, pks)


def _by_rule(rule: store.Rule, direct: bool) -> Decision:
    if rule.source == store.SENDER:
        why = f"you file mail from this sender as {rule.category}"
    else:
        why = f"your rule “{rule.match}”"
    return Decision(rule.category, 1.0, (why,), TriageSource.RULE, direct)


def _row(v: Verdict) -> dict[str, Any]:
    return {
        "b_pk": v.pk,
        "b_category": str(v.category),
        "b_priority": v.priority,
        "b_confidence": v.confidence,
        "b_reasons": list(v.reasons),
        "b_source": str(v.source),
    }


def _folders_of(conn: Connection, pks: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Each message's live folders: special uses and names."""
    rows = conn.execute(
        select(locations.c.message_pk, folders.c.name, folders.c.special_use)
        .join(folders, folders.c.id == locations.c.folder_id)
        .where(locations.c.message_pk.in_(list(pks)), locations.c.expunged_at.is_(None))
    ).all()
    found: dict[int, list[str]] = {}
    for pk, name, special in rows:
        places = found.setdefault(int(pk), [])
        for value in (special, name):
            if value and value not in places:
                places.append(value)
    return {pk: tuple(v) for pk, v in found.items()}


def _load_model(blob: bytes) -> Model | None:
    from inboxd.triage.model import Model

    try:
        return Model.from_bytes(blob)
    except Exception as exc:  # a damaged model is trained again, never fatal
        log.warning("stored triage model unreadable, ignored: %s", exc)
        return None


def _refiner(settings: Settings) -> Refiner | None:
    if not settings.triage_refiner_url:
        return None
    from inboxd.triage.refiner import refiner_from_settings

    return refiner_from_settings(settings)


# -- the user of an account ---------------------------------------------------------------------


def sent_folder_ids(conn: Connection, account_id: str) -> list[int]:
    """The account's Sent folders: marked ``\\Sent``, or named like one."""
    rows = conn.execute(
        select(folders.c.id, folders.c.name, folders.c.special_use, folders.c.delimiter).where(
            folders.c.account_id == account_id, folders.c.gone_at.is_(None)
        )
    ).all()
    found: list[int] = []
    for pk, name, special, delimiter in rows:
        leaf = name
        for sep in {delimiter or "/", "/", "."}:
            leaf = leaf.rsplit(sep, 1)[-1]
        if (special or "").lower() == "\\sent" or leaf.strip().lower() in SENT_NAMES:
            found.append(int(pk))
    return found


def user_context(conn: Connection, account: Account, now: datetime | None = None) -> Context:
    """What triage knows of an account's user: their addresses and name, the people they
    wrote to (To/Cc of the mail they sent: in a Sent folder, or from their addresses) and
    the threads they wrote in. Read in pages, so a large Sent folder costs little memory."""
    sent = sent_folder_ids(conn, account.id)
    in_sent = (
        m.c.id.in_(
            select(locations.c.message_pk).where(
                locations.c.folder_id.in_(sent), locations.c.expunged_at.is_(None)
            )
        )
        if sent
        else None
    )
    addresses = {a.strip().lower() for a in account.addresses if a and a.strip()}
    name = account.owner_name
    if in_sent is not None and (not addresses or not name):
        found, display = _sender_of(conn, account.id, in_sent)
        addresses = addresses or found
        name = name or display
    mine = [
        c
        for c in (in_sent, m.c.from_addr.in_(sorted(addresses)) if addresses else None)
        if c is not None
    ]
    correspondents: Counter[str] = Counter()
    threads: set[int] = set()
    if mine:
        _history(
            conn, (m.c.account_id == account.id) & or_(*mine), addresses, correspondents, threads
        )
    return Context(
        addresses=frozenset(addresses),
        name=name,
        correspondents=dict(correspondents),
        replied_threads=frozenset(threads),
        now=now or utcnow(),
    )


def _sender_of(
    conn: Connection, account_id: str, in_sent: ColumnElement[bool]
) -> tuple[set[str], str | None]:
    """The addresses the user sends from (every one used often: aliases, not a stray
    forward) and their most used display name, from the Sent folder."""
    senders = conn.execute(
        select(m.c.from_addr, m.c.from_name, func.count())
        .where(m.c.account_id == account_id, in_sent, m.c.from_addr.is_not(None))
        .group_by(m.c.from_addr, m.c.from_name)
    ).all()
    by_addr: Counter[str] = Counter()
    by_name: Counter[str] = Counter()
    for addr, display, n in senders:
        by_addr[addr] += int(n)
        if display:
            by_name[display] += int(n)
    if not by_addr:
        return set(), None
    most = by_addr.most_common(1)[0][1]
    name = by_name.most_common(1)[0][0] if by_name else None
    return {a for a, n in by_addr.items() if n * 5 >= most}, name


def _history(
    conn: Connection,
    where: ColumnElement[bool],
    addresses: set[str],
    correspondents: Counter[str],
    threads: set[int],
) -> None:
    """Count the recipients of the user's own messages and note their threads."""
    after = 0
    while True:
        rows = conn.execute(
            select(m.c.id, m.c.to_addrs, m.c.cc_addrs, m.c.thread_id)
            .where(where, m.c.id > after)
            .order_by(m.c.id)
            .limit(_HISTORY_PAGE)
        ).all()
        if not rows:
            return
        after = int(rows[-1].id)
        for _, to, cc, thread in rows:
            for addr in (*(to or ()), *(cc or ())):
                if isinstance(addr, str) and addr and addr.lower() not in addresses:
                    correspondents[addr.lower()] += 1
            if thread is not None:
                threads.add(int(thread))


# -- the model ----------------------------------------------------------------------------------


def _label_counts(conn: Connection, account_id: str) -> Counter[str]:
    """Confident decisions per category (the labels a model would learn from)."""
    rows = conn.execute(
        select(m.c.category, func.count())
        .where(
            m.c.account_id == account_id,
            m.c.confidence >= LABEL_CONFIDENCE,
            m.c.triage_source.in_([str(s) for s in LABEL_SOURCES]),
        )
        .group_by(m.c.category)
    ).all()
    return Counter({str(cat): int(n) for cat, n in rows if cat})


def _may_train(engine: Engine, triager: Triager) -> bool:
    """Whether this run may end by training (see _train): no when the stored model was
    trained on more than half the most labels there can be, and no correction is newer
    (one made while the run goes on has its training read the store: slower, as right)."""
    stored = triager.stored_model
    if stored is None:
        return True
    with reading(engine) as conn:
        if store.corrections_since(conn, triager.account.id, stored.trained_at):
            return True
    most = MAX_SAMPLES_PER_CATEGORY * len(Category)
    return most >= stored.samples * RETRAIN_GROWTH


def _train(ctx: TaskContext, triager: Triager) -> dict[str, Any] | None:
    """Train the account's model again when its labels changed enough, store it, and apply
    it to the messages left unsure; what was done (None: nothing)."""
    from inboxd.triage import model as learning
    from inboxd.triage.classify import UNSURE

    account = triager.account
    stored = triager.stored_model
    with reading(ctx.engine) as conn:
        new_corrections = store.corrections_since(
            conn, account.id, stored.trained_at if stored else None
        )
        labels = _label_counts(conn, account.id)
    capped = sum(min(n, MAX_SAMPLES_PER_CATEGORY) for n in labels.values()) + new_corrections
    classes = len(labels) + (1 if new_corrections else 0)
    if stored is None:
        if capped < learning.MIN_SAMPLES or classes < 2:
            return None
    elif new_corrections == 0 and capped < stored.samples * RETRAIN_GROWTH:
        return None
    ctx.progress.step(Step.TRAINING, message="reading labelled mail")
    started = time.monotonic()
    samples = _samples(ctx, triager)
    fitted = learning.train(samples)
    if fitted is None:
        return None
    count = len(samples)
    del samples
    with writing(ctx.engine) as conn:
        store.save_model(
            conn,
            account.id,
            samples=count,
            labels=[str(c) for c in fitted.labels],
            blob=fitted.to_bytes(),
        )
    trained_in = round(time.monotonic() - started, 2)
    # What the rules left unsure gets the new model's word.
    triager.model = fitted
    with reading(ctx.engine) as conn:
        left = int(
            conn.execute(
                select(func.count()).where(store.unsure_condition(account.id, UNSURE))
            ).scalar_one()
        )
    ctx.progress.step(Step.CATEGORIZING, total=left, message="applying the new model")
    first = triager.written
    for batch in triager.unsure_batches(UNSURE):
        ctx.progress.check_cancelled()
        triager.submit(batch, again=True)
        ctx.progress.update(triager.written - first)
    triager.wait()
    again = triager.written - first
    ctx.progress.update(again)
    return {
        "samples": count,
        "labels": [str(c) for c in fitted.labels],
        "seconds": trained_in,
        "reapplied": again,
    }


def _samples(ctx: TaskContext, triager: Triager) -> list[tuple[Mail, Category]]:
    """Labelled mail to learn from: corrections first, then confident decisions, newest
    first, at most MAX_SAMPLES_PER_CATEGORY of each category, read a batch at a time."""
    account_id = triager.account.id
    wanted: dict[int, Category] = {}
    with reading(ctx.engine) as conn:
        for category in Category:
            for pk in store.corrected_pks(conn, account_id, category, MAX_SAMPLES_PER_CATEGORY):
                wanted[pk] = category
            room = MAX_SAMPLES_PER_CATEGORY - sum(1 for c in wanted.values() if c == category)
            if room <= 0:
                continue
            found = conn.execute(
                select(m.c.id)
                .where(
                    m.c.account_id == account_id,
                    m.c.category == str(category),
                    m.c.confidence >= LABEL_CONFIDENCE,
                    m.c.triage_source.in_([str(s) for s in LABEL_SOURCES]),
                )
                .order_by(m.c.id.desc())
                .limit(room)
            ).scalars()
            for pk in found:
                wanted.setdefault(int(pk), category)
    ordered = sorted(wanted)
    ctx.progress.update(0, total=len(ordered))
    # What this run decided is at hand already; the rest is read.
    seen = triager.take_samples()
    samples: list[tuple[Mail, Category]] = []
    step = 500
    for start in range(0, len(ordered), step):
        ctx.progress.check_cancelled()
        chunk = ordered[start : start + step]
        missing = [pk for pk in chunk if pk not in seen]
        read: dict[int, Mail] = {}
        if missing:
            with reading(ctx.engine) as conn:
                rows = conn.execute(
                    select(*triager.columns).where(m.c.id.in_(missing)).order_by(m.c.id)
                ).all()
                read = {mail.pk: _slim(mail) for mail in triager.mails(conn, rows)}
        for pk in chunk:
            mail = seen.get(pk) or read.get(pk)
            if mail is not None:
                samples.append((mail, wanted[pk]))
        ctx.progress.update(advance=len(chunk))
    return samples


def _slim(mail: Mail) -> Mail:
    """A training sample's mail as the model reads it (inboxd.triage.model.features):
    every header field's name, the values of a few, the start of the text. Thousands are
    held at once while the model is fitted: 20,000 whole ones would take some 200 MB."""
    # The names (interned: they repeat from message to message) in their order, then the
    # few values: a pass over every field in Python cost twice as much.
    headers: dict[str, tuple[str, ...]] = dict.fromkeys(map(sys.intern, mail.headers), _NONE)
    for name in SAMPLE_VALUES:
        values = mail.headers.get(name)
        if values:
            headers[name] = (values[0][:SAMPLE_VALUE_CHARS],)
    # Built directly: dataclasses.replace took as long as the rest.
    return Mail(
        pk=mail.pk,
        from_addr=mail.from_addr,
        from_name=mail.from_name,
        to=mail.to,
        cc=mail.cc,
        subject=mail.subject,
        headers=headers,
        text=mail.text[:SAMPLE_TEXT_CHARS],
        content_types=mail.content_types,
        attachments=mail.attachments,
        date=mail.date,
        flags=mail.flags,
        labels=mail.labels,
        folders=mail.folders,
        thread_id=mail.thread_id,
        has_html=mail.has_html,
    )


def retriage_messages(
    engine: Engine, settings: Settings, account: Account, pks: Sequence[int]
) -> None:
    """Triage these messages of an account now (a correction's message, at once): the
    tiers without the model, which only unsure messages need and the web process must not
    load."""
    with reading(engine) as conn:
        rows = conn.execute(
            select(*_columns(engine.dialect.name)).where(
                m.c.account_id == account.id, m.c.id.in_(list(pks))
            )
        ).all()
    with Triager(engine, settings, account, use_model=False) as triager:
        triager.run(rows)
