"""A category for one message from what is known of its sender and what its headers, parts
and text say; deterministic and offline.

Tiers, in order: the sender's history (people the user wrote to, threads the user replied
to), then header signals (spam flags, calendar parts, automated and bulk senders, lists),
then content cues (receipts, requests, offers). A person writing to the user is ``direct``
and never gets a bulk category; where the evidence is thin the confidence says so (below
:data:`UNSURE`) instead of guessing toward bulk.
"""

from __future__ import annotations

from inboxd.triage import lexicon
from inboxd.triage.signals import Signals, read_signals
from inboxd.triage.types import Context, Decision, Mail
from inboxd.vocabulary import BULK_CATEGORIES, Category, TriageSource

__all__ = ["UNSURE", "classify", "is_direct"]

#: Below this confidence a decision is a guess: the model (and the refiner) may redo it.
UNSURE = 0.6

# More recipients than this and mail without a known owner is not "to you" but to a group.
_FEW_RECIPIENTS = 4
# Distinct spam cues (words, forged-looking headers) that make unsolicited mail spam.
_SPAM_CUES = 2.5


def classify(mail: Mail, ctx: Context) -> Decision:
    """The category of ``mail`` for the user described by ``ctx``, with its reasons."""
    s = read_signals(mail, ctx)
    decision = _decide(mail, s)
    if decision.direct and decision.category in BULK_CATEGORIES:
        # Unreachable by construction; kept so no future signal can break the promise.
        return Decision(
            Category.PERSONAL,
            min(decision.confidence, UNSURE - 0.1),
            (*decision.reasons, "a person wrote to you: never filed as bulk"),
            decision.source,
            True,
        )
    return decision


def is_direct(s: Signals) -> bool:
    """Did a person write this to the user (rather than a program, a list or a crowd)?"""
    if _automated(s) or _bulky(s) or s.spam_flag or s.junk or s.social:
        return False
    if s.owner_known:
        return s.to_owner
    if s.list_reason or s.precedence:
        return False
    return 0 < s.recipients <= _FEW_RECIPIENTS and not s.undisclosed


def _automated(s: Signals) -> bool:
    # A notice word in the subject or text ("Reminder: lunch") does not make a named
    # person's mail a program's; a notification system's headers or domain do.
    notice = s.notifier_strong or (s.notifier is not None and not s.human_name)
    return bool(s.auto or s.null_return or s.machine or notice or s.bounce)


def _sent_by_program(s: Signals) -> bool:
    """Headers only programs set (weaker cues such as the address's wording left out)."""
    return bool(
        s.auto or s.null_return or s.bounce or s.bulk or s.notifier_strong or s.announce_list
    )


def _bulky(s: Signals) -> bool:
    if s.bulk:
        return True
    if s.list_reason:
        # Discussion lists add List-Unsubscribe and Precedence too: those say "list" there.
        return s.announce_list or bool(s.bulk_sender and (s.html_only or s.footer or s.promo))
    # A sender's address alone ("hello@", "team@") is no proof: people use them too.
    backed = s.bulk_sender_strong or bool(
        s.bulk_sender and (s.html_only or s.promo or s.footer or s.named_undisclosed)
    )
    # An issue of a publication from a sender without a person's name ("in this issue").
    backed = backed or (_editorial(s) and not (s.human_name or s.reply or s.forward))
    return bool(s.unsubscribe or s.precedence in ("bulk", "junk") or backed or s.subscribed)


def _decide(mail: Mail, s: Signals) -> Decision:
    """The tiers, first match wins."""
    if s.spam_flag or s.junk:
        reason = s.spam_flag or "in the Junk folder"
        return _d(Category.SPAM, 0.95, [f"marked as spam ({reason})"])
    direct = is_direct(s)
    # A social network writes on people's behalf ("Ann via LinkedIn"): never a person.
    person = not _automated(s) and not _bulky(s) and not s.social
    if not person and s.list_reason and s.human_name and not _sent_by_program(s):
        person = True  # a person's post through a list, whatever words or address it has
    memory = _from_memory(s, direct, person)
    if memory is not None:
        return memory
    if s.calendar is not None:
        return _calendar(s, direct)
    if s.invitation and person:
        return _d(Category.CALENDAR, 0.65, [s.invitation], direct)
    if s.digest and not s.announce_list:
        # A list manager's compilation of people's posts is the discussion, not a publication.
        return _d(Category.FORUM, 0.75, [s.digest, *([s.list_reason] if s.list_reason else [])])
    spam = _spam(mail, s, direct)
    if spam is not None:
        return spam
    if person:
        return _person(s, direct)
    return _machine(s)


