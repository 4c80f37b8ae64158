"""A local Microsoft Graph mail server on 127.0.0.1, answering as Microsoft documents.

Two parts on one HTTP server:

- :class:`TokenEndpoint`: the identity platform's ``/{tenant}/oauth2/v2.0/token`` (refresh
  grant; refresh tokens rotate on every use, as Microsoft's do; ``invalid_grant`` once
  revoked). Sign-in flows (device code, authorization code) are more routes on the same
  class: add a method and a line in :meth:`TokenEndpoint.handle`.
- :class:`GraphServer`: ``/v1.0/me/mailFolders`` (paged with ``@odata.nextLink``, child
  folders), the messages delta query (``@odata.nextLink`` to ``@odata.deltaLink``,
  ``@removed``, ``Prefer: odata.maxpagesize``), ``/me/messages/{id}`` (GET, PATCH),
  ``/$value``, ``/move`` (a new id unless ``Prefer: IdType="ImmutableId"``), ``$filter`` on
  ``internetMessageId``, JSON ``$batch``; faults on demand (429/503 with Retry-After, 410
  ``SyncStateNotFound`` for delta tokens issued before :meth:`GraphServer.expire_delta`),
  a delay added to every request, and request counters by kind.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.support.local_http import send, serve

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (or bytes), headers

#: Well-known folder names Graph accepts in place of a folder id.
WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "archive": "Archive",
}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return status, {"error": {"code": code, "message": message}}, headers or {}


@dataclass
class TokenEndpoint:
    """The Microsoft identity platform's token endpoint (v2.0), refresh grant only."""

    client_id: str = "graph-test-client"
    access_lifetime: int = 3600
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> client id
    access_tokens: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    #: answers to give before normal service resumes: (status, body, headers)
    scripted: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new refresh token for the test's account (what a sign-in would give)."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = self.client_id
        return token

    def revoke_all(self) -> None:
        """The user revoked the app's consent: every refresh and access token stops working."""
        with self._lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def expire_access(self) -> None:
        """Every access token stops working (as if an hour passed): Graph answers 401."""
        with self._lock:
            self.access_tokens.clear()

    def valid(self, access_token: str) -> bool:
        """True for an access token this endpoint issued and has not expired."""
        with self._lock:
            return access_token in self.access_tokens

    def handle(self, method: str, path: str, form: dict[str, str]) -> Answer | None:
        """The answer for a request at ``path``, or None when it is not this endpoint's."""
        if method == "POST" and re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", path):
            return self._token(form)
        return None

    def _token(self, form: dict[str, str]) -> Answer:
        with self._lock:
            self.requests.append(form)
            if self.scripted:
                return self.scripted.pop(0)
            if form.get("grant_type") != "refresh_token":
                return 400, {"error": "unsupported_grant_type"}, {}
            if form.get("client_id") != self.client_id:
                return 400, {"error": "invalid_client", "error_description": "AADSTS700016"}, {}
            old = form.get("refresh_token", "")
            if self.refresh_tokens.pop(old, None) is None:
                return (
                    400,
                    {"error": "invalid_grant", "error_description": "AADSTS70008: expired"},
                    {},
                )
            access, rotated = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
            self.access_tokens.add(access)
            self.refresh_tokens[rotated] = self.client_id
        return (
            200,
            {
                "token_type": "Bearer",
                "scope": form.get("scope", ""),
                "expires_in": self.access_lifetime,
                "access_token": access,
                "refresh_token": rotated,
            },
            {},
        )


@dataclass
class GraphFolder:
    """A mailFolder."""

    id: str
    name: str
    parent: str  # the parent's id ("root" for top-level folders)
    well_known: str | None = None


@dataclass
class GraphMessage:
    """A message in a folder, with the properties a mail client reads."""

    id: str
    folder: str
    raw: bytes
    message_id: str
    is_read: bool = False
    flagged: bool = False
    categories: list[str] = field(default_factory=list)
    seq: int = 0  # when it last changed in its folder (delta tokens count in these)


@dataclass
class _Fault:
    kind: str
    status: int
    times: int
    retry_after: float | None
    code: str


