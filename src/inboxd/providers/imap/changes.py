"""Changes written back over IMAP: flags and keywords (UID STORE), Gmail labels (UID STORE
X-GM-LABELS), moves (UID MOVE, else UID COPY + ``\\Deleted`` + UID EXPUNGE of exactly the
copied UIDs, with UIDPLUS), always over UID sets: one command per folder and change, not
one per message.

Per folder, in three round trips whatever the number of messages: SELECT (its UIDVALIDITY
checked against the mutations'), every STORE pipelined, then one UID FETCH of the flags as
they are now (a UID missing from it is a message no longer there), then a MOVE per target
folder. inboxd never deletes mail: ``\\Deleted`` is only set by the MOVE fallback, on
messages it has just copied, and only those UIDs are expunged; a server with neither MOVE
nor UIDPLUS is refused moves rather than sent a plain EXPUNGE.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from inboxd.providers.base import (
    Applied,
    FolderUnavailable,
    Marks,
    Mutation,
    MutationRefused,
    RemoteFolder,
    check_mutations,
)
from inboxd.providers.imap.responses import UID, mailbox_arg
from inboxd.providers.imap.session import ImapSession
from inboxd.providers.imap.stream import Answer, parse_uid_set

#: Longest UID set put in one command: servers cap command lines (Dovecot at 64 kB).
MAX_UID_SET = 8000
_COPYUID = re.compile(rb"\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]")
_MISSING = ("NONEXISTENT", "DOESN'T EXIST", "DOES NOT EXIST", "UNKNOWN MAILBOX", "NO SUCH")
_ARCHIVE = "Archive"


@dataclass(frozen=True)
class _Item:
    """One mutation being applied: its place in the batch and its UID."""

    n: int
    mutation: Mutation
    uid: int


@dataclass(frozen=True)
class _Moved:
    """What a MOVE (or COPY) said: source UID -> new UID, the target's UIDVALIDITY."""

    new_uids: dict[int, int]
    validity: int | None
    error: str | None = None


