"""incident labels: what an operator said of an incident (confirmed or dismissed), by whom, when

Acknowledging an incident confirms it; resolving it as a false alarm dismisses it. The labels
are kept for training the learned detector.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("label", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("labelled_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        for column in ("note", "labelled_at", "labelled_by", "label"):
            batch.drop_column(column)
