"""The Microsoft Graph provider: :class:`~inboxd.providers.base.MailProvider` over Graph's
mail REST API (Outlook.com, Microsoft 365).

Folders come from ``/me/mailFolders`` and their ``childFolders`` (every page). Per folder,
the messages delta query is walked page by page (``Prefer: odata.maxpagesize``, ``$select``
of the id and the marks only); the bodies of the messages the store lacks are fetched with
``/messages/{id}/$value``, twenty per JSON ``$batch`` request (one request each where the
server refuses ``$batch``), several requests in flight while the engine stores earlier
batches.

The folder's sync state (its ``cursor``) is the link to go on from: a ``@odata.nextLink``
while a walk is under way (a killed job resumes from the last page stored), the
``@odata.deltaLink`` once it ended (the next sync asks only for what changed). The cursor
also carries what the walk saw of messages already stored (read/flag/category changes,
``@removed``) until the engine's reconcile step has written them, so a job killed between
the two loses none. An expired token (410 ``SyncStateNotFound``) starts the folder's delta
over: messages already stored are skipped, and the reconcile step lists the folder once to
learn their marks and which went while the token was expired.

Marks: ``isRead`` is ``\\Seen``, ``flag.flagStatus == "flagged"`` is ``\\Flagged``; Outlook
categories are labels (:class:`~inboxd.providers.base.Capabilities` ``labels``), so the
labels job writes ``inboxd/<Category>`` as a category, as on Gmail. Graph has no keywords
and no answered or draft flag to write: a mutation naming one is refused.

Ids are asked for as immutable (``Prefer: IdType="ImmutableId"``): a message keeps its key
when it moves between folders, in both the delta and a move's answer.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inboxd.db.types import utcnow
from inboxd.providers.base import (
    Applied,
    Capabilities,
    Changes,
    FetchedBatch,
    FetchedMessage,
    FetchPlan,
    FolderListing,
    FolderStatus,
    FolderUnavailable,
    KnownKeys,
    Marks,
    Mutation,
    MutationRefused,
    Pending,
    ProviderAccount,
    ProviderBase,
    ProviderError,
    ProviderOptions,
    RemoteFolder,
    SecretStore,
    StoredFolder,
    changed_labels,
    check_mutations,
)
from inboxd.providers.graph.client import BatchRefused, GraphClient, ItemGone, SyncStateGone
from inboxd.providers.graph.settings import GraphConfig, graph_config, token_source
from inboxd.providers.oauth import TokenSource

#: Requests in flight at once: Microsoft allows 4 concurrent requests per app and mailbox
#: (more are throttled with 429).
CONCURRENCY = 4
#: Bodies asked for in one JSON $batch request (Graph's limit).
BATCH = 20
#: Requests of bodies in flight or fetched ahead of the batch being stored (bounded
#: memory: this many times BATCH messages).
AHEAD = 8
#: What a delta or listing page carries of each message.
SELECT = "id,isRead,flag,categories"
#: Well-known folders: the name Graph accepts for them, the name inboxd gives, special use.
WELL_KNOWN = (
    ("inbox", "INBOX", None),
    ("sentitems", None, "\\Sent"),
    ("drafts", None, "\\Drafts"),
    ("deleteditems", None, "\\Trash"),
    ("junkemail", None, "\\Junk"),
    ("archive", None, "\\Archive"),
)
SEEN, FLAGGED = "\\Seen", "\\Flagged"


def open_provider(
    account: ProviderAccount, secrets: SecretStore, options: ProviderOptions
) -> GraphProvider:
    """The registry's factory: a Graph provider for ``account``."""
    return GraphProvider(
        graph_config(account), token_source(secrets, account, options.timeout), options
    )


def marks_of(item: Mapping[str, Any]) -> Marks:
    """A message's marks from its Graph properties."""
    flags: list[str] = []
    if item.get("isRead"):
        flags.append(SEEN)
    if (item.get("flag") or {}).get("flagStatus") == "flagged":
        flags.append(FLAGGED)
    return Marks(tuple(flags), tuple(str(c) for c in item.get("categories") or ()))


