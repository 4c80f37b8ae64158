"""Generate a realistic, deterministic demo mailbox as a Maildir++ tree.

The mail imitates a personal inbox over the last six months: people (threads, Cc, attachments,
non-UTF-8 charsets), newsletters, CI and code-review notifications, receipts, calendar invites,
sent replies, and about 1% deliberately broken messages.  Every domain is reserved
(``*.example``, ``example.com/.org/.net``, ``demo.inboxd.local``), so nothing can leak to a real
address.  Messages are drawn by :mod:`inboxd.mail.demo_generator` from the content in
:mod:`inboxd.mail.demo_corpus` and assembled as bytes by :mod:`inboxd.mail.demo_drafts`; this
module writes them as a Maildir++ tree with a marker that makes a rerun a no-op.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from inboxd.errors import InvalidState
from inboxd.mail.demo_drafts import BROKEN_KINDS, Draft, header_block
from inboxd.mail.demo_generator import Generator

__all__ = [
    "BROKEN_KINDS",
    "CATEGORIES",
    "FOLDERS",
    "MARKER_NAME",
    "DemoSummary",
    "generate_demo_maildir",
]

MARKER_NAME = ".inboxd-demo.json"
FOLDERS = ("INBOX", "Newsletters", "Receipts", "Archive", "Sent")
CATEGORIES = ("person", "newsletter", "notification", "receipt", "calendar", "sent", "broken")
_FILE_NAME = re.compile(r"^\d+\.M\d{6}P\d+\.demo(:2,[A-Z]*)?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoSummary:
    """What a demo tree holds: messages per folder and per category."""

    root: Path
    total: int
    seed: int
    folders: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    created: bool = True  # False when an existing identical demo tree was kept


def generate_demo_maildir(
    root: Path,
    *,
    count: int = 3000,
    seed: int = 42,
    owner_address: str = "you@demo.inboxd.local",
    owner_name: str = "Alex Demo",
    now: datetime | None = None,
) -> DemoSummary:
    """Write a demo Maildir++ tree under ``root``; a no-op if the same one is already there."""
    root = Path(root)
    existing = _read_marker(root)
    if existing and existing.get("complete") and _same(existing, count, seed):
        return _summary_from_marker(root, existing)
    if existing is None and root.is_dir() and any(root.iterdir()):
        raise InvalidState(f"{root} is not empty and is not a demo mailbox")
    _remove_generated(root)
    _write_marker(root, {"count": count, "seed": seed, "complete": False})
    # Dates are relative to this hour (not this second), so reruns within it are
    # byte-identical, and none lies ahead of the clock (a list would show it as the newest).
    anchor = (now or datetime.now(UTC).replace(minute=0, second=0)).astimezone(UTC)
    generator = Generator(random.Random(seed), anchor.replace(microsecond=0))
    drafts = generator.drafts(count, (owner_name, owner_address))
    _write_tree(root, drafts, seed)
    summary = DemoSummary(
        root=root,
        total=len(drafts),
        seed=seed,
        folders=_counts([d.folder for d in drafts], FOLDERS),
        categories=_counts([d.category for d in drafts], CATEGORIES),
    )
    marker: dict[str, object] = {"count": count, "seed": seed, "complete": True}
    marker |= {"total": summary.total, "folders": summary.folders}
    marker |= {"categories": summary.categories}
    _write_marker(root, marker)
    return summary


def _read_marker(root: Path) -> dict[str, object] | None:
    try:
        data = json.loads((root / MARKER_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same(marker: dict[str, object], count: int, seed: int) -> bool:
    return marker.get("count") == count and marker.get("seed") == seed


def _write_marker(root: Path, data: dict[str, object]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), "utf-8")
    tmp.replace(root / MARKER_NAME)  # atomic: a crash never leaves a half-written marker


def _int_dict(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int)}


def _summary_from_marker(root: Path, marker: dict[str, object]) -> DemoSummary:
    total, seed = marker.get("total"), marker.get("seed")
    return DemoSummary(
        root=root,
        total=total if isinstance(total, int) else 0,
        seed=seed if isinstance(seed, int) else 0,
        folders=_int_dict(marker.get("folders")),
        categories=_int_dict(marker.get("categories")),
        created=False,
    )


def _folder_dir(root: Path, folder: str) -> Path:
    return root if folder == "INBOX" else root / f".{folder}"


def _remove_generated(root: Path) -> None:
    """Delete the files an earlier (different or interrupted) generation wrote, nothing else."""
    for folder in FOLDERS:
        for sub in ("cur", "new", "tmp"):
            directory = _folder_dir(root, folder) / sub
            if directory.is_dir():
                for path in directory.iterdir():
                    if _FILE_NAME.match(path.name):
                        path.unlink()


def _write_tree(root: Path, drafts: list[Draft], seed: int) -> None:
    for folder in FOLDERS:
        base = _folder_dir(root, folder)
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        if folder != "INBOX":
            (base / "maildirfolder").touch()  # Maildir++ marks its subfolders this way
    for index, draft in enumerate(drafts):
        stamp = int(draft.when.timestamp())
        unique = f"{stamp}.M{index:06d}P{seed}.demo"
        base = _folder_dir(root, draft.folder)
        path = base / "new" / unique if draft.new else base / "cur" / f"{unique}:2,{draft.flags}"
        path.write_bytes(_render(draft))
        os.utime(path, (stamp, stamp))  # the delivery time, as an MDA would leave it


def _render(draft: Draft) -> bytes:
    part_headers, body = draft.part
    head = header_block(
        [*draft.headers, ("MIME-Version", "1.0"), *part_headers], draft.header_charset
    )
    return head + b"\n" + body


def _counts(values: list[str], order: tuple[str, ...]) -> dict[str, int]:
    found = Counter(values)
    return {key: found[key] for key in order if found[key]}
