"""A station as the learned detector sees it: one row per minute, one column per online sensor.

Readings flagged fail or missing (QARTOD 4, 9), or with no finite value, are left out, so their
minute is null, as a minute with no reading is. Several readings of a sensor in one minute are
averaged. Times in the frame are naive UTC, as in a labelled file (`LabelledReadings`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.analytics.readings import UTC_TIME, is_excluded, read_sensor_readings
from tasks.detection.labelled import LabelledReadings

MINUTE = timedelta(minutes=1)
NAIVE_TIME = pl.Datetime("us")


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    floored = floor_minute(moment)
    return floored if floored == moment.astimezone(UTC) else floored + MINUTE


def station_sensors(sensors: pl.DataFrame, station_id: str) -> pl.DataFrame:
    """The online sensors of one station (`sensor_id`, `parameter`, `unit`), sorted by id."""
    return (
        sensors.filter(pl.col("station_id") == station_id, pl.col("kind") == "online")
        .select("sensor_id", "parameter", "unit")
        .sort("sensor_id")
    )


def minute_grid(start: datetime, end: datetime) -> pl.DataFrame:
    """`observed_at`: every minute in [floor(start), end) as naive UTC."""
    first, stop = floor_minute(start), end.astimezone(UTC)
    times = pl.datetime_range(first, stop, "1m", closed="left", time_unit="us", time_zone="UTC", eager=True)
    return pl.DataFrame({"observed_at": times.dt.replace_time_zone(None)})


def wide_minutes(
    readings: pl.DataFrame, sensor_ids: list[str], start: datetime, end: datetime
) -> pl.DataFrame:
    """`observed_at` (naive UTC, every minute of [start, end)) and a Float64 column per sensor
    of `sensor_ids`, null where it has no usable reading in that minute."""
    grid = minute_grid(start, end)
    usable = (
        readings.filter(
            pl.col("sensor_id").is_in(sensor_ids), ~is_excluded(pl.col("value"), pl.col("qc_flag"))
        )
        .select(
            "sensor_id",
            pl.col("observed_at").dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.truncate("1m"),
            pl.col("value").cast(pl.Float64),
        )
        .group_by("observed_at", "sensor_id")
        .agg(pl.col("value").mean())
    )
    if usable.is_empty():
        wide = grid
    else:
        wide = grid.join(
            usable.pivot(on="sensor_id", index="observed_at", values="value"), on="observed_at", how="left"
        )
    return wide.select(
        "observed_at",
        *((pl.col(s) if s in wide.columns else pl.lit(None)).cast(pl.Float64).alias(s) for s in sensor_ids),
    )


def minute_labels(times: pl.Series, labels: pl.DataFrame) -> pl.Series:
    """Per minute of `times` (naive UTC), whether it was an event: the latest label (by
    `created_at`) covering any part of the minute decides; a minute no label covers is not an
    event. `labels` has `starts_at`, `ends_at` (exclusive, UTC), `is_event` and `created_at`."""
    if labels.is_empty():
        return pl.Series("label", [False] * times.len(), dtype=pl.Boolean)
    naive = [
        pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None) for c in ("starts_at", "ends_at")
    ]
    first, last = times.min(), times.max()
    covered = (
        labels.with_row_index("order")
        .with_columns(naive)
        .filter(pl.col("ends_at") > first, pl.col("starts_at") <= last)
        .with_columns(
            pl.max_horizontal(pl.col("starts_at").dt.truncate("1m"), pl.lit(first)).alias("from"),
            pl.min_horizontal(pl.col("ends_at"), pl.lit(last) + MINUTE).alias("to"),
        )
        .select(
            pl.datetime_ranges("from", "to", "1m", closed="left").alias("observed_at"),
            "is_event",
            "created_at",
            "order",
        )
        .explode("observed_at")
        .drop_nulls("observed_at")
        .sort("created_at", "order")
        .group_by("observed_at")
        .agg(pl.col("is_event").last())
    )
    joined = pl.DataFrame({"observed_at": times}).join(covered, on="observed_at", how="left")
    return joined["is_event"].fill_null(False).alias("label")


def station_readings(
    wide: pl.DataFrame, sensors: pl.DataFrame, labels: pl.DataFrame | None = None
) -> LabelledReadings:
    """The wide frame with its `label` per minute, as the evaluation's `LabelledReadings`."""
    label = (
        minute_labels(wide["observed_at"], labels)
        if labels is not None
        else pl.Series("label", [False] * wide.height, dtype=pl.Boolean)
    )
    parameters = dict(sensors.select("sensor_id", "parameter").iter_rows())
    return LabelledReadings(wide.with_columns(label), parameters)


def read_station_minutes(
    conn: Connection, municipality_id: str, sensors: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """The wide minute frame of `sensors` (one station's) over [start, end), from the database."""
    ids = sensors["sensor_id"].to_list()
    readings = read_sensor_readings(conn, municipality_id, ids, floor_minute(start), end)
    return wide_minutes(readings, ids, start, end)


def utc_times(naive: pl.Expr) -> pl.Expr:
    """Naive UTC times of a wide frame back to UTC-aware ones."""
    return naive.dt.replace_time_zone("UTC").cast(UTC_TIME)
