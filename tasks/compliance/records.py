"""Writing judged results of a period (a day or a month): compliance results upserted per rule and
statistic, each new or changed one audited; action plans and violation events, each once."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Connection, Row, and_, insert, or_, select

from tasks.audit import record_audit
from tasks.compliance.plans import DAILY_RULE, plan_for
from tasks.database import bulk_insert
from tasks.models import ActionPlan, AuditLog, ComplianceResult, Municipality, utcnow
from tasks.webhooks.outbox import record_event

ACTOR = "waterline.compliance"

RESULT_KEY = [
    "municipality_id",
    "standard",
    "parameter",
    "period_kind",
    "period_start",
    "rule_code",
    "statistic",
]
PERIOD_KINDS = ("day", "month", "quarter")
STATUSES = ("COMPLIANT", "WARNING", "NON_COMPLIANT", "INSUFFICIENT_DATA")
CONSEQUENCES = ("violation", "investigation", "advisory", "treatment_technique_trigger")
# A NON_COMPLIANT result with one of these (or none: the daily screen) opens a violation plan.
VIOLATION_CONSEQUENCES = ("violation", "treatment_technique_trigger")
REQUIRED_COLUMNS = (
    "standard",
    "parameter",
    "status",
    "statistic",
    "statistic_value",
    "limit",
    "limit_kind",
    "unit",
    "deviation_pct",
    "rule",
    "citation",
    "sample_count",
    "excluded_count",
)
# What a rerun compares to tell a changed result from the same one judged again.
JUDGED_COLUMNS = [
    "period_end",
    "status",
    "statistic_value",
    "limit_value",
    "limit_kind",
    "unit",
    "deviation_pct",
    "rule",
    "citation",
    "consequence",
    "confirmed",
    "sample_count",
    "excluded_count",
]
STORED_SCHEMA = {
    "id": pl.Int64,
    "standard": pl.String,
    "parameter": pl.String,
    "period_kind": pl.String,
    "period_start": pl.Date,
    "rule_code": pl.String,
    "statistic": pl.String,
    "period_end": pl.Date,
    "status": pl.String,
    "statistic_value": pl.Float64,
    "limit_value": pl.Float64,
    "limit_kind": pl.String,
    "unit": pl.String,
    "deviation_pct": pl.Float64,
    "rule": pl.String,
    "citation": pl.String,
    "consequence": pl.String,
    "confirmed": pl.Boolean,
    "sample_count": pl.Int64,
    "excluded_count": pl.Int64,
}


def period_end(period_kind: str, period_start: date) -> date:
    """The last day of the period that starts on `period_start`; ValueError if it cannot start there."""
    if period_kind == "day":
        return period_start
    if period_kind not in PERIOD_KINDS:
        raise ValueError(f"a period is one of {', '.join(PERIOD_KINDS)}, not {period_kind!r}")
    months = 1 if period_kind == "month" else 3
    if period_start.day != 1 or (months == 3 and period_start.month % 3 != 1):
        raise ValueError(f"a {period_kind} starts on its first day, not on {period_start.isoformat()}")
    last_month = period_start.month + months - 1
    return period_start.replace(month=last_month, day=calendar.monthrange(period_start.year, last_month)[1])


def _column_or(results: pl.DataFrame, name: str, default: object, dtype: pl.DataType) -> pl.Expr:
    """The frame's column `name` (nulls as `default`), or `default` where the frame has none."""
    if name not in results.columns:
        return pl.lit(default, dtype)
    column = pl.col(name).cast(dtype)
    return column if default is None else column.fill_null(default)


def check_results(results: pl.DataFrame) -> None:
    """ValueError, in one sentence, for a judged frame that cannot be stored."""
    missing = [c for c in REQUIRED_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"the judged results lack the column(s) {', '.join(missing)}")
    bad_status = sorted(set(results["status"].drop_nulls()) - set(STATUSES)) + (
        ["(none)"] if results["status"].null_count() else []
    )
    if bad_status:
        raise ValueError(f"unknown result status(es) {', '.join(bad_status)}; expected {', '.join(STATUSES)}")
    if "consequence" in results.columns:
        bad = sorted(set(results["consequence"].drop_nulls()) - set(CONSEQUENCES))
        if bad:
            raise ValueError(f"unknown consequence(s) {', '.join(bad)}; expected {', '.join(CONSEQUENCES)}")


