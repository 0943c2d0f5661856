"""The aggregates export: each picked sensor's hour, day, week or month statistics with the moving
average of its bucket means over a window of points (default 10) and the change in percent from the
period before (day on day, week on week, month on month) and, for months, from a year before; a
sensor at a time.

The buckets before the first day that fill the window and hold the periods compared are read too,
so the first exported bucket already has its figures when the data go back that far; a window
counts buckets that exist (a gap is skipped, not counted as a point)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.analytics.statistics import AGGREGATE_SCHEMA, VALUE_COLUMNS
from tasks.analytics.trends import compare_periods, moving_average
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
STATISTICS = {name: AGGREGATE_SCHEMA[name] for name in VALUE_COLUMNS}  # as the aggregates table holds them
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
    "change_pct": pl.Float64,
    "change_pct_year_on_year": pl.Float64,
}
CHANGES = {  # resolution: (the comparison of `change_pct`, of `change_pct_year_on_year`)
    "hour": (None, None),
    "day": ("day_on_day", None),
    "week": ("week_on_week", None),
    "month": ("month_on_month", "year_on_year"),
}


def aggregate_chunks(
    conn: Connection, request: ExportRequest, start: datetime, end: datetime, timezone: str
) -> Iterator[pl.DataFrame]:
    """The picked sensors' buckets of the request's resolution starting in [start, end), with
    their local start (ISO 8601 with its offset) and the moving average of `value_mean`."""
    sensors = read_sensors(conn, request)
    sql = load_sql("export_aggregates")
    earlier = max(request.window - 1, 12 if request.resolution == "month" else 1)
    since = start - LONGEST[request.resolution] * earlier
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
        named = buckets.with_columns(
            sensor_id=pl.lit(sensor["sensor_id"]), resolution=pl.lit(request.resolution)
        )
        averaged = with_changes(moving_average(named, request.window), request.resolution, timezone)
        yield averaged.filter(pl.col("bucket_start") >= start).select(
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
            "change_pct",
            "change_pct_year_on_year",
        )


def with_changes(buckets: pl.DataFrame, resolution: str, timezone: str) -> pl.DataFrame:
    """`buckets` plus `change_pct` and `change_pct_year_on_year` (null where they do not apply or
    the earlier period has no mean)."""
    local = buckets.with_columns(
        period_start=pl.col("bucket_start").dt.convert_time_zone(timezone).dt.date()
    )
    for column, kind in zip(("change_pct", "change_pct_year_on_year"), CHANGES[resolution], strict=True):
        if kind is None:
            local = local.with_columns(pl.lit(None, pl.Float64).alias(column))
            continue
        changes = compare_periods(local, kind, timezone).select(
            "period_start", pl.col("change_pct").alias(column)
        )
        local = local.join(changes, on="period_start", how="left")
    return local.drop("period_start")
