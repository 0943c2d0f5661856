"""Pattern breaks: a sensor leaving its usual daily profile, e.g. a daily peak that does not come.

For each sensor and time-of-day bucket (local time), the profile is the median of that bucket's
mean over the previous `days` days, with the spread of those daily means (1.4826 x their MAD)
and the typical spread of readings inside the bucket. A reading is judged by the mean of its
bucket so far today (itself and the earlier readings of the same bucket): causal, and steadier
than one reading, so a single spike is left to the z-score.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.anomalies.detectors_base import (
    MAD_TO_SIGMA,
    SLOW_THRESHOLDS,
    NoiseFloor,
    Thresholds,
    anomaly_rows,
    direction,
    floor_expr,
    number_text,
    per_sensor,
    severity_of,
    sorted_readings,
    text,
)

PATTERN_DAYS = 7  # previous days in the profile
PATTERN_MIN_DAYS = 3  # fewer earlier days with the bucket: no profile
BUCKET_MINUTES = 60  # the time-of-day bucket
MIN_READINGS = 3  # readings of today's bucket before it is judged


def _row_medians(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's median of its non-NaN values (NaN where it has none), and how many there are."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = (~np.isnan(ordered)).sum(axis=1)
    lower = np.take_along_axis(ordered, np.clip((count - 1) // 2, 0, None)[:, None], axis=1)[:, 0]
    upper = np.take_along_axis(ordered, np.minimum(count // 2, values.shape[1] - 1)[:, None], axis=1)[:, 0]
    return np.where(count > 0, (lower + upper) / 2, np.nan), count


def daily_profile(runs: pl.LazyFrame, days: int, min_days: int) -> pl.LazyFrame:
    """Per run (one sensor, day and bucket): the median, spread and typical in-bucket deviation of
    the same sensor and bucket on the previous `days` days that have readings in it.

    The earlier days are at most `days` columns, so the medians are taken across columns of a
    small matrix (numpy), which costs a fifth of Polars' per-row list medians."""
    # sorted by (sensor, bucket, day): k rows back is the same sensor and bucket when both match
    ordered = runs.sort("sensor_id", "bucket", "day").collect(engine="in-memory")
    same = [
        (pl.col("sensor_id") == pl.col("sensor_id").shift(k))
        & (pl.col("bucket") == pl.col("bucket").shift(k))
        for k in range(1, days + 1)
    ]

    def earlier(column: str) -> np.ndarray:
        shifted = ordered.select(
            pl.when(s).then(pl.col(column).shift(k)).alias(str(k)) for k, s in enumerate(same, 1)
        )
        return shifted.to_numpy().astype(np.float64, copy=False).reshape(ordered.height, days)

    means = earlier("bucket_mean")
    profile, profile_days = _row_medians(means)
    mad, _ = _row_medians(np.abs(means - profile[:, None]))
    within_std, _ = _row_medians(earlier("bucket_std"))
    return (
        pl.DataFrame(
            {
                "run": ordered["run"],
                "profile": pl.Series(profile, nan_to_null=True),
                "profile_days": pl.Series(profile_days, dtype=pl.UInt32),
                "between_std": pl.Series(mad * MAD_TO_SIGMA, nan_to_null=True),
                "within_std": np.nan_to_num(within_std, nan=0.0),
            }
        )
        .lazy()
        .filter(pl.col("profile_days") >= min_days)
    )


