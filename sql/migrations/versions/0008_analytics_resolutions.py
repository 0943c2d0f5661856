"""analytics resolutions: weekly and monthly buckets, expected counts, quantiles, insights

`aggregates` gains `count_expected` (readings the sensor's cadence promises in the bucket, from
its installation), `coverage_pct` (received per expected, at most 100), and `value_median`,
`value_p95` and `value_p99` (linear interpolation between closest ranks); `resolution` may now be
`week` (local Monday to Monday) or `month` besides `hour` and `day`. Existing rows keep null in
the new columns until they are recomputed (`waterline run backfill`).

`insights` holds one plain-language sentence per sensor, kind (week_on_week | month_on_month |
year_on_year) and period, with the figures it was made from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
NEW_AGGREGATE_COLUMNS = {
    "count_expected": sa.Integer(),
    "coverage_pct": sa.Float(),
    "value_median": sa.Float(),
    "value_p95": sa.Float(),
    "value_p99": sa.Float(),
}


def upgrade() -> None:
    with op.batch_alter_table("aggregates") as batch:
        for name, kind in NEW_AGGREGATE_COLUMNS.items():
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_table(
        "insights",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("value_mean", sa.Float(), nullable=True),
        sa.Column("previous_mean", sa.Float(), nullable=True),
        sa.Column("change_pct", sa.Float(), nullable=True),
        sa.Column("slope_per_day", sa.Float(), nullable=True),
        sa.Column("r_squared", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("is_significant", sa.Boolean(), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("computed_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"]),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sensor_id", "kind", "period_start"),
    )
    op.create_index("ix_insights_municipality_id", "insights", ["municipality_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_insights_municipality_id", table_name="insights")
    op.drop_table("insights")
    with op.batch_alter_table("aggregates") as batch:
        for name in reversed(NEW_AGGREGATE_COLUMNS):
            batch.drop_column(name)
