"""Reading mail as people do it: search and list, open a message (its text, its HTML made
safe, its files, what went wrong parsing it), its exact bytes, threads. The API and the CLI
call these; each takes the reader's ``owner`` (None: an admin, who sees everything)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, NotFound
from inboxd.mail.attachments import Part, inline_images, list_parts, part_bytes
from inboxd.mail.header_list import header_list
from inboxd.mail.reading import parse_message
from inboxd.mail.sanitize import sanitize_html
from inboxd.store import messages as store
from inboxd.store.bodies import read_body
from inboxd.store.search import And, Categorized, Node, Query, State, parse_query
from inboxd.vocabulary import Category

__all__ = [
    "HtmlView",
    "attachment",
    "category_counts",
    "detail",
    "html_view",
    "raw_message",
    "search",
    "thread",
    "threads",
    "top",
]

#: A page's size when the caller does not say.
DEFAULT_LIMIT = 50
#: How many messages top-N gives when the caller does not say, and at most.
DEFAULT_TOP = 10
MAX_TOP = 100
_SINCE_AGE = re.compile(r"(\d{1,4})([dw])\Z")
_SINCE_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DOCUMENT = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
    '<meta name="referrer" content="no-referrer">'
    "<style>body{{margin:0;padding:8px;font-family:sans-serif;overflow-wrap:anywhere}}"
    "pre{{white-space:pre-wrap;font-family:inherit}}</style>"
    "</head><body>{body}</body></html>\n"
)


@dataclass(frozen=True, slots=True)
class HtmlView:
    """A message as one safe HTML document, and whether remote content was held back."""

    document: str
    remote_content_blocked: bool


def search(
    app: App,
    text: str = "",
    *,
    owner: str | None,
    account_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    sort: str = "date",
) -> dict[str, Any]:
    """A page of the messages matching the query ``text``, newest first (``sort="priority"``:
    most important first, untriaged last): ``{"messages": [...], "next_cursor": ...}``; a
    malformed query raises InvalidQuery, a cursor of the other sort InvalidRequest."""
    query = parse_query(text)
    with reading(app.engine) as conn:
        page = store.list_messages(
            conn,
            owner=owner,
            query=query,
            account_id=account_id,
            limit=limit,
            cursor=cursor,
            sort=sort,
        )
    return {"messages": [row.to_dict() for row in page.items], "next_cursor": page.next_cursor}


def top(
    app: App,
    *,
    owner: str | None,
    n: int = DEFAULT_TOP,
    category: str | None = None,
    since: str | None = None,
    unread: bool = False,
    text: str = "",
    account_id: str | None = None,
) -> dict[str, Any]:
    """The ``n`` most important triaged messages (priority, then newest) matching the
    filters: ``{"messages": [...]}``. ``since``: ``today`` (from 00:00 UTC), ``Nd``,
    ``Nw`` or a day ``YYYY-MM-DD`` (UTC); untriaged messages are never in it."""
    if not 1 <= n <= MAX_TOP:
        raise InvalidRequest(f"n must be from 1 to {MAX_TOP}, not {n}")
    bound = _since(since) if since is not None else None
    parts: list[Node] = []
    if category is not None:
        parts.append(Categorized(_category(category)))
    if unread:
        parts.append(State("is", "unread"))
    asked = parse_query(text)
    if asked.root is not None:
        parts.append(asked.root)
    query = Query(text, And(tuple(parts)) if parts else None)
    with reading(app.engine) as conn:
        found = store.top_messages(
            conn, owner=owner, query=query, account_id=account_id, n=n, since=bound
        )
    return {"messages": [row.to_dict() for row in found]}


def _category(value: str) -> str:
    wanted = value.strip().lower()
    allowed = [str(c) for c in Category]
    if wanted not in allowed:
        raise InvalidRequest(f"category {value!r} is not one of {', '.join(allowed)}")
    return wanted


def _since(value: str) -> datetime:
    """The moment a top-N's ``since`` starts at (UTC)."""
    wanted = value.strip().lower()
    now = utcnow()
    if wanted == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if found := _SINCE_AGE.match(wanted):
        days = int(found.group(1)) * (7 if found.group(2) == "w" else 1)
        return now - timedelta(days=days)
    if _SINCE_DAY.match(wanted):
        try:
            day = date.fromisoformat(wanted)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        except ValueError:
            pass
    raise InvalidRequest(
        f"since {value!r} is not today, a number of days or weeks (7d, 2w) or a day (YYYY-MM-DD)"
    )


def category_counts(app: App, account_id: str, *, owner: str | None) -> dict[str, Any]:
    """The account's messages per category, every category named (0 included), and how
    many are untriaged; NotFound for an account ``owner`` may not see."""
    with reading(app.engine) as conn:
        return store.category_counts(conn, account_id, owner=owner).to_dict()


