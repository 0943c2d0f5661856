"""The learned detector's features: how far the station's quality sensors stray, in noise floors.

Per quality sensor (the parameters the rolling z-score watches, `detect.quality_sensors`) and
minute, from the current and past readings only (rows are taken to be one per minute, as GECCO's):
its deviation from the median of the past 30/60/120 minutes and from the mean of the past day (the
current reading left out of each window), its differences over 1/5/15 rows and the mean absolute
first difference of the last 5 rows (a sensor that oscillates). Each is divided by the parameter's
noise floor (`limits.yaml`: about an online instrument's accuracy), so a deviation means the same
on every sensor; a parameter without a floor is scaled by its mean absolute first difference over
the past day.

The features are then taken across the sensors: for each of the eight, the largest, second and
third largest magnitude (`<feature>_top<k>`, null when fewer sensors report). No feature names a
sensor. That is the point: labelled events are of a few kinds (a step on four sensors, a ramp on
three, chlorine dioxide oscillating, one sensor falling to zero), each in its own week, and a model
that learns "pH stepped" does not find "chlorine dioxide oscillates" in a week it never saw, while
"two sensors stray five noise floors from their past hour" carries over. Every feature but one
kind is a magnitude: more straying never makes an event less likely (`MONOTONIC`).

That kind is a sensor on its way back: `return_5_top<k>` (k = 1, 2) is how far a sensor moved
towards its past-day mean over the last 5 rows, in noise floors (0 when it moved away, or once it is
past that mean: a sharp step back ends on the mean's other side). After an event the sensors drift
back for half an hour and stray as far as during it (Redox recovering after an 85-minute event); by
deviation alone that looks like the event, by direction it does not. More return never makes an
event more likely (`MONOTONIC` -1). A step's first minutes move away from the past-day mean, so the
feature costs the events nothing; cross-validated on GECCO 2018 it took the point F1 from 0.891 to
0.908, with all 51 events still alarmed.

One feature is about direction, from a rule of water treatment rather than from the labels: a
disinfectant residual (free chlorine, chlorine dioxide) that falls is always bad news.
`residual_lost` is the largest share of its past-day median that a residual has lost (0.5: half of
it is gone; negative when it rose; null without a disinfectant sensor, or where the past day's
median is not above the parameter's noise floor: no residual to lose).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from tasks.anomalies.detectors import load_limits, noise_floors
from tasks.detection.labelled import LabelledReadings
from tasks.detection.station_alarm import quality_sensors

MEDIAN_WINDOWS = (30, 60, 120)  # minutes of past readings
DAY = "1440m"
LAGS = (1, 5, 15)  # rows (minutes)
ROUGH_ROWS = 5
MIN_SAMPLES = 5
TOP_K = (1, 2, 3)
SENSOR_FEATURES = (
    *(f"dev_median_{minutes}" for minutes in MEDIAN_WINDOWS),
    "dev_mean_day",
    f"rough_{ROUGH_ROWS}",
    *(f"diff_{lag}" for lag in LAGS),
)
DISINFECTANTS = ("free_chlorine", "chlorine_dioxide")
RETURN_ROWS = 5
RETURN_TOP_K = (1, 2)
RETURN_FEATURES = tuple(f"return_{RETURN_ROWS}_top{k}" for k in RETURN_TOP_K)
FEATURES = (
    *(f"{name}_top{k}" for name in SENSOR_FEATURES for k in TOP_K),
    "residual_lost",
    *RETURN_FEATURES,
)


def sensor_scale(column: str, floor: float) -> pl.Expr:
    """The unit a sensor's deviations are counted in: its noise floor, or without one the mean
    absolute first difference over the past day."""
    if floor > 0:
        return pl.lit(floor)
    step = (pl.col(column) - pl.col(column).shift(1)).abs()
    past_day = step.rolling_mean_by("observed_at", window_size=DAY, closed="left", min_samples=MIN_SAMPLES)
    return pl.when(past_day > 0).then(past_day)


def sensor_features(column: str, floor: float = 1.0) -> list[pl.Expr]:
    """One sensor's causal deviations in units of `floor`, named as `SENSOR_FEATURES`."""
    value = pl.col(column)
    past = {"by": "observed_at", "closed": "left", "min_samples": MIN_SAMPLES}
    scale = sensor_scale(column, floor)
    step = (value - value.shift(1)).abs()
    raw = [
        *(value - value.rolling_median_by(window_size=f"{m}m", **past) for m in MEDIAN_WINDOWS),
        value - value.rolling_mean_by(window_size=DAY, **past),
        step.rolling_mean(ROUGH_ROWS, min_samples=1),
        *(value - value.shift(lag) for lag in LAGS),
    ]
    return [(expr / scale).abs().alias(name) for expr, name in zip(raw, SENSOR_FEATURES, strict=True)]


