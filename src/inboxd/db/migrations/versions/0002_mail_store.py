"""mail store

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:58:06.492829
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import inboxd.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "addresses",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("owner_name", sa.String(length=200), nullable=True),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("sync_interval_seconds", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), server_default="ok", nullable=False),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("last_sync_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_sync_job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_owner", ["owner"], unique=False)

    op.create_table(
        "folders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("delimiter", sa.String(length=4), nullable=True),
        sa.Column("special_use", sa.String(length=32), nullable=True),
        sa.Column(
            "uidvalidity", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("uidnext", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "highest_uid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "highestmodseq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("server_count", sa.Integer(), nullable=True),
        sa.Column(
            "cursor",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("last_synced_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("gone_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "name", name="uq_folders_account_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "message_bodies",
        sa.Column(
            "message_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("compression", sa.String(length=8), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("message_pk"),
    )
    op.create_table(
        "message_locations",
        sa.Column(
            "folder_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("remote_key", sa.String(length=255), nullable=False),
        sa.Column(
            "message_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("uid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("seen_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expunged_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("folder_id", "remote_key"),
    )
    with op.batch_alter_table("message_locations", schema=None) as batch_op:
        batch_op.create_index("ix_locations_message", ["message_pk"], unique=False)

    op.create_table(
        "messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("identity", sa.String(length=80), nullable=False),
        sa.Column("gm_msgid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("message_id", sa.String(length=500), nullable=True),
        sa.Column("from_addr", sa.String(length=320), nullable=True),
        sa.Column("from_name", sa.String(length=300), nullable=True),
        sa.Column(
            "to_addrs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "cc_addrs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "reply_to",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("date", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("internal_date", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("list_id", sa.String(length=500), nullable=True),
        sa.Column("list_unsubscribe", sa.Text(), nullable=True),
        sa.Column("list_unsubscribe_post", sa.String(length=200), nullable=True),
        sa.Column("precedence", sa.String(length=40), nullable=True),
        sa.Column("auto_submitted", sa.String(length=80), nullable=True),
        sa.Column("in_reply_to", sa.String(length=500), nullable=True),
        sa.Column(
            "flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=True),
        sa.Column(
            "has_attachments", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column(
            "parse_errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expunged_at", inboxd.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "identity", name="uq_messages_identity"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_account_date", ["account_id", "date"], unique=False)
        batch_op.create_index("ix_messages_from", ["account_id", "from_addr"], unique=False)
        batch_op.create_index("ix_messages_list", ["account_id", "list_id"], unique=False)
        batch_op.create_index("ix_messages_message_id", ["message_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_claim"))
        batch_op.create_index(
            "ix_jobs_claim",
            ["status", "queue", sa.literal_column("priority DESC"), "run_at"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_claim")
        batch_op.create_index(
            batch_op.f("ix_jobs_claim"), ["status", "queue", "priority", "run_at"], unique=False
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_message_id")
        batch_op.drop_index("ix_messages_list")
        batch_op.drop_index("ix_messages_from")
        batch_op.drop_index("ix_messages_account_date")

    op.drop_table("messages")
    with op.batch_alter_table("message_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_locations_message")

    op.drop_table("message_locations")
    op.drop_table("message_bodies")
    op.drop_table("folders")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_owner")

    op.drop_table("accounts")
