"""Shadow challengers: the challengers table and the bots' paired scores (tables challengers, shadow_scores).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

A challenger is scored live beside the champion before it may replace it (docs/ml.md#shadow-challengers).
Two new tables; nothing existing changes: a challenger's version stays a ``candidate`` while it is scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models, whose later shape a migration must not follow.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "challengers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=False),
        sa.Column("started_by", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["version"], ["versions.id"], name="fk_challengers_version_versions"),
        sa.ForeignKeyConstraint(
            ["champion_version"], ["versions.id"], name="fk_challengers_champion_version_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_challengers"),
    )
    op.create_index(
        "ix_challengers_symbol_timeframe_started_at", "challengers", ["symbol", "timeframe", "started_at"]
    )
    op.create_index(
        "uq_challengers_one_active",
        "challengers",
        ["symbol", "timeframe"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "shadow_scores",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("challenger_version", sa.String(64), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("bot_id", sa.String(128), nullable=False),
        sa.Column("champion_probabilities", sa.Text(), nullable=False),
        sa.Column("challenger_probabilities", sa.Text(), nullable=False),
        sa.Column("champion_signal", sa.String(8), nullable=False),
        sa.Column("challenger_signal", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_scores"),
    )
    op.create_index(
        "uq_shadow_scores_pair_bar",
        "shadow_scores",
        ["challenger_version", "champion_version", "at"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_shadow_scores_pair_bar", table_name="shadow_scores")
    op.drop_table("shadow_scores")
    op.drop_index("uq_challengers_one_active", table_name="challengers")
    op.drop_index("ix_challengers_symbol_timeframe_started_at", table_name="challengers")
    op.drop_table("challengers")
