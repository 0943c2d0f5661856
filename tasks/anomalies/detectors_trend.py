"""Trend and volatility detectors: a short trailing window's slope or variance against the same
sensor's history. Both are causal: the short window ends at the reading, the history before it.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import special, stats

from tasks.anomalies.detectors_base import (
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

TREND_WINDOW = 15  # readings in the slope
VOLATILITY_WINDOW = 15  # readings in the short variance
HISTORY = 1440  # earlier readings the slope or variance is compared with
TREND_ALPHA = 0.001  # the slope's own t-test must be this significant: a ramp, not one spike
MAX_SHARE = 0.5  # the most of a short window's squared deviation one reading may carry
SCORE_CAP = 40.0  # z-equivalents beyond this are all "certain"


def history_needed(history: int) -> int:
    return max(2, history // 4)


def short_var_column(window: int) -> str:
    """The column that may carry `value.rolling_var(window)` (sensors separated by null rows), so
    that the trend and volatility detectors share one pass: find_anomalies adds it."""
    return f"value_var_{window}"


def short_var(readings: pl.LazyFrame, window: int, separated: bool) -> pl.Expr:
    """The variance of the last `window` values: the shared column when the readings carry it."""
    name = short_var_column(window)
    if separated and name in readings.collect_schema().names():
        return pl.col(name)
    return per_sensor(pl.col("value").rolling_var(window), separated)


def trend_anomalies(
    readings: pl.LazyFrame,
    window: int = TREND_WINDOW,
    history: int = HISTORY,
    thresholds: Thresholds = SLOW_THRESHOLDS,
    noise_floor: NoiseFloor = 0.0,
    alpha: float = TREND_ALPHA,
    separated: bool = False,
) -> pl.LazyFrame:
    """Readings where the slope of the last `window` readings departs from the slopes before it.

    The slope is the least-squares line through the last `window` readings (this one included).
    Its score is a z-score against the mean and standard deviation of the slopes of the previous
    `history` readings (windows that end before this one begins), the deviation raised to the
    slope a noise-floor wobble would give. A finding also needs the slope's own t-test (scipy's
    t distribution, two-sided `alpha`): a steady ramp passes, one spike in the window does not.
    """
    sxx = window * (window * window - 1) / 12  # Σ(k - k̄)² of the window's reading indices
    t_needed = float(stats.t.isf(alpha / 2, window - 2))
    value = pl.col("value")
    index = pl.int_range(pl.len()).cast(pl.Float64)
    # rolling_cov(index, value) as Polars computes it, mean(i·x) - mean(i)·mean(x), bit for bit, with
    # the index's rolling mean known exactly (whole numbers): one rolling window fewer
    covariance = (
        (index * value).rolling_mean(window) - (index - (window - 1) / 2) * value.rolling_mean(window)
    ) * (window / (window - 1))
    slope = covariance * ((window - 1) / sxx)
    residual_ss = (pl.col("short_var") * (window - 1) - pl.col("slope").pow(2) * sxx).clip(lower_bound=0.0)
    spacing = (pl.col("observed_at") - pl.col("observed_at").shift(window - 1)).dt.total_seconds() / (
        3600 * (window - 1)
    )
    earlier = pl.col("slope").shift(window)
    needed = history_needed(history)
    z = (pl.col("slope") - pl.col("usual_slope")) / pl.max_horizontal(
        pl.col("slope_std"), floor_expr(noise_floor) / sxx**0.5
    )
    scored = (
        sorted_readings(readings, separated)
        .with_columns(
            per_sensor(slope, separated).alias("slope"),
            short_var(readings, window, separated).alias("short_var"),
        )
        .with_columns(
            residual_ss.alias("residual_ss"),
            per_sensor(earlier.rolling_mean(history, min_samples=needed), separated).alias("usual_slope"),
            per_sensor(earlier.rolling_std(history, min_samples=needed), separated).alias("slope_std"),
            per_sensor(spacing, separated).alias("hours_per_reading"),
        )
        .with_columns(
            z.alias("score"),
            (pl.col("slope") / (pl.col("residual_ss") / ((window - 2) * sxx)).sqrt()).alias("t"),
        )
    )
    low, medium, high, critical = thresholds
    per_hour = 1 / pl.col("hours_per_reading")
    explanation = text(
        "{} {} {} {} per hour over the last {} readings, {} standard deviations {} its usual {} {} "
        "per hour over the previous {} readings (t = {})",
        "parameter",
        direction(pl.col("slope"), "rose", "fell"),
        number_text(pl.col("slope").abs() * per_hour),
        "unit",
        pl.lit(window),
        pl.col("score").abs().round(1).cast(pl.String),
        direction(pl.col("score")),
        number_text(pl.col("usual_slope") * per_hour),
        "unit",
        pl.lit(history),
        pl.col("t").abs().round(1).cast(pl.String),
    )
    found = scored.filter(
        pl.col("score").is_finite() & (pl.col("score").abs() >= low) & (pl.col("t").abs() >= t_needed)
    )
    return anomaly_rows(
        found,
        "trend",
        severity_of(pl.col("score").abs(), medium, high, critical),
        f"{window} vs previous {history} readings",
        explanation,
    )


def f_test_score(ratio: np.ndarray, df_short: int, df_history: np.ndarray) -> np.ndarray:
    """The z-equivalent of the one-sided F-test p-value that the short variance is larger, from
    scipy's F distribution in log space so that tiny p-values stay finite (capped at SCORE_CAP)."""
    log_p = stats.f.logsf(ratio, df_short, df_history)
    return np.clip(-special.ndtri_exp(log_p), -SCORE_CAP, SCORE_CAP)


