"""The maintenance stage of one municipality and day: score every sensor, flag those due."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from prefect import task
from sqlalchemy import Connection

from tasks.analytics.changes import rows_to_write
from tasks.analytics.readings import (
    db_value,
    lock_municipality,
    municipality_timezone,
    read_municipality_readings,
    read_municipality_sensors,
)
from tasks.calendar import local_day_bounds
from tasks.database import begin, bulk_insert, load_sql, read_frame
from tasks.maintenance.health import HEALTH_SCHEMA, HISTORY_DAYS, sensor_health
from tasks.models import utcnow
from tasks.stages import stage
from tasks.webhooks.outbox import record_event

KEY = ["sensor_id", "day"]
COMPARED = [
    "health_score",
    "risk_level",
    "predicted_failure_date",
    "confidence",
    "calibration_due_date",
    "recommendation",
]
DUE_RISKS = ("HIGH", "CRITICAL")
RISK_RANK = {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}


def read_day_predictions(conn: Connection, municipality_id: str, day: date) -> pl.DataFrame:
    """The stored maintenance predictions of one municipality for one day."""
    schema = {name: HEALTH_SCHEMA[name] for name in (*KEY, *COMPARED)}
    params = {"municipality_id": municipality_id, "day": db_value(conn, day)}
    return read_frame(conn, load_sql("read_day_predictions"), params, schema)


def read_previous_risks(conn: Connection, municipality_id: str, day: date) -> pl.DataFrame:
    """Each sensor's risk level on its latest scored day before `day`."""
    params = {"municipality_id": municipality_id, "day": db_value(conn, day)}
    schema = {"sensor_id": pl.String, "previous_risk_level": pl.String}
    return read_frame(conn, load_sql("read_previous_risks"), params, schema)


def risen(scored: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """The sensors whose risk rose to MEDIUM or above since their previous scored day (a sensor
    never scored before counts as LOW), with `previous_risk_level`."""
    rank = {"return_dtype": pl.Int8, "default": 0}
    return (
        scored.join(previous, on="sensor_id", how="left")
        .with_columns(pl.col("previous_risk_level").fill_null("LOW"))
        .filter(
            pl.col("risk_level").replace_strict(RISK_RANK, **rank)
            > pl.col("previous_risk_level").replace_strict(RISK_RANK, **rank)
        )
    )


def record_maintenance_due(
    conn: Connection,
    municipality_id: str,
    scored: pl.DataFrame,
    sensors: pl.DataFrame,
    previous: pl.DataFrame,
) -> int:
    """One `sensor.maintenance_due` event per sensor whose risk rose to MEDIUM or above since its
    previous scored day (once per sensor, day and risk: a rerun records nothing new); returns how
    many events were new. A sensor that stays HIGH is not announced again every day."""
    due = risen(scored, previous).join(
        sensors.select("sensor_id", "station_id", "parameter"), on="sensor_id"
    )
    recorded = 0
    for row in due.to_dicts():
        data = {
            "municipality_id": municipality_id,
            "station_id": row["station_id"],
            "sensor_id": row["sensor_id"],
            "parameter": row["parameter"],
            "day": row["day"].isoformat(),
            "risk_level": row["risk_level"],
            "previous_risk_level": row["previous_risk_level"],
            "health_score": row["health_score"],
            "predicted_failure_date": _iso(row["predicted_failure_date"]),
            "confidence": row["confidence"],
            "calibration_due_date": _iso(row["calibration_due_date"]),
            "recommendation": row["recommendation"],
        }
        key = f"sensor.maintenance_due:{row['sensor_id']}:{row['day']}:{row['risk_level']}"
        if record_event(
            conn,
            municipality_id=municipality_id,
            event_type="sensor.maintenance_due",
            data=data,
            dedupe_key=key,
        ):
            recorded += 1
    return recorded


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


@task(
    name="score_sensor_health",
    task_run_name="score-sensors-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def score_sensor_health(municipality_id: str, day: date) -> dict:
    """Score the health of one municipality's online sensors on one day from their last 14 days."""
    with stage("score_sensors", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)
        tz = municipality_timezone(conn, municipality_id)
        start, _ = local_day_bounds(day - timedelta(days=HISTORY_DAYS - 1), tz)
        _, end = local_day_bounds(day, tz)
        # Lab parameters are samples analysed elsewhere: no instrument of ours to service.
        sensors = read_municipality_sensors(conn, municipality_id).filter(
            pl.col("is_active") == 1, pl.col("kind") == "online"
        )
        history = read_municipality_readings(conn, municipality_id, start, end)
        scored = sensor_health(history, sensors, day, tz)
        changed = rows_to_write(
            scored, read_day_predictions(conn, municipality_id, day), KEY, COMPARED
        )
        written = bulk_insert(
            conn,
            "maintenance_predictions",
            changed.with_columns(
                municipality_id=pl.lit(municipality_id), computed_at=pl.lit(utcnow())
            ),
            conflict_columns=KEY,
            update_columns=[*COMPARED, "factors", "computed_at"],
        )
        previous = read_previous_risks(conn, municipality_id, day)
        events = record_maintenance_due(conn, municipality_id, scored, sensors, previous)
        result.rows = history.height
        result.details = {
            "sensors_scored": scored.height,
            "predictions_written": written,
            "maintenance_due": int(scored["risk_level"].is_in(DUE_RISKS).sum()),
            "events_recorded": events,
            **{
                f"risk_{level.lower()}": int((scored["risk_level"] == level).sum())
                for level in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
            },
        }
    return result.as_dict()
