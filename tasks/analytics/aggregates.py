"""Hourly, daily, weekly and monthly statistics of every sensor, in the municipality's own
calendar, kept current as late data arrives."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
from prefect import task
from sqlalchemy import Connection

from tasks.analytics.buckets import period_bounds, week_start
from tasks.analytics.changes import rows_to_write
from tasks.analytics.readings import (
    UTC_TIME,
    db_value,
    lock_municipality,
    municipality_timezone,
    read_municipality_readings,
    read_municipality_sensors,
    read_sensor_readings,
)
from tasks.analytics.statistics import AGGREGATE_SCHEMA, KEY, VALUE_COLUMNS, aggregate_readings
from tasks.calendar import local_day_bounds
from tasks.database import begin, bulk_insert, load_sql, read_frame, run_sql
from tasks.models import utcnow
from tasks.stages import stage

__all__ = ["AGGREGATE_SCHEMA", "KEY", "VALUE_COLUMNS", "compute_aggregates", "with_buckets"]

STALE_SCHEMA = {"sensor_id": pl.String, "resolution": pl.String, "bucket_start": UTC_TIME}
PERIODS = ("week", "month")
CHUNK_SENSORS = 50  # sensors read at a time for a whole week or month: bounds memory


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
    """`readings` plus `hour_start` and `day_start`: the buckets late data marks stale (a stale
    day also restates its week and month, see `stale_periods`)."""
    framed = readings.with_columns(
        hour_start(pl.col("observed_at"), tz).alias("hour_start"),
        local_day(pl.col("observed_at"), tz).alias("local_day"),
    )
    starts = local_day_starts(framed["local_day"], tz).rename({"bucket_start": "day_start"})
    return framed.join(starts, on="local_day", how="left", maintain_order="left").drop("local_day")


def hourly_and_daily_aggregates(
    readings: pl.LazyFrame, tz: str, sensors: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per sensor, one row per local hour and per local day of `readings` (see `aggregate_readings`)."""
    return aggregate_readings(readings, tz, sensors, resolutions=("hour", "day"))


def period_aggregates(
    conn: Connection, municipality_id: str, tz: str, sensors: pl.DataFrame, resolution: str, first: date
) -> pl.DataFrame:
    """Fresh statistics of one whole local week or month (starting `first`) of `sensors`, read
    from their readings CHUNK_SENSORS sensors at a time."""
    start, end = period_bounds(resolution, first, tz)
    ids = sensors["sensor_id"].unique().sort().to_list()
    frames = [pl.DataFrame(schema=AGGREGATE_SCHEMA)]
    for at in range(0, len(ids), CHUNK_SENSORS):  # chunks of sensors, each a whole read
        chunk = ids[at : at + CHUNK_SENSORS]
        readings = read_sensor_readings(conn, municipality_id, chunk, start, end)
        fresh = aggregate_readings(readings, tz, sensors, resolutions=(resolution,))
        frames.append(fresh.filter(pl.col("bucket_start") == start))
    return pl.concat(frames)


def ended_periods(day: date) -> list[tuple[str, date]]:
    """The weeks and months whose last local day is `day`: (resolution, first day)."""
    after = day + timedelta(days=1)
    ended = []
    if after.weekday() == 0:
        ended.append(("week", week_start(day)))
    if after.day == 1:
        ended.append(("month", day.replace(day=1)))
    return ended


def stale_periods(stale: pl.DataFrame, tz: str, through: datetime) -> pl.DataFrame:
    """The weeks and months that stale local days belong to and that are over by `through`:
    `sensor_id`, `resolution` and `first` (the week's Monday or the month's first day)."""
    days = stale.filter(pl.col("resolution") == "day").select(
        "sensor_id", pl.col("bucket_start").dt.convert_time_zone(tz).dt.date().alias("day")
    )
    weeks = days.select("sensor_id", pl.lit("week").alias("resolution"), pl.col("day").dt.truncate("1w"))
    months = days.select("sensor_id", pl.lit("month").alias("resolution"), pl.col("day").dt.month_start())
    periods = (
        pl.concat([weeks, months]).unique().rename({"day": "first"}).sort("resolution", "first", "sensor_id")
    )
    over = [
        period_bounds(r, f, tz)[1] <= through for r, f in periods.select("resolution", "first").iter_rows()
    ]
    return periods.filter(pl.Series(over, dtype=pl.Boolean))


def recompute_periods(
    conn: Connection, municipality_id: str, tz: str, sensors: pl.DataFrame, periods: pl.DataFrame
) -> pl.DataFrame:
    """Fresh statistics of exactly the (sensor, week or month) pairs in `periods`."""
    frames = [pl.DataFrame(schema=AGGREGATE_SCHEMA)]
    for (resolution, first), group in periods.group_by("resolution", "first", maintain_order=True):
        wanted = sensors.join(group.select("sensor_id"), on="sensor_id", how="semi")
        frames.append(period_aggregates(conn, municipality_id, tz, wanted, resolution, first))
    return pl.concat(frames)


