"""The aggregates export: each picked sensor's hour, day, week or month statistics with the moving
average of its bucket means over a window of points (default 10), a sensor at a time.

The buckets before the first day that fill the window are read too, so the first exported bucket
already has its moving average when the data go back that far; a window counts buckets that
exist (a gap is skipped, not counted as a point)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.analytics.trends import moving_average
from tasks.database import load_sql, read_frame
from tasks.exports.request import ExportRequest
from tasks.exports.sources import UTC_TIME, bound_time, read_sensors

# The longest a bucket of each resolution lasts on a local clock: reading this much per window
# point before the first day finds the earlier points whatever the daylight-saving changes.
LONGEST = {
    "hour": timedelta(hours=1),
    "day": timedelta(hours=25),
    "week": timedelta(days=7, hours=1),
    "month": timedelta(days=31, hours=1),
}
STATISTICS = {
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
    "count_expected": pl.Int64,
    "coverage_pct": pl.Float64,
    "value_mean": pl.Float64,
    "value_min": pl.Float64,
    "value_max": pl.Float64,
    "value_std": pl.Float64,
    "value_median": pl.Float64,
    "value_p95": pl.Float64,
    "value_p99": pl.Float64,
}
AGGREGATE_EXPORT_SCHEMA = {
    "station_id": pl.String,
    "sensor_id": pl.String,
    "parameter": pl.String,
    "unit": pl.String,
    "resolution": pl.String,
    "bucket_start": UTC_TIME,
    "bucket_start_local": pl.String,
    **STATISTICS,
    "moving_average": pl.Float64,
    "moving_average_points": pl.Int64,
}


def aggregate_chunks(
    conn: Connection, request: ExportRequest, start: datetime, end: datetime, timezone: str
) -> Iterator[pl.DataFrame]:
    """The picked sensors' buckets of the request's resolution starting in [start, end), with
    their local start (ISO 8601 with its offset) and the moving average of `value_mean`."""
    sensors = read_sensors(conn, request)
    sql = load_sql("export_aggregates")
    since = start - LONGEST[request.resolution] * (request.window - 1)
    for sensor in sensors.iter_rows(named=True):
        params = {
            "municipality_id": request.municipality_id,
            "sensor_id": sensor["sensor_id"],
            "resolution": request.resolution,
            "start": bound_time(conn, since),
            "end": bound_time(conn, end),
        }
        buckets = read_frame(conn, sql, params, {"bucket_start": UTC_TIME, **STATISTICS})
        if buckets.is_empty():
            continue
        averaged = moving_average(
            buckets.with_columns(sensor_id=pl.lit(sensor["sensor_id"])), request.window
        ).filter(pl.col("bucket_start") >= start)
        yield averaged.select(
            pl.lit(sensor["station_id"], pl.String).alias("station_id"),
            pl.lit(sensor["sensor_id"], pl.String).alias("sensor_id"),
            pl.lit(sensor["parameter"], pl.String).alias("parameter"),
            pl.lit(sensor["unit"], pl.String).alias("unit"),
            pl.lit(request.resolution).alias("resolution"),
            "bucket_start",
            pl.col("bucket_start")
            .dt.convert_time_zone(timezone)
            .dt.to_string("%Y-%m-%dT%H:%M:%S%:z")
            .alias("bucket_start_local"),
            *STATISTICS,
            "moving_average",
            pl.lit(request.window, pl.Int64).alias("moving_average_points"),
        )
