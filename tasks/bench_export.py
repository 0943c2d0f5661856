"""`waterline bench export`: a CSV export of N readings, timed, with its peak memory, on a
throwaway database (PostgreSQL filled by COPY; the setup is not timed).

The municipality has `sensors` sensors a minute apart; each sensor's readings are generated and
loaded on their own, so the setup's memory stays small too. Memory is the process's resident set
sampled every 10 ms during the export, beside the resident set just before it.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console

BENCH_MUNICIPALITY = "bench-export"
TIMEZONE = "Europe/Berlin"
FIRST_DAY = datetime(2026, 1, 1, tzinfo=UTC)
GOAL_ROWS_PER_SECOND = 1_000_000


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakMemory:
    """The largest resident set seen while the block runs."""

    def __enter__(self):
        self.peak = self.before = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _setup(conn, readings: int, sensors: int) -> int:  # noqa: ANN001
    """The municipality, its sensors and `readings` readings spread over them (untimed)."""
    from sqlalchemy import insert

    from tasks.database import append_frame
    from tasks.models import IngestBatch, Municipality, Sensor, Station

    conn.execute(
        insert(Municipality).values(
            id=BENCH_MUNICIPALITY, name="Bench", timezone=TIMEZONE, standards=["WHO"], regulator_emails=[]
        )
    )
    conn.execute(insert(Station).values(id="bench-plant", municipality_id=BENCH_MUNICIPALITY, name="Plant"))
    conn.execute(
        insert(Sensor),
        [
            {
                "id": f"bench-{k:04d}",
                "municipality_id": BENCH_MUNICIPALITY,
                "station_id": "bench-plant",
                "parameter": "turbidity",
                "unit": "NTU",
                "kind": "online",
                "interval_seconds": 60,
                "active": True,
            }
            for k in range(sensors)
        ],
    )
    batch = conn.execute(
        insert(IngestBatch).values(
            municipality_id=BENCH_MUNICIPALITY,
            source="bench://export",
            checksum_sha256="bench-export",
            file_format="csv",
            status="loaded",
        )
    ).inserted_primary_key[0]
    per_sensor = -(-readings // sensors)
    base = int(FIRST_DAY.timestamp() * 1e6)
    written = 0
    for k in range(sensors):
        n = min(per_sensor, readings - written)
        if n <= 0:
            break
        rng = np.random.default_rng(k)
        frame = pl.DataFrame(
            {
                "sensor_id": f"bench-{k:04d}",
                "observed_at": np.arange(n, dtype=np.int64) * 60_000_000 + base,
                "municipality_id": BENCH_MUNICIPALITY,
                "value": np.round(rng.gamma(2.0, 0.1, n), 3),
                "qc_flag": np.where(rng.random(n) < 0.01, 3, 1).astype(np.int16),
                "batch_id": batch,
            }
        ).with_columns(pl.col("observed_at").cast(pl.Datetime("us", "UTC")))
        append_frame(conn, "readings", frame, analyze=k == sensors - 1)
        written += n
    return written


def run_export_bench(
    readings: int = 10_000_000, sensors: int = 100, fmt: str = "csv", keep: bool = False
) -> dict:
    """Load `readings` readings of `sensors` sensors, then time their export in `fmt`."""
    from tasks.bench import _bench_environment

    with _bench_environment(keep):
        return _measure(readings, sensors, fmt)


def _measure(readings: int, sensors: int, fmt: str) -> dict:
    from sqlalchemy.engine import make_url

    from tasks.database import begin
    from tasks.exports.export import run_export
    from tasks.exports.request import make_request
    from tasks.migrations import upgrade
    from tasks.settings import get_settings

    upgrade()
    started = time.perf_counter()
    with begin() as conn:
        loaded = _setup(conn, readings, sensors)
    setup_seconds = time.perf_counter() - started
    days = -(-loaded // sensors) // 1440 + 1
    request = make_request(
        "sensor_data",
        BENCH_MUNICIPALITY,
        (FIRST_DAY - timedelta(days=1)).date(),
        (FIRST_DAY + timedelta(days=days)).date(),
        fmt,
    )
    with tempfile.TemporaryDirectory(prefix="waterline-export-bench-") as folder, _PeakMemory() as memory:
        began = time.perf_counter()
        result = run_export(request, str(Path(folder) / request.file_name()))
        seconds = time.perf_counter() - began
    return {
        "database": make_url(get_settings().resolved_database_url).get_backend_name(),
        "format": fmt,
        "readings": loaded,
        "sensors": sensors,
        "rows_exported": result["rows"],
        "file_bytes": result["size_bytes"],
        "export_seconds": round(seconds, 3),
        "rows_per_second": round(result["rows"] / seconds) if seconds else None,
        "goal_rows_per_second": GOAL_ROWS_PER_SECOND,
        "rss_before_export_mb": round(memory.before, 1),
        "peak_rss_during_export_mb": round(memory.peak, 1),
        "setup_seconds_untimed": round(setup_seconds, 1),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def print_export_bench(console: Console, figures: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"{figures['format'].upper()} export of {figures['readings']:,} readings of "
        f"{figures['sensors']} sensors ({figures['database']})"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("rows exported", f"{figures['rows_exported']:,}")
    table.add_row("seconds", f"{figures['export_seconds']:.2f}")
    table.add_row("rows per second", f"{figures['rows_per_second']:,}")
    table.add_row("goal, rows per second", f"{figures['goal_rows_per_second']:,}")
    table.add_row("file size, MB", f"{figures['file_bytes'] / 2**20:,.0f}")
    table.add_row("memory before export, MB", f"{figures['rss_before_export_mb']:,.0f}")
    table.add_row("peak memory during export, MB", f"{figures['peak_rss_during_export_mb']:,.0f}")
    console.print(table)
    console.print(
        f"setup (untimed) {figures['setup_seconds_untimed']} s; {figures['cpus']} CPUs, load average "
        f"{figures['load_average_1min']} when the export ended"
    )
