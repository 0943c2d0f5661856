"""A (sensor, time) that arrives again: equal value is a no-op, another value is a revision."""

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import select

from tasks.database import begin, read_frame
from tasks.ingest import ingest_municipality
from tasks.models import AuditLog, IngestBatch

RIVERTON = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-ph, parameter: ph}
      - {id: riverton-turbidity, parameter: turbidity}
"""
HEADER = "sensor_id,observed_at,value,unit\n"
T0 = datetime(2026, 11, 25, tzinfo=UTC)
T1 = datetime(2026, 11, 25, 0, 1, tzinfo=UTC)
READING_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "qc_flag": pl.Int64,
    "batch_id": pl.Int64,
}
REVISION_SCHEMA = {
    "municipality_id": pl.String,
    "sensor_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "old_value": pl.Float64,
    "new_value": pl.Float64,
    "old_batch_id": pl.Int64,
    "new_batch_id": pl.Int64,
}


def _put(home: Path, key: str, *rows: str) -> None:
    path = home / "inbox" / "riverton" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows) if rows else RIVERTON)


def _frame(sql: str, schema: dict) -> pl.DataFrame:
    with begin() as conn:
        return read_frame(conn, sql, {}, schema)


def _readings() -> pl.DataFrame:
    return _frame(
        "select sensor_id, observed_at, value, qc_flag, batch_id from readings "
        "order by sensor_id, observed_at",
        READING_SCHEMA,
    )


def _revisions() -> pl.DataFrame:
    return _frame(
        "select municipality_id, sensor_id, observed_at, old_value, new_value, old_batch_id, "
        "new_batch_id from reading_revisions order by sensor_id, observed_at, id",
        REVISION_SCHEMA,
    )


def _batch_ids() -> list[int]:
    with begin() as conn:
        return list(conn.scalars(select(IngestBatch.id).order_by(IngestBatch.id)))


def _audits() -> list[tuple]:
    with begin() as conn:
        rows = conn.execute(
            select(AuditLog.actor, AuditLog.action, AuditLog.entity_id, AuditLog.details).order_by(
                AuditLog.id
            )
        )
        return [tuple(r) for r in rows if r.action != "registry.applied"]


def test_a_changed_value_becomes_a_revision_and_the_old_value_is_kept(database, home):
    _put(home, "registry.yaml")
    _put(home, "readings/1.csv", "riverton-ph,2026-11-25T00:00:00Z,7.1,pH",
         "riverton-ph,2026-11-25T00:01:00Z,7.2,pH")
    _put(home, "readings/2.csv", "riverton-ph,2026-11-25T00:00:00Z,7.1,pH",  # same: no-op
         "riverton-ph,2026-11-25T00:01:00Z,7.9,pH",  # changed: revision
         "riverton-turbidity,2026-11-25T00:00:00Z,0.4,FNU")  # new

    figures = ingest_municipality.fn("riverton")

    first, second = _batch_ids()
    assert_frame_equal(
        _readings(),
        pl.DataFrame(
            [
                ("riverton-ph", T0, 7.1, 2, first),
                ("riverton-ph", T1, 7.9, 2, second),
                ("riverton-turbidity", T0, 0.4, 2, second),
            ],
            schema=READING_SCHEMA,
            orient="row",
        ),
    )
    assert_frame_equal(
        _revisions(),
        pl.DataFrame(
            [("riverton", "riverton-ph", T1, 7.2, 7.9, first, second)],
            schema=REVISION_SCHEMA,
            orient="row",
        ),
    )
    batch = figures["details"]["batches"][1]
    assert {k: batch[k] for k in ("rows_total", "rows_loaded", "rows_inserted", "rows_revised",
                                  "rows_unchanged", "rows_late")} == {
        "rows_total": 3,
        "rows_loaded": 2,
        "rows_inserted": 1,
        "rows_revised": 1,
        "rows_unchanged": 1,
        "rows_late": 0,
    }
    audits = _audits()
    assert [(a[0], a[1], a[2]) for a in audits] == [
        ("ingest", "batch.loaded", str(first)),
        ("ingest", "batch.loaded", str(second)),
        ("ingest", "readings.revised", str(second)),
    ]
    assert audits[2][3] == {
        "rows_revised": 1,
        "first_observed_at": audits[2][3]["first_observed_at"],
        "last_observed_at": audits[2][3]["last_observed_at"],
        "sensor_ids": ["riverton-ph"],
        "old_batch_ids": [first],
    }
    assert audits[2][3]["first_observed_at"].startswith("2026-11-25")


def test_the_same_values_again_in_another_file_change_nothing(database, home):
    _put(home, "registry.yaml")
    _put(home, "readings/1.csv", "riverton-ph,2026-11-25T00:00:00Z,7.1,pH")
    _put(home, "readings/2.csv", "riverton-ph,2026-11-25T00:00:00.000Z,7.10,pH")

    ingest_municipality.fn("riverton")

    first, _ = _batch_ids()
    assert _readings().rows() == [("riverton-ph", T0, 7.1, 2, first)]
    assert _revisions().is_empty()
    assert [a[1] for a in _audits()] == ["batch.loaded", "batch.loaded"]


def test_a_value_revised_twice_keeps_both_earlier_values(database, home):
    _put(home, "registry.yaml")
    for n, value in enumerate(("7.1", "7.4", "7.0"), start=1):
        _put(home, f"readings/{n}.csv", f"riverton-ph,2026-11-25T00:00:00Z,{value},pH")

    ingest_municipality.fn("riverton")

    one, two, three = _batch_ids()
    assert _readings().rows() == [("riverton-ph", T0, 7.0, 2, three)]
    assert _revisions().rows() == [
        ("riverton", "riverton-ph", T0, 7.1, 7.4, one, two),
        ("riverton", "riverton-ph", T0, 7.4, 7.0, two, three),
    ]
