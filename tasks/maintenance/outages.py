"""Sensor outages: a sensor silent for longer than its gap limit, once per outage, for webhooks.

The gap limit of a sensor is QC's: `gap.max_intervals` (tasks/quality/qc.yaml, merged for the
sensor like every QC setting) times its expected interval, which is its registered
`interval_seconds`, else QC's `expected_interval_seconds`. A sensor whose QC runs no gap test
(the laboratory parameters) never goes offline; nor do lab sensors, retired sensors
(`active: false`) and sensors installed after the time checked: they are left out, and an outage
left open by a sensor since retired stays open, with no event, until it reports again.

Silence is measured on the data's clock, not the wall clock: against the newest reading of any
of the municipality's watched sensors (never later than now). Readings arrive in files and pages,
an hour or a day at a time, so at the wall clock every sensor would look silent between two
deliveries; against the data's clock a sensor is offline when the others have reported for longer
than its gap limit since it last did. The price: when every sensor of a municipality stops at
once (its whole feed), no sensor is behind the others and no outage is seen.

`update_outages` runs when the hourly ingest and the nightly ingest have loaded a municipality:
- a watched sensor whose last reading is more than its gap limit before the data's clock, and
  that has no open outage, gets one (`started_at` = its last reading) and `sensor.offline`;
- a sensor that never reported is offline once its gap limit has passed after `installed_at`
  (`started_at` = installed_at, `last_reading_at` null); with no `installed_at` nothing says when
  it should have begun, and it is left out until it reports;
- an open outage whose sensor has a reading after the outage's last ends at that first reading
  back (`ended_at`) and records `sensor.online` with the outage's duration (first reading back
  less last reading before). A sensor that comes back and is silent again by the same check gets
  `sensor.online` for the old outage and `sensor.offline` for a new one.
Gaps that open and close between two checks are not outages here (QC's gap test flags the
reading after them). The state is the `sensor_outages` table, at most one open outage per sensor,
so a second run finds it open and records nothing new.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from prefect import task
from sqlalchemy import Connection, bindparam, insert, update

from tasks.analytics.readings import (
    UTC_TIME,
    lock_municipality,
    read_municipality_sensors,
)
from tasks.database import begin, load_sql, read_frame
from tasks.models import SensorOutage, utcnow
from tasks.quality.qc import QcConfig, load_qc_config
from tasks.stages import stage
from tasks.webhooks.outbox import record_event

LAST_READING_SCHEMA = {"sensor_id": pl.String, "last_reading_at": UTC_TIME}
OPEN_OUTAGE_SCHEMA = {
    "id": pl.Int64,
    "sensor_id": pl.String,
    "started_at": UTC_TIME,
    "last_reading_at": UTC_TIME,
    "gap_limit_seconds": pl.Float64,
    "detected_at": UTC_TIME,
    "returned_at": UTC_TIME,  # the first reading after its last, if any
}


def gap_limits(sensors: pl.DataFrame, config: QcConfig) -> pl.DataFrame:
    """`sensor_id` and `gap_limit_seconds` of each sensor (null: its QC runs no gap test).

    QC settings are merged once per distinct (parameter, overridden sensor), not per sensor.
    """
    keyed = sensors.select("sensor_id", "parameter", "interval_seconds").with_columns(
        override=pl.when(pl.col("sensor_id").is_in(list(config.sensors))).then(pl.col("sensor_id"))
    )
    rows = []
    for parameter, override in keyed.select("parameter", "override").unique().iter_rows():
        settings = config.for_sensor(override, parameter)
        max_intervals = settings.gap.max_intervals if settings.gap is not None else None
        rows.append((parameter, override, max_intervals, settings.expected_interval_seconds))
    schema = {
        "parameter": pl.String,
        "override": pl.String,
        "max_intervals": pl.Float64,
        "qc_interval_seconds": pl.Float64,
    }
    table = pl.DataFrame(rows, schema=schema, orient="row")
    interval = pl.coalesce(pl.col("interval_seconds").cast(pl.Float64), "qc_interval_seconds")
    return keyed.join(table, on=["parameter", "override"], how="left", nulls_equal=True).select(
        "sensor_id", (pl.col("max_intervals") * interval).alias("gap_limit_seconds")
    )


def watched_sensors(
    sensors: pl.DataFrame, limits: pl.DataFrame, last: pl.DataFrame, now: datetime
) -> pl.DataFrame:
    """The sensors that can go offline (online, active, installed by `now`, with a gap test),
    with `gap_limit_seconds` and `last_reading_at` (null: never reported)."""
    return (
        sensors.join(limits, on="sensor_id", how="left")
        .join(last, on="sensor_id", how="left")
        .filter(
            pl.col("kind") == "online",
            pl.col("is_active") == 1,
            pl.col("installed_at").is_null() | (pl.col("installed_at") <= now),
            pl.col("gap_limit_seconds").is_not_null(),
        )
        .select(
            "sensor_id", "station_id", "parameter", "installed_at", "gap_limit_seconds", "last_reading_at"
        )
    )


def data_clock(watched: pl.DataFrame, now: datetime) -> datetime | None:
    """How far the municipality's data has come: its watched sensors' newest reading, at most
    `now`; None when none has reported yet."""
    newest = watched["last_reading_at"].max()
    return None if newest is None else min(newest, now)


def silent_sensors(watched: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """The watched sensors silent for longer than their gap limit at `as_of`, with `started_at`
    (their last reading, else their installation; neither: left out)."""
    started = pl.coalesce("last_reading_at", "installed_at")
    limit = pl.duration(microseconds=pl.col("gap_limit_seconds") * 1_000_000)
    return watched.with_columns(started.alias("started_at")).filter(
        pl.col("started_at").is_not_null(), pl.col("started_at") + limit < pl.lit(as_of)
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def event_data(municipality_id: str, row: dict) -> dict:
    """The webhook payload `data` of a `sensor.offline` or `sensor.online` event."""
    data = {
        "outage_id": row["id"],
        "municipality_id": municipality_id,
        "station_id": row["station_id"],
        "sensor_id": row["sensor_id"],
        "parameter": row["parameter"],
        "started_at": _iso(row["started_at"]),
        "last_reading_at": _iso(row["last_reading_at"]),
        "gap_limit_seconds": row["gap_limit_seconds"],
        "detected_at": _iso(row["detected_at"]),
    }
    if row.get("ended_at") is not None:
        data["ended_at"] = _iso(row["ended_at"])
        data["duration_seconds"] = (row["ended_at"] - row["started_at"]).total_seconds()
    return data


def read_open_outages(conn: Connection, municipality_id: str) -> pl.DataFrame:
    """The municipality's open outages, each with the first reading after its last (if any)."""
    return read_frame(
        conn, load_sql("read_open_outages"), {"municipality_id": municipality_id}, OPEN_OUTAGE_SCHEMA
    )


