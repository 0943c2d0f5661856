"""Benchmark (not a test): aggregates, anomalies and sensor health of one municipality and day
on a throwaway PostgreSQL database.

    /work/venv/bin/python tests/analytics/bench_analytics.py [SENSORS] [HISTORY_DAYS]

Defaults: 700 sensors at one reading a minute over one local day (about 1 M readings) plus a
two-hour lookback. Each task runs twice; the second run shows what a rerun costs (it writes
nothing). HISTORY_DAYS > 1 adds whole days before the day, as the health score reads 14.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get(
    "WATERLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DAY = date(2026, 3, 10)
TIMEZONE = "America/Chicago"
PARAMETERS = {  # typical level and noise
    "ph": (7.2, 0.03),
    "turbidity": (0.15, 0.01),
    "free_chlorine": (0.8, 0.02),
    "conductivity": (450.0, 3.0),
    "temperature": (12.0, 0.1),
    "redox": (720.0, 4.0),
    "chlorine_dioxide": (0.14, 0.005),
}


def seed(n_sensors: int, history_days: int) -> int:
    """Sensors and their readings, with spike bursts (every 50th) and stuck sensors (every 97th)."""
    from tasks.calendar import local_day_bounds
    from tasks.database import begin, bulk_insert
    from tasks.models import IngestBatch, Municipality, Sensor, Station
    from tasks.parameters import parameter

    names = list(PARAMETERS)
    start, end = (
        local_day_bounds(DAY - timedelta(days=history_days - 1), TIMEZONE)[0],
        (local_day_bounds(DAY, TIMEZONE)[1]),
    )
    times = pl.datetime_range(
        start - timedelta(hours=2), end, "1m", closed="left", time_zone="UTC", eager=True
    )
    rng = np.random.default_rng(7)
    with begin() as conn:
        conn.execute(
            insert(Municipality).values(
                id="bench", name="Bench", timezone=TIMEZONE, standards=["WHO"], regulator_emails=[]
            )
        )
        conn.execute(
            insert(Station),
            [
                {"id": f"st{s}", "municipality_id": "bench", "name": f"Station {s}"}
                for s in range(n_sensors // 7 + 1)
            ],
        )
        conn.execute(
            insert(Sensor),
            [
                {
                    "id": f"se{i}",
                    "municipality_id": "bench",
                    "station_id": f"st{i // 7}",
                    "parameter": names[i % 7],
                    "unit": parameter(names[i % 7]).unit,
                    "kind": "online",
                    "valid_min": parameter(names[i % 7]).min,
                    "valid_max": parameter(names[i % 7]).max,
                    "interval_seconds": 60,
                    "installed_at": datetime(2025, 1, 1, tzinfo=UTC),
                    "last_calibrated_at": datetime(2026, 1, 15, tzinfo=UTC),
                    "active": True,
                }
                for i in range(n_sensors)
            ],
        )
        batch = conn.execute(
            insert(IngestBatch).values(
                municipality_id="bench",
                source="bench",
                checksum_sha256="bench",
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]
    frames = []
    for i in range(n_sensors):
        mean, noise = PARAMETERS[names[i % 7]]
        values = mean + rng.normal(0, noise, times.len())
        if i % 50 == 0:
            at = int(rng.integers(200, times.len() - 60))
            values[at : at + 30 : 3] += 20 * noise + (2.0 if names[i % 7] == "turbidity" else 0.0)
        if i % 97 == 0:
            values[-840:] = round(mean, 2)
        flags = np.where(rng.random(times.len()) < 0.005, 4, 1)
        frames.append(
            pl.DataFrame(
                {"sensor_id": f"se{i}", "observed_at": times, "value": values, "qc_flag": flags}
            )
        )
    readings = pl.concat(frames).with_columns(
        municipality_id=pl.lit("bench"),
        batch_id=pl.lit(batch),
        qc_flag=pl.col("qc_flag").cast(pl.Int16),
    )
    with begin() as conn:
        bulk_insert(conn, "readings", readings)
        conn.execute(text("analyze readings"))
    return readings.height


def main(n_sensors: int, history_days: int) -> None:
    name = f"waterline_bench_analytics_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    os.environ["WATERLINE_DATABASE_URL"] = (
        make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    )
    os.environ["WATERLINE_HOME"] = tempfile.mkdtemp(prefix="waterline-bench-")
    try:
        from tasks.settings import reset_settings

        reset_settings()
        from tasks.migrations import upgrade

        upgrade()
        from tasks.analytics import compute_aggregates
        from tasks.anomalies import detect_anomalies
        from tasks.maintenance import score_sensor_health

        started = time.perf_counter()
        loaded = seed(n_sensors, history_days)
        print(
            f"seeded {loaded:,} readings of {n_sensors} sensors in "
            f"{time.perf_counter() - started:.1f} s"
        )
        for task in (compute_aggregates, detect_anomalies, score_sensor_health):
            for run in ("first", "rerun"):
                r = task.fn("bench", DAY)
                print(
                    f"{task.name:20s} {run:5s} {r['seconds']:6.2f} s {r['rows']:>11,} rows "
                    f"{r['rows'] / r['seconds']:>9,.0f} rows/s  {r['details']}"
                )
    finally:
        from tasks.database import get_engine

        get_engine().dispose()
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 700, int(sys.argv[2]) if len(sys.argv) > 2 else 1
    )
