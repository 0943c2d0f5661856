"""The learned detector's features: how far the station's quality sensors stray, in noise floors.

Per quality sensor (the parameters the rolling z-score watches, `station_alarm.quality_sensors`),
computed over that sensor's own readings only: a missing reading (and a failed one, which the
station frame leaves out, `frames.wide_minutes`) is never a window's member, a lag's reference or a
row's value, so a sensor fault of hours enters no baseline. Every window is a stretch of time, never
a count of rows, so the features mean the same at one reading a minute and at one every 15 minutes:

- `dev_median_<m>`: the deviation from the median of the past 30/60/120 minutes;
- `dev_median_day`: the deviation from the median of the past day (a median: a fault of a few
  hours that did reach the readings moves it little, where it moved the mean by a day's worth);
- `diff_<m>`: the change since the latest reading at least 1/5/15 minutes old (not older than
  `LAG_TOLERANCE` beyond that: across a longer gap the change is unknown); at 15-minute cadence
  each is the change since the previous reading;
- `rough_5`: the mean absolute change between consecutive readings of the last 5 minutes (a
  sensor that oscillates).

The current reading is left out of every window. Each is divided by the parameter's noise floor
(`limits.yaml`: about an online instrument's accuracy), so a deviation means the same on every
sensor; a parameter without a floor is scaled by its mean absolute change between readings over
the past day.

The features are then taken across the sensors: for each, the largest, second and third largest
magnitude (`<feature>_top<k>`, null when fewer sensors report). No feature names a sensor:
labelled events are of a few kinds (a step on four sensors, a ramp on three, chlorine dioxide
oscillating, one sensor falling to zero), each in its own week, and a model that learns "pH
stepped" does not find "chlorine dioxide oscillates" in a week it never saw, while "two sensors
stray five noise floors from their past hour" carries over. Every feature but one kind is a
magnitude: more straying never makes an event less likely (`MONOTONIC`).

That kind is a sensor on its way back: `return_5_top<k>` (k = 1, 2) is how far a sensor moved
towards its past-day median over the last 5 minutes, in noise floors (0 when it moved away, or once
it is past that median). After an event the sensors drift back for half an hour and stray as far
as during it; by deviation alone that looks like the event, by direction it does not. More return
never makes an event more likely (`MONOTONIC` -1).

One feature is about direction, from a rule of water treatment rather than from the labels: a
disinfectant residual (free chlorine, chlorine dioxide) that falls is always bad news.
`residual_lost` is the largest share of its past-day median that a residual has lost (0.5: half of
it is gone; negative when it rose; null without a disinfectant sensor, or where the past day's
median is not above the parameter's noise floor: no residual to lose).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from tasks.anomalies.detectors import load_limits, noise_floors
from tasks.detection.labelled import LabelledReadings
from tasks.detection.station_alarm import quality_sensors

MEDIAN_WINDOWS = (30, 60, 120)  # minutes of past readings
DAY = "1440m"
LAGS = (1, 5, 15)  # minutes
LAG_TOLERANCE = timedelta(minutes=30)  # a reference reading older than the lag by more: no change known
ROUGH_MINUTES = 5
MIN_SAMPLES = 2  # readings a window needs: a 30-minute window holds two at 15-minute cadence
TOP_K = (1, 2, 3)
SENSOR_FEATURES = (
    *(f"dev_median_{minutes}" for minutes in MEDIAN_WINDOWS),
    "dev_median_day",
    f"rough_{ROUGH_MINUTES}",
    *(f"diff_{lag}" for lag in LAGS),
)
DISINFECTANTS = ("free_chlorine", "chlorine_dioxide")
RETURN_MINUTES = 5
RETURN_TOP_K = (1, 2)
RETURN_FEATURES = tuple(f"return_{RETURN_MINUTES}_top{k}" for k in RETURN_TOP_K)
FEATURES = (
    *(f"{name}_top{k}" for name in SENSOR_FEATURES for k in TOP_K),
    "residual_lost",
    *RETURN_FEATURES,
)
PAST = {"by": "observed_at", "closed": "left", "min_samples": MIN_SAMPLES}


def lagged(column: str, minutes: int) -> str:
    return f"{column}__{minutes}m_ago"


def with_lagged_values(own: pl.LazyFrame, column: str, lags: tuple[int, ...]) -> pl.LazyFrame:
    """`own` (one sensor's readings, time order) with, per lag, the latest reading at least `lag`
    minutes before each row (null when it is older than that by more than `LAG_TOLERANCE`)."""
    for minutes in lags:
        lag = timedelta(minutes=minutes)
        reference = own.select(
            (pl.col("observed_at") + lag).alias("reference_at"), pl.col(column).alias(lagged(column, minutes))
        )
        own = own.join_asof(
            reference,
            left_on="observed_at",
            right_on="reference_at",
            strategy="backward",
            tolerance=LAG_TOLERANCE,
        ).drop("reference_at")
    return own


def sensor_scale(column: str, floor: float) -> pl.Expr:
    """The unit a sensor's deviations are counted in: its noise floor, or without one the mean
    absolute change between its readings over the past day."""
    if floor > 0:
        return pl.lit(floor)
    step = (pl.col(column) - pl.col(column).shift(1)).abs()
    past_day = step.rolling_mean_by(window_size=DAY, **PAST)
    return pl.when(past_day > 0).then(past_day)


def sensor_frame(frame: pl.LazyFrame, column: str, floor: float, disinfectant: bool) -> pl.LazyFrame:
    """One sensor's features over its own readings: `observed_at`, the `SENSOR_FEATURES` as
    `<column>__<feature>`, its return and (a disinfectant) its residual lost."""
    value = pl.col(column)
    own = with_lagged_values(
        frame.select("observed_at", column).drop_nulls(column), column, (*LAGS, RETURN_MINUTES)
    )
    scale = sensor_scale(column, floor)
    day_median = value.rolling_median_by(window_size=DAY, **PAST)
    step = (value - value.shift(1)).abs()
    raw = [
        *(value - value.rolling_median_by(window_size=f"{m}m", **PAST) for m in MEDIAN_WINDOWS),
        value - day_median,
        step.rolling_mean_by("observed_at", window_size=f"{ROUGH_MINUTES}m", closed="right"),
        *(value - pl.col(lagged(column, lag)) for lag in LAGS),
    ]
    moved = (value - pl.col(lagged(column, RETURN_MINUTES))) / scale
    columns = [
        *(
            (expr / scale).abs().alias(f"{column}__{name}")
            for expr, name in zip(raw, SENSOR_FEATURES, strict=True)
        ),
        (-moved * (value - day_median).sign()).clip(lower_bound=0.0).alias(f"{column}__return"),
    ]
    if disinfectant:
        lost = pl.when(day_median > floor).then((day_median - value) / day_median)
        columns.append(lost.alias(f"{column}__residual_lost"))
    return own.select("observed_at", *columns)


def across_sensors(per_sensor: list[pl.Expr], top_k: tuple[int, ...] = TOP_K) -> list[pl.Expr]:
    """The largest, second and third largest of one feature across the sensors (null beyond the
    sensors that have it)."""
    ranked = pl.concat_list(per_sensor).list.drop_nulls().list.sort(descending=True, nulls_last=True)
    return [ranked.list.get(k - 1, null_on_oob=True) for k in top_k]


def feature_frame(readings: LabelledReadings, limits: Mapping | None = None) -> pl.DataFrame:
    """One row per row of the file: `observed_at` and the `FEATURES` (Float64, null where no
    quality sensor has enough past readings)."""
    limits = load_limits() if limits is None else limits
    floors = noise_floors(limits)
    sensors = quality_sensors(readings.parameters, limits)
    frame = readings.frame.lazy().select("observed_at", *sensors)
    if not sensors:
        return frame.select("observed_at", *(pl.lit(None, pl.Float64).alias(f) for f in FEATURES)).collect()
    disinfectants = [c for c in sensors if readings.parameters[c] in DISINFECTANTS]
    joined = frame.select("observed_at")
    for c in sensors:
        floor = floors.get(readings.parameters[c], 0.0)
        joined = joined.join(
            sensor_frame(frame, c, floor, c in disinfectants),
            on="observed_at",
            how="left",
            maintain_order="left",
        )
    columns = []
    for name in SENSOR_FEATURES:
        ranked = across_sensors([pl.col(f"{c}__{name}") for c in sensors])
        columns += [expr.alias(f"{name}_top{k}") for expr, k in zip(ranked, TOP_K, strict=True)]
    residuals = [pl.col(f"{c}__residual_lost") for c in disinfectants]
    lost = pl.max_horizontal(residuals) if residuals else pl.lit(None, pl.Float64)
    columns.append(lost.alias("residual_lost"))
    returns = across_sensors([pl.col(f"{c}__return") for c in sensors], RETURN_TOP_K)
    columns += [expr.alias(name) for expr, name in zip(returns, RETURN_FEATURES, strict=True)]
    return joined.select("observed_at", *columns).with_columns(pl.col(FEATURES).cast(pl.Float64)).collect()


# HistGradientBoostingClassifier `monotonic_cst`: straying raises the probability, returning lowers it
MONOTONIC = tuple(-1 if name in RETURN_FEATURES else 1 for name in FEATURES)
