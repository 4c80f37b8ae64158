"""The demo mailbox's messages, drawn from one seeded RNG: people (threads, Cc,
attachments, non-UTF-8 charsets), newsletters, CI and code-review notifications, receipts,
calendar invites, sent replies, and about 1% deliberately broken messages."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, formataddr

from inboxd.mail.demo_corpus import (
    CITIES,
    DAYS,
    FIRST_NAMES,
    HEADLINES,
    ITEMS,
    LAST_NAMES,
    LEGACY,
    NEWSLETTERS,
    PDF,
    PERSON_DOMAINS,
    PNG,
    PROJECTS,
    REPOS,
    SENTENCES,
    SHOPS,
    SUBJECTS,
    ZONES,
    invite_ics,
    newsletter_html,
)
from inboxd.mail.demo_drafts import (
    BREAKERS,
    BROKEN_KINDS,
    Draft,
    Part,
    attachment,
    encoded_words,
    multipart,
    sorted_flags,
    text_part,
)

__all__ = ["SPAN_DAYS", "Generator"]

SPAN_DAYS = 182
_WEIGHTS = {
    "person": 34,
    "newsletter": 24,
    "notification": 16,
    "receipt": 9,
    "calendar": 4,
    "sent": 13,
}


@dataclass(slots=True)
class _Thread:
    subject: str
    person: tuple[str, str]
    ids: list[str]
    last_received: Draft | None = None


class Generator:
    """Draws every message from one seeded RNG, in date order, so output is reproducible."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.owner = ("", "")
        self.first_name = ""
        self.people = [self._person_identity(i) for i in range(48)]
        self.threads: list[_Thread] = []
        self.seq = 0

    def drafts(self, count: int, owner: tuple[str, str]) -> list[Draft]:
        """``count`` messages spread over the last six months, oldest first."""
        self.owner = owner
        self.first_name = (owner[0].split() or ["there"])[0]
        whens = sorted(self._when() for _ in range(count))
        broken = _broken_slots(count)
        makers: dict[str, Callable[[datetime], Draft]] = {
            "person": self._person,
            "newsletter": self._newsletter,
            "notification": self._notification,
            "receipt": self._receipt,
            "calendar": self._calendar,
            "sent": self._sent,
        }
        names, weights = list(_WEIGHTS), list(_WEIGHTS.values())
        out: list[Draft] = []
        for index, when in enumerate(whens):
            kind = broken.get(index)
            if kind is not None:
                out.append(self._broken(when, kind))
            else:
                out.append(makers[self.rng.choices(names, weights)[0]](when))
        return out

    # ---------------------------------------------------------------- shared pieces

    def _person_identity(self, index: int) -> tuple[str, str]:
        first, last = FIRST_NAMES[index % len(FIRST_NAMES)], self.rng.choice(LAST_NAMES)
        # "Zoë Müller" -> zoe.muller: decompose accents, then drop the combining marks.
        folded = unicodedata.normalize("NFKD", f"{first}.{last}".lower())
        local = folded.encode("ascii", "ignore").decode()
        return f"{first} {last}", f"{local}@{PERSON_DOMAINS[index % len(PERSON_DOMAINS)]}"

    def _when(self) -> datetime:
        # Skewed towards recent days, like a real inbox.
        age = timedelta(days=SPAN_DAYS * self.rng.random() ** 1.4)
        return self.now - age

    def _msgid(self, domain: str) -> str:
        self.seq += 1
        return f"<{self.seq:06d}.{self.rng.getrandbits(40):010x}@{domain}>"

    def _fill(self, template: str) -> str:
        return template.format(
            day=self.rng.choice(DAYS),
            project=self.rng.choice(PROJECTS),
            city=self.rng.choice(CITIES),
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
        zone = timezone(timedelta(hours=self.rng.choice(ZONES)))
        return [
            ("Return-Path", f"<{sender[1]}>"),
            ("From", formataddr(sender)),
            ("To", ", ".join(formataddr(p) for p in to)),
            ("Subject", encoded_words(subject, subject_charset)),
            ("Date", format_datetime(when.astimezone(zone))),
            ("Message-ID", self._msgid(sender[1].partition("@")[2])),
            ("X-Inboxd-Demo", category),
        ]

    def _received_flags(self, draft: Draft, *, flag_rate: float = 0.05) -> Draft:
        age = self.now - draft.when
        seen = self.rng.random() < (0.96 if age > timedelta(days=14) else 0.55)
        flags = ("S" if seen else "") + ("F" if self.rng.random() < flag_rate else "")
        draft.flags = flags
        draft.new = not flags and age < timedelta(days=3)
        return draft

    def _archive_if_old(self, draft: Draft, days: int, rate: float) -> Draft:
        if self.now - draft.when > timedelta(days=days) and self.rng.random() < rate:
            draft.folder = "Archive"
        return draft

    def _sentences(self, low: int, high: int) -> str:
        picked = self.rng.sample(SENTENCES, self.rng.randint(low, high))
        return " ".join(self._fill(s) for s in picked)

    # ---------------------------------------------------------------- people

    def _pick_thread(self) -> _Thread | None:
        if self.threads and self.rng.random() < 0.35:
            return self.rng.choice(self.threads[-30:])
        return None

    def _person(self, when: datetime) -> Draft:
        thread = self._pick_thread()
        person = thread.person if thread else self.rng.choice(self.people)
        # Legacy-charset mail starts its own thread: its canned subject cannot be a reply.
        legacy = thread is None and self.rng.random() < 0.06
        charset = self.rng.choice(list(LEGACY)) if legacy else "utf-8"
        subject, text = self._person_text(person, thread, charset)
        to = [self.owner] + ([self.rng.choice(self.people)] if self.rng.random() < 0.2 else [])
        headers = self._headers(
            person, to, subject, when, category="person", subject_charset=charset
        )
        if self.rng.random() < 0.2:
            headers.insert(3, ("Cc", formataddr(self.rng.choice(self.people))))
        headers += self._thread_headers(thread)
        part = self._maybe_attach(text_part(text, charset))
        draft = self._received_flags(Draft("person", "INBOX", when, headers, part))
        self._remember(thread, subject, person, headers, draft)
        return self._archive_if_old(draft, 60, 0.4)

    def _person_text(
        self, person: tuple[str, str], thread: _Thread | None, charset: str
    ) -> tuple[str, str]:
        sender_first = person[0].split()[0]
        if charset != "utf-8":
            subject, body = LEGACY[charset]
            return subject, body.format(first=self.first_name) + f"\n\n{sender_first}\n"
        subject = f"Re: {thread.subject}" if thread else self._fill(self.rng.choice(SUBJECTS))
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
        draft: Draft,
    ) -> None:
        msgid = dict(headers)["Message-ID"]
        if thread is None:
            self.threads.append(_Thread(subject, person, [msgid], draft))
        else:
            thread.ids.append(msgid)
            thread.last_received = draft

    def _maybe_attach(self, body: Part) -> Part:
        roll = self.rng.random()
        if roll >= 0.09:
            return body
        if roll < 0.03:
            extra = attachment("application/pdf", "report.pdf", PDF)
        elif roll < 0.06:
            extra = attachment("image/png", "photo.png", PNG)
        else:
            extra = attachment("text/csv", "numbers.csv", b"month,amount\njan,120\nfeb,95\n")
        return multipart("mixed", f"mix-{self.rng.getrandbits(48):012x}", [body, extra])

    def _sent(self, when: datetime) -> Draft:
        thread = self.threads[-1] if self.threads and self.rng.random() < 0.6 else None
        person = thread.person if thread else self.rng.choice(self.people)
        subject = f"Re: {thread.subject}" if thread else self._fill(self.rng.choice(SUBJECTS))
        text = f"Hi {person[0].split()[0]},\n\n{self._sentences(1, 3)}\n\nCheers,\n"
        text += f"{self.first_name}\n"
        headers = self._headers(self.owner, [person], subject, when, category="sent")
        headers += self._thread_headers(thread)
        draft = Draft("sent", "Sent", when, headers, text_part(text), flags="S")
        if thread and thread.last_received is not None:
            received = thread.last_received
            received.flags = sorted_flags(received.flags + "RS")
            received.new = False
        return draft

    # ---------------------------------------------------------------- bulk and automated

    def _newsletter(self, when: datetime) -> Draft:
        name, slug, domain = self.rng.choice(NEWSLETTERS)
        token = f"{self.rng.getrandbits(48):012x}"
        issue = when.strftime("%Y-%m-%d")
        links = [
            f"https://{domain}/{slug}/{issue}/{n}?utm_source=email&utm_medium={slug}&u={token}"
            for n in range(self.rng.randint(12, 40))
        ]
        headlines = self.rng.sample(HEADLINES, 4)
        html = newsletter_html(name, headlines, links, domain, token)
        html_part = text_part(html, subtype="html")
        if self.rng.random() < 0.7:  # most senders include a plain-text alternative
            text = f"{name} - {issue}\n\n" + "\n".join(
                f"* {h}\n  {links[i]}" for i, h in enumerate(headlines)
            )
            part = multipart("alternative", f"alt-{token}", [text_part(text), html_part])
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
        draft = Draft("newsletter", folder, when, headers, part)
        return self._received_flags(draft, flag_rate=0.01)

    def _notification(self, when: datetime) -> Draft:
        repo = self.rng.choice(REPOS)
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
            Draft("notification", "INBOX", when, headers, text_part(text)), flag_rate=0.02
        )
        return self._archive_if_old(draft, 30, 0.5)

    def _receipt(self, when: datetime) -> Draft:
        shop, address = self.rng.choice(SHOPS)
        order = f"{self.rng.randint(100, 999)}-{self.rng.randint(1000000, 9999999)}"
        items = [
            (item, self.rng.randint(299, 8999))
            for item in self.rng.sample(ITEMS, self.rng.randint(1, 3))
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
        part = multipart(
            "alternative", f"rcpt-{order}", [text_part(text), text_part(html, subtype="html")]
        )
        subject = f"Your {shop} order #{order}: ${total / 100:.2f}"
        headers = self._headers((shop, address), [self.owner], subject, when, category="receipt")
        folder = "Receipts" if self.rng.random() < 0.8 else "INBOX"
        return self._received_flags(Draft("receipt", folder, when, headers, part))

    def _calendar(self, when: datetime) -> Draft:
        organizer = self.rng.choice(self.people)
        summary = self._fill("{project} planning")
        start = (when + timedelta(days=self.rng.randint(1, 14))).replace(
            hour=15, minute=0, second=0
        )
        uid = f"{self.rng.getrandbits(64):016x}@demo.inboxd.local"
        ics = invite_ics(uid, summary, start, organizer, self.owner)
        invite = (
            [("Content-Type", "text/calendar; charset=utf-8; method=REQUEST")],
            ics.encode("utf-8"),
        )
        text = text_part(
            f"{organizer[0]} invited you to {summary} on {start:%A %d %B, %H:%M} UTC.\n"
        )
        body = multipart("alternative", f"cal-{uid[:8]}", [text, invite])
        part = multipart(
            "mixed",
            f"inv-{uid[:8]}",
            [body, attachment("application/ics", "invite.ics", ics.encode())],
        )
        subject = f"Invitation: {summary} @ {start:%a %b %d, %Y %H:%M} (UTC)"
        headers = self._headers(organizer, [self.owner], subject, when, category="calendar")
        return self._received_flags(Draft("calendar", "INBOX", when, headers, part))

    # ---------------------------------------------------------------- broken mail

    def _broken(self, when: datetime, kind: str) -> Draft:
        person = self.rng.choice(self.people)
        headers = self._headers(
            person, [self.owner], f"Broken sample: {kind}", when, category=f"broken/{kind}"
        )
        draft = Draft("broken", "INBOX", when, headers, text_part("placeholder\n"), flags="S")
        BREAKERS[kind](draft)
        return draft


def _broken_slots(count: int) -> dict[int, str]:
    """About 1% of positions, evenly spaced, cycling through every kind of breakage."""
    wanted = max(1, round(count / 100)) if count > 0 else 0
    return {
        int((k + 0.5) * count / wanted): BROKEN_KINDS[k % len(BROKEN_KINDS)] for k in range(wanted)
    }
