"""IMAP commands of a sync: folders with their status, new UIDs and sizes, bodies in
pipelined batches, flags and labels.

IMAPClient's response parser builds Python objects token by token, which caps bulk
downloads at a few thousand messages per second; sizes, bodies and flags are therefore
fetched through :mod:`inboxd.providers.imap.stream` on the same connection, several UID
batches in flight, and only the few fetch items we need are read from each response.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass

from inboxd.providers.base import (
    FetchedMessage,
    FolderStatus,
    FolderUnavailable,
    Marks,
    ProviderConfigError,
    RemoteFolder,
)
from inboxd.providers.imap.connection import ImapConnection
from inboxd.providers.imap.responses import (
    ESEARCH_ALL,
    EXISTS,
    FLAGS,
    GM_LABELS,
    RESPONSE_CODE,
    SIZE,
    UID,
    fetched_message,
    flag_names,
    folder_status,
    label_names,
    mailbox_arg,
    remote_folders,
    status_entries,
)
from inboxd.providers.imap.stream import MAX_SEARCH_LINE, Answer, fetch_pipelined, parse_uid_set

#: Folders skipped unless asked for: by special-use flag, then by common names.
SKIPPED_SPECIAL_USE = {"\\Trash", "\\Junk"}
SKIPPED_NAMES = {
    "trash",
    "spam",
    "junk",
    "deleted items",
    "deleted messages",
    "[gmail]/trash",
    "[gmail]/spam",
    "junk e-mail",
    "bin",
    "[gmail]/bin",
}


class ImapSession(ImapConnection):
    """An IMAP connection with the commands a sync uses: folders, UIDs, bodies, flags."""

    # -- folders ---------------------------------------------------------------------------

    def list_folders(self) -> list[RemoteFolder]:
        """Every folder on the server."""
        with self._streaming() as stream:
            answer = stream.command('LIST "" "*"')
        self._check(answer, "LIST")
        return remote_folders(answer.responses)

    def folders_to_sync(self) -> list[RemoteFolder]:
        """The folders this account syncs: the configured ones, or all but Trash/Spam."""
        return self._wanted(self.list_folders())

    def folders_with_status(
        self,
    ) -> tuple[list[tuple[RemoteFolder, FolderStatus]], dict[str, str]]:
        """The folders to sync, each with its STATUS: one round trip when the server offers
        LIST-STATUS (RFC 5819), else LIST and then every STATUS pipelined. Folders whose
        STATUS the server refused come apart, with its reason."""
        if "LIST-STATUS" not in self.capabilities:
            folders = self.folders_to_sync()
            found, refused = self.statuses([f.name for f in folders])
        else:
            with self._streaming() as stream:
                answer = stream.command(f'LIST "" "*" RETURN (STATUS ({self._status_query()}))')
            self._check(answer, "LIST")
            folders = self._wanted(remote_folders(answer.responses))
            entries = status_entries(answer.responses)
            found = {name: folder_status(items) for name, items in entries}
            # A server leaves out the STATUS of a folder it cannot open (just then).
            missing = [f.name for f in folders if f.name not in found]
            more, refused = self.statuses(missing) if missing else ({}, {})
            found.update(more)
        return [(f, found[f.name]) for f in folders if f.name in found], refused

    def _wanted(self, folders: list[RemoteFolder]) -> list[RemoteFolder]:
        every = [f for f in folders if f.selectable]
        if self.config.folders:
            wanted = set(self.config.folders)
            missing = wanted - {f.name for f in every}
            if missing:
                raise ProviderConfigError(f"no such folder on server: {sorted(missing)[0]}")
            return [f for f in every if f.name in wanted]
        excluded = {e.lower() for e in self.config.exclude}
        return [
            f
            for f in every
            if f.special_use not in SKIPPED_SPECIAL_USE
            and f.name.lower() not in SKIPPED_NAMES
            and f.name.lower() not in excluded
        ]

    def _status_query(self) -> str:
        return "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if self.condstore else "")

    def statuses(self, folders: Sequence[str]) -> tuple[dict[str, FolderStatus], dict[str, str]]:
        """MESSAGES, UIDVALIDITY, UIDNEXT (and HIGHESTMODSEQ with CONDSTORE) of each folder,
        their STATUS commands pipelined: one round trip for the lot, not one per folder;
        and, apart, the folders whose STATUS the server refused, with its reason."""
        items = self._status_query()
        with self._streaming() as stream:
            commands = [f"STATUS {mailbox_arg(name)} ({items})" for name in folders]
            answers = list(stream.pipeline(commands))
        out: dict[str, FolderStatus] = {}
        refused: dict[str, str] = {}
        for name, answer in zip(folders, answers, strict=True):
            if answer.status == "NO":  # this folder only (permissions, a broken index)
                refused[name] = self._refusal(answer)
                continue
            self._check(answer, f"STATUS of {name}")
            values = next((items for _name, items in status_entries(answer.responses)), {})
            out[name] = folder_status(values)
        return out, refused

    def examine(self, folder: str) -> FolderStatus:
        """Open a folder read-only (EXAMINE never changes flags)."""
        with self._streaming() as stream:
            answer = stream.command(f"EXAMINE {mailbox_arg(folder)}")
        return self._examined(folder, answer)

    def select(self, folder: str) -> FolderStatus:
        """Open a folder read-write, for changes (FolderUnavailable when refused)."""
        with self._streaming() as stream:
            answer = stream.command(f"SELECT {mailbox_arg(folder)}")
        status = self._examined(folder, answer)
        self.writable = True
        return status

    def _examined(self, folder: str, answer: Answer) -> FolderStatus:
        self.selected = None
        self.writable = False
        self.selected_validity = None
        if answer.status == "NO":
            raise FolderUnavailable(folder, self._refusal(answer))
        self._check(answer, f"EXAMINE of {folder}")
        self.selected = folder
        values: dict[str, int] = {}
        for response in answer.responses:
            line = response.parts[0]
            if (code := RESPONSE_CODE.match(line)) is not None:
                values[code.group(1).decode()] = int(code.group(2))
            elif (exists := EXISTS.match(line)) is not None:
                values["EXISTS"] = int(exists.group(1))
        self.selected_validity = values.get("UIDVALIDITY")
        return FolderStatus(
            messages=values.get("EXISTS", 0),
            uidvalidity=values.get("UIDVALIDITY"),
            uidnext=values.get("UIDNEXT"),
            highestmodseq=values.get("HIGHESTMODSEQ"),
        )

    # -- messages --------------------------------------------------------------------------

    def uid_sizes(self, above: int, *, examine: str | None = None) -> dict[int, int]:
        """RFC822.SIZE of every message with a UID above ``above`` in the selected folder,
        in one command (the UIDs, and the sizes that cut batches by bytes). With
        ``examine``, that folder is opened first, in the same round trip."""
        with self._streaming() as stream:
            if examine is not None:
                stream.send(f"EXAMINE {mailbox_arg(examine)}")
            stream.send(f"UID FETCH {above + 1}:* (UID RFC822.SIZE)")
            opened = stream.answer() if examine is not None else None
            answer = stream.answer()
        if examine is not None and opened is not None:
            self._examined(examine, opened)
        self._check(answer, "UID FETCH")
        out: dict[int, int] = {}
        for response in answer.responses:
            uid, size = UID.search(response.line), SIZE.search(response.line)
            # "n:*" always matches the highest message even when its UID is below n.
            if uid and size and int(uid.group(1)) > above:
                out[int(uid.group(1))] = int(size.group(1))
        return out

    def all_uids(self) -> list[int]:
        """Every UID in the selected folder."""
        return self._search("ALL")

    def uids_above(self, above: int) -> list[int]:
        """UIDs above ``above`` in the selected folder (SEARCH: the server reads no mail)."""
        return [uid for uid in self._search(f"UID {above + 1}:*") if uid > above]

    def _search(self, criteria: str) -> list[int]:
        # ESEARCH answers with ranges (a few bytes for a whole folder) instead of every UID.
        esearch = "ESEARCH" in self.capabilities
        command = f"UID SEARCH RETURN (ALL) {criteria}" if esearch else f"UID SEARCH {criteria}"
        with self._streaming() as stream:
            answer = stream.command(command, max_line=MAX_SEARCH_LINE)
        self._check(answer, "UID SEARCH")
        found: set[int] = set()
        for response in answer.responses:
            line = response.parts[0].rstrip()
            if line.startswith(b"* SEARCH"):
                found.update(int(n) for n in line[len(b"* SEARCH") :].split())
            elif line.startswith(b"* ESEARCH") and (ranges := ESEARCH_ALL.search(line)):
                found.update(parse_uid_set(ranges.group(1).decode()))
        return sorted(found)

    def fetch_batches(
        self,
        batches: Iterable[Sequence[int]],
        *,
        depth: int = 4,
        examine: str | None = None,
        on_examined: Callable[[FolderStatus], None] | None = None,
    ) -> Generator[FetchedBatch, None, None]:
        """Bodies, flags and dates of each batch of UIDs (BODY.PEEK: never sets \\Seen),
        with up to ``depth`` UID FETCH commands in flight; ``batches`` is read as commands
        go out. With ``examine``, that folder is opened in the same round trip as the first
        FETCH, and ``on_examined`` (which may raise to stop) sees its status before any
        batch is read. Stopping early drops the connection (its answers are still
        arriving)."""
        items = "(UID FLAGS INTERNALDATE BODY.PEEK[])"
        if self.is_gmail:
            items = "(UID FLAGS INTERNALDATE X-GM-MSGID X-GM-LABELS BODY.PEEK[])"
        done = False
        try:
            with self._streaming() as stream:
                opening = None
                if examine is not None:

                    def opened(answer: Answer) -> None:
                        status = self._examined(examine, answer)
                        if on_examined is not None:
                            on_examined(status)

                    opening = (f"EXAMINE {mailbox_arg(examine)}", opened)
                answers = fetch_pipelined(stream, batches, items, depth=depth, opening=opening)
                for uids, responses, answer in answers:
                    messages = [m for m in map(fetched_message, responses) if m is not None]
                    yield FetchedBatch(list(uids), messages, None if answer.ok else answer.text)
            done = True
        finally:
            if not done and self._stream is not None and not self._stream.clean:
                self._abandon()

    def command(self, command: str) -> Answer:
        """Send one command and read its answer (NO and BAD are the caller's to judge)."""
        with self._streaming() as stream:
            return stream.command(command)

    def commands(self, commands: Sequence[str]) -> list[Answer]:
        """Send ``commands`` pipelined (one round trip for the lot) and read their answers,
        in order (NO and BAD are the caller's to judge)."""
        with self._streaming() as stream:
            return list(stream.pipeline(commands))

    def search(self, criteria: str) -> list[int]:
        """UIDs in the selected folder matching ``criteria`` (a SEARCH key, quoted)."""
        return self._search(criteria)

    def marks_of(self, uid_sets: Sequence[str], *, refresh: bool = False) -> dict[int, Marks]:
        """Flags (and Gmail's labels) of the messages in ``uid_sets`` of the selected folder,
        one UID FETCH per set, pipelined; a UID missing from the answer is not there. With
        ``refresh``, a NOOP goes first: a folder selected a while ago hears of messages
        expunged since, which FETCH itself is not told. (Not in the same round trip:
        Dovecot runs pipelined commands side by side, and their responses interleave.)"""
        if refresh:
            self.noop()
        commands = [f"UID FETCH {uids} ({self._mark_items()})" for uids in uid_sets]
        out: dict[int, Marks] = {}
        for answer in self.commands(commands):
            self._check(answer, "UID FETCH")
            out.update(self._read_marks(answer))
        return out

    def noop(self) -> None:
        """Say NOOP: keeps an idle connection alive (and finds out it is not)."""
        with self._streaming() as stream:
            answer = stream.command("NOOP")
        self._check(answer, "NOOP")

    def changed_marks(self, modseq: int) -> dict[int, Marks]:
        """Flags (and Gmail's labels, whose changes move MODSEQ too) of the messages
        changed since ``modseq`` (CONDSTORE)."""
        return self._marks(f"1:* ({self._mark_items()}) (CHANGEDSINCE {modseq})")

    def all_marks(self) -> dict[int, Marks]:
        """Flags (and Gmail's labels) of every message in the selected folder."""
        return self._marks(f"1:* ({self._mark_items()})")

    def _mark_items(self) -> str:
        return "UID FLAGS X-GM-LABELS" if self.is_gmail else "UID FLAGS"

    def _marks(self, fetch: str) -> dict[int, Marks]:
        with self._streaming() as stream:
            answer = stream.command(f"UID FETCH {fetch}")
        self._check(answer, "UID FETCH")
        return self._read_marks(answer)

    def _read_marks(self, answer: Answer) -> dict[int, Marks]:
        gmail = self.is_gmail
        out: dict[int, Marks] = {}
        for response in answer.responses:
            head, _body = response.fetch_head_and_body()
            uid, flags = UID.search(head), FLAGS.search(head)
            if uid and flags:
                labels = GM_LABELS.search(head) if gmail else None
                out[int(uid.group(1))] = Marks(
                    flag_names(flags.group(1)), label_names(labels.group(1)) if labels else None
                )
        return out


@dataclass(frozen=True)
class FetchedBatch:
    """The answer to one UID FETCH of bodies: what came back, and the server's complaint
    if it answered NO or BAD (some messages may then be missing)."""

    uids: list[int]
    messages: list[FetchedMessage]
    failed: str | None = None
