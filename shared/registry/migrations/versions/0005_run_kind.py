"""Runs have a kind: ``full`` (8 base models, stacking, calibration) or ``meta`` (meta-only).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A meta-only run reuses the champion's base models and refits the stacker and the calibration on the bars
that came after the champion's own data (beat's ``meta-<timeframe>`` entries). Every run so far was a full
one, so existing rows get ``full``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite accepts NOT NULL with a default): a batch rebuild of the table would have
    # to carry the partial unique index of migration 0003 across.
    op.add_column("runs", sa.Column("kind", sa.String(8), nullable=False, server_default="full"))


def downgrade() -> None:
    op.drop_column("runs", "kind")
