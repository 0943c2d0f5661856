"""`waterline bench detect`: quality-control flags and every anomaly detector over N generated
readings, each timed, beside a bare Polars rolling mean over the same readings in the same run.
Sensors are generated and judged in chunks of a fixed row budget, so peak memory does not grow
with N (compare the peak of 5 and 10 million readings). The chunks are shared between two worker
processes with one Polars thread each (the machine's two cores; Polars alone keeps about one busy
on these per-sensor windows), and the figures say so.

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


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


STEPS = ("qc_flags", "detectors", "bare_rolling_mean")
WORKERS = 2  # processes, one Polars thread each: this machine's two cores
_warmed: list[bool] = []


def warm_up(end: datetime) -> None:
    """Imports, config and caches, once per process: not timed."""
    if _warmed:
        return
    from tasks.anomalies.detectors import find_anomalies
    from tasks.quality.qc import qc_flags

    registry = sensors()
    warm = readings(20_000 * SENSORS, only=range(8))
    find_anomalies(qc_flags(warm, registry), registry, START, end)
    _warmed.append(True)


def judge_chunk(frame: pl.DataFrame, end: datetime) -> dict:
    """QC flags, every detector and a bare rolling mean over one chunk of whole sensors, each timed."""
    from tasks.anomalies.detectors import find_anomalies
    from tasks.quality.qc import qc_flags

    registry = sensors()
    seconds = dict.fromkeys(STEPS, 0.0)
    started = time.perf_counter()
    flagged = qc_flags(frame, registry)
    seconds["qc_flags"] = time.perf_counter() - started
    flags = flagged.select("sensor_id", "observed_at", "value", "qc_flag")
    del flagged
    started = time.perf_counter()
    found = find_anomalies(flags, registry, START, end)
    seconds["detectors"] = time.perf_counter() - started
    started = time.perf_counter()
    frame.with_columns(mean=pl.col("value").rolling_mean(60).over("sensor_id"))
    seconds["bare_rolling_mean"] = time.perf_counter() - started
    return {
        "seconds": seconds,
        "height": frame.height,
        "anomalies": found.height,
        "counts": Counter(dict(flags["qc_flag"].value_counts().rows())),
        "methods": Counter(dict(found["method"].value_counts().rows())),
    }


def write_chunks(n: int, chunks: list[range], folder: str, end: datetime) -> list[int]:
    """A worker's chunks generated and written to `folder` (untimed, as is its warm-up): their heights."""
    warm_up(end)
    heights = []
    for chunk in chunks:
        frame = readings(n, only=chunk)
        frame.write_parquet(f"{folder}/{chunk.start}.parquet")
        heights.append(frame.height)
    return heights


def judge_chunks(chunks: list[tuple[range, int]], folder: str, end: datetime) -> dict:
    """A worker's chunks read back, each cut to its row limit and judged: summed figures."""
    warm_up(end)
    total = {"seconds": dict.fromkeys(STEPS, 0.0), "height": 0, "anomalies": 0}
    total |= {"counts": Counter(), "methods": Counter()}
    for chunk, limit in chunks:
        figures = judge_chunk(pl.read_parquet(f"{folder}/{chunk.start}.parquet").head(limit), end)
        for name in STEPS:
            total["seconds"][name] += figures["seconds"][name]
        for key in ("height", "anomalies", "counts", "methods"):
            total[key] += figures[key]
    return total


