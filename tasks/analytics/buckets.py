"""Local-time buckets: which hour, day, week (from Monday) and month of a municipality's own
calendar each reading falls in, found without converting every reading's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from tasks.analytics.readings import UTC_TIME
from tasks.calendar import local_day_bounds

RESOLUTIONS = ("hour", "day", "week", "month")
US_PER_MINUTE = 60_000_000
EPOCH = date(1970, 1, 1)


def week_start(day: date) -> date:
    """The Monday that begins `day`'s week."""
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_bounds(resolution: str, day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of the local day, week or month that contains `day`."""
    if resolution == "day":
        first, after = day, day + timedelta(days=1)
    elif resolution == "week":
        first = week_start(day)
        after = first + timedelta(days=7)
    elif resolution == "month":
        first, after = month_start(day), next_month(day)
    else:
        raise ValueError(f"unknown resolution {resolution!r}: use day, week or month")
    return local_day_bounds(first, tz)[0], local_day_bounds(after, tz)[0]


def minute_table(first_minute: int, last_minute: int, tz: str) -> pl.DataFrame:
    """For every UTC minute in [first, last]: the UTC minute its local hour starts and its local
    day (days since 1970-01-01 on the local calendar).

    A time zone's offset changes only on whole minutes, so converting these few minutes (about
    1,440 a day) stands for converting every reading. The local hour is truncated on the wall
    clock and shifted back by the minute's own offset: the repeated hour of an autumn change stays
    two buckets, and half-hour zones start their hours on the half hour."""
    minutes = pl.int_range(first_minute, last_minute + 1, eager=True, dtype=pl.Int64)
    wall = (minutes * US_PER_MINUTE).cast(UTC_TIME).dt.convert_time_zone(tz).dt.replace_time_zone(
        None
    ).dt.epoch("us") // US_PER_MINUTE
    return pl.DataFrame(
        {
            "hour": (wall // 60) * 60 - (wall - minutes),
            "day": wall // 1440,
        }
    )


def day_table(first_day: int, last_day: int, tz: str) -> pl.DataFrame:
    """For every local day number in [first, last]: its week's and month's day numbers and the
    UTC bounds of its day, week and month (23 or 25 hours on a daylight-saving change)."""
    rows = []
    for number in range(first_day, last_day + 1):  # one row per calendar day, not per reading
        day = EPOCH + timedelta(days=number)
        week, month = week_start(day), month_start(day)
        rows.append(
            (
                number,
                (week - EPOCH).days,
                (month - EPOCH).days,
                *local_day_bounds(day, tz),
                *period_bounds("week", day, tz),
                *period_bounds("month", day, tz),
            )
        )
    names = ["day", "week", "month"]
    bounds = [f"{r}_{edge}" for r in names for edge in ("start", "end")]
    schema = {**dict.fromkeys(names, pl.Int64), **dict.fromkeys(bounds, UTC_TIME)}
    return pl.DataFrame(rows, schema=schema, orient="row")


def bucket_bounds(resolution: str, days: pl.DataFrame) -> pl.DataFrame:
    """The UTC [start, end) of each ordinal of `resolution` that occurs in `days`."""
    if resolution == "hour":
        raise ValueError("hour bounds come from the ordinal itself")
    return days.select(
        pl.col(resolution).alias("ordinal"),
        pl.col(f"{resolution}_start").alias("bucket_start"),
        pl.col(f"{resolution}_end").alias("bucket_end"),
    ).unique("ordinal")
