"""The ``newsletter_extraction`` job: the articles behind a user's recent newsletters.

Steps: select newsletters from the store (List-Id, List-Unsubscribe or triage's
``newsletter`` category, in a window, optionally from some senders only) → extract their
links (:func:`inboxd.mail.links.extract_links`, which rejects unsubscribe/confirm/... links
before anything is requested) → resolve the rest through the guarded client (unless the
``newsletter_resolve`` setting is off: offline unwrapping only) → clean and merge duplicates.
The result is stored in ``newsletter_extractions`` (:mod:`inboxd.store.newsletters`), where it
outlives the job row; the job's own result is its counts. Nothing in mail changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import ColumnElement, Connection, func, or_, select

from inboxd.db.engine import reading, writing
from inboxd.db.tables import accounts
from inboxd.db.tables import messages as m
from inboxd.db.types import utcnow
from inboxd.errors import InvalidParams, JobCancelled
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import task
from inboxd.store import newsletters as store
from inboxd.vocabulary import Category

__all__ = [
    "KIND",
    "NewsletterParams",
    "newsletter_extraction",
    "result_as_text",
    "window_start",
]

KIND = "newsletter_extraction"
SELECTING, EXTRACTING, RESOLVING, CLEANING = "selecting", "extracting", "resolving", "cleaning"
#: Messages whose bodies are read at once while extracting.
_BATCH = 200
#: Bytes of a page read for its <title> when a link has no anchor text.
_TITLE_BYTES = 65536
#: The window when neither hours_back nor days_back is given.
_DEFAULT_DAYS = 7


class NewsletterParams(BaseModel, extra="forbid"):
    """Parameters of ``newsletter_extraction``: where to look, how far back, how many."""

    account_id: str | None = Field(default=None, min_length=1, max_length=36)
    hours_back: int | None = Field(default=None, ge=1, le=24 * 366)
    days_back: int | None = Field(default=None, ge=1, le=3660)
    max_results: int = Field(default=50, ge=1, le=1000, description="most newsletters read")
    senders: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="addresses (news@x.example) or domains (x.example, @x.example)",
    )

    @field_validator("senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        out = [s.strip().lower() for s in value if s.strip()]
        if any(len(s) > 320 for s in out):
            raise ValueError("a sender is at most 320 characters")
        return list(dict.fromkeys(out))


def window_start(params: NewsletterParams, now: datetime) -> datetime:
    """The oldest date a selected newsletter may have: ``days_back`` and ``hours_back``
    added up (both given is one window, 1 day 6 hours say), 7 days back when none is given."""
    if params.hours_back is None and params.days_back is None:
        return now - timedelta(days=_DEFAULT_DAYS)
    return now - timedelta(days=params.days_back or 0, hours=params.hours_back or 0)


def _sender_filter(senders: list[str]) -> ColumnElement[bool] | None:
    if not senders:
        return None
    sender = func.lower(m.c.from_addr)
    parts: list[ColumnElement[bool]] = []
    for s in senders:
        if "@" in s and not s.startswith("@"):
            parts.append(sender == s)
        else:
            parts.append(
                sender.like("%@" + s.lstrip("@").replace("%", "").replace("_", r"\_"), escape="\\")
            )
    return or_(*parts)


_COLUMNS = (
    m.c.id,
    m.c.message_id,
    m.c.subject,
    m.c.from_addr,
    m.c.from_name,
    m.c.date,
    m.c.sort_date,
    m.c.list_unsubscribe,
)


def select_newsletters(
    conn: Connection, params: NewsletterParams, *, owner: str | None, now: datetime
) -> list[Any]:
    """The newest newsletters of the window (the one account named, else the owner's
    accounts, else every account)."""
    where: list[ColumnElement[bool]] = [
        m.c.expunged_at.is_(None),
        m.c.sort_date >= window_start(params, now),
        or_(
            m.c.list_id.is_not(None),
            m.c.list_unsubscribe.is_not(None),
            m.c.category == Category.NEWSLETTER.value,
        ),
    ]
    if params.account_id is not None:
        # Whoever started it was checked to own the account (or to be an admin): an admin's
        # extraction of a user's account reads that account.
        where.append(m.c.account_id == params.account_id)
    elif owner is not None:
        owned = select(accounts.c.id).where(accounts.c.owner == owner)
        where.append(m.c.account_id.in_(owned))
    senders = _sender_filter(params.senders)
    if senders is not None:
        where.append(senders)
    query = (
        select(*_COLUMNS)
        .where(*where)
        .order_by(m.c.sort_date.desc(), m.c.id.desc())
        .limit(params.max_results)
    )
    return list(conn.execute(query).all())


@dataclass
class _Found:
    """One newsletter as it goes through the steps."""

    row: Any
    canonical_url: str | None
    links: list[Any]  # inboxd.mail.links.Link
    rejected: list[dict[str, str]]


@task(KIND, params=NewsletterParams)
def newsletter_extraction(ctx: TaskContext, params: NewsletterParams) -> dict[str, Any]:
    """Find the articles behind the user's newsletters of a window, resolved safely."""
    job, owner = ctx.job, ctx.job.owner
    if params.account_id is not None and job.account_id not in (None, params.account_id):
        raise InvalidParams("the job's account and its params' account_id differ")
    with writing(ctx.engine) as conn:
        store.start(
            conn,
            extraction_id=job.id,
            owner=owner,
            account_id=params.account_id,
            params=job.params,
            created_at=job.created_at,
        )
    ctx.progress.step(SELECTING)
    with reading(ctx.engine) as conn:
        rows = select_newsletters(conn, params, owner=owner, now=utcnow())
    ctx.progress.update(len(rows), total=len(rows))
    found = _extract(ctx, rows)
    resolutions = _resolve(ctx, found) if ctx.settings.newsletter_resolve else {}
    ctx.progress.step(CLEANING, total=len(found))
    result = _result(found, resolutions, resolved=ctx.settings.newsletter_resolve)
    ctx.progress.check_cancelled()
    with writing(ctx.engine) as conn:
        store.complete(conn, job.id, result)
        # Ends the task never saw (a cancel before it ran, a crash) are written down now,
        # while their jobs are still there to tell them, and only ended ones are pruned.
        store.settle(conn, owner=owner)
        store.prune(conn, owner=owner, keep=ctx.settings.newsletter_keep)
    # The job keeps the counts only: the result, which may be large, lives in one place.
    return {
        "extraction_id": job.id,
        "counts": result["counts"],
        "rejected_reasons": result["rejected_reasons"],
    }