def _past_ratio(scored: pl.LazyFrame, lowest_ratio: float, window: int, separated: bool) -> pl.LazyFrame:
    """The rows whose `ratio` reaches `lowest_ratio`, with `share`: the largest `deviation` of the
    last `window` rows over their sum (null unless all `window` are known). Taken from the rows
    before filtering, so the window costs nothing on the many quiet rows."""
    if not separated:
        return scored.with_columns(
            (pl.col("deviation").rolling_max(window) / pl.col("deviation").rolling_sum(window))
            .over("sensor_id")
            .alias("share")
        ).filter(pl.col("ratio") >= lowest_ratio)
    past = pl.col("ratio") >= lowest_ratio
    rows = past.arg_true().cast(pl.Int64)
    earlier = [pl.col("deviation").gather((rows - k).clip(0)) for k in range(window)]
    total = earlier[0]
    for one in earlier[1:]:
        total = total + one  # null if any of the window is null, as rolling_sum's window
    share = pl.when(rows >= window - 1).then(pl.max_horizontal(earlier) / total)
    return scored.select(pl.all().filter(past), share.alias("share"))


def volatility_anomalies(
    readings: pl.LazyFrame,
    window: int = VOLATILITY_WINDOW,
    history: int = HISTORY,
    thresholds: Thresholds = SLOW_THRESHOLDS,
    noise_floor: NoiseFloor = 0.0,
    max_share: float = MAX_SHARE,
    separated: bool = False,
) -> pl.LazyFrame:
    """Readings where the variance of the last `window` readings rises against the history's.

    The ratio of the short window's variance (this reading included) to that of the previous
    `history` readings before it (raised to the noise floor squared) is an F statistic; the
    score is the z-equivalent of its one-sided p-value (scipy's F distribution). A window where
    one reading carries more than `max_share` of the squared deviation is a spike, the z-score's
    finding, not a rise in volatility. Only readings past the lowest possible critical ratio
    reach scipy, so the p-values cost nothing on quiet data.
    """
    value = pl.col("value")
    needed = history_needed(history)
    low, medium, high, critical = thresholds
    lowest_ratio = float(stats.f.isf(stats.norm.sf(low), window - 1, history - 1))
    deviation = (value - pl.col("usual_mean")).pow(2)
    ratio = pl.col("short_var") / pl.max_horizontal(pl.col("usual_var"), floor_expr(noise_floor).pow(2))
    history_count = value.shift(window).is_not_null().cast(pl.Int32).rolling_sum(history, min_samples=1)
    scored = (
        sorted_readings(readings, separated)
        .with_columns(
            short_var(readings, window, separated).alias("short_var"),
            per_sensor(value.rolling_var(history, min_samples=needed).shift(window), separated).alias(
                "usual_var"
            ),
            per_sensor(value.rolling_mean(history, min_samples=needed).shift(window), separated).alias(
                "usual_mean"
            ),
            per_sensor(history_count, separated).alias("history_count"),
        )
        .with_columns(ratio.alias("ratio"), deviation.alias("deviation"))
        .pipe(_past_ratio, lowest_ratio, window, separated)
        .filter(pl.col("share") <= max_share)
        .with_columns(
            pl.struct("ratio", "history_count")
            .map_batches(
                lambda s: pl.Series(
                    f_test_score(
                        s.struct.field("ratio").to_numpy(),
                        window - 1,
                        s.struct.field("history_count").to_numpy() - 1,
                    )
                ),
                return_dtype=pl.Float64,
            )
            .alias("score")
        )
        .filter(pl.col("score") >= low)
    )
    explanation = text(
        "{} varied {} times its usual standard deviation over the last {} readings: {} {} against {} {} "
        "over the previous {} readings",
        "parameter",
        pl.col("ratio").sqrt().round(1).cast(pl.String),
        pl.lit(window),
        number_text(pl.col("short_var").sqrt()),
        "unit",
        number_text(pl.col("usual_var").sqrt()),
        "unit",
        pl.lit(history),
    )
    return anomaly_rows(
        scored,
        "volatility",
        severity_of(pl.col("score"), medium, high, critical),
        f"{window} vs previous {history} readings",
        explanation,
    )
