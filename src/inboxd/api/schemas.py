"""Request and response bodies, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from inboxd.vocabulary import (
    AccountState,
    ActivityState,
    Category,
    CleanupAction,
    EventType,
    JobStatus,
    JournalState,
    MarkAction,
    Step,
)


class _In(BaseModel):
    # Strict: a JSON false is not the integer 0, nor "5" the number 5, as the schema says.
    model_config = ConfigDict(extra="forbid", strict=True)


def _integral(value: Any) -> Any:
    # JSON has one number type: 21.0 is the integer 21 to JSON Schema, so it is to us too.
    if type(value) is float and value.is_integer():
        return int(value)
    return value


#: An integer field of a request body (strict otherwise: no strings, no booleans).
JsonInt = Annotated[int, BeforeValidator(_integral)]
#: Seconds between periodic syncs (0: never).
SyncInterval = Annotated[int, Ge(0), Le(31_536_000), BeforeValidator(_integral)]


class Problem(BaseModel):
    """The error object."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer."""

    error: Problem


_ERROR_DESCRIPTIONS = {
    400: "The request is invalid (a body that is not JSON, settings that do not work, a "
    "value the database cannot store such as a NUL character).",
    401: "No key or session, or an invalid or revoked one.",
    403: "Not allowed: an admin-only action, or a cookie-authenticated write from a "
    "foreign origin.",
    404: "No such object (another user's objects answer the same).",
    409: "The object is not in a state that allows this.",
    422: "The request does not match the schema.",
    429: "Too many requests; see Retry-After.",
    503: "Not ready.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route may answer (all one shape).

    Listing 422 here also replaces FastAPI's default ``HTTPValidationError`` schema, which
    is not what the API sends (validation errors use the one error shape too)."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


class LoginIn(_In):
    """Log in to the dashboard with an API key."""

    key: str = Field(min_length=1, max_length=200)


class UserOut(BaseModel):
    """The caller."""

    id: str
    name: str
    is_admin: bool


class SecretIn(_In):
    """An IMAP password, an OAuth2 access token, or (for an account with ``settings.oauth``)
    an OAuth2 refresh token and client secret (write-only: never returned)."""

    password: str | None = Field(default=None, min_length=1, max_length=4096)
    token: str | None = Field(default=None, min_length=1, max_length=16384)
    refresh_token: str | None = Field(default=None, min_length=1, max_length=16384)
    client_secret: str | None = Field(default=None, min_length=1, max_length=4096)

    # One of them must be there, as a string (the server says which one it needs).
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("password", "token", "refresh_token")
            ]
        }
    )

    @model_validator(mode="after")
    def _something(self) -> SecretIn:
        if all(v is None for v in (self.password, self.token, self.refresh_token)):
            raise ValueError("give secret.password, .token or .refresh_token")
        return self


#: Connection settings whose values must have a given shape before they are stored (the
#: others are checked, or made strings, by the account registry).
_SETTING_KINDS: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "username": (str,),
    "security": (str,),
    "auth": (str,),
    "path": (str,),
    "port": (int, str),
    "verify_tls": (bool,),
    "ca_pem": (str,),
    "folders": (list,),
    "exclude": (list,),
    "oauth": (dict,),
    "client_id": (str,),
    "tenant": (str,),
    "page_size": (int,),
}


