"""Replays: the farm run over its own history, in a namespace of their own (tables replays, replay_points).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A replay's runs are not rows of ``runs`` (whose one-active-run index, reaper and dashboards belong to the
live farm): each retrain point of a replay is a row of ``replay_points``, the replay a row of ``replays``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models, whose later shape a migration must not follow.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("start", _TS, nullable=False),
        sa.Column("end", _TS, nullable=False),
        sa.Column("cadence_s", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config_hash", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_replays"),
    )
    op.create_table(
        "replay_points",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("replay_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("manifest_sha256", sa.String(64), nullable=True),
        sa.Column("trainings", sa.Integer(), server_default="0", nullable=False),
        sa.Column("base_fits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trained_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["replay_id"], ["replays.id"], name="fk_replay_points_replay_id_replays", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_replay_points"),
        sa.UniqueConstraint("replay_id", "idx", name="uq_replay_points_replay_id_idx"),
    )


def downgrade() -> None:
    op.drop_table("replay_points")
    op.drop_table("replays")
