"""Initial registry schema: runs, base results, versions, promotions, live outcomes.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written by hand and frozen: it spells out every type, constraint and index name (the same names the
models' naming convention gives) instead of importing the models, whose later shape it must not follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _one_of(column: str, values: Sequence[str], table: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_model", sa.String(64), nullable=True),
        sa.Column("snapshot_hash", sa.String(128), nullable=True),
        sa.Column("snapshot_path", sa.Text(), nullable=True),
        sa.Column("config_hash", sa.String(128), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("celery_task_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        _one_of("status", ("queued", "preparing", "training", "meta", "succeeded", "failed"), "runs"),
        sa.CheckConstraint(
            "status <> 'succeeded' OR version IS NOT NULL", name="ck_runs_succeeded_has_version"
        ),
    )
    op.create_index("ix_runs_symbol_timeframe_created_at", "runs", ["symbol", "timeframe", "created_at"])

    op.create_table(
        "base_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("family", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("device", sa.String(16), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_base_results"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_base_results_run_id_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "model", name="uq_base_results_run_id_model"),
        _one_of("status", ("running", "succeeded", "failed"), "base_results"),
    )

    op.create_table(
        "versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("gate_report", sa.JSON(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_versions_run_id_runs"),
        _one_of("status", ("candidate", "champion", "rejected", "retired"), "versions"),
    )
    op.create_index(
        "ix_versions_symbol_timeframe_created_at", "versions", ["symbol", "timeframe", "created_at"]
    )
    # At most one champion per (symbol, timeframe): concurrent promotions cannot both commit.
    op.create_index(
        "uq_versions_one_champion",
        "versions",
        ["symbol", "timeframe"],
        unique=True,
        sqlite_where=sa.text("status = 'champion'"),
        postgresql_where=sa.text("status = 'champion'"),
    )

    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("from_version", sa.String(64), nullable=True),
        sa.Column("to_version", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotions"),
        sa.ForeignKeyConstraint(
            ["from_version"], ["versions.id"], name="fk_promotions_from_version_versions"
        ),
        sa.ForeignKeyConstraint(["to_version"], ["versions.id"], name="fk_promotions_to_version_versions"),
        _one_of("reason", ("gate", "manual", "rollback"), "promotions"),
    )
    op.create_index("ix_promotions_symbol_timeframe_at", "promotions", ["symbol", "timeframe", "at"])

    op.create_table(
        "live_outcomes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bot_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("signal", sa.String(16), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("realised_return", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_live_outcomes"),
    )
    op.create_index("ix_live_outcomes_symbol_timeframe_at", "live_outcomes", ["symbol", "timeframe", "at"])


def downgrade() -> None:
    op.drop_table("live_outcomes")
    op.drop_table("promotions")
    op.drop_table("versions")
    op.drop_table("base_results")
    op.drop_table("runs")
