"""reading and search: a sort date, references, threads and the index's to-do mark

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 09:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import inboxd.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable additions first: SQLite adds them without rewriting the table.
    op.add_column("messages", sa.Column("sort_date", inboxd.db.types.UTCDateTime(), nullable=True))
    op.add_column("messages", sa.Column("refs", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("thread_id", inboxd.db.types.BigId, nullable=True))
    op.add_column("messages", sa.Column("indexed_at", inboxd.db.types.UTCDateTime(), nullable=True))
    # Messages stored before have no sort date: the header date, else the server's.
    op.execute("UPDATE messages SET sort_date = COALESCE(date, internal_date, created_at)")
    op.create_index(
        "ix_messages_sort",
        "messages",
        ["account_id", sa.text("sort_date DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_messages_sort_all", "messages", [sa.text("sort_date DESC"), sa.text("id DESC")]
    )
    op.create_index("ix_messages_thread", "messages", ["account_id", "thread_id"])
    op.create_index(
        "ix_messages_unindexed",
        "messages",
        ["account_id", "id"],
        sqlite_where=sa.text("indexed_at IS NULL"),
        postgresql_where=sa.text("indexed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_unindexed", table_name="messages")
    op.drop_index("ix_messages_thread", table_name="messages")
    op.drop_index("ix_messages_sort_all", table_name="messages")
    op.drop_index("ix_messages_sort", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("indexed_at")
        batch.drop_column("thread_id")
        batch.drop_column("refs")
        batch.drop_column("sort_date")
