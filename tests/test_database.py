from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import insert, text

from tasks.audit import record_audit
from tasks.database import begin, bulk_insert, read_frame
from tasks.models import IngestBatch, Municipality, Sensor, Station

READING_SCHEMA = {"sensor_id": pl.String, "observed_at": pl.Datetime("us", "UTC"), "value": pl.Float64}


def _seed(conn) -> int:
    conn.execute(insert(Municipality).values(id="m1", name="M1", timezone="UTC", standards=["WHO"],
                                             regulator_emails=[]))
    conn.execute(insert(Station).values(id="s1", municipality_id="m1", name="S1"))
    conn.execute(insert(Sensor).values(id="ph1", municipality_id="m1", station_id="s1",
                                       parameter="ph", unit="pH"))
    batch = insert(IngestBatch).values(
        municipality_id="m1", source="x", checksum_sha256="0", file_format="csv", status="loaded"
    )
    return conn.execute(batch).inserted_primary_key[0]


def test_bulk_insert_skips_existing_keys_and_reads_back_utc(database):
    frame = pl.DataFrame({
        "sensor_id": ["ph1", "ph1"],
        "observed_at": [datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)],
        "value": [7.1, 7.2],
    })
    with begin() as conn:
        batch_id = _seed(conn)
        rows = frame.with_columns(municipality_id=pl.lit("m1"), qc_flag=pl.lit(2), batch_id=pl.lit(batch_id))
        assert bulk_insert(conn, "readings", rows, conflict_columns=["sensor_id", "observed_at"]) == 2
        assert bulk_insert(conn, "readings", rows, conflict_columns=["sensor_id", "observed_at"]) == 0
    with begin() as conn:
        back = read_frame(
            conn,
            "select sensor_id, observed_at, value from readings"
            " where municipality_id = :m order by observed_at",
            {"m": "m1"},
            READING_SCHEMA,
        )
    assert_frame_equal(back, frame.cast(READING_SCHEMA))


def test_read_frame_of_nothing_keeps_the_schema(database):
    with begin() as conn:
        back = read_frame(conn, "select sensor_id, observed_at, value from readings where sensor_id in :ids",
                          {"ids": ("nope", "none")}, READING_SCHEMA)
    assert back.schema == pl.Schema(READING_SCHEMA)
    assert back.height == 0


def test_audit_log_refuses_changes(database):
    with begin() as conn:
        record_audit(conn, municipality_id=None, actor="test", action="created", entity_type="thing")
    with pytest.raises(Exception, match="append-only"):
        with begin() as conn:
            conn.execute(text("update audit_log set actor = 'someone else'"))


def test_migrations_build_exactly_the_models(database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tasks.models import Base

    with begin() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
