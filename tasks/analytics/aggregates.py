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
    lock_municipality,
    municipality_timezone,
    read_municipality_readings,
    read_sensor_readings,
)
from tasks.calendar import local_day_bounds
from tasks.database import begin, bulk_insert, load_sql, read_frame, run_sql
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
STALE_SCHEMA = {"sensor_id": pl.String, "resolution": pl.String, "bucket_start": UTC_TIME}
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


def hour_start(observed_at: pl.Expr, tz: str) -> pl.Expr:
    """The UTC instant the local hour of `observed_at` (UTC) begins in `tz`."""
    utc_wall = observed_at.dt.replace_time_zone(None)
    local_wall = observed_at.dt.convert_time_zone(tz).dt.replace_time_zone(None)
    # Truncate on the local wall clock, then step back by the reading's own UTC offset:
    # the repeated hour of an autumn change stays two buckets, half-hour zones stay right.
    return (local_wall.dt.truncate("1h") - (local_wall - utc_wall)).dt.replace_time_zone("UTC")


def local_day(observed_at: pl.Expr, tz: str) -> pl.Expr:
    """The local calendar day of `observed_at` (UTC) in `tz`."""
    return observed_at.dt.convert_time_zone(tz).dt.date()


def with_buckets(readings: pl.DataFrame, tz: str) -> pl.DataFrame:
    """`readings` plus `hour_start` and `day_start`: the buckets each reading is aggregated in."""
    framed = readings.with_columns(
        hour_start(pl.col("observed_at"), tz).alias("hour_start"),
        local_day(pl.col("observed_at"), tz).alias("local_day"),
    )
    starts = local_day_starts(framed["local_day"], tz).rename({"bucket_start": "day_start"})
    return framed.join(starts, on="local_day", how="left", maintain_order="left").drop("local_day")


def hourly_and_daily_aggregates(readings: pl.LazyFrame, tz: str) -> pl.DataFrame:
    """Per sensor, one row per local hour and per local day of `readings`.

    `readings` has `sensor_id`, `observed_at` (UTC), `value` and `qc_flag`. Buckets follow the
    wall clock of `tz`: a day of a daylight-saving change has 23 or 25 hourly buckets, and each
    `bucket_start` is the UTC instant of the bucket's local start. Failed and missing readings
    (QARTOD 4 and 9) are counted in `count_readings` and `count_excluded` but left out of the
    mean, min, max and (sample) standard deviation.
    """
    excluded = is_excluded(pl.col("value"), pl.col("qc_flag"))
    prepared = readings.select(
        "sensor_id",
        hour_start(pl.col("observed_at"), tz).alias("hour_start"),
        local_day(pl.col("observed_at"), tz).alias("local_day"),
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


def read_stale_buckets(conn, municipality_id: str, end) -> pl.DataFrame:  # noqa: ANN001
    """The buckets of one municipality marked stale by late data, starting before `end`."""
    params = {"municipality_id": municipality_id, "end": db_value(conn, end)}
    return read_frame(conn, load_sql("read_stale_buckets"), params, STALE_SCHEMA)


def recompute_stale_buckets(conn, municipality_id: str, tz: str, before) -> pl.DataFrame:  # noqa: ANN001
    """Fresh statistics of exactly the stale buckets that start before `before` (UTC).

    One read per stale local day, of only that day's stale sensors; the buckets of those days
    that are not stale are computed too but dropped, so they stay as they were.
    """
    stale = read_stale_buckets(conn, municipality_id, before)
    if stale.is_empty():
        return pl.DataFrame(schema=AGGREGATE_SCHEMA)
    days = stale.with_columns(local_day(pl.col("bucket_start"), tz).alias("local_day"))
    frames = []
    for (day,), group in days.group_by("local_day", maintain_order=True):
        start, end = local_day_bounds(day, tz)
        sensor_ids = group["sensor_id"].unique().sort().to_list()
        readings = read_sensor_readings(conn, municipality_id, sensor_ids, start, end)
        frames.append(hourly_and_daily_aggregates(readings.lazy(), tz))
    fresh = pl.concat(frames)
    return fresh.join(stale.select(KEY), on=KEY, how="semi").sort(KEY)


def clear_stale_buckets(conn, municipality_id: str, end) -> int:  # noqa: ANN001
    """Remove the stale marks of buckets starting before `end`; returns how many there were."""
    params = {"municipality_id": municipality_id, "end": db_value(conn, end)}
    return run_sql(conn, "clear_stale_buckets", params).rowcount


def write_aggregates(conn, municipality_id: str, rows: pl.DataFrame) -> int:  # noqa: ANN001
    """Upsert aggregate rows of one municipality; returns how many were written."""
    return bulk_insert(
        conn,
        "aggregates",
        rows.with_columns(municipality_id=pl.lit(municipality_id), computed_at=utcnow()),
        conflict_columns=KEY,
        update_columns=[*VALUE_COLUMNS, "computed_at"],
    )


@task(
    name="compute_aggregates",
    task_run_name="aggregate-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def compute_aggregates(municipality_id: str, day: date) -> dict:
    """Upsert one day's hourly and local-day statistics of a municipality, and its stale buckets."""
    with stage("aggregate", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)  # late data cannot mark a bucket mid-recompute
        tz = municipality_timezone(conn, municipality_id)
        start, end = local_day_bounds(day, tz)
        readings = read_municipality_readings(conn, municipality_id, start, end)
        fresh = hourly_and_daily_aggregates(readings.lazy(), tz)
        stored = read_day_aggregates(conn, municipality_id, start, end)
        changed = rows_to_write(fresh, stored, KEY, VALUE_COLUMNS)
        written = write_aggregates(conn, municipality_id, changed)
        # Late data of earlier days: recompute exactly the buckets it reached, then unmark them
        # (the marks of this day's own buckets are cleared too: the day was computed in full).
        restated = recompute_stale_buckets(conn, municipality_id, tz, start)
        restated_written = write_aggregates(conn, municipality_id, restated)
        cleared = clear_stale_buckets(conn, municipality_id, end)
        result.rows = readings.height
        result.details = {
            "buckets": fresh.height,
            "buckets_written": written,
            "stale_buckets_recomputed": restated.height,
            "stale_buckets_written": restated_written,
            "stale_marks_cleared": cleared,
            "readings_excluded": int(
                fresh.filter(pl.col("resolution") == "day")["count_excluded"].sum()
            ),
            "hours_in_day": round((end - start).total_seconds() / 3600),
        }
    return result.as_dict()
