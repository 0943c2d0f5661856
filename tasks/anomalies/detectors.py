"""Anomaly detectors: plain Polars functions from readings to anomalies, one row per finding.

`find_anomalies` runs every detector over a municipality's readings, sensors grouped by cadence
(`detectors_cadence`); the level detectors (rolling and robust z-score, operational limits) are in
`detectors_level`, slope and variance in `detectors_trend`, the daily profile in
`detectors_pattern`, agreement at a station in `detectors_combined`. The schema, severities and
wording they share are in `detectors_base` (and re-exported here). Windows, thresholds and
switches are in `detectors.yaml`; limits and noise floors per parameter in `limits.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import polars as pl

from tasks.analytics.readings import EXCLUDED_FLAGS
from tasks.anomalies.detectors_base import (
    ANOMALY_SCHEMA,
    DETECTORS_PATH,
    LIMITS_PATH,
    SEVERITIES,
    SEVERITY_RANK,
    ZSCORE_THRESHOLDS,
    ZSCORE_WINDOW,
    DetectorConfigError,
    Thresholds,
    is_sensor_time_sorted,
    load_detector_config,
    load_limits,
    noise_floors,
    number_text,
    parse_detector_config,
    parse_duration,
    severity_of,
    thresholds_of,
    window_text,
    zscore_parameters,
)
from tasks.anomalies.detectors_cadence import (
    counted_spec,
    enabled_detectors,
    sensor_cadences,
    skip_sentences,
    skips_of,
)
from tasks.anomalies.detectors_combined import combined
from tasks.anomalies.detectors_level import (
    limit_breaches,
    limits_frame,
    needed_samples,
    robust_iqr_separated,
    robust_zscore,
    rolling_zscore,
    trailing,
    zscores_of_moments,
)
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
    "needed_samples",
    "noise_floors",
    "number_text",
    "parse_duration",
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
    """detectors.yaml's content (default: the file) with its windows as timedeltas: a copy, so a
    caller's overrides never reach the cached file."""
    if config is None:
        return {name: dict(spec) for name, spec in load_detector_config().items()}
    return parse_detector_config(config, "the detector config")


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