def result_rows(
    municipality_id: str, period_start: date, results: pl.DataFrame, period_kind: str = "day"
) -> pl.DataFrame:
    """The judged frame as `compliance_results` rows of one municipality's period.

    A result belongs to the period judged: a frame's own `period_start`/`period_end` columns (a
    monthly rule's data window) are not stored. Without `rule_code` a row is the daily screen's.
    """
    check_results(results)
    end = period_end(period_kind, period_start)
    rows = results.select(
        pl.lit(municipality_id).alias("municipality_id"),
        "standard",
        "parameter",
        pl.lit(period_kind).alias("period_kind"),
        pl.lit(period_start).alias("period_start"),
        pl.lit(end).alias("period_end"),
        _column_or(results, "rule_code", DAILY_RULE, pl.String).alias("rule_code"),
        "status",
        "statistic",
        "statistic_value",
        pl.col("limit").alias("limit_value"),
        "limit_kind",
        "unit",
        "deviation_pct",
        "rule",
        "citation",
        _column_or(results, "consequence", None, pl.String).alias("consequence"),
        _column_or(results, "confirmed", None, pl.Boolean).alias("confirmed"),
        "sample_count",
        "excluded_count",
        pl.lit(utcnow()).dt.cast_time_unit("us").alias("computed_at"),
    )
    twice = rows.filter(pl.struct(RESULT_KEY).is_duplicated())
    if twice.height:
        first = twice.row(0, named=True)
        raise ValueError(
            f"the judged results hold {first['standard']} {first['parameter']} rule "
            f"{first['rule_code']} statistic {first['statistic']} more than once"
        )
    return rows


def stored_results(
    conn: Connection, municipality_id: str, period_kind: str, period_start: date
) -> pl.DataFrame:
    """The stored results of one municipality's period, with their ids."""
    table = ComplianceResult.__table__
    rows = conn.execute(
        select(*(table.c[name] for name in STORED_SCHEMA)).where(
            table.c.municipality_id == municipality_id,
            table.c.period_kind == period_kind,
            table.c.period_start == period_start,
        )
    ).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=STORED_SCHEMA, orient="row")


