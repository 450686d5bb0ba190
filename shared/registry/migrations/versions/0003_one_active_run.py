"""At most one active run per (symbol, timeframe): a partial unique index on runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Until now a Redis key with a time-to-live kept one run per market, and a queue backlog longer than that TTL
let a second run start. The registry becomes the one source of truth: a run is active while its status is
not succeeded or failed, and the database refuses a second active run of the same (symbol, timeframe).

Existing registries may hold several active runs of one market (runs stuck by the old bug): all but the
newest are marked failed first, saying why, so that the index can be created.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status NOT IN ('succeeded', 'failed')"


def upgrade() -> None:
    # Older active runs of a market that has a newer active run: superseded. Plain SQL that both SQLite and
    # PostgreSQL run (a correlated subquery; no UPDATE ... FROM).
    op.execute(
        sa.text(
            f"""
            UPDATE runs SET status = 'failed',
                error = 'superseded: a newer run of this market was active when migration 0003 ran',
                finished_at = CURRENT_TIMESTAMP
            WHERE {_ACTIVE} AND EXISTS (
                SELECT 1 FROM runs AS newer
                WHERE newer.symbol = runs.symbol AND newer.timeframe = runs.timeframe
                  AND newer.{_ACTIVE}
                  AND (newer.created_at > runs.created_at
                       OR (newer.created_at = runs.created_at AND newer.id > runs.id))
            )
            """
        )
    )
    op.create_index(
        "uq_runs_one_active",
        "runs",
        ["symbol", "timeframe"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_one_active", table_name="runs")
