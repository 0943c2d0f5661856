"""Hourly and local-day statistics of every sensor, in the municipality's own calendar."""

from __future__ import annotations

from datetime import date

import polars as pl
from prefect import task

from tasks.analytics.changes import rows_to_write
from tasks.analytics.readings import (
    UTC_TIME,
    db_value,
    is_excluded,
    municipality_timezone,
    read_municipality_readings,
)
from tasks.calendar import local_day_bounds
from tasks.database import begin, bulk_insert, load_sql, read_frame
from tasks.models import utcnow
from tasks.stages import stage

KEY = ["sensor_id", "resolution", "bucket_start"]
VALUE_COLUMNS = [
    "count_readings",
    "count_excluded",
    "value_mean",
    "value_min",
    "value_max",
    "value_std",
]
AGGREGATE_SCHEMA = {
    "sensor_id": pl.String,
    "resolution": pl.String,
    "bucket_start": UTC_TIME,
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
    "value_mean": pl.Float64,
    "value_min": pl.Float64,
    "value_max": pl.Float64,
    "value_std": pl.Float64,
}


def _statistics(kept: pl.Expr, excluded: pl.Expr) -> list[pl.Expr]:
    return [
        pl.len().cast(pl.Int64).alias("count_readings"),
        excluded.sum().cast(pl.Int64).alias("count_excluded"),
        kept.mean().alias("value_mean"),
        kept.min().alias("value_min"),
        kept.max().alias("value_max"),
        kept.std().alias("value_std"),
    ]


def local_day_starts(days: pl.Series, tz: str) -> pl.DataFrame:
    """The UTC instant each local day begins (correct when midnight is skipped or repeated)."""
    unique = days.unique().sort()
    return pl.DataFrame(
        {"local_day": unique, "bucket_start": [local_day_bounds(d, tz)[0] for d in unique]},
        schema={"local_day": pl.Date, "bucket_start": UTC_TIME},
    )


def hourly_and_daily_aggregates(readings: pl.LazyFrame, tz: str) -> pl.DataFrame:
    """Per sensor, one row per local hour and per local day of `readings`.

    `readings` has `sensor_id`, `observed_at` (UTC), `value` and `qc_flag`. Buckets follow the
    wall clock of `tz`: a day of a daylight-saving change has 23 or 25 hourly buckets, and each
    `bucket_start` is the UTC instant of the bucket's local start. Failed and missing readings
    (QARTOD 4 and 9) are counted in `count_readings` and `count_excluded` but left out of the
    mean, min, max and (sample) standard deviation.
    """
    utc_wall = pl.col("observed_at").dt.replace_time_zone(None)
    local_wall = pl.col("observed_at").dt.convert_time_zone(tz).dt.replace_time_zone(None)
    excluded = is_excluded(pl.col("value"), pl.col("qc_flag"))
    prepared = readings.select(
        "sensor_id",
        # Truncate on the local wall clock, then step back by the reading's own UTC offset:
        # the repeated hour of an autumn change stays two buckets, half-hour zones stay right.
        (local_wall.dt.truncate("1h") - (local_wall - utc_wall))
        .dt.replace_time_zone("UTC")
        .alias("hour_start"),
        local_wall.dt.date().alias("local_day"),
        excluded.alias("is_excluded"),
        pl.when(~excluded).then(pl.col("value")).alias("kept"),
    ).collect()
    stats = _statistics(pl.col("kept"), pl.col("is_excluded"))
    hourly = (
        prepared.group_by("sensor_id", "hour_start")
        .agg(stats)
        .select(
            "sensor_id",
            pl.lit("hour").alias("resolution"),
            pl.col("hour_start").alias("bucket_start"),
            *VALUE_COLUMNS,
        )
    )
    daily = (
        prepared.group_by("sensor_id", "local_day")
        .agg(stats)
        .join(local_day_starts(prepared["local_day"], tz), on="local_day")
        .select("sensor_id", pl.lit("day").alias("resolution"), "bucket_start", *VALUE_COLUMNS)
    )
    return pl.concat([hourly, daily]).cast(AGGREGATE_SCHEMA).sort(KEY)


def read_day_aggregates(conn, municipality_id: str, start, end) -> pl.DataFrame:  # noqa: ANN001
    """The stored aggregates of one municipality whose buckets start in [start, end)."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_day_aggregates"), params, AGGREGATE_SCHEMA)


@task(
    name="compute_aggregates",
    task_run_name="aggregate-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def compute_aggregates(municipality_id: str, day: date) -> dict:
    """Upsert hourly and local-day statistics of every sensor of one municipality for one day."""
    with stage("aggregate", municipality_id) as result, begin() as conn:
        tz = municipality_timezone(conn, municipality_id)
        start, end = local_day_bounds(day, tz)
        readings = read_municipality_readings(conn, municipality_id, start, end)
        fresh = hourly_and_daily_aggregates(readings.lazy(), tz)
        stored = read_day_aggregates(conn, municipality_id, start, end)
        changed = rows_to_write(fresh, stored, KEY, VALUE_COLUMNS)
        written = bulk_insert(
            conn,
            "aggregates",
            changed.with_columns(municipality_id=pl.lit(municipality_id), computed_at=utcnow()),
            conflict_columns=KEY,
            update_columns=[*VALUE_COLUMNS, "computed_at"],
        )
        result.rows = readings.height
        result.details = {
            "buckets": fresh.height,
            "buckets_written": written,
            "readings_excluded": int(
                fresh.filter(pl.col("resolution") == "day")["count_excluded"].sum()
            ),
            "hours_in_day": round((end - start).total_seconds() / 3600),
        }
    return result.as_dict()
