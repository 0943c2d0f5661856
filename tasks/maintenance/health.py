"""Sensor health: five factors from two weeks of readings, a 0-100 score, a risk and a plan.

Factors (each 0-1, weighted into the score): upward or downward drift of the daily means,
rising instability (the day's spread against its usual spread), out-of-range share, recent
degradation (QC-flagged or flat-lined readings against the usual share) and a high coefficient
of variation. The spread is robust (inter-quartile range / 1.349, the standard deviation of a
normal distribution): one spike or a short water-quality event does not make a probe unstable.
For parameters that follow the environment (`follows_environment` in health.yaml: temperature
warms with the season), the drift is the sensor's slope less the median slope of the
municipality's sensors of that parameter, when there are at least three of them. A stuck sensor
(one value for hours, far longer than it usually holds one) is HIGH risk whatever its score.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml
from scipy.stats import linregress

from tasks.analytics.readings import is_excluded
from tasks.anomalies.detectors import SEVERITY_RANK, load_limits, noise_floors
from tasks.maintenance.wording import factors_json, recommendation

CONFIG_PATH = Path(__file__).with_name("health.yaml")

WEIGHTS = {"drift": 25, "instability": 20, "out_of_range": 20, "degradation": 25, "variation": 10}
FLAT_MINUTES = 60  # identical consecutive values spanning this long count as flat
# Stuck: one value held at least STUCK_FACTOR times as long as the sensor's usual longest hold
# and at least STUCK_MINUTES; with no history to compare, at least STUCK_MINUTES_ALONE.
STUCK_MINUTES = 2 * 60
STUCK_FACTOR = 3
STUCK_MINUTES_ALONE = 12 * 60
HISTORY_DAYS = 14  # the scored day and the 13 before it
MIN_DRIFT_DAYS = 3
SIGNIFICANCE = 0.05
FAILURE_HORIZON_DAYS = 365
CALIBRATION_INTERVAL_DAYS = 90
IQR_TO_SIGMA = 1.349
MIN_PEERS = 3  # sensors of one parameter needed for their median slope to stand for the environment
HEALTH_CEILING = {"LOW": 100.0, "MEDIUM": 79.9, "HIGH": 59.9, "CRITICAL": 39.9}

HEALTH_SCHEMA = {
    "sensor_id": pl.String,
    "day": pl.Date,
    "health_score": pl.Float64,
    "risk_level": pl.String,
    "factors": pl.String,  # JSON object
    "predicted_failure_date": pl.Date,
    "confidence": pl.Float64,
    "calibration_due_date": pl.Date,
    "recommendation": pl.String,
}


@lru_cache(maxsize=2)
def load_environmental(path: Path = CONFIG_PATH) -> list[str]:
    """Parameters whose level follows the environment, judged for drift against their peers."""
    return list(yaml.safe_load(path.read_text()).get("follows_environment", []))


@lru_cache(maxsize=2)
def load_drift_scales(path: Path = CONFIG_PATH) -> dict[str, float]:
    """Per parameter, the 30-day change of the daily mean that is a full drift penalty."""
    return {k: float(v) for k, v in yaml.safe_load(path.read_text())["drift_per_30_days"].items()}


def daily_figures(readings: pl.DataFrame, sensors: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Per sensor and local day: mean and spread of usable values, out-of-range and degraded
    (QC-flagged or flat) shares, and the longest run of one value with that value."""
    value, flag = pl.col("value"), pl.col("qc_flag").fill_null(2)
    excluded = is_excluded(value, flag)
    out_of_range = (flag == 4) | (value < pl.col("valid_min")) | (value > pl.col("valid_max"))
    run_span = (pl.col("observed_at").max() - pl.col("observed_at").min()).over("sensor_id", "run")
    return (
        readings.join(sensors.select("sensor_id", "valid_min", "valid_max"), on="sensor_id")
        .sort("sensor_id", "observed_at")
        .with_columns(
            pl.col("observed_at").dt.convert_time_zone(tz).dt.date().alias("local_day"),
            pl.when(~excluded).then(value).alias("kept"),
            out_of_range.fill_null(False).alias("is_out_of_range"),
            value.rle_id().over("sensor_id").alias("run"),
        )
        .with_columns(run_span.dt.total_minutes().alias("run_minutes"))
        .with_columns(
            (flag.is_in([3, 4]) | (pl.col("run_minutes") >= FLAT_MINUTES)).alias("is_degraded")
        )
        .group_by("sensor_id", "local_day")
        .agg(
            pl.col("kept").mean().alias("mean"),
            pl.col("kept").std().alias("std"),
            ((pl.col("kept").quantile(0.75) - pl.col("kept").quantile(0.25)) / IQR_TO_SIGMA).alias("spread"),
            pl.col("is_out_of_range").mean().alias("out_of_range_share"),
            pl.col("is_degraded").mean().alias("degraded_share"),
            pl.col("run_minutes").max().alias("longest_run_minutes"),
            pl.col("value").sort_by("run_minutes").last().alias("longest_run_value"),
        )
    )