def _extract(ctx: TaskContext, rows: list[Any]) -> list[_Found]:
    from inboxd.mail.links import extract_links
    from inboxd.mail.reading import parse_message
    from inboxd.store.bodies import read_bodies

    ctx.progress.step(EXTRACTING, total=len(rows))
    out: list[_Found] = []
    for start in range(0, len(rows), _BATCH):
        part = rows[start : start + _BATCH]
        with reading(ctx.engine) as conn:
            raws = read_bodies(conn, [int(r.id) for r in part])
        for row in part:
            raw = raws.get(int(row.id))
            parsed = parse_message(raw) if raw else None
            got = extract_links(
                parsed.html_body if parsed else None,
                parsed.text_body if parsed else None,
                list_unsubscribe=row.list_unsubscribe,
            )
            rejected = [{"url": r.url, "reason": r.reason} for r in got.rejected]
            out.append(_Found(row, got.canonical_url, list(got.links), rejected))
        ctx.progress.update(advance=len(part))
    return out


def _resolve(ctx: TaskContext, found: list[_Found]) -> dict[str, Any]:
    """Each distinct link (after offline unwrapping) resolved once, ``fetch_concurrency``
    at a time; cancel is checked after each link and before each hop, so a cancelled job
    sends no request once it noticed, and leaves as soon as the hops in flight end."""
    import concurrent.futures as cf

    from inboxd.mail.links import clean_url, list_unsubscribe_urls
    from inboxd.net.guarded import GuardedClient

    wanted = list(dict.fromkeys(clean_url(link.unwrapped) for f in found for link in f.links))
    # A link with no anchor text gets its page's <title>: its hops are GETs, read that far.
    untitled = {
        clean_url(link.unwrapped) for f in found for link in f.links if not link.text.strip()
    }
    listed = frozenset(u for f in found for u in list_unsubscribe_urls(f.row.list_unsubscribe))
    ctx.progress.step(RESOLVING, total=len(wanted))
    out: dict[str, Any] = {}
    in_flight = max(1, ctx.settings.fetch_concurrency)
    # One request per resolve: each redirect's target is checked here before it is asked
    # for, so a short link that leads to an unsubscribe page never reaches it.
    one_hop = ctx.settings.model_copy(update={"fetch_max_hops": 1})
    hops = ctx.settings.fetch_max_hops
    stop = threading.Event()

    def before_hop() -> None:
        if stop.is_set():
            raise JobCancelled()
        ctx.progress.check_cancelled()

    todo = iter(wanted)
    running: dict[cf.Future[Any], str] = {}
    with (
        GuardedClient(one_hop) as client,
        cf.ThreadPoolExecutor(max_workers=in_flight) as pool,
    ):
        try:
            while True:
                while len(running) < in_flight and (url := next(todo, None)) is not None:
                    size = _TITLE_BYTES if url in untitled else 0
                    fut = pool.submit(
                        follow,
                        client,
                        url,
                        max_hops=hops,
                        listed=listed,
                        max_body=size,
                        before_hop=before_hop,
                    )
                    running[fut] = url
                if not running:
                    break
                # A slow hop must not hide a cancel: look at least every tenth of a second.
                done, _ = cf.wait(running, timeout=0.1, return_when=cf.FIRST_COMPLETED)
                ctx.progress.check_cancelled()
                for fut in done:
                    out[running.pop(fut)] = fut.result()
                    ctx.progress.update(advance=1)
        except BaseException:
            # The hops in flight end; none after them starts (the pool waits for them).
            stop.set()
            raise
    return out


