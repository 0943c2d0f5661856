"""`waterline bench detect`: quality-control flags and the anomaly detectors over N generated
readings, each timed, beside a bare Polars rolling mean over the same frame in the same run.

The readings: about 100 sensors of eight parameters, one a minute, with spikes, stuck runs,
gaps and missing values mixed in, already in (sensor, time) order as the database returns them.
"""

from __future__ import annotations

import resource
import time
from datetime import UTC, datetime

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
    "redox": ("mV", 650.0, 2.0, 1),
    "flow": ("m3/h", 120.0, 2.5, 1),
}
START = datetime(2026, 1, 1, tzinfo=UTC)


def sensors() -> pl.DataFrame:
    names = list(PARAMETERS)
    rows = [
        (f"bench-{k:03d}", f"station-{k // len(names):02d}", names[k % len(names)]) for k in range(SENSORS)
    ]
    frame = pl.DataFrame(rows, schema=["sensor_id", "station_id", "parameter"], orient="row")
    return frame.with_columns(
        unit=pl.col("parameter").replace_strict({p: u for p, (u, *_) in PARAMETERS.items()})
    )


def readings(n: int, seed: int = 7) -> pl.DataFrame:
    """N readings, sensor after sensor, each one a minute apart with faults mixed in."""
    rng = np.random.default_rng(seed)
    per = int(n / SENSORS / 0.998) + 1  # a little extra: 0.1 % are dropped
    names = list(PARAMETERS)
    minutes = np.arange(per, dtype=np.int64)
    frames = []
    for k in range(SENSORS):  # building the test data, not the code under test
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
    frame = pl.concat(frames).head(n)
    return frame.with_columns(pl.col("observed_at").cast(pl.Datetime("us", "UTC")))



def run_detect_bench(n_readings: int) -> dict:
    from tasks.anomalies.detectors import find_anomalies
    from tasks.quality.qc import qc_flags

    frame = readings(n_readings)
    registry = sensors()
    end = frame["observed_at"].max()
    qc_flags(frame.head(10_000), registry)  # imports and the config, once: not part of the timing
    steps = {}

    started = time.perf_counter()
    flagged = qc_flags(frame, registry)
    steps["qc_flags"] = time.perf_counter() - started
    flags = flagged.select("sensor_id", "observed_at", "value", "qc_flag")
    del flagged
    started = time.perf_counter()
    anomalies = find_anomalies(flags, registry, START, end)
    steps["detectors"] = time.perf_counter() - started
    started = time.perf_counter()
    frame.with_columns(mean=pl.col("value").rolling_mean(60).over("sensor_id"))
    steps["bare_rolling_mean"] = time.perf_counter() - started

    total = steps["qc_flags"] + steps["detectors"]
    counts = dict(flags["qc_flag"].value_counts().sort("qc_flag").rows())
    return {
        "readings": frame.height,
        "sensors": registry.height,
        "steps": {
            name: {"seconds": round(s, 3), "readings_per_second": round(frame.height / s)}
            for name, s in {**steps, "qc_flags_and_detectors": total}.items()
        },
        "qc_and_detectors_vs_bare_rolling_mean": round(total / steps["bare_rolling_mean"], 1),
        "qc_flag_counts": {str(k): v for k, v in counts.items()},
        "anomalies": anomalies.height,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def print_detect_bench(console: Console, figures: dict) -> None:
    from tasks.bench import steps_table

    title = f"QC flags and detectors over {figures['readings']:,} readings"
    console.print(steps_table(title, figures["steps"]))
    console.print(
        f"QC flags and detectors took {figures['qc_and_detectors_vs_bare_rolling_mean']}x a bare rolling "
        f"mean; flags {figures['qc_flag_counts']}, {figures['anomalies']:,} anomalies; "
        f"peak memory {figures['peak_rss_mb']:,.0f} MB"
    )
