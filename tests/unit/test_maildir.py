"""Maildir discovery, listing without reading, flag mapping and re-finding renamed files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inboxd.errors import NotFound
from inboxd.providers.maildir import (
    MaildirEntry,
    decode_mutf7,
    iter_maildir,
    parse_filename,
    read_entry,
    scan_maildir,
)


def _maildir(path: Path, *, tmp: bool = True) -> Path:
    for sub in ("cur", "new", "tmp") if tmp else ("cur", "new"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def _put(folder: Path, sub: str, name: str, data: bytes, mtime: float = 1_700_000_000) -> Path:
    path = folder / sub / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_scan_finds_every_kind_of_folder(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "Mail")
    _maildir(root / ".Work")
    _maildir(root / ".Work.Projects")
    _maildir(root / ".&AOk-t&AOk-")  # "été" in IMAP modified UTF-7
    _maildir(root / "Archive" / "2023", tmp=False)  # plain nested maildirs
    _maildir(root / "Archive")
    (root / "not-a-maildir" / "stuff").mkdir(parents=True)
    (root / ".hidden-cache").mkdir()
    (root / "dovecot.index").write_bytes(b"")
    folders = scan_maildir(root)
    assert [f.name for f in folders] == [
        "INBOX",
        "Archive",
        "Archive/2023",
        "Work",
        "Work/Projects",
        "été",
    ]
    by_name = {f.name: f.path for f in folders}
    assert by_name["INBOX"] == root
    assert by_name["Work/Projects"] == root / ".Work.Projects"
    assert by_name["Archive/2023"] == root / "Archive" / "2023"


def test_scan_root_that_is_only_a_container(tmp_path: Path) -> None:
    _maildir(tmp_path / "one")
    _maildir(tmp_path / "two")
    assert [f.name for f in scan_maildir(tmp_path)] == ["one", "two"]


def test_scan_name_clash_gets_a_suffix(tmp_path: Path) -> None:
    _maildir(tmp_path)
    _maildir(tmp_path / ".Foo")
    _maildir(tmp_path / "Foo")
    assert [f.name for f in scan_maildir(tmp_path)] == ["INBOX", "Foo", "Foo (2)"]


def test_scan_missing_root(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        scan_maildir(tmp_path / "nope")
    with pytest.raises(NotFound):
        list(iter_maildir(tmp_path / "nope"))


def test_iter_maildir_lists_entries_with_flags(tmp_path: Path) -> None:
    folder = _maildir(tmp_path)
    _put(folder, "new", "1700000003.M3P1.host", b"new message")
    _put(folder, "cur", "1700000001.M1P1.host:2,FRS", b"flagged", mtime=1_700_000_001.5)
    _put(folder, "cur", "1700000002.M2P1.host,S=1234:2,DT", b"draft")
    _put(folder, "cur", "1700000004.M4P1.host:2,", b"no flags")
    _put(folder, "cur", "1700000005.M5P1.host!2,S", b"bang separator")
    _put(folder, "cur", "1700000006.M6P1.host:2,Sab", b"keywords ignored")
    _put(folder, "cur", ".1700000007.hidden", b"temp file of another tool")
    (folder / "cur" / "subdir").mkdir()
    entries = list(iter_maildir(folder))
    assert [e.key for e in entries] == [
        "1700000001.M1P1.host",
        "1700000002.M2P1.host,S=1234",
        "1700000003.M3P1.host",
        "1700000004.M4P1.host",
        "1700000005.M5P1.host",
        "1700000006.M6P1.host",
    ]
    first = entries[0]
    assert isinstance(first, MaildirEntry)
    assert first.subdir == "cur"
    assert first.flags == ["\\Seen", "\\Answered", "\\Flagged"]
    assert first.size == len(b"flagged")
    assert first.mtime == 1_700_000_001.5
    assert first.path == str(folder / "cur" / "1700000001.M1P1.host:2,FRS")
    assert entries[1].flags == ["\\Deleted", "\\Draft"]
    assert (entries[2].subdir, entries[2].flags) == ("new", [])
    assert entries[3].flags == []
    assert entries[4].flags == ["\\Seen"]
    assert entries[5].flags == ["\\Seen"]


def test_same_key_in_new_and_cur_prefers_cur(tmp_path: Path) -> None:
    folder = _maildir(tmp_path)
    _put(folder, "new", "k1", b"old copy")
    _put(folder, "cur", "k1:2,S", b"moved copy")
    [entry] = list(iter_maildir(folder))
    assert (entry.subdir, entry.flags) == ("cur", ["\\Seen"])


def test_folder_without_tmp_or_new(tmp_path: Path) -> None:
    folder = tmp_path / "only-cur"
    (folder / "cur").mkdir(parents=True)
    _put(folder, "cur", "a:2,S", b"x")
    assert [e.key for e in iter_maildir(folder)] == ["a"]


def test_read_entry_follows_renames(tmp_path: Path) -> None:
    folder = _maildir(tmp_path)
    path = _put(folder, "new", "1700000000.M1P1.host", b"the message")
    [entry] = list(iter_maildir(folder))
    assert read_entry(entry) == b"the message"
    # Another client reads it: new/ -> cur/ with flags.
    path.rename(folder / "cur" / "1700000000.M1P1.host:2,S")
    assert read_entry(entry) == b"the message"
    (folder / "cur" / "1700000000.M1P1.host:2,S").unlink()
    with pytest.raises(NotFound):
        read_entry(entry)


def test_parse_filename_and_mutf7() -> None:
    assert parse_filename("123.abc:2,RS") == ("123.abc", ["\\Seen", "\\Answered"])
    assert parse_filename("123.abc") == ("123.abc", [])
    assert parse_filename("123.abc;2,F") == ("123.abc", ["\\Flagged"])
    assert decode_mutf7("Entw&APw-rfe") == "Entwürfe"
    assert decode_mutf7("Tom &- Jerry") == "Tom & Jerry"
    assert decode_mutf7("&ZeVnLIqe-") == "日本語"
    assert decode_mutf7("broken&@@@-") == "broken&@@@-"
    assert decode_mutf7("plain") == "plain"
