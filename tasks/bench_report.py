"""`waterline bench report`: the monthly compliance report of one large municipality, judged and
rendered in all four formats, timed step by step on a throwaway database.

The municipality: `sensors` online sensors a minute apart over a 31-day month (500 give about
22 million readings), spread over stations of ten parameters each, plus lab samples of lead,
copper and nitrate. As the nightly flow leaves them, the month's readings are in hourly and
daily aggregates (eleven earlier months of daily aggregates feed the running annual averages)
and the readings one by one only of the sensors whose rules need every sample (lab samples and
the online turbidity sensors).
Setting this up is not timed; reading, judging, recording and rendering are.
"""

from __future__ import annotations

import resource
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
from rich.console import Console

BENCH_MUNICIPALITY = "bench-town"
MONTH = date(2026, 10, 1)
TIMEZONE = "Europe/Berlin"
PARAMETERS = {  # parameter: (level, noise, decimals)
    "ph": (7.4, 0.05, 2),
    "turbidity": (0.12, 0.03, 3),
    "free_chlorine": (0.6, 0.05, 2),
    "conductivity": (450.0, 5.0, 1),
    "temperature": (12.0, 0.3, 2),
    "nitrate": (18.0, 1.0, 2),
    "nitrite": (0.05, 0.01, 3),
    "fluoride": (0.7, 0.05, 2),
    "chlorine_dioxide": (0.2, 0.03, 3),
    "arsenic": (3.0, 0.4, 2),
}
LAB = {"lead": (6.0, 3.0), "copper": (0.3, 0.15), "nitrate": (20.0, 4.0)}  # level, spread
CHUNK_SENSORS = 50  # sensors generated and aggregated at a time: bounds the setup's memory


def _registry(sensors: int) -> tuple[str, list[tuple[str, str]]]:
    names = list(PARAMETERS)
    stations = (sensors + len(names) - 1) // len(names)
    online = [
        (f"bench-s{k // len(names):03d}-{names[k % len(names)]}", names[k % len(names)])
        for k in range(sensors)
    ]
    lines = [
        f"municipality: {{id: {BENCH_MUNICIPALITY}, name: Bench Town, timezone: {TIMEZONE}, "
        "standards: [WHO, EPA, EU]}",
        "stations:",
    ]
    for s in range(stations):
        lines += [f"  - id: bench-s{s:03d}", f"    name: Station {s}", "    sensors:"]
        lines += [
            f"      - {{id: {sid}, parameter: {p}, kind: online, interval_seconds: 60}}"
            for sid, p in online
            if sid.startswith(f"bench-s{s:03d}-")
        ]
        lines += [f"      - {{id: bench-s{s:03d}-lab-{p}, parameter: {p}, kind: lab}}" for p in LAB]
    return "\n".join(lines) + "\n", online


