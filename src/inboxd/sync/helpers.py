"""Helper processes that fetch and store part of a folder's new mail beside the sync.

Any provider whose capabilities say ``helpers`` can be shared: a helper opens its own
provider through the registry from the sync's picklable ProviderSpec, and fetches batches
of the same FetchPlan (IMAP, with its pipelined FETCH, is the one provider that does).

A sync is CPU-bound in Python (parsing and storing cost more than the download), so one
process tops out well below what the network and the server can give. For a folder with
many new messages the sync starts helper processes, each with its own connection and
database connection. The folder's batches are shared through two counters in shared
memory: the sync takes batches from the front, in order, and the helpers from the back, so
they meet wherever their speeds put them. Only counts travel back over a pipe, never mail.

Only the sync moves the folder's highest UID, through its own batches (the low ones, taken
in order). A helper's batches are committed as it goes; if the sync dies first, the resumed
sync fetches them again and finds every message already stored (by identity), so nothing is
stored twice. A helper stops between batches when told to or when its sync is gone (its end
of the pipe closes), and a batch a helper could not store is fetched by the sync itself.

A helper whose connection drops reconnects with backoff and fetches again the batches it
had taken but not stored, a few times per folder before it leaves them to the sync; while
it waits for its next folder it says NOOP now and then, so that an idle connection (the
sync may spend a long time on small folders) is neither logged out by the server nor
forgotten by a NAT box, and one that was anyway is reopened before the folder starts.

Helpers are forked from a forkserver that has imported this module, so starting one costs a
fork, not an interpreter start-up, and never copies the worker's threads or connections.
A sync starts its helpers as soon as STATUS shows a folder worth sharing, so they connect
and log in while the sync lists that folder's new messages, and keeps them for every such
folder of the sync: one start-up and one login per helper and sync, not per folder.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing import spawn
from multiprocessing.reduction import ForkingPickler
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from inboxd import heap
from inboxd.config import Settings
from inboxd.db.engine import make_engine
from inboxd.providers import registry
from inboxd.providers.base import (
    FetchPlan,
    FolderChanged,
    FolderUnavailable,
    MailProvider,
    ProviderError,
    ProviderSpec,
    ServerClosedConnection,
)
from inboxd.sync.batch_store import BatchStore
from inboxd.sync.report import SyncReport

#: How long a helper that was told to stop gets before it is terminated.
STOP_GRACE_SECONDS = 2.0
#: A helper waiting for a folder says NOOP after this long (servers may log out a
#: connection idle for 30 minutes; NAT boxes forget one sooner).
KEEPALIVE_SECONDS = 240.0
#: Reconnects a helper tries within one folder before it leaves its batches to the sync.
FOLDER_RECONNECTS = 3
#: Bytes sent to a helper that is not reading yet: a socket pair's buffer holds this much
#: without a reader, so the send cannot block (a folder of ~15,000 new messages).
UNREAD_SEND_MAX = 64 * 1024

_context: multiprocessing.context.ForkServerContext | None = None
_stdlib_preparation_data: Callable[[str], dict[str, Any]] | None = None


def _mp() -> multiprocessing.context.ForkServerContext:
    global _context, _stdlib_preparation_data
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        # The server imports only this module and the providers a helper opens (not the
        # caller's __main__, the default): a helper starts with its provider imported.
        ctx.set_forkserver_preload([__name__, *registry.factory_modules(helpers=True)])
        if _stdlib_preparation_data is None:
            _stdlib_preparation_data = spawn.get_preparation_data
            spawn.get_preparation_data = _without_main
        _context = ctx
    return _context


def _without_main(name: str) -> dict[str, Any]:
    """multiprocessing's start-up data for a child, minus the caller's main module for
    our own processes: a child would otherwise import it again, at every start (for the
    ``inboxd`` console script that is the whole CLI; for ``python -`` a file that does not
    exist). Helpers need nothing from it; other children keep the default."""
    assert _stdlib_preparation_data is not None
    data = _stdlib_preparation_data(name)
    if name.startswith(_OUR_PREFIX):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


#: Names of the processes this module starts.
_OUR_PREFIX = "inboxd-"


def warm_up(*, wait: bool = False) -> None:
    """Start the forkserver now (it imports inboxd in the background), so the first helper
    of a sync is a fork away when its batches are known; ``wait`` returns once it is ready."""
    ctx = _mp()
    multiprocessing.forkserver.ensure_running()
    if wait:
        # The server forks only once its imports are done: a no-op child proves it.
        probe = ctx.Process(target=_nothing, name="inboxd-forkserver-probe", daemon=True)
        probe.start()
        probe.join()
        probe.close()


def prepare_worker(settings: Settings) -> None:
    """A worker that runs syncs imports the providers now, and starts the forkserver of
    their helpers at once."""
    registry.preload()
    if settings.sync_processes > 1:
        warm_up()


def _nothing() -> None:
    pass


class BatchClaims:
    """Batches ``0..count-1`` of one folder, handed out once each: from the front to the
    sync, from the back to its helpers (counters in shared memory, one lock)."""

    def __init__(self, count: int) -> None:
        self._front: Synchronized[int] = _mp().Value("q", 0)
        self._back: Synchronized[int] = _mp().Value("q", count, lock=False)
        self.count = count

    def take_front(self) -> int | None:
        """The lowest batch nobody has taken, or None."""
        with self._front.get_lock():
            n = self._front.value
            if n >= self._back.value:
                return None
            self._front.value = n + 1
            return n

    def take_back(self) -> int | None:
        """The highest batch nobody has taken, or None."""
        with self._front.get_lock():
            n = self._back.value - 1
            if n < self._front.value:
                return None
            self._back.value = n
            return n

    @property
    def first_of_back(self) -> int:
        """Batches from here on were taken from the back."""
        with self._front.get_lock():
            return self._back.value

    @property
    def left(self) -> int:
        """Batches nobody has taken yet."""
        with self._front.get_lock():
            return max(0, self._back.value - self._front.value)

    def reset(self, count: int) -> None:
        """Hand out batches ``0..count-1`` of the next folder (call while no helper is
        taking: shared memory can only be given to a process when it starts, so one pair
        of counters serves every folder of a sync)."""
        with self._front.get_lock():
            self._front.value = 0
            self._back.value = count
        self.count = count


class LocalClaims:
    """The same hand-out for a sync without helpers: every batch, in order."""

    def __init__(self, count: int) -> None:
        self._next = 0
        self.count = count

    def take_front(self) -> int | None:
        """The next batch, or None."""
        if self._next >= self.count:
            return None
        self._next += 1
        return self._next - 1

    @property
    def first_of_back(self) -> int:
        """Nothing is taken from the back."""
        return self.count


@dataclass(frozen=True)
class HelperSpec:
    """What a helper needs for the whole sync (picklable; the secret travels over a pipe
    between the two processes only)."""

    database_url: str = field(repr=False)  # may hold the database's password
    busy_timeout_ms: int
    provider: ProviderSpec
    account_id: str
    keepalive_seconds: float = KEEPALIVE_SECONDS


@dataclass(frozen=True)
class FolderWork:
    """One folder's share: its batches, handed out through the helper's claims."""

    folder_id: int
    plan: FetchPlan


class SyncHelper:
    """One helper process, seen from the sync: start it, give it folders one at a time,
    collect what it stored, stop it."""

    def __init__(self, spec: HelperSpec, claims: BatchClaims, name: str) -> None:
        ctx = _mp()
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(
            target=helper_main, args=(spec, claims, child), name=name, daemon=True
        )
        self._process.start()
        child.close()
        #: batch index -> counts of what the helper stored (of the current folder)
        self.stored: dict[int, SyncReport] = {}
        #: batch index -> why the server would not send it (of the current folder)
        self.refused: dict[int, str] = {}
        self.error: str | None = None
        self.error_logged = False
        #: connection problems it recovered from, not yet written to the job's log
        self.recovered: list[str] = []
        self.ended = False
        #: logged in and waiting for a folder (it says so once, after its login)
        self.ready = False
        #: working on a folder (until it says the folder's batches are all taken and done)
        self.busy = False
        #: the folder it was given last (``stored`` and ``refused`` are of that folder)
        self.work: FolderWork | None = None
        self.peak_rss_kb = 0
        self._stop_asked = False

    def assign(self, work: FolderWork) -> bool:
        """Start on a folder; False when it cannot take the folder now: ended, busy, or
        still logging in with a batch list too large to leave unread in the pipe (the sync
        must not wait for a helper's login; it offers the folder again once it is ready)."""
        if self.ended or self._stop_asked or self.busy:
            return False
        message = bytes(ForkingPickler.dumps(("folder", work)))
        if not self.ready and len(message) > UNREAD_SEND_MAX:
            return False
        self.stored, self.refused = {}, {}
        try:
            self._pipe.send_bytes(message)
        except (OSError, ValueError):
            self.error = self.error or f"helper process ended (exit code {self._exitcode()})"
            self.ended = True
            return False
        self.busy, self.work = True, work
        return True

    @property
    def settled(self) -> bool:
        """Done with its folder (or ended): what it stored has all been collected."""
        return self.ended or not self.busy

    def collect(self, on_stored: Callable[[int, SyncReport], None], timeout: float = 0) -> None:
        """Take the helper's news (waiting up to ``timeout`` for some); ``on_stored`` gets
        each stored batch."""
        if self.ended:
            return
        try:
            ready = self._pipe.poll(timeout)
            while ready:
                self._take(self._pipe.recv(), on_stored)
                ready = not self.ended and self._pipe.poll()
        except (EOFError, OSError):
            # The helper died without a word (killed, out of memory): what it committed is
            # stored; the rest is fetched by the sync.
            self.error = self.error or f"helper process ended (exit code {self._exitcode()})"
            self.ended = True

    def _take(self, message: tuple[Any, ...], on_stored: Callable[[int, SyncReport], None]) -> None:
        kind = message[0]
        if kind == "stored":
            report = SyncReport(**message[2])
            self.stored[message[1]] = report
            on_stored(message[1], report)
        elif kind == "refused":
            self.refused[message[1]] = message[2]
        elif kind == "ready":
            self.ready = True
        elif kind == "reconnected":
            self.recovered.append(message[1])
        elif kind == "folder-done":
            self.busy = False
        elif kind == "failed":
            self.error = message[1]
            self.ended = True
        elif kind == "done":
            self.peak_rss_kb = message[1]
            self.ended = True

    def _exitcode(self) -> int | None:
        self._process.join(0.5)
        return self._process.exitcode

    def ask_to_stop(self) -> None:
        """Tell the helper to stop after its current batch (or folder), without waiting."""
        if not self._stop_asked:
            self._stop_asked = True
            with contextlib.suppress(OSError, ValueError):
                self._pipe.send(("stop",))

    def stop(self) -> None:
        """Ask the helper to stop after its current batch (reading its last word, for its
        peak RSS); terminate it if it does not."""
        self.ask_to_stop()
        with contextlib.suppress(OSError, ValueError):
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while not self.ended and (left := deadline - time.monotonic()) > 0:
                self.collect(lambda _index, _report: None, timeout=left)
        self._process.join(STOP_GRACE_SECONDS)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STOP_GRACE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._pipe.close()
        self._process.close()


def helper_main(
    spec: HelperSpec, claims: BatchClaims, pipe: multiprocessing.connection.Connection
) -> None:
    """The helper process: log in, then for each folder the sync gives it fetch and store
    batches from the back until none are left, until told to stop."""
    # Ctrl-C in a terminal reaches the whole process group: the sync decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    heap.settle(collect=False)  # forked from a forkserver that only imported modules
    with contextlib.suppress(BrokenPipeError):  # the sync is gone; so are we
        _HelperRun(spec, claims, pipe).run()


class _StopHelper(Exception):
    pass


class _HelperRun:
    def __init__(
        self, spec: HelperSpec, claims: BatchClaims, pipe: multiprocessing.connection.Connection
    ) -> None:
        self.spec = spec
        self.claims = claims
        self.pipe = pipe
        self.taken: list[int] = []

    def run(self) -> None:
        spec = self.spec
        engine = make_engine(spec.database_url, busy_timeout_ms=spec.busy_timeout_ms, pool_size=1)
        provider = registry.provider_from_spec(spec.provider)
        try:
            provider.open()
            self.pipe.send(("ready",))
            while (work := self._next_folder(provider)) is not None:
                self._fetch(engine, provider, work)
                self.pipe.send(("folder-done",))
            self.pipe.send(("done", _peak_rss_kb()))
        except _StopHelper:
            self.pipe.send(("done", _peak_rss_kb()))
        except ProviderError as exc:
            self.pipe.send(("failed", exc.message))
        except Exception as exc:  # reported to the sync, which does the batch itself
            self.pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        finally:
            with contextlib.suppress(Exception):
                provider.close()
            engine.dispose()

    def _next_folder(self, provider: MailProvider) -> FolderWork | None:
        """The next folder the sync gives us (keeping the connection alive meanwhile); None
        when told to stop (or the sync is gone)."""
        try:
            while not self.pipe.poll(self.spec.keepalive_seconds):
                self._keep_alive(provider)
            message = self.pipe.recv()
        except (EOFError, OSError):
            return None
        return message[1] if message[0] == "folder" else None

    def _keep_alive(self, provider: MailProvider) -> None:
        try:
            provider.keep_alive()
        except ProviderError as exc:
            # Reopened when the next folder comes (a login now could be for nothing).
            provider.close()
            self.pipe.send(
                (
                    "reconnected",
                    f"idle connection lost ({exc.message}); reopened for the next folder",
                )
            )

    def _fetch(self, engine: Any, provider: MailProvider, work: FolderWork) -> None:
        """Fetch and store batches of ``work`` from the back until none are left,
        reconnecting when the connection drops."""
        self.taken = []
        delay = 0.5
        for attempt in range(FOLDER_RECONNECTS + 1):
            try:
                self._fetch_some(engine, provider, work)
                return
            except (FolderUnavailable, ServerClosedConnection, FolderChanged):
                # The server answered (a folder it will not open, a message whose FETCH makes
                # it hang up, a folder renumbered): a new connection would not change its
                # mind, and the sync knows how to fetch around one bad message.
                raise
            except ProviderError as exc:
                if attempt == FOLDER_RECONNECTS:
                    raise
                provider.close()
                self.pipe.send(("reconnected", f"{exc.message}; reconnected"))
                if self.pipe.poll(delay):  # only a stop can come mid-folder
                    raise _StopHelper from None
                delay *= 2

    def _fetch_some(self, engine: Any, provider: MailProvider, work: FolderWork) -> None:
        """One connection's go at ``work``: first the batches an earlier go took but did not
        store, then new ones from the back."""
        report = SyncReport()
        with BatchStore(engine, self.spec.account_id, report, None) as store:
            feed = provider.fetch(work.plan, self._taker(), shared=True)
            with contextlib.closing(feed):
                for fetched in feed:
                    if fetched.index is None:
                        continue
                    index = fetched.index
                    self.taken.remove(index)
                    if fetched.refused is not None:
                        self.pipe.send(("refused", index, fetched.refused))
                        return  # the sync fetches it (and what we took after it) one by one
                    store.report = SyncReport()
                    # No checkpoint: only the sync moves the folder's, through its batches.
                    store.put(work.folder_id, work.plan.folder, fetched.messages)
                    self.pipe.send(("stored", index, asdict(store.report)))

    def _taker(self) -> Callable[[], int | None]:
        """Hands out the batches taken but not stored by an earlier go, then claims new
        ones from the back; None when none are left (or raises _StopHelper)."""
        again, self.taken = self.taken, []

        def take() -> int | None:
            self._check_stop()
            index = again.pop(0) if again else self.claims.take_back()
            if index is not None:
                self.taken.append(index)
            return index

        return take

    def _check_stop(self) -> None:
        try:
            if self.pipe.poll():
                self.pipe.recv()
                raise _StopHelper
        except (EOFError, OSError):
            raise _StopHelper from None


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