def _d(
    category: Category,
    confidence: float,
    reasons: list[str],
    direct: bool = False,
    source: TriageSource = TriageSource.HEADERS,
) -> Decision:
    return Decision(category, round(min(confidence, 0.99), 2), tuple(reasons), source, direct)


def _from_memory(s: Signals, direct: bool, person: bool) -> Decision | None:
    """Sender memory: someone the user writes to, or a thread the user took part in."""
    if not person or not (s.wrote_to or s.replied):
        return None
    reasons = []
    if s.wrote_to:
        if direct:
            reasons.append("sent directly to you by someone you wrote to")
        else:
            reasons.append(f"from someone you wrote to ({s.wrote_to} messages)")
    if s.replied:
        reasons.append("you replied to this thread")
    if s.calendar is not None:
        return _calendar(s, direct, reasons, TriageSource.SENDER)
    if s.list_reason and not s.to_owner:
        return _d(Category.FORUM, 0.8, [*reasons, s.list_reason], False, TriageSource.SENDER)
    if s.action:
        return _d(Category.ACTION_REQUIRED, 0.8, [*reasons, s.action], direct, TriageSource.SENDER)
    return _d(Category.PERSONAL, 0.9, reasons, direct, TriageSource.SENDER)


def _calendar(
    s: Signals,
    direct: bool,
    reasons: list[str] | None = None,
    source: TriageSource = TriageSource.HEADERS,
) -> Decision:
    method = s.calendar or "EVENT"
    words = {
        "REQUEST": "calendar invitation (METHOD:REQUEST)",
        "CANCEL": "calendar cancellation (METHOD:CANCEL)",
        "REPLY": "answer to an invitation (METHOD:REPLY)",
        "COUNTER": "counter-proposal to an invitation (METHOD:COUNTER)",
        "PUBLISH": "calendar event attached (METHOD:PUBLISH)",
    }
    reason = words.get(method, "calendar event attached")
    return _d(Category.CALENDAR, 0.9, [*(reasons or []), reason], direct, source)


def _spam_cues(s: Signals) -> tuple[float, list[str]]:
    """How much ``s`` looks like spam (a weighted count of its cues) and the cues."""
    score = 0.0
    cues: list[str] = []
    advert = bool(
        s.list_reason
        and s.bulk_sender
        and len(s.promo) >= 2
        and not (s.announce_list or s.reply or s.bulk)
    )
    if s.spam or s.spam_weak:
        score += min(len(s.spam), 5) + min(len(s.spam_weak), 4) / 2
        cues.append(_words("spam words", s.spam + s.spam_weak))
    for weight, present, cue in (
        (1.5, s.spam_subject, "shouting subject"),
        (1.0, s.undisclosed, "no recipients shown"),
        (1.0, s.reply_to_elsewhere, "Reply-To at another domain"),
        (
            1.0,
            s.freemail and bool(s.promo or s.spam or s.spam_weak),
            "a pitch from a free-mail address",
        ),
        (1.0, s.html_only and not s.unsubscribe, "HTML only"),
        (1.0, s.random_sender, "a random-looking sender"),
        (1.5, s.fake_reply and not s.quoted, "'Re:' without a thread"),
        (1.0 * s.spam_in_subject, s.spam_in_subject > 0, "spam words in the subject"),
        (1.5, s.precedence == "junk" and not s.list_reason, "Precedence: junk"),
        (2.0, s.spam_mailer is not None, "sent with a mass-mailing program"),
        (
            1.0 + 0.5 * s.address_in_subject,
            s.names_recipient and not s.list_reason,
            "the subject names your address",
        ),
        (2.0, s.impersonates is not None, f"a sender named {s.impersonates} at another domain"),
        (3.5, s.mixed_script, "letters of mixed scripts in the subject or sender"),
        (1.5, s.bad_sender, "a sender address without a domain"),
        (1.0, s.abused_host, "sent from a throwaway host"),
        (1.0, s.dynamic_relay and not s.list_reason, "sent from a home connection"),
        (1.0, s.links >= 3 and not s.list_reason, "mostly links"),
        (
            1.0,
            s.owner_known and not s.to_owner and not s.list_reason and not s.undisclosed,
            "not addressed to you",
        ),
        (1.0, len(s.promo) >= 2 and not (s.unsubscribe or s.esp), "offers without unsubscribe"),
        (1.0, s.address_in_text and not s.reply, "your address in the text"),
        (0.5, s.empty_subject, "no subject"),
        (1.0, s.no_text and not (s.reply or s.fake_reply or s.machine), "nothing to read"),
        (1.5, s.self_addressed and s.reply_to_elsewhere, "sent to itself, answers go elsewhere"),
        (1.5, s.harvested, "sent to role addresses of several sites"),
        (1.0, s.encoded_html, "HTML sent base64-encoded"),
        (2.0, s.forged and not s.list_reason, "the sender's domain failed DMARC"),
        (1.5, advert, "a business's offer posted to a discussion list"),
    ):
        if present:
            score += weight
            cues.append(cue)
    # What legitimate mail has and spam lacks; a sender in disguise (another's brand,
    # mixed scripts, no domain) has none of it, whatever service or list carried it.
    if not (s.impersonates is not None or s.mixed_script or s.bad_sender):
        score -= _alibis(s, advert)
    # Counting disguised words costs more than all the rest: only when it could decide.
    if _SPAM_CUES - 2 <= score < _SPAM_CUES and s.disguised():
        score += 2
        cues.append("disguised words")
    return score, cues


