"""What demo mail is made of: names, subjects, sentences, newsletters, shops, text in legacy
charsets, small attachments, and the HTML and iCalendar templates. Every domain is reserved
(``*.example``, ``example.com/.org/.net``, ``demo.inboxd.local``)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from html import escape

__all__ = [
    "CITIES",
    "DAYS",
    "FIRST_NAMES",
    "HEADLINES",
    "ITEMS",
    "LAST_NAMES",
    "LEGACY",
    "NEWSLETTERS",
    "PDF",
    "PERSON_DOMAINS",
    "PNG",
    "PROJECTS",
    "REPOS",
    "SENTENCES",
    "SHOPS",
    "SUBJECTS",
    "ZONES",
    "invite_ics",
    "newsletter_html",
]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Maria Sam Priya Jonas Aiko Lena Omar Chloé Mateo Ingrid Kwame Yuki Noah Zoë Ravi Elena "
    "Tomás Hannah Felix Amara Lucas Sofia Björn Mei Diego Nora Arjun Clara Tariq Freya"
)
LAST_NAMES = _words(
    "Garcia Chen Okafor Müller Tanaka Rossi Novak Silva Johansson Kim Dubois Haddad Costa "
    "Schmidt Nakamura Byrne Patel Larsen Moreau Ortiz"
)
PERSON_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "acme.example",
    "globex.example",
)
SUBJECTS = (
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
SENTENCES = (
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
PROJECTS = ("Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
CITIES = ("Lisbon", "Kyoto", "Oslo", "Montreal", "Cape Town", "Valparaíso", "Tallinn")
NEWSLETTERS = (
    ("The Weekly Byte", "weekly", "news.example.com"),
    ("Garden Notes", "garden", "letters.example.org"),
    ("Market Morning", "markets", "briefing.example.net"),
    ("Recipe Club", "recipes", "cook.example"),
    ("Dev Digest", "devdigest", "digest.example"),
)
HEADLINES = (
    "Ten things we learned this week",
    "Why small teams ship faster",
    "The quiet comeback of plain text",
    "Five recipes for a rainy evening",
    "What the numbers say about remote work",
    "A beginner's guide to composting",
    "Inside the world's slowest database migration",
    "Seasonal picks for your balcony garden",
)
REPOS = ("inboxd/inboxd", "acme/api", "acme/web", "globex/infra")
SHOPS = (("Shop Example", "orders@shop.example"), ("Bookstore", "receipts@books.example.com"))
ITEMS = ("USB-C cable", "Notebook (A5)", "Coffee beans 1kg", "Desk lamp", "Paperback novel")
ZONES = (-8, -5, 0, 1, 2, 9)
# Text that exercises legacy charsets; each is encodable in its charset.
LEGACY = {
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
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def newsletter_html(
    name: str, headlines: list[str], links: list[str], domain: str, token: str
) -> str:
    """A newsletter issue in HTML: a hidden preheader, stories linking ``links``, more links."""
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


def invite_ics(
    uid: str, summary: str, start: datetime, organizer: tuple[str, str], attendee: tuple[str, str]
) -> str:
    """An iCalendar REQUEST for a one-hour event starting at ``start``."""
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