def drift_fits(daily: pl.DataFrame, day: date) -> pl.DataFrame:
    """Per sensor, `scipy.stats.linregress` of daily means on days before `day` (0 = `day`):
    slope per day, fitted level on `day`, r² and p-value (null with under three days)."""
    series = (
        daily.filter(pl.col("mean").is_not_null())
        .with_columns((pl.col("local_day") - pl.lit(day)).dt.total_days().alias("x"))
        .sort("local_day")
        .group_by("sensor_id")
        .agg(pl.col("x"), pl.col("mean").alias("y"))
    )
    fits = []
    for sensor_id, xs, ys in series.iter_rows():  # one small regression per sensor
        if len(xs) < MIN_DRIFT_DAYS:
            fits.append((sensor_id, len(xs), None, None, None, None))
            continue
        fit = linregress(xs, ys)
        fits.append((sensor_id, len(xs), fit.slope, fit.intercept, fit.rvalue**2, fit.pvalue))
    schema = {
        "sensor_id": pl.String,
        "days_of_data": pl.Int64,
        "slope_per_day": pl.Float64,
        "level_today": pl.Float64,
        "r_squared": pl.Float64,
        "p_value": pl.Float64,
    }
    return pl.DataFrame(fits, schema=schema, orient="row")


def _clip(expr: pl.Expr) -> pl.Expr:
    return (
        pl.when(expr.is_finite())
        .then(expr.clip(0.0, 1.0))
        .otherwise(pl.when(expr > 0).then(1.0).otherwise(0.0))
        .fill_null(0.0)
    )


def _rank(expr: pl.Expr) -> pl.Expr:
    return expr.replace_strict(SEVERITY_RANK, return_dtype=pl.Int8)


