"""Bucket statistics of every sensor at four resolutions: count, expected count and coverage,
mean, min, max, standard deviation, median, p95 and p99, and what QC excluded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from tasks.analytics.buckets import RESOLUTIONS, bucket_bounds, bucket_keys, key_parts
from tasks.analytics.readings import UTC_TIME, is_excluded

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
CADENCE_SCHEMA = {"sensor_id": pl.String, "interval_seconds": pl.Int64, "installed_at": UTC_TIME}


def _bucket_statistics(prepared: pl.DataFrame, key: str) -> pl.DataFrame:
    """One row per value of the sorted `key`: counts, moments and quantiles of `kept`.

    Polars' own linear quantiles (a selection per bucket, no sort) are the same figures as
    sorting each bucket's values and interpolating, and four times faster on days to months."""
    kept = pl.col("kept")
    return prepared.group_by(key).agg(
        pl.len().cast(pl.Int64).alias("count_readings"),
        pl.col("is_excluded").sum().cast(pl.Int64).alias("count_excluded"),
        pl.col("is_missing").sum().cast(pl.Int64).alias("count_missing"),
        kept.mean().alias("value_mean"),
        kept.min().alias("value_min"),
        kept.max().alias("value_max"),
        kept.std().alias("value_std"),
        *[kept.quantile(q, "linear").alias(name) for name, q in QUANTILES.items()],
    )


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
    is computed from the readings themselves (a median of medians is not a median): the readings
    are grouped once per resolution on a sorted integer key, so Polars takes each bucket as a
    contiguous slice, and each bucket's usable values are sorted once for its three quantiles.

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
    keys, codes, days = bucket_keys(frame, tz)
    if not (keys["hour"].is_sorted() and codes["sensor_id"].is_unique().all()):
        frame = frame.sort("sensor_id", "observed_at")
        keys, codes, days = bucket_keys(frame, tz)
    excluded = is_excluded(pl.col("value"), pl.col("qc_flag"))
    prepared = frame.select(
        excluded.alias("is_excluded"),
        (pl.col("qc_flag") == 9).fill_null(False).alias("is_missing"),
        pl.when(~excluded).then(pl.col("value")).alias("kept"),
    ).hstack(keys.select(pl.col(r).set_sorted() for r in resolutions))
    cadence = (
        sensors.select(list(CADENCE_SCHEMA)).cast(CADENCE_SCHEMA)
        if sensors is not None
        else pl.DataFrame(schema=CADENCE_SCHEMA)
    )
    frames = []
    for resolution in resolutions:  # four group-bys over all readings, not a loop over readings
        stats = _bucket_statistics(prepared, resolution)
        code, ordinal = key_parts(pl.col(resolution))
        stats = stats.with_columns(code.alias("code"), ordinal.alias("ordinal"))
        if resolution == "hour":
            start = (pl.col("ordinal") * 60_000_000).cast(UTC_TIME)
            stats = stats.with_columns(
                start.alias("bucket_start"), (start + pl.duration(hours=1)).alias("bucket_end")
            )
        else:
            stats = stats.join(bucket_bounds(resolution, days), on="ordinal", how="left")
        frames.append(stats.with_columns(resolution=pl.lit(resolution)))
    out = (
        pl.concat(frames, how="diagonal_relaxed")
        .join(codes, on="code", how="left")
        .join(cadence, on="sensor_id", how="left")
        .with_columns(count_expected=expected_count(through))
    )
    received = pl.col("count_readings") - pl.col("count_missing")
    coverage = pl.when(pl.col("count_expected") > 0).then(
        pl.min_horizontal(100 * received / pl.col("count_expected"), pl.lit(100.0))
    )
    return (
        out.with_columns(coverage_pct=coverage)
        .select(list(AGGREGATE_SCHEMA))
        .cast(AGGREGATE_SCHEMA)
        .sort(KEY)
    )
