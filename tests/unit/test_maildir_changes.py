"""Writing changes to a Maildir tree: flags in the info suffix, keywords in Dovecot's
dovecot-keywords, moves as renames into the target's cur/ (Maildir++ folders created)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inboxd.providers.base import Marks, Mutation, MutationRefused, ProviderOptions
from inboxd.providers.maildir import MaildirProvider, iter_maildir, scan_maildir
from inboxd.providers.maildir_keywords import KEYWORDS_FILE
from tests.support.mail import make_message


def _tree(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def _files(folder: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name}" for p in folder.glob("[cn][ue][rw]/*"))


def _provider(root: Path) -> MaildirProvider:
    return MaildirProvider(root, ProviderOptions())


def test_flags_are_renames_of_the_info_suffix(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    (root / "new" / "100.a.host").write_bytes(make_message(0))
    (root / "cur" / "101.b.host:2,PS").write_bytes(make_message(1))
    provider = _provider(root)
    assert provider.capabilities.mutations and not provider.capabilities.labels
    applied = provider.apply(
        [
            Mutation("INBOX", "100.a.host", add_flags=("\\Seen", "\\Flagged")),
            Mutation("INBOX", "101.b.host", add_flags=("\\Answered",), remove_flags=("\\Seen",)),
            Mutation("INBOX", "102.c.host", add_flags=("\\Seen",)),
        ]
    )
    assert _files(root) == ["cur/100.a.host:2,FS", "cur/101.b.host:2,PR"]
    assert [a.error for a in applied] == [None, None, "not in INBOX any more"]
    assert applied[0].marks == Marks(("\\Seen", "\\Flagged"))
    assert (applied[1].folder, applied[1].new_key) == ("INBOX", "101.b.host")
    # Unchanged marks rename nothing (a new/ message stays new).
    (root / "new" / "103.d.host").write_bytes(make_message(3))
    (same,) = provider.apply([Mutation("INBOX", "103.d.host", remove_flags=("\\Seen",))])
    assert same.ok and (root / "new" / "103.d.host").exists()
    marks = provider.current_marks("INBOX", ["100.a.host", "101.b.host", "gone"])
    assert marks == {
        "100.a.host": Marks(("\\Seen", "\\Flagged")),
        "101.b.host": Marks(("\\Answered",)),
    }


def test_keywords_use_dovecot_keywords_letters_and_sync_sees_them(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    (root / KEYWORDS_FILE).write_text("0 $Junk\n2 Work\n")
    (root / "cur" / "1.x.host:2,Sc").write_bytes(make_message(0))
    (root / "cur" / "2.y.host:2,").write_bytes(make_message(1))
    provider = _provider(root)
    applied = provider.apply(
        [
            Mutation(
                "INBOX", "1.x.host", add_flags=("$inboxd_newsletter",), remove_flags=("work",)
            ),
            Mutation("INBOX", "2.y.host", add_flags=("Work", "$inboxd_newsletter")),
        ]
    )
    assert all(a.ok for a in applied)
    # The first free letter (b) names the new keyword; the file keeps the others' numbers.
    assert (root / KEYWORDS_FILE).read_text() == "0 $Junk\n1 $inboxd_newsletter\n2 Work\n"
    assert _files(root) == ["cur/1.x.host:2,Sb", "cur/2.y.host:2,bc"]
    assert applied[1].marks == Marks(("$inboxd_newsletter", "Work"))
    listed = {e.key: e.flags for e in iter_maildir(root)}
    assert listed == {
        "1.x.host": ["\\Seen", "$inboxd_newsletter"],
        "2.y.host": ["$inboxd_newsletter", "Work"],
    }


def test_a_folder_with_26_keywords_refuses_one_more_per_message(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    (root / KEYWORDS_FILE).write_text("".join(f"{n} k{n}\n" for n in range(26)))
    (root / "cur" / "1.x.host:2,").write_bytes(make_message(0))
    (full, fine) = _provider(root).apply(
        [
            Mutation("INBOX", "1.x.host", add_flags=("$inboxd_newsletter",)),
            Mutation("INBOX", "1.x.host", add_flags=("k25",)),
        ]
    )
    assert full.error is not None and "no letter left for $inboxd_newsletter" in full.error
    assert fine.ok and _files(root) == ["cur/1.x.host:2,z"]


def test_moves_rename_into_a_created_maildirplus_folder_and_map_keywords(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    (root / KEYWORDS_FILE).write_text("0 Work\n")
    body = make_message(0)
    (root / "new" / "1.x.host").write_bytes(body)
    (root / "cur" / "2.y.host:2,Sa").write_bytes(make_message(1))
    provider = _provider(root)
    assert provider.archive_folder() == "Archive"
    assert (root / ".Archive" / "maildirfolder").exists()
    applied = provider.apply(
        [
            Mutation("INBOX", "1.x.host", add_flags=("\\Seen",), move_to="Archive"),
            Mutation("INBOX", "2.y.host", move_to="Archive"),
            Mutation("INBOX", "2.y.host", move_to="Archive"),
        ]
    )
    assert [(a.folder, a.new_key, a.error) for a in applied] == [
        ("Archive", "1.x.host", None),
        ("Archive", "2.y.host", None),
        ("INBOX", None, "not in INBOX any more"),
    ]
    assert _files(root) == []
    assert _files(root / ".Archive") == ["cur/1.x.host:2,S", "cur/2.y.host:2,Sa"]
    assert (root / ".Archive" / KEYWORDS_FILE).read_text() == "0 Work\n"
    assert (root / ".Archive" / "cur" / "1.x.host:2,S").read_bytes() == body
    assert applied[1].marks == Marks(("\\Seen", "Work"))
    assert provider.locate("Archive", _message_id(body)) == ["1.x.host"]
    assert provider.locate("INBOX", _message_id(body)) == []
    # A folder named Archive in any case is the archive; a nested folder is created too.
    (root / ".Archive").rename(root / ".ARCHIVE")
    assert provider.archive_folder() == "ARCHIVE"
    (moved,) = provider.apply([Mutation("ARCHIVE", "1.x.host", move_to="Lists/été")])
    assert moved.folder == "Lists/été" and "Lists/été" in {f.name for f in scan_maildir(root)}


def test_a_move_onto_an_existing_key_gets_a_new_key_and_never_overwrites(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    _tree(root / ".Archive")
    (root / "cur" / "1.x.host:2,S").write_bytes(b"moved")
    (root / ".Archive" / "cur" / "1.x.host:2,").write_bytes(b"already there")
    (applied,) = _provider(root).apply([Mutation("INBOX", "1.x.host", move_to="Archive")])
    assert applied.ok and applied.new_key not in (None, "1.x.host")
    contents = sorted(p.read_bytes() for p in (root / ".Archive" / "cur").iterdir())
    assert contents == [b"already there", b"moved"]
    assert (root / ".Archive" / "cur" / f"{applied.new_key}:2,S").read_bytes() == b"moved"


def test_a_file_renamed_by_another_client_is_found_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    (root / "cur" / "1.x.host:2,").write_bytes(b"x")
    provider = _provider(root)
    original = os.rename

    def flagged_meanwhile(src: str, dst: str) -> None:
        if src.endswith("1.x.host:2,"):
            original(src, src + "R")  # another client marks it answered first
        original(src, dst)

    mutation = Mutation("INBOX", "1.x.host", add_flags=("\\Seen",))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "rename", flagged_meanwhile)
        (applied,) = provider.apply([mutation])
    assert applied.ok and _files(root) == ["cur/1.x.host:2,RS"]


def test_maildir_refuses_deleting_labels_and_bad_folder_names(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Mail")
    (root / "cur" / "1.x.host:2,").write_bytes(b"x")
    provider = _provider(root)
    with pytest.raises(MutationRefused, match="never marks mail"):
        provider.apply([Mutation("INBOX", "1.x.host", add_flags=("\\Deleted",))])
    with pytest.raises(MutationRefused, match="no labels"):
        provider.apply([Mutation("INBOX", "1.x.host", add_labels=("inboxd/Newsletter",))])
    (bad,) = provider.apply([Mutation("INBOX", "1.x.host", move_to="../escape")])
    assert bad.error is not None and "cannot be a Maildir folder name" in bad.error
    assert _files(root) == ["cur/1.x.host:2,"] and not (tmp_path / "escape").exists()


def _message_id(raw: bytes) -> str:
    from email import message_from_bytes

    return str(message_from_bytes(raw)["Message-ID"])