def sensor_health(
    readings_history: pl.DataFrame,
    sensors: pl.DataFrame,
    day: date,
    tz: str = "UTC",
    drift_scales: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """Health of every sensor with readings on `day`, judged on `readings_history` (that day
    and the days before it; `sensor_id`, `observed_at`, `value`, `qc_flag`) and `sensors`
    (`sensor_id`, `parameter`, `unit`, `valid_min`, `valid_max`, `installed_at`,
    `last_calibrated_at`). Returns `HEALTH_SCHEMA` rows, one per sensor."""
    scales = load_drift_scales() if drift_scales is None else drift_scales
    floors = noise_floors(load_limits())
    daily = daily_figures(readings_history, sensors, tz).filter(
        pl.col("local_day").is_between(day - timedelta(days=HISTORY_DAYS - 1), day)
    )
    today = daily.filter(pl.col("local_day") == day)
    history = (
        daily.filter(pl.col("local_day") < day)
        .group_by("sensor_id")
        .agg(
            pl.col("spread").median().alias("usual_spread"),
            pl.col("degraded_share").mean().alias("usual_degraded_share"),
            pl.col("longest_run_minutes").median().alias("usual_longest_run_minutes"),
        )
    )
    floor = pl.col("parameter").replace_strict(floors, default=0.0, return_dtype=pl.Float64)
    scale = pl.col("parameter").replace_strict(dict(scales), default=None, return_dtype=pl.Float64)
    scale = pl.coalesce(scale, 0.05 * (pl.col("valid_max") - pl.col("valid_min")))
    significant = pl.col("p_value") < SIGNIFICANCE
    std_ratio = pl.when(pl.col("usual_spread").is_not_null()).then(
        pl.max_horizontal("spread", floor) / pl.max_horizontal("usual_spread", floor)
    )
    cv = pl.when(pl.col("mean").abs() > pl.max_horizontal(floor, pl.lit(1e-9))).then(
        pl.col("spread") / pl.col("mean").abs()
    )
    environmental = pl.col("parameter").is_in(load_environmental())
    peers = pl.col("slope_per_day").count().over("parameter")
    peer_slope = pl.when(environmental & (peers >= MIN_PEERS)).then(
        pl.col("slope_per_day").median().over("parameter")
    )
    frame = (
        today.join(sensors, on="sensor_id")
        .join(history, on="sensor_id", how="left")
        .join(drift_fits(daily, day), on="sensor_id", how="left")
        .with_columns(peer_slope.alias("peer_slope_per_day"))
        .with_columns(pl.col("slope_per_day") - pl.col("peer_slope_per_day").fill_null(0.0))
        .with_columns(
            pl.when(std_ratio.is_finite()).then(std_ratio).alias("std_ratio"),
            cv.alias("cv"),
            (pl.col("degraded_share") - pl.col("usual_degraded_share")).alias("degraded_rise"),
            pl.when(pl.col("usual_longest_run_minutes").is_null())
            .then(pl.col("longest_run_minutes") >= STUCK_MINUTES_ALONE)
            .otherwise(
                (pl.col("longest_run_minutes") >= STUCK_MINUTES)
                & (
                    pl.col("longest_run_minutes")
                    >= STUCK_FACTOR * pl.col("usual_longest_run_minutes")
                )
            )
            .alias("stuck"),
        )
        .with_columns(
            pl.when(significant)
            .then(_clip(pl.col("slope_per_day").abs() * 30 / scale))
            .otherwise(0.0)
            .alias("f_drift"),
            _clip((pl.col("std_ratio") - 1.5) / 2.5).alias("f_instability"),
            _clip(pl.col("out_of_range_share") / 0.05).alias("f_out_of_range"),
            _clip(pl.col("degraded_rise") / 0.25).alias("f_degradation"),
            _clip((pl.col("cv") - 0.5) / 1.0).alias("f_variation"),
        )
    )
    return _judge(frame, day)


def _judge(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    """Score, failure date, calibration date, risk and recommendation from the factors."""
    penalties = [pl.col(f"f_{name}") * weight for name, weight in WEIGHTS.items()]
    target = (
        pl.when(pl.col("slope_per_day") > 0)
        .then(pl.col("valid_max"))
        .otherwise(pl.col("valid_min"))
    )
    days_left = (target - pl.col("level_today")) / pl.col("slope_per_day")
    predicts = (
        (pl.col("p_value") < SIGNIFICANCE)
        & (pl.col("slope_per_day") != 0)
        & target.is_not_null()
        & (days_left <= FAILURE_HORIZON_DAYS)
    ).fill_null(False)
    ahead = days_left.clip(0, None).ceil().cast(pl.Int64)
    calibrated = pl.coalesce("last_calibrated_at", "installed_at").dt.date()
    interval = (CALIBRATION_INTERVAL_DAYS * (1 - 0.5 * pl.col("f_drift"))).floor().cast(pl.Int64)
    scored = frame.with_columns(
        (100 - pl.sum_horizontal(penalties)).alias("raw_health"),
        pl.when(predicts)
        .then(pl.lit(day) + pl.duration(days=ahead))
        .alias("predicted_failure_date"),
        pl.when(predicts)
        .then((pl.col("r_squared") * (pl.col("days_of_data") / 7).clip(None, 1)).round(2))
        .alias("confidence"),
        (calibrated + pl.duration(days=interval)).alias("calibration_due_date"),
        target.alias("limit"),
        pl.concat_list(penalties).list.arg_max().alias("top_factor"),
        pl.max_horizontal(penalties).alias("top_penalty"),
    )
    days_to_failure = (pl.col("predicted_failure_date") - pl.lit(day)).dt.total_days()
    base = (
        pl.when(pl.col("raw_health") >= 80)
        .then(pl.lit("LOW"))
        .when(pl.col("raw_health") >= 60)
        .then(pl.lit("MEDIUM"))
        .when(pl.col("raw_health") >= 40)
        .then(pl.lit("HIGH"))
        .otherwise(pl.lit("CRITICAL"))
    )
    floor_rank = pl.max_horizontal(
        pl.when(pl.col("stuck") | (days_to_failure <= 14)).then(3).otherwise(1),
        pl.when((days_to_failure <= 30) | (pl.col("calibration_due_date") < day))
        .then(2)
        .otherwise(1),
    )
    risk = pl.max_horizontal(_rank(base), floor_rank).replace_strict(
        {rank: name for name, rank in SEVERITY_RANK.items()}, return_dtype=pl.String
    )
    scored = scored.with_columns(risk.alias("risk_level"))
    ceiling = pl.col("risk_level").replace_strict(HEALTH_CEILING, return_dtype=pl.Float64)
    return (
        scored.with_columns(
            pl.min_horizontal("raw_health", ceiling).round(1).alias("health_score"),
            factors_json(),
            recommendation(day),
            pl.lit(day).alias("day"),
        )
        .select(list(HEALTH_SCHEMA))
        .cast(HEALTH_SCHEMA)
        .sort("sensor_id")
    )
