"""The Prefect task that judges one municipality's local day against its standards."""

from __future__ import annotations

import logging
from datetime import date

import polars as pl
from prefect import task
from sqlalchemy import Connection, select

from tasks.audit import record_audit
from tasks.compliance.judge import STATUS_RANK, daily_statistics, judge, with_all_parameters
from tasks.compliance.periods import day_window
from tasks.compliance.records import ACTOR, record_results, record_violations
from tasks.compliance.standards import known_standards, load_standards
from tasks.database import begin, load_sql, read_frame
from tasks.models import Municipality
from tasks.stages import run_logger, stage

READING_SCHEMA = {
    "parameter": pl.String,
    "kind": pl.String,
    "value": pl.Float64,
    "qc_flag": pl.Int64,
}


def _logger() -> logging.Logger | logging.LoggerAdapter:
    return run_logger("waterline.compliance")


def load_municipality(conn: Connection, municipality_id: str):
    """The municipality row (timezone, standards, regulator e-mails); ValueError if unknown."""
    row = conn.execute(select(Municipality).where(Municipality.id == municipality_id)).one_or_none()
    if row is None:
        raise ValueError(f"unknown municipality {municipality_id!r}")
    return row


def judge_day(conn: Connection, municipality_id: str, day: date) -> tuple[pl.DataFrame, list[str]]:
    """The judged results of one municipality's local day, and the standards it names but
    Waterline does not know."""
    town = load_municipality(conn, municipality_id)
    params = day_window(conn, municipality_id, day, town.timezone)
    readings = read_frame(conn, load_sql("load_compliance_readings"), params, READING_SCHEMA)
    monitored = read_frame(
        conn,
        load_sql("load_compliance_parameters"),
        {"municipality_id": municipality_id},
        {"parameter": pl.String},
    )
    stats = with_all_parameters(daily_statistics(readings), monitored["parameter"].to_list())
    wanted = [s.upper() for s in (town.standards or [])]
    unknown = sorted(set(wanted) - set(known_standards()))
    return judge(stats, load_standards(day, wanted)), unknown


@task(
    name="judge_compliance",
    task_run_name="judge-compliance-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def judge_compliance(municipality_id: str, day: date) -> dict:
    """Judge one municipality's local day against its standards and record each violation once."""
    with stage("judge_compliance", municipality_id) as result:
        with begin() as conn:
            results, unknown = judge_day(conn, municipality_id, day)
            record_results(conn, municipality_id, day, results)
            counts = record_violations(conn, municipality_id, day)
            by_status = dict(results.group_by("status").len().iter_rows())
            record_audit(
                conn,
                municipality_id=municipality_id,
                actor=ACTOR,
                action="compliance.judged",
                entity_type="compliance_day",
                entity_id=f"{municipality_id}:{day.isoformat()}",
                details={"day": day.isoformat(), "results": results.height, **by_status, **counts},
            )
        result.rows = results.height
        result.details = {
            **{status.lower(): by_status.get(status, 0) for status in STATUS_RANK},
            **counts,
        }
        if unknown:
            result.details["unknown_standards"] = ", ".join(unknown)
            _logger().warning("%s names unknown standards: %s", municipality_id, ", ".join(unknown))
    _logger().info(
        "compliance %s %s: %d results, %d violations",
        municipality_id,
        day,
        result.rows,
        counts["violations"],
    )
    return result.as_dict()
