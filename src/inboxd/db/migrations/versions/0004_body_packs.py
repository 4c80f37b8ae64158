"""message bodies in pack files: where a body stored outside the database is

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable additions: SQLite adds them without rewriting the table, and rows written
    # before keep their bodies in ``raw``.
    op.add_column("message_bodies", sa.Column("pack", sa.String(length=36), nullable=True))
    op.add_column("message_bodies", sa.Column("pack_offset", sa.BigInteger(), nullable=True))
    op.add_column("message_bodies", sa.Column("pack_length", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_bodies") as batch:
        batch.drop_column("pack_length")
        batch.drop_column("pack_offset")
        batch.drop_column("pack")
