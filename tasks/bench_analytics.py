"""`waterline bench analytics`: all four resolutions of aggregates over N generated readings,
beside a bare Polars `group_by_dynamic` over the same readings in the same run.

The readings are `waterline bench detect`'s (about 100 sensors, one a minute, with gaps, spikes
and missing values), in (sensor, time) order as the database returns them. Each step runs
`repeats` times, interleaved, and the fastest run counts (the machine is shared); the first
aggregate run is printed too. The bare
baseline is one hourly `group_by_dynamic` in UTC computing the same statistics (count, mean, min,
max, std, median, p95, p99); the mean alone is printed beside it for reference."""

from __future__ import annotations

import time

import polars as pl
from rich.console import Console

TIMEZONE = "America/Chicago"  # the generated span crosses the change of 8 March 2026


def _bare(readings: pl.DataFrame, full: bool) -> pl.DataFrame:
    value = pl.col("value")
    stats = [value.mean().alias("value_mean")]
    if full:
        stats += [
            pl.len().alias("count_readings"),
            value.min().alias("value_min"),
            value.max().alias("value_max"),
            value.std().alias("value_std"),
            value.median().alias("value_median"),
            value.quantile(0.95, "linear").alias("value_p95"),
            value.quantile(0.99, "linear").alias("value_p99"),
        ]
    return readings.group_by_dynamic("observed_at", every="1h", group_by="sensor_id").agg(stats)


def run_analytics_bench(n_readings: int = 10_000_000, repeats: int = 3) -> dict:
    """Time `aggregate_readings` (hour, day, week, month; local time) and the bare baselines."""
    from tasks.analytics.statistics import aggregate_readings
    from tasks.bench_detect import START, readings

    frame = readings(n_readings).head(n_readings)
    sensors = (
        frame.select("sensor_id")
        .unique()
        .with_columns(interval_seconds=pl.lit(60), installed_at=pl.lit(START))
    )
    steps = {
        "aggregate_four_resolutions": lambda: aggregate_readings(frame, TIMEZONE, sensors),
        "bare_group_by_dynamic": lambda: _bare(frame, full=True),
        "bare_group_by_dynamic_mean_only": lambda: _bare(frame, full=False),
    }
    best = dict.fromkeys(steps, float("inf"))
    rows, first = {}, {}
    for _ in range(repeats):  # interleaved, so a busy moment hits every step alike
        for name, step in steps.items():
            started = time.perf_counter()
            out = step()
            first.setdefault(name, time.perf_counter() - started)
            best[name] = min(best[name], time.perf_counter() - started)
            rows[name] = out.height
    counted = steps["aggregate_four_resolutions"]().group_by("resolution").len()
    ratio = best["aggregate_four_resolutions"] / best["bare_group_by_dynamic"]
    return {
        "readings": frame.height,
        "sensors": sensors.height,
        "timezone": TIMEZONE,
        "repeats": repeats,
        "polars_threads": pl.thread_pool_size(),
        "steps": {
            name: {"seconds": round(s, 3), "readings_per_second": round(frame.height / s), "rows": rows[name]}
            for name, s in best.items()
        },
        "buckets_by_resolution": dict(sorted(counted.rows())),
        # The first run compiles the numba kernels unless an earlier run cached them on disk.
        "aggregate_first_run_seconds": round(first["aggregate_four_resolutions"], 3),
        "aggregate_vs_bare_group_by_dynamic": round(ratio, 2),
        "aggregate_vs_bare_mean_only": round(
            best["aggregate_four_resolutions"] / best["bare_group_by_dynamic_mean_only"], 2
        ),
        "target_ratio": 1.5,
        "within_target": ratio <= 1.5,
    }


def print_analytics_bench(console: Console, figures: dict) -> None:
    """The figures as a table and the ratio against the bare baseline."""
    from rich.table import Table

    table = Table(title=f"Aggregates of {figures['readings']:,} readings, {figures['sensors']} sensors")
    for column in ("step", "seconds", "readings/s", "rows"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for name, step in figures["steps"].items():
        table.add_row(name, f"{step['seconds']:.3f}", f"{step['readings_per_second']:,}", f"{step['rows']:,}")
    console.print(table)
    console.print(f"buckets: {figures['buckets_by_resolution']}")
    console.print(
        f"first aggregate run: {figures['aggregate_first_run_seconds']:.3f} s "
        "(compiles the kernels unless an earlier run cached them)"
    )
    console.print(
        f"four resolutions vs bare group_by_dynamic (same statistics, hourly, UTC): "
        f"{figures['aggregate_vs_bare_group_by_dynamic']}x (target {figures['target_ratio']}x); "
        f"vs its mean alone: {figures['aggregate_vs_bare_mean_only']}x"
    )