def in_workers(n: int, chunks: list[range], workers: int, end: datetime) -> list[dict]:
    """The chunks shared round-robin between `workers` processes with one Polars thread each: each
    worker's summed figures. Chunks go through Parquet files so the row limits that make exactly
    N readings are known before any timing starts."""
    import multiprocessing
    import os
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    shares = [chunks[w::workers] for w in range(workers)]
    threads = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"  # read by each spawned worker as it imports Polars
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
        ):
            heights = list(pool.map(write_chunks, [n] * workers, shares, [folder] * workers, [end] * workers))
            limits, left = {}, n
            for k, chunk in enumerate(chunks):  # in sensor order, as one process takes them
                limits[chunk.start] = min(heights[k % workers][k // workers], left)
                left -= limits[chunk.start]
            jobs = [[(c, limits[c.start]) for c in share if limits[c.start] > 0] for share in shares]
            return list(pool.map(judge_chunks, jobs, [folder] * workers, [end] * workers))
    finally:
        if threads is None:
            del os.environ["POLARS_MAX_THREADS"]
        else:
            os.environ["POLARS_MAX_THREADS"] = threads


def run_detect_bench(n_readings: int, chunk_readings: int = CHUNK_READINGS, workers: int = WORKERS) -> dict:
    """QC flags and every detector over about N generated readings, whole sensors at a time in
    chunks of about `chunk_readings`, so memory is bounded by the chunk, not by N. Each chunk is
    generated untimed, then flagged, judged and given a bare rolling mean, each step timed.

    With several chunks and `workers` > 1, the chunks are shared between that many processes, one
    Polars thread each, running at once: a step's seconds are then those of the busiest worker
    (the wall-clock time of the run), QC and detectors split in proportion to their summed time."""
    registry = sensors()
    end = START + timedelta(minutes=per_sensor_count(n_readings))
    chunks = sensor_chunks(n_readings, chunk_readings)
    workers = max(1, min(workers, len(chunks)))
    if workers == 1:
        warm_up(end)
        rss_after_warm_up = peak_rss_mb()
        shares, height = [], 0
        for chunk in chunks:
            if height >= n_readings:
                break
            frame = readings(n_readings, only=chunk).head(n_readings - height)  # exactly N in all
            shares.append(judge_chunk(frame, end))
            height += frame.height
            del frame
    else:
        rss_after_warm_up = peak_rss_mb()
        shares = in_workers(n_readings, chunks, workers, end)
    busiest = {name: max(share["seconds"][name] for share in shares) for name in STEPS}
    summed = {name: sum(share["seconds"][name] for share in shares) for name in STEPS}
    if workers == 1:
        steps = summed
    else:
        wall = max(share["seconds"]["qc_flags"] + share["seconds"]["detectors"] for share in shares)
        judged = summed["qc_flags"] + summed["detectors"]
        steps = {name: wall * summed[name] / judged for name in ("qc_flags", "detectors")}
        steps["bare_rolling_mean"] = busiest["bare_rolling_mean"]
    height = sum(share["height"] for share in shares)
    counts = sum((share["counts"] for share in shares), Counter())
    methods = sum((share["methods"] for share in shares), Counter())
    total = steps["qc_flags"] + steps["detectors"]
    return {
        "readings": height,
        "sensors": registry.height,
        "chunk_readings": chunk_readings,
        "workers": workers,
        "polars_threads": 1 if workers > 1 else pl.thread_pool_size(),
        "steps": {
            name: {"seconds": round(s, 3), "readings_per_second": round(height / s)}
            for name, s in {**steps, "qc_flags_and_detectors": total}.items()
        },
        "worker_seconds": {name: round(s, 3) for name, s in summed.items()},
        "qc_and_detectors_vs_bare_rolling_mean": round(total / steps["bare_rolling_mean"], 1),
        "qc_flag_counts": {str(k): v for k, v in sorted(counts.items())},
        "anomalies": sum(share["anomalies"] for share in shares),
        "anomalies_by_method": dict(sorted(methods.items())),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_after_warm_up": rss_after_warm_up,
        "peak_rss_mb_per_worker": peak_rss_mb(resource.RUSAGE_CHILDREN) if workers > 1 else None,
    }


def print_detect_bench(console: Console, figures: dict) -> None:
    from tasks.bench import steps_table

    title = f"QC flags and detectors over {figures['readings']:,} readings"
    console.print(steps_table(title, figures["steps"]))
    workers = figures["workers"]
    run = (
        f"{workers} worker processes at once, one Polars thread each (seconds: the busiest worker's)"
        if workers > 1
        else f"one process, {figures['polars_threads']} Polars threads"
    )
    memory = f"peak memory {figures['peak_rss_mb']:,.0f} MB"
    if figures["peak_rss_mb_per_worker"] is not None:
        memory += f" in the main process and {figures['peak_rss_mb_per_worker']:,.0f} MB per worker"
    console.print(
        f"QC flags and detectors took {figures['qc_and_detectors_vs_bare_rolling_mean']}x a bare rolling "
        f"mean; flags {figures['qc_flag_counts']}, {figures['anomalies']:,} anomalies "
        f"{figures['anomalies_by_method']}; {run}; {memory}, with sensors in chunks of about "
        f"{figures['chunk_readings']:,} readings"
    )
