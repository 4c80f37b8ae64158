"""``/api/messages`` and ``/api/threads``: reading the caller's mail (all mail for an admin).

A message's HTML is served as its own document (``/html``) for the dashboard's sandboxed
frame, under a Content-Security-Policy that allows no script, no plugin, no form, no
request to anywhere (remote images only when the reader asked for them), so even HTML the
sanitiser let through by mistake can neither run nor phone home.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import HTMLResponse

from inboxd.actions import messages as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.schemas import (
    MessageDetail,
    MessagePage,
    ThreadOut,
    ThreadPage,
    TopMessages,
    error_responses,
)
from inboxd.api.state import State
from inboxd.vocabulary import Category

router = APIRouter(tags=["messages"])

MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the message's id")]
ThreadId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the thread's id")]
QueryText = Annotated[
    str, Query(max_length=400, description="search query (Gmail and notmuch syntax)")
]
AccountFilter = Annotated[str | None, Query(max_length=36, description="one account only")]
Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]
CursorParam = Annotated[
    str | None, Query(max_length=64, description="next_cursor of the previous page")
]
SortParam = Annotated[
    Literal["date", "priority"],
    Query(description="date: newest first; priority: most important first, untriaged last"),
]

#: The frame's policy: inline styles and the message's own (data:) images only, nothing
#: else; ``sandbox`` without allow-scripts or allow-same-origin, links may open a new
#: window (outside the sandbox).
_FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:{remote}; "
    "font-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {media_type: _BINARY}}}


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a route whose own answer is not JSON (FastAPI would document them
    in the route's media type)."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        status: {
            "description": spec["description"],
            "content": {"application/json": {"schema": schema}},
        }
        for status, spec in error_responses(*statuses).items()
    }


@router.get(
    "/api/messages", response_model=MessagePage, responses=error_responses(400, 401, 404, 422)
)
def list_messages(
    user: CurrentUser,
    state: State,
    q: QueryText = "",
    account_id: AccountFilter = None,
    limit: Limit = actions.DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: SortParam = "date",
) -> Any:
    """Messages matching the query, newest first or (``sort=priority``) most important
    first (keyset pages: follow ``next_cursor``, with the same sort)."""
    return actions.search(
        state.app,
        q,
        owner=user.owner_filter(),
        account_id=account_id,
        limit=limit,
        cursor=cursor,
        sort=sort,
    )


@router.get(
    "/api/messages/top", response_model=TopMessages, responses=error_responses(400, 401, 404, 422)
)
def top_messages(
    user: CurrentUser,
    state: State,
    n: Annotated[
        int, Query(ge=1, le=actions.MAX_TOP, description="how many messages")
    ] = actions.DEFAULT_TOP,
    category: Annotated[Category | None, Query(description="only this category")] = None,
    since: Annotated[
        str | None,
        Query(
            max_length=20,
            description="today (from 00:00 UTC), Nd, Nw (7d, 2w) or a day (YYYY-MM-DD, UTC)",
        ),
    ] = None,
    unread: Annotated[bool, Query(description="only unread messages")] = False,
    q: QueryText = "",
    account_id: AccountFilter = None,
) -> Any:
    """The N most important triaged messages (priority, then newest), with their reasons."""
    return actions.top(
        state.app,
        owner=user.owner_filter(),
        n=n,
        category=category,
        since=since,
        unread=unread,
        text=q,
        account_id=account_id,
    )


@router.get(
    "/api/messages/{message_id}",
    response_model=MessageDetail,
    responses=error_responses(401, 404, 422),
)
def get_message(message_id: MessageId, user: CurrentUser, state: State) -> Any:
    """One message: headers, plain text, sanitised HTML, files, folders, flags, parse notes."""
    return actions.detail(state.app, message_id, owner=user.owner_filter())


@router.get(
    "/api/messages/{message_id}/raw",
    response_class=Response,
    responses=_binary("message/rfc822", "The message's exact stored bytes.")
    | error_responses(401, 404, 422),
)
def get_raw(message_id: MessageId, user: CurrentUser, state: State) -> Response:
    """The message exactly as it was fetched (an .eml file)."""
    raw = actions.raw_message(state.app, message_id, owner=user.owner_filter())
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{message_id}.eml"'},
    )


@router.get(
    "/api/messages/{message_id}/html",
    response_class=HTMLResponse,
    responses=_json_errors(401, 404, 422),
)
def get_html(
    message_id: MessageId,
    user: CurrentUser,
    state: State,
    remote: Annotated[
        int, Query(ge=0, le=1, description="1: load remote images and styles too")
    ] = 0,
) -> HTMLResponse:
    """The message as a safe HTML document for a sandboxed frame (its text when it has no
    HTML), under a strict Content-Security-Policy."""
    view = actions.html_view(state.app, message_id, owner=user.owner_filter(), remote=bool(remote))
    policy = _FRAME_POLICY.format(remote=" http: https:" if remote else "")
    return HTMLResponse(
        view.document,
        headers={
            "Content-Security-Policy": policy,
            # The dashboard frames it (the default for every other answer is DENY).
            "X-Frame-Options": "SAMEORIGIN",
            "X-Remote-Content-Blocked": "1" if view.remote_content_blocked else "0",
        },
    )


@router.get(
    "/api/messages/{message_id}/attachments/{index}",
    response_class=Response,
    responses=_binary("*/*", "The file's decoded bytes, as a download.")
    | error_responses(401, 404, 422),
)
def get_attachment(
    message_id: MessageId,
    index: Annotated[int, Path(ge=0, le=100_000, description="the file's index")],
    user: CurrentUser,
    state: State,
) -> Response:
    """File ``index`` of the message (its ``attachments`` list), always as a download."""
    part, data = actions.attachment(state.app, message_id, index, owner=user.owner_filter())
    return Response(
        data,
        media_type=part.content_type,
        headers={
            "Content-Disposition": _disposition(part.filename or f"attachment-{index}"),
            "X-Content-Type-Options": "nosniff",
            # Opened in a tab anyway, it may not run anything.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


def _disposition(filename: str) -> str:
    """``attachment`` with the name both as ASCII and as RFC 5987 UTF-8."""
    fallback = "".join(ch if ch.isascii() and ch.isprintable() else "_" for ch in filename)
    fallback = fallback.replace('"', "_").replace("\\", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/api/threads", response_model=ThreadPage, responses=error_responses(400, 401, 404, 422)
)
def list_threads(
    user: CurrentUser,
    state: State,
    q: QueryText = "",
    account_id: AccountFilter = None,
    limit: Limit = actions.DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Any:
    """Threads with a message matching the query, by their newest such message."""
    return actions.threads(
        state.app,
        q,
        owner=user.owner_filter(),
        account_id=account_id,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/api/threads/{thread_id}", response_model=ThreadOut, responses=error_responses(401, 404, 422)
)
def get_thread(thread_id: ThreadId, user: CurrentUser, state: State) -> Any:
    """A thread's messages, oldest first, copies of one message shown once."""
    return actions.thread(state.app, thread_id, owner=user.owner_filter())