def end_outages(conn: Connection, municipality_id: str, back: pl.DataFrame, now: datetime) -> None:
    """Close the outages whose sensor reported again; records `sensor.online` for each."""
    if back.is_empty():
        return
    table = SensorOutage.__table__
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.ended_at.is_(None))
        .values(ended_at=bindparam("b_ended_at"), updated_at=now),
        back.select(pl.col("id").alias("b_id"), pl.col("ended_at").alias("b_ended_at")).to_dicts(),
    )
    for row in back.to_dicts():
        record_event(
            conn,
            municipality_id=municipality_id,
            event_type="sensor.online",
            data=event_data(municipality_id, row),
            dedupe_key=f"sensor.online:{row['id']}",
        )


def start_outages(
    conn: Connection, municipality_id: str, silent: pl.DataFrame, as_of: datetime, now: datetime
) -> None:
    """Open one outage per newly silent sensor; records `sensor.offline` for each."""
    if silent.is_empty():
        return
    silent = silent.with_columns(detected_at=pl.lit(as_of, UTC_TIME))
    rows = silent.select(
        "sensor_id", "started_at", "last_reading_at", "gap_limit_seconds", "detected_at"
    ).with_columns(municipality_id=pl.lit(municipality_id), created_at=pl.lit(now), updated_at=pl.lit(now))
    ids = (
        conn.execute(
            insert(SensorOutage).returning(SensorOutage.id, sort_by_parameter_order=True), rows.to_dicts()
        )
        .scalars()
        .all()
    )
    for row in silent.with_columns(pl.Series("id", ids, dtype=pl.Int64)).to_dicts():
        record_event(
            conn,
            municipality_id=municipality_id,
            event_type="sensor.offline",
            data=event_data(municipality_id, row),
            dedupe_key=f"sensor.offline:{row['id']}",
        )


def update_outages(conn: Connection, municipality_id: str, now: datetime | None = None) -> dict:
    """End the outages of sensors that reported again and start those of sensors gone silent, in
    the caller's transaction. Returns figures, with `as_of` the data's clock used."""
    now = now or utcnow()
    sensors = read_municipality_sensors(conn, municipality_id)
    last = read_frame(
        conn, load_sql("read_sensor_last_readings"), {"municipality_id": municipality_id}, LAST_READING_SCHEMA
    )
    watched = watched_sensors(sensors, gap_limits(sensors, load_qc_config()), last, now)
    as_of = data_clock(watched, now)
    figures = {"sensors_watched": watched.height, "outages_started": 0, "outages_ended": 0, "as_of": as_of}
    if as_of is None:
        return figures
    outages = read_open_outages(conn, municipality_id)
    back = (
        outages.filter(pl.col("returned_at").is_not_null())
        .join(watched.select("sensor_id", "station_id", "parameter"), on="sensor_id")
        .rename({"returned_at": "ended_at"})
    )
    end_outages(conn, municipality_id, back, now)
    still_open = outages.join(back.select("id"), on="id", how="anti")
    silent = silent_sensors(watched, as_of).join(still_open.select("sensor_id"), on="sensor_id", how="anti")
    start_outages(conn, municipality_id, silent, as_of, now)
    return figures | {"outages_started": silent.height, "outages_ended": back.height}


@task(
    name="check_sensor_outages",
    task_run_name="check-outages-{municipality_id}",
    retries=2,
    retry_delay_seconds=10,
)
def check_sensor_outages(municipality_id: str) -> dict:
    """Record which of one municipality's sensors went offline or came back since the last check."""
    with stage("check_outages", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)
        figures = update_outages(conn, municipality_id)
        result.rows = figures.pop("sensors_watched")
        as_of = figures.pop("as_of")
        result.details = figures | {"as_of": as_of.isoformat() if as_of else None}
    return result.as_dict()
