"""A loader killed with SIGKILL in the middle of a batch leaves nothing; the rerun loads it once."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from tasks.database import begin
from tasks.ingest import ingest_inbox
from tasks.models import IngestBatch, QuarantinedRow, Reading

ROOT = Path(__file__).resolve().parents[2]
ROWS = 300_000
SENSORS = 20
REGISTRY = "municipality: {id: bigtown, name: Bigtown}\nstations:\n  - id: bigtown-plant\n" \
    "    name: Plant\n    sensors:\n" + "".join(
        f"      - {{id: bigtown-ph-{i:02d}, parameter: ph}}\n" for i in range(SENSORS)
    )
LOADING = """
select count(*) from pg_stat_activity
where datname = :name and state = 'active' and pid <> pg_backend_pid()
  and (query ilike 'copy %' or query ilike '%quarantined_rows%')
"""


def _write_inbox(home: Path) -> None:
    folder = home / "inbox" / "bigtown"
    (folder / "readings").mkdir(parents=True)
    (folder / "registry.yaml").write_text(REGISTRY)
    i = pl.int_range(0, ROWS)
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    pl.select(
        sensor_id=pl.format("bigtown-ph-{}", (i % SENSORS).cast(pl.String).str.zfill(2)),
        observed_at=pl.from_epoch(start + (i // SENSORS) * 60, time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        value=pl.when(i % 1000 == 0).then(99.0).otherwise(7.0 + (i % 7) / 10),  # 300 out of range
        unit=pl.lit("pH"),
    ).write_csv(folder / "readings" / "big.csv")


def _counts() -> tuple:
    with begin() as conn:
        batches = conn.execute(select(IngestBatch.status, IngestBatch.rows_loaded)).all()
        readings = conn.scalar(select(func.count()).select_from(Reading))
        quarantined = conn.scalar(select(func.count()).select_from(QuarantinedRow))
    return [tuple(b) for b in batches], readings, quarantined


def _wait_for_the_batch_to_be_mid_load(proc: subprocess.Popen, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(url)
    deadline = time.monotonic() + 180
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                assert proc.poll() is None, "the loader finished before it could be killed"
                if conn.execute(text(LOADING), {"name": name}).scalar():
                    return
                conn.commit()
                time.sleep(0.02)
    finally:
        engine.dispose()
    raise AssertionError("the loader never reached the batch")


def test_a_loader_killed_mid_batch_leaves_nothing_and_the_rerun_loads_once(postgres_database, home):
    _write_inbox(home)
    # Chunks of 50,000 rows: the kill lands after some chunks were written in the batch's transaction.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "WATERLINE_INGEST_CHUNK_ROWS": "50000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tasks.ingest import ingest_inbox; ingest_inbox()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_the_batch_to_be_mid_load(proc, postgres_database)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert _counts() == ([], 0, 0)

    figures = ingest_inbox()
    again = ingest_inbox()

    loaded = ROWS - ROWS // 1000
    assert _counts() == ([("loaded", loaded)], loaded, ROWS // 1000)
    assert figures[0]["details"]["rows_loaded"] == loaded
    assert again[0]["details"]["files_already_loaded"] == 1
