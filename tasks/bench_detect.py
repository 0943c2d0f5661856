"""`waterline bench detect`: quality-control flags and every anomaly detector over N generated
readings, each timed, beside a bare Polars rolling mean over the same readings in the same run.
Sensors are generated and judged in chunks of a fixed row budget, so peak memory does not grow
with N (compare the peak of 5 and 10 million readings).

The readings: about 100 sensors of eight parameters, one a minute, with spikes, stuck runs,
gaps and missing values mixed in, already in (sensor, time) order as the database returns them.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from rich.console import Console

SENSORS = 100
PARAMETERS = {  # parameter: (unit, level, noise, decimals)
    "ph": ("pH", 7.3, 0.012, 2),
    "turbidity": ("NTU", 0.15, 0.01, 3),
    "free_chlorine": ("mg/L", 0.8, 0.01, 2),
    "conductivity": ("uS/cm", 450.0, 2.0, 1),
    "temperature": ("degC", 12.0, 0.04, 2),
    "pressure": ("bar", 5.0, 0.015, 3),
    "redox": ("mV", 720.0, 2.0, 1),  # above the 650 mV low limit, as a healthy network runs
    "flow": ("m3/h", 120.0, 2.5, 1),
}
START = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK_READINGS = 1_000_000  # whole sensors per chunk: the row budget that bounds memory


def sensors() -> pl.DataFrame:
    names = list(PARAMETERS)
    rows = [
        (f"bench-{k:03d}", f"station-{k // len(names):02d}", names[k % len(names)]) for k in range(SENSORS)
    ]
    frame = pl.DataFrame(rows, schema=["sensor_id", "station_id", "parameter"], orient="row")
    return frame.with_columns(
        unit=pl.col("parameter").replace_strict({p: u for p, (u, *_) in PARAMETERS.items()})
    )


def per_sensor_count(n: int) -> int:
    return int(n / SENSORS / 0.998) + 1  # a little extra: 0.1 % are dropped


def readings(n: int, seed: int = 7, only: range | None = None) -> pl.DataFrame:
    """About N readings over all sensors (or the sensors in `only`), sensor after sensor, each
    one a minute apart with faults mixed in. Each sensor has its own random stream, so a chunk
    of sensors is the same whichever chunks are generated."""
    per = per_sensor_count(n)
    names = list(PARAMETERS)
    minutes = np.arange(per, dtype=np.int64)
    frames = []
    for k in only if only is not None else range(SENSORS):  # building the test data, not the code under test
        rng = np.random.default_rng([seed, k])
        _unit, level, noise, decimals = PARAMETERS[names[k % len(names)]]
        daily = 0.02 * level * np.sin(2 * np.pi * minutes / 1440)
        value = level + daily + rng.normal(0, noise, per)
        spikes = rng.random(per) < 1 / 2000
        value[spikes] += rng.choice([-1, 1], spikes.sum()) * level * 0.3
        for first in rng.integers(0, max(1, per - 400), max(1, per // 50_000)):  # stuck runs
            value[first : first + rng.integers(60, 300)] = value[first]
        value = np.round(value, decimals)
        value[rng.random(per) < 0.002] = np.nan
        keep = rng.random(per) >= 0.001  # dropped readings make gaps
        frames.append(
            pl.DataFrame(
                {
                    "sensor_id": f"bench-{k:03d}",
                    "observed_at": (minutes[keep] * 60_000_000 + int(START.timestamp() * 1e6)),
                    "value": value[keep],
                    "qc_flag": np.full(keep.sum(), 2, dtype=np.int16),
                }
            )
        )
    frame = pl.concat(frames)
    return frame.with_columns(pl.col("observed_at").cast(pl.Datetime("us", "UTC")))


def sensor_chunks(n: int, chunk_readings: int) -> list[range]:
    """Whole sensors in chunks of about `chunk_readings` readings (at least one sensor each)."""
    step = max(1, chunk_readings // per_sensor_count(n))
    return [range(k, min(k + step, SENSORS)) for k in range(0, SENSORS, step)]


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_detect_bench(n_readings: int, chunk_readings: int = CHUNK_READINGS) -> dict:
    """QC flags and every detector over about N generated readings, whole sensors at a time in
    chunks of about `chunk_readings`, so memory is bounded by the chunk, not by N. Each chunk is
    generated untimed, then flagged, judged and given a bare rolling mean, each step timed."""
    from tasks.anomalies.detectors import find_anomalies
    from tasks.quality.qc import qc_flags

    registry = sensors()
    end = START + timedelta(minutes=per_sensor_count(n_readings))
    warm = readings(20_000 * SENSORS, only=range(8))  # imports, config and caches: not timed
    find_anomalies(qc_flags(warm, registry), registry, START, end)
    del warm
    steps = dict.fromkeys(("qc_flags", "detectors", "bare_rolling_mean"), 0.0)
    height, anomalies, counts, methods = 0, 0, Counter(), Counter()
    rss_after_warm_up = peak_rss_mb()
    for chunk in sensor_chunks(n_readings, chunk_readings):
        if height >= n_readings:
            break
        frame = readings(n_readings, only=chunk).head(n_readings - height)  # exactly N in all
        started = time.perf_counter()
        flagged = qc_flags(frame, registry)
        steps["qc_flags"] += time.perf_counter() - started
        flags = flagged.select("sensor_id", "observed_at", "value", "qc_flag")
        del flagged
        started = time.perf_counter()
        found = find_anomalies(flags, registry, START, end)
        steps["detectors"] += time.perf_counter() - started
        started = time.perf_counter()
        frame.with_columns(mean=pl.col("value").rolling_mean(60).over("sensor_id"))
        steps["bare_rolling_mean"] += time.perf_counter() - started
        height += frame.height
        anomalies += found.height
        counts.update(dict(flags["qc_flag"].value_counts().rows()))
        methods.update(dict(found["method"].value_counts().rows()))
        del frame, flags, found

    total = steps["qc_flags"] + steps["detectors"]
    return {
        "readings": height,
        "sensors": registry.height,
        "chunk_readings": chunk_readings,
        "steps": {
            name: {"seconds": round(s, 3), "readings_per_second": round(height / s)}
            for name, s in {**steps, "qc_flags_and_detectors": total}.items()
        },
        "qc_and_detectors_vs_bare_rolling_mean": round(total / steps["bare_rolling_mean"], 1),
        "qc_flag_counts": {str(k): v for k, v in sorted(counts.items())},
        "anomalies": anomalies,
        "anomalies_by_method": dict(sorted(methods.items())),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_after_warm_up": rss_after_warm_up,
    }


def print_detect_bench(console: Console, figures: dict) -> None:
    from tasks.bench import steps_table

    title = f"QC flags and detectors over {figures['readings']:,} readings"
    console.print(steps_table(title, figures["steps"]))
    console.print(
        f"QC flags and detectors took {figures['qc_and_detectors_vs_bare_rolling_mean']}x a bare rolling "
        f"mean; flags {figures['qc_flag_counts']}, {figures['anomalies']:,} anomalies "
        f"{figures['anomalies_by_method']}; peak memory {figures['peak_rss_mb']:,.0f} MB with sensors in "
        f"chunks of about {figures['chunk_readings']:,} readings"
    )
