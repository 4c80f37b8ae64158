"""What one message's headers, parts and text say about how it was sent and what it wants,
read once per message for :mod:`inboxd.triage.classify` (each signal with its reason in
words)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from inboxd.triage import lexicon
from inboxd.triage.types import Context, Mail

__all__ = ["Signals", "own_text", "read_signals"]

# Where the writer's own words end: quoted text, a forwarded or original message.
# Lines that start a quoted or forwarded message, lower-cased.
_QUOTE_MARKERS = (
    "-----original message",
    "----- original message",
    "---------- forwarded message",
    "----- forwarded message",
    "forwarded by",
    " wrote:",
    "\n_____",
    "\nfrom: ",
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
_RECEIVED_FROM = re.compile(r"\bfrom\s+(\S+)\s+\(([^)]*)\)", re.IGNORECASE)
_PRIVATE_IP = re.compile(r"\[(?:127\.|10\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.)")
_DYNAMIC_HOST = re.compile(
    r"dsl|dial-?up|cable|pool|dyn(?:amic)?|ppp|\bcm-|(?:\d{1,3}[-.]){3}\d{1,3}|\bhost\d"
    r"|client|customer|user\d|broadband|modem",
    re.IGNORECASE,
)
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
    {
        "message/delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "multipart/report",
    }
)
_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
_ICS_NAME = re.compile(r"\.(?:ics|vcs)$", re.IGNORECASE)
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|dear|hallo|bonjour|hola)\b[ ,]*([A-Za-z][\w'-]*)", re.IGNORECASE
)
_JUNK_MARKS = frozenset({"\\junk", "junk", "spam", "\\spam", "$junk", "junk e-mail", "bulk mail"})
# A display name that is a web address ("DesktopEngineer.com"): a site, not a person.
_DOMAIN_NAME = re.compile(r"\w\.(?:com|net|org|info|biz|co|io|edu|gov|[a-z]{2})\b", re.IGNORECASE)
_SCRIPT_LOCALS = frozenset({"www-data", "apache", "nobody", "httpd", "www", "wwwrun", "nginx"})
# Characters of a body the word lists are run over: its start, and its end where the
# footers of subscribed mail are (more text found no more on the labelled mail, and the
# scan is a third of a triage's time).
_TEXT_SCAN = 1200
_TAIL_SCAN = 600


@dataclass(slots=True)
class Signals:
    """The evidence of one message; a field holding a str holds its reason in words."""

    from_local: str = ""
    from_domain: str = ""
    #: The header names, one a line (searched at once by lexicon's *_NAMES patterns).
    names: str = ""
    owner_known: bool = False
    to_owner: bool = False
    owner_named: bool = False
    recipients: int = 0
    undisclosed: bool = False
    #: The To header says "undisclosed recipients" (a mass mailing), not merely absent
    #: (local system mail often has none).
    named_undisclosed: bool = False
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
    spam_weak: list[str] = field(default_factory=list)
    links: int = 0
    names_recipient: bool = False
    dynamic_relay: bool = False
    spam_subject: bool = False
    freemail: bool = False
    reply_to_elsewhere: bool = False
    html_only: bool = False
    quoted: bool = False
    #: The lower-cased text the word lists were run over.
    scanned: str = ""
    fake_reply: bool = False
    notifier_strong: bool = False
    #: The notifier is only the sender address's wording ("alerts@"), not a header or a
    #: notification service's domain.
    notifier_by_address: bool = False
    spam_mailer: str | None = None
    promo_in_subject: int = 0
    bulk_sender_strong: bool = False
    news_in_subject: int = 0
    action_strong: str | None = None
    spam_in_subject: int = 0
    invitation: str | None = None
    random_sender: bool = False
    #: The recipient's address (or its unusual local part) appears in the writer's text.
    address_in_text: bool = False
    empty_subject: bool = False
    #: Nothing to read: no text in any part and no attachment.
    no_text: bool = False
    #: From is also the only To: the real recipients were Bcc'd.
    self_addressed: bool = False
    encoded_html: bool = False
    forged: bool = False
    digest: str | None = None
    #: The only sign of a notice is a word at the top of the text (weaker than a header).
    notice_in_text: bool = False
    #: Sent to role addresses (webmaster@, info@) of several sites: a harvested list.
    harvested: bool = False
    #: A brand the sender's name (or a domainless address) holds.
    brand: str | None = None
    #: A brand in the sender's name that its address's domain does not hold ("PayPal"
    #: <x@scuba.example>), with the brand.
    impersonates: str | None = None
    #: Words of the subject or sender's name that mix scripts or hide marks between their
    #: letters ("MetaMask" with Greek and Cyrillic capitals, "Amazon" with a mark over
    #: each letter): made to pass filters, as no one writes.
    mixed_script: bool = False
    #: The From address has no domain a server could answer for ("<temu>", "x@correios").
    bad_sender: bool = False
    #: The sender's domain is on a free hosting platform or a much-abused top-level domain.
    abused_host: bool = False
    #: The subject holds the recipient's whole address.
    address_in_subject: bool = False

    def disguised(self) -> bool:
        """Does the text disguise words with digits or symbols ("st0ck", "v1agra") or break
        them up with spaces ("V IA GR A", "se en on")?"""
        if len(lexicon.OBFUSCATED.findall(self.scanned, 0, _OBFUSCATION_SCAN)) >= 2:
            return True
        head = self.scanned[:_OBFUSCATION_SCAN]
        # Text broken up with spaces has a space every five characters or less, prose one
        # every six (a cheap test first: the count below costs as much as a triage's word
        # scan). Languages with diacritics have short words the list lacks.
        if head.count(" ") * 5 < len(head) or not head.isascii():
            return False
        fragments = lexicon.SHORT_WORD.findall(head)
        odd = sum(1 for f in fragments if f not in lexicon.COMMON_SHORT_WORDS)
        return odd >= 8 and odd * 6 >= head.count(" ")

    @property
    def subscribed(self) -> bool:
        """The text ends like mail to subscribers (and is not someone's reply or forward)."""
        return bool(self.footer) and not (self.reply or self.forward or self.quoted)

    @property
    def bulk(self) -> bool:
        """Sent to many by a program: a bulk-mail service, campaign tool or bulk sender."""
        return bool(self.esp or self.mailer or self.one_click)


def own_text(text: str) -> str:
    """The writer's own words, lower-cased: the text before any quoted or forwarded
    message, without quoted lines."""
    head = text[: _TEXT_SCAN * 2].lower()
    head = head[: _own_end(head)]
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
    s.names = "\n".join(headers)
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
    roles = {a.partition("@")[2] for a in recipients if a.partition("@")[0] in lexicon.ROLE_LOCAL}
    s.harvested = len(roles) >= 2
    to_header = mail.header("to") or ""
    s.named_undisclosed = bool(_UNDISCLOSED.search(to_header))
    s.undisclosed = not mail.to or s.named_undisclosed


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
    # The list's name says what it carries: in its List-Id, or its bounce address.
    named = (mail.header("list-id") or "").lower()
    if not named and s.list_reason and s.list_reason.startswith("sent through"):
        named = s.list_reason.lower()
    if "announce" in named or "news" in named or "bulletin" in named:
        s.announce_list = True


def _list_route(mail: Mail, s: Signals) -> str | None:
    """A list that shows only in the route: its bounce address, or the list as recipient."""
    # A list's bounce address on mail to the user's own address and no list field is how
    # bulk mailers send one copy per subscriber too: only mail to another address is a list's.
    for name in ("sender", "errors-to", "return-path"):
        value = mail.header(name)
        if value and _LIST_SENDER.search(value) and not (s.to_owner and len(mail.to) == 1):
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
    elif return_path and not s.list_reason:  # list servers run as "nobody" too
        local = return_path.strip().strip("<>").rpartition("@")[0].lower()
        if local in _SCRIPT_LOCALS:
            s.machine = f"sent by a web server's script (Return-Path {return_path.strip()})"
    if s.from_local and lexicon.MACHINE_LOCAL.match(s.from_local):
        s.machine = f"sender {mail.from_addr} is an automated address"
    elif not mail.from_addr and not mail.from_name:
        s.machine = "no sender"
    _notifier(mail, s)


def _notifier(mail: Mail, s: Signals) -> None:
    found = lexicon.NOTIFICATION_NAMES.search(s.names)
    if found:
        s.notifier = f"{_title(found.group(0))} header (a notification system)"
    if s.notifier is None and lexicon.NOTIFICATION_DOMAINS.search(s.from_domain):
        s.notifier = f"sent by {s.from_domain} (a notification service)"
    if s.notifier is None and ("alert" in s.from_local or s.from_domain.startswith("alert")):
        s.notifier = f"sender {mail.from_addr} sends alerts"
        s.notifier_by_address = True
    s.notifier_strong = s.notifier is not None
    if s.notifier is None and (
        lexicon.NOTIFICATION_TAG.match(mail.subject)
        or lexicon.NOTIFICATION_SUBJECT.search(mail.subject.lower())
    ):
        s.notifier = "subject of an automated notice"
    elif s.notifier is None and lexicon.SUBSCRIPTION_SUBJECT.search(mail.subject):
        s.notifier = "subject of a subscription notice"
    if s.from_domain and lexicon.SOCIAL_DOMAINS.search(s.from_domain):
        s.social = f"from a social network ({s.from_domain})"
    elif found := lexicon.SOCIAL_NAMES.search(s.names):
        s.social = f"{_title(found.group(0))} header (a social network)"


def _bulk(mail: Mail, s: Signals) -> None:
    headers = mail.headers
    s.unsubscribe = "list-unsubscribe" in headers
    s.one_click = "list-unsubscribe-post" in headers
    found = lexicon.ESP_NAMES.search(s.names)
    if found:
        s.esp = f"sent through a bulk-mail service ({_title(found.group(0))})"
    mailer = mail.header("x-mailer") or mail.header("x-mailer-version") or ""
    if mailer and lexicon.SPAM_MAILERS.search(mailer):
        s.spam_mailer = f"sent with a mass-mailing program (X-Mailer: {mailer[:40]})"
    elif mailer and lexicon.BULK_MAILERS.search(mailer):
        s.mailer = f"sent with a bulk-mail tool (X-Mailer: {mailer[:40]})"
    _bulk_sender(mail, s)
    name = mail.from_name or ""
    addr = mail.from_addr or ""
    # Without a domain the address is all there is to read ("<temu>").
    named = (name or ("" if "@" in addr else addr)).lower()
    found = lexicon.BRAND_NAME.search(named) if named else None
    s.brand = found.group(0) if found else None
    s.human_name = (
        bool(name)
        and s.brand is None  # "Binance", "Banco do Brasil"
        and not lexicon.ORG_NAME.search(name.lower())
        and _personish(name)
    )
    if not name and s.from_local and not s.machine and not s.bulk_sender:
        s.human_name = bool(_HUMAN_LOCAL.match(s.from_local)) and "." in s.from_local


def _bulk_sender(mail: Mail, s: Signals) -> None:
    if s.from_local and lexicon.PUBLISHER_LOCAL.match(s.from_local):
        s.bulk_sender = f"sender {mail.from_addr} sends to many"
        s.bulk_sender_strong = True
    elif s.from_local and lexicon.BULK_LOCAL.match(s.from_local):
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
    if "@" in name or _DOMAIN_NAME.search(name):
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
    # A whole message of HTML sent base64-encoded: what spam tools did to hide their words
    # from filters (mail programs encode text so only when its charset needs it, and then
    # send a plain-text part too).
    s.encoded_html = (
        s.html_only
        and (mail.header("content-transfer-encoding") or "").strip().lower() == "base64"
        and (mail.header("content-type") or "").lower().startswith("text/html")
    )
    for name in mail.attachments:
        if lexicon.RECEIPT_ATTACHMENT.search(name) and name.lower().endswith(
            (".pdf", ".html", ".htm", ".xml", ".png", ".jpg")
        ):
            kind = "invoice" if "invoice" in name.lower() else "receipt or invoice"
            s.receipt.append(f"{kind} attached ({name[:60]})")
            break


def _dynamic_relay(mail: Mail) -> bool:
    """Did the message reach the user's servers straight from a home connection (a host
    without a name, or named like a dial-up, DSL or cable line), as spam from infected
    machines does?"""
    for value in mail.headers.get("received", ())[:4]:
        hop = _RECEIVED_FROM.search(value)
        if hop is None:
            continue
        detail = hop.group(2)
        if _PRIVATE_IP.search(detail) or "localhost" in detail:
            continue  # a hop inside the receiving site
        return "unknown" in detail or bool(_DYNAMIC_HOST.search(hop.group(1)))
    return False


def _spam_flags(mail: Mail, s: Signals) -> None:
    flag = mail.header("x-spam-flag")
    if flag and flag.strip().upper().startswith("YES"):
        s.spam_flag = "X-Spam-Flag: YES"
    else:
        status = mail.header("x-spam-status")
        if status and _SPAM_STATUS.match(status):
            s.spam_flag = "X-Spam-Status: Yes"
    s.dynamic_relay = _dynamic_relay(mail)
    # The receiving server's verdict (the topmost header): a From domain whose DMARC check
    # failed was forged. SPF alone fails on every forward, so it is not counted.
    verdict = (mail.header("authentication-results") or "").lower()
    s.forged = "dmarc=fail" in verdict
    marks = {f.lower() for f in (*mail.folders, *mail.labels, *mail.flags)}
    s.junk = not marks.isdisjoint(_JUNK_MARKS)


def _content(mail: Mail, ctx: Context, s: Signals) -> None:
    subject = mail.subject.lower()
    body = mail.text
    if len(body) > _TEXT_SCAN + _TAIL_SCAN:
        body = body[:_TEXT_SCAN] + "\n" + body[-_TAIL_SCAN:]
    text = body.lower()
    own_end = _own_end(text)
    s.quoted = own_end < len(text) - 40 or "\n>" in text
    found, in_subject = _scan(subject, text, own_end)
    receipt = lexicon.RECEIPT_SUBJECT.search(subject)
    if receipt:
        s.receipt.insert(0, f"receipt words in the subject ('{receipt.group(0)}')")
    elif not s.receipt and len(set(found.get("receipt_text", ()))) >= 2:
        s.receipt.append(f"receipt words ('{sorted(found['receipt_text'])[0]}')")
    if "action_strong" in found:
        s.action_strong = f"asks you to act ('{found['action_strong'][0]}')"
    # One soft request in passing ("let me know if...") is how people write; a request in
    # the subject, two of them, or a strong one (approve, sign, pay) asks for action.
    soft = found.get("action", [])
    # The subject of a reply or a forward is the first message's: its request was answered.
    asked = in_subject.get("action") and not (s.reply or s.fake_reply or s.forward)
    if soft and (asked or len(set(soft)) >= 2):
        s.action = f"asks you to act ('{soft[0]}')"
    else:
        s.action = s.action_strong
    s.promo = sorted(set(found.get("promo", ())))
    s.news = sorted(set(found.get("news", ())))
    s.footer = sorted(set(found.get("footer", ())))
    s.spam = sorted(set(found.get("spam", ())))
    s.spam_weak = sorted(set(found.get("spam_weak", ())))
    s.promo_in_subject = in_subject.get("promo", 0)
    s.news_in_subject = in_subject.get("news", 0)
    s.spam_in_subject = in_subject.get("spam", 0) + in_subject.get("spam_weak", 0)
    if s.notifier is None and "notice" in found:
        s.notifier = "opens like an automated notice"
        s.notice_in_text = True
    if "invitation" in found:
        when = lexicon.EVENT_WHEN.search(subject) or lexicon.EVENT_WHEN.search(text, 0, own_end)
        if when:
            s.invitation = f"an invitation with a date ('{' '.join(when.group(0).split())}')"
    if not s.machine and "automated" in found:
        s.machine = "says it was sent automatically"
    if lexicon.GTUBE in text:
        s.spam_flag = "the GTUBE spam test string"
    s.scanned = text
    s.links = text.count("http://", 0, own_end) + text.count("https://", 0, own_end)
    _shape(mail, s, subject, text, own_end)
    _sender_cues(mail, ctx, s, text[:own_end])


def _shape(mail: Mail, s: Signals, subject: str, text: str, own_end: int) -> None:
    """How the message is put together: a list digest, whom its text and subject name,
    whether it has anything to read."""
    # str.find first: a regex over the text's start cost more than the rest of this.
    if ("digest" in subject and lexicon.LIST_DIGEST.search(subject)) or text.find(
        lexicon.LIST_DIGEST_TOPICS, 0, 400
    ) >= 0:
        if "announce" in subject:
            s.announce_list = True  # a digest of announcements is a publication
        else:
            s.digest = "a digest of a list's posts"
    recipient = mail.to[0].partition("@")[0].lower() if mail.to else ""
    # A whole word only: "you@..." is not named by "Your order".
    s.names_recipient = len(recipient) >= 4 and _names(subject, recipient)
    # At the top, where a merge greets its target; footers name the address legitimately.
    s.address_in_text = _address_in(mail.to[:3], text[: min(own_end, _GREETING_SCAN)])
    s.empty_subject = not subject.strip()
    s.no_text = not text.strip() and not mail.attachments
    s.self_addressed = bool(mail.from_addr) and mail.to == (mail.from_addr,)


def _names(text: str, word: str) -> bool:
    """Does ``text`` hold ``word`` as a whole word (not inside a longer one)?"""
    at = text.find(word)
    while at >= 0:
        end = at + len(word)
        if (at == 0 or not text[at - 1].isalnum()) and (
            end == len(text) or not text[end].isalnum()
        ):
            return True
        at = text.find(word, at + 1)
    return False


# Word lists that count only in the writer's own words, only in the body, only at its top.
_OWN_WORDS = frozenset({"action", "invitation"})
_BODY_WORDS = frozenset({"footer", "receipt_text", "automated", "notice"})
_NOTICE_SCAN = 300
_GREETING_SCAN = 400
_OBFUSCATION_SCAN = 1000


def _scan(subject: str, text: str, own_end: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Every phrase of the word lists in the subject and the text (one pass), by list, and
    how many of each list the subject holds (plain dicts and local names: this loop is a
    tenth of a triage)."""
    both = subject + "\n" + text
    base = len(subject) + 1
    own_limit = base + own_end
    notice_limit = base + _NOTICE_SCAN
    found: dict[str, list[str]] = {}
    in_subject: dict[str, int] = {}
    kinds = lexicon.kinds
    own_words, body_words = _OWN_WORDS, _BODY_WORDS
    matches = lexicon.SCAN.finditer(both)
    if "$" in both or "%" in both:
        matches = itertools.chain(matches, lexicon.SCAN_AMOUNTS.finditer(both))
    for match in matches:
        at = match.start()
        phrase, lists = kinds(match.group(0))
        for kind in lists:
            if kind in own_words and (at >= own_limit or _quoted_line(both, at)):
                continue
            if kind in body_words and (at < base or (kind == "notice" and at >= notice_limit)):
                continue
            if kind in found:
                found[kind].append(phrase)
            else:
                found[kind] = [phrase]
            if at < base:
                in_subject[kind] = in_subject.get(kind, 0) + 1
    return found, in_subject


def _quoted_line(text: str, at: int) -> bool:
    return text.startswith(">", text.rfind("\n", 0, at) + 1)


def _own_end(text: str) -> int:
    """Where the writer's own words end in lower-cased ``text``: the first line of a quoted
    or forwarded message (found with str.find, several times cheaper than a regex here)."""
    end = len(text)
    for marker in _QUOTE_MARKERS:
        at = text.find(marker, 0, end)
        if at >= 0:
            end = text.rfind("\n", 0, at) + 1 if marker == " wrote:" else at
    return end


def _address_in(recipients: tuple[str, ...], mine: str) -> bool:
    """Does the writer's text name a recipient's address, or a local part no one would
    write as a word ("vladi.pimenov"), as mail merged for a harvested list does?"""
    for address in recipients:
        if address in mine:
            return True
        local = address.partition("@")[0]
        if len(local) >= 5 and not local.isalpha() and local in mine:
            return True
    return False


def _sender_cues(mail: Mail, ctx: Context, s: Signals, mine: str) -> None:
    subject = mail.subject
    s.spam_subject = bool(lexicon.SPAM_SUBJECT.search(subject)) or (
        len(subject) > 8 and subject.upper() == subject and any(c.isalpha() for c in subject)
    )
    if lexicon.SPAM_TAG.search(subject):
        s.spam_flag = s.spam_flag or "subject tagged as spam"
    s.freemail = bool(s.from_domain and lexicon.FREEMAIL.search(s.from_domain))
    # On a list only a poster without a name counts: people post from odd addresses too.
    # Words with four consonants in a row ("subscriptions") are no random string.
    s.random_sender = bool(lexicon.RANDOM_LOCAL.match(s.from_local)) and not (
        (s.list_reason and mail.from_name) or s.bulk_sender or s.machine
    )
    reply_to = mail.header("reply-to") or ""
    if reply_to and s.from_domain and "@" in reply_to:
        s.reply_to_elsewhere = s.from_domain not in reply_to.lower()
    _disguise(mail, s)
    if ctx.name:
        first = ctx.name.split()[0].lower() if ctx.name.split() else ""
        greeting = _GREETING.match(mine)
        s.owner_named = bool(first) and greeting is not None and greeting.group(1).lower() == first


def _disguise(mail: Mail, s: Signals) -> None:
    """How a sender poses as someone else: a brand's name over another domain, letters of
    mixed scripts, an address no server answers for, a throwaway host."""
    addr = mail.from_addr or ""
    brand = s.brand
    # "Kurier DPD (via Poczta Allegro)": a relay says whom it sends for.
    if brand is not None and not _names((mail.from_name or "").lower(), "via"):
        # The brand's own domain in From, or in Reply-To (a relay answering to the brand).
        domains = (s.from_domain + " " + (mail.header("reply-to") or "")).lower().replace("-", "")
        if not any(alias.replace("-", "") in domains for alias in lexicon.BRANDS[brand]):
            s.impersonates = brand
    s.mixed_script = _mixed_script(mail.subject) or _mixed_script(mail.from_name or "")
    if addr and not s.human_name:
        domain = s.from_domain
        s.bad_sender = not domain or ("." not in domain and domain not in _LOCAL_HOSTS)
    host = s.from_domain.lower()
    s.abused_host = host.rpartition(".")[2] in lexicon.ABUSED_TLDS or host.endswith(
        lexicon.ABUSED_HOSTS
    )
    subject = mail.subject.lower()
    s.address_in_subject = any(a in subject for a in mail.to[:3] if "@" in a)


_LOCAL_HOSTS = frozenset({"localhost", "localdomain", "local"})
# Marks that render as nothing or as a dot over a letter, inserted to split words for filters.
_HIDDEN_MARKS = frozenset({0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x034F})


def _mixed_script(text: str) -> bool:
    """Does a word of ``text`` mix Latin letters with Greek or Cyrillic ones, or carry
    invisible marks or a combining mark on most of its letters, or use mathematical
    letters (bold "Win" from U+1D400)? A word is a run of letters: "Отчёт-v2" is two."""
    if text.isascii():
        return False
    latin = foreign = False
    marks = 0
    for ch in text:
        kind = _script(ch)
        if kind == _MATH or (latin and kind == _HIDDEN):
            return True
        if kind == _MARK:
            marks += 1  # NFD text has one or two a word, a disguise one a letter
            if latin and marks >= 3:
                return True
        elif kind in (_LATIN, _FOREIGN):
            latin = latin or kind == _LATIN
            foreign = foreign or kind == _FOREIGN
            if latin and foreign:
                return True
        elif kind == _BREAK:
            latin = foreign = False
            marks = 0
    return False


_LATIN, _FOREIGN, _MARK, _HIDDEN, _MATH, _OTHER, _BREAK = range(7)


def _script(ch: str) -> int:
    code = ord(ch)
    if 0x300 <= code <= 0x36F:
        return _MARK
    if 0x700 <= code <= 0x74F or code in _HIDDEN_MARKS:  # Syriac marks as over-dots
        return _HIDDEN
    if 0x1D400 <= code <= 0x1D7FF:
        return _MATH
    if not ch.isalpha():
        return _BREAK
    if code < 0x250:  # Latin, accented letters included
        return _LATIN
    return _FOREIGN if 0x370 <= code <= 0x52F else _OTHER
