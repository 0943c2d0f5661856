"""detector models: labelled stretches of a station's time and the learned detectors trained on them

`detection_labels` holds what is known of a station's time: each row a half-open interval
[starts_at, ends_at) that was an event or was not, from a labelled file (`file:<name>`) or an
operator's word on an incident (`incident:<id>`). `detector_models` holds one row per training of
a station's learned detector: the data range, sensors and features it was trained on, its
post-processing, its out-of-fold scores beside the statistical detector's, where its bytes are
(with their SHA-256) and whether it is the station's active detector, and why (not).

The interval columns are `starts_at`/`ends_at`, not `start`/`end`: `end` is reserved in PostgreSQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "detection_labels",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("starts_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("is_event", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"]),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("detection_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_detection_labels_municipality_id"), ["municipality_id"], unique=False
        )
        batch_op.create_index("ix_detection_labels_station_starts", ["station_id", "starts_at"], unique=False)

    op.create_table(
        "detector_models",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("trained_at", TIME, nullable=False),
        sa.Column("data_start", TIME, nullable=False),
        sa.Column("data_end", TIME, nullable=False),
        sa.Column("sensors", JSON, nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("post_process", JSON, nullable=False),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("description", JSON, nullable=False),
        sa.Column("object_url", sa.String(length=1000), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("training_seconds", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"]),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("detector_models", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_detector_models_municipality_id"), ["municipality_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("detector_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_detector_models_municipality_id"))
    op.drop_table("detector_models")
    with op.batch_alter_table("detection_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_detection_labels_station_starts")
        batch_op.drop_index(batch_op.f("ix_detection_labels_municipality_id"))
    op.drop_table("detection_labels")
