"""Seeding for the anomaly tests: municipalities with one station, sensors and readings."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from sqlalchemy import insert

from tasks.database import bulk_insert
from tasks.models import IngestBatch, Municipality, Sensor, Station


class Seeder:
    """Writes municipalities, sensors and readings the way ingestion leaves them."""

    def municipality(self, conn, municipality_id: str, timezone: str, sensors: dict[str, str]) -> int:
        """A municipality with one station and `sensors` ({id: parameter}); returns a batch id."""
        from tasks.parameters import parameter

        conn.execute(
            insert(Municipality).values(
                id=municipality_id,
                name=municipality_id.title(),
                timezone=timezone,
                standards=["WHO"],
                regulator_emails=[],
            )
        )
        station = f"{municipality_id}-plant"
        conn.execute(insert(Station).values(id=station, municipality_id=municipality_id, name="Plant"))
        for sensor_id, name in sensors.items():
            spec = parameter(name)
            conn.execute(
                insert(Sensor).values(
                    id=sensor_id,
                    municipality_id=municipality_id,
                    station_id=station,
                    parameter=name,
                    unit=spec.unit,
                    kind="online",
                    valid_min=spec.min,
                    valid_max=spec.max,
                    interval_seconds=600,
                    installed_at=datetime(2026, 1, 1, tzinfo=UTC),
                    last_calibrated_at=datetime(2026, 3, 1, tzinfo=UTC),
                    active=True,
                )
            )
        return conn.execute(
            insert(IngestBatch).values(
                municipality_id=municipality_id,
                source=f"test://{municipality_id}",
                checksum_sha256=municipality_id,
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]

    def readings(self, conn, municipality_id: str, batch_id: int, frame: pl.DataFrame) -> int:
        """Insert `sensor_id`, `observed_at`, `value` (and optional `qc_flag`) rows."""
        if "qc_flag" not in frame.columns:
            frame = frame.with_columns(qc_flag=pl.lit(1))
        rows = frame.with_columns(municipality_id=pl.lit(municipality_id), batch_id=pl.lit(batch_id))
        return bulk_insert(conn, "readings", rows, conflict_columns=["sensor_id", "observed_at"])


@pytest.fixture
def seed() -> Seeder:
    return Seeder()
