"""changes: the journal of every change written to a mailbox, clean-up proposals, and the
per-account label policy

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import inboxd.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("labels_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "change_journal",
        sa.Column("id", inboxd.db.types.BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("message_pk", inboxd.db.types.BigId, nullable=False),
        sa.Column("op", sa.String(length=40), nullable=False),
        sa.Column("change", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("before", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("after", inboxd.db.types.JSONDoc, nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("undone_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", inboxd.db.types.UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_journal_job", "change_journal", ["job_id", "state", "id"])
    op.create_index("ix_change_journal_message", "change_journal", ["message_pk"])
    op.create_table(
        "cleanups",
        sa.Column("job_id", sa.String(length=36), primary_key=True),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("criteria", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("summary", inboxd.db.types.JSONDoc, nullable=True),
        sa.Column("candidates", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("protected", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("proposed_at", inboxd.db.types.UTCDateTime(), nullable=True),
        sa.Column("approved_at", inboxd.db.types.UTCDateTime(), nullable=True),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_count", sa.Integer(), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_cleanups_account", "cleanups", ["account_id", "created_at"])
    op.create_table(
        "cleanup_items",
        sa.Column("job_id", sa.String(length=36), primary_key=True),
        sa.Column("message_pk", inboxd.db.types.BigId, primary_key=True, autoincrement=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("reasons", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_cleanup_items_role", "cleanup_items", ["job_id", "role"])


def downgrade() -> None:
    op.drop_index("ix_cleanup_items_role", table_name="cleanup_items")
    op.drop_table("cleanup_items")
    op.drop_index("ix_cleanups_account", table_name="cleanups")
    op.drop_table("cleanups")
    op.drop_index("ix_change_journal_message", table_name="change_journal")
    op.drop_index("ix_change_journal_job", table_name="change_journal")
    op.drop_table("change_journal")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("labels_enabled")