def _alibis(s: Signals, advert: bool) -> float:
    """How much the way the message came and what it says are legitimate mail's."""
    found = 0.0
    if s.list_reason and not (s.bulk or advert) and len(s.spam) < 4:
        # Discussion lists talk about spam too; people seldom post HTML alone to them.
        found += 3 if s.human_name and not s.html_only else 1.5
    if s.esp or s.one_click or (s.unsubscribe and not s.list_reason):
        found += 1.5  # a list's own List-Unsubscribe says nothing of the poster
    elif s.mailer or (s.bulk_sender and s.subscribed):
        found += 1  # a mailing tool or sender of subscribed mail
    return found + _written_cues(s)


def _written_cues(s: Signals) -> float:
    """How much what the message says is what legitimate mail says."""
    found = 0.0
    if s.reply or s.quoted:
        found += 1
    if ((s.human_name and s.to_owner) or s.owner_named) and not (
        s.spam or s.address_in_text or s.no_text
    ):
        found += 1  # a named person writing to you (with something to say, not to your address)
    if _editorial(s) and not s.spam:
        found += 2  # an issue of a publication: spam imitates offers, seldom an editor
    elif len(s.news) >= 2 and not s.spam:
        found += 1  # editorial words: a publication
    if s.receipt and not s.spam:
        found += 1  # an order or an invoice: amounts in the subject are what receipts show
    return found


def _spam(mail: Mail, s: Signals, direct: bool) -> Decision | None:
    """Unsolicited bulk mail: enough spam cues and little of what legitimate mail has."""
    # A notice word in the subject or text is no alibi (stock spam opens "Investor Alert");
    # a notification system's headers or domain are.
    if s.wrote_to or s.replied or s.notifier_strong or s.bounce:
        return None
    score, cues = _spam_cues(s)
    if score < _SPAM_CUES:
        return None
    confidence = min(0.6 + 0.05 * (score - _SPAM_CUES), 0.9)
    return _d(Category.SPAM, confidence, ["looks like unsolicited bulk mail: " + "; ".join(cues)])


def _person(s: Signals, direct: bool) -> Decision:
    """Mail a person wrote: to the user, or to a list the user reads."""
    if s.list_reason:
        return _list_post(s, s.list_reason, direct)
    reasons = []
    if direct:
        reasons.append("addressed to you" if s.to_owner else "a person wrote to few recipients")
    if s.owner_named:
        reasons.append("greets you by name")
    if s.receipt and s.receipt[0].startswith("receipt words in the subject"):
        return _d(Category.RECEIPT, 0.6, [*reasons, s.receipt[0]], direct)
    if s.receipt and "attached" in s.receipt[0]:
        return _d(Category.RECEIPT, 0.55, [*reasons, s.receipt[0]], direct)
    if s.action:
        return _d(Category.ACTION_REQUIRED, 0.7, [*reasons, s.action], direct)
    if s.precedence == "list":
        return _d(Category.FORUM, 0.5, ["Precedence: list", "a person's post"])
    if not direct:
        if _editorial(s) and not (s.reply or s.quoted or s.forward):
            # Not to you, not a reply, an editor's words: an issue sent to subscribers.
            return _d(Category.NEWSLETTER, 0.5, [_words("newsletter words", s.news)])
        return _d(Category.PERSONAL, 0.5, ["a person's message", f"{s.recipients} recipients"])
    confidence = 0.85 if s.human_name or s.reply or s.owner_named else 0.7
    if s.news or s.promo:
        confidence -= 0.15
    if s.notifier:
        confidence -= 0.2  # reads like a notice ("Automatic reply"), from a named person
        reasons.append(f"though: {s.notifier}")
    return _d(Category.PERSONAL, confidence, reasons or ["a person's message"], direct)


def _list_post(s: Signals, list_reason: str, direct: bool) -> Decision:
    """A person's post to a list: the discussion, or an editor's issue of a publication."""
    if _numbered_issue(s) and not (direct or s.reply or s.quoted):
        reasons = [list_reason, _words("a numbered issue", s.news)]
        return _d(Category.NEWSLETTER, 0.6, reasons)
    reasons = [list_reason, "a person's post"]
    if s.reply:
        reasons.append("a reply in a discussion")
    return _d(Category.FORUM, 0.85 if s.reply else 0.75, reasons)


