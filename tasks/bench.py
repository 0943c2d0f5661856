"""`waterline bench`: time every nightly stage on N generated readings, on a throwaway database."""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
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


def run_bench(n_readings: int, keep: bool = False, quiet: bool = False) -> dict:
    """Generate about `n_readings` for one day, run the nightly flow on them, return the figures."""
    from tasks.sample import generate_sample, plan_for_readings

    settings = get_settings()
    base_url = settings.resolved_database_url
    if keep:
        os.environ["WATERLINE_BENCH_KEEP"] = "1"
    saved = {k: os.environ.get(k) for k in ("WATERLINE_DATABASE_URL", "WATERLINE_HOME")}
    with throwaway_database(base_url) as (url, folder):
        os.environ["WATERLINE_DATABASE_URL"] = url
        os.environ["WATERLINE_HOME"] = folder
        reset_settings()
        try:
            return _measure(n_readings, generate_sample, plan_for_readings)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            reset_settings()


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