def pattern_breaks(
    readings: pl.LazyFrame,
    days: int = PATTERN_DAYS,
    thresholds: Thresholds = SLOW_THRESHOLDS,
    noise_floor: NoiseFloor = 0.0,
    bucket_minutes: int = BUCKET_MINUTES,
    min_days: int = PATTERN_MIN_DAYS,
    min_readings: int = MIN_READINGS,
    timezone: str = "UTC",
    separated: bool = False,
) -> pl.LazyFrame:
    """Readings whose bucket-so-far mean departs from the usual daily profile of their sensor.

    z = (mean of today's bucket so far - profile) / max(sqrt(between² + within² / n), floor):
    between is the spread of the bucket's daily means over the previous `days` days, within the
    median standard deviation inside the bucket on those days, n the readings so far, floor the
    parameter's noise floor. Judged from the `min_readings`-th reading of the bucket, with at
    least `min_days` earlier days in the profile. Buckets are `bucket_minutes` of local time in
    `timezone`, so a municipality's daily rhythm keeps its clock through daylight saving.
    """
    local = pl.col("observed_at")
    if timezone != "UTC":
        local = local.dt.convert_time_zone(timezone)
    day_of, bucket_of = (
        local.dt.date(),
        (local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute()) // bucket_minutes,
    )
    if timezone == "UTC" and getattr(readings.collect_schema()["observed_at"], "time_zone", None) in (
        None,
        "UTC",
    ):
        # UTC clock time is plain arithmetic on the microseconds: the same days and buckets, cheaper
        micros, per_day = local.dt.epoch("us"), 86_400_000_000
        day_of = micros // per_day
        bucket_of = ((micros - day_of * per_day) // (bucket_minutes * 60_000_000)).cast(pl.Int32)
    sensor, day, bucket = pl.col("sensor_id"), pl.col("day"), pl.col("bucket")
    starts = ((sensor != sensor.shift(1)) | (day != day.shift(1)) | (bucket != bucket.shift(1))).fill_null(
        True
    )
    frame = (
        sorted_readings(readings, separated)
        .filter(pl.col("sensor_id").is_not_null())
        .with_columns(
            day_of.alias("day"),
            bucket_of.alias("bucket"),
        )
        .with_columns(starts.alias("starts"), pl.int_range(pl.len()).alias("row"))
        .with_columns(
            (pl.col("starts").cum_sum() - 1).alias("run"),
            per_sensor(pl.col("value").cum_sum(), separated).alias("cumulative"),
        )
    )
    # The frame once, in memory: its runs are numbered 0, 1, ... in row order, so each reading takes
    # its run's profile by position (a gather) instead of a join on the run number.
    frame = frame.collect(engine="in-memory")
    runs = (
        frame.lazy()
        .group_by(pl.col("run").set_sorted())
        .agg(
            pl.col("sensor_id").first(),
            pl.col("day").first(),
            pl.col("bucket").first(),
            pl.col("value").mean().alias("bucket_mean"),
            pl.col("value").std().alias("bucket_std"),
        )
    )
    every_run = pl.DataFrame({"run": pl.int_range(frame["run"].max() + 1 if frame.height else 0, eager=True)})
    profile = every_run.join(
        daily_profile(runs, days, min_days).collect(engine="in-memory"), on="run", how="left"
    )
    start = pl.when("starts")
    so_far = pl.col("row") - start.then(pl.col("row")).forward_fill() + 1
    total = pl.col("cumulative") - start.then(pl.col("cumulative") - pl.col("value")).forward_fill()
    scale = (pl.col("between_std").pow(2) + pl.col("within_std").pow(2) / pl.col("so_far")).sqrt()
    profiled = frame.with_columns(  # eagerly: all-null literal Series trip Polars 2.1's CSE
        profile[name].gather(frame["run"])
        for name in ("profile", "profile_days", "between_std", "within_std")
    )
    scored = (
        profiled.lazy()
        .with_columns(so_far.alias("so_far"), total.alias("total"))
        .filter(pl.col("so_far") >= min_readings)
        .filter(pl.col("profile_days").is_not_null())
        .with_columns((pl.col("total") / pl.col("so_far")).alias("bucket_so_far"))
        .with_columns(
            (
                (pl.col("bucket_so_far") - pl.col("profile"))
                / pl.max_horizontal(scale, floor_expr(noise_floor))
            ).alias("score")
        )
    )
    low, medium, high, critical = thresholds
    first_minute = pl.col("bucket") * bucket_minutes
    clock = pl.time(first_minute // 60, first_minute % 60).dt.strftime("%H:%M")
    explanation = text(
        "{} averaged {} {} over {} readings since {} local, {} deviations {} its usual {} {} at that time "
        "of day over the previous {} days",
        "parameter",
        number_text(pl.col("bucket_so_far")),
        "unit",
        pl.col("so_far"),
        clock,
        pl.col("score").abs().round(1).cast(pl.String),
        direction(pl.col("score")),
        number_text(pl.col("profile")),
        "unit",
        pl.col("profile_days"),
    )
    found = scored.filter(pl.col("score").is_finite() & (pl.col("score").abs() >= low))
    return anomaly_rows(
        found,
        "pattern_break",
        severity_of(pl.col("score").abs(), medium, high, critical),
        f"{bucket_minutes} min of day, previous {days} days",
        explanation,
    )
