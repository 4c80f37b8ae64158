"""iter_mbox on hand-written mbox files: framing, escaping, CRLF, resume, Takeout labels."""

from __future__ import annotations

import mailbox
from pathlib import Path

from inboxd.mail.reading import parse_message
from inboxd.providers.mbox import MboxEntry, iter_mbox

FROM_1 = b"From alice@example.com Mon Jan  1 10:00:00 2024\n"
FROM_2 = b"From MAILER-DAEMON Tue Jan  2 11:30:00 2024\n"
FROM_3 = b"From 1790000000000000000@xxx Wed Jan 03 12:00:00 +0000 2024\n"
MSG_1 = b"Subject: one\nMessage-ID: <1@example.com>\n\nfirst body\n"
MSG_2 = b"Subject: two\n\nsecond body\n>From the escaped line\n>>From doubly escaped\n"
MSG_3 = b"Subject: three\n\nthird\n"


def _write(tmp_path: Path, data: bytes, name: str = "mail.mbox") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _standard(tmp_path: Path) -> Path:
    return _write(tmp_path, FROM_1 + MSG_1 + b"\n" + FROM_2 + MSG_2 + b"\n" + FROM_3 + MSG_3)


def test_splits_messages_with_offsets(tmp_path: Path) -> None:
    path = _standard(tmp_path)
    entries = list(iter_mbox(path))
    assert [e.raw for e in entries] == [
        MSG_1,
        b"Subject: two\n\nsecond body\nFrom the escaped line\n>From doubly escaped\n",
        MSG_3,
    ]
    assert [e.from_line for e in entries] == [
        FROM_1.rstrip(b"\n"),
        FROM_2.rstrip(b"\n"),
        FROM_3.rstrip(b"\n"),
    ]
    data = path.read_bytes()
    assert entries[0].offset == 0
    assert entries[1].offset == data.index(FROM_2)
    assert entries[2].offset == data.index(FROM_3)
    assert [e.end_offset for e in entries] == [entries[1].offset, entries[2].offset, len(data)]
    assert not any(e.truncated for e in entries)
    assert all(isinstance(e, MboxEntry) and e.gmail_labels == [] for e in entries)


def test_resume_from_checkpoint(tmp_path: Path) -> None:
    path = _standard(tmp_path)
    first = next(iter(iter_mbox(path)))
    rest = list(iter_mbox(path, start_offset=first.end_offset))
    assert [e.raw for e in rest][-1] == MSG_3
    assert [e.offset for e in rest] == [e.offset for e in list(iter_mbox(path))[1:]]
    assert list(iter_mbox(path, start_offset=path.stat().st_size)) == []


def test_bad_checkpoint_skips_to_next_message(tmp_path: Path) -> None:
    path = _standard(tmp_path)
    middle = path.read_bytes().index(b"first body")
    entries = list(iter_mbox(path, start_offset=middle))
    assert [e.raw for e in entries][-1] == MSG_3
    assert len(entries) == 2


def test_from_in_body_does_not_split(tmp_path: Path) -> None:
    body = (
        b"Subject: s\n\nline\nFrom here on, no blank line before\n\n"
        b"From the desk of Alice: no time of day, so not a From_ line\n"
    )
    entries = list(iter_mbox(_write(tmp_path, FROM_1 + body + b"\n" + FROM_2 + MSG_3)))
    assert [e.raw for e in entries] == [body, MSG_3]


def test_crlf_file(tmp_path: Path) -> None:
    data = (FROM_1 + MSG_1 + b"\n" + FROM_2 + MSG_2).replace(b"\n", b"\r\n")
    entries = list(iter_mbox(_write(tmp_path, data)))
    assert len(entries) == 2
    assert entries[0].raw == MSG_1.replace(b"\n", b"\r\n")
    assert entries[1].raw.endswith(b"From the escaped line\r\n>From doubly escaped\r\n")
    assert entries[0].from_line == FROM_1.rstrip(b"\n")
    assert parse_message(entries[0].raw).message_id == "1@example.com"


def test_no_trailing_newline(tmp_path: Path) -> None:
    entries = list(
        iter_mbox(_write(tmp_path, FROM_1 + MSG_1 + b"\n" + FROM_2 + b"Subject: x\n\nend"))
    )
    assert entries[-1].raw == b"Subject: x\n\nend"
    assert entries[-1].end_offset == (tmp_path / "mail.mbox").stat().st_size


def test_bare_message_is_one_entry(tmp_path: Path) -> None:
    data = b"Subject: not an mbox\n\nbody\n\nFrom someone Mon Jan  1 10:00:00 2024\nmore\n"
    entries = list(iter_mbox(_write(tmp_path, data)))
    assert len(entries) == 1
    assert entries[0].raw == data
    assert entries[0].from_line == b""
    assert (entries[0].offset, entries[0].end_offset) == (0, len(data))


def test_leading_blank_lines_and_empty_file(tmp_path: Path) -> None:
    entries = list(iter_mbox(_write(tmp_path, b"\n\n" + FROM_1 + MSG_1)))
    assert [(e.offset, e.raw) for e in entries] == [(2, MSG_1)]
    assert list(iter_mbox(_write(tmp_path, b"", "empty.mbox"))) == []


def test_takeout_gmail_labels(tmp_path: Path) -> None:
    msg = (
        b"X-GM-THRID: 1790000000000000000\n"
        b'X-Gmail-Labels: Inbox,Important,"Work, Projects",\n'
        b" =?UTF-8?Q?Cat=C3=A9gorie?=,Opened\n"
        b"Subject: labelled\n\nbody\nX-Gmail-Labels: not a header here\n"
    )
    entries = list(iter_mbox(_write(tmp_path, FROM_3 + msg + b"\n" + FROM_1 + MSG_1)))
    assert entries[0].gmail_labels == [
        "Inbox",
        "Important",
        "Work, Projects",
        "Catégorie",
        "Opened",
    ]
    assert entries[0].raw == msg
    assert entries[1].gmail_labels == []


def test_oversized_message_is_truncated(tmp_path: Path) -> None:
    big = b"Subject: big\n\n" + b"x" * 1000 + b"\n"
    path = _write(tmp_path, FROM_1 + big + b"\n" + FROM_2 + MSG_3)
    entries = list(iter_mbox(path, max_message_bytes=100))
    assert entries[0].truncated and len(entries[0].raw) == 100
    assert entries[0].raw == big[:100]
    assert entries[1].raw == MSG_3 and not entries[1].truncated


def test_very_long_line(tmp_path: Path) -> None:
    line = b"A" * (3 * 1024 * 1024) + b"\n"
    body = b"Subject: long\n\n" + line + b">From escaped\n"
    entries = list(iter_mbox(_write(tmp_path, FROM_1 + body + b"\n" + FROM_2 + MSG_3)))
    assert entries[0].raw == b"Subject: long\n\n" + line + b"From escaped\n"
    assert entries[1].raw == MSG_3


def test_roundtrip_with_stdlib_mailbox(tmp_path: Path) -> None:
    path = tmp_path / "stdlib.mbox"
    box = mailbox.mbox(str(path))
    messages = [MSG_1, b"Subject: f\n\nFrom the start of a line\nbody\n", MSG_3]
    for message in messages:
        box.add(message)
    box.flush()
    box.close()
    assert [e.raw for e in iter_mbox(path)] == messages