def sensor_return(column: str, floor: float = 1.0) -> pl.Expr:
    """How far a sensor moved back towards its past-day mean over the last `RETURN_ROWS` rows, in
    units of `floor` (0 when it moved away)."""
    value = pl.col(column)
    day_mean = value.rolling_mean_by("observed_at", window_size=DAY, closed="left", min_samples=MIN_SAMPLES)
    moved = (value - value.shift(RETURN_ROWS)) / sensor_scale(column, floor)
    return (-moved * (value - day_mean).sign()).clip(lower_bound=0.0)


def across_sensors(per_sensor: list[pl.Expr], top_k: tuple[int, ...] = TOP_K) -> list[pl.Expr]:
    """The largest, second and third largest of one feature across the sensors (null beyond the
    sensors that have it)."""
    ranked = pl.concat_list(per_sensor).list.drop_nulls().list.sort(descending=True, nulls_last=True)
    return [ranked.list.get(k - 1, null_on_oob=True) for k in top_k]


def residual_lost(column: str, floor: float) -> pl.Expr:
    """The share of its past-day median that a disinfectant residual has lost (null where that
    median is not above `floor`: no residual to lose)."""
    median = pl.col(column).rolling_median_by(
        "observed_at", window_size=DAY, closed="left", min_samples=MIN_SAMPLES
    )
    return pl.when(median > floor).then((median - pl.col(column)) / median)


def feature_frame(readings: LabelledReadings, limits: Mapping | None = None) -> pl.DataFrame:
    """One row per row of the file: `observed_at` and the `FEATURES` (Float64, null where no
    quality sensor has enough past readings)."""
    limits = load_limits() if limits is None else limits
    floors = noise_floors(limits)
    sensors = quality_sensors(readings.parameters, limits)
    frame = readings.frame.lazy().select("observed_at", *sensors)
    if not sensors:
        return frame.select("observed_at", *(pl.lit(None, pl.Float64).alias(f) for f in FEATURES)).collect()
    per_sensor = {c: sensor_features(c, floors.get(readings.parameters[c], 0.0)) for c in sensors}
    columns = []
    for i, name in enumerate(SENSOR_FEATURES):
        ranked = across_sensors([per_sensor[c][i] for c in sensors])
        columns += [expr.alias(f"{name}_top{k}") for expr, k in zip(ranked, TOP_K, strict=True)]
    residuals = [
        residual_lost(c, floors.get(readings.parameters[c], 0.0))
        for c in sensors
        if readings.parameters[c] in DISINFECTANTS
    ]
    lost = pl.max_horizontal(residuals) if residuals else pl.lit(None, pl.Float64)
    columns.append(lost.alias("residual_lost"))
    returns = [sensor_return(c, floors.get(readings.parameters[c], 0.0)) for c in sensors]
    ranked_returns = across_sensors(returns, RETURN_TOP_K)
    columns += [expr.alias(name) for expr, name in zip(ranked_returns, RETURN_FEATURES, strict=True)]
    return frame.select("observed_at", *columns).with_columns(pl.col(FEATURES).cast(pl.Float64)).collect()


# HistGradientBoostingClassifier `monotonic_cst`: straying raises the probability, returning lowers it
MONOTONIC = tuple(-1 if name in RETURN_FEATURES else 1 for name in FEATURES)
