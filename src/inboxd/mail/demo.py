"""Generate a realistic, deterministic demo mailbox as a Maildir++ tree.

The mail imitates a personal inbox over the last six months: people (threads, Cc, attachments,
non-UTF-8 charsets), newsletters, CI and code-review notifications, receipts, calendar invites,
sent replies, and about 1% deliberately broken messages.  Every domain is reserved
(``*.example``, ``example.com/.org/.net``, ``demo.inboxd.local``), so nothing can leak to a real
address.  Messages are assembled as bytes from templates: ``EmailMessage`` would cost ~1 ms a
message and could not produce the broken ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, formataddr
from html import escape
from pathlib import Path

from inboxd.errors import InvalidState

__all__ = ["CATEGORIES", "FOLDERS", "MARKER_NAME", "DemoSummary", "generate_demo_maildir"]

MARKER_NAME = ".inboxd-demo.json"
FOLDERS = ("INBOX", "Newsletters", "Receipts", "Archive", "Sent")
CATEGORIES = ("person", "newsletter", "notification", "receipt", "calendar", "sent", "broken")
BROKEN_KINDS = (
    "bad-base64",
    "missing-boundary",
    "8bit-headers",
    "unknown-charset",
    "no-message-id",
    "garbage-date",
    "truncated",
)
SPAN_DAYS = 182
_WEIGHTS = {
    "person": 34,
    "newsletter": 24,
    "notification": 16,
    "receipt": 9,
    "calendar": 4,
    "sent": 13,
}
_FILE_NAME = re.compile(r"^\d+\.M\d{6}P\d+\.demo(:2,[A-Z]*)?$")

# --------------------------------------------------------------------------- content pools


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "Maria Sam Priya Jonas Aiko Lena Omar Chloé Mateo Ingrid Kwame Yuki Noah Zoë Ravi Elena "
    "Tomás Hannah Felix Amara Lucas Sofia Björn Mei Diego Nora Arjun Clara Tariq Freya"
)
_LAST = _words(
    "Garcia Chen Okafor Müller Tanaka Rossi Novak Silva Johansson Kim Dubois Haddad Costa "
    "Schmidt Nakamura Byrne Patel Larsen Moreau Ortiz"
)
_PERSON_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "acme.example",
    "globex.example",
)
_SUBJECTS = (
    "Lunch on {day}?",
    "Notes from today's {project} meeting",
    "Quick question about the {project} budget",
    "Photos from the weekend",
    "Rescheduling our 1:1",
    "Draft of the {project} proposal",
    "Can you review this before {day}?",
    "Trip to {city}",
    "Book recommendation",
    "Moving the {project} standup",
    "Dinner plans",
    "Feedback on the {project} demo",
    "Hiking in {city} next month?",
    "Invoice question",
)
_SENTENCES = (
    "I went through the numbers again and they look better than last quarter.",
    "Could you take a look when you have a minute?",
    "The team agreed to push the launch by one week.",
    "Let me know if {day} works for you, otherwise we can find another slot.",
    "I attached the latest version, changes are highlighted.",
    "We should probably loop in the design folks before we commit to anything.",
    "Thanks again for your help with the migration last week.",
    "The venue in {city} confirmed our booking for the offsite.",
    "I'm not sure the current plan covers the edge cases we discussed.",
    "No rush on this, but it would be great to settle it before the review.",
    "Here is the summary I promised after our call.",
    "The kids loved the trip, we should do it again in the spring.",
    "I think the second option is cheaper in the long run.",
    "Happy to jump on a call if that is easier.",
    "The {project} dashboard is finally showing real data.",
    "Can we keep the scope small for the first iteration?",
)
_PROJECTS = ("Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_CITIES = ("Lisbon", "Kyoto", "Oslo", "Montreal", "Cape Town", "Valparaíso", "Tallinn")
_NEWSLETTERS = (
    ("The Weekly Byte", "weekly", "news.example.com"),
    ("Garden Notes", "garden", "letters.example.org"),
    ("Market Morning", "markets", "briefing.example.net"),
    ("Recipe Club", "recipes", "cook.example"),
    ("Dev Digest", "devdigest", "digest.example"),
)
_HEADLINES = (
    "Ten things we learned this week",
    "Why small teams ship faster",
    "The quiet comeback of plain text",
    "Five recipes for a rainy evening",
    "What the numbers say about remote work",
    "A beginner's guide to composting",
    "Inside the world's slowest database migration",
    "Seasonal picks for your balcony garden",
)
_REPOS = ("inboxd/inboxd", "acme/api", "acme/web", "globex/infra")
_SHOPS = (("Shop Example", "orders@shop.example"), ("Bookstore", "receipts@books.example.com"))
_ITEMS = ("USB-C cable", "Notebook (A5)", "Coffee beans 1kg", "Desk lamp", "Paperback novel")
_ZONES = (-8, -5, 0, 1, 2, 9)

# Text that exercises legacy charsets; each is encodable in its charset.
_LEGACY = {
    "iso-8859-1": (
        "Réunion à Genève",
        "Bonjour {first}, voilà le résumé de la réunion. À bientôt! Grüße aus Zürich.",
    ),
    "windows-1252": (
        "Numbers “final” — finally",
        "Hi {first} — the “final” numbers are in: €1,200 for the venue… fingers crossed.",
    ),
    "shift_jis": (
        "会議の資料",
        "こんにちは、{first}さん。会議の資料を送ります。よろしくお願いします。",
    ),
}
_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoSummary:
    """What a demo tree holds: messages per folder and per category."""

    root: Path
    total: int
    seed: int
    folders: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    created: bool = True  # False when an existing identical demo tree was kept


_Part = tuple[list[tuple[str, str]], bytes]  # (MIME headers, body) of one entity


@dataclass(slots=True)
class _Draft:
    """One generated message before it is written."""

    category: str
    folder: str
    when: datetime
    headers: list[tuple[str, str]]
    part: _Part
    flags: str = ""
    new: bool = False  # unseen and recent: delivered to new/ without an info suffix
    header_charset: str = "ascii"  # "latin-1" only for the raw 8-bit header sample


@dataclass(slots=True)
class _Thread:
    subject: str
    person: tuple[str, str]
    ids: list[str]
    last_received: _Draft | None = None


# --------------------------------------------------------------------------- public API


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
    # Dates are relative to today (not this second) so reruns on one day are byte-identical.
    anchor = (now or datetime.now(UTC).replace(hour=12, minute=0, second=0)).astimezone(UTC)
    generator = _Generator(random.Random(seed), anchor.replace(microsecond=0))
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


# --------------------------------------------------------------------------- marker & files


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


def _write_tree(root: Path, drafts: list[_Draft], seed: int) -> None:
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


def _head(headers: list[tuple[str, str]], charset: str = "ascii") -> bytes:
    return "".join(f"{name}: {value}\n" for name, value in headers).encode(charset)


def _render(draft: _Draft) -> bytes:
    part_headers, body = draft.part
    head = _head([*draft.headers, ("MIME-Version", "1.0"), *part_headers], draft.header_charset)
    return head + b"\n" + body


def _counts(values: list[str], order: tuple[str, ...]) -> dict[str, int]:
    found = Counter(values)
    return {key: found[key] for key in order if found[key]}


# --------------------------------------------------------------------------- MIME helpers


def _encoded_words(text: str, charset: str = "utf-8") -> str:
    """RFC 2047 B-encoding in words short enough for one header line each."""
    if text.isascii():
        return text
    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len((chunk + char).encode(charset, "replace")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    encoded = (base64.b64encode(w.encode(charset, "replace")).decode("ascii") for w in words)
    return "\n ".join(f"=?{charset}?b?{e}?=" for e in encoded)


def _text_part(text: str, charset: str = "utf-8", subtype: str = "plain") -> _Part:
    """A text part: 7bit when ASCII, else quoted-printable (base64 for Shift_JIS)."""
    ctype = ("Content-Type", f"text/{subtype}; charset={charset}")
    if text.isascii():
        return [ctype], text.encode("ascii")
    data = text.encode(charset, "replace")  # e.g. a "Zoë" signature in Shift_JIS mail
    if charset == "shift_jis":
        return [ctype, ("Content-Transfer-Encoding", "base64")], base64.encodebytes(data)
    if charset == "windows-1252":  # sent as raw 8bit, as many Windows clients do
        return [ctype, ("Content-Transfer-Encoding", "8bit")], data
    return [ctype, ("Content-Transfer-Encoding", "quoted-printable")], binascii.b2a_qp(data)


def _attachment(ctype: str, filename: str, data: bytes) -> _Part:
    headers = [
        ("Content-Type", f'{ctype}; name="{filename}"'),
        ("Content-Disposition", f'attachment; filename="{filename}"'),
        ("Content-Transfer-Encoding", "base64"),
    ]
    return headers, base64.encodebytes(data)


def _multipart(subtype: str, boundary: str, parts: list[_Part], *, close: bool = True) -> _Part:
    chunks: list[bytes] = []
    for headers, body in parts:
        chunks += [f"--{boundary}\n".encode(), _head(headers), b"\n", body]
        if not body.endswith(b"\n"):
            chunks.append(b"\n")
    if close:
        chunks.append(f"--{boundary}--\n".encode())
    return [("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')], b"".join(chunks)


def _sorted_flags(flags: str) -> str:
    return "".join(sorted(set(flags)))  # Maildir wants info flags in ASCII order


# --------------------------------------------------------------------------- generator


class _Generator:
    """Draws every message from one seeded RNG, in date order, so output is reproducible."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.owner = ("", "")
        self.first_name = ""
        self.people = [self._person_identity(i) for i in range(48)]
        self.threads: list[_Thread] = []
        self.seq = 0

    def drafts(self, count: int, owner: tuple[str, str]) -> list[_Draft]:
        """``count`` messages spread over the last six months, oldest first."""
        self.owner = owner
        self.first_name = (owner[0].split() or ["there"])[0]
        whens = sorted(self._when() for _ in range(count))
        broken = _broken_slots(count)
        makers: dict[str, Callable[[datetime], _Draft]] = {
            "person": self._person,
            "newsletter": self._newsletter,
            "notification": self._notification,
            "receipt": self._receipt,
            "calendar": self._calendar,
            "sent": self._sent,
        }
        names, weights = list(_WEIGHTS), list(_WEIGHTS.values())
        out: list[_Draft] = []
        for index, when in enumerate(whens):
            kind = broken.get(index)
            if kind is not None:
                out.append(self._broken(when, kind))
            else:
                out.append(makers[self.rng.choices(names, weights)[0]](when))
        return out

    # ---------------------------------------------------------------- shared pieces

    def _person_identity(self, index: int) -> tuple[str, str]:
        first, last = _FIRST[index % len(_FIRST)], self.rng.choice(_LAST)
        # "Zoë Müller" -> zoe.muller: decompose accents, then drop the combining marks.
        folded = unicodedata.normalize("NFKD", f"{first}.{last}".lower())
        local = folded.encode("ascii", "ignore").decode()
        return f"{first} {last}", f"{local}@{_PERSON_DOMAINS[index % len(_PERSON_DOMAINS)]}"

    def _when(self) -> datetime:
        # Skewed towards recent days, like a real inbox.
        age = timedelta(days=SPAN_DAYS * self.rng.random() ** 1.4)
        return self.now - age

    def _msgid(self, domain: str) -> str:
        self.seq += 1
        return f"<{self.seq:06d}.{self.rng.getrandbits(40):010x}@{domain}>"

    def _fill(self, template: str) -> str:
        return template.format(
            day=self.rng.choice(_DAYS),
            project=self.rng.choice(_PROJECTS),
            city=self.rng.choice(_CITIES),
            first=self.first_name,
        )

    def _headers(
        self,
        sender: tuple[str, str],
        to: list[tuple[str, str]],
        subject: str,
        when: datetime,
        *,
        category: str,
        subject_charset: str = "utf-8",
    ) -> list[tuple[str, str]]:
        zone = timezone(timedelta(hours=self.rng.choice(_ZONES)))
        return [
            ("Return-Path", f"<{sender[1]}>"),
            ("From", formataddr(sender)),
            ("To", ", ".join(formataddr(p) for p in to)),
            ("Subject", _encoded_words(subject, subject_charset)),
            ("Date", format_datetime(when.astimezone(zone))),
            ("Message-ID", self._msgid(sender[1].partition("@")[2])),
            ("X-Inboxd-Demo", category),
        ]

    def _received_flags(self, draft: _Draft, *, flag_rate: float = 0.05) -> _Draft:
        age = self.now - draft.when
        seen = self.rng.random() < (0.96 if age > timedelta(days=14) else 0.55)
        flags = ("S" if seen else "") + ("F" if self.rng.random() < flag_rate else "")
        draft.flags = flags
        draft.new = not flags and age < timedelta(days=3)
        return draft

    def _archive_if_old(self, draft: _Draft, days: int, rate: float) -> _Draft:
        if self.now - draft.when > timedelta(days=days) and self.rng.random() < rate:
            draft.folder = "Archive"
        return draft

    def _sentences(self, low: int, high: int) -> str:
        picked = self.rng.sample(_SENTENCES, self.rng.randint(low, high))
        return " ".join(self._fill(s) for s in picked)

    # ---------------------------------------------------------------- people

    def _pick_thread(self) -> _Thread | None:
        if self.threads and self.rng.random() < 0.35:
            return self.rng.choice(self.threads[-30:])
        return None

    def _person(self, when: datetime) -> _Draft:
        thread = self._pick_thread()
        person = thread.person if thread else self.rng.choice(self.people)
        # Legacy-charset mail starts its own thread: its canned subject cannot be a reply.
        legacy = thread is None and self.rng.random() < 0.06
        charset = self.rng.choice(list(_LEGACY)) if legacy else "utf-8"
        subject, text = self._person_text(person, thread, charset)
        to = [self.owner] + ([self.rng.choice(self.people)] if self.rng.random() < 0.2 else [])
        headers = self._headers(
            person, to, subject, when, category="person", subject_charset=charset
        )
        if self.rng.random() < 0.2:
            headers.insert(3, ("Cc", formataddr(self.rng.choice(self.people))))
        headers += self._thread_headers(thread)
        part = self._maybe_attach(_text_part(text, charset))
        draft = self._received_flags(_Draft("person", "INBOX", when, headers, part))
        self._remember(thread, subject, person, headers, draft)
        return self._archive_if_old(draft, 60, 0.4)

    def _person_text(
        self, person: tuple[str, str], thread: _Thread | None, charset: str
    ) -> tuple[str, str]:
        sender_first = person[0].split()[0]
        if charset != "utf-8":
            subject, body = _LEGACY[charset]
            return subject, body.format(first=self.first_name) + f"\n\n{sender_first}\n"
        subject = f"Re: {thread.subject}" if thread else self._fill(self.rng.choice(_SUBJECTS))
        greeting = f"Hi {self.first_name}," if self.rng.random() < 0.6 else "Hi,"
        body = f"{greeting}\n\n{self._sentences(2, 4)}\n"
        if self.rng.random() < 0.25:
            body += (
                f"\nThe doc is here: https://docs.example.com/d/{self.rng.getrandbits(32):08x}\n"
            )
        if thread:
            body += f"\nOn an earlier date, {person[0]} wrote:\n> {self._sentences(1, 1)}\n"
        return subject, body + f"\nBest,\n{sender_first}\n"

    def _thread_headers(self, thread: _Thread | None) -> list[tuple[str, str]]:
        if thread is None:
            return []
        return [("In-Reply-To", thread.ids[-1]), ("References", " ".join(thread.ids[-10:]))]

    def _remember(
        self,
        thread: _Thread | None,
        subject: str,
        person: tuple[str, str],
        headers: list[tuple[str, str]],
        draft: _Draft,
    ) -> None:
        msgid = dict(headers)["Message-ID"]
        if thread is None:
            self.threads.append(_Thread(subject, person, [msgid], draft))
        else:
            thread.ids.append(msgid)
            thread.last_received = draft

    def _maybe_attach(self, body: _Part) -> _Part:
        roll = self.rng.random()
        if roll >= 0.09:
            return body
        if roll < 0.03:
            extra = _attachment("application/pdf", "report.pdf", _PDF)
        elif roll < 0.06:
            extra = _attachment("image/png", "photo.png", _PNG)
        else:
            extra = _attachment("text/csv", "numbers.csv", b"month,amount\njan,120\nfeb,95\n")
        return _multipart("mixed", f"mix-{self.rng.getrandbits(48):012x}", [body, extra])

    def _sent(self, when: datetime) -> _Draft:
        thread = self.threads[-1] if self.threads and self.rng.random() < 0.6 else None
        person = thread.person if thread else self.rng.choice(self.people)
        subject = f"Re: {thread.subject}" if thread else self._fill(self.rng.choice(_SUBJECTS))
        text = f"Hi {person[0].split()[0]},\n\n{self._sentences(1, 3)}\n\nCheers,\n"
        text += f"{self.first_name}\n"
        headers = self._headers(self.owner, [person], subject, when, category="sent")
        headers += self._thread_headers(thread)
        draft = _Draft("sent", "Sent", when, headers, _text_part(text), flags="S")
        if thread and thread.last_received is not None:
            received = thread.last_received
            received.flags = _sorted_flags(received.flags + "RS")
            received.new = False
        return draft

    # ---------------------------------------------------------------- bulk and automated

    def _newsletter(self, when: datetime) -> _Draft:
        name, slug, domain = self.rng.choice(_NEWSLETTERS)
        token = f"{self.rng.getrandbits(48):012x}"
        issue = when.strftime("%Y-%m-%d")
        links = [
            f"https://{domain}/{slug}/{issue}/{n}?utm_source=email&utm_medium={slug}&u={token}"
            for n in range(self.rng.randint(12, 40))
        ]
        headlines = self.rng.sample(_HEADLINES, 4)
        html = _newsletter_html(name, headlines, links, domain, token)
        html_part = _text_part(html, subtype="html")
        if self.rng.random() < 0.7:  # most senders include a plain-text alternative
            text = f"{name} - {issue}\n\n" + "\n".join(
                f"* {h}\n  {links[i]}" for i, h in enumerate(headlines)
            )
            part = _multipart("alternative", f"alt-{token}", [_text_part(text), html_part])
        else:
            part = html_part
        subject = f"{name}: {headlines[0]}"
        headers = self._headers(
            (name, f"hello@{domain}"), [self.owner], subject, when, category="newsletter"
        )
        headers += [
            ("List-Id", f"{name} <{slug}.{domain}>"),
            (
                "List-Unsubscribe",
                f"<https://{domain}/unsubscribe?u={token}>, "
                f"<mailto:unsubscribe@{domain}?subject=unsubscribe>",
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Precedence", "bulk"),
        ]
        folder = "Newsletters" if self.rng.random() < 0.7 else "INBOX"
        draft = _Draft("newsletter", folder, when, headers, part)
        return self._received_flags(draft, flag_rate=0.01)

    def _notification(self, when: datetime) -> _Draft:
        repo = self.rng.choice(_REPOS)
        number = self.rng.randint(10, 999)
        if self.rng.random() < 0.5:
            sha = f"{self.rng.getrandbits(28):07x}"
            status = self.rng.choice(("failed", "passed", "passed", "fixed"))
            subject = f"[{repo}] Build {status}: main ({sha})"
            sender = ("CI", "builds@ci.example.net")
            text = f"Build #{number} of {repo}@{sha} {status}.\n\n"
            text += f"Logs: https://ci.example.net/{repo}/builds/{number}\n"
        else:
            person = self.rng.choice(self.people)
            subject = f"Re: [{repo}] {self._fill('Fix flaky {project} test')} (PR #{number})"
            sender = (f"{person[0]} (Code)", "notifications@code.example")
            text = f"{person[0]} commented on this pull request.\n\n> {self._sentences(1, 2)}\n"
            text += f"\n-- \nView it: https://code.example/{repo}/pull/{number}\n"
        headers = self._headers(sender, [self.owner], subject, when, category="notification")
        headers += [
            ("Auto-Submitted", "auto-generated"),
            ("List-Id", f"{repo} <{repo.replace('/', '.')}.code.example>"),
        ]
        draft = self._received_flags(
            _Draft("notification", "INBOX", when, headers, _text_part(text)), flag_rate=0.02
        )
        return self._archive_if_old(draft, 30, 0.5)

    def _receipt(self, when: datetime) -> _Draft:
        shop, address = self.rng.choice(_SHOPS)
        order = f"{self.rng.randint(100, 999)}-{self.rng.randint(1000000, 9999999)}"
        items = [
            (item, self.rng.randint(299, 8999))
            for item in self.rng.sample(_ITEMS, self.rng.randint(1, 3))
        ]
        total = sum(cents for _, cents in items)
        lines = [f"{item}: ${cents / 100:.2f}" for item, cents in items]
        text = (
            f"Thanks for your order #{order}.\n\n"
            + "\n".join(lines)
            + f"\n\nTotal: ${total / 100:.2f}\n"
        )
        rows = "".join(
            f"<tr><td>{item}</td><td>${cents / 100:.2f}</td></tr>" for item, cents in items
        )
        url = f"https://{address.partition('@')[2]}/orders/{order}"
        html = (
            f"<html><body><h1>Receipt</h1><table>{rows}</table>"
            f"<p><b>Total: ${total / 100:.2f}</b></p>"
            f'<p><a href="{url}">View order</a></p></body></html>'
        )
        part = _multipart(
            "alternative", f"rcpt-{order}", [_text_part(text), _text_part(html, subtype="html")]
        )
        subject = f"Your {shop} order #{order}: ${total / 100:.2f}"
        headers = self._headers((shop, address), [self.owner], subject, when, category="receipt")
        folder = "Receipts" if self.rng.random() < 0.8 else "INBOX"
        return self._received_flags(_Draft("receipt", folder, when, headers, part))

    def _calendar(self, when: datetime) -> _Draft:
        organizer = self.rng.choice(self.people)
        summary = self._fill("{project} planning")
        start = (when + timedelta(days=self.rng.randint(1, 14))).replace(
            hour=15, minute=0, second=0
        )
        uid = f"{self.rng.getrandbits(64):016x}@demo.inboxd.local"
        ics = _ics(uid, summary, start, organizer, self.owner)
        invite = (
            [("Content-Type", "text/calendar; charset=utf-8; method=REQUEST")],
            ics.encode("utf-8"),
        )
        text = _text_part(
            f"{organizer[0]} invited you to {summary} on {start:%A %d %B, %H:%M} UTC.\n"
        )
        body = _multipart("alternative", f"cal-{uid[:8]}", [text, invite])
        part = _multipart(
            "mixed",
            f"inv-{uid[:8]}",
            [body, _attachment("application/ics", "invite.ics", ics.encode())],
        )
        subject = f"Invitation: {summary} @ {start:%a %b %d, %Y %H:%M} (UTC)"
        headers = self._headers(organizer, [self.owner], subject, when, category="calendar")
        return self._received_flags(_Draft("calendar", "INBOX", when, headers, part))

    # ---------------------------------------------------------------- broken mail

    def _broken(self, when: datetime, kind: str) -> _Draft:
        person = self.rng.choice(self.people)
        headers = self._headers(
            person, [self.owner], f"Broken sample: {kind}", when, category=f"broken/{kind}"
        )
        draft = _Draft("broken", "INBOX", when, headers, _text_part("placeholder\n"), flags="S")
        _BREAKERS[kind](draft)
        return draft


def _newsletter_html(
    name: str, headlines: list[str], links: list[str], domain: str, token: str
) -> str:
    stories = "".join(
        f'<tr><td style="padding:12px"><h2><a href="{escape(links[i])}">{h}</a></h2>'
        f"<p>{h}. Read the full story on our site.</p></td></tr>"
        for i, h in enumerate(headlines)
    )
    more = "".join(
        f'<a href="{escape(url)}">more {n}</a> ' for n, url in enumerate(links[len(headlines) :])
    )
    return (
        f"<!DOCTYPE html><html><head><title>{name}</title>"
        "<style>td{font-family:sans-serif}</style></head><body>"
        f'<div style="display:none">This week in {name} &zwnj;&nbsp;&zwnj;&nbsp;&zwnj;&nbsp;</div>'
        f"<table>{stories}</table><p>{more}</p>"
        f'<p><a href="https://{domain}/unsubscribe?u={token}">Unsubscribe</a></p></body></html>\n'
    )


def _ics(
    uid: str, summary: str, start: datetime, organizer: tuple[str, str], attendee: tuple[str, str]
) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    end = start + timedelta(hours=1)
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//inboxd//demo//EN",
        "VERSION:2.0",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{start:{stamp}}",
        f"DTSTART:{start:{stamp}}",
        f"DTEND:{end:{stamp}}",
        f"SUMMARY:{summary}",
        f"ORGANIZER;CN={organizer[0]}:mailto:{organizer[1]}",
        f"ATTENDEE;CN={attendee[0]};RSVP=TRUE:mailto:{attendee[1]}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"


def _broken_slots(count: int) -> dict[int, str]:
    """About 1% of positions, evenly spaced, cycling through every kind of breakage."""
    wanted = max(1, round(count / 100)) if count > 0 else 0
    return {
        int((k + 0.5) * count / wanted): BROKEN_KINDS[k % len(BROKEN_KINDS)] for k in range(wanted)
    }


def _break_base64(draft: _Draft) -> None:
    draft.part = (
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "base64")],
        b"VGhpcyBib2R5IHdhcyBiYWRseSBlbmNvZGVk!!*X\n",  # 37 data characters: not base64
    )


