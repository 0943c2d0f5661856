"""Anomaly detectors: plain Polars functions from readings to anomalies, one row per finding.

Every detector takes readings with `sensor_id`, `observed_at` (UTC), `value`, `parameter` and
`unit`, and returns `ANOMALY_SCHEMA`: the reading, the `method`, a `score`, a `severity`, the
`window` it was judged against and an `explanation` a person can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from tasks.analytics.readings import UTC_TIME, is_excluded

LIMITS_PATH = Path(__file__).with_name("limits.yaml")

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES, start=1)}

ZSCORE_WINDOW = 60  # readings
ZSCORE_THRESHOLDS = (2.0, 2.5, 3.0, 3.5)  # |z| at which LOW, MEDIUM, HIGH, CRITICAL begin

ANOMALY_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": UTC_TIME,
    "method": pl.String,
    "value": pl.Float64,
    "score": pl.Float64,
    "severity": pl.String,
    "window": pl.String,
    "explanation": pl.String,
}


@lru_cache(maxsize=4)
def load_limits(path: Path = LIMITS_PATH) -> dict:
    """Operational limits and noise floors per parameter, from `tasks/anomalies/limits.yaml`."""
    return yaml.safe_load(path.read_text())


def noise_floors(limits: Mapping) -> dict[str, float]:
    """Per parameter, the smallest standard deviation the z-score trusts."""
    return {name: float(spec.get("noise_floor", 0.0)) for name, spec in limits.items()}


def zscore_parameters(limits: Mapping) -> list[str]:
    """The parameters the rolling z-score watches (all but those marked `zscore: false`)."""
    return [name for name, spec in limits.items() if spec.get("zscore", True)]


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


def number_text(expr: pl.Expr) -> pl.Expr:
    """A number as people write it: three significant digits, whole numbers from 1,000 up."""
    rounded = pl.when(expr.abs() >= 1000).then(expr.round(0)).otherwise(expr.round_sig_figs(3))
    return rounded.cast(pl.String).str.strip_suffix(".0")


def severity_of(
    score: pl.Expr, medium: pl.Expr | float, high: pl.Expr | float, critical: pl.Expr | float
) -> pl.Expr:
    """LOW, MEDIUM, HIGH or CRITICAL by where `score` falls among the three thresholds."""
    return (
        pl.when(score >= critical)
        .then(pl.lit("CRITICAL"))
        .when(score >= high)
        .then(pl.lit("HIGH"))
        .when(score >= medium)
        .then(pl.lit("MEDIUM"))
        .otherwise(pl.lit("LOW"))
    )


def window_text(window: int | str | timedelta) -> str:
    if isinstance(window, int):
        return f"{window} readings"
    if isinstance(window, timedelta):
        minutes = int(window.total_seconds() // 60)
        return f"{minutes} minutes" if minutes % 60 else f"{minutes // 60} hours"
    return str(window)


def rolling_zscore(
    readings: pl.LazyFrame,
    window: int | str | timedelta = ZSCORE_WINDOW,
    thresholds: tuple[float, float, float, float] = ZSCORE_THRESHOLDS,
    noise_floor: float | Mapping[str, float] = 0.0,
    min_samples: int | None = None,
) -> pl.LazyFrame:
    """Readings whose z-score against the trailing window of the same sensor reaches thresholds[0].

    The window is the previous `window` readings (an int) or the previous stretch of time (a
    timedelta), never the reading itself; at least `min_samples` of them (default: half a
    count window, 10 in a time window) must be there. The window's standard deviation is
    raised to the parameter's `noise_floor` so a flat window does not make every small change
    infinitely unusual. Severity is LOW, MEDIUM, HIGH or CRITICAL as |z| passes each threshold.
    """
    if isinstance(window, int):
        needed = min_samples or max(2, window // 2)
        mean = pl.col("value").rolling_mean(window, min_samples=needed).shift(1)
        std = pl.col("value").rolling_std(window, min_samples=needed).shift(1)
    else:
        needed = min_samples or 10
        mean = pl.col("value").rolling_mean_by(
            "observed_at", window, min_samples=needed, closed="left"
        )
        std = pl.col("value").rolling_std_by(
            "observed_at", window, min_samples=needed, closed="left"
        )
    if isinstance(noise_floor, Mapping):
        floor = pl.col("parameter").replace_strict(
            dict(noise_floor), default=0.0, return_dtype=pl.Float64
        )
    else:
        floor = pl.lit(float(noise_floor))
    z = (pl.col("value") - pl.col("window_mean")) / pl.max_horizontal(pl.col("window_std"), floor)
    low, medium, high, critical = thresholds
    described = window_text(window)
    return (
        readings.sort("sensor_id", "observed_at")
        .with_columns(
            mean.over("sensor_id").alias("window_mean"),
            std.over("sensor_id").alias("window_std"),
        )
        .with_columns(z.alias("score"))
        .filter(pl.col("score").is_finite() & (pl.col("score").abs() >= low))
        .select(
            "sensor_id",
            "observed_at",
            pl.lit("rolling_zscore").alias("method"),
            "value",
            "score",
            severity_of(pl.col("score").abs(), medium, high, critical).alias("severity"),
            pl.lit(described).alias("window"),
            pl.format(
                "{} {} {} is {} standard deviations {} the mean {} {} of the previous {}",
                "parameter",
                number_text(pl.col("value")),
                "unit",
                pl.col("score").abs().round(1).cast(pl.String),
                pl.when(pl.col("score") > 0).then(pl.lit("above")).otherwise(pl.lit("below")),
                number_text(pl.col("window_mean")),
                "unit",
                pl.lit(described),
            ).alias("explanation"),
        )
        .cast(ANOMALY_SCHEMA)
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
            pl.format(
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


def find_anomalies(
    readings: pl.DataFrame,
    sensors: pl.DataFrame,
    start: datetime,
    end: datetime,
    limits: Mapping | None = None,
    window: int | str | timedelta = ZSCORE_WINDOW,
    thresholds: tuple[float, float, float, float] = ZSCORE_THRESHOLDS,
) -> pl.DataFrame:
    """Every detector over `readings` (the day plus its lookback); anomalies observed in
    [start, end) with their `station_id`. Failed or missing readings (QARTOD 4, 9) and readings
    with no finite value feed no detector; suspect ones (3) do."""
    limits = load_limits() if limits is None else limits
    usable = (
        readings.lazy()
        .filter(~is_excluded(pl.col("value"), pl.col("qc_flag")))
        .join(
            sensors.lazy().select("sensor_id", "station_id", "parameter", "unit"),
            on="sensor_id",
            how="inner",
        )
    )
    found = pl.concat(
        [
            rolling_zscore(
                usable.filter(pl.col("parameter").is_in(zscore_parameters(limits))),
                window,
                thresholds,
                noise_floors(limits),
            ),
            limit_breaches(usable, limits),
        ]
    )
    return (
        found.filter(pl.col("observed_at") >= start, pl.col("observed_at") < end)
        .join(sensors.lazy().select("sensor_id", "station_id"), on="sensor_id", how="inner")
        .sort("sensor_id", "observed_at", "method")
        .collect()
    )