def _numbered_issue(s: Signals) -> bool:
    """Newsletter words, one of them an issue or volume number ("issue 303", "vol. 2")."""
    return len(s.news) >= 3 and any(
        w.startswith(("issue", "vol")) and any(c.isdigit() for c in w) for w in s.news
    )


def _editorial(s: Signals) -> bool:
    """An issue of a publication: a numbered issue with other newsletter words, a table of
    contents ("in this issue"), or newsletter words in the subject and the text."""
    if len(s.news) < 2:
        return False
    numbered = any(w.startswith(("issue", "vol")) and any(c.isdigit() for c in w) for w in s.news)
    return numbered or "in this issue" in s.news or (s.news_in_subject > 0 and len(s.news) >= 3)


def _machine_reasons(s: Signals) -> list[str]:
    reasons = [
        r for r in (s.auto, s.machine, s.notifier, s.esp, s.mailer, s.social, s.bulk_sender) if r
    ]
    if s.null_return:
        reasons.append("Return-Path <> (no bounces wanted)")
    if s.bounce:
        reasons.append("a delivery report")
    if s.one_click:
        reasons.append("one-click unsubscribe (List-Unsubscribe-Post)")
    elif s.unsubscribe:
        reasons.append("List-Unsubscribe present")
    if s.precedence:
        reasons.append(f"Precedence: {s.precedence}")
    if s.list_reason:
        reasons.append(s.list_reason)
    return reasons


def _machine(s: Signals) -> Decision:
    """Mail a program sent: notifications, newsletters, offers, receipts."""
    reasons = _machine_reasons(s)
    if s.bounce or s.auto:
        return _d(Category.NOTIFICATION, 0.9, reasons)
    if s.receipt:
        return _d(Category.RECEIPT, 0.85, [*reasons, *s.receipt[:1]])
    if s.social:
        return _d(Category.SOCIAL, 0.85, reasons)
    if s.action_strong and not (s.promo or len(s.footer) >= 2):
        return _d(Category.ACTION_REQUIRED, 0.65, [*reasons, s.action_strong])
    # What the subject says weighs double: it is what the sender chose to lead with.
    promo = _offer_weight(s.promo) + s.promo_in_subject
    news = len(s.news) + s.news_in_subject + (2 if s.announce_list else 0)
    # A notice word in the text ("alert") does not outweigh an issue's table of contents.
    # Nor does an alerts@ address's wording ("EFFector Vol. 15") outweigh a numbered issue.
    worded = s.notice_in_text or s.notifier_by_address
    editorial = news >= 2 and worded and not s.null_return
    if (s.notifier or s.null_return) and not editorial:
        sent_in_bulk = s.esp or s.unsubscribe or s.mailer or s.subscribed or s.precedence
        if len(s.promo) >= 2 and promo > news and sent_in_bulk and not s.notifier_strong:
            return _d(Category.PROMOTION, 0.6, [*reasons, _words("offer words", s.promo)])
        return _d(Category.NOTIFICATION, 0.85 if s.notifier else 0.7, reasons)
    sent_to_many = _bulky(s)
    # A noreply@ or webmaster@ address sends issues of a publication too.
    marketing = sent_to_many and (len(s.promo) >= 2 or s.announce_list)
    publication = _editorial(s) and not s.null_return
    if s.machine and not (marketing or publication):
        return _d(Category.NOTIFICATION, 0.7, reasons)
    if s.footer and not (s.unsubscribe or s.esp):
        reasons.append(_words("subscriber footer", s.footer))
    # Prices and "buy" alone are a review's or a sponsor block's: an offer says sale, off,
    # coupon, save, free shipping somewhere.
    if promo > news and (s.promo_in_subject or _offer_weight(s.promo) > len(s.promo) / 2):
        confidence = 0.8 if promo - news >= 2 else 0.6
        return _d(Category.PROMOTION, confidence, [*reasons, _words("offer words", s.promo)])
    confidence = 0.8 if news > promo else 0.55
    if s.news:
        reasons.append(_words("newsletter words", s.news))
    return _d(Category.NEWSLETTER, confidence, reasons)


def _offer_weight(found: list[str]) -> float:
    """Offer words, those of commerce in general (a price, "buy", "products") for half."""
    return sum(
        0.5 if w in lexicon.PROMOTION_WEAK or w.startswith(("$", "shop")) else 1.0 for w in found
    )


def _words(what: str, found: list[str]) -> str:
    return f"{what} ({', '.join(repr(w) for w in found[:3])})"
