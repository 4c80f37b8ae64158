"""A category for one message from what is known of its sender and what its headers, parts
and text say; deterministic and offline.

Tiers, in order: the sender's history (people the user wrote to, threads the user replied
to), then header signals (spam flags, calendar parts, automated and bulk senders, lists),
then content cues (receipts, requests, offers). A person writing to the user is ``direct``
and never gets a bulk category; where the evidence is thin the confidence says so (below
:data:`UNSURE`) instead of guessing toward bulk.
"""

from __future__ import annotations

from inboxd.triage.signals import Signals, read_signals
from inboxd.triage.types import Context, Decision, Mail
from inboxd.vocabulary import BULK_CATEGORIES, Category, TriageSource

__all__ = ["UNSURE", "classify", "is_direct"]

#: Below this confidence a decision is a guess: the model (and the refiner) may redo it.
UNSURE = 0.6

# More recipients than this and mail without a known owner is not "to you" but to a group.
_FEW_RECIPIENTS = 4
# Distinct spam cues (words, forged-looking headers) that make unsolicited mail spam.
_SPAM_CUES = 4


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
    return bool(s.auto or s.null_return or s.machine or s.notifier or s.bounce)


def _bulky(s: Signals) -> bool:
    if s.bulk:
        return True
    if s.list_reason:
        # Discussion lists add List-Unsubscribe and Precedence too: those say "list" there.
        return s.announce_list or bool(s.bulk_sender)
    return bool(s.unsubscribe or s.precedence in ("bulk", "junk") or s.bulk_sender)


def _decide(mail: Mail, s: Signals) -> Decision:
    """The tiers, first match wins."""
    if s.spam_flag or s.junk:
        reason = s.spam_flag or "in the Junk folder"
        return _d(Category.SPAM, 0.95, [f"marked as spam ({reason})"])
    direct = is_direct(s)
    person = not _automated(s) and not _bulky(s)
    memory = _from_memory(s, direct, person)
    if memory is not None:
        return memory
    if s.calendar is not None:
        return _calendar(s, direct)
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


def _spam_cues(mail: Mail, s: Signals) -> list[str]:
    cues = [f"'{word}'" for word in s.spam[:6]]
    if s.spam_subject:
        cues.append("shouting subject")
    if s.undisclosed:
        cues.append("no recipients shown")
    if s.reply_to_elsewhere:
        cues.append("Reply-To at another domain")
    if s.freemail and (s.promo or len(s.spam) >= 2):
        cues.append("sales pitch from a free-mail address")
    if s.html_only and not s.unsubscribe:
        cues.append("HTML only")
    return cues


def _spam(mail: Mail, s: Signals, direct: bool) -> Decision | None:
    """Unsolicited bulk mail: many spam cues and none of what legitimate bulk mail has."""
    if s.wrote_to or s.replied or s.notifier or s.bounce:
        return None
    cues = _spam_cues(mail, s)
    needed = _SPAM_CUES
    if s.list_reason and not s.bulk:
        needed += 3  # discussion lists talk about spam too
    if s.esp or s.one_click:
        needed += 2  # a bulk-mail service vouches somewhat for its sender
    if s.reply or s.quoted:
        needed += 1
    if len(cues) < needed:
        return None
    confidence = 0.6 + 0.05 * (len(cues) - needed)
    return _d(Category.SPAM, confidence, ["looks like unsolicited bulk mail: " + ", ".join(cues)])


def _person(s: Signals, direct: bool) -> Decision:
    """Mail a person wrote: to the user, or to a list the user reads."""
    if s.list_reason and not s.to_owner:
        reasons = [s.list_reason, "a person's post"]
        if s.reply:
            reasons.append("a reply in a discussion")
        return _d(Category.FORUM, 0.85 if s.reply else 0.75, reasons)
    reasons = []
    if direct:
        reasons.append("addressed to you" if s.to_owner else "a person wrote to few recipients")
    if s.receipt and s.receipt[0].startswith("receipt words in the subject"):
        return _d(Category.RECEIPT, 0.6, [*reasons, s.receipt[0]], direct)
    if s.receipt and "attached" in s.receipt[0]:
        return _d(Category.RECEIPT, 0.55, [*reasons, s.receipt[0]], direct)
    if s.action:
        return _d(Category.ACTION_REQUIRED, 0.7, [*reasons, s.action], direct)
    if s.precedence == "list" or (s.owner_known and not s.to_owner and s.recipients > 0):
        # Not to the user, no list headers: a list that strips them, or a Bcc.
        return _d(Category.FORUM, 0.45, ["not addressed to you", "no bulk or machine signals"])
    if not direct:
        return _d(Category.PERSONAL, 0.5, ["a person's message", f"{s.recipients} recipients"])
    confidence = 0.85 if s.human_name or s.reply else 0.7
    if s.news or s.promo:
        confidence -= 0.15
    return _d(Category.PERSONAL, confidence, reasons or ["a person's message"], direct)


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
    if s.action and (s.notifier or s.machine) and "review" in s.action:
        return _d(Category.ACTION_REQUIRED, 0.65, [*reasons, s.action])
    if s.notifier or s.machine or s.null_return:
        if len(s.promo) >= 2 and (s.esp or s.unsubscribe):
            return _d(Category.PROMOTION, 0.6, [*reasons, _words("offer words", s.promo)])
        return _d(Category.NOTIFICATION, 0.85 if s.notifier else 0.7, reasons)
    if len(s.promo) >= 2 or (s.promo and not s.news):
        confidence = 0.8 if len(s.promo) >= 2 else 0.6
        return _d(Category.PROMOTION, confidence, [*reasons, _words("offer words", s.promo)])
    confidence = 0.8 if s.news else 0.65
    if s.news:
        reasons.append(_words("newsletter words", s.news))
    return _d(Category.NEWSLETTER, confidence, reasons)


def _words(what: str, found: list[str]) -> str:
    return f"{what} ({', '.join(repr(w) for w in found[:3])})"
