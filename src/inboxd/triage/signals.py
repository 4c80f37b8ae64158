"""What one message's headers, parts and text say about how it was sent and what it wants,
read once per message for :mod:`inboxd.triage.classify` (each signal with its reason in
words)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inboxd.triage import lexicon
from inboxd.triage.types import Context, Mail

__all__ = ["Signals", "own_text", "read_signals"]

# Where the writer's own words end: quoted text, a forwarded or original message.
_QUOTE_START = re.compile(
    r"^(?:-{2,}\s*(?:original message|forwarded message|forwarded by)"
    r"|_{5,}|on .{0,80} wrote:\s*$|.{0,60} wrote:\s*$|from:\s.*\nsent:\s)",
    re.IGNORECASE | re.MULTILINE,
)
_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|sv|antw|vs|r)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fw|fwd|wg|tr|rv)\s*:", re.IGNORECASE)
_METHOD = re.compile(r"^METHOD:\s*([A-Za-z-]+)", re.MULTILINE)
_LIST_FIELDS = (
    "list-id",
    "list-post",
    "list-archive",
    "list-help",
    "list-subscribe",
    "mailing-list",
    "x-mailing-list",
    "x-beenthere",
    "x-list",
    "x-listname",
    "x-ml-name",
    "x-list-id",
    "x-yahoo-newman-property",
    "x-egroups-return",
    "x-loop",
)
_LIST_SENDER = re.compile(
    r"(?:^|[<\s])(?:owner-[^@]+|[^@\s<]+-(?:owner|admin|bounces?|request))@", re.IGNORECASE
)
_HUMAN_LOCAL = re.compile(r"^[a-z]+(?:[._-][a-z]+){0,2}\d{0,4}$", re.IGNORECASE)
_SPAM_STATUS = re.compile(r"^\s*yes\b", re.IGNORECASE)
_UNDISCLOSED = re.compile(r"undisclosed|recipient list suppressed|unlisted", re.IGNORECASE)
_BOUNCE_TYPES = frozenset({"message/delivery-status", "message/disposition-notification"})
_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
_ICS_NAME = re.compile(r"\.(?:ics|vcs)$", re.IGNORECASE)
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|dear|hallo|bonjour|hola)\b[ ,]*([A-Za-z][\w'-]*)", re.IGNORECASE
)
_JUNK_MARKS = frozenset({"\\junk", "junk", "spam", "\\spam", "$junk", "junk e-mail", "bulk mail"})
_TEXT_SCAN = 2500  # characters of a body the word lists are run over


@dataclass(slots=True)
class Signals:
    """The evidence of one message; a field holding a str holds its reason in words."""

    from_local: str = ""
    from_domain: str = ""
    owner_known: bool = False
    to_owner: bool = False
    owner_named: bool = False
    recipients: int = 0
    undisclosed: bool = False
    wrote_to: int = 0
    replied: bool = False
    reply: bool = False
    forward: bool = False
    list_reason: str | None = None
    list_post: bool = False
    announce_list: bool = False
    unsubscribe: bool = False
    one_click: bool = False
    precedence: str | None = None
    auto: str | None = None
    null_return: bool = False
    machine: str | None = None
    bulk_sender: str | None = None
    esp: str | None = None
    mailer: str | None = None
    calendar: str | None = None
    spam_flag: str | None = None
    junk: bool = False
    notifier: str | None = None
    social: str | None = None
    bounce: bool = False
    human_name: bool = False
    receipt: list[str] = field(default_factory=list)
    action: str | None = None
    promo: list[str] = field(default_factory=list)
    news: list[str] = field(default_factory=list)
    spam: list[str] = field(default_factory=list)
    spam_subject: bool = False
    freemail: bool = False
    reply_to_elsewhere: bool = False
    html_only: bool = False
    quoted: bool = False

    @property
    def bulk(self) -> bool:
        """Sent to many by a program: a bulk-mail service, campaign tool or bulk sender."""
        return bool(self.esp or self.mailer or self.one_click)


def own_text(text: str) -> str:
    """The writer's own words: the text before any quoted or forwarded message."""
    head = text[:_TEXT_SCAN]
    match = _QUOTE_START.search(head)
    if match:
        head = head[: match.start()]
    if ">" in head:
        head = "\n".join(line for line in head.split("\n") if not line.startswith(">"))
    return head


