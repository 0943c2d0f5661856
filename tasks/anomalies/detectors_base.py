"""What every anomaly detector shares: the anomaly schema, severities, the two config files and the
way a finding is worded.

Every detector takes readings with `sensor_id`, `observed_at` (UTC), `value`, `parameter` and
`unit`, and returns `ANOMALY_SCHEMA`: the reading, the `method`, a `score`, a `severity`, the
`window` it was judged against and an `explanation` a person can read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from tasks.analytics.readings import UTC_TIME

LIMITS_PATH = Path(__file__).with_name("limits.yaml")
DETECTORS_PATH = Path(__file__).with_name("detectors.yaml")

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES, start=1)}

ZSCORE_WINDOW = 60  # readings
ZSCORE_THRESHOLDS = (2.0, 2.5, 3.0, 3.5)  # |z| at which LOW, MEDIUM, HIGH, CRITICAL begin
# Trend, volatility and pattern scores are judged over many overlapping windows a day: they begin
# higher so quiet noise stays quiet (as in detectors.yaml).
SLOW_THRESHOLDS = (3.0, 3.5, 4.0, 5.0)
MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a normal distribution, in standard deviations

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

Thresholds = tuple[float, float, float, float]


@lru_cache(maxsize=4)
def load_limits(path: Path = LIMITS_PATH) -> dict:
    """Operational limits and noise floors per parameter, from `tasks/anomalies/limits.yaml`."""
    return yaml.safe_load(path.read_text())


DURATION_KEYS = ("window", "history")  # a detector's windows, written as durations
DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_UNITS = (86400, 3600, 60, 1)


class DetectorConfigError(ValueError):
    """A detectors.yaml setting that cannot be used, worded for the person who wrote it."""


def parse_duration(value: object, where: str = "detectors.yaml", key: str = "window") -> timedelta:
    """A window written as a duration (`60m`, `2h`, `1d`, `1h30m`, `90s`, or a timedelta) as a
    timedelta; anything else, a bare count of readings included, is refused with a sentence
    naming `where` (the file) and `key` (detector.setting)."""
    if isinstance(value, timedelta) and value > timedelta(0):
        return value
    match = DURATION.match(value.strip()) if isinstance(value, str) else None
    if match and any(match.groups()):
        seconds = sum(int(n) * unit for n, unit in zip(match.groups(), DURATION_UNITS, strict=True) if n)
        if seconds > 0:
            return timedelta(seconds=seconds)
    raise DetectorConfigError(
        f"{where}: {key} is {value!r}, not a duration: write a positive whole number with its unit, "
        "like 60m, 2h or 1d (windows are stretches of time, not counts of readings)"
    )


def parse_detector_config(config: Mapping, where: str = "detectors.yaml") -> dict:
    """`config` (detectors.yaml's content) with every window and history as a timedelta."""
    parsed = {}
    for name, spec in config.items():
        if not isinstance(spec, Mapping):
            raise DetectorConfigError(f"{where}: {name} is {spec!r}, not a mapping of settings")
        spec = dict(spec)
        for key in DURATION_KEYS:
            if key in spec:
                spec[key] = parse_duration(spec[key], where, f"{name}.{key}")
        parsed[name] = spec
    return parsed


@lru_cache(maxsize=4)
def load_detector_config(path: Path = DETECTORS_PATH) -> dict:
    """Windows, thresholds and switches of each detector, from `tasks/anomalies/detectors.yaml`,
    with the windows as timedeltas (a window that is not a duration is refused)."""
    return parse_detector_config(yaml.safe_load(path.read_text()), str(path))


def thresholds_of(spec: Mapping) -> Thresholds:
    low, medium, high, critical = (float(t) for t in spec["thresholds"])
    return low, medium, high, critical


def noise_floors(limits: Mapping) -> dict[str, float]:
    """Per parameter, the smallest standard deviation the z-score trusts."""
    return {name: float(spec.get("noise_floor", 0.0)) for name, spec in limits.items()}


def zscore_parameters(limits: Mapping) -> list[str]:
    """The parameters the statistical detectors watch (all but those marked `zscore: false`)."""
    return [name for name, spec in limits.items() if spec.get("zscore", True)]


NoiseFloor = float | Mapping[str, float] | pl.Expr


def floor_expr(noise_floor: NoiseFloor) -> pl.Expr:
    """The noise floor of each row's parameter (a mapping), one floor for every row, or an
    expression (find_anomalies gives each row its sensor's floor as a column)."""
    if isinstance(noise_floor, pl.Expr):
        return noise_floor
    if isinstance(noise_floor, Mapping):
        return pl.col("parameter").replace_strict(dict(noise_floor), default=0.0, return_dtype=pl.Float64)
    return pl.lit(float(noise_floor))


def text(template: str, *args: str | pl.Expr) -> pl.Expr:
    """`pl.format(template, *args)` built with `pl.concat_str`: Polars 2.1's `format` can panic
    ("i < self.len()") when two of its arguments are string expressions such as `number_text`."""
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        raise ValueError(f"{template!r} has {len(pieces) - 1} placeholders for {len(args)} arguments")
    parts: list[pl.Expr] = []
    for piece, arg in zip(pieces, [*args, None], strict=True):
        if piece:
            parts.append(pl.lit(piece))
        if arg is not None:
            parts.append((pl.col(arg) if isinstance(arg, str) else arg).cast(pl.String))
    return pl.concat_str(parts)


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
    """A window as people say it: `60 readings`, `15 minutes`, `60 minutes`, `12 hours`, `1 day`."""
    if isinstance(window, int):
        return f"{window} readings"
    if isinstance(window, timedelta):
        seconds = int(window.total_seconds())
        if seconds % 86400 == 0:
            count, unit = seconds // 86400, "day"
        elif seconds % 3600 == 0 and seconds > 6 * 3600:
            count, unit = seconds // 3600, "hour"
        elif seconds % 60 == 0:
            count, unit = seconds // 60, "minute"
        else:
            count, unit = seconds, "second"
        return f"{count} {unit}" + ("" if count == 1 else "s")
    return str(window)


def direction(score: pl.Expr, up: str = "above", down: str = "below") -> pl.Expr:
    return pl.when(score > 0).then(pl.lit(up)).otherwise(pl.lit(down))


def sorted_readings(readings: pl.LazyFrame, separated: bool = False) -> pl.LazyFrame:
    """Readings in (sensor_id, observed_at) order, which every trailing window relies on.

    `separated` says they already are, and that each sensor's rows are followed by enough null
    rows that no window reaches the next sensor (`find_anomalies` prepares them so): windows
    then run over the whole column at once instead of once per sensor, which costs half.
    """
    return readings if separated else readings.sort("sensor_id", "observed_at")


def per_sensor(expr: pl.Expr, separated: bool) -> pl.Expr:
    """`expr` within each sensor: over the whole column when sensors are separated by null rows."""
    return expr if separated else expr.over("sensor_id")


def is_sensor_time_sorted(frame: pl.DataFrame) -> bool:
    """Whether a frame is already in (sensor_id, observed_at) order: one linear pass, no sort.

    The sensors' runs must come in increasing order, each once, and time may only step back
    where a run begins."""
    if frame.height < 2:
        return True
    if frame["sensor_id"].null_count() or frame["observed_at"].null_count():
        sensor, time = pl.col("sensor_id"), pl.col("observed_at")
        ordered = (sensor > sensor.shift(1)) | ((sensor == sensor.shift(1)) & (time >= time.shift(1)))
        return bool(frame.select(ordered.slice(1).all()).item())
    runs = frame.select(pl.col("sensor_id").rle()).unnest("sensor_id")
    ids = runs["value"]
    if not (ids.is_sorted() and ids.n_unique() == ids.len()):
        return False
    steps_back = frame.select((pl.col("observed_at").diff() < pl.duration()).arg_true()).to_series()
    return bool(steps_back.is_in((runs["len"].cum_sum() - runs["len"]).implode()).all())


def anomaly_rows(
    frame: pl.LazyFrame, method: str, severity: pl.Expr, window: str | pl.Expr, explanation: pl.Expr
) -> pl.LazyFrame:
    """The ANOMALY_SCHEMA columns of findings that carry `score`."""
    return frame.select(
        "sensor_id",
        "observed_at",
        pl.lit(method).alias("method"),
        "value",
        "score",
        severity.alias("severity"),
        (pl.lit(window) if isinstance(window, str) else window).alias("window"),
        explanation.alias("explanation"),
    ).cast(ANOMALY_SCHEMA)
