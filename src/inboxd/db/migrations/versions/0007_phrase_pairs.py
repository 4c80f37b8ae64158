"""search: PostgreSQL's index gets word pairs, so it is rebuilt; finer statistics

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
    # The planner's word frequencies: with PostgreSQL's default 1,000 most common lexemes,
    # "from:alice" in 8% of 100,000 messages was guessed at 0.5%, so all 8,466 were fetched
    # and sorted (18 ms) instead of walking the newest messages until 50 match (3 ms).
    op.execute("ALTER TABLE message_fts ALTER COLUMN doc SET STATISTICS 1000")
    op.execute("DELETE FROM thread_keys")
    op.execute("UPDATE messages SET indexed_at = NULL, thread_id = NULL")


def downgrade() -> None:
    # The code before this revision reads rows with pairs as they are (extra lexemes).
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE message_fts ALTER COLUMN doc SET STATISTICS -1")
