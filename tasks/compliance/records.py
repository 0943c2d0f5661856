"""Writing a judged day: compliance results (upserted), violation events, action plans, audit."""

from __future__ import annotations

from datetime import date

import polars as pl
from sqlalchemy import Connection, insert, select

from tasks.audit import record_audit
from tasks.compliance.plans import plan_for
from tasks.database import bulk_insert
from tasks.models import ActionPlan, ComplianceResult, utcnow
from tasks.webhooks.outbox import record_event

ACTOR = "waterline.compliance"

RESULT_KEY = ["municipality_id", "standard", "parameter", "period_kind", "period_start"]


def result_rows(municipality_id: str, day: date, results: pl.DataFrame) -> pl.DataFrame:
    """The judged frame as `compliance_results` rows of one municipality's day."""
    return results.select(
        pl.lit(municipality_id).alias("municipality_id"),
        "standard",
        "parameter",
        pl.lit("day").alias("period_kind"),
        pl.lit(day).alias("period_start"),
        pl.lit(day).alias("period_end"),
        "status",
        "statistic",
        "statistic_value",
        pl.col("limit").alias("limit_value"),
        "limit_kind",
        "unit",
        "deviation_pct",
        "rule",
        "citation",
        "sample_count",
        "excluded_count",
        pl.lit(utcnow()).dt.cast_time_unit("us").alias("computed_at"),
    )


def record_results(conn: Connection, municipality_id: str, day: date, results: pl.DataFrame) -> int:
    """Upsert the day's results: one row per (standard, parameter), so reruns replace, not add."""
    rows = result_rows(municipality_id, day, results)
    updated = [c for c in rows.columns if c not in RESULT_KEY]
    return bulk_insert(conn, "compliance_results", rows, RESULT_KEY, updated)


def record_violations(conn: Connection, municipality_id: str, day: date) -> dict:
    """For each NON_COMPLIANT result of the day: an action plan and a `compliance.violation`
    event, each once, with audit entries. Returns counts of what was new."""
    violations = conn.execute(
        select(ComplianceResult)
        .where(
            ComplianceResult.municipality_id == municipality_id,
            ComplianceResult.period_kind == "day",
            ComplianceResult.period_start == day,
            ComplianceResult.status == "NON_COMPLIANT",
        )
        .order_by(ComplianceResult.standard, ComplianceResult.parameter)
    ).all()
    planned = dict(
        conn.execute(
            select(ActionPlan.compliance_result_id, ActionPlan.id).where(
                ActionPlan.municipality_id == municipality_id,
                ActionPlan.compliance_result_id.in_([v.id for v in violations]),
            )
        ).all()
    )
    counts = {"violations": len(violations), "events_recorded": 0, "action_plans_created": 0}
    now = utcnow()
    for violation in violations:
        plan = plan_for(violation.parameter, violation.deviation_pct, now.date())
        plan_id = planned.get(violation.id)
        if plan_id is None:
            plan_id = conn.execute(
                insert(ActionPlan)
                .values(
                    municipality_id=municipality_id,
                    compliance_result_id=violation.id,
                    parameter=violation.parameter,
                    steps=list(plan.steps),
                    owner=plan.owner,
                    due_date=plan.due_date,
                    status="open",
                    created_at=now,
                    updated_at=now,
                )
                .returning(ActionPlan.id)
            ).scalar_one()
            counts["action_plans_created"] += 1
            record_audit(
                conn,
                municipality_id=municipality_id,
                actor=ACTOR,
                action="action_plan.created",
                entity_type="action_plan",
                entity_id=plan_id,
                details={
                    "compliance_result_id": violation.id,
                    "standard": violation.standard,
                    "parameter": violation.parameter,
                    "day": day.isoformat(),
                    "severity": plan.severity,
                    "owner": plan.owner,
                    "due_date": plan.due_date.isoformat(),
                },
            )
        event_id = record_event(
            conn,
            municipality_id=municipality_id,
            event_type="compliance.violation",
            data=_event_data(municipality_id, day, violation, plan_id, plan.severity),
            dedupe_key=(
                f"compliance.violation:{municipality_id}:{violation.standard}:"
                f"{violation.parameter}:{day.isoformat()}"
            ),
        )
        if event_id is not None:
            counts["events_recorded"] += 1
            record_audit(
                conn,
                municipality_id=municipality_id,
                actor=ACTOR,
                action="compliance.violation_recorded",
                entity_type="compliance_result",
                entity_id=violation.id,
                details={
                    "event_id": event_id,
                    "standard": violation.standard,
                    "parameter": violation.parameter,
                    "day": day.isoformat(),
                },
            )
    return counts


def _event_data(municipality_id: str, day: date, violation, plan_id: int, severity: str) -> dict:  # noqa: ANN001
    return {
        "municipality_id": municipality_id,
        "day": day.isoformat(),
        "standard": violation.standard,
        "parameter": violation.parameter,
        "statistic": violation.statistic,
        "statistic_value": violation.statistic_value,
        "limit": violation.limit_value,
        "limit_kind": violation.limit_kind,
        "unit": violation.unit,
        "deviation_pct": violation.deviation_pct,
        "rule": violation.rule,
        "citation": violation.citation,
        "compliance_result_id": violation.id,
        "action_plan_id": plan_id,
        "severity": severity,
    }
