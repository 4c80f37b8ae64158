"""The first admin key's file: readable by its owner only, whatever was at its path before."""

from __future__ import annotations

import os
from pathlib import Path

from inboxd.cli.serve import FIRST_KEY_FILE, _save_first_key


def test_a_leftover_readable_file_is_replaced_by_an_owner_only_one(tmp_path: Path) -> None:
    path = tmp_path / FIRST_KEY_FILE
    path.write_text("ibx_old\n")
    path.chmod(0o644)
    old_umask = os.umask(0)  # even with nothing masked, the file is 0600
    try:
        assert _save_first_key(path, "ibx_new") == path
    finally:
        os.umask(old_umask)
    assert path.read_text() == "ibx_new\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_symlink_at_the_path_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep me\n")
    path = tmp_path / FIRST_KEY_FILE
    path.symlink_to(elsewhere)
    _save_first_key(path, "ibx_new")
    assert not path.is_symlink() and path.read_text() == "ibx_new\n"
    assert elsewhere.read_text() == "keep me\n"