def _break_boundary(draft: _Draft) -> None:
    body = (
        b"--lost-boundary\nContent-Type: text/plain\n\n"
        b"The boundary parameter went missing.\n--lost-boundary--\n"
    )
    draft.part = ([("Content-Type", "multipart/mixed")], body)


def _break_8bit_headers(draft: _Draft) -> None:
    for index, (name, _value) in enumerate(draft.headers):
        if name == "Subject":
            draft.headers[index] = (
                "Subject",
                "Caf\u00e9 menu f\u00fcr Montag (raw Latin-1 header)",
            )
    draft.header_charset = "latin-1"


def _break_charset(draft: _Draft) -> None:
    text = "Prix: 12 \u20ac pour le caf\u00e9, d\u00e9j\u00e0 pay\u00e9.\n"
    draft.part = (
        [
            ("Content-Type", 'text/plain; charset="x-demo-unknown"'),
            ("Content-Transfer-Encoding", "8bit"),
        ],
        text.encode("cp1252"),
    )


def _break_message_id(draft: _Draft) -> None:
    draft.headers = [(n, v) for n, v in draft.headers if n != "Message-ID"]


def _break_date(draft: _Draft) -> None:
    draft.headers = [
        (n, "sometime last Tuesday, probably" if n == "Date" else v) for n, v in draft.headers
    ]


def _break_truncated(draft: _Draft) -> None:
    whole = _multipart(
        "mixed",
        "cut-here",
        [
            _text_part("See the attached file.\n"),
            _attachment("application/pdf", "cut.pdf", _PDF * 20),
        ],
        close=False,
    )
    headers, body = whole
    draft.part = (headers, body[: len(body) - 200])


_BREAKERS: dict[str, Callable[[_Draft], None]] = {
    "bad-base64": _break_base64,
    "missing-boundary": _break_boundary,
    "8bit-headers": _break_8bit_headers,
    "unknown-charset": _break_charset,
    "no-message-id": _break_message_id,
    "garbage-date": _break_date,
    "truncated": _break_truncated,
}
