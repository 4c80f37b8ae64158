"""A Gmail-like IMAP server on 127.0.0.1 (Dovecot has no Gmail extensions).

It answers as Google documents Gmail's IMAP: the capabilities Gmail lists after login
(X-GM-EXT-1, CONDSTORE, ESEARCH, LIST-STATUS among them), labels shown as folders under
``[Gmail]/`` with their special-use flags, one message in several folders under one
``X-GM-MSGID``, ``X-GM-LABELS`` (system labels as ``\\Inbox``-style atoms, others as
strings), and a MODSEQ that moves when a message's flags or labels change. It understands
what a sync sends and what inboxd writes: SELECT, UID STORE of FLAGS and X-GM-LABELS, UID
MOVE (leaving a folder drops its label, as archiving does: All Mail keeps one UID per
message); every command is recorded."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field

CAPABILITIES = (
    b"IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS "
    b"COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS "
    b"LITERAL- SPECIAL-USE APPENDLIMIT=35651584"
)
#: (name, LIST attributes) as Gmail lists them; [Gmail] itself cannot be selected.
FOLDERS: list[tuple[str, bytes]] = [
    ("INBOX", rb"\HasNoChildren"),
    ("[Gmail]", rb"\HasChildren \Noselect"),
    ("[Gmail]/All Mail", rb"\All \HasNoChildren"),
    ("[Gmail]/Sent Mail", rb"\HasNoChildren \Sent"),
    ("[Gmail]/Spam", rb"\HasNoChildren \Junk"),
    ("[Gmail]/Trash", rb"\HasNoChildren \Trash"),
]


@dataclass
class GmailMessage:
    msgid: int
    raw: bytes
    labels: list[str]
    flags: list[str] = field(default_factory=list)
    modseq: int = 1


@dataclass
class _Folder:
    uidvalidity: int
    uids: dict[int, GmailMessage] = field(default_factory=dict)
    uidnext: int = 1


class GmailServer:
    """Serves one connection at a time until closed."""

    def __init__(self) -> None:
        self.folders = {name: _Folder(uidvalidity=600 + n) for n, (name, _) in enumerate(FOLDERS)}
        self.commands: list[str] = []
        self.modseq = 1
        self._lock = threading.Lock()
        self._selected: str | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # -- the mailbox ---------------------------------------------------------------------

    def deliver(self, message: GmailMessage, *folders: str) -> None:
        """Put one message in ``folders`` (each gives it a UID), as labelling does."""
        with self._lock:
            self.modseq += 1
            message.modseq = self.modseq
            for name in folders:
                folder = self.folders[name]
                folder.uids[folder.uidnext] = message
                folder.uidnext += 1

    def relabel(self, message: GmailMessage, labels: list[str]) -> None:
        """Change a message's labels (not its folders): its MODSEQ moves."""
        with self._lock:
            self.modseq += 1
            message.labels = labels
            message.modseq = self.modseq

    # -- protocol ------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                conn.sendall(b"* OK Gimap ready for requests from 127.0.0.1\r\n")
                for line in reader:
                    text = line.decode().rstrip("\r\n")
                    tag, _, rest = text.partition(" ")
                    verb = rest.split(" ", 1)[0].upper()
                    with self._lock:
                        self.commands.append(rest)
                        if verb == "LOGOUT":
                            conn.sendall(b"* BYE LOGOUT Requested\r\n" + tag.encode() + b" OK\r\n")
                            break
                        conn.sendall(self._answer(tag.encode(), verb, rest))

    def _answer(self, tag: bytes, verb: str, rest: str) -> bytes:
        ok = tag + b" OK Success\r\n"
        if verb == "CAPABILITY":
            return b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=PLAIN\r\n" + ok
        if verb == "LOGIN":
            return tag + b" OK [CAPABILITY " + CAPABILITIES + b"] me@gmail.com authenticated\r\n"
        if verb == "ENABLE":
            return b"* ENABLED CONDSTORE\r\n" + ok
        if verb == "NOOP":
            return ok
        if verb == "LIST":
            return self._list("RETURN (STATUS" in rest.upper()) + ok
        if verb == "STATUS":
            name = _mailbox(rest[len("STATUS ") :])
            return self._status(name) + ok
        if verb in ("EXAMINE", "SELECT"):
            return self._examine(_mailbox(rest[len(verb) + 1 :]), tag, verb == "SELECT")
        if verb == "UID":
            return self._uid(rest[len("UID ") :]) + ok
        return tag + b" BAD Unknown command\r\n"

    def _list(self, with_status: bool) -> bytes:
        out = b""
        for name, attributes in FOLDERS:
            out += b"* LIST (" + attributes + b') "/" "' + name.encode() + b'"\r\n'
            if with_status and b"Noselect" not in attributes:
                out += self._status(name)
        return out

    def _status(self, name: str) -> bytes:
        folder = self.folders[name]
        highest = max((m.modseq for m in folder.uids.values()), default=1)
        items = (
            f"MESSAGES {len(folder.uids)} UIDNEXT {folder.uidnext} "
            f"UIDVALIDITY {folder.uidvalidity} HIGHESTMODSEQ {highest}"
        )
        return f'* STATUS "{name}" ({items})\r\n'.encode()

    def _examine(self, name: str, tag: bytes, writable: bool = False) -> bytes:
        if name not in self.folders or name == "[Gmail]":
            return tag + b" NO [NONEXISTENT] Unknown Mailbox\r\n"
        self._selected = name
        folder = self.folders[name]
        highest = max((m.modseq for m in folder.uids.values()), default=1)
        return (
            b"* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)\r\n"
            b"* OK [PERMANENTFLAGS ()] Flags permitted.\r\n"
            + f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid.\r\n".encode()
            + f"* {len(folder.uids)} EXISTS\r\n* 0 RECENT\r\n".encode()
            + f"* OK [UIDNEXT {folder.uidnext}] Predicted next UID.\r\n".encode()
            + f"* OK [HIGHESTMODSEQ {highest}]\r\n".encode()
            + tag
            + (b" OK [READ-WRITE] " if writable else b" OK [READ-ONLY] ")
            + name.encode()
            + b" selected. (Success)\r\n"
        )

    def _uid(self, rest: str) -> bytes:
        assert self._selected is not None, "UID command without a selected folder"
        folder = self.folders[self._selected]
        ordered = sorted(folder.uids)
        if rest.upper().startswith("SEARCH"):
            criteria = rest.split()[-1]
            wanted = set(ordered) if criteria.upper() == "ALL" else _uid_set(criteria, ordered)
            found = ",".join(str(u) for u in ordered if u in wanted)
            return f'* ESEARCH (TAG "x") UID{" ALL " + found if found else ""}\r\n'.encode()
        if rest.upper().startswith("STORE "):
            return self._store(folder, ordered, rest[len("STORE ") :])
        if rest.upper().startswith("MOVE "):
            return self._move(folder, ordered, rest[len("MOVE ") :])
        match = re.fullmatch(r"FETCH (\S+) \((.*?)\)(?: \(CHANGEDSINCE (\d+)\))?", rest)
        assert match is not None, rest
        wanted, items, since = _uid_set(match.group(1), ordered), match.group(2), match.group(3)
        out = b""
        for seq, uid in enumerate(ordered, 1):
            message = folder.uids[uid]
            if uid not in wanted or (since is not None and message.modseq <= int(since)):
                continue
            out += self._fetch(seq, uid, message, items.upper(), since is not None)
        return out

    def _fetch(self, seq: int, uid: int, message: GmailMessage, items: str, modseq: bool) -> bytes:
        parts = [f"UID {uid}"]
        if "RFC822.SIZE" in items:
            parts.append(f"RFC822.SIZE {len(message.raw)}")
        if "FLAGS" in items:
            parts.append(f"FLAGS ({' '.join(message.flags)})")
        if "INTERNALDATE" in items:
            parts.append('INTERNALDATE "07-Dec-2026 09:30:00 +0000"')
        if "X-GM-MSGID" in items:
            parts.append(f"X-GM-MSGID {message.msgid}")
        if "X-GM-LABELS" in items:
            parts.append(f"X-GM-LABELS ({' '.join(_label(x) for x in message.labels)})")
        if modseq:
            parts.append(f"MODSEQ ({message.modseq})")
        head = f"* {seq} FETCH (" + " ".join(parts)
        if "BODY.PEEK[]" not in items:
            return (head + ")\r\n").encode()
        return (head + f" BODY[] {{{len(message.raw)}}}\r\n").encode() + message.raw + b")\r\n"

    def _store(self, folder: _Folder, ordered: list[int], rest: str) -> bytes:
        match = re.fullmatch(r"(\S+) ([+-]?)(FLAGS|X-GM-LABELS)(\.SILENT)? \((.*)\)", rest)
        assert match is not None, rest
        uids, sign, item, silent, args = match.groups()
        names = [q.replace('\\"', '"') if q else bare for q, bare in _TOKEN.findall(args)]
        self.modseq += 1
        out = b""
        for seq, uid in enumerate(ordered, 1):
            if uid not in _uid_set(uids, ordered):
                continue
            message = folder.uids[uid]
            current = message.flags if item == "FLAGS" else message.labels
            if sign == "+":
                current.extend(n for n in names if n not in current)
            elif sign == "-":
                current[:] = [n for n in current if n not in names]
            else:
                current[:] = names
            message.modseq = self.modseq
            if not silent:
                out += self._fetch(seq, uid, message, f"UID {item}", False)
        return out

    def _move(self, folder: _Folder, ordered: list[int], rest: str) -> bytes:
        uids, _, target_arg = rest.partition(" ")
        target_name = _mailbox(target_arg)
        target = self.folders[target_name]
        moving = [u for u in ordered if u in _uid_set(uids, ordered)]
        label = _FOLDER_LABELS.get(self._selected or "", self._selected)
        added = _FOLDER_LABELS.get(target_name, target_name)
        sources: list[int] = []
        targets: list[int] = []
        self.modseq += 1
        for uid in moving:
            message = folder.uids.pop(uid)
            message.labels = [x for x in message.labels if x != label]
            if added is not None and added not in message.labels:
                message.labels.append(added)
            message.modseq = self.modseq
            # One message, one UID per folder: All Mail already holds every message.
            there = next((u for u, m in target.uids.items() if m is message), None)
            if there is None:
                there = target.uidnext
                target.uids[there] = message
                target.uidnext += 1
            sources.append(uid)
            targets.append(there)
        if not sources:
            return b""
        copyuid = (
            f"* OK [COPYUID {target.uidvalidity} {','.join(map(str, sources))} "
            f"{','.join(map(str, targets))}]\r\n"
        ).encode()
        expunged = [ordered.index(uid) + 1 for uid in moving]
        # EXPUNGE responses renumber as they go: the highest sequence numbers first.
        return copyuid + b"".join(f"* {n} EXPUNGE\r\n".encode() for n in sorted(expunged)[::-1])

    def close(self) -> None:
        # close() alone leaves the serving thread blocked in accept() until the join's
        # timeout; shutting the listener down wakes it at once (Linux).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"]+)')
#: The label a folder stands for (None: no label, a view of every message).
_FOLDER_LABELS: dict[str, str | None] = {
    "INBOX": "\\Inbox",
    "[Gmail]/All Mail": None,
    "[Gmail]/Sent Mail": "\\Sent",
    "[Gmail]/Spam": "\\Spam",
    "[Gmail]/Trash": "\\Trash",
}


def _mailbox(arg: str) -> str:
    match = re.match(r'"((?:[^"\\]|\\.)*)"|(\S+)', arg)
    assert match is not None, arg
    return match.group(1) if match.group(1) is not None else match.group(2)


def _uid_set(text: str, ordered: list[int]) -> set[int]:
    top = ordered[-1] if ordered else 0
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        first = top if low == "*" else int(low)
        last = first if not high else (top if high == "*" else int(high))
        out.update(range(min(first, last), max(first, last) + 1))
    return out


def _label(label: str) -> str:
    # System labels are atoms (\\Inbox, \\Important); a user's label is a quoted string.
    if label.startswith("\\"):
        return label
    return '"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"'
