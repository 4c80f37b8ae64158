"""Reading IMAP responses: LIST and STATUS entries (through IMAPClient's parser, since
mailbox names may be atoms, quoted strings or literals) and the few FETCH items a sync
needs (by regular expression, which is what keeps bulk downloads fast)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import imapclient
from imapclient.response_parser import parse_response

from inboxd.mail.dates import parse_date
from inboxd.providers.base import FetchedMessage, FolderStatus, RemoteFolder
from inboxd.providers.imap.stream import Response

_SPECIAL_USE = {
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
    "\\Important",
}
UID = re.compile(rb"\bUID (\d+)")
RESPONSE_CODE = re.compile(rb"\* OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]")
EXISTS = re.compile(rb"\* (\d+) EXISTS\b")
ESEARCH_ALL = re.compile(rb"\bALL ([0-9:,]+)")
SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_GM_MSGID = re.compile(rb"\bX-GM-MSGID (\d+)")
GM_LABELS = re.compile(rb"\bX-GM-LABELS \(((?:[^()\"]|\"(?:[^\"\\]|\\.)*\")*)\)")
_LABEL_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s"]+)')


def mailbox_arg(name: str) -> str:
    """A folder name as a command argument: modified UTF-7, quoted."""
    encoded = bytes(imapclient.imap_utf7.encode(name)).decode("ascii")
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parsed(responses: Sequence[Response], prefix: bytes) -> Iterator[list[Any]]:
    """The data of each response starting with ``prefix``, read by IMAPClient's parser
    (mailbox names may be atoms, quoted strings or literals)."""
    for response in responses:
        if not response.parts[0].startswith(prefix):
            continue
        data: list[Any] = []
        parts = [response.parts[0][len(prefix) :], *response.parts[1:]]
        for text, literal in zip(parts, response.literals, strict=False):
            data.append((text.rstrip(b"\r\n"), literal))
        if rest := parts[-1].rstrip(b"\r\n"):
            data.append(rest)
        yield list(parse_response(data))


def _mailbox_name(name: Any) -> str:
    if isinstance(name, int):  # some servers send numeric names unquoted
        return str(name)
    if isinstance(name, bytes):
        return str(imapclient.imap_utf7.decode(name))  # modified UTF-7
    return str(name)


def list_entries(responses: Sequence[Response]) -> list[tuple[Any, Any, str]]:
    """(flags, delimiter, name) of each ``* LIST`` response."""
    return [
        (flags, delimiter, _mailbox_name(name))
        for flags, delimiter, name in _parsed(responses, b"* LIST ")
    ]


def status_entries(responses: Sequence[Response]) -> Iterator[tuple[str, dict[str, int]]]:
    """(mailbox, items) of each ``* STATUS`` response (as LIST-STATUS returns them)."""
    for name, items in _parsed(responses, b"* STATUS "):
        if not isinstance(items, tuple):
            continue
        pairs = zip(items[::2], items[1::2], strict=False)
        values = {_text_atom(k).upper(): v for k, v in pairs if isinstance(v, int)}
        yield _mailbox_name(name), values


def _text_atom(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def remote_folders(responses: Sequence[Response]) -> list[RemoteFolder]:
    found = []
    for flags, delimiter, name in list_entries(responses):
        names = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
        special = next((f for f in names if f in _SPECIAL_USE), None)
        delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
        found.append(
            RemoteFolder(
                name=name,
                delimiter=delim,
                special_use=special,
                selectable="\\Noselect" not in names and "\\NonExistent" not in names,
            )
        )
    return found


def folder_status(values: dict[str, int]) -> FolderStatus:
    return FolderStatus(
        messages=values.get("MESSAGES", 0),
        uidvalidity=values.get("UIDVALIDITY"),
        uidnext=values.get("UIDNEXT"),
        highestmodseq=values.get("HIGHESTMODSEQ"),
    )


def fetched_message(response: Response) -> FetchedMessage | None:
    """A FETCH response with a body as a FetchedMessage; None for other FETCH responses
    (an unsolicited flag update, or a body the server answered as NIL)."""
    head, body = response.fetch_head_and_body()
    if body is None:
        return None
    message = _message(head, body)
    return message if message.uid is not None else None


def _message(head: bytes, body: bytes) -> FetchedMessage:
    uid = UID.search(head)
    flags = FLAGS.search(head)
    date = _DATE.search(head)
    gm_id = _GM_MSGID.search(head)
    labels = GM_LABELS.search(head)
    return FetchedMessage(
        remote_key=uid.group(1).decode() if uid else "",
        uid=int(uid.group(1)) if uid else None,
        raw=body,
        flags=flag_names(flags.group(1)) if flags else (),
        internal_date=_internal_date(date.group(1)) if date else None,
        gm_msgid=int(gm_id.group(1)) if gm_id else None,
        labels=label_names(labels.group(1)) if labels else (),
    )


def flag_names(raw: bytes) -> tuple[str, ...]:
    return tuple(f.decode("utf-8", "replace") for f in raw.split())


def label_names(raw: bytes) -> tuple[str, ...]:
    out = []
    for quoted, bare in _LABEL_TOKEN.findall(raw):
        token = quoted.replace(b'\\"', b'"').replace(b"\\\\", b"\\") if quoted else bare
        out.append(imapclient.imap_utf7.decode(token) if b"&" in token else token.decode())
    return tuple(out)


def _internal_date(raw: bytes) -> datetime | None:
    # INTERNALDATE is "17-Jul-1996 02:44:25 -0700": an RFC 5322 date once the dashes go.
    return parse_date(raw.decode("ascii", "replace").replace("-", " ", 2))