class ImapChanges:
    """The write side of an IMAP provider, on its session."""

    def __init__(self, session: ImapSession) -> None:
        self.session = session
        self._archive: str | None = None

    @property
    def can_move(self) -> bool:
        """MOVE, or UIDPLUS for the COPY fallback (known once connected)."""
        caps = self.session.capabilities
        return "MOVE" in caps or "UIDPLUS" in caps

    # -- apply -----------------------------------------------------------------------------

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """See :meth:`inboxd.providers.base.MailProvider.apply`."""
        session = self.session
        session.client  # noqa: B018 -- connected: its capabilities decide what is possible
        host = session.config.host
        check_mutations(mutations, f"{host} (IMAP)", labels=session.is_gmail)
        if not self.can_move and any(_moves(m) for m in mutations):
            raise MutationRefused(
                f"{host} supports neither MOVE nor UIDPLUS: inboxd will not move mail there "
                "(the only other way, a plain EXPUNGE, could remove other messages)"
            )
        by_folder: dict[str, list[_Item | int]] = {}
        for n, mutation in enumerate(mutations):
            uid = int(mutation.key) if mutation.key.isdigit() else 0
            by_folder.setdefault(mutation.folder, []).append(_Item(n, mutation, uid) if uid else n)
        done: dict[int, Applied] = {}
        for folder, items in by_folder.items():
            for n in (i for i in items if isinstance(i, int)):
                done[n] = _gone(mutations[n])
            done.update(self._apply_in(folder, [i for i in items if isinstance(i, _Item)]))
        return [done[n] for n in range(len(mutations))]

    def _apply_in(self, folder: str, items: list[_Item]) -> dict[int, Applied]:
        session = self.session
        if not items:
            return {}
        # A folder selected earlier hears first of what other clients expunged since
        # (STORE and FETCH are not told, so they would act on messages already gone).
        refresh = session.selected == folder and session.writable
        try:
            if not refresh:
                session.select(folder)
        except FolderUnavailable as exc:
            reason = f"not in {folder} any more" if _missing(exc.message) else exc.message
            return {i.n: Applied(i.mutation.key, folder, None, error=reason) for i in items}
        validity = session.selected_validity
        done: dict[int, Applied] = {}
        live: list[_Item] = []
        for item in items:
            if item.mutation.validity not in (None, validity):
                done[item.n] = _renumbered(item.mutation)
            else:
                live.append(item)
        refused = self._store(live, refresh=refresh)
        marks = self._marks({i.uid for i in live})
        moving: dict[str, list[_Item]] = {}
        moved: set[int] = set()
        for item in live:
            mutation, now = item.mutation, marks.get(item.uid)
            if now is None:
                done[item.n] = _gone(mutation)
            elif (why := refused.get(item.n) or _not_kept(mutation, now)) is not None:
                done[item.n] = Applied(mutation.key, folder, mutation.key, now, why, validity)
            elif not _moves(mutation):
                done[item.n] = Applied(mutation.key, folder, mutation.key, now, None, validity)
            elif item.uid in moved:
                twice = "moved by an earlier change in the same batch"
                done[item.n] = Applied(mutation.key, folder, mutation.key, now, twice, validity)
            else:
                moved.add(item.uid)
                moving.setdefault(mutation.move_to or "", []).append(item)
        for target, group in moving.items():
            done.update(self._move(folder, target, group, marks))
        return done

    def _store(self, items: list[_Item], *, refresh: bool) -> dict[int, str]:
        """Every STORE of the folder, pipelined (after a NOOP with ``refresh``); returns the
        refused: batch index -> why. (Dovecot may run pipelined STOREs side by side: a
        flag one change adds and another removes on the same message is left to chance.)"""
        groups: dict[tuple[str, tuple[str, ...]], list[_Item]] = {}
        for item in items:
            m = item.mutation
            for what, names in (
                ("+FLAGS.SILENT", m.add_flags),
                ("+X-GM-LABELS", m.add_labels),
                ("-FLAGS.SILENT", m.remove_flags),
                ("-X-GM-LABELS", m.remove_labels),
            ):
                if names:
                    groups.setdefault((what, tuple(sorted(set(names)))), []).append(item)
        ordered = sorted(groups.items(), key=lambda group: group[0][0][0] != "+")
        commands: list[str] = []
        members: list[list[_Item]] = []
        for (what, names), group in ordered:
            args = " ".join(_label_arg(n) for n in names) if "GM" in what else " ".join(names)
            by_uid: dict[int, list[_Item]] = {}
            for item in group:
                by_uid.setdefault(item.uid, []).append(item)
            for uid_set, uids in uid_sets(by_uid):
                commands.append(f"UID STORE {uid_set} {what} ({args})")
                members.append([i for uid in uids for i in by_uid[uid]])
        if refresh:
            self.session.noop()
        refused: dict[int, str] = {}
        for answer, group in zip(self.session.commands(commands), members, strict=True):
            if not answer.ok:
                for item in group:
                    refused.setdefault(item.n, f"the server refused it: {answer.text[:200]}")
        return refused

    def _marks(self, uids: Iterable[int], *, refresh: bool = False) -> dict[int, Marks]:
        sets = [uid_set for uid_set, _ in uid_sets(uids)]
        found = self.session.marks_of(sets, refresh=refresh)
        return {uid: _without_recent(m) for uid, m in found.items()}

    # -- moves -----------------------------------------------------------------------------

    def _move(
        self, folder: str, target: str, items: list[_Item], marks: dict[int, Marks]
    ) -> dict[int, Applied]:
        done: dict[int, Applied] = {}
        by_uid = {item.uid: item for item in items}
        unnamed: list[_Item] = []
        for uid_set, uids in uid_sets(by_uid):
            moved = self._move_set(uid_set, target)
            for uid in uids:
                item = by_uid[uid]
                m, now = item.mutation, marks[uid]
                if moved.error is not None:
                    done[item.n] = Applied(m.key, folder, m.key, now, moved.error)
                elif moved.new_uids and uid not in moved.new_uids:
                    done[item.n] = _gone(m)  # expunged by another client just now
                elif uid in moved.new_uids:
                    new = str(moved.new_uids[uid])
                    done[item.n] = Applied(m.key, target, new, now, None, moved.validity)
                else:
                    unnamed.append(item)
        for item in unnamed:  # a server without UIDPLUS names no new UIDs: look for them
            m = item.mutation
            found = self.locate(target, m.message_id) if m.message_id else []
            new_key = str(max(int(k) for k in found)) if found else None
            validity = self.session.selected_validity if found else None
            done[item.n] = Applied(m.key, target, new_key, marks[item.uid], None, validity)
        return done

    def _move_set(self, uid_set: str, target: str) -> _Moved:
        """Move one UID set of the selected folder: UID MOVE, else UID COPY, then
        ``\\Deleted`` and UID EXPUNGE of the copied UIDs alone."""
        session = self.session
        verb = "MOVE" if "MOVE" in session.capabilities else "COPY"
        command = f"UID {verb} {uid_set} {mailbox_arg(target)}"
        answer = session.command(command)
        if answer.status == "NO" and "TRYCREATE" in answer.text.upper():
            created = session.command(f"CREATE {mailbox_arg(target)}")
            if not created.ok and "ALREADYEXISTS" not in created.text.upper():
                return _Moved({}, None, f"cannot create {target}: {created.text[:200]}")
            answer = session.command(command)
        if not answer.ok:
            return _Moved({}, None, f"the server refused to {verb.lower()} it: {answer.text[:200]}")
        new_uids, validity = _copyuid(answer)
        if verb == "MOVE":
            return _Moved(new_uids, validity)
        if not new_uids:
            return _Moved(
                {},
                None,
                f"copied to {target}, but the server named no new UIDs (COPYUID): "
                "the original was left where it was",
            )
        return self._expunge_copied(new_uids, validity, target)

    def _expunge_copied(
        self, new_uids: dict[int, int], validity: int | None, target: str
    ) -> _Moved:
        session = self.session
        copied = ",".join(s for s, _ in uid_sets(new_uids))
        # One after the other, not pipelined: Dovecot could run them side by side, and an
        # EXPUNGE that overtook its STORE would leave our \Deleted behind.
        answer = session.command(f"UID STORE {copied} +FLAGS.SILENT (\\Deleted)")
        if answer.ok:
            answer = session.command(f"UID EXPUNGE {copied}")
            if answer.ok:
                return _Moved(new_uids, validity)
        # Never leave our \Deleted behind for another client's EXPUNGE to act on.
        session.command(f"UID STORE {copied} -FLAGS.SILENT (\\Deleted)")
        why = f"copied to {target}, but the original stays: {answer.text[:200]}"
        return _Moved(new_uids, validity, why)

    # -- reading ---------------------------------------------------------------------------

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """See :meth:`inboxd.providers.base.MailProvider.current_marks`."""
        refresh = self.session.selected == folder
        if not self._open(folder) or validity not in (None, self.session.selected_validity):
            return {}
        wanted = {int(key) for key in keys if key.isdigit() and int(key) > 0}
        found = self._marks(wanted, refresh=refresh)
        return {str(uid): marks for uid, marks in found.items() if uid in wanted}

    def locate(self, folder: str, message_id: str) -> list[str]:
        """UIDs in ``folder`` whose Message-ID header is exactly ``message_id``."""
        wanted = message_id.strip()
        if not wanted or not wanted.isascii() or any(c in wanted for c in '"\\\r\n'):
            return []  # no server search could be trusted to match it exactly
        if self.session.selected == folder:
            self.session.noop()  # hear of what was expunged since it was selected
        elif not self._open(folder):
            return []
        uids = self.session.search(f'HEADER Message-ID "{wanted}"')
        if not uids:
            return []
        # SEARCH HEADER matches substrings: keep the messages whose header is the same.
        fetch = "UID FETCH {} (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        commands = [fetch.format(uid_set) for uid_set, _ in uid_sets(uids)]
        found: list[str] = []
        for answer in self.session.commands(commands):
            for response in answer.responses:
                uid = UID.search(response.parts[0])
                if uid and response.literals and _message_id(response.literals[0]) == wanted:
                    found.append(uid.group(1).decode())
        return sorted(found, key=int)

    def _open(self, folder: str) -> bool:
        """The folder selected (EXAMINEd unless it already is); False when it is gone."""
        session = self.session
        if session.selected == folder:
            return True
        try:
            session.examine(folder)
        except FolderUnavailable as exc:
            if _missing(exc.message):
                return False
            raise
        return True

    # -- the archive -----------------------------------------------------------------------

    def archive_folder(self) -> str:
        """The special-use \\Archive folder, Gmail's \\All (All Mail), a folder named
        Archive (any case; under INBOX on servers that keep folders there), else a new
        Archive (CREATEd)."""
        if self._archive is None:
            self._archive = self._find_archive()
        return self._archive

    def _find_archive(self) -> str:
        session = self.session
        listed = session.list_folders()
        for use in ("\\Archive", "\\All"):
            if (found := _first(f for f in listed if f.special_use == use)) is not None:
                return found.name
        prefix = _personal_prefix(listed)
        for name in (_ARCHIVE, prefix + _ARCHIVE):
            if (found := _first(f for f in listed if f.name.lower() == name.lower())) is not None:
                return found.name
        name = prefix + _ARCHIVE
        answer = session.command(f"CREATE {mailbox_arg(name)}")
        if not answer.ok and "ALREADYEXISTS" not in answer.text.upper():
            host = session.config.host
            raise MutationRefused(f"{host} would not create {name}: {answer.text[:200]}")
        return name


