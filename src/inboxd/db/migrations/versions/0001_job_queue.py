"""job queue

Revision ID: 0001
Revises:
Create Date: 2026-11-22 06:37:08.600917
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import inboxd.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "job_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index("ix_job_events_job", ["job_id", "id"], unique=False)

    op.create_table(
        "job_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_account", ["account_id", "finished_at"], unique=False)
        batch_op.create_index("ix_job_runs_finished", ["finished_at"], unique=False)
        batch_op.create_index("ix_job_runs_owner", ["owner", "finished_at"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("queue", sa.String(length=32), server_default="default", nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "cancel_requested", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column(
            "progress_current",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "progress_total", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        sa.Column(
            "checkpoint",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_account", ["account_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_claim", ["status", "queue", sa.text("priority DESC"), "run_at"], unique=False
        )
        batch_op.create_index("ix_jobs_finished", ["kind", "finished_at"], unique=False)
        batch_op.create_index("ix_jobs_lease", ["status", "lease_expires_at"], unique=False)
        batch_op.create_index("ix_jobs_owner_status", ["owner", "status"], unique=False)
        batch_op.create_index(
            "ux_jobs_active_dedupe",
            ["dedupe_key"],
            unique=True,
            sqlite_where=sa.text(
                "dedupe_key IS NOT NULL AND status IN ('pending', 'running', 'awaiting_approval')"
            ),
            postgresql_where=sa.text(
                "dedupe_key IS NOT NULL AND status IN ('pending', 'running', 'awaiting_approval')"
            ),
        )

    op.create_table(
        "schedules",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "last_slot", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("last_enqueued_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column(
            "queues",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:

    op.drop_table("workers")
    op.drop_table("schedules")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_jobs_active_dedupe",
            sqlite_where=sa.text(
                "dedupe_key IS NOT NULL AND status IN ('pending', 'running', 'awaiting_approval')"
            ),
            postgresql_where=sa.text(
                "dedupe_key IS NOT NULL AND status IN ('pending', 'running', 'awaiting_approval')"
            ),
        )
        batch_op.drop_index("ix_jobs_owner_status")
        batch_op.drop_index("ix_jobs_lease")
        batch_op.drop_index("ix_jobs_finished")
        batch_op.drop_index("ix_jobs_claim")
        batch_op.drop_index("ix_jobs_account")

    op.drop_table("jobs")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_runs_owner")
        batch_op.drop_index("ix_job_runs_finished")
        batch_op.drop_index("ix_job_runs_account")

    op.drop_table("job_runs")
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index("ix_job_events_job")

    op.drop_table("job_events")