def read_signals(mail: Mail, ctx: Context) -> Signals:
    """Every signal of ``mail`` for the user described by ``ctx``."""
    s = Signals()
    headers = mail.headers
    addr = mail.from_addr or ""
    local, _, domain = addr.rpartition("@")
    s.from_local, s.from_domain = local, domain
    _recipients(mail, ctx, s)
    if addr:
        s.wrote_to = ctx.correspondents.get(addr, 0)
    s.replied = mail.thread_id is not None and mail.thread_id in ctx.replied_threads
    s.reply = bool(_REPLY_SUBJECT.match(mail.subject)) or "in-reply-to" in headers
    s.forward = bool(_FORWARD_SUBJECT.match(mail.subject))
    _list(mail, s)
    _machine(mail, s)
    _bulk(mail, s)
    _parts(mail, s)
    _spam_flags(mail, s)
    _content(mail, ctx, s)
    return s


def _recipients(mail: Mail, ctx: Context, s: Signals) -> None:
    recipients = mail.to + mail.cc
    s.recipients = len(recipients)
    s.owner_known = bool(ctx.addresses)
    if ctx.addresses:
        s.to_owner = any(a in ctx.addresses for a in recipients)
    to_header = mail.header("to") or ""
    s.undisclosed = not mail.to or bool(_UNDISCLOSED.search(to_header))