def uid_sets(uids: Iterable[int], limit: int = MAX_UID_SET) -> list[tuple[str, list[int]]]:
    """``uids`` as compact UID sets (``1:5,7``) of at most ``limit`` characters, each with
    its UIDs: one command per set."""
    ranges: list[list[int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    out: list[tuple[str, list[int]]] = []
    parts: list[str] = []
    members: list[int] = []
    size = 0
    for low, high in ranges:
        text = f"{low}:{high}" if high != low else str(low)
        if parts and size + len(text) + 1 > limit:
            out.append((",".join(parts), members))
            parts, members, size = [], [], 0
        parts.append(text)
        members.extend(range(low, high + 1))
        size += len(text) + 1
    if parts:
        out.append((",".join(parts), members))
    return out


def _copyuid(answer: Answer) -> tuple[dict[int, int], int | None]:
    """Source UID -> new UID, and the target's UIDVALIDITY, from a COPYUID response code
    (untagged after MOVE, in the tagged OK after COPY)."""
    lines = [r.parts[0] for r in answer.responses] + [answer.text.encode()]
    mapping: dict[int, int] = {}
    validity = None
    for line in lines:
        if (found := _COPYUID.search(line)) is not None:
            validity = int(found.group(1))
            sources = parse_uid_set(found.group(2).decode())
            targets = parse_uid_set(found.group(3).decode())
            mapping.update(zip(sources, targets, strict=False))
    return mapping, validity


def _moves(mutation: Mutation) -> bool:
    return mutation.move_to is not None and mutation.move_to != mutation.folder


def _gone(mutation: Mutation) -> Applied:
    return Applied(mutation.key, mutation.folder, None, error=f"not in {mutation.folder} any more")


def _renumbered(mutation: Mutation) -> Applied:
    why = (
        f"{mutation.folder} was renumbered (its UIDVALIDITY changed): UID {mutation.key} "
        "may name another message now, so nothing was changed"
    )
    return Applied(mutation.key, mutation.folder, None, error=why)


def _missing(refusal: str) -> bool:
    upper = refusal.upper()
    return any(word in upper for word in _MISSING)


def _not_kept(mutation: Mutation, marks: Marks) -> str | None:
    """Why the server's flags now say the change did not take (a keyword the folder does
    not keep), or None."""
    have = {f.lower() for f in marks.flags}
    lost = [f for f in mutation.add_flags if f.lower() not in have]
    lost += [f for f in mutation.remove_flags if f.lower() in have]
    if lost:
        return f"the server did not keep the change of {', '.join(lost)}"
    return None


def _without_recent(marks: Marks) -> Marks:
    if not any(f.lower() == "\\recent" for f in marks.flags):
        return marks
    return Marks(tuple(f for f in marks.flags if f.lower() != "\\recent"), marks.labels)


def _label_arg(label: str) -> str:
    # Gmail's system labels are atoms (\Inbox, \Important); others are names, quoted.
    return label if label.startswith("\\") else mailbox_arg(label)


def _message_id(header: bytes) -> str | None:
    value = BytesHeaderParser().parsebytes(header).get("Message-ID")
    return str(value).strip() if value is not None else None


def _first(folders: Iterable[RemoteFolder]) -> RemoteFolder | None:
    return next(iter(folders), None)


def _personal_prefix(listed: Sequence[RemoteFolder]) -> str:
    """``INBOX.`` on servers that keep every folder under INBOX (Courier, old Cyrus)."""
    others = [f for f in listed if f.name.upper() != "INBOX"]
    delimiters = {f.delimiter for f in others if f.delimiter}
    if others and len(delimiters) == 1:
        prefix = "INBOX" + delimiters.pop()
        if all(f.name.upper().startswith(prefix.upper()) for f in others):
            return prefix
    return ""
