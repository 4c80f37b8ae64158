"""The demo mailbox: size, determinism, idempotence, realism, and that it all parses."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inboxd.errors import InvalidState
from inboxd.mail.demo import (
    BROKEN_KINDS,
    CATEGORIES,
    FOLDERS,
    MARKER_NAME,
    DemoSummary,
    generate_demo_maildir,
)
from inboxd.mail.message import ParsedMessage
from inboxd.mail.reading import parse_message
from inboxd.providers.maildir import iter_maildir, read_entry, scan_maildir

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
COUNT = 700  # enough for one message of each broken kind (1% of 700 = 7)
_DOMAIN = re.compile(rb"(?:@|://)([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_RESERVED = ("example.com", "example.org", "example.net", "example", "demo.inboxd.local")


Mailbox = list[tuple[str, bytes, ParsedMessage, list[str], str]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, Mailbox]:
    root = tmp_path_factory.mktemp("demo") / "Maildir"
    summary = generate_demo_maildir(root, count=COUNT, seed=7, now=NOW)
    mailbox: Mailbox = []
    for folder in scan_maildir(root):
        for entry in iter_maildir(folder.path):
            raw = read_entry(entry)
            mailbox.append((folder.name, raw, parse_message(raw), entry.flags, entry.key))
    return summary, mailbox


def _category(raw: bytes) -> str:
    match = re.search(rb"^X-Inboxd-Demo: (\S+)$", raw, re.MULTILINE)
    assert match is not None
    return match.group(1).decode()


def test_counts_match_the_tree(demo: tuple[DemoSummary, Mailbox]) -> None:
    summary, mailbox = demo
    assert summary.total == COUNT == len(mailbox)
    assert summary.created
    assert sum(summary.folders.values()) == COUNT
    assert sum(summary.categories.values()) == COUNT
    assert summary.folders == dict(Counter(name for name, *_ in mailbox))
    assert set(summary.folders) == set(FOLDERS)
    assert set(summary.categories) == set(CATEGORIES)
    found = Counter(_category(raw).split("/")[0] for _, raw, *_ in mailbox)
    assert dict(found) == summary.categories
    assert summary.categories["broken"] == 7


def test_every_message_parses_and_only_broken_ones_have_errors(
    demo: tuple[DemoSummary, Mailbox],
) -> None:
    _, mailbox = demo
    broken_kinds = set()
    for _folder, raw, parsed, _flags, _key in mailbox:
        category = _category(raw)
        if category.startswith("broken/"):
            broken_kinds.add(category.removeprefix("broken/"))
            assert parsed.parse_errors, category
        else:
            assert parsed.parse_errors == [], (category, parsed.parse_errors)
            assert parsed.message_id and parsed.from_addr and parsed.date and parsed.snippet
    assert broken_kinds == set(BROKEN_KINDS)


def test_broken_messages_carry_the_expected_notes(demo: tuple[DemoSummary, Mailbox]) -> None:
    _, mailbox = demo
    notes = {_category(raw): " | ".join(p.parse_errors) for _, raw, p, *_ in mailbox}
    assert "broken base64" in notes["broken/bad-base64"]
    assert "without boundary" in notes["broken/missing-boundary"]
    assert "8-bit header Subject" in notes["broken/8bit-headers"]
    assert "undecodable charset 'x-demo-unknown'" in notes["broken/unknown-charset"]
    assert "missing Message-ID" in notes["broken/no-message-id"]
    assert "malformed header Date" in notes["broken/garbage-date"]
    assert "message truncated" in notes["broken/truncated"]


def test_realistic_content(demo: tuple[DemoSummary, Mailbox]) -> None:
    _, mailbox = demo
    by_category: dict[str, list[ParsedMessage]] = {}
    for _, raw, parsed, *_ in mailbox:
        by_category.setdefault(_category(raw).split("/")[0], []).append(parsed)
    newsletters = by_category["newsletter"]
    assert all(n.list_id and n.list_unsubscribe and n.precedence == "bulk" for n in newsletters)
    assert all(n.list_unsubscribe_post == "List-Unsubscribe=One-Click" for n in newsletters)
    assert all(n.html_body and len(n.links) >= 12 for n in newsletters)
    assert any(n.content_type == "text/html" for n in newsletters)  # some are HTML only
    assert all(n.auto_submitted == "auto-generated" for n in by_category["notification"])
    assert all(re.search(r"\$\d+\.\d\d", r.snippet) for r in by_category["receipt"])
    people = by_category["person"]
    assert any("Alex" in (p.text_body or "") for p in people)
    assert any(p.in_reply_to for p in people)
    assert any(p.has_attachments for p in people)
    assert any(p.cc for p in people)
    assert all(p.from_addr == "you@demo.inboxd.local" for p in by_category["sent"])
    assert all(p.has_attachments for p in by_category["calendar"])
    raws = b"".join(raw for _, raw, *_ in mailbox)
    for needle in (b"charset=iso-8859-1", b"charset=windows-1252", b"charset=shift_jis"):
        assert needle in raws
    assert b"text/calendar" in raws and b"BEGIN:VEVENT" in raws


def test_threads_point_at_existing_messages(demo: tuple[DemoSummary, Mailbox]) -> None:
    _, mailbox = demo
    ids = {p.message_id for _, _, p, *_ in mailbox}
    replies = [p for _, _, p, *_ in mailbox if p.in_reply_to]
    assert replies
    assert all(p.in_reply_to in ids for p in replies)
    assert all(p.subject and p.subject.startswith("Re: ") for p in replies)


def test_dates_and_flags(demo: tuple[DemoSummary, Mailbox]) -> None:
    _, mailbox = demo
    dates = [p.date for _, _, p, *_ in mailbox if p.date is not None]
    assert min(dates) >= NOW - timedelta(days=183)
    assert max(dates) <= NOW
    old = [flags for _, _, p, flags, _ in mailbox if p.date and p.date < NOW - timedelta(days=30)]
    assert sum("\\Seen" in f for f in old) / len(old) > 0.9
    assert any("\\Flagged" in flags for *_, flags, _ in mailbox)
    assert any("\\Answered" in flags for *_, flags, _ in mailbox)
    assert any(flags == [] for *_, flags, _ in mailbox)  # some recent mail is unread
    assert all("\\Seen" in flags for name, *_, flags, _ in mailbox if name == "Sent")


def test_only_reserved_domains(demo: tuple[DemoSummary, Mailbox]) -> None:
    _, mailbox = demo
    domains = {m.decode().lower() for _, raw, *_ in mailbox for m in _DOMAIN.findall(raw)}
    assert domains
    bad = {d for d in domains if not any(d == r or d.endswith("." + r) for r in _RESERVED)}
    assert bad == set()


def test_deterministic(tmp_path: Path, demo: tuple[DemoSummary, Mailbox]) -> None:
    _, mailbox = demo
    again = tmp_path / "again"
    generate_demo_maildir(again, count=COUNT, seed=7, now=NOW)
    second = {
        entry.key: read_entry(entry) for f in scan_maildir(again) for entry in iter_maildir(f.path)
    }
    assert second == {key: raw for _, raw, _, _, key in mailbox}
    other = tmp_path / "other"
    generate_demo_maildir(other, count=COUNT, seed=8, now=NOW)
    third = {e.key: read_entry(e) for f in scan_maildir(other) for e in iter_maildir(f.path)}
    assert third != second


def test_idempotent_and_regenerates_on_change(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    first = generate_demo_maildir(root, count=120, seed=1, now=NOW)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER_NAME)
    stamps = [p.stat().st_mtime_ns for p in files]
    again = generate_demo_maildir(root, count=120, seed=1, now=NOW + timedelta(days=3))
    assert not again.created
    assert (again.total, again.folders, again.categories) == (
        first.total,
        first.folders,
        first.categories,
    )
    assert [p.stat().st_mtime_ns for p in files] == stamps
    bigger = generate_demo_maildir(root, count=150, seed=1, now=NOW)
    assert bigger.created and bigger.total == 150
    assert sum(1 for f in scan_maildir(root) for _ in iter_maildir(f.path)) == 150


def test_refuses_a_real_maildir(tmp_path: Path) -> None:
    (tmp_path / "cur").mkdir()
    (tmp_path / "cur" / "precious:2,S").write_bytes(b"Subject: keep me\n\n")
    with pytest.raises(InvalidState):
        generate_demo_maildir(tmp_path, count=10)
    assert (tmp_path / "cur" / "precious:2,S").exists()


def test_full_size_generation_and_parse_speed(tmp_path: Path) -> None:
    started = time.perf_counter()
    summary = generate_demo_maildir(tmp_path / "big", count=3000, now=NOW)
    generated = time.perf_counter() - started
    assert summary.total == 3000
    assert generated < 10.0, generated  # ~1 s on a laptop; generous for loaded CI
    raws = [read_entry(e) for f in scan_maildir(tmp_path / "big") for e in iter_maildir(f.path)]
    started = time.perf_counter()
    parsed = [parse_message(raw) for raw in raws]
    rate = len(raws) / (time.perf_counter() - started)
    assert rate > 500, rate  # ~6000/s measured; this only catches pathological slowdowns
    assert sum(1 for p in parsed if p.parse_errors) == summary.categories["broken"]
