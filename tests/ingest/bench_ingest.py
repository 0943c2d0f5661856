"""Benchmark (not a test): ingest ~1 M long-format rows into a throwaway PostgreSQL database.

    /work/venv/bin/python tests/ingest/bench_ingest.py [ROWS] [FORMAT csv|csv.gz|parquet]

Prints rows/s for the whole ingest and the time spent in Great Expectations separately.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get(
    "WATERLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SENSORS = 50


def registry() -> str:
    sensors = "\n".join(
        f"      - {{id: bench-ph-{i:03d}, parameter: ph, installed_at: 2024-01-01T00:00:00Z}}"
        for i in range(SENSORS)
    )
    return (
        "municipality: {id: bench, name: Bench}\n"
        "stations:\n  - id: bench-plant\n    name: Bench Plant\n    sensors:\n" + sensors + "\n"
    )


def readings(rows: int) -> pl.DataFrame:
    """`rows` pH readings, one a minute per sensor; every 200th value is out of range."""
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    i = pl.int_range(0, rows)
    return pl.select(
        sensor_id=pl.format("bench-ph-{}", (i % SENSORS).cast(pl.String).str.zfill(3)),
        observed_at=pl.from_epoch(start + (i // SENSORS) * 60, time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        value=pl.when(i % 200 == 0).then(99.0).otherwise(7.0 + (i % 7) / 10),
        unit=pl.lit("pH"),
    )


def encode(frame: pl.DataFrame, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.with_columns(
            pl.col("observed_at").str.to_datetime(format="%+", time_zone="UTC")
        ).write_parquet(buffer)
        return buffer.getvalue()
    frame.write_csv(buffer)
    return gzip.compress(buffer.getvalue(), 1) if fmt == "csv.gz" else buffer.getvalue()


def main(rows: int, fmt: str) -> None:
    name = f"waterline_bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ["WATERLINE_HOME"] = home
            os.environ["WATERLINE_DATABASE_URL"] = (
                make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            )
            run(Path(home), rows, fmt)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def run(home: Path, rows: int, fmt: str) -> None:
    from tasks.migrations import upgrade
    from tasks.settings import reset_settings

    reset_settings()
    upgrade()
    folder = home / "inbox" / "bench"
    (folder / "readings").mkdir(parents=True)
    (folder / "registry.yaml").write_text(registry())
    data = encode(readings(rows), fmt)
    (folder / "readings" / f"bench.{fmt}").write_bytes(data)
    print(f"{rows:,} rows, {fmt}, {len(data) / 1e6:.1f} MB")

    started = time.perf_counter()
    import great_expectations  # noqa: F401  (import cost reported apart)

    print(f"great_expectations import: {time.perf_counter() - started:.2f} s")
    from tasks.ingest import ingest_municipality

    for attempt in ("first run", "second run (already loaded)"):
        started = time.perf_counter()
        figures = ingest_municipality.fn("bench")
        seconds = time.perf_counter() - started
        d = figures["details"]
        print(
            f"{attempt}: {seconds:.2f} s total, {d['rows_total'] / seconds:,.0f} rows/s; "
            f"gate (GX) {d['gx_seconds']:.2f} s; loaded {d['rows_loaded']:,}, "
            f"quarantined {d['rows_quarantined']:,}, unchanged {d['rows_unchanged']:,}"
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000,
        sys.argv[2] if len(sys.argv) > 2 else "csv",
    )