def detail(app: App, message_pk: int, *, owner: str | None) -> dict[str, Any]:
    """One message as a reader sees it: the message object plus its headers, plain text,
    sanitised HTML (remote content blocked), files and parse notes."""
    with reading(app.engine) as conn:
        row = store.get_message(conn, message_pk, owner=owner)
        raw = read_body(conn, message_pk)
    parsed = parse_message(raw)
    safe = sanitize_html(parsed.html_body) if parsed.html_body else None
    extra = row.extra
    notes = list(dict.fromkeys([*(extra.get("parse_errors") or []), *parsed.parse_errors]))
    return row.to_dict() | {
        "reply_to": list(extra.get("reply_to") or []),
        "in_reply_to": extra.get("in_reply_to"),
        "references": _references(extra.get("refs")),
        "list_id": extra.get("list_id"),
        "list_unsubscribe": extra.get("list_unsubscribe"),
        "headers": [{"name": name, "value": value} for name, value in header_list(raw)],
        "text": parsed.text_body,
        "html": safe.html if safe else None,
        "remote_content_blocked": bool(safe and safe.remote_content_blocked),
        "attachments": [part.to_dict() for part in list_parts(raw)],
        "parse_notes": notes,
    }


def _references(value: Any) -> list[str]:
    try:
        found = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return [str(ref) for ref in found] if isinstance(found, list) else []


def raw_message(app: App, message_pk: int, *, owner: str | None) -> bytes:
    """The message's exact stored bytes."""
    with reading(app.engine) as conn:
        store.get_message(conn, message_pk, owner=owner)
        return read_body(conn, message_pk)


def html_view(app: App, message_pk: int, *, owner: str | None, remote: bool) -> HtmlView:
    """The message as one HTML document for a sandboxed frame: its sanitised HTML with its
    own images inlined (remote ones only when ``remote``), else its text."""
    with reading(app.engine) as conn:
        store.get_message(conn, message_pk, owner=owner)
        raw = read_body(conn, message_pk)
    parsed = parse_message(raw)
    if not parsed.html_body:
        body = f"<pre>{html.escape(parsed.text_body or '')}</pre>"
        return HtmlView(_DOCUMENT.format(body=body), False)
    images = inline_images(raw, list_parts(raw)) if "cid:" in parsed.html_body.lower() else {}
    safe = sanitize_html(parsed.html_body, allow_remote=remote, images=images)
    return HtmlView(_DOCUMENT.format(body=safe.html), safe.remote_content_blocked)


def attachment(app: App, message_pk: int, index: int, *, owner: str | None) -> tuple[Part, bytes]:
    """File ``index`` of the message (see ``attachments`` of :func:`detail`) and its
    decoded bytes; NotFound when there is no such file."""
    raw = raw_message(app, message_pk, owner=owner)
    parts = list_parts(raw)
    if not 0 <= index < len(parts):
        raise NotFound(f"message {message_pk} has no attachment {index}")
    return parts[index], part_bytes(raw, parts[index])


def threads(
    app: App,
    text: str = "",
    *,
    owner: str | None,
    account_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of threads with a message matching ``text``, by their newest such message:
    ``{"threads": [...], "next_cursor": ...}``."""
    query = parse_query(text)
    with reading(app.engine) as conn:
        page = store.list_threads(
            conn, owner=owner, query=query, account_id=account_id, limit=limit, cursor=cursor
        )
    return {"threads": [t.to_dict() for t in page.items], "next_cursor": page.next_cursor}


def thread(app: App, thread_id: int, *, owner: str | None) -> dict[str, Any]:
    """A thread's messages, oldest first; copies of one message (same Message-ID, e.g. the
    sent copy and the one received back from a list) shown once, with their count."""
    with reading(app.engine) as conn:
        rows = store.thread_messages(conn, thread_id, owner=owner)
    entries: list[dict[str, Any]] = []
    by_message_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        first = by_message_id.get(row.message_id) if row.message_id else None
        if first is not None:
            first["copies"] += 1
            first["copy_ids"].append(row.id)
            first["folders"] = sorted({*first["folders"], *row.folders})
            continue
        entry = row.to_dict() | {"copies": 1, "copy_ids": [row.id]}
        entries.append(entry)
        if row.message_id:
            by_message_id[row.message_id] = entry
    subject = next((e["subject"] for e in entries if e["subject"]), None)
    return {
        "id": thread_id,
        "account_id": rows[0].account_id,
        "subject": subject,
        "message_count": len(entries),
        "messages": entries,
    }
