"""Each sensor's cadence, and what it lets each detector do.

Windows in detectors.yaml are durations. On a sensor that reports every `cadence` seconds a window
holds window / cadence readings, and a detector judges a reading only when at least
max(`min_readings`, `min_share` x that many) of them are there. Where a window cannot hold
`min_readings` at the sensor's cadence (hourly lab data in a 60-minute window, a 15-minute sensor in
a 15-minute slope), the detector does not run on that sensor: `skipped_sensors` lists those
sensors with the reason, and `skip_sentences` words them for the run log.

A sensor's cadence is the median spacing of its readings (from `MIN_SPACINGS` readings on), else
the `interval_seconds` of the sensors table (the registry's). A sensor is regular when at least
`REGULAR_SHARE` of its spacings are its cadence: there a window of d holds the last d / cadence
readings almost always, so `find_anomalies` runs its windows as counts per group of sensors of one
cadence (the fast path); on irregular sensors the z-scores' windows run in time
(`rolling_*_by` on `observed_at`, closed left).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import timedelta

import numpy as np
import polars as pl

MIN_READINGS = 3  # a window never judges with fewer (detectors.yaml may ask more per detector)
MIN_SHARE = 0.5  # of the readings a window holds at the sensor's cadence
REGULAR_SHARE = 0.95  # spacings equal to the cadence for count windows to stand for time windows
MIN_SPACINGS = 10  # readings before their median spacing is trusted over the registry's interval
US = 1_000_000

CADENCE_SCHEMA = {
    "sensor_id": pl.String,
    "offset": pl.Int64,
    "length": pl.Int64,
    "cadence_seconds": pl.Int64,
    "regular": pl.Boolean,
}
SKIP_SCHEMA = {
    "detector": pl.String,
    "sensor_id": pl.String,
    "cadence_seconds": pl.Int64,
    "reason": pl.String,
}


def sensor_cadences(usable: pl.DataFrame, sensors: pl.DataFrame) -> pl.DataFrame:
    """Per sensor of `usable` (readings in (sensor_id, observed_at) order): its rows (`offset`,
    `length`), `cadence_seconds` (null when unknown) and whether it is `regular`.

    One numpy pass per sensor over its slice of the sorted frame: no group-by, no sort."""
    runs = usable.select(pl.col("sensor_id").rle()).unnest("sensor_id")
    offsets = (runs["len"].cum_sum() - runs["len"]).to_numpy()
    lengths = runs["len"].to_numpy()
    registry = {}
    if "interval_seconds" in sensors.columns:
        registry = dict(sensors.select("sensor_id", "interval_seconds").drop_nulls().iter_rows())
    spacings = np.diff(usable["observed_at"].dt.epoch("us").to_numpy())  # one pass for every sensor
    cadences: list[int | None] = []
    regular: list[bool] = []
    for sensor_id, offset, length in zip(runs["value"], offsets, lengths, strict=True):
        spacing = spacings[offset : offset + max(length - 1, 0)]  # within the sensor's own rows
        if len(spacing) >= MIN_SPACINGS:
            median = int(round(float(np.median(spacing)) / US))
            cadence = median if median > 0 else None
        else:
            interval = registry.get(sensor_id)
            cadence = int(interval) if interval else None
        cadences.append(cadence)
        on_cadence = np.count_nonzero(np.abs(spacing - (cadence or 0) * US) <= US // 2)
        share = on_cadence / len(spacing) if len(spacing) else 0.0
        regular.append(cadence is not None and share >= REGULAR_SHARE)
    return pl.DataFrame(
        {
            "sensor_id": runs["value"],
            "offset": offsets,
            "length": lengths,
            "cadence_seconds": cadences,
            "regular": regular,
        },
        schema=CADENCE_SCHEMA,
    )


def readings_held(span: timedelta, cadence_seconds: int) -> int:
    """How many readings a sensor of `cadence_seconds` puts in `span`."""
    return int(span.total_seconds() / cadence_seconds + 1e-9)


def needed_readings(held: int, spec: Mapping) -> int:
    """The fewest readings a window that holds `held` may judge with: max(min_readings, min_share x held)."""
    least = int(spec.get("min_readings", MIN_READINGS))
    return max(least, math.ceil(float(spec.get("min_share", MIN_SHARE)) * held - 1e-9))


def cadence_text(seconds: int) -> str:
    """`1-minute`, `15-minute`, `hourly`, `daily`, `6-hour`, `90-second` cadence."""
    if seconds == 3600:
        return "hourly"
    if seconds == 86400:
        return "daily"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return f"{seconds}-second"


def span_text(span: timedelta) -> str:
    """A window as an adjective: `60-minute`, `15-minute`, `12-hour`, `1-day`, `90-second`."""
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}-day"
    if seconds % 3600 == 0 and seconds > 6 * 3600:
        return f"{seconds // 3600}-hour"
    if seconds % 60 == 0:
        return f"{seconds // 60}-minute"
    return f"{seconds}-second"


def detector_windows(name: str, spec: Mapping) -> Iterator[tuple[str, timedelta, int | None]]:
    """The spans a detector needs filled at a sensor's cadence: (what, span, least readings; None
    for the rule of `needed_readings`)."""
    if name == "pattern_break":
        yield "bucket", timedelta(minutes=int(spec["bucket_minutes"])), int(spec.get("min_readings", 3))
        return
    if "window" in spec:
        yield "window", spec["window"], None


def counted_spec(name: str, spec: Mapping, cadence_seconds: int | None) -> tuple[dict | None, str | None]:
    """The spec of detector `name` for sensors of one cadence, windows as counts of readings
    (`window`, `history`, with `min_samples` and the duration's words in `label`); or None and
    the reason it cannot run at that cadence."""
    if cadence_seconds is None:
        return (
            None,
            f"cadence unknown: fewer than {MIN_SPACINGS + 1} readings and no interval in the registry",
        )
    counted = dict(spec)
    for what, span, least in detector_windows(name, spec):
        held = readings_held(span, cadence_seconds)
        needed = least if least is not None else needed_readings(held, spec)
        if held < needed:
            readings = f"{held} reading" + ("" if held == 1 else "s")
            return None, (
                f"{cadence_text(cadence_seconds)} cadence: a {span_text(span)} {what} holds {readings}, "
                f"{needed} needed"
            )
        if what == "window":
            counted.update(window=held, min_samples=needed, label=span)
    if "history" in spec:
        counted["history"] = max(readings_held(spec["history"], cadence_seconds), counted["window"] + 1)
    return counted, None


def enabled_detectors(config: Mapping) -> dict[str, Mapping]:
    """The enabled detectors that judge one sensor's readings (all but `combined`)."""
    return {
        name: spec
        for name, spec in config.items()
        if name != "combined" and spec.get("enabled", True) and ("window" in spec or "bucket_minutes" in spec)
    }


def skips_of(cadences: pl.DataFrame, config: Mapping) -> pl.DataFrame:
    """`SKIP_SCHEMA` rows: each enabled detector and sensor of `cadences` it cannot run on, and why."""
    rows = []
    for (cadence,), group in cadences.group_by("cadence_seconds", maintain_order=True):
        for name, spec in enabled_detectors(config).items():
            _, reason = counted_spec(name, spec, cadence)
            if reason is not None:
                rows += [(name, sensor_id, cadence, reason) for sensor_id in group["sensor_id"]]
    return pl.DataFrame(rows, schema=SKIP_SCHEMA, orient="row").sort("detector", "sensor_id")


def skip_sentences(skipped: pl.DataFrame) -> list[str]:
    """One sentence per detector naming the sensors it skipped and why, e.g. `robust_zscore skipped
    2 sensors (hourly cadence: a 60-minute window holds 1 reading, 3 needed): a, b`, or with
    several reasons `trend skipped 3 sensors: 2 (15-minute cadence: ...): a, b; 1 (hourly ...): c`."""
    sentences = []
    for (detector,), rows in skipped.group_by("detector", maintain_order=True):
        reasons = rows.group_by("reason", maintain_order=True).agg(pl.col("sensor_id").sort())
        parts = [f"{len(ids)} ({reason}): {', '.join(ids)}" for reason, ids in reasons.iter_rows()]
        total = rows.height
        head = f"{detector} skipped {total} sensor" + ("" if total == 1 else "s")
        if len(parts) == 1:
            sentences.append(f"{head} {parts[0].split(' ', 1)[1]}")
        else:
            sentences.append(f"{head}: " + "; ".join(parts))
    return sentences
