"""One live outcome per (bot, version, bar): a unique index, so ingesting a replayed report changes nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Bots report each signal to a Redis stream (and report it again once its horizon has passed, with the
realised return); the farm ingests the stream into ``live_outcomes``. A stream entry read twice (a crash
between the insert and the cursor update, a replay) must not count twice, so the table keeps one row per
(bot, version, bar). Duplicates already stored are folded first: the oldest row is kept, with a realised
return from any of its duplicates when it had none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SAME = "d.bot_id = live_outcomes.bot_id AND d.version = live_outcomes.version AND d.at = live_outcomes.at"


def upgrade() -> None:
    op.execute(
        sa.text(
            f"""
            UPDATE live_outcomes SET realised_return = (
                SELECT MAX(d.realised_return) FROM live_outcomes AS d WHERE {_SAME}
            )
            WHERE realised_return IS NULL
            """
        )
    )
    op.execute(
        sa.text(
            f"""
            DELETE FROM live_outcomes WHERE EXISTS (
                SELECT 1 FROM live_outcomes AS d WHERE {_SAME} AND d.id < live_outcomes.id
            )
            """
        )
    )
    op.create_index("uq_live_outcomes_signal", "live_outcomes", ["bot_id", "version", "at"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_live_outcomes_signal", table_name="live_outcomes")
