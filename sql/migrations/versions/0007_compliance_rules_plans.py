"""compliance rules and plans: results per period and rule, action plans that people update

`compliance_results` gains `rule_code` (the rule of the standard that was applied: `daily` for the
daily screen, else sample_max, p90_round, raa_quarterly, turbidity_tt, ...), `consequence`
(violation | investigation | advisory | treatment_technique_trigger; null on the daily screen) and
`confirmed` (the limit was confirmed from a primary text). A period can now hold several results of
one (standard, parameter), one per rule and statistic, so the unique key becomes (municipality_id,
standard, parameter, period_kind, period_start, rule_code, statistic); existing rows are `daily`.

`action_plans` gains `kind` (violation | investigation), `rule_code`, `severity` (low | medium |
high | critical; filled from each plan's creation audit entry, null where there is none), `notes`
(a JSON list of {at, by, text}) and `closed_at`. Status values are open | in_progress | done |
cancelled (a CHECK constraint); done and cancelled plans get `closed_at` (existing done plans: their
`updated_at`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OLD_KEY = ["municipality_id", "standard", "parameter", "period_kind", "period_start"]
NEW_KEY = [*OLD_KEY, "rule_code", "statistic"]
NEW_KEY_NAME = "uq_compliance_results_period_rule"
# SQLite reflects the unnamed key of 0001 without a name; batch mode names it by this convention.
UNNAMED_UNIQUE = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
STATUS_CHECK = "status in ('open', 'in_progress', 'done', 'cancelled')"
KIND_CHECK = "kind in ('violation', 'investigation')"


def _unique_name(table: str, columns: list[str]) -> str:
    """The name of `table`'s unique constraint over exactly `columns` (conventional if unnamed)."""
    for unique in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if unique["column_names"] == columns and unique["name"]:
            return unique["name"]
    return f"uq_{table}_{columns[0]}"


def upgrade() -> None:
    old_key = _unique_name("compliance_results", OLD_KEY)
    with (
        _plans_set_aside(),
        op.batch_alter_table("compliance_results", naming_convention=UNNAMED_UNIQUE) as batch,
    ):
        batch.add_column(sa.Column("rule_code", sa.String(length=32), server_default="daily", nullable=False))
        batch.add_column(sa.Column("consequence", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("confirmed", sa.Boolean(), nullable=True))
        batch.drop_constraint(old_key, type_="unique")
        batch.create_unique_constraint(NEW_KEY_NAME, NEW_KEY)

    with op.batch_alter_table("action_plans") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), server_default="violation", nullable=False))
        batch.add_column(sa.Column("rule_code", sa.String(length=32), server_default="daily", nullable=False))
        batch.add_column(sa.Column("severity", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("notes", JSON, server_default=sa.text("'[]'"), nullable=False))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("ck_action_plans_status", STATUS_CHECK)
        batch.create_check_constraint("ck_action_plans_kind", KIND_CHECK)
    _fill_severity_and_closed_at()


def _fill_severity_and_closed_at() -> None:
    """Existing plans: severity as their creation was audited, closed_at of done plans."""
    plans = sa.table(
        "action_plans",
        sa.column("id", sa.Integer),
        sa.column("severity", sa.String),
        sa.column("status", sa.String),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("closed_at", sa.DateTime(timezone=True)),
    )
    audit = sa.table(
        "audit_log",
        sa.column("action", sa.String),
        sa.column("entity_type", sa.String),
        sa.column("entity_id", sa.String),
        sa.column("details", JSON),
    )
    bind = op.get_bind()
    created = bind.execute(
        sa.select(audit.c.entity_id, audit.c.details).where(
            audit.c.entity_type == "action_plan", audit.c.action == "action_plan.created"
        )
    ).all()
    severities = [
        {"plan_id": int(entity_id), "severity": details["severity"]}
        for entity_id, details in created
        if entity_id and entity_id.isdigit() and (details or {}).get("severity")
    ]
    if severities:
        bind.execute(
            plans.update()
            .where(plans.c.id == sa.bindparam("plan_id"))
            .values(severity=sa.bindparam("severity")),
            severities,
        )
    bind.execute(plans.update().where(plans.c.status == "done").values(closed_at=plans.c.updated_at))


@contextmanager
def _plans_set_aside():
    """On SQLite, batch mode drops `compliance_results` and renames a copy in its place, and the
    drop fails while `action_plans` rows point at it: keep the plans aside meanwhile (same ids)."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    columns = ", ".join(c["name"] for c in sa.inspect(op.get_bind()).get_columns("action_plans"))
    op.execute("create temporary table _action_plans_0007 as select * from action_plans")
    op.execute("delete from action_plans")
    yield
    op.execute(f"insert into action_plans ({columns}) select {columns} from _action_plans_0007")
    op.execute("drop table _action_plans_0007")


def downgrade() -> None:
    # The old key holds one result per (standard, parameter) and period: rule results other than
    # the daily screen's, and their plans, cannot be kept.
    op.execute(
        "delete from action_plans where compliance_result_id in"
        " (select id from compliance_results where rule_code <> 'daily')"
    )
    op.execute("delete from compliance_results where rule_code <> 'daily'")
    op.execute("update action_plans set status = 'done' where status = 'cancelled'")
    with op.batch_alter_table("action_plans") as batch:
        batch.drop_constraint("ck_action_plans_kind", type_="check")
        batch.drop_constraint("ck_action_plans_status", type_="check")
        for column in ("closed_at", "notes", "severity", "rule_code", "kind"):
            batch.drop_column(column)
    with _plans_set_aside(), op.batch_alter_table("compliance_results") as batch:
        batch.drop_constraint(NEW_KEY_NAME, type_="unique")
        batch.create_unique_constraint(f"uq_compliance_results_{OLD_KEY[0]}", OLD_KEY)
        for column in ("confirmed", "consequence", "rule_code"):
            batch.drop_column(column)
