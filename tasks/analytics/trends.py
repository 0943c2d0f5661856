"""Trends over aggregates: moving averages, a least-squares line per sensor with its confidence,
and period-on-period changes (week on week, month on month, year on year)."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats

DEFAULT_WINDOW = 10
CONFIDENCE = 0.95
COMPARISONS = {  # kind: (resolution compared, how far back the earlier period starts)
    "day_on_day": ("day", "-1d"),
    "week_on_week": ("week", "-1w"),
    "month_on_month": ("month", "-1mo"),
    "year_on_year": ("month", "-1y"),
}
TREND_SCHEMA = {
    "sensor_id": pl.String,
    "points": pl.Int64,
    "slope_per_day": pl.Float64,
    "intercept": pl.Float64,
    "r_squared": pl.Float64,
    "p_value": pl.Float64,
    "slope_low": pl.Float64,
    "slope_high": pl.Float64,
}


def moving_average(
    aggregates: pl.DataFrame,
    window: int = DEFAULT_WINDOW,
    value: str = "value_mean",
    by: str = "sensor_id",
    order: str = "bucket_start",
) -> pl.DataFrame:
    """`aggregates` plus `moving_average`: per `by`, the mean of the last `window` points of
    `value` in `order`; null for the first `window - 1` points, and missing values are skipped."""
    if window < 1:
        raise ValueError(f"the moving-average window must be at least 1 point, not {window}")
    return (
        aggregates.sort(by, order)
        .with_columns(
            pl.col(value).rolling_mean(window, min_samples=1).over(by).alias("moving_average"),
            pl.int_range(pl.len()).over(by).alias("_at"),
        )
        .with_columns(
            pl.when(pl.col("_at") >= window - 1).then(pl.col("moving_average")).alias("moving_average")
        )
        .drop("_at")
    )


def linear_trend(
    aggregates: pl.DataFrame,
    value: str = "value_mean",
    by: str = "sensor_id",
    at: str = "bucket_start",
    confidence: float = CONFIDENCE,
) -> pl.DataFrame:
    """Per `by`, the least-squares line of `value` against time in days: slope per day,
    intercept (at the first point), R², the two-sided p-value of a zero slope and the slope's
    `confidence` interval (Student's t with n - 2 degrees of freedom, as scipy's linregress).
    Fewer than three points with a value give no p-value or interval; two, no R² either."""
    points = aggregates.filter(pl.col(value).is_not_null() & pl.col(value).is_finite())
    x = (pl.col(at) - pl.col(at).min()).dt.total_microseconds().over(by) / 86_400e6
    y = pl.col(value)
    fitted = (
        points.with_columns(x.alias("_x"))
        .group_by(by)
        .agg(
            pl.len().cast(pl.Int64).alias("points"),
            ((pl.col("_x") - pl.col("_x").mean()) ** 2).sum().alias("_sxx"),
            ((y - y.mean()) ** 2).sum().alias("_syy"),
            ((pl.col("_x") - pl.col("_x").mean()) * (y - y.mean())).sum().alias("_sxy"),
            pl.col("_x").mean().alias("_mx"),
            y.mean().alias("_my"),
        )
        .with_columns(slope_per_day=pl.when(pl.col("_sxx") > 0).then(pl.col("_sxy") / pl.col("_sxx")))
        .with_columns(
            intercept=pl.col("_my") - pl.col("slope_per_day") * pl.col("_mx"),
            r_squared=pl.when(pl.col("_syy") > 0)
            .then(pl.col("_sxy") ** 2 / (pl.col("_sxx") * pl.col("_syy")))
            .when(pl.col("_sxx") > 0)
            .then(1.0),  # a flat line through flat data explains all of it
            # standard error of the slope: sqrt(residual sum of squares / (n - 2) / Sxx)
            _se=pl.when((pl.col("points") > 2) & (pl.col("_sxx") > 0)).then(
                (
                    (pl.col("_syy") - pl.col("slope_per_day") * pl.col("_sxy")).clip(lower_bound=0)
                    / (pl.col("points") - 2)
                    / pl.col("_sxx")
                ).sqrt()
            ),
        )
        .sort(by)
    )
    dof = (fitted["points"] - 2).clip(lower_bound=1).to_numpy()
    se = fitted["_se"].to_numpy()
    slope = fitted["slope_per_day"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, slope / se, np.where(slope != 0, np.inf, 0.0))
    p = 2 * stats.t.sf(np.abs(t), dof)
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    return (
        fitted.with_columns(
            pl.Series("p_value", p).fill_nan(None),
            pl.Series("_half", half).fill_nan(None),
        )
        .select(
            pl.col(by).alias("sensor_id") if by != "sensor_id" else "sensor_id",
            "points",
            "slope_per_day",
            "intercept",
            "r_squared",
            pl.when(pl.col("_se").is_not_null()).then(pl.col("p_value")).alias("p_value"),
            (pl.col("slope_per_day") - pl.col("_half")).alias("slope_low"),
            (pl.col("slope_per_day") + pl.col("_half")).alias("slope_high"),
        )
        .cast(TREND_SCHEMA)
    )


def compare_periods(aggregates: pl.DataFrame, kind: str, tz: str) -> pl.DataFrame:
    """Per sensor and period of `aggregates` (`sensor_id`, `resolution`, `bucket_start`,
    `value_mean`), the earlier period `kind` compares it with and the change in percent.

    day_on_day: a day and the day before; week_on_week: a week and the week before;
    month_on_month: a month and the month before;
    year_on_year: a month and the same month a year earlier. Periods are named by their local
    first day (`period_start`); a change from a mean of zero has no percentage."""
    if kind not in COMPARISONS:
        raise ValueError(f"unknown comparison {kind!r}: use {', '.join(COMPARISONS)}")
    resolution, back = COMPARISONS[kind]
    periods = aggregates.filter(pl.col("resolution") == resolution).select(
        "sensor_id",
        pl.col("bucket_start").dt.convert_time_zone(tz).dt.date().alias("period_start"),
        "value_mean",
    )
    earlier = periods.select(
        "sensor_id",
        pl.col("period_start").alias("previous_start"),
        pl.col("value_mean").alias("previous_mean"),
    )
    previous = pl.col("previous_mean")
    return (
        periods.with_columns(pl.col("period_start").dt.offset_by(back).alias("previous_start"))
        .join(earlier, on=["sensor_id", "previous_start"], how="inner")
        .with_columns(
            kind=pl.lit(kind),
            change_pct=pl.when(previous != 0).then(100 * (pl.col("value_mean") - previous) / previous.abs()),
        )
        .select(
            "sensor_id", "kind", "period_start", "previous_start", "value_mean", "previous_mean", "change_pct"
        )
        .sort("sensor_id", "period_start")
    )
