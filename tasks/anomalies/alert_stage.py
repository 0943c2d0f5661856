"""The alert stage of one municipality and day: the day's stored anomalies become alerts, stored
with their webhook events in one transaction (what an alert is: tasks/anomalies/alerts.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
from prefect import task
from sqlalchemy import Connection, bindparam, insert, or_, select, update

from tasks.analytics.readings import (
    UTC_TIME,
    db_value,
    lock_municipality,
    municipality_timezone,
    read_municipality_sensors,
)
from tasks.anomalies.alerts import (
    ALERT_ANOMALY_SCHEMA,
    ALERT_SCHEMA,
    RUN_SCHEMA,
    alert_runs,
    event_data,
    match_runs,
    merged_alerts,
)
from tasks.anomalies.incidents import QUIET_PERIOD
from tasks.calendar import local_day_bounds
from tasks.database import begin, load_sql, read_frame
from tasks.models import Alert, utcnow
from tasks.stages import stage
from tasks.webhooks.outbox import record_event


def read_alert_anomalies(
    conn: Connection, municipality_id: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Every anomaly of one municipality observed in [start, end)."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_alert_anomalies"), params, ALERT_ANOMALY_SCHEMA)


def read_alerts_near(
    conn: Connection, municipality_id: str, start: datetime, end: datetime, quiet_period: timedelta
) -> pl.DataFrame:
    """The stored alerts a run of anomalies in [start, end) could join, and every open one."""
    columns = [getattr(Alert, name) for name in ALERT_SCHEMA]
    rows = conn.execute(
        select(*columns).where(
            Alert.municipality_id == municipality_id,
            or_(
                Alert.status == "open",
                (Alert.last_observed_at >= start - quiet_period)
                & (Alert.first_observed_at < end + quiet_period),
            ),
        )
    ).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=ALERT_SCHEMA, orient="row")


def _record(conn: Connection, municipality_id: str, event_type: str, rows: pl.DataFrame, names: dict) -> None:
    for row in rows.to_dicts():
        record_event(
            conn,
            municipality_id=municipality_id,
            event_type=event_type,
            data=event_data(municipality_id, row, names),
            dedupe_key=f"{event_type}:{row['id']}",
            alert_level=row["level"],
        )


def create_alerts(
    conn: Connection, municipality_id: str, fresh: pl.DataFrame, names: dict, now: datetime
) -> pl.DataFrame:
    """Insert one open alert per run that joins none; records `alert.created` for each."""
    if fresh.is_empty():
        return pl.DataFrame(schema=ALERT_SCHEMA)
    rows = fresh.select(list(RUN_SCHEMA)).with_columns(
        municipality_id=pl.lit(municipality_id),
        status=pl.lit("open"),
        created_at=pl.lit(now),
        updated_at=pl.lit(now),
    )
    ids = (
        conn.execute(insert(Alert).returning(Alert.id, sort_by_parameter_order=True), rows.to_dicts())
        .scalars()
        .all()
    )
    created = rows.with_columns(pl.Series("id", ids, dtype=pl.Int64), resolved_at=pl.lit(None, UTC_TIME))
    created = created.select(list(ALERT_SCHEMA)).cast(ALERT_SCHEMA)
    _record(conn, municipality_id, "alert.created", created, names)
    return created


def extend_alerts(conn: Connection, changed: pl.DataFrame, now: datetime) -> None:
    """Write the new figures of alerts that runs joined."""
    if changed.is_empty():
        return
    table = Alert.__table__
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            first_observed_at=bindparam("b_first"),
            last_observed_at=bindparam("b_last"),
            severity=bindparam("b_severity"),
            methods=bindparam("b_methods"),
            explanation=bindparam("b_explanation"),
            resolved_at=bindparam("b_resolved_at"),
            updated_at=now,
        ),
        [
            {
                "b_id": r["id"],
                "b_first": r["first_observed_at"],
                "b_last": r["last_observed_at"],
                "b_severity": r["severity"],
                "b_methods": list(r["methods"]),
                "b_explanation": r["explanation"],
                "b_resolved_at": r["resolved_at"],
            }
            for r in changed.to_dicts()
        ],
    )


def resolve_quiet_alerts(
    conn: Connection,
    municipality_id: str,
    quiet_since: datetime,
    names: dict,
    quiet_period: timedelta,
    now: datetime,
) -> int:
    """Resolve the open alerts whose last anomaly is before `quiet_since` (the end of the day less
    the quiet period); records `alert.resolved` for each. Returns how many were resolved."""
    columns = [getattr(Alert, name) for name in ALERT_SCHEMA]
    rows = conn.execute(
        select(*columns)
        .where(
            Alert.municipality_id == municipality_id,
            Alert.status == "open",
            Alert.last_observed_at < quiet_since,
        )
        .order_by(Alert.id)
    ).all()
    quiet = pl.DataFrame([tuple(r) for r in rows], schema=ALERT_SCHEMA, orient="row")
    if quiet.is_empty():
        return 0
    quiet = quiet.with_columns(
        (pl.col("last_observed_at") + quiet_period).alias("resolved_at"), status=pl.lit("resolved")
    )
    table = Alert.__table__
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(status="resolved", resolved_at=bindparam("b_resolved_at"), updated_at=now),
        quiet.select(pl.col("id").alias("b_id"), pl.col("resolved_at").alias("b_resolved_at")).to_dicts(),
    )
    _record(conn, municipality_id, "alert.resolved", quiet, names)
    return quiet.height


def update_alerts(
    conn: Connection,
    municipality_id: str,
    start: datetime,
    end: datetime,
    quiet_period: timedelta = QUIET_PERIOD,
    now: datetime | None = None,
) -> dict:
    """Bring one municipality's alerts up to date with its anomalies of [start, end), in the
    caller's transaction: create, extend, then resolve what is quiet by `end`. Returns figures."""
    now = now or utcnow()
    names = dict(
        read_municipality_sensors(conn, municipality_id).select("sensor_id", "parameter").iter_rows()
    )
    anomalies = read_alert_anomalies(conn, municipality_id, start, end)
    stored = read_alerts_near(conn, municipality_id, start, end, quiet_period)
    matched = match_runs(alert_runs(anomalies, quiet_period), stored, quiet_period)
    changed = merged_alerts(matched, stored, quiet_period)
    extend_alerts(conn, changed, now)
    created = create_alerts(conn, municipality_id, matched.filter(pl.col("alert_id").is_null()), names, now)
    resolved = resolve_quiet_alerts(conn, municipality_id, end - quiet_period, names, quiet_period, now)
    return {
        "anomalies": anomalies.height,
        "alerts_created": created.height,
        "alerts_extended": changed.height,
        "alerts_resolved": resolved,
    }


@task(
    name="raise_alerts",
    task_run_name="raise-alerts-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def raise_alerts(
    municipality_id: str, day: date, quiet_minutes: int = int(QUIET_PERIOD.total_seconds() // 60)
) -> dict:
    """Turn one municipality's anomalies of one day into alerts and resolve the quiet ones."""
    with stage("raise_alerts", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)
        start, end = local_day_bounds(day, municipality_timezone(conn, municipality_id))
        figures = update_alerts(conn, municipality_id, start, end, timedelta(minutes=quiet_minutes))
        result.rows = figures.pop("anomalies")
        result.details = figures
    return result.as_dict()
