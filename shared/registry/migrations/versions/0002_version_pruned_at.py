"""Versions remember when retention deleted their pack: versions.pruned_at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01

A nullable column, so existing rows need no default (NULL = the pack is still on disk). A column rather than
a fifth status: a pruned version keeps saying whether it was rejected or served as champion.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column is a plain ALTER on both SQLite and PostgreSQL (no table copy).
    op.add_column("versions", sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot DROP COLUMN, so Alembic copies the table there.
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("pruned_at")