def changed_results(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """The results of `after` that are new or differ from `before` in what was judged, with
    `is_new` and the earlier `status_before`, `statistic_value_before`, `limit_value_before`."""
    joined = after.join(before.select("id", *JUDGED_COLUMNS), on="id", how="left", suffix="_before")
    is_new = pl.col("status_before").is_null()
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_before")) for c in JUDGED_COLUMNS])
    return joined.filter(is_new | differs).with_columns(is_new=is_new).sort("id")


def result_audit_rows(municipality_id: str, changes: pl.DataFrame, now: datetime) -> list[dict]:
    """One `audit_log` row per new or changed result (what was judged; before and after on change)."""
    judged = pl.struct(
        "standard",
        "parameter",
        "period_kind",
        pl.col("period_start").dt.to_string("%Y-%m-%d"),
        "rule_code",
        "statistic",
        "status",
        "statistic_value",
        pl.col("limit_value").alias("limit"),
        "unit",
        "deviation_pct",
        "consequence",
    )
    before = pl.struct(
        pl.col("status_before").alias("status"),
        pl.col("statistic_value_before").alias("statistic_value"),
        pl.col("limit_value_before").alias("limit"),
        pl.col("deviation_pct_before").alias("deviation_pct"),
    )
    common = [
        pl.lit(municipality_id).alias("municipality_id"),
        pl.lit(now).alias("occurred_at"),
        pl.lit(ACTOR).alias("actor"),
        pl.lit("compliance_result").alias("entity_type"),
        pl.col("id").cast(pl.String).alias("entity_id"),
    ]
    new = changes.filter(pl.col("is_new")).select(
        *common, pl.lit("compliance_result.recorded").alias("action"), judged.alias("details")
    )
    changed = changes.filter(~pl.col("is_new")).select(
        *common,
        pl.lit("compliance_result.changed").alias("action"),
        pl.struct(judged.alias("after"), before.alias("before")).alias("details"),
    )
    return new.to_dicts() + changed.to_dicts()


def record_results(
    conn: Connection,
    municipality_id: str,
    period_start: date,
    results: pl.DataFrame,
    period_kind: str = "day",
) -> int:
    """Upsert a period's results, one row per (standard, parameter, rule, statistic), so reruns
    replace, not add; audit each new or changed result. Returns the rows written."""
    rows = result_rows(municipality_id, period_start, results, period_kind)
    before = stored_results(conn, municipality_id, period_kind, period_start)
    updated = [c for c in rows.columns if c not in RESULT_KEY]
    written = bulk_insert(conn, "compliance_results", rows, RESULT_KEY, updated)
    changes = changed_results(before, stored_results(conn, municipality_id, period_kind, period_start))
    audit_rows = result_audit_rows(municipality_id, changes, utcnow())
    if audit_rows:
        conn.execute(insert(AuditLog), audit_rows)
    return written


def local_today(conn: Connection, municipality_id: str) -> date:
    """Today in the municipality's timezone; ValueError for an unknown municipality."""
    timezone = conn.scalar(select(Municipality.timezone).where(Municipality.id == municipality_id))
    if timezone is None:
        raise ValueError(f"there is no municipality {municipality_id!r}")
    return datetime.now(ZoneInfo(timezone)).date()


def _needs_plan(municipality_id: str, period_kind: str, period_start: date):  # noqa: ANN202
    r = ComplianceResult
    violation = and_(
        r.status == "NON_COMPLIANT",
        or_(r.consequence.is_(None), r.consequence.in_(VIOLATION_CONSEQUENCES)),
    )
    investigation = and_(r.status.in_(("WARNING", "NON_COMPLIANT")), r.consequence == "investigation")
    return (
        select(r)
        .where(
            r.municipality_id == municipality_id,
            r.period_kind == period_kind,
            r.period_start == period_start,
            or_(violation, investigation),
        )
        .order_by(r.standard, r.parameter, r.rule_code, r.statistic)
    )


def record_violations(
    conn: Connection, municipality_id: str, period_start: date, period_kind: str = "day"
) -> dict:
    """Open the plans a period's results call for, each once, with audit entries: a violation plan
    and a `compliance.violation` event for each NON_COMPLIANT result whose consequence is a
    violation or a treatment-technique trigger (or none: the daily screen); an investigation plan,
    without event, for each WARNING or NON_COMPLIANT result whose consequence is investigation.
    Advisory results get none. Returns counts of violations and of what was new."""
    found = conn.execute(_needs_plan(municipality_id, period_kind, period_start)).all()
    planned = {
        result_id: (plan_id, severity)
        for result_id, plan_id, severity in conn.execute(
            select(ActionPlan.compliance_result_id, ActionPlan.id, ActionPlan.severity).where(
                ActionPlan.municipality_id == municipality_id,
                ActionPlan.compliance_result_id.in_([r.id for r in found]),
            )
        )
    }
    counts = {"violations": 0, "events_recorded": 0, "action_plans_created": 0}
    opened_on = local_today(conn, municipality_id) if found else None
    for result in found:
        kind = "investigation" if result.consequence == "investigation" else "violation"
        if result.id in planned:
            plan_id, severity = planned[result.id]
        else:
            plan = plan_for(result.parameter, result.deviation_pct, opened_on, result.rule_code, kind)
            plan_id, severity = _open_plan(conn, result, plan), plan.severity
            counts["action_plans_created"] += 1
        if kind == "violation":
            counts["violations"] += 1
            counts["events_recorded"] += _record_violation_event(conn, result, plan_id, severity)
    return counts


def _period_details(result: Row) -> dict:
    return {
        "standard": result.standard,
        "parameter": result.parameter,
        "period_kind": result.period_kind,
        "period_start": result.period_start.isoformat(),
        "rule_code": result.rule_code,
        "statistic": result.statistic,
        **({"day": result.period_start.isoformat()} if result.period_kind == "day" else {}),
    }


def _open_plan(conn: Connection, result: Row, plan) -> int:  # noqa: ANN001
    now = utcnow()
    plan_id = conn.execute(
        insert(ActionPlan)
        .values(
            municipality_id=result.municipality_id,
            compliance_result_id=result.id,
            kind=plan.kind,
            parameter=result.parameter,
            rule_code=result.rule_code,
            severity=plan.severity,
            steps=list(plan.steps),
            owner=plan.owner,
            due_date=plan.due_date,
            status="open",
            notes=[],
            created_at=now,
            updated_at=now,
        )
        .returning(ActionPlan.id)
    ).scalar_one()
    record_audit(
        conn,
        municipality_id=result.municipality_id,
        actor=ACTOR,
        action="action_plan.created",
        entity_type="action_plan",
        entity_id=plan_id,
        details={
            "compliance_result_id": result.id,
            "kind": plan.kind,
            **_period_details(result),
            "status": result.status,
            "severity": plan.severity,
            "owner": plan.owner,
            "due_date": plan.due_date.isoformat(),
        },
    )
    return plan_id


def violation_dedupe_key(result: Row) -> str:
    """One `compliance.violation` event per result: the daily screen keeps its key of before 0007."""
    head = f"compliance.violation:{result.municipality_id}:{result.standard}:{result.parameter}"
    if result.period_kind == "day" and result.rule_code == DAILY_RULE:
        return f"{head}:{result.period_start.isoformat()}"
    return (
        f"{head}:{result.period_kind}:{result.period_start.isoformat()}:{result.rule_code}:{result.statistic}"
    )


def _record_violation_event(conn: Connection, result: Row, plan_id: int, severity: str) -> int:
    event_id = record_event(
        conn,
        municipality_id=result.municipality_id,
        event_type="compliance.violation",
        data=_event_data(result, plan_id, severity),
        dedupe_key=violation_dedupe_key(result),
    )
    if event_id is None:
        return 0
    record_audit(
        conn,
        municipality_id=result.municipality_id,
        actor=ACTOR,
        action="compliance.violation_recorded",
        entity_type="compliance_result",
        entity_id=result.id,
        details={"event_id": event_id, **_period_details(result)},
    )
    return 1


def _event_data(result: Row, plan_id: int, severity: str | None) -> dict:
    return {
        "municipality_id": result.municipality_id,
        **_period_details(result),
        "period_end": result.period_end.isoformat(),
        "statistic_value": result.statistic_value,
        "limit": result.limit_value,
        "limit_kind": result.limit_kind,
        "unit": result.unit,
        "deviation_pct": result.deviation_pct,
        "rule": result.rule,
        "citation": result.citation,
        "consequence": result.consequence,
        "compliance_result_id": result.id,
        "action_plan_id": plan_id,
        "severity": severity,
    }
