"""webhooks: per-user webhooks on job endings and the log of their deliveries

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-07 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import inboxd.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("events", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("account_ids", inboxd.db.types.JSONDoc, nullable=True),
        sa.Column("kinds", inboxd.db.types.JSONDoc, nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", inboxd.db.types.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhooks_owner", "webhooks", ["owner", "enabled"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", inboxd.db.types.BigId, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("delivery_job_id", sa.String(length=36), nullable=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("payload", inboxd.db.types.JSONDoc, nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", inboxd.db.types.UTCDateTime(), nullable=True),
        sa.Column("delivered_at", inboxd.db.types.UTCDateTime(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_hook", "webhook_deliveries", ["webhook_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_hook", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_owner", table_name="webhooks")
    op.drop_table("webhooks")
