"""The anomaly stage of one municipality and day: detect, store, group into incidents, resolve."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
from prefect import task
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from tasks.analytics.readings import (
    READING_SCHEMA,
    UTC_TIME,
    db_value,
    lock_municipality,
    lookback_groups,
    municipality_timezone,
    read_municipality_sensors,
    read_sensor_readings,
)
from tasks.anomalies.detectors import detector_lookback, find_anomalies, skip_sentences, skipped_sensors
from tasks.anomalies.incident_store import (
    assign_anomalies,
    open_new_incidents,
    read_open_incidents,
    read_unassigned_anomalies,
    refresh_incidents,
    resolve_quiet_incidents,
)
from tasks.anomalies.incidents import QUIET_PERIOD, plan_incidents
from tasks.calendar import local_day_bounds
from tasks.database import begin, is_postgres, load_sql, read_frame
from tasks.models import Anomaly, utcnow
from tasks.stages import run_logger, stage

ANOMALY_KEY = ["sensor_id", "observed_at", "method"]


def read_detection_readings(
    conn: Connection,
    municipality_id: str,
    sensors: pl.DataFrame,
    start: datetime,
    end: datetime,
    window: int | timedelta | None = None,
    days: int | None = None,
) -> pl.DataFrame:
    """The readings of [start, end) plus, per sensor, the lookback the detectors need: `window`
    (a duration, default: the longest chain of windows in detectors.yaml with half again for
    gaps; or a count of readings at each sensor's interval) and at least `days` whole days
    before (default: the pattern break's profile days)."""
    needed_window, needed_days = detector_lookback()
    window = needed_window if window is None else window
    days = needed_days if days is None else days
    at_least = timedelta(days=days, hours=1) if days else timedelta(0)  # an hour for daylight saving
    frames = [
        read_sensor_readings(conn, municipality_id, ids, start - lookback, end)
        for lookback, ids in lookback_groups(sensors, window, at_least=at_least).iter_rows()
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=READING_SCHEMA)


def insert_anomalies(
    conn: Connection,
    municipality_id: str,
    found: pl.DataFrame,
    start: datetime,
    end: datetime,
    detected_at: datetime,
) -> int:
    """Store the anomalies of [start, end) not stored before (one per sensor, time and method);
    returns how many are new. Core statements, not `bulk_insert`: the `window` column is a
    reserved word in PostgreSQL and only SQLAlchemy quotes it."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    stored = read_frame(
        conn,
        load_sql("read_anomaly_keys"),
        params,
        {"sensor_id": pl.String, "observed_at": UTC_TIME, "method": pl.String},
    )
    new = found.join(stored, on=ANOMALY_KEY, how="anti")
    if new.is_empty():
        return 0
    dialect = postgresql if is_postgres(conn) else sqlite
    statement = dialect.insert(Anomaly).on_conflict_do_nothing(index_elements=ANOMALY_KEY)
    rows = new.with_columns(
        municipality_id=pl.lit(municipality_id), detected_at=pl.lit(detected_at)
    ).to_dicts()
    conn.execute(statement, rows)
    return new.height


@task(
    name="detect_anomalies",
    task_run_name="detect-anomalies-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def detect_anomalies(
    municipality_id: str, day: date, quiet_minutes: int = int(QUIET_PERIOD.total_seconds() // 60)
) -> dict:
    """Detect one municipality's anomalies of one day and group them into incidents."""
    quiet = timedelta(minutes=quiet_minutes)
    with stage("detect_anomalies", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)
        tz = municipality_timezone(conn, municipality_id)
        start, end = local_day_bounds(day, tz)
        now = utcnow()
        sensors = read_municipality_sensors(conn, municipality_id)
        readings = read_detection_readings(conn, municipality_id, sensors, start, end)
        found = find_anomalies(readings, sensors, start, end, timezone=tz)
        skipped = skipped_sensors(readings, sensors)
        for sentence in skip_sentences(skipped):
            run_logger(__name__).info("%s, %s: %s", municipality_id, day.isoformat(), sentence)
        from tasks.detection.nightly import learned_anomalies  # it builds on this package

        learned = learned_anomalies(conn, municipality_id, sensors, start, end)
        found = pl.concat([found, learned], how="diagonal_relaxed")
        inserted = insert_anomalies(conn, municipality_id, found, start, end, now)
        new = read_unassigned_anomalies(conn, municipality_id, start, end)
        current = read_open_incidents(conn, municipality_id)
        plan = plan_incidents(new, current, quiet, sensors)
        opened = plan["incident_id"].null_count()
        plan = open_new_incidents(conn, municipality_id, plan, sensors, tz, now)
        assigned = assign_anomalies(conn, municipality_id, plan)
        joined = current.filter(pl.col("id").is_in(plan["incident_id"].to_list()))
        escalated = refresh_incidents(conn, municipality_id, joined, sensors, tz, now)
        resolved = resolve_quiet_incidents(conn, municipality_id, end - quiet, sensors, quiet, now)
        result.rows = readings.height
        result.details = {
            "anomalies_found": found.height,
            "anomalies_new": inserted,
            "anomalies_grouped": assigned,
            "incidents_opened": opened,
            "incidents_extended": joined.height,
            "incidents_escalated": escalated,
            "incidents_resolved": resolved,
            "detectors_skipped": {
                name: n for name, n in skipped.group_by("detector").len().sort("detector").iter_rows()
            },
        }
    return result.as_dict()
