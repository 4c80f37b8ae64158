"""mboxrd quoting and Maildir++ names, as the export writes them."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from inboxd.pipeline.mailfiles import (
    encode_mutf7,
    from_line,
    info_suffix,
    maildir_folder,
    mboxrd_escape,
    read_mboxrd,
)
from inboxd.providers.maildir import decode_mutf7


def _mbox(messages: list[bytes]) -> bytes:
    return b"".join(
        from_line("a@example.org", None) + mboxrd_escape(raw) + b"\n" for raw in messages
    )


def test_awkward_messages_come_back_exactly() -> None:
    messages = [
        b"",
        b"no newline at the end",
        b"From the first line\n",
        b"Subject: x\r\n\r\nFrom \r\n>From \r\n>>>From x\r\n",
        b"\n\n\n",
        b"ends with a blank line\n\n",
        b"From ",
        b"\xff\xfe\x00 8-bit\nFrom\n",
    ]
    assert read_mboxrd(_mbox(messages)) == messages


def test_random_lines_round_trip() -> None:
    rng = random.Random(7)
    pieces = [b"From ", b">From ", b">>From x", b"From", b"\n", b"\r\n", b"text", b">", b" "]
    messages = [
        b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40))) for _ in range(300)
    ]
    assert read_mboxrd(_mbox(messages)) == messages


def test_from_line_is_one_clean_line() -> None:
    line = from_line("odd name@exa mple.org\n", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert line == b"From oddname@example.org Fri Jan  2 03:04:05 2026\n"
    assert from_line(None, None).startswith(b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970")


@pytest.mark.parametrize("name", ["Work", "Entwürfe", "a.b/c", "&Co", "日本語 Ordner", "~x"])
def test_folder_names_decode_back(name: str) -> None:
    encoded = encode_mutf7(name)
    assert "." not in encoded and "/" not in encoded
    assert decode_mutf7(encoded) == name


def test_maildir_folders_and_flags() -> None:
    assert maildir_folder("INBOX", "/") == "" and maildir_folder("inbox", None) == ""
    assert maildir_folder("Archive/2024", "/") == ".Archive.2024"
    assert maildir_folder("Archive.2024", ".") == ".Archive.2024"
    # A name cannot climb out of the export: its dots are encoded, not separators.
    assert maildir_folder("../../etc", "/") == ".&AC4ALg-.&AC4ALg-.etc"
    assert info_suffix(["\\Seen", "\\Flagged", "$Junk"]) == ":2,FS"
    assert info_suffix([]) == ":2,"
