"""alerts and sensor outages: what `alert.*` and `sensor.offline|online` webhooks are made from

`webhook_subscriptions` gains `min_severity` (LOW | MEDIUM | HIGH | CRITICAL, default HIGH for
existing and new endpoints): the alerts an endpoint receives (`tasks/anomalies/alerts.py`).

`alerts` holds, per sensor and level, each run of anomalies at least that severe (anomalies at
most the quiet period apart), open until the quiet period passes after its last anomaly.

`sensor_outages` holds each stretch a sensor went silent for longer than its gap limit
(`tasks/maintenance/outages.py`); at most one per sensor is open (`ended_at` null), which a
partial unique index keeps so.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
OPEN_OUTAGE = sa.text("ended_at is null")


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.add_column(
            sa.Column("min_severity", sa.String(length=16), nullable=False, server_default="HIGH")
        )
    op.create_table(
        "alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_observed_at", TIME, nullable=False),
        sa.Column("last_observed_at", TIME, nullable=False),
        sa.Column("methods", JSON, nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"]),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"]),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sensor_id", "level", "first_observed_at"),
    )
    op.create_index("ix_alerts_municipality_id", "alerts", ["municipality_id"])
    op.create_index("ix_alerts_sensor_level_last", "alerts", ["sensor_id", "level", "last_observed_at"])
    op.create_table(
        "sensor_outages",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("last_reading_at", TIME, nullable=True),
        sa.Column("gap_limit_seconds", sa.Float(), nullable=False),
        sa.Column("detected_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"]),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sensor_outages_municipality_id", "sensor_outages", ["municipality_id"])
    op.create_index(
        "uq_sensor_outages_open",
        "sensor_outages",
        ["sensor_id"],
        unique=True,
        postgresql_where=OPEN_OUTAGE,
        sqlite_where=OPEN_OUTAGE,
    )


def downgrade() -> None:
    op.drop_index("uq_sensor_outages_open", table_name="sensor_outages")
    op.drop_index("ix_sensor_outages_municipality_id", table_name="sensor_outages")
    op.drop_table("sensor_outages")
    op.drop_index("ix_alerts_sensor_level_last", table_name="alerts")
    op.drop_index("ix_alerts_municipality_id", table_name="alerts")
    op.drop_table("alerts")
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.drop_column("min_severity")
