"""reading revisions, stale aggregate buckets, source cursors

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reading_revisions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column(
            "municipality_id", sa.String(length=64), sa.ForeignKey("municipalities.id"), nullable=False
        ),
        sa.Column("sensor_id", sa.String(length=64), sa.ForeignKey("sensors.id"), nullable=False),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("old_value", sa.Float(), nullable=False),
        sa.Column("new_value", sa.Float(), nullable=False),
        sa.Column("old_batch_id", ID, sa.ForeignKey("ingest_batches.id"), nullable=False),
        sa.Column("new_batch_id", ID, sa.ForeignKey("ingest_batches.id"), nullable=False),
        sa.Column("revised_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reading_revisions_municipality_id", "reading_revisions", ["municipality_id"])
    op.create_index("ix_reading_revisions_sensor_observed", "reading_revisions", ["sensor_id", "observed_at"])

    op.create_table(
        "stale_buckets",
        sa.Column("sensor_id", sa.String(length=64), sa.ForeignKey("sensors.id"), nullable=False),
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", UTC_TIME, nullable=False),
        sa.Column(
            "municipality_id", sa.String(length=64), sa.ForeignKey("municipalities.id"), nullable=False
        ),
        sa.Column("batch_id", ID, sa.ForeignKey("ingest_batches.id"), nullable=False),
        sa.Column("marked_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "resolution", "bucket_start"),
    )
    op.create_index("ix_stale_buckets_municipality_id", "stale_buckets", ["municipality_id"])

    op.create_table(
        "source_cursors",
        sa.Column(
            "municipality_id", sa.String(length=64), sa.ForeignKey("municipalities.id"), nullable=False
        ),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("municipality_id", "source"),
    )


def downgrade() -> None:
    op.drop_table("source_cursors")
    op.drop_index("ix_stale_buckets_municipality_id", table_name="stale_buckets")
    op.drop_table("stale_buckets")
    op.drop_index("ix_reading_revisions_sensor_observed", table_name="reading_revisions")
    op.drop_index("ix_reading_revisions_municipality_id", table_name="reading_revisions")
    op.drop_table("reading_revisions")
