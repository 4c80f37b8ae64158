"""The pipelined IMAP stream against scripted server output (the real server: Dovecot, in
tests/integration/test_imap_sync.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from inboxd.providers.imap.responses import (
    fetched_message,
    list_entries,
    mailbox_arg,
    status_entries,
)
from inboxd.providers.imap.stream import (
    MAX_SEARCH_LINE,
    ImapStream,
    StreamBroken,
    fetch_pipelined,
    parse_uid_set,
    uid_set,
)


class FakeImap:
    """What ImapStream uses of imaplib.IMAP4: ``send`` and the buffered ``file``."""

    def __init__(self, server_output: bytes) -> None:
        self.file = io.BufferedReader(io.BytesIO(server_output))
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def stream_for(output: bytes) -> tuple[ImapStream, FakeImap]:
    fake = FakeImap(output)
    return ImapStream(fake), fake  # type: ignore[arg-type]


def test_uid_set_is_compact() -> None:
    assert uid_set([5, 1, 2, 3, 7, 9, 10]) == "1:3,5,7,9:10"
    assert uid_set([4]) == "4"


def test_fetch_responses_with_literals_trailing_items_and_unsolicited_lines() -> None:
    output = (
        b'* 1 FETCH (UID 10 FLAGS (\\Seen \\Flagged) INTERNALDATE " 7-Feb-2026 10:11:12 +0100" '
        b"BODY[] {5}\r\nhello)\r\n"
        b"* 3 FETCH (FLAGS (\\Deleted))\r\n"
        b"* 4 EXISTS\r\n"
        b"* 2 FETCH (UID 11 BODY[] {3}\r\nabc FLAGS (\\Answered) X-GM-MSGID 123 "
        b'X-GM-LABELS ("\\\\Inbox" {10}\r\nMy "Label" work))\r\n'
        b"IBX1 OK Fetch completed.\r\n"
    )
    stream, fake = stream_for(output)
    ((batch, responses, answer),) = list(fetch_pipelined(stream, [[10, 11]], "(BODY.PEEK[])"))
    assert batch == [10, 11]
    assert fake.sent == [b"IBX1 UID FETCH 10:11 (BODY.PEEK[])\r\n"]
    assert answer.ok and stream.clean
    first, second = (fetched_message(r) for r in responses)
    assert first is not None and second is not None
    assert (first.uid, first.raw, first.flags) == (10, b"hello", ("\\Seen", "\\Flagged"))
    assert first.internal_date == datetime(2026, 2, 7, 9, 11, 12, tzinfo=UTC)
    assert (second.uid, second.raw, second.flags) == (11, b"abc", ("\\Answered",))
    assert second.gm_msgid == 123
    # A label sent as a literal is read like a quoted one.
    assert second.labels == ("\\Inbox", 'My "Label"', "work")


def test_pipelined_batches_keep_depth_commands_in_flight() -> None:
    def fetch(seq: int, uid: int) -> bytes:
        return f"* {seq} FETCH (UID {uid} BODY[] {{1}}\r\n".encode() + b"x)\r\n"

    output = b"".join(fetch(n, n) + f"IBX{n} OK done\r\n".encode() for n in range(1, 6))
    stream, fake = stream_for(output)
    seen: list[tuple[int, list[bytes]]] = []
    pulled: list[int] = []

    def batches() -> Iterator[list[int]]:
        for n in range(1, 6):
            pulled.append(n)
            yield [n]

    for batch, responses, _answer in fetch_pipelined(stream, batches(), "X", depth=3):
        seen.append((len(fake.sent), [r.literals[0] for r in responses]))
        assert batch == [len(seen)]
        # Batches are taken only as their commands go out.
        assert len(pulled) == len(fake.sent)
    # Three commands were on the wire before the first answer was read, and while the
    # caller handles one answer the next three are (the server keeps streaming).
    assert [sent for sent, _ in seen] == [4, 5, 5, 5, 5]
    assert all(bodies == [b"x"] for _, bodies in seen)


def test_a_refused_batch_is_reported_not_raised() -> None:
    output = (
        b"* 1 FETCH (UID 1 BODY[] {2}\r\nok)\r\n"
        b"IBX1 NO [SERVERBUG] Internal error occurred.\r\n"
        b"* 2 FETCH (UID 2 BODY[] {2}\r\nok)\r\n"
        b"IBX2 OK done\r\n"
    )
    stream, _fake = stream_for(output)
    answers = list(fetch_pipelined(stream, [[1, 5], [2]], "X"))
    assert [a.status for _, _, a in answers] == ["NO", "OK"]
    assert "SERVERBUG" in answers[0][2].text
    assert [len(r) for _, r, _ in answers] == [1, 1]


@pytest.mark.parametrize(
    "output",
    [
        pytest.param(b"* 1 FETCH (UID 1 BODY[] {10}\r\nshort", id="eof-in-literal"),
        pytest.param(b"* 1 FETCH (UID 1 FLAGS ()", id="line-cut-off"),
        pytest.param(b"* BYE server shutting down\r\n", id="bye"),
        pytest.param(b"", id="eof"),
        pytest.param(b"+ go ahead\r\n", id="continuation"),
        pytest.param(b"IBX9 OK someone else's tag\r\n", id="foreign-tag"),
    ],
)
def test_a_broken_answer_breaks_the_stream(output: bytes) -> None:
    stream, _fake = stream_for(output)
    with pytest.raises(StreamBroken):
        list(fetch_pipelined(stream, [[1]], "X"))


def test_a_body_answered_as_nil_is_skipped() -> None:
    output = b"* 1 FETCH (UID 7 BODY[] NIL)\r\nIBX1 OK done\r\n"
    stream, _fake = stream_for(output)
    ((_batch, responses, _answer),) = list(fetch_pipelined(stream, [[7]], "X"))
    assert [fetched_message(r) for r in responses] == [None]


def test_command_collects_untagged_responses() -> None:
    stream, _fake = stream_for(
        b"* 1 FETCH (UID 4 RFC822.SIZE 120)\r\n* 2 FETCH (UID 9 RFC822.SIZE 7)\r\nIBX1 OK done\r\n"
    )
    answer = stream.command("UID FETCH 1:* (UID RFC822.SIZE)")
    lines: list[Any] = [r.line for r in answer.responses]
    assert lines == [
        b"* 1 FETCH (UID 4 RFC822.SIZE 120)\r\n",
        b"* 2 FETCH (UID 9 RFC822.SIZE 7)\r\n",
    ]


def test_an_unawaited_answer_is_read_and_dropped_on_the_way() -> None:
    stream, fake = stream_for(
        b"* ENABLED CONDSTORE\r\nIBX1 OK Enabled.\r\n"
        b'* LIST (\\HasNoChildren) "/" INBOX\r\nIBX2 OK List completed.\r\n'
    )
    stream.send_unawaited("ENABLE CONDSTORE")
    answer = stream.command('LIST "" "*"')
    assert fake.sent == [b"IBX1 ENABLE CONDSTORE\r\n", b'IBX2 LIST "" "*"\r\n']
    assert answer.tag == "IBX2" and answer.ok and stream.clean
    assert [r.line for r in answer.responses] == [b'* LIST (\\HasNoChildren) "/" INBOX\r\n']


def test_pipeline_keeps_a_bounded_window_and_answers_in_order() -> None:
    answers = (f"* STATUS F{n} (MESSAGES {n})\r\nIBX{n} OK\r\n" for n in range(1, 8))
    output = "".join(answers).encode()
    stream, fake = stream_for(output)
    seen = []
    for answer in stream.pipeline([f"STATUS F{n} (MESSAGES)" for n in range(1, 8)], depth=3):
        seen.append((answer.tag, len(fake.sent)))
    # Never more than three commands on the wire without their answer read.
    assert seen == [(f"IBX{n}", min(n + 2, 7)) for n in range(1, 8)]


def test_a_long_search_line_is_allowed_only_where_asked_for() -> None:
    line = b"* SEARCH " + b" ".join(str(n).encode() for n in range(1, 200_001)) + b"\r\n"
    assert len(line) > 1_000_000
    stream, _fake = stream_for(line + b"IBX1 OK\r\n")
    answer = stream.command("UID SEARCH ALL", max_line=MAX_SEARCH_LINE)
    assert len(answer.responses[0].line) == len(line)
    stream, _fake = stream_for(line + b"IBX1 OK\r\n")
    with pytest.raises(StreamBroken, match="longer than"):
        stream.command("UID SEARCH ALL")


def test_parse_uid_set_reverses_uid_set() -> None:
    uids = [1, 2, 3, 5, 7, 9, 10, 11, 400]
    assert parse_uid_set(uid_set(uids)) == uids
    assert parse_uid_set("9:7,12") == [7, 8, 9, 12]


def test_list_entries_read_quoted_literal_and_encoded_names() -> None:
    stream, _fake = stream_for(
        b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
        b'* LIST (\\HasNoChildren \\Trash) "/" "Say \\"hi\\""\r\n'
        b'* LIST (\\Noselect) "/" {11}\r\nReports (x)\r\n'
        b'* LIST () NIL "&AMQ-rchiv"\r\n'
        b"IBX1 OK done\r\n"
    )
    answer = stream.command('LIST "" "*"')
    names = [(name, delimiter) for _flags, delimiter, name in list_entries(answer.responses)]
    assert names == [("INBOX", b"/"), ('Say "hi"', b"/"), ("Reports (x)", b"/"), ("Ärchiv", None)]
    stream, _fake = stream_for(
        b'* STATUS "Reports (old)" (MESSAGES 4 UIDNEXT 9 HIGHESTMODSEQ 12)\r\nIBX1 OK done\r\n'
    )
    answer = stream.command('STATUS "Reports (old)" (MESSAGES UIDNEXT HIGHESTMODSEQ)')
    assert list(status_entries(answer.responses)) == [
        ("Reports (old)", {"MESSAGES": 4, "UIDNEXT": 9, "HIGHESTMODSEQ": 12})
    ]
    assert mailbox_arg('Ärchiv "x" \\ y') == '"&AMQ-rchiv \\"x\\" \\\\ y"'
