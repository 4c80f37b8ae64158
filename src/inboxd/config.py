"""Settings: the one place that reads the environment (``INBOXD_*``) or a ``.env`` file."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from inboxd.errors import ConfigError


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("inboxd", appauthor=False))


class Settings(BaseSettings):
    """Typed settings with defaults; every field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="INBOXD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the SQLite database, the key file and demo mail live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/inboxd.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=100, description="How long a SQLite writer waits for the lock."
    )
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0.2,
        description="A running job whose worker has not renewed its lease for this long "
        "is rescued by another worker.",
    )
    job_max_attempts: int = Field(default=5, ge=1, description="Default attempts per job.")
    retry_base_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay; doubles per attempt, with jitter."
    )
    retry_max_seconds: float = Field(default=600.0, ge=0, description="Longest retry delay.")
    owner_max_running: int = Field(
        default=2, ge=1, description="Most jobs one owner may have running at once."
    )
    max_running_jobs: int = Field(
        default=0, ge=0, description="Global cap on running jobs across all workers; 0: none."
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=256, description="Jobs one worker process runs at once."
    )
    poll_interval_ms: int = Field(
        default=20,
        ge=1,
        description="Idle poll period of a worker on SQLite (PostgreSQL wakes on NOTIFY "
        "and polls only as a safety net).",
    )
    progress_interval_ms: int = Field(
        default=250, ge=0, description="Minimum gap between two progress events of a job."
    )
    retention_days: float = Field(
        default=7.0, ge=0, description="Finished jobs and their events are pruned after this."
    )
    retention_per_kind: int = Field(
        default=10_000, ge=1, description="Finished jobs kept per kind at most."
    )
    runs_retention_days: float = Field(
        default=365.0, ge=0, description="How long the history of runs is kept."
    )
    schedules: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description='Extra periodic jobs, JSON: [{"name": "n", "kind": "selftest", '
        '"every": 3600, "params": {}}].',
    )
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Python modules imported by workers to register task kinds.",
    )
    log_level: str = Field(default="INFO", description="Logging level of the entry points.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts account passwords at rest; default: a key "
        "file (mode 0600) generated in the data dir.",
    )
    sync_interval_seconds: int = Field(
        default=300, ge=0, description="Default period of the automatic sync; 0 turns it off."
    )
    sync_batch_messages: int = Field(
        default=100, ge=1, description="Most messages fetched and stored per batch."
    )
    sync_batch_bytes: int = Field(
        default=4 * 1024 * 1024, ge=65536, description="Most bytes fetched per batch."
    )
    sync_processes: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Processes that fetch and store a folder's new mail together, each with "
        "its own IMAP and database connection (the sync plus helpers); 1 turns helpers off.",
    )
    sync_helper_min_messages: int = Field(
        default=1000,
        ge=1,
        description="New messages a folder needs before a sync starts helper processes.",
    )
    imap_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Socket timeout of IMAP connections."
    )
    change_batch: int = Field(
        default=2500,
        ge=1,
        le=20000,
        description="Messages a change (mark, archive, label, clean-up, undo) journals and "
        "hands the server at once: one command per folder and change for each batch.",
    )
    triage_refiner_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1) "
        "asked about the messages triage stays unsure of; unset: no refiner.",
    )
    triage_refiner_model: str = Field(
        default="default", min_length=1, description="Model name sent to the refiner."
    )
    triage_refiner_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the refiner, when it wants one."
    )
    triage_refiner_timeout_seconds: float = Field(
        default=20.0, gt=0, description="How long one refiner request may take."
    )
    triage_refiner_max_per_job: int = Field(
        default=200, ge=0, description="Most refiner requests one triage job makes."
    )

    host: str = Field(default="127.0.0.1", description="Address `inboxd serve` binds to.")
    port: int = Field(default=8765, ge=0, le=65535, description="Port of `inboxd serve`.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra origins (https://host:port) allowed to open the WebSocket and "
        "call the API from a browser; the server's own origin is always allowed.",
    )
    session_days: float = Field(
        default=14.0, gt=0, description="Lifetime of a dashboard login session."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure (set it when serving over HTTPS).",
    )
    live_max_connections: int = Field(
        default=50, ge=1, description="Open SSE/WebSocket streams per user at most."
    )
    live_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Heartbeat period of SSE streams and WebSocket pings."
    )
    live_poll_ms: int = Field(
        default=10,
        ge=1,
        description="How often the event pump reads new events on SQLite (PostgreSQL wakes "
        "it with NOTIFY).",
    )
    live_queue_size: int = Field(
        default=1000,
        ge=10,
        description="Undelivered state changes one live client may have before it is "
        "dropped (it reconnects and replays).",
    )
    live_send_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A live client that takes longer to accept a write is dropped.",
    )
    jobs_rate_per_minute: int = Field(
        default=120, ge=1, description="Jobs one user may start per minute through the API."
    )
    login_rate_per_minute: int = Field(
        default=20, ge=1, description="Login attempts per minute from one client address."
    )
    min_free_disk_mb: int = Field(
        default=50,
        ge=0,
        description="/readyz answers 503 when the data directory's disk has less free (MB).",
    )
    disk_reserve_mb: int = Field(
        default=1,
        ge=0,
        description="Room set aside in the data dir and given back when its disk is full, so "
        "that the failure can still be recorded (0: none).",
    )
    account_tests_per_minute: int = Field(
        default=6, ge=1, description="Account connection tests one user may run per minute."
    )
    account_test_concurrency: int = Field(
        default=4,
        ge=1,
        description="Account connection tests the server runs at once (each waits on a mail "
        "server); one more is refused with 429 at once.",
    )
    embedded_workers: int = Field(
        default=1,
        ge=0,
        description="Worker processes `inboxd serve` starts and supervises (0: none).",
    )

    fetch_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names or CIDRs (10.0.0.0/8, ::1) that links from messages may reach "
        "although they are loopback, private, link-local or otherwise not public; empty: none.",
    )
    fetch_timeout_seconds: float = Field(
        default=8.0,
        gt=0,
        le=60,
        description="How long one request to a link (one hop: connect, send, headers) may take.",
    )
    fetch_max_hops: int = Field(
        default=5, ge=1, le=20, description="Most requests (redirects included) per link."
    )
    fetch_per_host: int = Field(
        default=2, ge=1, description="Requests to one host name in flight at once."
    )
    fetch_concurrency: int = Field(
        default=8, ge=1, le=256, description="Requests to links in flight at once in a process."
    )
    fetch_cache_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long a resolved link is remembered (so a link shared by many "
        "messages is requested once); 0: no cache.",
    )
    fetch_ca_file: Path | None = Field(
        default=None,
        description="PEM file of extra CA certificates trusted when fetching links (besides "
        "the usual ones), e.g. a private CA of an intranet listed in INBOXD_FETCH_ALLOW_NETWORKS.",
    )
    fetch_user_agent: str = Field(
        default="inboxd-linkcheck/1",
        min_length=1,
        description="User-Agent sent with requests to links from messages.",
    )
    newsletter_resolve: bool = Field(
        default=True,
        description="Whether newsletter extraction follows links over the network (off: "
        "tracking redirects are unwrapped offline only, so no sender sees a click).",
    )
    newsletter_max_running: int = Field(
        default=2,
        ge=1,
        description="Newsletter extractions one user may have waiting or running at once; "
        "one more is refused with 429.",
    )
    newsletter_keep: int = Field(
        default=50,
        ge=1,
        description="Ended newsletter extractions kept per user (results included); older "
        "ones are removed when a new one completes.",
    )
    graph_authority: str = Field(
        default="https://login.microsoftonline.com",
        min_length=1,
        description="Microsoft identity platform authority (sign-in and token requests go to "
        "AUTHORITY/TENANT/oauth2/v2.0/...); another cloud's, or a local one for tests.",
    )
    graph_url: str = Field(
        default="https://graph.microsoft.com/v1.0",
        min_length=1,
        description="Microsoft Graph endpoint Graph accounts sync from.",
    )
    idle_max_connections: int = Field(
        default=20,
        ge=0,
        description="IMAP connections the IDLE watcher keeps open (one per account, oldest "
        "accounts first) so new mail is synced within seconds; accounts beyond it wait for "
        "the periodic sync; 0 turns IDLE off.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The API key the command line sends with `--server URL` (never a flag: "
        "flags show in process listings and shell history).",
    )
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names (a reverse proxy's public name, a LAN address) whose Host "
        "header /mcp accepts besides the loopback names and the bound address.",
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines of serve, worker and scheduler: text, or json (one object "
        "per line, with job_id and account_id on the lines of a job).",
    )
    access_log: bool = Field(
        default=False, description="Log one line per HTTP request (through the same format)."
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or CIDRs of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (rate limits then key on the real client); "
        "empty: the headers are ignored.",
    )
    metrics_listen: str | None = Field(
        default=None,
        pattern=r"^(\[[0-9a-fA-F:.]+\]|[0-9a-zA-Z.:-]+):[0-9]{1,5}$",
        description="HOST:PORT of a loopback-only listener serving /metrics without a key "
        "(e.g. 127.0.0.1:9464); unset: /metrics only on the API port, with an admin key.",
    )

    webhook_max_attempts: int = Field(
        default=6,
        ge=1,
        le=20,
        description="Attempts of one webhook delivery (retried with the queue's backoff) "
        "before it counts as failed.",
    )
    webhook_disable_after: int = Field(
        default=10,
        ge=1,
        description="A webhook is disabled after this many deliveries in a row failed.",
    )

    microsoft_client_id: str | None = Field(
        default=None,
        description="Client (application) id registered with Microsoft that signs people in "
        "(the dashboard's Connect Outlook; the CLI's default).",
    )
    google_client_id: str | None = Field(
        default=None,
        description="OAuth client id registered with Google (a Desktop app) that signs people "
        "in (the dashboard's Connect Gmail; the CLI's default).",
    )
    google_client_secret: SecretStr | None = Field(
        default=None,
        description="That Google client's secret (Google wants it even from desktop apps).",
    )
    google_auth_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth",
        pattern=r"^https?://",
        description="Google's authorization endpoint (where the person signs in).",
    )
    google_token_url: str = Field(
        default="https://oauth2.googleapis.com/token",
        pattern=r"^https?://",
        description="Google's token endpoint (codes and refresh tokens are redeemed there).",
    )

    @field_validator("mcp_allowed_hosts", mode="before")
    @classmethod
    def _mcp_hosts(cls, value: Any) -> Any:
        return cls._json_or_csv(value)

    @field_validator(
        "schedules",
        "task_modules",
        "allowed_origins",
        "fetch_allow_networks",
        "forwarded_allow_ips",
        mode="before",
    )
    @classmethod
    def _json_or_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return []
            if value.startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def effective_database_url(self) -> str:
        """The database URL in force: the setting, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'inboxd.db'}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError, ValueError) as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
