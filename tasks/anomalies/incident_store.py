"""Incidents in the database: read the open ones, open, extend and resolve them, and record
their webhook events and audit entries, all inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import Connection, bindparam, insert, update

from tasks.analytics.readings import UTC_TIME, db_value
from tasks.anomalies.incidents import (
    ANOMALY_ROW_SCHEMA,
    INCIDENT_SCHEMA,
    QUIET_PERIOD,
    incident_figures,
    severity_rank,
    with_summaries,
)
from tasks.audit import record_audit
from tasks.database import load_sql, read_frame
from tasks.models import Anomaly, Incident, utcnow
from tasks.webhooks.outbox import record_event

ACTOR = "detect_anomalies"


def read_open_incidents(conn: Connection, municipality_id: str) -> pl.DataFrame:
    """The incidents of one municipality that are open or acknowledged."""
    return read_frame(
        conn, load_sql("read_open_incidents"), {"municipality_id": municipality_id}, INCIDENT_SCHEMA
    )


def read_unassigned_anomalies(
    conn: Connection, municipality_id: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Anomalies of one municipality observed in [start, end) that no incident holds yet."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_unassigned_anomalies"), params, ANOMALY_ROW_SCHEMA)


def read_incident_anomalies(conn: Connection, municipality_id: str, ids: list[int]) -> pl.DataFrame:
    """Every anomaly held by the given incidents of one municipality."""
    rows = conn.execute(
        Anomaly.__table__.select()
        .with_only_columns(
            Anomaly.incident_id,
            Anomaly.station_id,
            Anomaly.sensor_id,
            Anomaly.method,
            Anomaly.observed_at,
            Anomaly.severity,
            Anomaly.score,
            Anomaly.explanation,
        )
        .where(Anomaly.municipality_id == municipality_id, Anomaly.incident_id.in_(ids))
    ).all()
    schema = {
        "incident_id": pl.Int64,
        "station_id": pl.String,
        "sensor_id": pl.String,
        "method": pl.String,
        "observed_at": UTC_TIME,
        "severity": pl.String,
        "score": pl.Float64,
        "explanation": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def event_data(municipality_id: str, row: dict) -> dict:
    """The webhook payload `data` of an incident event."""
    return {
        "incident_id": row["id"],
        "municipality_id": municipality_id,
        "station_id": row["station_id"],
        "sensor_id": row["sensor_id"],
        "parameter": row["parameter"],
        "kind": row["kind"],
        "severity": row["severity"],
        "status": row["status"],
        "first_observed_at": row["first_observed_at"].isoformat(),
        "last_observed_at": row["last_observed_at"].isoformat(),
        "anomaly_count": row["anomaly_count"],
        "summary": row["summary"],
    }


def open_new_incidents(
    conn: Connection,
    municipality_id: str,
    plan: pl.DataFrame,
    sensors: pl.DataFrame,
    tz: str,
    now: datetime,
) -> pl.DataFrame:
    """Insert one incident per planned run that joins none (one run per station and first
    anomaly); returns the plan with every run's `incident_id` filled in. Records `incident.opened`
    and an audit entry for each.

    Like `resolved_at`, `opened_at` is on the data's clock (the first anomaly), so a backfill
    or a rerun dates an incident the same way; the audit entry keeps when it was written."""
    fresh = with_summaries(plan.filter(pl.col("incident_id").is_null()), sensors, tz)
    if fresh.is_empty():
        return plan
    rows = (
        fresh.select(
            "station_id",
            "sensor_id",
            "kind",
            "severity",
            "summary",
            "first_observed_at",
            "last_observed_at",
            "anomaly_count",
        )
        .with_columns(
            municipality_id=pl.lit(municipality_id),
            status=pl.lit("open"),
            opened_at=pl.col("first_observed_at"),
            updated_at=pl.lit(now),
        )
        .to_dicts()
    )
    ids = (
        conn.execute(insert(Incident).returning(Incident.id, sort_by_parameter_order=True), rows)
        .scalars()
        .all()
    )
    fresh = fresh.with_columns(pl.Series("id", ids, dtype=pl.Int64), status=pl.lit("open"))
    for row in fresh.to_dicts():
        record_event(
            conn,
            municipality_id=municipality_id,
            event_type="incident.opened",
            data=event_data(municipality_id, row),
            dedupe_key=f"incident.opened:{row['id']}",
        )
        record_audit(
            conn,
            municipality_id=municipality_id,
            actor=ACTOR,
            action="incident.opened",
            entity_type="incident",
            entity_id=row["id"],
            details={
                "sensor_id": row["sensor_id"],
                "kind": row["kind"],
                "severity": row["severity"],
                "anomaly_count": row["anomaly_count"],
            },
        )
    return (
        plan.join(
            fresh.select("station_id", "first_observed_at", pl.col("id").alias("new_id")),
            on=["station_id", "first_observed_at"],
            how="left",
        )
        .with_columns(pl.coalesce("incident_id", "new_id").alias("incident_id"))
        .drop("new_id")
    )


def assign_anomalies(conn: Connection, municipality_id: str, plan: pl.DataFrame) -> int:
    """Point each planned run's anomalies (`anomaly_ids`) at its incident; returns how many were
    assigned."""
    if plan.is_empty():
        return 0
    table = Anomaly.__table__
    statement = (
        update(table)
        .where(
            table.c.municipality_id == municipality_id,
            table.c.id == bindparam("b_id"),
            table.c.incident_id.is_(None),
        )
        .values(incident_id=bindparam("b_incident_id"))
    )
    params = (
        plan.select(pl.col("anomaly_ids").alias("b_id"), pl.col("incident_id").alias("b_incident_id"))
        .explode("b_id")
        .drop_nulls("b_id")
        .to_dicts()
    )
    if params:
        conn.execute(statement, params)
    return len(params)


def refresh_incidents(
    conn: Connection,
    municipality_id: str,
    before: pl.DataFrame,
    sensors: pl.DataFrame,
    tz: str,
    now: datetime,
) -> int:
    """Recount the given existing incidents from the anomalies they now hold (severity, kind and
    lead sensor as `incident_figures` weighs them); records `incident.updated` when an incident's
    severity rose. Returns how many rose."""
    if before.is_empty():
        return 0
    held = read_incident_anomalies(conn, municipality_id, before["id"].to_list())
    figures = incident_figures(held, sensors)
    after = with_summaries(
        before.select(
            "id",
            "station_id",
            "status",
            pl.col("severity").alias("previous_severity"),
        ).join(figures, left_on="id", right_on="incident_id"),
        sensors,
        tz,
    )
    table = Incident.__table__
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            sensor_id=bindparam("b_sensor_id"),
            kind=bindparam("b_kind"),
            severity=bindparam("b_severity"),
            summary=bindparam("b_summary"),
            first_observed_at=bindparam("b_first"),
            last_observed_at=bindparam("b_last"),
            anomaly_count=bindparam("b_count"),
            updated_at=now,
        ),
        after.select(
            pl.col("id").alias("b_id"),
            pl.col("sensor_id").alias("b_sensor_id"),
            pl.col("kind").alias("b_kind"),
            pl.col("severity").alias("b_severity"),
            pl.col("summary").alias("b_summary"),
            pl.col("first_observed_at").alias("b_first"),
            pl.col("last_observed_at").alias("b_last"),
            pl.col("anomaly_count").alias("b_count"),
        ).to_dicts(),
    )
    rose = after.filter(severity_rank() > severity_rank("previous_severity"))
    for row in rose.to_dicts():
        data = {**event_data(municipality_id, row), "previous_severity": row["previous_severity"]}
        record_event(
            conn,
            municipality_id=municipality_id,
            event_type="incident.updated",
            data=data,
            dedupe_key=f"incident.updated:{row['id']}:{row['severity']}",
        )
    return rose.height


def resolve_quiet_incidents(
    conn: Connection,
    municipality_id: str,
    quiet_since: datetime,
    sensors: pl.DataFrame,
    quiet_period: timedelta = QUIET_PERIOD,
    now: datetime | None = None,
) -> int:
    """Resolve the open incidents whose last anomaly is before `quiet_since` (the end of the day
    less the quiet period); `resolved_at` is when the quiet period ran out. Records
    `incident.resolved` and an audit entry for each; returns how many were resolved."""
    quiet = read_open_incidents(conn, municipality_id).filter(pl.col("last_observed_at") < quiet_since)
    if quiet.is_empty():
        return 0
    now = now or utcnow()
    quiet = quiet.with_columns(
        (pl.col("last_observed_at") + quiet_period).alias("resolved_at"), status=pl.lit("resolved")
    ).join(sensors.select("sensor_id", "parameter"), on="sensor_id", how="left")
    table = Incident.__table__
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            status="resolved",
            resolved_at=bindparam("b_resolved_at"),
            updated_at=now,
        ),
        quiet.select(pl.col("id").alias("b_id"), pl.col("resolved_at").alias("b_resolved_at")).to_dicts(),
    )
    for row in quiet.to_dicts():
        data = {**event_data(municipality_id, row), "resolved_at": row["resolved_at"].isoformat()}
        record_event(
            conn,
            municipality_id=municipality_id,
            event_type="incident.resolved",
            data=data,
            dedupe_key=f"incident.resolved:{row['id']}",
        )
        record_audit(
            conn,
            municipality_id=municipality_id,
            actor=ACTOR,
            action="incident.resolved",
            entity_type="incident",
            entity_id=row["id"],
            details={
                "resolved_at": row["resolved_at"].isoformat(),
                "anomaly_count": row["anomaly_count"],
            },
        )
    return quiet.height
