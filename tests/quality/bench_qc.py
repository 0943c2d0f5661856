"""Benchmark (not a test): QARTOD flags over N readings of ~100 sensors, against a bare rolling mean.

    /work/venv/bin/python tests/quality/bench_qc.py [N] [--detectors]

Writes N readings (100 sensors of eight parameters, one a minute, with spikes, stuck runs, gaps
and missing values) to a temporary Parquet file, then runs each measurement in a fresh process
so its peak RSS is its own: `qc_flags` on the readings in (sensor, time) order and shuffled, a
bare `rolling_mean(60).over("sensor_id")` over the same frame and, with --detectors,
`find_anomalies` (the anomaly detectors). Prints one JSON line each: seconds, readings per
second, RSS after loading the readings and peak RSS, in MiB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

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


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: Path, mode: str) -> dict:
    frame = pl.read_parquet(path)
    registry = sensors()
    loaded = peak_mib()
    started = time.perf_counter()
    if mode == "qc_flags_shuffled":  # the same readings in no particular order: qc_flags sorts them
        frame = frame.sample(fraction=1.0, shuffle=True, seed=1)
        loaded = peak_mib()
        started = time.perf_counter()
    if mode.startswith("qc_flags"):
        from tasks.quality.qc import qc_flags

        out = qc_flags(frame, registry)
        flags = out["qc_flag"].value_counts().sort("qc_flag").rows()
    elif mode == "rolling_mean":
        out = frame.sort("sensor_id", "observed_at").with_columns(
            mean=pl.col("value").rolling_mean(60).over("sensor_id")
        )
        flags = None
    else:
        from tasks.anomalies.detectors import find_anomalies

        end = frame["observed_at"].max()
        out = find_anomalies(frame, registry, START, end)
        flags = None
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "readings": frame.height,
        "seconds": round(seconds, 3),
        "readings_per_second": round(frame.height / seconds),
        "rss_after_load_mib": round(loaded),
        "peak_rss_mib": round(peak_mib()),
        "output_rows": out.height,
        **({"qc_flag_counts": flags} if flags else {}),
    }


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(Path(sys.argv[2]), sys.argv[3])), flush=True)
        return
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1_000_000
    modes = ["qc_flags", "qc_flags_shuffled", "rolling_mean"]
    modes += ["detectors"] if "--detectors" in sys.argv else []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "readings.parquet"
        readings(n).write_parquet(path)
        for mode in modes:
            subprocess.run([sys.executable, __file__, "--measure", str(path), mode], check=True)


if __name__ == "__main__":
    main()
