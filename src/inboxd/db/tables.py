"""Table definitions (SQLAlchemy Core). Alembic migrations create them; code queries them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from inboxd.db.types import BigId, JSONDoc, UTCDateTime

metadata = MetaData()

#: Statuses in which a job holds its dedupe key.
ACTIVE_STATUSES = ("pending", "running", "awaiting_approval")
_ACTIVE_SQL = "status IN ('pending', 'running', 'awaiting_approval')"

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("owner", String(64), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("queue", String(32), nullable=False, server_default="default"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("status", String(20), nullable=False),
    Column("params", JSONDoc, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("dedupe_key", String(200), nullable=True),
    Column("step", String(64), nullable=True),
    Column("progress_current", BigId, nullable=False, server_default="0"),
    Column("progress_total", BigId, nullable=True),
    Column("message", Text, nullable=True),
    Column("rate", Float, nullable=True),
    Column("eta_seconds", Float, nullable=True),
    Column("checkpoint", JSONDoc, nullable=True),
    Column("result", JSONDoc, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_detail", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # Claim order is priority DESC, run_at ASC: the index matches so no sort is needed.
    Index("ix_jobs_claim", "status", "queue", text("priority DESC"), "run_at"),
    Index("ix_jobs_lease", "status", "lease_expires_at"),
    Index("ix_jobs_owner_status", "owner", "status"),
    Index("ix_jobs_account", "account_id", "created_at"),
    Index("ix_jobs_finished", "kind", "finished_at"),
    Index(
        "ux_jobs_active_dedupe",
        "dedupe_key",
        unique=True,
        sqlite_where=text(f"dedupe_key IS NOT NULL AND {_ACTIVE_SQL}"),
        postgresql_where=text(f"dedupe_key IS NOT NULL AND {_ACTIVE_SQL}"),
    ),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("type", String(16), nullable=False),
    Column("payload", JSONDoc, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_job_events_job", "job_id", "id"),
    sqlite_autoincrement=True,
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("owner", String(64), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("duration_seconds", Float, nullable=True),
    Column("result", JSONDoc, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_job_runs_account", "account_id", "finished_at"),
    Index("ix_job_runs_owner", "owner", "finished_at"),
    Index("ix_job_runs_finished", "finished_at"),
    sqlite_autoincrement=True,
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", JSONDoc, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("last_slot", BigId, nullable=False),
    Column("last_enqueued_at", UTCDateTime, nullable=False),
)
