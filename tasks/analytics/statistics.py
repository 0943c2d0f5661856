"""Bucket statistics of every sensor at four resolutions: count, expected count and coverage,
mean, min, max, standard deviation, median, p95 and p99, and what QC excluded."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import polars as pl

from tasks.analytics import kernels
from tasks.analytics.buckets import RESOLUTIONS, US_PER_MINUTE, bucket_bounds, day_table, minute_table
from tasks.analytics.readings import UTC_TIME

KEY = ["sensor_id", "resolution", "bucket_start"]
VALUE_COLUMNS = [
    "count_readings",
    "count_excluded",
    "count_expected",
    "coverage_pct",
    "value_mean",
    "value_min",
    "value_max",
    "value_std",
    "value_median",
    "value_p95",
    "value_p99",
]
AGGREGATE_SCHEMA = {
    "sensor_id": pl.String,
    "resolution": pl.String,
    "bucket_start": UTC_TIME,
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
QUANTILES = {"value_median": 0.5, "value_p95": 0.95, "value_p99": 0.99}
QUANTILE_LEVELS = np.array(list(QUANTILES.values()))
COUNT_COLUMNS = ["count_readings", "count_excluded", "count_missing"]
MOMENT_COLUMNS = ["value_mean", "value_min", "value_max", "value_std"]
CADENCE_SCHEMA = {"sensor_id": pl.String, "interval_seconds": pl.Int64, "installed_at": UTC_TIME}


def expected_count(through: datetime | None) -> pl.Expr:
    """Readings a sensor was expected to send in its bucket: the bucket's length (from when it
    was installed, up to `through` when given) over its cadence; null without a cadence."""
    end = pl.col("bucket_end")
    if through is not None:
        end = pl.min_horizontal(end, pl.lit(through, dtype=UTC_TIME))
    start = pl.max_horizontal(
        pl.col("bucket_start"), pl.col("installed_at").fill_null(pl.col("bucket_start"))
    )
    seconds = (end - start).dt.total_seconds().clip(lower_bound=0)
    interval = pl.col("interval_seconds")
    return pl.when(interval > 0).then(seconds // interval).cast(pl.Int64)


def aggregate_readings(
    readings: pl.DataFrame | pl.LazyFrame,
    tz: str,
    sensors: pl.DataFrame | None = None,
    resolutions: Sequence[str] = RESOLUTIONS,
    through: datetime | None = None,
) -> pl.DataFrame:
    """Per sensor, one row per local hour, day, week (from Monday) and month of `readings`.

    `readings` has `sensor_id`, `observed_at` (UTC), `value` and `qc_flag`, best sorted by sensor
    and time (as the database returns them; otherwise they are sorted first). Buckets follow the
    wall clock of `tz` and each `bucket_start` is the UTC instant the bucket begins locally: a day
    of a daylight-saving change has 23 or 25 hourly buckets. Every statistic of every resolution
    is computed from the readings themselves (a median of medians is not a median), one compiled
    pass per resolution, the resolutions side by side on threads (see `tasks.analytics.kernels`).

    Failed and missing readings (QARTOD 4 and 9, null, NaN) are counted in `count_readings` and
    `count_excluded` but enter no statistic. `sensors` (`sensor_id`, `interval_seconds`,
    `installed_at`) gives `count_expected`, up to `through` when a bucket is not over yet, and
    `coverage_pct`: readings received (not flagged missing) per expected reading, at most 100.
    """
    unknown = sorted(set(resolutions) - set(RESOLUTIONS))
    if unknown:
        raise ValueError(f"unknown resolution {unknown[0]!r}: use {', '.join(RESOLUTIONS)}")
    frame = readings.collect() if isinstance(readings, pl.LazyFrame) else readings
    if frame.is_empty():
        return pl.DataFrame(schema=AGGREGATE_SCHEMA)
    columns = _kernel_columns(frame)
    if not (
        columns["sensors"]["sensor_id"].is_unique().all()
        and kernels.in_time_order(columns["run_ends"], columns["at"])
    ):
        columns = _kernel_columns(frame.sort("sensor_id", "observed_at"))
    minutes = minute_table(columns["first_minute"], columns["last_minute"], tz)
    days = day_table(minutes["day"].min(), minutes["day"].max(), tz)
    at_day = minutes["day"] - days["day"][0]
    # Each minute of the span's bucket at each resolution: 1,440 a day, not one per reading.
    minute_ordinals = {
        "hour": minutes["hour"],
        "day": minutes["day"],
        "week": days["week"].gather(at_day),
        "month": days["month"].gather(at_day),
    }

    def one(resolution: str) -> pl.DataFrame:
        starts, codes, ordinals = kernels.bucket_bounds(
            columns["run_ends"], columns["at"], minute_ordinals[resolution].to_numpy()
        )
        counts = np.zeros((codes.shape[0], 3), np.int64)
        moments = np.full((codes.shape[0], 4), np.nan)
        quantiles = np.full((codes.shape[0], len(QUANTILES)), np.nan)
        kernels.bucket_statistics(
            starts, columns["value"], columns["qc_flag"], QUANTILE_LEVELS, counts, moments, quantiles
        )
        stats = pl.DataFrame(
            {
                "code": codes,
                "ordinal": ordinals,
                **dict(zip(COUNT_COLUMNS, counts.T, strict=True)),
                **dict(zip(MOMENT_COLUMNS, moments.T, strict=True)),
                **dict(zip(QUANTILES, quantiles.T, strict=True)),
            }
        ).with_columns(pl.col([*MOMENT_COLUMNS, *QUANTILES]).fill_nan(None), resolution=pl.lit(resolution))
        if resolution == "hour":
            start = (pl.col("ordinal") * US_PER_MINUTE).cast(UTC_TIME)
            return stats.with_columns(
                start.alias("bucket_start"), (start + pl.duration(hours=1)).alias("bucket_end")
            )
        return stats.join(bucket_bounds(resolution, days), on="ordinal", how="left")

    with ThreadPoolExecutor(max(1, min(len(resolutions), pl.thread_pool_size()))) as pool:
        frames = list(pool.map(one, resolutions))  # compiled passes that release the GIL
    cadence = (
        sensors.select(list(CADENCE_SCHEMA)).cast(CADENCE_SCHEMA)
        if sensors is not None
        else pl.DataFrame(schema=CADENCE_SCHEMA)
    )
    out = (
        pl.concat(frames, how="vertical_relaxed")
        .join(columns["sensors"], on="code", how="left")
        .join(cadence, on="sensor_id", how="left")
        .with_columns(count_expected=expected_count(through))
    )
    received = pl.col("count_readings") - pl.col("count_missing")
    coverage = pl.when(pl.col("count_expected") > 0).then(
        pl.min_horizontal(100 * received / pl.col("count_expected"), pl.lit(100.0))
    )
    return (
        out.with_columns(coverage_pct=coverage)
        .sort("rank", "resolution", "bucket_start")
        .select(list(AGGREGATE_SCHEMA))
        .cast(AGGREGATE_SCHEMA)
    )


def _kernel_columns(frame: pl.DataFrame) -> dict:
    """The readings as the compiled passes take them: where each sensor's run of readings ends
    (its code is its run's number), the minute since the first reading's, values with NaN for
    null, and QC flags with 2 for null."""
    minute = frame["observed_at"].dt.epoch("us") // US_PER_MINUTE
    first = minute.min()
    runs = frame["sensor_id"].rle()
    sensors = pl.DataFrame(
        {
            "code": pl.int_range(0, runs.len(), eager=True, dtype=pl.Int64),
            "sensor_id": runs.struct.field("value"),
        }
    ).with_columns(rank=pl.col("sensor_id").rank("dense"))
    return {
        "run_ends": runs.struct.field("len").cast(pl.Int64).cum_sum().to_numpy(),
        "at": (minute - first).to_numpy(),
        "first_minute": first,
        "last_minute": minute.max(),
        "value": frame["value"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        "qc_flag": frame["qc_flag"].cast(pl.Int16).fill_null(2).to_numpy(),
        "sensors": sensors,
    }