def _list(mail: Mail, s: Signals) -> None:
    headers = mail.headers
    for name in _LIST_FIELDS:
        values = headers.get(name)
        if values:
            value = values[0]
            if name == "list-post" and value.strip().upper().startswith("NO"):
                s.announce_list = True
                continue
            if name == "list-post":
                s.list_post = True
            if s.list_reason is None:
                shown = value if len(value) <= 60 else value[:57] + "..."
                label = "List-Id" if name == "list-id" else _title(name)
                s.list_reason = f"{label}: {shown}"
    sender = mail.header("sender") or mail.header("errors-to") or ""
    if s.list_reason is None and sender and _LIST_SENDER.search(sender):
        s.list_reason = f"sent through a mailing list (Sender: {sender[:60]})"
    precedence = (mail.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        s.precedence = precedence
    list_id = (mail.header("list-id") or "").lower()
    if "announce" in list_id or "news" in list_id:
        s.announce_list = True


def _title(name: str) -> str:
    return "-".join(part.capitalize() if part != "id" else "ID" for part in name.split("-"))


def _machine(mail: Mail, s: Signals) -> None:
    headers = mail.headers
    auto = (mail.header("auto-submitted") or "").strip().lower()
    if auto and auto != "no":
        s.auto = f"Auto-Submitted: {auto.split(';')[0]}"
    elif "x-autoreply" in headers or "x-autorespond" in headers:
        s.auto = "marked as an automatic reply"
    return_path = mail.header("return-path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        s.null_return = True
    if s.from_local and lexicon.MACHINE_LOCAL.match(s.from_local):
        s.machine = f"sender {mail.from_addr} is an automated address"
    elif not mail.from_addr and not mail.from_name:
        s.machine = "no sender"
    _notifier(mail, s)


def _notifier(mail: Mail, s: Signals) -> None:
    headers = mail.headers
    for name in headers:
        if name.startswith(lexicon.NOTIFICATION_HEADER_PREFIXES):
            s.notifier = f"{_title(name)} header (a notification system)"
            break
    if s.notifier is None and lexicon.NOTIFICATION_DOMAINS.search(s.from_domain):
        s.notifier = f"sent by {s.from_domain} (a notification service)"
    if s.notifier is None and lexicon.NOTIFICATION_SUBJECT.search(mail.subject):
        s.notifier = "subject of an automated notice"
    if s.from_domain and lexicon.SOCIAL_DOMAINS.search(s.from_domain):
        s.social = f"from a social network ({s.from_domain})"
    else:
        for name in headers:
            if name.startswith(("x-facebook", "x-linkedin", "x-twitter", "x-meetup")):
                s.social = f"{_title(name)} header (a social network)"
                break


def _bulk(mail: Mail, s: Signals) -> None:
    headers = mail.headers
    s.unsubscribe = "list-unsubscribe" in headers
    s.one_click = "list-unsubscribe-post" in headers
    for name in headers:
        if name == "list-unsubscribe-post":
            continue
        if name in lexicon.ESP_HEADERS or name.startswith(lexicon.ESP_HEADER_PREFIXES):
            s.esp = f"sent through a bulk-mail service ({_title(name)})"
            break
    mailer = mail.header("x-mailer") or mail.header("x-mailer-version") or ""
    if mailer and lexicon.BULK_MAILERS.search(mailer):
        s.mailer = f"sent with a bulk-mail tool (X-Mailer: {mailer[:40]})"
    if s.from_local and lexicon.BULK_LOCAL.match(s.from_local):
        s.bulk_sender = f"sender {mail.from_addr} sends to many"
    name = mail.from_name or ""
    s.human_name = bool(name) and not lexicon.ORG_NAME.search(name) and _personish(name)
    if not name and s.from_local and not s.machine and not s.bulk_sender:
        s.human_name = bool(_HUMAN_LOCAL.match(s.from_local)) and "." in s.from_local


def _personish(name: str) -> bool:
    words = name.replace(",", " ").split()
    if not 1 <= len(words) <= 4:
        return False
    if "@" in name:
        return False
    return sum(ch.isalpha() for ch in name) >= max(2, len(name) * 2 // 3)


def _parts(mail: Mail, s: Signals) -> None:
    types = mail.content_types
    if any(t in _BOUNCE_TYPES for t in types):
        s.bounce = True
    if any(t in _CALENDAR_TYPES for t in types) or any(
        _ICS_NAME.search(n) for n in mail.attachments
    ):
        method = _METHOD.search(mail.text)
        s.calendar = method.group(1).upper() if method else "EVENT"
    s.html_only = mail.has_html and "text/plain" not in types
    for name in mail.attachments:
        if lexicon.RECEIPT_ATTACHMENT.search(name) and name.lower().endswith(
            (".pdf", ".html", ".htm", ".xml", ".png", ".jpg")
        ):
            kind = "invoice" if "invoice" in name.lower() else "receipt or invoice"
            s.receipt.append(f"{kind} attached ({name[:60]})")
            break


def _spam_flags(mail: Mail, s: Signals) -> None:
    flag = mail.header("x-spam-flag")
    if flag and flag.strip().upper().startswith("YES"):
        s.spam_flag = "X-Spam-Flag: YES"
    else:
        status = mail.header("x-spam-status")
        if status and _SPAM_STATUS.match(status):
            s.spam_flag = "X-Spam-Status: Yes"
    marks = {f.lower() for f in (*mail.folders, *mail.labels, *mail.flags)}
    s.junk = not marks.isdisjoint(_JUNK_MARKS)


def _content(mail: Mail, ctx: Context, s: Signals) -> None:
    subject = mail.subject
    text = mail.text[:_TEXT_SCAN]
    mine = own_text(mail.text)
    s.quoted = len(mine) < len(text) - 40
    found = lexicon.RECEIPT_SUBJECT.search(subject)
    if found:
        s.receipt.insert(0, f"receipt words in the subject ('{found.group(0)}')")
    elif not s.receipt:
        hits = {m.group(0).lower() for m in lexicon.RECEIPT_TEXT.finditer(text)}
        if len(hits) >= 2:
            s.receipt.append(f"receipt words ('{sorted(hits)[0]}')")
    found = lexicon.ACTION.search(subject) or lexicon.ACTION.search(mine)
    if found:
        s.action = f"asks you to act ('{' '.join(found.group(0).split())}')"
    both = subject + "\n" + text
    s.promo = _found(lexicon.PROMOTION, both)
    s.news = _found(lexicon.NEWSLETTER, both)
    s.spam = _found(lexicon.SPAM, both)
    _sender_cues(mail, ctx, s, mine)


def _sender_cues(mail: Mail, ctx: Context, s: Signals, mine: str) -> None:
    subject = mail.subject
    s.spam_subject = bool(lexicon.SPAM_SUBJECT.search(subject)) or (
        len(subject) > 8 and subject.upper() == subject and any(c.isalpha() for c in subject)
    )
    s.freemail = bool(s.from_domain and lexicon.FREEMAIL.search(s.from_domain))
    reply_to = mail.header("reply-to") or ""
    if reply_to and s.from_domain and "@" in reply_to:
        s.reply_to_elsewhere = s.from_domain not in reply_to.lower()
    if ctx.name:
        first = ctx.name.split()[0].lower() if ctx.name.split() else ""
        greeting = _GREETING.match(mine)
        s.owner_named = bool(first) and greeting is not None and greeting.group(1).lower() == first


def _found(pattern: re.Pattern[str], text: str) -> list[str]:
    """The distinct phrases of ``pattern`` in ``text``, lower-cased."""
    return sorted({" ".join(m.group(0).lower().split()) for m in pattern.finditer(text)})
