"""Water usage: the volume through each station per local day, from its flow sensors (m3/h).

The volume is the integral of the flow rate over time by the trapezoidal rule: between two
consecutive readings the rate is taken as linear, so an interval adds (v0 + v1) / 2 x its hours.
An interval that crosses local midnight is split there (the rate at midnight interpolated), so each
day gets exactly its own part. Intervals longer than `max_gap` (three times the sensor's cadence,
at least 5 minutes, at most 6 hours) are not bridged: they count as hours without data. Readings
QC failed or missing (flags 4 and 9) are left out. A station's volume is the sum of its flow sensors'.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.database import load_sql, read_frame
from tasks.exports.request import ExportRequest
from tasks.exports.sources import READING_SCHEMA, bound_time, read_sensors, read_stations, sensor_windows

DEFAULT_INTERVAL_SECONDS = 600
USAGE_SCHEMA = {
    "day": pl.Date,
    "station_id": pl.String,
    "station_name": pl.String,
    "volume_m3": pl.Float64,
    "flow_sensors": pl.Int64,
    "readings": pl.Int64,
    "hours_measured": pl.Float64,
}
SENSOR_DAY_SCHEMA = {
    "day": pl.Date,
    "volume_m3": pl.Float64,
    "seconds_measured": pl.Float64,
    "readings": pl.Int64,
}


def max_gap(interval_seconds: int | None) -> timedelta:
    """The longest interval between two readings that is integrated over."""
    seconds = 3 * (interval_seconds or DEFAULT_INTERVAL_SECONDS)
    return timedelta(seconds=min(max(seconds, 300), 6 * 3600))


def _next_local_midnight(t: pl.Expr, timezone: str) -> pl.Expr:
    """The UTC instant the local day after the one of `t` begins (an hour later if midnight is
    skipped that day)."""
    next_day = (t.dt.convert_time_zone(timezone).dt.date() + pl.duration(days=1)).cast(pl.Datetime("us"))
    at_midnight = next_day.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    an_hour_on = (next_day + pl.duration(hours=1)).dt.replace_time_zone(timezone, ambiguous="earliest")
    return at_midnight.fill_null(an_hour_on).dt.convert_time_zone("UTC")


def sensor_daily_volumes(
    readings: pl.DataFrame, timezone: str, gap: timedelta, counted_before: datetime
) -> pl.DataFrame:
    """One flow sensor's volume (m3), seconds integrated and readings per local day.

    `readings` (`observed_at`, `value` in m3/h) sorted by time; readings from `counted_before` on
    (the first of the next window) end an interval but are not counted: every interval is
    integrated in the window where it starts."""
    seconds = (pl.col("t1") - pl.col("t0")).dt.total_microseconds() / 1e6
    intervals = (
        readings.select(
            t0=pl.col("observed_at"),
            t1=pl.col("observed_at").shift(-1),
            v0=pl.col("value"),
            v1=pl.col("value").shift(-1),
        )
        .filter(pl.col("t1").is_not_null() & (pl.col("t1") > pl.col("t0")))
        .filter(seconds <= gap.total_seconds())
        .with_columns(boundary=_next_local_midnight(pl.col("t0"), timezone))
        .with_columns(cut=pl.min_horizontal("t1", "boundary"))
    )
    share = (pl.col("cut") - pl.col("t0")).dt.total_microseconds() / (
        pl.col("t1") - pl.col("t0")
    ).dt.total_microseconds()
    v_cut = pl.col("v0") + (pl.col("v1") - pl.col("v0")) * share
    first = intervals.select(
        t=pl.col("t0"),
        volume_m3=(pl.col("v0") + v_cut)
        / 2
        * ((pl.col("cut") - pl.col("t0")).dt.total_microseconds() / 3.6e9),
        seconds_measured=(pl.col("cut") - pl.col("t0")).dt.total_microseconds() / 1e6,
    )
    second = intervals.filter(pl.col("t1") > pl.col("cut")).select(
        t=pl.col("cut"),
        volume_m3=(v_cut + pl.col("v1"))
        / 2
        * ((pl.col("t1") - pl.col("cut")).dt.total_microseconds() / 3.6e9),
        seconds_measured=(pl.col("t1") - pl.col("cut")).dt.total_microseconds() / 1e6,
    )
    local_day = pl.col("t").dt.convert_time_zone(timezone).dt.date().alias("day")
    volumes = (
        pl.concat([first, second])
        .group_by(local_day)
        .agg(pl.col("volume_m3").sum(), pl.col("seconds_measured").sum())
    )
    counts = (
        readings.filter(pl.col("observed_at") < counted_before)
        .group_by(pl.col("observed_at").dt.convert_time_zone(timezone).dt.date().alias("day"))
        .agg(pl.len().cast(pl.Int64).alias("readings"))
    )
    return (
        volumes.join(counts, on="day", how="full", coalesce=True)
        .with_columns(pl.col("volume_m3", "seconds_measured").fill_null(0.0), pl.col("readings").fill_null(0))
        .select(list(SENSOR_DAY_SCHEMA))
        .cast(SENSOR_DAY_SCHEMA)
    )


def station_daily_volumes(
    per_sensor: pl.DataFrame, stations: pl.DataFrame, from_day: date, to_day: date
) -> pl.DataFrame:
    """Per (local day, station): the volume of its flow sensors together, how many reported, their
    readings, and the hours measured (averaged over those sensors)."""
    return (
        per_sensor.filter(pl.col("day").is_between(from_day, to_day))
        .group_by("day", "station_id", "sensor_id")
        .agg(pl.col("volume_m3", "seconds_measured", "readings").sum())
        .group_by("day", "station_id")
        .agg(
            pl.col("volume_m3").sum(),
            pl.len().cast(pl.Int64).alias("flow_sensors"),
            pl.col("readings").sum(),
            (pl.col("seconds_measured").mean() / 3600).alias("hours_measured"),
        )
        .join(stations, on="station_id", how="left")
        .sort("day", "station_id")
        .select(list(USAGE_SCHEMA))
    )


def water_usage_chunks(
    conn: Connection, request: ExportRequest, start: datetime, end: datetime, timezone: str
) -> Iterator[pl.DataFrame]:
    """The station volumes of the window (one frame: a row per station and day is small)."""
    stations = read_stations(conn, request)
    sensors = read_sensors(conn, request).filter(pl.col("parameter") == "flow")
    sql = load_sql("export_flow_readings")
    parts = []
    for sensor_id, first, upto in sensor_windows(sensors, start, end):
        sensor = sensors.row(by_predicate=pl.col("sensor_id") == sensor_id, named=True)
        gap = max_gap(sensor["interval_seconds"])
        readings = _flow_readings(conn, request.municipality_id, sensor_id, first, upto, gap, sql)
        volumes = sensor_daily_volumes(readings, timezone, gap, upto)
        parts.append(
            volumes.with_columns(sensor_id=pl.lit(sensor_id), station_id=pl.lit(sensor["station_id"]))
        )
    per_sensor = (
        pl.concat(parts)
        if parts
        else pl.DataFrame(schema={**SENSOR_DAY_SCHEMA, "sensor_id": pl.String, "station_id": pl.String})
    )
    yield station_daily_volumes(per_sensor, stations, request.from_day, request.to_day)


def _flow_readings(
    conn: Connection,
    municipality_id: str,
    sensor_id: str,
    start: datetime,
    end: datetime,
    gap: timedelta,
    sql: str,
) -> pl.DataFrame:
    params = {
        "municipality_id": municipality_id,
        "sensor_id": sensor_id,
        "start": bound_time(conn, start),
        "end": bound_time(conn, end),
        "lookahead": bound_time(conn, end + gap),
    }
    return read_frame(conn, sql, params, READING_SCHEMA)
