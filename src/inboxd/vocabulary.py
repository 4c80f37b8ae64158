"""The one vocabulary: job statuses, event types, steps, account states and live states.

Every layer (the queue, tasks, the API, the dashboard via ``GET /api/vocabulary``) takes its
names from here. This module imports nothing from inboxd, so anything may import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class JobStatus(StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"  #: waiting for a worker (possibly until run_at)
    RUNNING = "running"  #: claimed by a worker that holds its lease
    COMPLETED = "completed"  #: finished successfully; result set
    FAILED = "failed"  #: permanent error or out of attempts; error set
    CANCELLED = "cancelled"  #: cancelled by a person
    AWAITING_APPROVAL = "awaiting_approval"  #: waits for a person's yes before it may run

    @property
    def finished(self) -> bool:
        """True for the three end states."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class EventType(StrEnum):
    """Kinds of job events."""

    STATUS = "status"
    PROGRESS = "progress"
    LOG = "log"
    ERROR = "error"


class Step(StrEnum):
    """Step names a task reports through ``progress.step``."""

    CONNECTING = "connecting"
    LISTING_FOLDERS = "listing folders"
    FETCHING = "fetching"
    STORING = "storing"
    CATEGORIZING = "categorizing"
    LABELING = "labeling"
    PRUNING = "pruning"
    SELFTEST = "selftest"
    REPAIRING = "repairing"
    INDEXING = "indexing"
    EXPORTING = "exporting"
    TRAINING = "training"
    DISCOVERING = "finding candidates"  #: a clean-up's read-only discovery
    APPLYING = "applying changes"  #: a journaled change written to the server
    UNDOING = "undoing"  #: a journal replayed in reverse
    DELIVERING = "delivering"  #: a webhook delivery POSTed to its receiver
    SIGNING_IN = "signing in"  #: waiting for a person to approve an OAuth sign-in


class Category(StrEnum):
    """What triage files a message as (inboxd.triage); one per message."""

    PERSONAL = "personal"  #: a person writing to the user
    ACTION_REQUIRED = "action_required"  #: someone asks the user to do something
    FORUM = "forum"  #: human discussion on a mailing list
    NEWSLETTER = "newsletter"
    PROMOTION = "promotion"
    NOTIFICATION = "notification"  #: machine-sent: CI, alerts, service notices
    RECEIPT = "receipt"  #: orders, invoices, bookings
    CALENDAR = "calendar"  #: invitations and updates
    SOCIAL = "social"  #: social networks
    SPAM = "spam"


#: Categories a message a person sent directly to the user must never get: they are what
#: clean-ups act on.
BULK_CATEGORIES: frozenset[Category] = frozenset(
    {Category.NEWSLETTER, Category.PROMOTION, Category.NOTIFICATION}
)


class TriageSource(StrEnum):
    """Which tier of triage decided a message's category."""

    CORRECTION = "correction"  #: the user set this message's category
    RULE = "rule"  #: one of the user's rules (a sender rule is a rule)
    SENDER = "sender"  #: the sender's history (people the user writes to)
    HEADERS = "headers"  #: header and content signals
    MODEL = "model"  #: the model trained on the user's own mail
    REFINER = "refiner"  #: the optional OpenAI-compatible refiner


class MarkAction(StrEnum):
    """What ``inboxd mark`` and the dashboard's buttons set on one message."""

    READ = "read"
    UNREAD = "unread"
    FLAGGED = "flagged"
    UNFLAGGED = "unflagged"


class CleanupAction(StrEnum):
    """What an approved clean-up does to each candidate (never a deletion)."""

    ARCHIVE = "archive"  #: move to the account's archive folder
    MARK_READ = "mark-read"
    LABEL = "label"  #: add the category's keyword / Gmail label
    UNSUBSCRIBE = "unsubscribe"  #: RFC 8058 one-click POST, per sender


