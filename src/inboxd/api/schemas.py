"""Request and response bodies, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """The error object."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer."""

    error: Problem


class LoginIn(_In):
    """Log in to the dashboard with an API key."""

    key: str = Field(min_length=1, max_length=200)


class UserOut(BaseModel):
    """The caller."""

    id: str
    name: str
    is_admin: bool


class SecretIn(_In):
    """An IMAP password or OAuth2 access token (write-only: never returned)."""

    password: str | None = Field(default=None, min_length=1, max_length=4096)
    token: str | None = Field(default=None, min_length=1, max_length=16384)


class AccountCreate(_In):
    """A new mail account."""

    provider: Literal["imap", "maildir", "mbox"]
    name: str = Field(min_length=1, max_length=200)
    settings: dict[str, Any] = Field(
        description="imap: host, port, security (tls|starttls|none), username, auth "
        "(password|xoauth2), folders; maildir/mbox: path"
    )
    secret: SecretIn | None = None
    addresses: list[str] = Field(default_factory=list, max_length=50)
    owner_name: str | None = Field(default=None, max_length=200)
    sync_interval_seconds: int | None = Field(default=None, ge=0, le=31_536_000)


class AccountUpdate(_In):
    """Changes to an account; absent fields stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    secret: SecretIn | None = None
    addresses: list[str] | None = Field(default=None, max_length=50)
    owner_name: str | None = Field(default=None, max_length=200)
    sync_interval_seconds: int | None = Field(default=None, ge=0, le=31_536_000)


class Progress(BaseModel):
    """How far a job is."""

    current: int
    total: int | None
    percent: float | None


class Activity(BaseModel):
    """An account's live state, from its latest job."""

    state: Literal[
        "idle",
        "queued",
        "connecting",
        "fetching",
        "processing",
        "categorizing",
        "labeling",
        "completed",
        "error",
    ]
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
    state: str
    state_message: str | None
    last_sync_at: str | None
    last_sync_job_id: str | None
    created_at: str
    message_count: int
    activity: Activity


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
    account_id: str | None = Field(default=None, max_length=36)


class JobOut(BaseModel):
    """A job's snapshot."""

    id: str
    kind: str
    account_id: str | None
    status: Literal["pending", "running", "completed", "failed", "cancelled", "awaiting_approval"]
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
    status: str
    state: str
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
