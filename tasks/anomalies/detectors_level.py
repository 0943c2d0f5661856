"""Level detectors: a reading against the trailing window of its own sensor (rolling and robust
z-score) or against a fixed operational limit. Windows are counts of readings (an int) or stretches
of time (a timedelta); `find_anomalies` (detectors.py) gives them counts per cadence group.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import numpy as np
import polars as pl

from tasks.anomalies.detectors_base import (
    ANOMALY_SCHEMA,
    MAD_TO_SIGMA,
    ZSCORE_THRESHOLDS,
    ZSCORE_WINDOW,
    NoiseFloor,
    Thresholds,
    anomaly_rows,
    direction,
    floor_expr,
    number_text,
    parse_duration,
    per_sensor,
    severity_of,
    sorted_readings,
    text,
    window_text,
)
from tasks.anomalies.detectors_cadence import MIN_READINGS, MIN_SHARE


def limits_frame(limits: Mapping) -> pl.DataFrame:
    """One row per parameter and side (`low`/`high`): the limit and the three severity steps."""
    rows = [
        {
            "parameter": name,
            "side": side,
            "limit": float(spec[side]["limit"]),
            "step_medium": float(spec[side]["steps"][0]),
            "step_high": float(spec[side]["steps"][1]),
            "step_critical": float(spec[side]["steps"][2]),
        }
        for name, spec in limits.items()
        for side in ("low", "high")
        if side in spec
    ]
    schema = {
        "parameter": pl.String,
        "side": pl.String,
        "limit": pl.Float64,
        "step_medium": pl.Float64,
        "step_high": pl.Float64,
        "step_critical": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


ROBUST_SPREADS = ("mad", "iqr")
IQR_TO_SIGMA = 1.349  # the inter-quartile range of a normal distribution, in standard deviations


def trailing(
    stat: str, window: int | str | timedelta, needed: int | pl.Expr, expr: pl.Expr | None = None
) -> pl.Expr:
    """A rolling `stat` (mean, std, median, q25, q75) of `expr` over the previous `window` readings (an int)
    or the previous stretch of time (closed left), never the reading itself; null with fewer than
    `needed` (a number, or in a time window an expression such as each sensor's `needed_in_time`)."""
    expr = pl.col("value") if expr is None else expr
    least = 1 if isinstance(needed, pl.Expr) else needed
    if stat in ("q25", "q75"):
        quantile = {"quantile": int(stat[1:]) / 100, "interpolation": "linear"}
        if isinstance(window, int):
            return expr.rolling_quantile(window_size=window, min_samples=least, **quantile).shift(1)
        by = {"window_size": window, "min_samples": least, "closed": "left"}
        rolled = expr.rolling_quantile_by("observed_at", **quantile, **by)
    elif isinstance(window, int):
        return getattr(expr, f"rolling_{stat}")(window, min_samples=least).shift(1)
    else:
        rolled = getattr(expr, f"rolling_{stat}_by")("observed_at", window, min_samples=least, closed="left")
    if not isinstance(needed, pl.Expr):
        return rolled
    held = expr.is_not_null().cast(pl.UInt32).rolling_sum_by("observed_at", window, closed="left")
    return pl.when(held >= needed).then(rolled)


def needed_in_time(window: str | timedelta) -> pl.Expr:
    """The fewest earlier readings a time window judges with, per sensor (evaluate it within one
    sensor): max(3, half the readings the window holds at the sensor's median spacing)."""
    span = parse_duration(window, "the window", "window") if isinstance(window, str) else window
    spacing = pl.col("observed_at").diff().dt.total_microseconds().median()
    promised = (span.total_seconds() * 1e6 / spacing).floor()
    return pl.max_horizontal(pl.lit(MIN_READINGS), (MIN_SHARE * promised).ceil()).cast(pl.Int64)


def needed_samples(window: int | str | timedelta, min_samples: int | None) -> int:
    """The fewest earlier readings a window judges with: `min_samples`, else half a count window,
    else in a time window MIN_READINGS (3), the least any sensor needs (each sensor needs
    max(3, half the readings the window holds at its spacing): `window_needs`)."""
    if min_samples:
        return min_samples
    return max(2, window // 2) if isinstance(window, int) else MIN_READINGS


def window_needs(window: int | str | timedelta, min_samples: int | None) -> int | pl.Expr:
    """What `rolling_zscore` and `robust_zscore` need before a reading: `needed_samples`, but in a
    time window without `min_samples` each sensor's `needed_in_time`."""
    if min_samples or isinstance(window, int):
        return needed_samples(window, min_samples)
    return needed_in_time(window)


def zscore_rows(
    scored: pl.LazyFrame, method: str, thresholds: Thresholds, described: str, spread: str, centre: str
) -> pl.LazyFrame:
    """Findings of a z-score detector: `score` past thresholds[0], with severity and explanation."""
    low, medium, high, critical = thresholds
    explanation = text(
        "{} {} {} is {} {} {} the {} {} {} of the previous {}",
        "parameter",
        number_text(pl.col("value")),
        "unit",
        pl.col("score").abs().round(1).cast(pl.String),
        pl.lit(spread),
        direction(pl.col("score")),
        pl.lit(centre),
        number_text(pl.col("window_centre")),
        "unit",
        pl.lit(described),
    )
    return anomaly_rows(
        scored.filter(pl.col("score").is_finite() & (pl.col("score").abs() >= low)),
        method,
        severity_of(pl.col("score").abs(), medium, high, critical),
        described,
        explanation,
    )


def rolling_zscore(
    readings: pl.LazyFrame,
    window: int | str | timedelta = ZSCORE_WINDOW,
    thresholds: Thresholds = ZSCORE_THRESHOLDS,
    noise_floor: NoiseFloor = 0.0,
    min_samples: int | None = None,
    separated: bool = False,
    label: timedelta | None = None,
) -> pl.LazyFrame:
    """Readings whose z-score against the trailing window of the same sensor reaches thresholds[0].

    The window is the previous `window` readings (an int) or the previous stretch of time (a
    timedelta), never the reading itself; at least `min_samples` of them (default: half a
    count window; in a time window max(3, half the readings it holds at the sensor's median
    spacing)) must be there. The window's standard deviation is raised to the parameter's
    `noise_floor` so a flat window does not make every small change infinitely unusual. Severity
    is LOW, MEDIUM, HIGH or CRITICAL as |z| passes each threshold. `label` is the duration a
    count window stands for, as findings name their window.
    """
    needed = window_needs(window, min_samples)
    moments = sorted_readings(readings, separated).with_columns(
        per_sensor(trailing("mean", window, needed), separated).alias("window_mean"),
        per_sensor(trailing("std", window, needed), separated).alias("window_std"),
    )
    return zscores_of_moments(moments, window, thresholds, noise_floor, label)


def zscores_of_moments(
    moments: pl.LazyFrame,
    window: int | str | timedelta,
    thresholds: Thresholds,
    noise_floor: NoiseFloor,
    label: timedelta | None = None,
) -> pl.LazyFrame:
    """`rolling_zscore`'s findings from readings that carry their trailing `window_mean` and `window_std`."""
    z = (pl.col("value") - pl.col("window_centre")) / pl.max_horizontal(
        pl.col("window_std"), floor_expr(noise_floor)
    )
    scored = moments.rename({"window_mean": "window_centre"}).with_columns(z.alias("score"))
    return zscore_rows(
        scored, "rolling_zscore", thresholds, window_text(label or window), "standard deviations", "mean"
    )


def robust_zscore(
    readings: pl.LazyFrame,
    window: int | str | timedelta = ZSCORE_WINDOW,
    thresholds: Thresholds = ZSCORE_THRESHOLDS,
    noise_floor: NoiseFloor = 0.0,
    min_samples: int | None = None,
    separated: bool = False,
    spread: str = "mad",
    label: timedelta | None = None,
) -> pl.LazyFrame:
    """Readings whose robust z-score against the trailing window reaches thresholds[0].

    z = (value - median) / max(1.4826 * MAD, noise floor), where the median is that of the
    previous `window` readings (or stretch of time) and the MAD is the median, over the same
    previous window, of each earlier reading's absolute distance from its own trailing median:
    two rolling medians, no reading judged against itself, and a spike in the window moves
    neither. On a quantised sensor sitting on one value the MAD is 0 and the noise floor of
    the parameter takes over, so a one-step change scores a few floors, not infinity.
    With `spread="iqr"` the deviation is the window's inter-quartile range / 1.349 instead
    (three order statistics of the raw window, smoother on coarsely quantised sensors).
    `min_samples` and `label` are as in `rolling_zscore`.
    """
    if spread not in ROBUST_SPREADS:
        raise ValueError(f"unknown spread {spread!r}: use one of {', '.join(ROBUST_SPREADS)}")
    needed = window_needs(window, min_samples)
    centre = trailing("median", window, needed)
    if spread == "mad":
        deviation = trailing("median", window, needed, (pl.col("value") - pl.col("window_centre")).abs())
        deviation = deviation * MAD_TO_SIGMA
    else:
        deviation = (trailing("q75", window, needed) - trailing("q25", window, needed)) / IQR_TO_SIGMA
    z = (pl.col("value") - pl.col("window_centre")) / pl.max_horizontal(
        pl.col("window_spread"), floor_expr(noise_floor)
    )
    # Polars' rolling median is slow over nulls: drop the separating rows, window per sensor key.
    frame, by = (
        (readings.filter(pl.col("sensor_id").is_not_null()), "sensor_key")
        if separated
        else (readings.sort("sensor_id", "observed_at"), "sensor_id")
    )
    scored = (
        frame.with_columns(centre.over(by).alias("window_centre"))
        .filter(pl.col("window_centre").is_not_null())  # and no null reaches the second median
        .with_columns(deviation.over(by).alias("window_spread"))
        .with_columns(z.alias("score"))
    )
    return zscore_rows(
        scored,
        "robust_zscore",
        thresholds,
        window_text(label or window),
        "robust standard deviations",
        "median",
    )


QUANTILE_BLOCK = 65_536  # candidate rows whose windows are sorted at once: bounds the memory


def window_quantiles(
    values: np.ndarray, rows: np.ndarray, window: int, quantiles: tuple[float, ...], needed: int
) -> list[np.ndarray]:
    """Per row in `rows`, the `quantiles` (linear interpolation, as Polars' rolling_quantile) of
    the previous `window` entries of `values` that are not NaN; NaN with fewer than `needed`.
    Rows are taken in blocks, so memory stays at QUANTILE_BLOCK windows whatever their number."""
    padded = np.concatenate([np.full(window, np.nan), values])
    out = [np.empty(len(rows)) for _ in quantiles]
    for first in range(0, len(rows), QUANTILE_BLOCK):
        block = rows[first : first + QUANTILE_BLOCK]
        ordered = np.sort(padded[block[:, None] + np.arange(window)], axis=1)  # NaN sorts last
        count = window - np.isnan(ordered).sum(axis=1)
        for result, quantile in zip(out, quantiles, strict=True):
            position = (np.maximum(count, 1) - 1) * quantile
            low = np.floor(position).astype(np.int64)
            high = np.ceil(position).astype(np.int64)
            below = np.take_along_axis(ordered, low[:, None], axis=1)[:, 0]
            above = np.take_along_axis(ordered, high[:, None], axis=1)[:, 0]
            value = np.where(high == low, below, below + (position - low) * (above - below))
            result[first : first + len(block)] = np.where(count >= needed, value, np.nan)
    return out


def robust_iqr_separated(
    readings: pl.DataFrame,
    window: int,
    thresholds: Thresholds,
    min_samples: int | None = None,
    label: timedelta | None = None,
) -> pl.LazyFrame:
    """`robust_zscore(..., spread="iqr", separated=True)` over a count window (the same findings),
    with the order statistics taken only where a finding is possible.

    |value - median| is at most |value - mean| + the window's standard deviation, and the spread
    is at least the noise floor, so a reading whose bound stays below thresholds[0] x floor is no
    finding; the median and quartiles of the others come from their own windows. As in
    `robust_zscore`, the quartiles' window holds only readings that have a median themselves
    (not the first `needed` of their sensor).
    """
    needed = needed_samples(window, min_samples)
    value, floor, sensor = pl.col("value"), pl.col("noise_floor"), pl.col("sensor_id")
    mean, std = trailing("mean", window, needed), trailing("std", window, needed)
    if {"window_mean", "window_std"} <= set(readings.columns):  # the same, already computed
        mean, std = pl.col("window_mean"), pl.col("window_std")
    bound = (value - mean).abs() + std
    slack = 1e-9 * (value.abs() + mean.abs() + 1.0)  # rounding in the rolling sums
    possible = mean.is_not_null() & ((floor <= 0) | (bound + slack >= thresholds[0] * floor))
    first = sensor.is_not_null() & sensor.shift(1).is_null().fill_null(True)
    rows = readings.select(possible.arg_true()).to_series().to_numpy()
    starts = readings.select(first.arg_true()).to_series().to_numpy()
    values = readings["value"].fill_null(np.nan).to_numpy()
    index = np.arange(len(values))
    sensor_start = starts[np.maximum(np.searchsorted(starts, index, side="right") - 1, 0)]
    with_centre = np.where(index - sensor_start >= needed, values, np.nan)
    # a window past its sensor's first `needed` rows is the same in both: one sort gives all three
    clean = rows.astype(np.int64) - window - sensor_start[rows].astype(np.int64) >= needed
    centre, q25, q75 = window_quantiles(values, rows, window, (0.5, 0.25, 0.75), needed)
    q25[~clean], q75[~clean] = window_quantiles(with_centre, rows[~clean], window, (0.25, 0.75), needed)
    picked = readings.select("sensor_id", "observed_at", "value", "parameter", "unit", "noise_floor")[rows]
    scored = (
        picked.with_columns(
            pl.Series("window_centre", centre).fill_nan(None),
            ((pl.Series(q75) - pl.Series(q25)) / IQR_TO_SIGMA).fill_nan(None).alias("window_spread"),
        )
        .lazy()
        .with_columns(
            ((value - pl.col("window_centre")) / pl.max_horizontal("window_spread", floor)).alias("score")
        )
    )
    return zscore_rows(
        scored,
        "robust_zscore",
        thresholds,
        window_text(label or window),
        "robust standard deviations",
        "median",
    )


def limit_breaches(readings: pl.LazyFrame, limits: Mapping) -> pl.LazyFrame:
    """Readings strictly beyond an operational limit of their parameter.

    The score is the distance beyond the limit in the parameter's unit; the severity steps up
    to MEDIUM, HIGH and CRITICAL at the distances the limits file gives for that side.
    """
    beyond = (
        pl.when(pl.col("side") == "high")
        .then(pl.col("value") - pl.col("limit"))
        .otherwise(pl.col("limit") - pl.col("value"))
    )
    return (
        readings.join(limits_frame(limits).lazy(), on="parameter", how="inner")
        .with_columns(beyond.alias("score"))
        .filter(pl.col("score") > 0)
        .select(
            "sensor_id",
            "observed_at",
            pl.lit("limit_breach").alias("method"),
            "value",
            "score",
            severity_of(
                pl.col("score"), pl.col("step_medium"), pl.col("step_high"), pl.col("step_critical")
            ).alias("severity"),
            pl.lit("1 reading").alias("window"),
            text(
                "{} {} {} is {} {} {} the operational limit {} {}",
                "parameter",
                number_text(pl.col("value")),
                "unit",
                number_text(pl.col("score")),
                "unit",
                pl.when(pl.col("side") == "high").then(pl.lit("above")).otherwise(pl.lit("below")),
                number_text(pl.col("limit")),
                "unit",
            ).alias("explanation"),
        )
        .cast(ANOMALY_SCHEMA)
    )