class GraphServer:
    """Microsoft Graph's mail endpoints over one user's mailbox, plus the token endpoint."""

    def __init__(self, *, delay: float = 0.0, max_page: int = 1000, folder_page: int = 100) -> None:
        self.tokens = TokenEndpoint()
        self.delay = delay
        self.max_page = max_page
        #: most folders per mailFolders page, whatever $top asks (to test their paging)
        self.folder_page = folder_page
        self.folders: dict[str, GraphFolder] = {}
        self.messages: dict[str, GraphMessage] = {}
        #: (folder id, message id, seq) of messages removed from a folder
        self.removed: list[tuple[str, str, int]] = []
        self.counts: Counter[str] = Counter()
        self.batch_enabled = True
        self._seq = 0
        self._generation = 0  # delta tokens of an older generation are expired (410)
        self._ids = 0
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        for well_known, name in WELL_KNOWN.items():
            if well_known != "archive":  # Exchange makes it on first use; tests may add it
                self.add_folder(name, well_known=well_known)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for an ACK

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if owner.delay:
                    time.sleep(owner.delay)
                status, body, headers = owner.answer(self.command, self.path, self.headers, data)
                send(self, status, body, headers)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *_args: object) -> None:
                pass

        self._http = serve(Handler)

    # -- addresses -------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        return self._http.base

    @property
    def graph_url(self) -> str:
        """What INBOXD_GRAPH_URL is set to."""
        return f"{self.base}/v1.0"

    @property
    def authority(self) -> str:
        """What INBOXD_GRAPH_AUTHORITY is set to."""
        return self.base

    def close(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()

    # -- the mailbox -----------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        # Graph ids are long base64 strings; these are shorter but as opaque.
        return f"{prefix}{self._ids:010d}{secrets.token_hex(6)}="

    def _tick(self) -> int:
        self._seq += 1
        return self._seq

    def add_folder(
        self, name: str, *, parent: str | None = None, well_known: str | None = None
    ) -> str:
        """Make a folder; returns its id."""
        with self._lock:
            folder = GraphFolder(self._new_id("AAMkF"), name, parent or "root", well_known)
            self.folders[folder.id] = folder
            return folder.id

    def folder_id(self, name: str) -> str:
        """The id of the folder named ``name`` (a display name, or well-known)."""
        with self._lock:
            for folder in self.folders.values():
                if folder.well_known == name.lower() or folder.name == name:
                    return folder.id
        raise KeyError(name)

    def add_message(
        self,
        folder: str,
        raw: bytes,
        *,
        is_read: bool = False,
        flagged: bool = False,
        categories: list[str] | None = None,
    ) -> str:
        """Deliver ``raw`` to ``folder`` (id or name); returns the message's id."""
        with self._lock:
            fid = folder if folder in self.folders else self.folder_id(folder)
            found = re.search(rb"(?im)^message-id:\s*(<[^>\r\n]*>)", raw)
            message = GraphMessage(
                self._new_id("AAMkM"),
                fid,
                raw,
                found.group(1).decode() if found else "",
                is_read,
                flagged,
                list(categories or []),
                self._tick(),
            )
            self.messages[message.id] = message
            return message.id

    def change(self, message_id: str, **values: Any) -> None:
        """Change a message as another client would (is_read, flagged, categories)."""
        with self._lock:
            message = self.messages[message_id]
            for name, value in values.items():
                setattr(message, name, value)
            message.seq = self._tick()

    def delete(self, message_id: str) -> None:
        """Remove a message as another client would (delta shows it ``@removed``)."""
        with self._lock:
            message = self.messages.pop(message_id)
            self.removed.append((message.folder, message.id, self._tick()))

    def move(self, message_id: str, folder: str, *, immutable: bool = True) -> str:
        """Move a message to ``folder`` (id or name); returns its id there."""
        with self._lock:
            fid = folder if folder in self.folders else self.folder_id(folder)
            message = self.messages.pop(message_id)
            self.removed.append((message.folder, message.id, self._tick()))
            if not immutable:
                message.id = self._new_id("AAMkM")
            message.folder, message.seq = fid, self._tick()
            self.messages[message.id] = message
            return message.id

    def in_folder(self, folder: str) -> list[GraphMessage]:
        """The messages of ``folder`` (id or name)."""
        with self._lock:
            fid = folder if folder in self.folders else self.folder_id(folder)
            return [m for m in self.messages.values() if m.folder == fid]

    def expire_delta(self) -> None:
        """Every delta and skip token issued so far is expired: 410 SyncStateNotFound."""
        with self._lock:
            self._generation += 1

    def fail(
        self,
        kind: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        code: str = "",
    ) -> None:
        """The next ``times`` requests of ``kind`` (see :meth:`kind_of`) get ``status``."""
        with self._lock:
            self._faults.append(_Fault(kind, status, times, retry_after, code or f"HTTP{status}"))

    def _take_fault(self, kind: str) -> Answer | None:
        """The answer of the next fault planned for ``kind`` (under the lock), if any."""
        fault = next((f for f in self._faults if f.kind == kind), None)
        if fault is None:
            return None
        fault.times -= 1
        if fault.times <= 0:
            self._faults.remove(fault)
        extra = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        return _error(fault.status, fault.code, "injected fault", extra)

    # -- requests --------------------------------------------------------------------------

    @staticmethod
    def kind_of(method: str, path: str) -> str:
        """What a request is, for counters and faults: folders, delta, list, message,
        value, patch, move, create_folder, batch, token, other."""
        route = urlsplit(path).path
        if route.endswith("/oauth2/v2.0/token"):
            return "token"
        if route.endswith("/$batch"):
            return "batch"
        if route.endswith("/messages/delta"):
            return "delta"
        if route.endswith("/$value"):
            return "value"
        if route.endswith("/move"):
            return "move"
        if re.search(r"/mailFolders/[^/]+/messages$", route):
            return "list"
        if "/messages/" in route:
            return "patch" if method == "PATCH" else "message"
        if method == "POST" and route.endswith("/mailFolders"):
            return "create_folder"
        if "/mailFolders" in route:
            return "folders"
        return "other"

    def answer(self, method: str, path: str, headers: Any, data: bytes) -> Answer:
        """The answer to one HTTP request."""
        kind = self.kind_of(method, path)
        with self._lock:
            self.counts[kind] += 1
            fault = self._take_fault(kind)
        if fault is not None:
            return fault
        if kind == "token":
            form = {k: v[0] for k, v in parse_qs(data.decode()).items()}
            found = self.tokens.handle(method, urlsplit(path).path, form)
            return found if found is not None else _error(404, "NotFound", path)
        auth = str(headers.get("Authorization") or "")
        if not auth.startswith("Bearer ") or not self.tokens.valid(auth[7:]):
            return _error(401, "InvalidAuthenticationToken", "Access token has expired.")
        body = json.loads(data) if data else None
        if kind == "batch":
            return self._batch(body, headers)
        return self._route(method, path, dict(headers.items()), body)

    def _route(self, method: str, path: str, headers: dict[str, str], body: Any) -> Answer:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = unquote(parts.path)
        prefix = urlsplit(self.graph_url).path
        if not route.startswith(prefix + "/me/"):
            return _error(404, "NotFound", route)
        route = route[len(prefix) + 3 :]
        prefer = {k.lower(): v for k, v in headers.items()}.get("prefer", "")
        immutable = 'idtype="immutableid"' in prefer.lower()
        with self._lock:
            if route.startswith("/messages/"):
                return self._message_route(method, route, body, immutable=immutable)
            return self._folder_route(method, route, query, prefer, body)

    def _folder_route(
        self, method: str, route: str, query: dict[str, str], prefer: str, body: Any
    ) -> Answer:
        if m := re.fullmatch(r"/mailFolders/([^/]+)/messages/delta", route):
            return self._delta(m.group(1), query, prefer, route)
        if m := re.fullmatch(r"/mailFolders/([^/]+)/messages", route):
            return self._list(m.group(1), query, route)
        if route == "/mailFolders" and method == "POST":
            fid = self.add_folder(str(body["displayName"]))
            return 201, self._folder_json(self.folders[fid]), {}
        if route == "/mailFolders":
            return self._folders("root", query, route)
        if m := re.fullmatch(r"/mailFolders/([^/]+)/childFolders", route):
            return self._folders(m.group(1), query, route)
        if m := re.fullmatch(r"/mailFolders/([^/]+)", route):
            folder = self._folder(m.group(1))
            if folder is None:
                return _error(404, "ErrorItemNotFound", "The specified object was not found")
            return 200, self._folder_json(folder), {}
        return _error(404, "NotFound", route)

    def _message_route(self, method: str, route: str, body: Any, *, immutable: bool) -> Answer:
        m = re.fullmatch(r"/messages/([^/]+)(/\$value|/move)?", route)
        message = self.messages.get(m.group(1)) if m else None
        if m is None or message is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found")
        if m.group(2) == "/$value":
            return 200, message.raw, {}
        if m.group(2) == "/move":
            target = self._folder(str((body or {}).get("destinationId", "")))
            if target is None:
                return _error(404, "ErrorItemNotFound", "no such folder")
            new_id = self.move(message.id, target.id, immutable=immutable)
            return 201, self._message_json(self.messages[new_id]), {}
        if method == "PATCH":
            self._patch(message, body or {})
        return 200, self._message_json(message), {}

    def _folder(self, ref: str) -> GraphFolder | None:
        if ref in self.folders:
            return self.folders[ref]
        return next((f for f in self.folders.values() if f.well_known == ref.lower()), None)

    def _folder_json(self, folder: GraphFolder) -> dict[str, Any]:
        held = [m for m in self.messages.values() if m.folder == folder.id]
        return {
            "id": folder.id,
            "displayName": folder.name,
            "parentFolderId": folder.parent,
            "childFolderCount": sum(1 for f in self.folders.values() if f.parent == folder.id),
            "unreadItemCount": sum(1 for m in held if not m.is_read),
            "totalItemCount": len(held),
            "isHidden": False,
        }

    def _folders(self, parent: str, query: dict[str, str], route: str) -> Answer:
        owner = self._folder(parent)
        pid = "root" if parent == "root" else (owner.id if owner else None)
        if pid is None:
            return _error(404, "ErrorItemNotFound", "not found")
        found = [f for f in self.folders.values() if f.parent == pid]
        top, skip = min(int(query.get("$top", 10)), self.folder_page), int(query.get("$skip", 0))
        page: dict[str, Any] = {"value": [self._folder_json(f) for f in found[skip : skip + top]]}
        if skip + top < len(found):
            page["@odata.nextLink"] = f"{self.graph_url}/me{route}?$top={top}&$skip={skip + top}"
        return 200, page, {}

    def _message_json(self, message: GraphMessage) -> dict[str, Any]:
        return {
            "id": message.id,
            "parentFolderId": message.folder,
            "internetMessageId": message.message_id,
            "isRead": message.is_read,
            "flag": {"flagStatus": "flagged" if message.flagged else "notFlagged"},
            "categories": list(message.categories),
        }

    def _patch(self, message: GraphMessage, body: dict[str, Any]) -> None:
        if "isRead" in body:
            message.is_read = bool(body["isRead"])
        if "flag" in body:
            message.flagged = body["flag"].get("flagStatus") == "flagged"
        if "categories" in body:
            message.categories = list(body["categories"])
        message.seq = self._tick()

    def _list(self, ref: str, query: dict[str, str], route: str) -> Answer:
        folder = self._folder(ref)
        if folder is None:
            return _error(404, "ErrorItemNotFound", "not found")
        found = sorted(
            (m for m in self.messages.values() if m.folder == folder.id), key=lambda m: m.id
        )
        if wanted := re.fullmatch(r"internetMessageId eq '(.*)'", query.get("$filter", "")):
            value = wanted.group(1).replace("''", "'")
            found = [m for m in found if m.message_id == value]
        top, skip = min(int(query.get("$top", 10)), self.max_page), int(query.get("$skip", 0))
        page: dict[str, Any] = {"value": [self._message_json(m) for m in found[skip : skip + top]]}
        if skip + top < len(found):
            rest = {k: v for k, v in query.items() if k not in ("$top", "$skip")}
            more = "".join(f"&{k}={quote(v)}" for k, v in rest.items())
            page["@odata.nextLink"] = (
                f"{self.graph_url}/me{route}?$top={top}&$skip={skip + top}{more}"
            )
        return 200, page, {}

    # -- delta -----------------------------------------------------------------------------

    def _token(self, **values: Any) -> str:
        values["g"] = self._generation
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()

    def _delta(self, ref: str, query: dict[str, str], prefer: str, route: str) -> Answer:
        folder = self._folder(ref)
        if folder is None:
            return _error(404, "ErrorItemNotFound", "not found")
        token = query.get("$deltatoken") or query.get("$skiptoken")
        if token:
            state = json.loads(base64.urlsafe_b64decode(token))
            if state["g"] != self._generation:
                return _error(410, "SyncStateNotFound", "The sync state is no longer valid.")
            if "$deltatoken" in query:
                state = {"base": state["seq"], "snap": self._seq, "at": 0}
        else:
            state = {"base": 0, "snap": self._seq, "at": 0}
        size = 10
        if found := re.search(r"odata\.maxpagesize=(\d+)", prefer):
            size = min(int(found.group(1)), self.max_page)
        base, snap, at = state["base"], state["snap"], state["at"]
        items: list[tuple[int, str, dict[str, Any]]] = [
            (m.seq, m.id, self._message_json(m) | {"@odata.type": "#microsoft.graph.message"})
            for m in self.messages.values()
            if m.folder == folder.id and base < m.seq <= snap
        ]
        if base:  # a first sync lists what is there; later ones say what went
            present = {m.id for m in self.messages.values() if m.folder == folder.id}
            items += [
                (seq, mid, {"id": mid, "@removed": {"reason": "deleted"}})
                for fid, mid, seq in self.removed
                if fid == folder.id and base < seq <= snap and mid not in present
            ]
        items.sort(key=lambda item: (item[0], item[1]))
        page_items = [item for _, _, item in items[at : at + size]]
        link = f"{self.graph_url}/me{route}"
        page: dict[str, Any] = {"value": page_items}
        if at + size < len(items):
            page["@odata.nextLink"] = (
                f"{link}?$skiptoken={self._token(base=base, snap=snap, at=at + size)}"
            )
        else:
            page["@odata.deltaLink"] = f"{link}?$deltatoken={self._token(seq=snap)}"
        return 200, page, {"Preference-Applied": f"odata.maxpagesize={size}"}

    # -- $batch ----------------------------------------------------------------------------

    def _batch(self, body: Any, headers: Any) -> Answer:
        if not self.batch_enabled:
            return _error(400, "BadRequest", "Invalid batch payload format.")
        requests = (body or {}).get("requests") or []
        if len(requests) > 20:
            return _error(400, "BadRequest", "Number of batch requests exceeds 20.")
        prefix = urlsplit(self.graph_url).path
        responses = []
        for request in requests:
            inner = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
            if "prefer" not in inner and headers.get("Prefer"):
                inner["prefer"] = headers.get("Prefer")
            kind = self.kind_of(request["method"], request["url"])
            with self._lock:
                self.counts[f"batch:{kind}"] += 1
                fault = self._take_fault(kind)
            if fault is not None:  # Graph throttles the parts of a batch one by one
                status, answer, extra = fault
            else:
                status, answer, extra = self._route(
                    request["method"], prefix + request["url"], inner, request.get("body")
                )
            if isinstance(answer, bytes):
                answer = base64.b64encode(answer).decode()
                extra = extra | {"Content-Type": "text/plain"}
            else:
                extra = extra | {"Content-Type": "application/json"}
            responses.append(
                {"id": request["id"], "status": status, "headers": extra, "body": answer}
            )
        return 200, {"responses": responses}, {}
