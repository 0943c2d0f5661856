"""Anomaly detectors: plain Polars functions from readings to anomalies, one row per finding.

Level detectors live here (rolling and robust z-score, operational limits) with `find_anomalies`,
which runs every detector; slope and variance in `detectors_trend`, the daily profile in
`detectors_pattern`, agreement at a station in `detectors_combined`. The schema, severities and
wording they share are in `detectors_base` (and re-exported here). Windows, thresholds and
switches are in `detectors.yaml`; limits and noise floors per parameter in `limits.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from tasks.analytics.readings import EXCLUDED_FLAGS
from tasks.anomalies.detectors_base import (
    ANOMALY_SCHEMA,
    DETECTORS_PATH,
    LIMITS_PATH,
    MAD_TO_SIGMA,
    SEVERITIES,
    SEVERITY_RANK,
    ZSCORE_THRESHOLDS,
    ZSCORE_WINDOW,
    DetectorConfigError,
    NoiseFloor,
    Thresholds,
    anomaly_rows,
    direction,
    floor_expr,
    is_sensor_time_sorted,
    load_detector_config,
    load_limits,
    noise_floors,
    number_text,
    parse_detector_config,
    parse_duration,
    per_sensor,
    severity_of,
    sorted_readings,
    text,
    thresholds_of,
    window_text,
    zscore_parameters,
)
from tasks.anomalies.detectors_cadence import (
    MIN_READINGS,
    MIN_SHARE,
    counted_spec,
    enabled_detectors,
    sensor_cadences,
    skip_sentences,
    skips_of,
)
from tasks.anomalies.detectors_combined import combined
from tasks.anomalies.detectors_pattern import pattern_breaks
from tasks.anomalies.detectors_trend import short_var_column, trend_anomalies, volatility_anomalies

__all__ = [
    "ANOMALY_SCHEMA",
    "DETECTORS_PATH",
    "LIMITS_PATH",
    "SEVERITIES",
    "SEVERITY_RANK",
    "ZSCORE_THRESHOLDS",
    "ZSCORE_WINDOW",
    "DetectorConfigError",
    "combined",
    "detector_lookback",
    "find_anomalies",
    "limit_breaches",
    "limits_frame",
    "load_detector_config",
    "load_limits",
    "noise_floors",
    "number_text",
    "pattern_breaks",
    "robust_zscore",
    "rolling_zscore",
    "severity_of",
    "skip_sentences",
    "skipped_sensors",
    "trend_anomalies",
    "volatility_anomalies",
    "window_text",
    "zscore_parameters",
]


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


def needed_samples(window: int | str | timedelta, min_samples: int | None) -> int | pl.Expr:
    """At least `min_samples` earlier readings: by default half a count window, and in a time
    window max(3, half the readings it holds at each sensor's median spacing)."""
    if min_samples:
        return min_samples
    return max(2, window // 2) if isinstance(window, int) else needed_in_time(window)


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
    needed = needed_samples(window, min_samples)
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
    needed = needed_samples(window, min_samples)
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


def is_usable(value: pl.Expr, qc_flag: pl.Expr) -> pl.Expr:
    """`~is_excluded(value, qc_flag)` in fewer passes: a finite value not flagged failed or missing."""
    flag_kept = pl.all_horizontal([(qc_flag != flag).fill_null(True) for flag in EXCLUDED_FLAGS])
    return value.is_finite().fill_null(False) & flag_kept


def sorted_usable(readings: pl.DataFrame) -> pl.DataFrame:
    """`sensor_id`, `observed_at` and `value` of the readings a detector may use, in (sensor, time)
    order: failed or missing readings (QARTOD 4, 9) and readings with no finite value are left
    out, suspect ones (3) stay. Sorted only when not in order already."""
    flag = pl.col("qc_flag") if "qc_flag" in readings.columns else pl.lit(None, pl.Int16)
    usable = readings.filter(is_usable(pl.col("value"), flag)).select("sensor_id", "observed_at", "value")
    return usable if is_sensor_time_sorted(usable) else usable.sort("sensor_id", "observed_at")


def watched_cadences(usable: pl.DataFrame, sensors: pl.DataFrame, limits: Mapping) -> pl.DataFrame:
    """`sensor_cadences` of the usable readings' known sensors, with their `parameter`, `unit` and
    whether the statistical detectors `watched` them (limits.yaml's `zscore`)."""
    watched = set(zscore_parameters(limits))
    known = sensors.select("sensor_id", "parameter", "unit")
    return (
        sensor_cadences(usable, sensors)
        .join(known, on="sensor_id", how="inner", maintain_order="left")
        .with_columns(pl.col("parameter").is_in(list(watched)).alias("watched"))
    )


def assemble_readings(
    usable: pl.DataFrame, cadences: pl.DataFrame, limits: Mapping, gap: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The watched readings of the sensors in `cadences` (rows of `watched_cadences`) and their
    readings beyond an operational limit, as `usable_readings` returns them."""
    floors = noise_floors(limits)
    bounds = {
        (p, side): limit
        for p, side, limit in limits_frame(limits).select("parameter", "side", "limit").rows()
    }
    watched_parts, beyond_parts = [], []
    for sensor in cadences.iter_rows(named=True):
        parameter = sensor["parameter"]
        part = usable.slice(sensor["offset"], sensor["length"]).with_columns(
            parameter=pl.lit(parameter, pl.String), unit=pl.lit(sensor["unit"], pl.String)
        )
        low = bounds.get((parameter, "low"), float("-inf"))
        high = bounds.get((parameter, "high"), float("inf"))
        if low > float("-inf") or high < float("inf"):
            beyond_parts.append(part.filter((pl.col("value") < low) | (pl.col("value") > high)))
        if sensor["watched"]:
            watched_parts.append(
                part.with_columns(
                    noise_floor=pl.lit(floors.get(parameter, 0.0), pl.Float64),
                    sensor_key=pl.lit(len(watched_parts) // (2 if gap else 1), pl.Int32),
                )
            )
            if gap:
                watched_parts.append(watched_parts[-1].clear(gap))
    schema = {**usable.schema, "parameter": pl.String, "unit": pl.String}
    watched_schema = {**schema, "noise_floor": pl.Float64, "sensor_key": pl.Int32}
    return (
        pl.concat(watched_parts, rechunk=True) if watched_parts else pl.DataFrame(schema=watched_schema),
        pl.concat(beyond_parts) if beyond_parts else pl.DataFrame(schema=schema),
    )


def usable_readings(
    readings: pl.DataFrame, sensors: pl.DataFrame, limits: Mapping, gap: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The readings the statistical detectors watch and those beyond an operational limit.

    The watched readings are in (sensor, time) order, each with its sensor's `parameter`, `unit`,
    `noise_floor` and `sensor_key`; with `gap`, each sensor's rows are followed by `gap` null
    rows, so trailing windows can run over the whole column at once (`separated`): one pass
    instead of one per sensor, and no hash of the sensor id. The readings beyond a limit carry
    `parameter` and `unit` for `limit_breaches`. Readings as `sorted_usable` keeps them; Python
    loops over whole sensors only: each is a slice of the sorted frame.
    """
    usable = sorted_usable(readings)
    return assemble_readings(usable, watched_cadences(usable, sensors, limits), limits, gap)


def detector_config(config: Mapping | None = None) -> dict:
    """detectors.yaml's content (default: the file) with its windows as timedeltas."""
    return load_detector_config() if config is None else parse_detector_config(config, "the detector config")


def detector_lookback(config: Mapping | None = None) -> tuple[timedelta, int]:
    """What the enabled detectors need before the first reading they judge: the longest chain of
    trailing windows (window and history), half again for gaps, and the days of the pattern
    break's profile."""
    config = detector_config(config)
    chains = [
        spec["window"] + spec.get("history", timedelta(0))
        for spec in enabled_detectors(config).values()
        if "window" in spec
    ]
    longest = max(chains, default=timedelta(minutes=ZSCORE_WINDOW))
    pattern = config.get("pattern_break", {})
    days = int(pattern.get("days", 0)) if pattern.get("enabled", True) else 0
    return longest * 3 / 2, days


def separation(config: Mapping) -> int:
    """Null rows between sensors so no enabled detector's chain of windows reaches the next one;
    0 when a window is a stretch of time (those windows need each sensor on its own)."""
    spans = []
    for spec in config.values():
        if not spec.get("enabled", True) or "window" not in spec:
            continue
        if not isinstance(spec["window"], int):
            return 0
        spans.append(2 * spec["window"] + spec.get("history", 0) + 1)
    return max(spans, default=0)


def counted_config(
    config: Mapping, cadence_seconds: int | None, regular: bool
) -> tuple[dict, dict[str, str]]:
    """The config for sensors of one cadence: the detectors that can run there with their windows
    as counts of readings (`counted_spec`), the z-scores' windows kept in time on irregular
    sensors; and, per detector that cannot run, why."""
    counted, skipped = {}, {}
    for name, spec in config.items():
        if name not in enabled_detectors(config):
            counted[name] = dict(spec)
            continue
        one, reason = counted_spec(name, spec, cadence_seconds)
        if one is None:
            skipped[name] = str(reason)
            continue
        if not regular and name in ("rolling_zscore", "robust_zscore"):
            one["window"] = spec["window"]
        counted[name] = one
    return counted, skipped


def statistical_detectors(
    usable: pl.DataFrame, config: Mapping, timezone: str = "UTC", separated: bool = False
) -> list[pl.LazyFrame]:
    """The enabled per-sensor statistical detectors over the watched readings, as lazy frames.

    `config` has its windows as counts of readings (or the z-scores' as timedeltas), as
    `counted_config` gives them for sensors of one cadence."""
    watched = usable.lazy()
    floor = pl.col("noise_floor")
    enabled = {name: spec for name, spec in config.items() if spec.get("enabled", True)}
    plans = []
    iqr_separated = (
        "robust_zscore" in enabled
        and separated
        and isinstance(enabled["robust_zscore"]["window"], int)
        and enabled["robust_zscore"].get("spread") == "iqr"
    )
    shared = iqr_separated and "rolling_zscore" in enabled
    shared = shared and enabled["rolling_zscore"]["window"] == enabled["robust_zscore"]["window"]
    shared = shared and enabled["rolling_zscore"].get("min_samples") == enabled["robust_zscore"].get(
        "min_samples"
    )
    if shared:  # the rolling z-score's trailing mean and deviation bound the robust one's: one pass
        spec = enabled["rolling_zscore"]
        window = spec["window"]
        needed = needed_samples(window, spec.get("min_samples"))
        moments = usable.with_columns(
            trailing("mean", window, needed).alias("window_mean"),
            trailing("std", window, needed).alias("window_std"),
        )
        plans.append(
            zscores_of_moments(moments.lazy(), window, thresholds_of(spec), floor, spec.get("label"))
        )
    for name, detector in (("rolling_zscore", rolling_zscore), ("robust_zscore", robust_zscore)):
        if name in enabled:
            spec = enabled[name]
            if name == "rolling_zscore" and shared:
                continue
            common = {"min_samples": spec.get("min_samples"), "label": spec.get("label")}
            if name == "robust_zscore" and iqr_separated:
                plans.append(
                    robust_iqr_separated(
                        moments if shared else usable, spec["window"], thresholds_of(spec), **common
                    )
                )
                continue
            extra = {"spread": spec.get("spread", "mad")} if name == "robust_zscore" else {}
            plans.append(
                detector(
                    watched,
                    spec["window"],
                    thresholds_of(spec),
                    floor,
                    separated=separated,
                    **common,
                    **extra,
                )
            )
    slow = [enabled[name]["window"] for name in ("trend", "volatility") if name in enabled]
    if separated and len(slow) == 2 and slow[0] == slow[1]:  # one short-variance pass for both
        watched = usable.with_columns(
            pl.col("value").rolling_var(slow[0]).alias(short_var_column(slow[0]))
        ).lazy()
    if "trend" in enabled:
        spec = enabled["trend"]
        trend = (spec["window"], spec["history"], thresholds_of(spec), floor, spec["alpha"], separated)
        plans.append(trend_anomalies(watched, *trend))
    if "volatility" in enabled:
        spec = enabled["volatility"]
        volatility = (
            spec["window"],
            spec["history"],
            thresholds_of(spec),
            floor,
            spec["max_share"],
            separated,
        )
        plans.append(volatility_anomalies(watched, *volatility))
    if "pattern_break" in enabled:
        spec = enabled["pattern_break"]
        pattern = (spec["days"], thresholds_of(spec), floor, spec["bucket_minutes"], spec["min_days"])
        plans.append(
            pattern_breaks(watched, *pattern, spec["min_readings"], timezone=timezone, separated=separated)
        )
    return plans


def combined_with(found: pl.DataFrame, sensors: pl.DataFrame, config: Mapping) -> pl.DataFrame:
    """`found` and, when enabled, the combined detector's anomalies over it."""
    spec = config.get("combined", {})
    if not spec.get("enabled", True) or found.is_empty():
        return found
    agreeing = combined(
        found,
        sensors,
        spec["bucket_minutes"],
        spec["member_severity"],
        spec["min_methods"],
        spec["min_parameters"],
        spec["raise_steps"],
        spec.get("families"),
    )
    return pl.concat([found, agreeing.collect(engine="in-memory")])


def skipped_sensors(
    readings: pl.DataFrame,
    sensors: pl.DataFrame,
    config: Mapping | None = None,
    limits: Mapping | None = None,
) -> pl.DataFrame:
    """The watched sensors of `readings` (sensor_id, observed_at, value, optional qc_flag) each
    enabled detector cannot run on at their cadence, and why: `detector`, `sensor_id`,
    `cadence_seconds`, `reason` (`hourly cadence: a 60-minute window holds 1 reading, 3 needed`).
    `sensors` has sensor_id, parameter, unit and, optionally, the registry's `interval_seconds`;
    `config` and `limits` default to detectors.yaml and limits.yaml. `skip_sentences` words it."""
    limits = load_limits() if limits is None else limits
    cadences = watched_cadences(sorted_usable(readings), sensors, limits).filter("watched")
    return skips_of(cadences, detector_config(config))


def find_anomalies(
    readings: pl.DataFrame,
    sensors: pl.DataFrame,
    start: datetime,
    end: datetime,
    limits: Mapping | None = None,
    window: int | str | timedelta | None = None,
    thresholds: Thresholds | None = None,
    config: Mapping | None = None,
    timezone: str = "UTC",
) -> pl.DataFrame:
    """Every detector over `readings` (the day plus its lookback); anomalies observed in
    [start, end) with their `station_id`.

    Failed or missing readings (QARTOD 4, 9) and readings with no finite value feed no detector;
    suspect ones (3) do. `config` is detectors.yaml's content (default: the file), windows as
    durations; `window` (a duration) and `thresholds` override the rolling z-score's.
    `timezone` is the municipality's, for the time-of-day buckets of the pattern break.

    Sensors are judged in groups of one cadence (`sensor_cadences`): on regular sensors each
    window runs as the count of readings it holds at that cadence, on irregular ones the
    z-scores' windows run in time; a detector whose window holds too few readings at a group's
    cadence does not run on it (`skipped_sensors` says which and why). Each group's detectors
    run in one Polars query; the combined detector then reads all their findings.
    """
    limits = load_limits() if limits is None else limits
    config = detector_config(config)
    if window is not None or thresholds is not None:
        spec = dict(config.get("rolling_zscore", {"window": timedelta(minutes=ZSCORE_WINDOW)}))
        spec.setdefault("thresholds", ZSCORE_THRESHOLDS)
        if window is not None:
            spec["window"] = parse_duration(window, "find_anomalies", "window")
        if thresholds is not None:
            spec["thresholds"] = thresholds
        config["rolling_zscore"] = spec
    usable = sorted_usable(readings)
    cadences = watched_cadences(usable, sensors, limits)
    plans, beyond = [], []
    for (cadence, regular), group in cadences.group_by("cadence_seconds", "regular", maintain_order=True):
        counted, _ = counted_config(config, cadence, bool(regular))
        gap = separation(counted)
        watched, outside = assemble_readings(usable, group, limits, gap)
        beyond.append(outside)
        if watched.height:
            plans += statistical_detectors(watched, counted, timezone, separated=gap > 0)
    plans.append(
        limit_breaches(pl.concat(beyond).lazy(), limits) if beyond else pl.LazyFrame(schema=ANOMALY_SCHEMA)
    )
    # the in-memory engine: Polars 2.1's streaming engine miscounts the pattern break's runs here
    found = combined_with(pl.concat(pl.collect_all(plans, engine="in-memory")), sensors, config)
    return (
        found.lazy()
        .filter(pl.col("observed_at") >= start, pl.col("observed_at") < end)
        .join(sensors.lazy().select("sensor_id", "station_id"), on="sensor_id", how="inner")
        .sort("sensor_id", "observed_at", "method")
        .collect(engine="in-memory")
    )
