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
    "newsgroups",
)
_LIST_SENDER = re.compile(
    r"(?:^|[<\s])(?:owner-[^@]+|[^@\s<]+-(?:owner|admin|bounces?|request))@", re.IGNORECASE
)
_ESP_BOUNCE = re.compile(r"(?:^|[<\s])bounces?[-+.=@_]|@bounces?\.|@[^>\s]*\.bounces?\.")
_SPELLED = {
    "id": "ID",
    "github": "GitHub",
    "gitlab": "GitLab",
    "jira": "JIRA",
    "ses": "SES",
    "mc": "MC",
    "sg": "SG",
    "sfmc": "SFMC",
    "csa": "CSA",
    "pm": "PM",
    "mime": "MIME",
    "spf": "SPF",
    "mailgun": "Mailgun",
}
_HUMAN_LOCAL = re.compile(r"^[a-z]+(?:[._-][a-z]+){0,2}\d{0,4}$", re.IGNORECASE)
_SPAM_STATUS = re.compile(r"^\s*yes\b", re.IGNORECASE)
_UNDISCLOSED = re.compile(r"undisclosed|recipient list suppressed|unlisted", re.IGNORECASE)
_BOUNCE_TYPES = frozenset(
    {"message/delivery-status", "message/disposition-notification", "message/feedback-report"}
)
_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
_ICS_NAME = re.compile(r"\.(?:ics|vcs)$", re.IGNORECASE)
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|dear|hallo|bonjour|hola)\b[ ,]*([A-Za-z][\w'-]*)", re.IGNORECASE
)
_JUNK_MARKS = frozenset({"\\junk", "junk", "spam", "\\spam", "$junk", "junk e-mail", "bulk mail"})
_SCRIPT_LOCALS = frozenset({"www-data", "apache", "nobody", "httpd", "www", "wwwrun", "nginx"})
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
    footer: list[str] = field(default_factory=list)
    spam: list[str] = field(default_factory=list)
    spam_subject: bool = False
    freemail: bool = False
    reply_to_elsewhere: bool = False
    html_only: bool = False
    quoted: bool = False
    obfuscated: int = 0
    fake_reply: bool = False
    notifier_strong: bool = False
    spam_mailer: str | None = None
    promo_in_subject: int = 0
    bulk_sender_strong: bool = False
    news_in_subject: int = 0
    action_strong: str | None = None
    spam_in_subject: int = 0
    invitation: str | None = None
    random_sender: bool = False

    @property
    def subscribed(self) -> bool:
        """The text ends like mail to subscribers (and is not someone's reply or forward)."""
        return bool(self.footer) and not (self.reply or self.forward or self.quoted)

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
    threaded = "in-reply-to" in headers or "references" in headers
    s.reply = threaded or (bool(_REPLY_SUBJECT.match(mail.subject)) and "thread-index" in headers)
    s.fake_reply = not s.reply and bool(_REPLY_SUBJECT.match(mail.subject))
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
    if s.list_reason is None:
        s.list_reason = _list_route(mail, s)
    if lexicon.ANNOUNCE_SUBJECT.search(mail.subject):
        s.announce_list = True
    precedence = (mail.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        s.precedence = precedence
    list_id = (mail.header("list-id") or "").lower()
    if "announce" in list_id or "news" in list_id:
        s.announce_list = True


def _list_route(mail: Mail, s: Signals) -> str | None:
    """A list that shows only in the route: its bounce address, or the list as recipient."""
    for name in ("sender", "errors-to", "return-path"):
        value = mail.header(name)
        if value and _LIST_SENDER.search(value):
            return f"sent through a mailing list ({_title(name)}: {value[:60]})"
    if not s.to_owner and len(mail.to) == 1 and lexicon.LIST_ADDRESS.search(mail.to[0]):
        return f"sent to a mailing list address ({mail.to[0]})"
    return None


def _title(name: str) -> str:
    """A header name as people write it ("x-github-reason" -> "X-GitHub-Reason")."""
    return "-".join(_SPELLED.get(part, part.capitalize()) for part in name.split("-"))


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
    elif return_path:
        local = return_path.strip().strip("<>").rpartition("@")[0].lower()
        if local in _SCRIPT_LOCALS:
            s.machine = f"sent by a web server's script (Return-Path {return_path.strip()})"
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
    if s.notifier is None and ("alert" in s.from_local or s.from_domain.startswith("alert")):
        s.notifier = f"sender {mail.from_addr} sends alerts"
    s.notifier_strong = s.notifier is not None
    if s.notifier is None and (
        lexicon.NOTIFICATION_TAG.match(mail.subject)
        or lexicon.NOTIFICATION_SUBJECT.search(mail.subject.lower())
    ):
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
    if mailer and lexicon.SPAM_MAILERS.search(mailer):
        s.spam_mailer = f"sent with a mass-mailing program (X-Mailer: {mailer[:40]})"
    elif mailer and lexicon.BULK_MAILERS.search(mailer):
        s.mailer = f"sent with a bulk-mail tool (X-Mailer: {mailer[:40]})"
    _bulk_sender(mail, s)
    name = mail.from_name or ""
    s.human_name = bool(name) and not lexicon.ORG_NAME.search(name.lower()) and _personish(name)
    if not name and s.from_local and not s.machine and not s.bulk_sender:
        s.human_name = bool(_HUMAN_LOCAL.match(s.from_local)) and "." in s.from_local


def _bulk_sender(mail: Mail, s: Signals) -> None:
    if s.from_local and lexicon.BULK_LOCAL.match(s.from_local):
        s.bulk_sender = f"sender {mail.from_addr} sends to many"
    elif mail.from_addr and lexicon.BULK_ADDRESS.search(mail.from_addr):
        s.bulk_sender = f"sender {mail.from_addr[:60]} is a bulk-mail address"
        s.bulk_sender_strong = True
    elif mail.from_name and lexicon.PUBLICATION_NAME.search(mail.from_name):
        s.bulk_sender = f"sender '{mail.from_name[:40]}' is a publication or list"
        s.bulk_sender_strong = True
    elif not s.list_reason:
        for name in ("return-path", "errors-to"):
            value = (mail.header(name) or "").lower()
            if _ESP_BOUNCE.search(value):
                s.bulk_sender = f"bounces go to a bulk-mail address ({_title(name)})"
                break


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
    subject = mail.subject.lower()
    text = mail.text[:_TEXT_SCAN].lower()
    mine = own_text(text)
    s.quoted = len(mine) < len(text) - 40
    _receipt(subject, text, s)
    _action(subject, text, mine, s)
    both = subject + "\n" + text
    s.promo = _found(lexicon.PROMOTION, both)
    s.news = _found(lexicon.NEWSLETTER, both)
    if s.promo:
        s.promo_in_subject = len(lexicon.PROMOTION.findall(subject))
    if s.news:
        s.news_in_subject = len(lexicon.NEWSLETTER.findall(subject))
    s.footer = _found(lexicon.FOOTER, text)
    s.spam = _found(lexicon.SPAM, both)
    if s.spam:
        s.spam_in_subject = len(lexicon.SPAM.findall(subject))
    if s.notifier is None and lexicon.NOTIFICATION_SUBJECT.search(text[:300]):
        s.notifier = "opens like an automated notice"
    if lexicon.INVITATION.search(subject) or lexicon.INVITATION.search(mine):
        when = lexicon.EVENT_WHEN.search(subject) or lexicon.EVENT_WHEN.search(mine)
        if when:
            s.invitation = f"an invitation with a date ('{' '.join(when.group(0).split())}')"
    if not s.machine and lexicon.AUTOMATED_TEXT.search(text):
        s.machine = "says it was sent automatically"
    if lexicon.GTUBE in text:
        s.spam_flag = "the GTUBE spam test string"
    s.obfuscated = len(lexicon.OBFUSCATED.findall(text))
    _sender_cues(mail, ctx, s, mine)


def _receipt(subject: str, text: str, s: Signals) -> None:
    found = lexicon.RECEIPT_SUBJECT.search(subject)
    if found:
        s.receipt.insert(0, f"receipt words in the subject ('{found.group(0)}')")
    elif not s.receipt:
        hits = {m.group(0) for m in lexicon.RECEIPT_TEXT.finditer(text)}
        if len(hits) >= 2:
            s.receipt.append(f"receipt words ('{sorted(hits)[0]}')")


def _action(subject: str, text: str, mine: str, s: Signals) -> None:
    found = lexicon.ACTION.search(subject) or lexicon.ACTION.search(mine)
    strong = lexicon.ACTION_STRONG.search(subject) or lexicon.ACTION_STRONG.search(text)
    if strong:
        s.action_strong = f"asks you to act ('{' '.join(strong.group(0).split())}')"
    if found:
        s.action = f"asks you to act ('{' '.join(found.group(0).split())}')"
    else:
        s.action = s.action_strong


def _sender_cues(mail: Mail, ctx: Context, s: Signals, mine: str) -> None:
    subject = mail.subject
    s.spam_subject = bool(lexicon.SPAM_SUBJECT.search(subject)) or (
        len(subject) > 8 and subject.upper() == subject and any(c.isalpha() for c in subject)
    )
    if lexicon.SPAM_TAG.search(subject):
        s.spam_flag = s.spam_flag or "subject tagged as spam"
    s.freemail = bool(s.from_domain and lexicon.FREEMAIL.search(s.from_domain))
    s.random_sender = bool(lexicon.RANDOM_LOCAL.match(s.from_local)) and not mail.from_name
    reply_to = mail.header("reply-to") or ""
    if reply_to and s.from_domain and "@" in reply_to:
        s.reply_to_elsewhere = s.from_domain not in reply_to.lower()
    if ctx.name:
        first = ctx.name.split()[0].lower() if ctx.name.split() else ""
        greeting = _GREETING.match(mine)
        s.owner_named = bool(first) and greeting is not None and greeting.group(1).lower() == first


def _found(pattern: re.Pattern[str], text: str) -> list[str]:
    """The distinct phrases of ``pattern`` in lower-cased ``text``."""
    return sorted({" ".join(m.group(0).split()) for m in pattern.finditer(text)})
