"""newsletter extractions: their parameters, state and result, kept apart from the job row
(which job retention prunes); extractions finished before this revision are copied over

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import sqlalchemy as sa
from alembic import op

import inboxd.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FINISHED = ("completed", "failed", "cancelled")


def upgrade() -> None:
    table = op.create_table(
        "newsletter_extractions",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("params", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(), nullable=False),
        sa.Column("started_at", inboxd.db.types.UTCDateTime(), nullable=True),
        sa.Column("completed_at", inboxd.db.types.UTCDateTime(), nullable=True),
        sa.Column("counts", inboxd.db.types.JSONDoc, nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
    )
    op.create_index(
        "ix_newsletter_extractions_owner", "newsletter_extractions", ["owner", "created_at"]
    )
    _copy_finished_jobs(table)


def _copy_finished_jobs(table: sa.Table | None) -> None:
    """Extractions that ended before this revision kept their result in the job row only."""
    if table is None:
        return
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("owner", sa.String()),
        sa.column("account_id", sa.String()),
        sa.column("params", inboxd.db.types.JSONDoc),
        sa.column("status", sa.String()),
        sa.column("error", sa.Text()),
        sa.column("result", inboxd.db.types.JSONDoc),
        sa.column("created_at", inboxd.db.types.UTCDateTime()),
        sa.column("started_at", inboxd.db.types.UTCDateTime()),
        sa.column("finished_at", inboxd.db.types.UTCDateTime()),
    )
    bind = op.get_bind()
    found = bind.execute(
        sa.select(jobs).where(jobs.c.kind == "newsletter_extraction", jobs.c.status.in_(_FINISHED))
    ).all()
    rows: list[dict[str, Any]] = []
    for job in found:
        result = job.result if isinstance(job.result, dict) else None
        completed = job.status == "completed" and result is not None
        rows.append(
            {
                "id": job.id,
                "owner": job.owner,
                "account_id": job.account_id,
                "params": job.params or {},
                "status": job.status,
                "error": job.error,
                "created_at": job.created_at,
                "started_at": job.started_at,
                "completed_at": job.finished_at,
                "counts": result.get("counts") if completed and result else None,
                "result": zlib.compress(json.dumps(result).encode()) if completed else None,
            }
        )
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_index("ix_newsletter_extractions_owner", table_name="newsletter_extractions")
    op.drop_table("newsletter_extractions")