def follow(
    client: Any,
    url: str,
    *,
    max_hops: int,
    listed: frozenset[str],
    max_body: int = 0,
    before_hop: Callable[[], None] | None = None,
) -> Any:
    """Resolve ``url`` one hop at a time with a one-hop ``GuardedClient``: a redirect to a
    URL that must never be requested (unsubscribe, confirm, a List-Unsubscribe URL) ends
    the resolution with that reason instead of being followed. ``before_hop`` runs before
    each request (it raises to stop: a cancelled job)."""
    from dataclasses import replace

    from inboxd.mail.links import never_request
    from inboxd.net.guarded import LOOP, TOO_MANY_HOPS, Resolution

    hops: list[Any] = []
    current, seen = url, {url}
    first_cached: bool | None = None
    for _ in range(max_hops):
        if before_hop is not None:
            before_hop()
        got = client.resolve(current, max_body=max_body)
        first_cached = got.cached if first_cached is None else first_cached
        hops.extend(got.hops)
        location = got.hops[-1].location if got.hops else None
        if got.reason != TOO_MANY_HOPS or location is None:
            return replace(got, url=url, hops=tuple(hops), cached=bool(first_cached))
        why = never_request(location, listed)
        if why is not None:
            return Resolution(url=url, hops=tuple(hops), reason=why, detail=location)
        if location in seen:
            return Resolution(url=url, hops=tuple(hops), reason=LOOP, detail=location)
        seen.add(location)
        current = location
    detail = f"still redirecting after {max_hops} requests"
    return Resolution(url=url, hops=tuple(hops), reason=TOO_MANY_HOPS, detail=detail)


def _result(found: list[_Found], resolutions: dict[str, Any], *, resolved: bool) -> dict[str, Any]:
    from inboxd.mail.links import clean_url, never_request

    counts = {"newsletters": len(found), "links": 0, "articles": 0, "rejected": 0}
    reasons: dict[str, int] = {}
    newsletters: list[dict[str, Any]] = []
    for f in found:
        articles: dict[str, dict[str, Any]] = {}
        rejected = list(f.rejected)
        for link in f.links:
            counts["links"] += 1
            key = clean_url(link.unwrapped)
            res = resolutions.get(key)
            if res is None:
                final, hops, title = key, 0, link.text or None
            elif not res.ok:
                rejected.append({"url": link.url, "reason": str(res.reason)})
                continue
            else:
                final = clean_url(res.final_url or key)
                hops, title = len(res.hops), link.text or res.title
                # A redirect may end on a page a link could not be seen to be (an
                # unsubscribe behind a short link): it is no article.
                why = never_request(final, ())
                if why is not None:
                    rejected.append({"url": link.url, "reason": why})
                    continue
            have = articles.get(final)
            if have is None:
                articles[final] = {
                    "url": final,
                    "original_url": link.url,
                    "title": title,
                    "hops": hops,
                }
            elif not have["title"] and title:
                have["title"] = title
        for r in rejected:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        counts["articles"] += len(articles)
        counts["rejected"] += len(rejected)
        row = f.row
        when = row.date or row.sort_date
        newsletters.append(
            {
                "message_id": int(row.id),
                "message_header_id": row.message_id,
                "subject": row.subject,
                "from": row.from_addr,
                "from_name": row.from_name,
                "date": when.isoformat() if when else None,
                "canonical_url": f.canonical_url,
                "articles": list(articles.values()),
                "rejected": rejected,
            }
        )
    hits = sum(1 for r in resolutions.values() if r.cached)
    return {
        "newsletters": newsletters,
        "counts": counts | {"resolved": len(resolutions), "cache_hits": hits, "network": resolved},
        "rejected_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
    }


def result_as_text(result: dict[str, Any]) -> str:
    """A finished extraction as plain text: each newsletter, its articles, what was rejected."""
    lines: list[str] = []
    for n in result.get("newsletters") or ():
        lines.append(f"{n.get('date') or ''}  {n.get('from') or ''}  {n.get('subject') or ''}")
        if n.get("canonical_url"):
            lines.append(f"  view online: {n['canonical_url']}")
        for a in n.get("articles") or ():
            title = a.get("title") or ""
            lines.append(f"  - {title} <{a['url']}>" if title else f"  - {a['url']}")
        for r in n.get("rejected") or ():
            lines.append(f"  x {r['reason']}: {r['url']}")
        lines.append("")
    counts = result.get("counts") or {}
    lines.append(
        f"{counts.get('newsletters', 0)} newsletters, {counts.get('articles', 0)} articles, "
        f"{counts.get('rejected', 0)} links rejected"
    )
    return "\n".join(lines) + "\n"
