"""search: PostgreSQL's index gets word pairs, so it is rebuilt

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # FTS5's rows are unchanged.
    # A phrase query now asks for the pairs of its words (inboxd.store.fulltext), which rows
    # written before lack: the index is emptied and every message marked unindexed, as
    # fulltext.clear() does, so that the index job after each account's next sync rebuilds
    # it whole. Until then search answers from the messages already re-indexed only, never
    # with a row of the old form.
    op.execute("TRUNCATE message_fts")
    op.execute("DELETE FROM thread_keys")
    op.execute("UPDATE messages SET indexed_at = NULL, thread_id = NULL")


def downgrade() -> None:
    # The code before this revision reads rows with pairs as they are (extra lexemes).
    pass