@dataclass
class _Walk:
    """One folder's delta walk in this sync: where it goes on, and what it saw of stored
    messages (kept in the cursor until reconciled)."""

    folder_id: str
    known: set[str]
    first_page: dict[str, Any] | None
    link: str | None
    marks: dict[str, Marks] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    #: the delta started over (expired token): reconcile lists the whole folder
    full: bool = False
    fetched: set[str] = field(default_factory=set)

    def cursor(self, link: str, *, partial: bool) -> dict[str, Any]:
        """The folder state to store with the batch that ends a page."""
        return {
            "cursor": {
                "link": link,
                "partial": partial,
                "full": self.full,
                "marks": {k: [list(m.flags), list(m.labels or ())] for k, m in self.marks.items()},
                "removed": sorted(self.removed),
                "at": utcnow().isoformat(),
            }
        }

    def restart(self) -> None:
        """The delta starts over from the folder's first page."""
        self.link, self.first_page, self.full = None, None, True
        self.marks.clear()
        self.removed.clear()

    def see(self, item: Mapping[str, Any]) -> Marks | None:
        """Take one delta item; its marks when its body is to be fetched."""
        key = str(item["id"])
        if "@removed" in item:
            self.removed.add(key)
            self.marks.pop(key, None)
            return None
        self.removed.discard(key)
        marks = marks_of(item)
        if key in self.known or key in self.fetched:
            if not self.full:
                self.marks[key] = marks
            return None
        self.fetched.add(key)
        return marks


_Entry = tuple[Future[dict[str, bytes | None]], list[tuple[str, Marks]]] | dict[str, Any]


class _Batches:
    """Bodies in flight and page ends, in walk order, cut into the engine's batches: a
    page's end (its checkpoint) goes with the batch holding its last message."""

    def __init__(self, folder: str, size: int) -> None:
        self.folder = folder
        self.size = size
        self.queue: deque[_Entry] = deque()
        self.out: list[FetchedMessage] = []
        self.missing: list[str] = []
        self.checkpoint: dict[str, Any] | None = None

    def settle(self, keep: int) -> Iterator[FetchedBatch]:
        """Take entries until at most ``keep`` are in flight; the batches they complete."""
        while len(self.queue) > keep:
            entry = self.queue.popleft()
            if isinstance(entry, dict):
                self.checkpoint = entry
                if not self.out and not self.missing:
                    yield self.cut()  # a page of marks only: its link is stored at once
                continue
            future, wanted = entry
            bodies = future.result()
            for key, marks in wanted:
                raw = bodies.get(key)
                if raw is None:
                    self.missing.append(key)
                else:
                    self.out.append(
                        FetchedMessage(key, raw, marks.flags, labels=marks.labels or ())
                    )
                if len(self.out) + len(self.missing) >= self.size:
                    yield self.cut()

    def rest(self) -> Iterator[FetchedBatch]:
        """The last, partial batch."""
        if self.out or self.missing or self.checkpoint:
            yield self.cut()

    def cut(self) -> FetchedBatch:
        """A batch of what was taken so far."""
        batch = FetchedBatch(
            messages=self.out,
            checkpoint=self.checkpoint,
            advance=len(self.out) + len(self.missing),
            unavailable=len(self.missing),
            notes=tuple(f"message {k} in {self.folder} is gone from Graph" for k in self.missing),
        )
        self.out, self.missing, self.checkpoint = [], [], None
        return batch

    def cancel(self) -> None:
        """Drop the bodies not fetched yet (the fetch ended early)."""
        for entry in self.queue:
            if not isinstance(entry, dict):
                entry[0].cancel()