def read_day_aggregates(conn, municipality_id: str, start, end) -> pl.DataFrame:  # noqa: ANN001
    """The stored aggregates of one municipality whose buckets start in [start, end)."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_window_aggregates"), params, AGGREGATE_SCHEMA)


def read_stale_buckets(conn, municipality_id: str, end) -> pl.DataFrame:  # noqa: ANN001
    """The buckets of one municipality marked stale by late data, starting before `end`."""
    params = {"municipality_id": municipality_id, "end": db_value(conn, end)}
    return read_frame(conn, load_sql("read_stale_buckets"), params, STALE_SCHEMA)


def recompute_stale_buckets(
    conn: Connection, municipality_id: str, tz: str, before: datetime, sensors: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Fresh statistics of exactly the stale hours and days that start before `before` (UTC),
    and of the weeks and months those days belong to that are over by `before`.

    One read per stale local day, of only that day's stale sensors; the buckets of those days
    that are not stale are computed too but dropped, so they stay as they were.
    """
    stale = read_stale_buckets(conn, municipality_id, before)
    if stale.is_empty():
        return pl.DataFrame(schema=AGGREGATE_SCHEMA)
    sensors = sensors if sensors is not None else read_municipality_sensors(conn, municipality_id)
    days = stale.with_columns(local_day(pl.col("bucket_start"), tz).alias("local_day"))
    frames = []
    for (day,), group in days.group_by("local_day", maintain_order=True):
        start, end = local_day_bounds(day, tz)
        sensor_ids = group["sensor_id"].unique().sort().to_list()
        readings = read_sensor_readings(conn, municipality_id, sensor_ids, start, end)
        frames.append(hourly_and_daily_aggregates(readings.lazy(), tz, sensors))
    fresh = pl.concat(frames).join(stale.select(KEY), on=KEY, how="semi")
    periods = recompute_periods(conn, municipality_id, tz, sensors, stale_periods(stale, tz, before))
    return pl.concat([fresh, periods]).sort(KEY)


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


def write_changed(conn: Connection, municipality_id: str, fresh: pl.DataFrame, start, end) -> int:  # noqa: ANN001
    """Upsert the rows of `fresh` (buckets starting in [start, end)) that are new or changed."""
    stored = read_day_aggregates(conn, municipality_id, start, end)
    return write_aggregates(conn, municipality_id, rows_to_write(fresh, stored, KEY, VALUE_COLUMNS))


def refresh_day(conn: Connection, municipality_id: str, tz: str, day: date, sensors: pl.DataFrame) -> dict:
    """Hourly and daily statistics of one local day, and the weeks and months it ends."""
    start, end = local_day_bounds(day, tz)
    readings = read_municipality_readings(conn, municipality_id, start, end)
    fresh = hourly_and_daily_aggregates(readings.lazy(), tz, sensors)
    written = write_changed(conn, municipality_id, fresh, start, end)
    periods = [
        period_aggregates(conn, municipality_id, tz, sensors, resolution, first)
        for resolution, first in ended_periods(day)
    ]
    ended = pl.concat([pl.DataFrame(schema=AGGREGATE_SCHEMA), *periods])
    first = min((f for _, f in ended_periods(day)), default=day)
    ended_written = write_changed(conn, municipality_id, ended, local_day_bounds(first, tz)[0], end)
    return {
        "readings": readings.height,
        "fresh": fresh,
        "buckets": fresh.height + ended.height,
        "buckets_written": written + ended_written,
        "periods_ended": [f"{r} {f.isoformat()}" for r, f in ended_periods(day)],
    }


@task(
    name="compute_aggregates",
    task_run_name="aggregate-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def compute_aggregates(municipality_id: str, day: date) -> dict:
    """Upsert one day's hourly and daily statistics, the weeks and months it ends, and stale buckets."""
    with stage("aggregate", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)  # late data cannot mark a bucket mid-recompute
        tz = municipality_timezone(conn, municipality_id)
        sensors = read_municipality_sensors(conn, municipality_id)
        start, end = local_day_bounds(day, tz)
        refreshed = refresh_day(conn, municipality_id, tz, day, sensors)
        # Late data of earlier days: recompute exactly the buckets it reached, then unmark them
        # (the marks of this day's own buckets are cleared too: the day was computed in full).
        restated = recompute_stale_buckets(conn, municipality_id, tz, start, sensors)
        restated_written = write_aggregates(conn, municipality_id, restated)
        cleared = clear_stale_buckets(conn, municipality_id, end)
        fresh = refreshed["fresh"]
        result.rows = refreshed["readings"]
        result.details = {
            "buckets": refreshed["buckets"],
            "buckets_written": refreshed["buckets_written"],
            "periods_ended": refreshed["periods_ended"],
            "stale_buckets_recomputed": restated.height,
            "stale_buckets_written": restated_written,
            "stale_marks_cleared": cleared,
            "readings_excluded": int(fresh.filter(pl.col("resolution") == "day")["count_excluded"].sum()),
            "hours_in_day": round((end - start).total_seconds() / 3600),
        }
    return result.as_dict()