def _check_settings(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Reject settings of the wrong type (a number for ``folders`` would otherwise reach
    the registry and fail there as a server error; a string would become one folder per
    letter)."""
    if value is None:
        return value
    for key, kinds in _SETTING_KINDS.items():
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, kinds) or (kinds == (int, str) and isinstance(item, bool)):
            names = " or ".join("a list" if k is list else k.__name__ for k in kinds)
            raise ValueError(f"settings.{key} must be {names}")
        if isinstance(item, dict) and not all(isinstance(x, str) for x in item.values()):
            raise ValueError("settings.oauth values must be strings")
        if isinstance(item, list) and not all(isinstance(x, str) and x for x in item):
            raise ValueError(f"settings.{key} must be a list of folder names")
    return value


class _AccountCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    settings: dict[str, Any] = Field(
        description="imap: host, port, security (tls|starttls|none), username, auth "
        "(password|xoauth2), folders, oauth (provider google|microsoft or token_url, "
        "client_id, scope: access tokens renewed from secret.refresh_token); "
        "graph: client_id, tenant (default common); maildir/mbox: path"
    )
    addresses: list[str] = Field(default_factory=list, max_length=50)
    owner_name: str | None = Field(default=None, max_length=200)
    sync_interval_seconds: SyncInterval | None = None

    _settings = field_validator("settings")(_check_settings)


class ImapAccountCreate(_AccountCreate):
    """A new IMAP account (Gmail, Outlook, any server): it needs a secret to log in."""

    provider: Literal["imap"]
    secret: SecretIn


class LocalAccountCreate(_AccountCreate):
    """A new Maildir or mbox account: a path on the server's host (admins only)."""

    provider: Literal["maildir", "mbox"]
    secret: SecretIn | None = None


class GraphSecretIn(_In):
    """A Graph account's refresh token (scope Mail.ReadWrite offline_access; write-only)."""

    refresh_token: str = Field(min_length=1, max_length=16384)


class GraphAccountCreate(_AccountCreate):
    """A new Microsoft Graph account (Outlook.com, Microsoft 365): the app's client id in
    ``settings`` and a refresh token in ``secret``."""

    provider: Literal["graph"]
    secret: GraphSecretIn


#: A new mail account, its shape chosen by ``provider``.
AccountCreate = Annotated[
    ImapAccountCreate | GraphAccountCreate | LocalAccountCreate, Field(discriminator="provider")
]


class AccountUpdate(_In):
    """Changes to an account; absent fields stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    secret: SecretIn | None = None
    addresses: list[str] | None = Field(default=None, max_length=50)
    owner_name: str | None = Field(default=None, max_length=200)
    sync_interval_seconds: SyncInterval | None = None
    labels: bool | None = Field(
        default=None,
        description="write triage categories back (IMAP keywords, Gmail labels); "
        "not for mbox accounts",
    )

    _settings = field_validator("settings")(_check_settings)


class Progress(BaseModel):
    """How far a job is."""

    current: int
    total: int | None
    percent: float | None


class Activity(BaseModel):
    """An account's live state, from its latest job."""

    state: ActivityState
    job_id: str | None
    step: str | None
    progress: Progress | None
    message: str | None
    rate: float | None
    eta_seconds: float | None
    error: str | None


class AccountOut(BaseModel):
    """An account (never its secret)."""

    id: str
    name: str
    provider: str
    owner: str | None
    addresses: list[str]
    owner_name: str | None
    settings: dict[str, Any]
    enabled: bool
    sync_interval_seconds: int | None
    state: AccountState
    state_message: str | None
    last_sync_at: str | None
    last_sync_job_id: str | None
    created_at: str
    labels: bool = Field(description="triage categories are written back to the server")
    message_count: int
    activity: Activity


class FolderOut(BaseModel):
    """A folder of an account as stored locally (folders gone from the server left out)."""

    name: str
    messages: int = Field(description="messages shown in it now")


class ProbeOut(BaseModel):
    """The result of testing an account's connection."""

    ok: bool
    summary: str | None = None
    error: str | None = None
    folders: dict[str, int]


class Accepted(BaseModel):
    """A job was queued (or an equal one was already active)."""

    job_id: str
    status: str


class JobCreate(_In):
    """A job of a generic kind."""

    kind: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    account_id: str | None = Field(default=None, min_length=1, max_length=36)


class JobOut(BaseModel):
    """A job's snapshot."""

    id: str
    kind: str
    account_id: str | None
    status: JobStatus
    step: str | None
    progress: Progress
    message: str | None
    rate: float | None
    eta_seconds: float | None
    queue_position: int | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str | None
    result: Any
    params: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None


class RunOut(BaseModel):
    """One finished run, from the history."""

    id: int
    job_id: str
    kind: str
    account_id: str | None
    status: str
    attempts: int
    started_at: str | None
    finished_at: str
    duration_seconds: float | None
    result: Any
    error: str | None


class StatusItem(BaseModel):
    """A running or waiting job, seen from its account."""

    account_id: str | None
    account_name: str | None
    job_id: str
    kind: str
    status: JobStatus
    state: ActivityState
    step: str | None
    progress: Progress
    message: str | None
    rate: float | None
    eta_seconds: float | None
    started_at: str | None


class CurrentStatus(BaseModel):
    """The polling snapshot."""

    current_processing: list[StatusItem]
    recent_runs: list[RunOut]
    timestamp: str


class Health(BaseModel):
    """Liveness or readiness."""

    status: str


class Vocabulary(BaseModel):
    """Every name the API's answers and events use, so that clients need not copy them."""

    job_statuses: list[JobStatus]
    finished_job_statuses: list[JobStatus]
    event_types: list[EventType]
    steps: list[Step] = Field(description="the steps inboxd's own tasks report (others may exist)")
    account_states: list[AccountState]
    activity_states: list[ActivityState]
    running_activity_states: list[ActivityState]
    active_activity_states: list[ActivityState]
    step_activity: dict[str, ActivityState] = Field(
        description="the activity state a running job's step means; any other: processing"
    )
    categories: list[Category] = Field(description="what triage files a message as")
    bulk_categories: list[Category] = Field(
        description="categories mail a person sent directly to the user never gets"
    )
    mark_actions: list[MarkAction] = Field(description="what a message can be marked")
    cleanup_actions: list[CleanupAction] = Field(description="what an approved clean-up does")
    journal_states: list[JournalState] = Field(description="where a journaled change stands")


# -- reading mail -------------------------------------------------------------------------------


class Address(BaseModel):
    """A sender: display name and address, each as the header gave it (or null)."""

    name: str | None
    address: str | None


class MessageOut(BaseModel):
    """A message as lists show it."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    account_id: str
    message_id: str | None = Field(description="the Message-ID header, without <>")
    thread_id: int = Field(description="the thread; a message not threaded yet: its own id")
    subject: str | None
    from_: Address = Field(alias="from")
    to: list[str]
    cc: list[str]
    date: str | None = Field(description="the Date header (null when missing or unreadable)")
    sort_date: str | None = Field(description="the list order: the Date header, else arrival")
    folders: list[str] = Field(description="the folders the message is shown in now")
    flags: list[str]
    labels: list[str]
    size: int = Field(description="bytes of the stored message")
    snippet: str
    has_attachments: bool
    category: Category | None = Field(description="what triage filed it as; null while untriaged")
    priority: int | None = Field(ge=0, le=100, description="0-100; null while untriaged")
    confidence: float | None = Field(
        ge=0, le=1, description="how sure triage is, 0-1; null while untriaged"
    )
    reasons: list[str] = Field(description="why, in words; empty while untriaged")


class MessagePage(BaseModel):
    """A page of messages, newest first (or most important first)."""

    messages: list[MessageOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last")


class TopMessages(BaseModel):
    """The most important messages, most important first."""

    messages: list[MessageOut]


class CategoryCountsOut(BaseModel):
    """An account's messages per category."""

    account_id: str
    counts: dict[Category, int] = Field(description="every category, 0 included")
    untriaged: int = Field(description="messages not triaged yet")


class HeaderOut(BaseModel):
    """One header field, decoded."""

    name: str
    value: str


class AttachmentOut(BaseModel):
    """A file of a message: an attachment, or an image its HTML shows (``inline``)."""

    index: int = Field(description="its number in /attachments/{index}")
    filename: str | None
    content_type: str
    size: int = Field(description="decoded bytes")
    content_id: str | None
    inline: bool


class MessageDetail(MessageOut):
    """One message to read."""

    reply_to: list[str]
    in_reply_to: str | None
    references: list[str]
    list_id: str | None
    list_unsubscribe: str | None
    headers: list[HeaderOut]
    text: str | None = Field(description="the plain text (from the HTML when there is none)")
    html: str | None = Field(
        description="the HTML, sanitised, remote content removed; for a sandboxed frame "
        "only (prefer GET /api/messages/{id}/html)"
    )
    remote_content_blocked: bool = Field(
        description="remote images or styles were removed (GET …/html?remote=1 shows them)"
    )
    attachments: list[AttachmentOut]
    parse_notes: list[str] = Field(description="what was wrong with the message, if anything")


class ThreadSummaryOut(BaseModel):
    """A thread as lists show it."""

    id: int
    account_id: str
    subject: str | None = Field(description="the subject of its first message")
    message_count: int = Field(description="messages, copies of one message counted once")
    participants: list[str]
    unread: bool
    has_attachments: bool
    first_date: str | None
    last_date: str | None
    latest: MessageOut = Field(description="its newest message that matches the query")


class ThreadPage(BaseModel):
    """A page of threads, by their newest matching message."""

    threads: list[ThreadSummaryOut]
    next_cursor: str | None


class ThreadMessageOut(MessageOut):
    """A message of a thread; copies of it (same Message-ID) are folded into it."""

    copies: int
    copy_ids: list[int]


class ThreadOut(BaseModel):
    """A thread's messages, oldest first."""

    id: int
    account_id: str
    subject: str | None
    message_count: int
    messages: list[ThreadMessageOut]


# -- triage -------------------------------------------------------------------------------------

#: A rule's priority, 0-100 (the bounds on the number, so the schema shows them).
RulePriority = Annotated[int, Ge(0), Le(100), BeforeValidator(_integral)]
#: A category in a request body: its name (strict models take no other form anyway).
CategoryName = Annotated[Category, Strict(False)]


class CategoryIn(_In):
    """A person's category for a message."""

    category: CategoryName
    sender: bool = Field(
        default=False, description="also always file this sender's mail so (a sender rule)"
    )


class RuleOut(BaseModel):
    """A triage rule: messages its match finds get its category (and priority)."""

    id: int
    account_id: str | None = Field(description="null: every account of its owner")
    match: str = Field(description="a search query")
    category: Category
    priority: int | None = Field(description="0-100; null: triage's own priority")
    source: Literal["user", "sender"] = Field(
        description="written by a person, or made from a correction for a sender"
    )
    created_at: str


class Categorized(BaseModel):
    """A message after a person set its category."""

    message: MessageOut
    rule: RuleOut | None = Field(description="the sender rule made, when asked")
    job_id: str | None = Field(description="the job re-triaging the sender's mail")


class RuleList(BaseModel):
    """The caller's rules, newest first (each decides before older ones)."""

    rules: list[RuleOut]


class RuleCreate(_In):
    """A new triage rule."""

    match: str = Field(min_length=1, max_length=2000, description="a search query")
    category: CategoryName
    priority: RulePriority | None = None
    account_id: str | None = Field(
        default=None, min_length=1, max_length=36, description="omitted: all your accounts"
    )


class RuleCreated(BaseModel):
    """A rule was added; jobs re-triage the mail it matches."""

    rule: RuleOut
    job_ids: list[str]


# -- clean-ups ----------------------------------------------------------------------------------

#: A message id in a request body (strict: a JSON integer; at most 2^53, the largest a JSON
#: number carries exactly everywhere, so the bound in the schema is the bound checked).
MessageIdIn = Annotated[int, Ge(1), Le(2**53), BeforeValidator(_integral)]


class CleanupCreate(_In):
    """A clean-up to propose: what to look for in one account and what to do with it."""

    account_id: str = Field(min_length=1, max_length=36)
    categories: list[CategoryName] = Field(
        default_factory=list,
        max_length=len(Category),
        description="triage categories; with no query, empty means newsletter, promotion "
        "and notification",
    )
    older_than: str | None = Field(
        default=None, pattern=r"^\d{1,5}[dwmy]$", description="an age: 7d, 2w, 3m or 1y"
    )
    query: str | None = Field(default=None, max_length=2000, description="a search query")
    action: CleanupAction = Field(default=CleanupAction.ARCHIVE, strict=False)


class CleanupApprove(_In):
    """A person's answer to a proposal: every candidate, only some, or all but some."""

    only: list[MessageIdIn] | None = Field(default=None, max_length=100_000)
    exclude: list[MessageIdIn] = Field(default_factory=list, max_length=100_000)


class CleanupApproved(BaseModel):
    """An approval: the execution job (the clean-up's own) and how many it will act on."""

    job_id: str
    status: JobStatus
    approved: int
    already_approved: bool = Field(description="approved before: nothing runs again")


class CleanupCriteria(BaseModel):
    """What a clean-up looks for."""

    categories: list[str]
    older_than: str | None
    query: str | None


class CleanupCounts(BaseModel):
    """How many messages a proposal holds."""

    candidates: int
    protected: int


class CleanupOut(BaseModel):
    """A clean-up in a list."""

    job_id: str
    account_id: str
    status: JobStatus | None = Field(description="its job's status (null: the job was pruned)")
    action: CleanupAction
    criteria: CleanupCriteria
    counts: CleanupCounts
    proposed_at: str | None
    approved_at: str | None
    approved_by: str | None
    approved_count: int | None
    created_at: str


class CleanupSender(BaseModel):
    """A sender of candidates."""

    sender: str | None = Field(alias="from")
    count: int


class CleanupPreview(BaseModel):
    """A candidate in the preview."""

    id: int
    sender: str | None = Field(alias="from")
    subject: str | None


class CleanupCandidate(BaseModel):
    """A message the clean-up would act on, with why."""

    id: int
    message_id: str | None
    sender: str | None = Field(alias="from")
    from_name: str | None
    subject: str | None
    date: str | None
    category: str | None
    reasons: list[str]
    approved: bool | None = Field(description="null until a person answered")
    outcome: str | None = Field(description="done, skipped or failed once executed")


class CleanupProtected(BaseModel):
    """A message the clean-up will not touch, with why."""

    id: int
    message_id: str | None
    sender: str | None = Field(alias="from")
    from_name: str | None
    subject: str | None
    why: list[str]


class CleanupSkipped(BaseModel):
    """A message the execution did not act on."""

    id: int
    why: str


class CleanupExecution(BaseModel):
    """What the execution did."""

    done: int
    skipped: list[CleanupSkipped]
    failed: int


class CleanupUnsubscribe(BaseModel):
    """An unsubscribe's requests: the lists posted to and those offering only mail."""

    posted: list[dict[str, Any]]
    mailto_only: list[dict[str, Any]]
    failed: list[dict[str, Any]] = Field(default_factory=list)


class CleanupDetail(CleanupOut):
    """A clean-up with its proposal and, once executed, its outcome."""

    senders: list[CleanupSender]
    preview: list[CleanupPreview]
    candidates: list[CleanupCandidate]
    protected: list[CleanupProtected]
    execution: CleanupExecution | None
    unsubscribe: CleanupUnsubscribe | None


class CleanupList(BaseModel):
    """The caller's clean-ups, newest first."""

    cleanups: list[CleanupOut]


# -- changes (marks, undo, the journal) ------------------------------------------------------


class MarkIn(_In):
    """What to set on a message (written back to the server)."""

    action: Annotated[MarkAction, Strict(False)]


class UndoAccepted(Accepted):
    """An undo job was queued (or the job's active undo is returned)."""

    undoes: str = Field(description="the job whose changes it puts back")


class JournalPlace(BaseModel):
    """Where a message was, or is after the change, and its marks there."""

    model_config = ConfigDict(extra="allow")

    folder: str | None = None
    key: str | None = Field(default=None, description="its location key (an IMAP UID)")
    uid: int | None = None
    flags: list[str] | None = None
    labels: list[str] | None = Field(default=None, description="Gmail labels; null elsewhere")


class JournalEntry(BaseModel):
    """One message location a change acted on (or skipped, saying why)."""

    message_pk: int
    op: str = Field(description='what the change did, in words ("mark read", "archive")')
    state: JournalState
    reason: str | None = Field(description="why it was skipped or failed")
    before: JournalPlace
    after: JournalPlace | None


class JournalOut(BaseModel):
    """A job's change journal: counts per state and a page of its rows."""

    counts: dict[str, int] = Field(description="rows per journal state")
    undoable: bool = Field(description="finished, with changes done and not undone")
    undone_by: str | None = Field(description="the job that undid (some of) its changes")
    entries: list[JournalEntry]