def _minute_readings(
    sensor_ids: list[tuple[str, str]], start: datetime, end: datetime, seed: int
) -> pl.DataFrame:
    minutes = int((end - start).total_seconds() // 60)
    base = int(start.timestamp() * 1e6)
    frames = []
    for k, (sensor_id, parameter) in enumerate(sensor_ids):  # building the test data, not the code under test
        rng = np.random.default_rng([seed, k])
        level, noise, decimals = PARAMETERS[parameter]
        t = np.arange(minutes, dtype=np.int64)
        value = level + 0.05 * level * np.sin(2 * np.pi * t / 1440) + rng.normal(0, noise, minutes)
        frames.append(
            pl.DataFrame(
                {
                    "sensor_id": sensor_id,
                    "observed_at": t * 60_000_000 + base,
                    "value": np.round(np.abs(value), decimals),
                    "qc_flag": np.where(rng.random(minutes) < 0.001, 4, 1).astype(np.int16),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("observed_at").cast(pl.Datetime("us", "UTC")))


def _setup(conn, sensors: int) -> dict:  # noqa: ANN001
    """The municipality, its aggregates and the readings its per-sample rules read (untimed)."""
    from sqlalchemy import insert

    from tasks.analytics.aggregates import hourly_and_daily_aggregates
    from tasks.analytics.statistics import aggregate_readings
    from tasks.compliance.monthly import RAW_RULES, month_bounds
    from tasks.compliance.standards import load_standards
    from tasks.database import append_frame
    from tasks.models import IngestBatch
    from tasks.registry import apply_registry, parse_registry
    from tasks.reports.monthly import _month_minus

    registry, online = _registry(sensors)
    apply_registry(conn, parse_registry(registry))
    batch = conn.execute(
        insert(IngestBatch).values(
            municipality_id=BENCH_MUNICIPALITY,
            source="bench://report",
            checksum_sha256="bench-report",
            file_format="csv",
            status="loaded",
        )
    ).inserted_primary_key[0]
    start, end = month_bounds(MONTH, TIMEZONE)
    history_start, _ = month_bounds(_month_minus(MONTH, 11), TIMEZONE)
    limits = load_standards(MONTH, ["WHO", "EPA", "EU"])
    per_sample = limits.filter(pl.col("rule").is_in(list(RAW_RULES)))["parameter"].unique().to_list()
    counts = {"readings_in_month": 0, "raw_readings_stored": 0, "aggregate_rows": 0}
    for first in range(0, len(online), CHUNK_SENSORS):
        chunk = online[first : first + CHUNK_SENSORS]
        month = _minute_readings(chunk, start, end, seed=first)
        counts["readings_in_month"] += month.height
        aggregates = aggregate_readings(month, TIMEZONE)  # weeks too, for the month's insights
        raw = month.filter(pl.col("sensor_id").str.extract(r"-s\d+-(.+)$").is_in(per_sample))
        del month
        history = _daily_history(chunk, history_start, start)
        rows = pl.concat([aggregates, history], how="diagonal_relaxed").with_columns(
            municipality_id=pl.lit(BENCH_MUNICIPALITY), computed_at=pl.lit(datetime.now(UTC))
        )
        append_frame(conn, "aggregates", rows)
        counts["aggregate_rows"] += rows.height
        if raw.height:
            append_frame(
                conn,
                "readings",
                raw.with_columns(municipality_id=pl.lit(BENCH_MUNICIPALITY), batch_id=pl.lit(batch)),
            )
            counts["raw_readings_stored"] += raw.height
    lab = _lab_samples(sensors, start)
    append_frame(
        conn, "readings", lab.with_columns(municipality_id=pl.lit(BENCH_MUNICIPALITY), batch_id=pl.lit(batch))
    )
    lab_aggregates = hourly_and_daily_aggregates(lab.lazy(), TIMEZONE).with_columns(
        municipality_id=pl.lit(BENCH_MUNICIPALITY), computed_at=pl.lit(datetime.now(UTC))
    )
    append_frame(conn, "aggregates", lab_aggregates, analyze=True)
    counts["raw_readings_stored"] += lab.height
    counts["lab_samples"] = lab.height
    return counts


def _daily_history(chunk: list[tuple[str, str]], start: datetime, end: datetime) -> pl.DataFrame:
    """One daily aggregate per sensor and local day of the eleven months before the report's."""
    days = pl.datetime_range(start, end - timedelta(hours=1), "1d", time_zone=TIMEZONE, eager=True)
    days = days.dt.convert_time_zone("UTC")
    frames = []
    for k, (sensor_id, parameter) in enumerate(chunk):
        level, noise, _ = PARAMETERS[parameter]
        rng = np.random.default_rng([99, k])
        mean = level + rng.normal(0, noise / 10, days.len())
        frames.append(
            pl.DataFrame(
                {
                    "sensor_id": sensor_id,
                    "resolution": "day",
                    "bucket_start": days,
                    "count_readings": 1440,
                    "count_excluded": 1,
                    "value_mean": mean,
                    "value_min": mean - 3 * noise,
                    "value_max": mean + 3 * noise,
                    "value_std": noise,
                }
            )
        )
    return pl.concat(frames)


def _lab_samples(sensors: int, start: datetime) -> pl.DataFrame:
    """Four lab samples a month per station and lab parameter, some above the action levels."""
    stations = (sensors + len(PARAMETERS) - 1) // len(PARAMETERS)
    rng = np.random.default_rng(5)
    rows = []
    for s in range(stations):
        for parameter, (level, spread) in LAB.items():
            for week in range(4):
                at = start + timedelta(days=7 * week + 2, hours=9 + s % 6)
                rows.append((f"bench-s{s:03d}-lab-{parameter}", at, round(abs(rng.normal(level, spread)), 3)))
    frame = pl.DataFrame(rows, schema=["sensor_id", "observed_at", "value"], orient="row")
    return frame.with_columns(pl.col("observed_at").dt.replace_time_zone("UTC"), qc_flag=pl.lit(1, pl.Int16))


def run_report_bench(sensors: int = 500, keep: bool = False) -> dict:
    """Set up a municipality of `sensors` online sensors for one month, then time its monthly
    report: reading, judging, recording results and plans, building the content, rendering."""
    from tasks.bench import _bench_environment

    with _bench_environment(keep):
        return _measure(sensors)


def _measure(sensors: int) -> dict:
    from sqlalchemy.engine import make_url

    from tasks.analytics.insights import refresh_month_insights
    from tasks.compliance.monthly import judge_month, load_month
    from tasks.compliance.records import record_results, record_violations
    from tasks.database import begin
    from tasks.migrations import upgrade
    from tasks.reports.monthly import (
        RENDERERS,
        build_content,
        content_data,
        content_sha256,
        read_month_insights,
        read_plans,
    )
    from tasks.reports.monthly_templates import monthly_layout
    from tasks.settings import get_settings

    upgrade()
    started = time.perf_counter()
    with begin() as conn:
        counts = _setup(conn, sensors)
    setup_seconds = time.perf_counter() - started
    steps: dict[str, float] = {}

    def timed(name: str, work):  # noqa: ANN001, ANN202
        began = time.perf_counter()
        value = work()
        steps[name] = round(time.perf_counter() - began, 3)
        return value

    def read():  # noqa: ANN202
        with begin() as conn:
            return load_month(conn, BENCH_MUNICIPALITY, MONTH)

    inputs = timed("read_aggregates_and_samples", read)
    results, exceedances = timed("judge_rules", lambda: judge_month(inputs))

    def record():  # noqa: ANN202
        with begin() as conn:
            record_results(conn, BENCH_MUNICIPALITY, MONTH, results, period_kind="month")
            record_violations(conn, BENCH_MUNICIPALITY, MONTH, period_kind="month")
            return read_plans(conn, BENCH_MUNICIPALITY, MONTH)

    plans = timed("record_results_and_plans", record)

    def insights():  # noqa: ANN202
        with begin() as conn:
            refresh_month_insights(conn, BENCH_MUNICIPALITY, inputs.timezone, MONTH)
            return read_month_insights(conn, BENCH_MUNICIPALITY, MONTH)

    found = timed("refresh_and_read_insights", insights)
    content = timed("build_content", lambda: build_content(inputs, results, exceedances, plans, found))
    data = timed("hash_content", lambda: content_data(content))
    meta = {
        "title": monthly_layout()["title"],
        "revision": 1,
        "is_amended": False,
        "amendment": None,
        "content_sha256": content_sha256(data),
        "generated_at": datetime.now(UTC),
    }
    sizes = {}
    for fmt, render in RENDERERS.items():
        sizes[fmt] = len(timed(f"render_{fmt}", lambda render=render: render(content, meta)))
    total = sum(steps.values())
    by_status = results.group_by("status").len().sort("status").rows()
    return {
        "database": make_url(get_settings().resolved_database_url).get_backend_name(),
        "sensors": sensors,
        "month": f"{MONTH:%Y-%m}",
        **counts,
        "results": results.height,
        "results_by_status": dict(by_status),
        "exceedances": exceedances.height,
        "action_plans": plans.height,
        "insights": found.height,
        "file_bytes": sizes,
        "steps_seconds": steps,
        "total_seconds": round(total, 3),
        "goal_seconds": 30,
        "setup_seconds_untimed": round(setup_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def print_report_bench(console: Console, figures: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"Monthly compliance report of {figures['sensors']} sensors, {figures['readings_in_month']:,} "
        f"readings ({figures['database']})"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, seconds in figures["steps_seconds"].items():
        table.add_row(name.replace("_", " "), f"{seconds:.2f}")
    table.add_row("total", f"{figures['total_seconds']:.2f}")
    console.print(table)
    console.print(
        f"{figures['results']} results {figures['results_by_status']}, "
        f"{figures['exceedances']:,} exceedances, {figures['action_plans']} action plans, "
        f"{figures['insights']} insights; "
        f"{figures['raw_readings_stored']:,} readings stored one by one (read back by the rules that "
        f"need each sample) and {figures['aggregate_rows']:,} aggregate rows; files "
        + ", ".join(f"{fmt} {size / 1024:,.0f} kB" for fmt, size in figures["file_bytes"].items())
        + f"; goal under {figures['goal_seconds']} s; peak memory {figures['peak_rss_mb']:,.0f} MB "
        f"(setup, untimed: {figures['setup_seconds_untimed']} s)"
    )