class JournalState(StrEnum):
    """Where one message's journaled change stands."""

    PLANNED = "planned"  #: written before acting; the server may or may not have it yet
    DONE = "done"  #: the server and the store have the new state
    SKIPPED = "skipped"  #: not acted on, with the reason (gone, changed, protected)
    FAILED = "failed"  #: the server refused it, with the reason
    UNDONE = "undone"  #: an undo job put the previous state back


class ItemRole(StrEnum):
    """A message's place in a clean-up proposal."""

    CANDIDATE = "candidate"
    PROTECTED = "protected"


class AccountState(StrEnum):
    """An account's stored state: fine, or a person has to act (bad password, lost file)."""

    OK = "ok"
    NEEDS_ATTENTION = "needs_attention"
    NEEDS_SIGN_IN = "needs_sign_in"  #: its OAuth grant was revoked or expired


class ActivityState(StrEnum):
    """What an account is doing now, derived from its latest job (the dashboard's badge)."""

    IDLE = "idle"
    QUEUED = "queued"
    CONNECTING = "connecting"
    FETCHING = "fetching"
    PROCESSING = "processing"
    CATEGORIZING = "categorizing"
    LABELING = "labeling"
    AWAITING_APPROVAL = "awaiting_approval"  #: a clean-up waits for a person's yes
    COMPLETED = "completed"
    ERROR = "error"


#: The live state a running job's step means; any other step means PROCESSING.
STEP_ACTIVITY: Mapping[str, ActivityState] = MappingProxyType(
    {
        Step.CONNECTING: ActivityState.CONNECTING,
        Step.LISTING_FOLDERS: ActivityState.CONNECTING,
        Step.FETCHING: ActivityState.FETCHING,
        Step.STORING: ActivityState.FETCHING,
        Step.CATEGORIZING: ActivityState.CATEGORIZING,
        Step.LABELING: ActivityState.LABELING,
        Step.REPAIRING: ActivityState.PROCESSING,
        Step.INDEXING: ActivityState.PROCESSING,
        Step.EXPORTING: ActivityState.PROCESSING,
        Step.TRAINING: ActivityState.CATEGORIZING,
        Step.DISCOVERING: ActivityState.PROCESSING,
        Step.APPLYING: ActivityState.PROCESSING,
        Step.UNDOING: ActivityState.PROCESSING,
        Step.SIGNING_IN: ActivityState.CONNECTING,
    }
)

#: Live states of an account whose job is running.
RUNNING_ACTIVITY: frozenset[ActivityState] = frozenset(
    {
        ActivityState.CONNECTING,
        ActivityState.FETCHING,
        ActivityState.PROCESSING,
        ActivityState.CATEGORIZING,
        ActivityState.LABELING,
    }
)

#: Live states of an account with work queued or running.
ACTIVE_ACTIVITY: frozenset[ActivityState] = RUNNING_ACTIVITY | {ActivityState.QUEUED}


def _names(members: Iterable[StrEnum]) -> list[str]:
    return [str(member) for member in members]


def vocabulary() -> dict[str, Any]:
    """Every name above as JSON-ready lists, in declaration order (``GET /api/vocabulary``)."""
    return {
        "job_statuses": _names(JobStatus),
        "finished_job_statuses": _names(s for s in JobStatus if s.finished),
        "event_types": _names(EventType),
        "steps": _names(Step),
        "account_states": _names(AccountState),
        "activity_states": _names(ActivityState),
        "running_activity_states": _names(s for s in ActivityState if s in RUNNING_ACTIVITY),
        "active_activity_states": _names(s for s in ActivityState if s in ACTIVE_ACTIVITY),
        "step_activity": {str(step): str(state) for step, state in STEP_ACTIVITY.items()},
        "categories": _names(Category),
        "bulk_categories": _names(c for c in Category if c in BULK_CATEGORIES),
        "mark_actions": _names(MarkAction),
        "cleanup_actions": _names(CleanupAction),
        "journal_states": _names(JournalState),
    }
