"""readings keyed only by (sensor_id, observed_at): no foreign keys, no second index

The readings table is the one that grows by millions of rows a night. Each foreign key on it
made PostgreSQL run a trigger with an index lookup per inserted row, and the index on
(municipality_id, observed_at) was a second B-tree to update: a bare COPY of 2 M readings took
19.2 s with both, 5.7 s without the keys and 3.2 s with the primary key alone.
The keys guarded nothing the load does not already ensure: the gate admits only sensors
registered to the batch's municipality, and the batch row is written in the same transaction.
A municipality's readings are read through its sensors: a primary-key range scan per sensor.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDEX = "ix_readings_municipality_observed"
KEYS = {"sensor_id": "sensors.id", "municipality_id": "municipalities.id", "batch_id": "ingest_batches.id"}


def _readings(*indexes: sa.ForeignKeyConstraint | sa.Index) -> sa.Table:
    return sa.Table(
        "readings",
        sa.MetaData(),
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("municipality_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("qc_flag", sa.SmallInteger(), nullable=False),
        sa.Column("batch_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "observed_at"),
        *indexes,
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="readings")
        for column in KEYS:
            op.drop_constraint(f"readings_{column}_fkey", "readings", type_="foreignkey")
        return
    # SQLite cannot drop a constraint: the table is copied without them.
    with op.batch_alter_table("readings", copy_from=_readings(), recreate="always"):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column, target in KEYS.items():
            table, key = target.split(".")
            op.create_foreign_key(f"readings_{column}_fkey", "readings", table, [column], [key])
        op.create_index(INDEX, "readings", ["municipality_id", "observed_at"])
        return
    keys = [sa.ForeignKeyConstraint([column], [target]) for column, target in KEYS.items()]
    index = sa.Index(INDEX, "municipality_id", "observed_at")
    with op.batch_alter_table("readings", copy_from=_readings(*keys, index), recreate="always"):
        pass
