"""`waterline bench`: time every nightly stage on N generated readings, on a throwaway database."""

from __future__ import annotations

import io
import os
import resource
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tasks.calendar import finished_everywhere
from tasks.pipeline import stage_table
from tasks.settings import get_settings, reset_settings


@contextmanager
def throwaway_database(base_url: str):
    """A fresh database of the configured kind: a new PostgreSQL database on the same server
    (dropped afterwards unless kept), or a temporary SQLite file."""
    url = make_url(base_url)
    if url.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory(prefix="waterline-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}", folder
        return
    name = f"waterline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="waterline-bench-") as folder:
            yield url.set(database=name).render_as_string(hide_password=False), folder
    finally:
        if not os.environ.get("WATERLINE_BENCH_KEEP"):
            with admin.connect() as conn:
                conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@contextmanager
def _bench_environment(keep: bool):
    """Point the settings at a throwaway database and home for the length of a benchmark."""
    if keep:
        os.environ["WATERLINE_BENCH_KEEP"] = "1"
    saved = {k: os.environ.get(k) for k in ("WATERLINE_DATABASE_URL", "WATERLINE_HOME")}
    with throwaway_database(get_settings().resolved_database_url) as (url, folder):
        os.environ["WATERLINE_DATABASE_URL"] = url
        os.environ["WATERLINE_HOME"] = folder
        reset_settings()
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            reset_settings()


def run_bench(n_readings: int, keep: bool = False, quiet: bool = False) -> dict:
    """Generate about `n_readings` for one day, run the nightly flow on them, return the figures."""
    from tasks.sample import generate_sample, plan_for_readings

    with _bench_environment(keep):
        return _measure(n_readings, generate_sample, plan_for_readings)


def _measure(n_readings: int, generate_sample, plan_for_readings) -> dict:  # noqa: ANN001
    from flows.nightly_pipeline import nightly_pipeline
    from tasks.migrations import upgrade
    from tasks.storage import inbox_store

    upgrade()
    day = finished_everywhere()
    plan = plan_for_readings(n_readings, max_days=1)  # one nightly run sees every reading
    started = time.perf_counter()
    sample = generate_sample(inbox_store(), start=day, **plan)
    generate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    summary = nightly_pipeline(day=day)
    flow_seconds = time.perf_counter() - started

    stages = {"generate_sample": {"items": 1, "rows": sample.total_readings,
                                  "seconds": round(generate_seconds, 3)}}
    stages.update(summary["stages"])
    for figures in stages.values():
        seconds = figures["seconds"]
        figures["rows_per_second"] = round(figures["rows"] / seconds, 1) if seconds else None
    return {
        "readings": sample.total_readings,
        "database": make_url(get_settings().resolved_database_url).get_backend_name(),
        "day": day.isoformat(),
        "flow_seconds": round(flow_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stages": stages,
    }


def print_bench(console: Console, figures: dict) -> None:
    title = f"{figures['readings']:,} readings on {figures['database']} ({figures['day']})"
    console.print(stage_table(figures["stages"], title=title))
    console.print(f"whole flow {figures['flow_seconds']:.1f} s, peak memory {figures['peak_rss_mb']:,.0f} MB")


BENCH_MUNICIPALITY = "bench"
BENCH_SENSORS = 100


def run_ingest_bench(n_readings: int, keep: bool = False) -> dict:
    """Ingest one CSV file of `n_readings` long rows and time each step, beside a bare COPY."""
    with _bench_environment(keep):
        return _measure_ingest(n_readings)


def _bench_registry() -> str:
    sensors = "".join(
        f"      - {{id: bench-ph-{i:03d}, parameter: ph, installed_at: 2020-01-01T00:00:00Z}}\n"
        for i in range(BENCH_SENSORS)
    )
    return (
        f"municipality: {{id: {BENCH_MUNICIPALITY}, name: Bench}}\n"
        "stations:\n  - id: bench-plant\n    name: Bench Plant\n    sensors:\n" + sensors
    )


def _bench_rows(first: int, count: int, end: int) -> pl.DataFrame:
    """Rows `first` to `first + count` of the file: pH a minute per sensor, ending at `end`
    (epoch seconds); every 100th value is out of range, so the gate quarantines 1 %."""
    i = pl.int_range(first, first + count, dtype=pl.Int64)
    return pl.select(
        sensor_id=pl.format("bench-ph-{}", (i % BENCH_SENSORS).cast(pl.String).str.zfill(3)),
        observed_at=pl.from_epoch(end - (i // BENCH_SENSORS) * 60, time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        value=pl.when(i % 100 == 99).then(99.0).otherwise(6.5 + (i % 20) / 10),
        unit=pl.lit("pH"),
    )


def _measure_ingest(n_readings: int) -> dict:
    from tasks.database import append_frame, begin
    from tasks.ingest.pieces import text_pieces
    from tasks.ingest.tasks import ingest_folder
    from tasks.migrations import upgrade
    from tasks.quality.expectations import warm_up
    from tasks.storage import inbox_store

    upgrade()
    store = inbox_store()
    store.put_bytes(f"{BENCH_MUNICIPALITY}/registry.yaml", _bench_registry().encode())
    end = int(datetime.combine(finished_everywhere(), datetime.min.time(), UTC).timestamp())
    key = f"{BENCH_MUNICIPALITY}/readings/bench.csv"
    with store.open(key, "wb") as out:  # written in slices: the file is never whole in memory here
        for first in range(0, n_readings, 1_000_000):
            _bench_rows(first, min(1_000_000, n_readings - first), end).write_csv(
                out, include_header=first == 0
            )
    file_mb = round(store.size(key) / 1e6, 1)
    warm_up()  # GX's import (about 2.5 s, once per worker process) is not part of the batch

    started = time.perf_counter()
    figures = ingest_folder(store, BENCH_MUNICIPALITY)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batch = figures["details"]["batches"][0]
    if batch["status"] != "loaded":
        raise RuntimeError(f"the bench file did not load: {batch.get('error') or batch['status']}")

    # The same rows as the readings table holds them, COPYed bare into a copy of that table, in
    # pieces like a large file's (only the COPY is timed).
    copy_seconds = 0.0
    with begin() as conn, store.open(key) as stream:
        conn.exec_driver_sql("create table bench_bare_copy (like readings including all)")
        for _, piece in text_pieces(stream, header=True, quoted=False):
            bare = pl.read_csv(io.BytesIO(piece), schema_overrides={"value": pl.Float64}).select(
                "sensor_id",
                pl.col("observed_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC"),
                pl.lit(BENCH_MUNICIPALITY).alias("municipality_id"),
                "value",
                pl.lit(2, dtype=pl.Int16).alias("qc_flag"),
                pl.lit(batch["batch_id"], dtype=pl.Int64).alias("batch_id"),
            )
            copy_started = time.perf_counter()
            append_frame(conn, "bench_bare_copy", bare)
            copy_seconds += time.perf_counter() - copy_started
        conn.exec_driver_sql("drop table bench_bare_copy")

    total = batch["rows_total"]
    gate_seconds = batch["gate_seconds"]

    def step(step_seconds: float) -> dict:
        return {"seconds": round(step_seconds, 3), "readings_per_second": round(total / step_seconds)}

    return {
        "readings": total,
        "database": make_url(get_settings().resolved_database_url).get_backend_name(),
        "file_mb": file_mb,
        "chunks": batch["chunks"],
        "rows_loaded": batch["rows_loaded"],
        "rows_quarantined": batch["rows_quarantined"],
        "steps": {
            "read": step(batch["read_seconds"]),
            "validate_and_normalise": step(gate_seconds),
            "of_which_great_expectations": step(batch["gx_seconds"]),
            "load": step(batch["write_seconds"]),
            "end_to_end": step(seconds),
            "bare_copy": step(copy_seconds),
        },
        "end_to_end_vs_bare_copy": round(seconds / copy_seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
    }


def steps_table(title: str, steps: dict) -> Table:
    """A benchmark's steps: seconds and readings per second of each."""
    table = Table(title=title)
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("readings/s", justify="right")
    for name, figure in steps.items():
        rate = f"{figure['readings_per_second']:,}"
        table.add_row(name.replace("_", " "), f"{figure['seconds']:.2f}", rate)
    return table


def print_ingest_bench(console: Console, figures: dict) -> None:
    title = f"ingest of {figures['readings']:,} readings on {figures['database']}"
    console.print(steps_table(title, figures["steps"]))
    console.print(
        f"end to end took {figures['end_to_end_vs_bare_copy']:.2f}x a bare COPY of the same rows; "
        f"{figures['chunks']} chunk(s), {figures['rows_loaded']:,} loaded, "
        f"{figures['rows_quarantined']:,} quarantined; peak memory {figures['peak_rss_mb']:,.0f} MB"
    )