class GraphProvider(ProviderBase):
    """One Graph account; its HTTP client is made again after :meth:`close`."""

    name = "Graph"

    def __init__(self, config: GraphConfig, token: TokenSource, options: ProviderOptions) -> None:
        self.config = config
        self.token = token
        self.options = options
        self._client: GraphClient | None = None
        #: folder name -> Graph folder id, and back
        self._ids: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._walks: dict[str, _Walk] = {}
        #: bodies are asked for in JSON $batch requests (until the server refuses one)
        self._batching = True

    @property
    def capabilities(self) -> Capabilities:
        """Reconnects, writes changes back, categories as labels."""
        return Capabilities(reconnects=True, mutations=True, labels=True)

    @property
    def location(self) -> str:
        """Graph's host."""
        return self.client.host

    @property
    def client(self) -> GraphClient:
        """The HTTP client (made when first needed)."""
        if self._client is None:
            self._client = GraphClient(
                self.config.graph_url,
                self.token,
                timeout=self.options.timeout,
                connections=CONCURRENCY,
            )
        return self._client

    @property
    def requests_sent(self) -> int:
        """Requests this provider sent so far (retries included)."""
        return self._client.sent if self._client is not None else 0

    def open(self) -> None:
        """Get an access token (a revoked grant fails here: the account needs attention)."""
        self.client.authenticate()

    def close(self) -> None:
        """Close the connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- folders ---------------------------------------------------------------------------

    def folders(self) -> FolderListing:
        """Every mail folder, children under their parent's name ("INBOX/Projects")."""
        special = self._well_known()
        found: list[tuple[RemoteFolder, FolderStatus]] = []
        ids: dict[str, str] = {}
        params = {"$top": "100", "$select": "id,displayName,childFolderCount,totalItemCount"}

        def walk(path: str, prefix: str) -> None:
            for item in self.client.pages(path, params=params):
                fid = str(item["id"])
                name, use = special.get(fid, (None, None))
                name = name or f"{prefix}{item.get('displayName') or fid}"
                ids[name] = fid
                found.append(
                    (
                        RemoteFolder(name, "/", use),
                        FolderStatus(int(item.get("totalItemCount") or 0)),
                    )
                )
                if item.get("childFolderCount"):
                    walk(f"/me/mailFolders/{fid}/childFolders", f"{name}/")

        walk("/me/mailFolders", "")
        self._ids, self._names = ids, {v: k for k, v in ids.items()}
        found.sort(key=lambda pair: (pair[0].name != "INBOX", pair[0].name))
        return FolderListing(found)

    def _well_known(self) -> dict[str, tuple[str | None, str | None]]:
        """Folder id -> (inboxd's name, special use) of the well-known folders there are."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for graph_name, name, use in WELL_KNOWN:
            with contextlib.suppress(ItemGone):
                item = self.client.get_json(
                    f"/me/mailFolders/{graph_name}", params={"$select": "id"}
                )
                out[str(item["id"])] = (name, use)
        return out

    def _folder_id(self, name: str) -> str | None:
        """The Graph id of the folder ``name``; the folders are listed again when it is
        not known (made or renamed since)."""
        if name not in self._ids:
            self.folders()
        return self._ids.get(name)

    # -- new mail --------------------------------------------------------------------------

    def pending(self, status: FolderStatus, state: StoredFolder, known: KnownKeys) -> Pending:
        """Messages the folder has beyond what the store holds (an estimate: the delta
        says exactly)."""
        return Pending(max(0, status.messages - len(known())))

    def plan(
        self,
        folder: str,
        status: FolderStatus,
        state: StoredFolder,
        known: KnownKeys,
        *,
        stored: Collection[str] = (),
    ) -> FetchPlan:
        """A streamed plan over the folder's delta, which goes on from the stored link; a
        delta with nothing in it is an unchanged folder (one request)."""
        fid = self._folder_id(folder)
        if fid is None:
            raise FolderUnavailable(folder, "gone from Graph since it was listed")
        walk = self._resume(fid, state, set(known()) | set(stored))
        notes: tuple[str, ...] = ()
        try:
            walk.first_page = self.client.get_json(
                walk.link or self._delta_path(fid),
                params=None if walk.link else {"$select": SELECT},
                prefer=self._page_pref(),
            )
        except SyncStateGone:
            walk.restart()
            walk.first_page = self._first_page(fid)
            notes = (f"the delta token of {folder} expired; listing the folder again",)
        except ItemGone as exc:
            # Deleted or renamed since it was listed: the next sync lists the folders again.
            raise FolderUnavailable(folder, f"gone from Graph ({exc})") from None
        self._walks[folder] = walk
        page = walk.first_page
        delta = page.get("@odata.deltaLink")
        if (
            delta
            and not page.get("value")
            and not walk.marks
            and not walk.removed
            and not walk.full
        ):
            return FetchPlan(
                folder=folder, unchanged=True, finish=walk.cursor(delta, partial=False)
            )
        return FetchPlan(folder=folder, streamed=True, cursor=walk.link, notes=notes)

    def _resume(self, fid: str, state: StoredFolder, known: set[str]) -> _Walk:
        """The walk from the stored cursor, with what it carries not reconciled yet."""
        cursor = state.cursor if isinstance(state.cursor, dict) else {}
        walk = _Walk(fid, known, None, cursor.get("link") or None)
        at = cursor.get("at")
        unsettled = cursor.get("partial") or (
            at is not None
            and (state.last_synced_at is None or datetime.fromisoformat(at) > state.last_synced_at)
        )
        if unsettled:
            walk.full = bool(cursor.get("full"))
            walk.marks = {
                k: Marks(tuple(v[0]), tuple(v[1])) for k, v in (cursor.get("marks") or {}).items()
            }
            walk.removed = set(cursor.get("removed") or ())
        return walk

    def _delta_path(self, fid: str) -> str:
        return f"/me/mailFolders/{fid}/messages/delta"

    def _page_pref(self) -> tuple[str, ...]:
        return (f"odata.maxpagesize={self.config.page_size}",)

    def _first_page(self, fid: str) -> dict[str, Any]:
        return self.client.get_json(
            self._delta_path(fid), params={"$select": SELECT}, prefer=self._page_pref()
        )

    def _pages(self, walk: _Walk) -> Iterator[tuple[dict[str, Any], str, bool]]:
        """The walk's pages with the link after each (and whether it is a nextLink); an
        expired token mid-walk starts the folder over."""
        page = walk.first_page
        while True:
            if page is None:
                try:
                    page = self.client.get_json(
                        walk.link or self._delta_path(walk.folder_id),
                        params=None if walk.link else {"$select": SELECT},
                        prefer=self._page_pref(),
                    )
                except SyncStateGone:
                    walk.restart()
                    continue
            next_link = page.get("@odata.nextLink")
            link = str(next_link or page.get("@odata.deltaLink") or "")
            if not link:
                raise ProviderError("Graph ended a delta page without a next or delta link")
            yield page, link, bool(next_link)
            if not next_link:
                return
            walk.link, page, walk.first_page = link, None, None

    def fetch(
        self,
        plan: FetchPlan,
        take: Callable[[], int | None] | None = None,
        *,
        singly: Mapping[int, str] | None = None,
        shared: bool = False,
    ) -> Generator[FetchedBatch, None, None]:
        """The walk's new messages in batches; the batch that completes a page carries the
        link after it (and the marks seen so far) as its checkpoint."""
        walk = self._walks[plan.folder]
        batches = _Batches(plan.folder, self.options.batch_messages)
        with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="graph-fetch") as pool:
            try:
                for page, link, partial in self._pages(walk):
                    wanted: list[tuple[str, Marks]] = []
                    for item in page.get("value") or ():
                        marks = walk.see(item)
                        if marks is not None:
                            wanted.append((str(item["id"]), marks))
                    for n in range(0, len(wanted), BATCH):
                        chunk = wanted[n : n + BATCH]
                        keys = [key for key, _ in chunk]
                        batches.queue.append((pool.submit(self._bodies, keys), chunk))
                        yield from batches.settle(AHEAD)
                    batches.queue.append(walk.cursor(link, partial=partial))
                yield from batches.settle(0)
                yield from batches.rest()
            finally:
                batches.cancel()

    def _bodies(self, keys: list[str]) -> dict[str, bytes | None]:
        """The MIME bytes of ``keys`` (None: gone meanwhile): one JSON $batch request
        while Graph takes them, else one request each."""
        out: dict[str, bytes | None] = {}
        if self._batching and len(keys) > 1:
            try:
                out = self.client.batch_values(keys)
            except BatchRefused:
                self._batching = False  # this endpoint has no $batch: single requests
        for key in keys:
            if key not in out:
                out[key] = self._body(key)
        return out

    def _body(self, key: str) -> bytes | None:
        """A message's MIME bytes; None when it went meanwhile."""
        try:
            return self.client.request("GET", f"/me/messages/{key}/$value").content
        except ItemGone:
            return None

    # -- marks and removals ----------------------------------------------------------------

    def changes(
        self, folder: str, status: FolderStatus, state: StoredFolder, *, list_keys: bool
    ) -> Changes:
        """What the delta said of stored messages (marks, removals); after a restarted
        delta, every message's marks from one listing of the folder."""
        walk = self._walks.get(folder)
        if walk is None or walk.full:
            fid = walk.folder_id if walk is not None else self._folder_id(folder)
            if fid is None:
                return Changes({}, set(), 0)
            marks = {
                str(item["id"]): marks_of(item)
                for item in self.client.pages(
                    f"/me/mailFolders/{fid}/messages",
                    params={"$select": SELECT, "$top": str(self.config.page_size)},
                )
            }
            return Changes(marks, set(marks), len(marks))
        present = (walk.known | walk.fetched) - walk.removed
        return Changes(dict(walk.marks), present, status.messages)

    # -- changes ---------------------------------------------------------------------------

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """Per message: read it (is it still in the folder? its categories), PATCH isRead,
        flag and categories, then POST move; several messages at once."""
        check_mutations(mutations, self.name, labels=True)
        for mutation in mutations:
            for flag in (*mutation.add_flags, *mutation.remove_flags):
                if flag not in (SEEN, FLAGGED):
                    raise MutationRefused(
                        f"Graph keeps only read and flagged marks, not {flag[:80]!r} "
                        "(categories are labels)"
                    )
        # Folder ids first, on this thread: a name not known yet lists the folders again.
        for name in {m.folder for m in mutations} | {m.move_to for m in mutations if m.move_to}:
            self._folder_id(name)
        with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="graph-apply") as pool:
            return list(pool.map(self._apply_one, mutations))

    def _apply_one(self, mutation: Mutation) -> Applied:
        fid = self._ids.get(mutation.folder)
        if fid is None:
            return Applied(mutation.key, mutation.folder, None, error=f"{mutation.folder} is gone")
        try:
            item = self._message(mutation.key)
        except ItemGone:
            item = None
        if item is None or item.get("parentFolderId") != fid:
            return Applied(
                mutation.key, mutation.folder, None, error=f"not in {mutation.folder} any more"
            )
        patch: dict[str, Any] = {}
        if SEEN in mutation.add_flags or SEEN in mutation.remove_flags:
            patch["isRead"] = SEEN in mutation.add_flags
        if FLAGGED in mutation.add_flags or FLAGGED in mutation.remove_flags:
            flagged = FLAGGED in mutation.add_flags
            patch["flag"] = {"flagStatus": "flagged" if flagged else "notFlagged"}
        if mutation.add_labels or mutation.remove_labels:
            patch["categories"] = list(changed_labels(item.get("categories") or [], mutation))
        key, folder = mutation.key, mutation.folder
        try:
            if patch:
                item = self.client.request("PATCH", f"/me/messages/{key}", json=patch).json()
            if mutation.move_to is not None and mutation.move_to != folder:
                target = self._ids.get(mutation.move_to)
                if target is None:
                    return Applied(
                        key, folder, key, marks_of(item), f"no folder {mutation.move_to}"
                    )
                item = self.client.request(
                    "POST", f"/me/messages/{key}/move", json={"destinationId": target}
                ).json()
                folder = mutation.move_to
        except ItemGone:
            return Applied(key, folder, None, error=f"not in {folder} any more")
        return Applied(key, folder, str(item["id"]), marks_of(item))

    def _message(self, key: str) -> dict[str, Any]:
        return self.client.get_json(
            f"/me/messages/{key}", params={"$select": f"{SELECT},parentFolderId"}
        )

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """Each message's marks, read one by one (several at once)."""
        fid = self._folder_id(folder)
        if fid is None:
            return {}

        def one(key: str) -> tuple[str, Marks | None]:
            try:
                item = self._message(key)
            except ItemGone:
                return key, None
            return key, marks_of(item) if item.get("parentFolderId") == fid else None

        with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="graph-marks") as pool:
            return {k: m for k, m in pool.map(one, keys) if m is not None}

    def locate(self, folder: str, message_id: str) -> list[str]:
        """Ids in ``folder`` of messages whose internetMessageId is ``message_id``."""
        fid = self._folder_id(folder)
        if fid is None:
            return []
        quoted = message_id.strip().replace("'", "''")
        items = self.client.pages(
            f"/me/mailFolders/{fid}/messages",
            params={"$filter": f"internetMessageId eq '{quoted}'", "$select": "id"},
        )
        return sorted(str(item["id"]) for item in items)

    def archive_folder(self) -> str:
        """The well-known Archive folder, else a top-level "Archive" (created when missing)."""
        try:
            fid = str(
                self.client.get_json("/me/mailFolders/archive", params={"$select": "id"})["id"]
            )
        except ItemGone:
            fid = None
        if fid is not None:
            if fid not in self._names:
                self.folders()
            if fid in self._names:
                return self._names[fid]
        if not self._ids:
            self.folders()
        for name in self._ids:
            if name.lower() == "archive":
                return name
        self.client.request("POST", "/me/mailFolders", json={"displayName": "Archive"})
        self.folders()
        return "Archive"
