"""QC provenance: one row per QC run (config version, SHA-256 and text, window, counts per flag)
and, per reading, the flag of each QARTOD test from the latest run that judged it

`readings.qc_flag` keeps the worst-wins flag that statistics use; `readings_qc` keeps why. Like
`readings` (see 0003), `readings_qc` grows by a row per reading, so it has no foreign key and no
index beyond its key: it is written set-based from a temporary table, in the transaction that
checks the municipality's sensors, and read by key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TESTS = ("gross_range", "climatology", "spike", "rate_of_change", "flat_line", "gap", "attenuated")
FLAG_COUNTS = ("count_good", "count_not_evaluated", "count_suspect", "count_fail", "count_missing")


def upgrade() -> None:
    op.create_table(
        "qc_runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config_version", sa.String(length=64), nullable=False),
        sa.Column("config_sha256", sa.String(length=64), nullable=False),
        sa.Column("config_json", JSON, nullable=False),
        sa.Column("count_readings", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in FLAG_COUNTS),
        sa.Column("test_counts", JSON, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("municipality_id", "window_start", "config_sha256"),
    )
    op.create_index("ix_qc_runs_municipality_id", "qc_runs", ["municipality_id"])
    op.create_table(
        "readings_qc",
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qc_run_id", ID, nullable=False),
        *(sa.Column(f"qc_{name}", sa.SmallInteger(), nullable=False) for name in TESTS),
        sa.Column("qc_tests", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "observed_at"),
    )


def downgrade() -> None:
    op.drop_table("readings_qc")
    op.drop_index("ix_qc_runs_municipality_id", table_name="qc_runs")
    op.drop_table("qc_runs")
