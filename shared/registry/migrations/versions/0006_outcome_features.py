"""Live outcomes carry the feature values the bot computed for the signal's bar (train/serve skew).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Bots report the feature vector they scored with each signal (a JSON list of numbers in the pack's feature
order); the farm recomputes the features of the same bars from its own store and flags any difference
(:mod:`trainfarm.workers.checks.skew`). The column is nullable: older bots, and every row stored so far, have
no features, and an outcome without them stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Text holding JSON (not a JSON type): stored and read back as the exact text the bot sent, the same on
    # SQLite and PostgreSQL; a plain nullable ADD COLUMN needs no table rebuild on either.
    op.add_column("live_outcomes", sa.Column("features", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("live_outcomes", "features")
