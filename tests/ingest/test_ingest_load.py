"""Ingesting inbox folders into SQLite and PostgreSQL: exactly once, one transaction per file."""

import gzip
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import func, select

from tasks.database import begin, read_frame
from tasks.ingest import ingest_inbox, ingest_municipality, sync_registries
from tasks.ingest.load import record_failed_batch
from tasks.models import AuditLog, IngestBatch, QuarantinedRow, Reading
from tasks.quality.expectations import suite_path

RIVERTON = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago, standards: [EPA, WHO],
               regulator_emails: [regulator@riverton.example]}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-ph, parameter: ph, interval_seconds: 60, installed_at: 2024-01-01T00:00:00Z}
      - {id: riverton-turbidity, parameter: turbidity, valid_max: 50}
      - {id: riverton-lead, parameter: lead, kind: lab}
"""
LAKESIDE = """
municipality: {id: lakeside, name: Lakeside}
stations:
  - id: lakeside-plant
    name: Lakeside Plant
    sensors:
      - {id: lakeside-ph, parameter: ph}
"""
HEADER = "sensor_id,observed_at,value,unit\n"
READING_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "qc_flag": pl.Int64,
    "batch_id": pl.Int64,
}


def _put(home: Path, key: str, data: bytes | str) -> bytes:
    path = home / "inbox" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data.encode() if isinstance(data, str) else data
    path.write_bytes(data)
    return data


def _csv(*rows: str) -> str:
    return HEADER + "".join(f"{row}\n" for row in rows)


def _readings() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(
            conn,
            "select sensor_id, observed_at, value, qc_flag, batch_id from readings "
            "order by sensor_id, observed_at",
            {},
            READING_SCHEMA,
        )


def _batches() -> list[tuple]:
    with begin() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(
                    IngestBatch.id,
                    IngestBatch.source,
                    IngestBatch.file_format,
                    IngestBatch.status,
                    IngestBatch.rows_total,
                    IngestBatch.rows_loaded,
                    IngestBatch.rows_quarantined,
                    IngestBatch.rows_unchanged,
                    IngestBatch.error,
                ).order_by(IngestBatch.id)
            )
        ]


def _count(model) -> int:  # noqa: ANN001
    with begin() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def _audits() -> list[tuple]:
    with begin() as conn:
        rows = conn.execute(
            select(AuditLog.action, AuditLog.entity_id)
            .where(AuditLog.action.like("batch.%"))
            .order_by(AuditLog.id)
        )
        return [tuple(r) for r in rows]


def _url(home: Path, key: str) -> str:
    return (home / "inbox" / key).resolve().as_uri()


def test_good_rows_load_and_bad_rows_are_quarantined_with_every_reason(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    _put(
        home,
        "riverton/readings/2026-11-25.csv",
        _csv(
            "riverton-ph,2026-11-25T00:00:00Z,7.1,pH",
            "riverton-ph,2026-11-25T00:01:00Z,17.2,pH",
            "riverton-turbidity,2026-11-25T00:00:00+01:00,0.4,FNU",
            "riverton-ph,2026-11-25T00:00:00Z,7.3,pH",
            "riverton-ph,2099-01-01T00:00:00Z,7,mg/l",
            "ghost,,abc,pH",
        ),
    )

    figures = ingest_municipality.fn("riverton")

    batch_id = _batches()[0][0]
    assert_frame_equal(
        _readings(),
        pl.DataFrame(
            [
                ("riverton-ph", datetime(2026, 11, 25, tzinfo=UTC), 7.1, 2, batch_id),
                ("riverton-turbidity", datetime(2026, 11, 24, 23, tzinfo=UTC), 0.4, 2, batch_id),
            ],
            schema=READING_SCHEMA,
            orient="row",
        ),
    )
    with begin() as conn:
        quarantined = conn.execute(
            select(
                QuarantinedRow.municipality_id,
                QuarantinedRow.batch_id,
                QuarantinedRow.row_number,
                QuarantinedRow.raw,
                QuarantinedRow.reasons,
            ).order_by(QuarantinedRow.row_number)
        ).all()
    raw = {
        "sensor_id": "riverton-ph",
        "observed_at": "2026-11-25T00:01:00Z",
        "value": "17.2",
        "unit": "pH",
    }
    assert [tuple(q) for q in quarantined] == [
        ("riverton", batch_id, 2, raw, ["value 17.2 outside the sensor's valid range 0-14"]),
        (
            "riverton",
            batch_id,
            4,
            {**raw, "observed_at": "2026-11-25T00:00:00Z", "value": "7.3"},
            ["duplicate (sensor, time) in this file"],
        ),
        (
            "riverton",
            batch_id,
            5,
            {**raw, "observed_at": "2099-01-01T00:00:00Z", "value": "7", "unit": "mg/l"},
            [
                "unit 'mg/l' not accepted for ph (accepted: pH)",
                "observed_at 2099-01-01T00:00:00Z is later than now plus the allowed clock skew "
                "(300 s)",
            ],
        ),
        (
            "riverton",
            batch_id,
            6,
            {"sensor_id": "ghost", "observed_at": None, "value": "abc", "unit": "pH"},
            [
                "observed_at is missing",
                "value 'abc' is not a number",
                "unknown sensor id 'ghost' for municipality 'riverton'",
            ],
        ),
    ]
    key = "riverton/readings/2026-11-25.csv"
    assert _batches() == [(batch_id, _url(home, key), "csv", "loaded", 6, 2, 4, 0, None)]
    with begin() as conn:
        validation = conn.scalar(select(IngestBatch.validation))
    suite = json.loads(suite_path("readings_long").read_text())
    assert validation["statistics"]["evaluated_expectations"] == len(suite["expectations"])
    assert validation["rows_failed"] == 4
    assert _audits() == [("batch.loaded", str(batch_id))]
    details = figures["details"]
    assert (figures["stage"], figures["municipality_id"], figures["rows"]) == (
        "ingest",
        "riverton",
        2,
    )
    assert {
        k: details[k]
        for k in (
            "files",
            "files_loaded",
            "files_failed",
            "rows_total",
            "rows_loaded",
            "rows_quarantined",
            "rows_unchanged",
        )
    } == {
        "files": 1,
        "files_loaded": 1,
        "files_failed": 0,
        "rows_total": 6,
        "rows_loaded": 2,
        "rows_quarantined": 4,
        "rows_unchanged": 0,
    }


def test_the_same_file_twice_loads_nothing_the_second_time(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    data = _put(home, "riverton/readings/a.csv", _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH"))
    first = ingest_municipality.fn("riverton")
    _put(home, "riverton/readings/b-copy-of-a.csv", data)  # same bytes under another name

    second = ingest_municipality.fn("riverton")

    assert first["details"]["rows_loaded"] == 1
    batch_id = _batches()[0][0]
    assert [
        (b["file"], b["status"], b["batch_id"], b["rows_loaded"])
        for b in second["details"]["batches"]
    ] == [
        ("riverton/readings/a.csv", "already loaded", batch_id, 0),
        ("riverton/readings/b-copy-of-a.csv", "already loaded", batch_id, 0),
    ]
    assert second["details"]["files_already_loaded"] == 2
    assert len(_batches()) == 1
    assert _count(Reading) == 1
    assert _audits() == [("batch.loaded", str(batch_id))]


def test_readings_that_already_exist_are_counted_unchanged(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    _put(home, "riverton/readings/a.csv", _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH"))
    _put(
        home,
        "riverton/readings/b.csv",
        _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH", "riverton-ph,2026-11-25T00:01:00Z,7.2,pH"),
    )
    ingest_municipality.fn("riverton")
    batches = _batches()
    assert [b[3:8] for b in batches] == [("loaded", 1, 1, 0, 0), ("loaded", 2, 1, 0, 1)]


def test_a_corrupt_file_fails_readably_while_the_good_file_beside_it_loads(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    _put(home, "riverton/readings/a.parquet", b"PAR1 definitely not parquet PAR1")
    _put(home, "riverton/readings/b.csv", _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH"))
    _put(home, "riverton/readings/c.csv", "sensor,time\nriverton-ph,2026-11-25T00:00:00Z\n")

    figures = ingest_municipality.fn("riverton")
    again = ingest_municipality.fn("riverton")

    a, b, c = _batches()
    assert a[1:] == (
        _url(home, "riverton/readings/a.parquet"),
        "parquet",
        "failed",
        0,
        0,
        0,
        0,
        "the file is not a readable Parquet file (corrupt or truncated)",
    )
    assert b[3:8] == ("loaded", 1, 1, 0, 0)
    assert c[3] == "failed"
    assert c[8] == (
        "missing required column(s): sensor_id, observed_at, value, unit "
        "(found: sensor, time); a readings file needs sensor_id, observed_at, value, unit"
    )
    assert figures["details"]["files_failed"] == 2
    assert [x["status"] for x in again["details"]["batches"]] == [
        "failed",
        "already loaded",
        "failed",
    ]
    # The same bytes failing the same way are reported again, not recorded again.
    assert _audits() == [
        ("batch.failed", str(a[0])),
        ("batch.loaded", str(b[0])),
        ("batch.failed", str(c[0])),
    ]


def test_a_file_that_failed_before_is_retried_in_its_batch_row(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    data = _put(home, "riverton/readings/a.csv", _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH"))
    sync_registries.fn()
    with begin() as conn:
        failed_id = record_failed_batch(
            conn,
            "riverton",
            "old",
            hashlib.sha256(data).hexdigest(),
            "csv",
            "an older reader could not read it",
        )

    ingest_municipality.fn("riverton")

    assert [b[0] for b in _batches()] == [failed_id]
    assert _batches()[0][3:9] == ("loaded", 1, 1, 0, 0, None)


def test_a_crash_mid_file_leaves_nothing_and_the_rerun_loads_everything_once(
    database, home, monkeypatch
):
    _put(home, "riverton/registry.yaml", RIVERTON)
    _put(
        home,
        "riverton/readings/a.csv",
        _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH", "riverton-ph,2026-11-25T00:01:00Z,70,pH"),
    )

    def crash(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("power cut after the readings insert")

    monkeypatch.setattr("tasks.ingest.load.record_audit", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        ingest_municipality.fn("riverton")
    assert (_batches(), _count(Reading), _count(QuarantinedRow)) == ([], 0, 0)

    monkeypatch.undo()
    figures = ingest_municipality.fn("riverton")

    assert [b[3:8] for b in _batches()] == [("loaded", 2, 1, 1, 0)]
    assert (_count(Reading), _count(QuarantinedRow)) == (1, 1)
    assert figures["details"]["files_loaded"] == 1


def test_another_municipalitys_sensor_is_quarantined_as_unknown(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    _put(home, "lakeside/registry.yaml", LAKESIDE)
    _put(home, "riverton/readings/a.csv", _csv("lakeside-ph,2026-11-25T00:00:00Z,7.1,pH"))

    assert sync_registries.fn() == ["lakeside", "riverton"]
    ingest_municipality.fn("riverton")

    with begin() as conn:
        reasons = conn.execute(select(QuarantinedRow.municipality_id, QuarantinedRow.reasons)).all()
    assert [tuple(r) for r in reasons] == [
        ("riverton", ["unknown sensor id 'lakeside-ph' for municipality 'riverton'"])
    ]
    assert _count(Reading) == 0


def test_csv_gzip_csv_and_parquet_all_load_in_name_order(database, home):
    _put(home, "riverton/registry.yaml", RIVERTON)
    _put(home, "riverton/readings/1.csv", _csv("riverton-ph,2026-11-25T00:00:00Z,7.0,pH"))
    _put(
        home,
        "riverton/readings/2.csv.gz",
        gzip.compress(_csv("riverton-ph,2026-11-25T00:01:00Z,7.1,pH").encode()),
    )
    buffer = io.BytesIO()
    pl.DataFrame(
        {
            "sensor_id": ["riverton-turbidity"],
            "observed_at": [datetime(2026, 11, 25, tzinfo=UTC)],
            "value": [0.5],
            "unit": ["NTU"],
        }
    ).write_parquet(buffer)
    _put(home, "riverton/readings/3.parquet", buffer.getvalue())
    _put(home, "riverton/readings/README.txt", "not a readings file")
    _put(home, "riverton/lab/4.csv", _csv("riverton-lead,2026-11-24T09:30:00-06:00,3.2,µg/L"))

    figures = ingest_municipality.fn("riverton")

    assert [(b[1].rsplit("/", 2)[-2:], b[2], b[3], b[5]) for b in _batches()] == [
        (["readings", "1.csv"], "csv", "loaded", 1),
        (["readings", "2.csv.gz"], "csv.gz", "loaded", 1),
        (["readings", "3.parquet"], "parquet", "loaded", 1),
        (["lab", "4.csv"], "csv", "loaded", 1),
    ]
    assert figures["details"]["files_ignored"] == 1
    readings = _readings().select("sensor_id", "observed_at", "value")
    assert readings.rows() == [
        ("riverton-lead", datetime(2026, 11, 24, 15, 30, tzinfo=UTC), 3.2),
        ("riverton-ph", datetime(2026, 11, 25, 0, 0, tzinfo=UTC), 7.0),
        ("riverton-ph", datetime(2026, 11, 25, 0, 1, tzinfo=UTC), 7.1),
        ("riverton-turbidity", datetime(2026, 11, 25, tzinfo=UTC), 0.5),
    ]


def test_ingest_inbox_reads_any_folder_laid_out_like_the_inbox(database, home, tmp_path):
    other = tmp_path / "drop"
    (other / "riverton" / "readings").mkdir(parents=True)
    (other / "riverton" / "registry.yaml").write_text(RIVERTON)
    (other / "riverton" / "readings" / "a.csv").write_text(
        _csv("riverton-ph,2026-11-25T00:00:00Z,7.1,pH")
    )
    (other / "nobody" / "readings").mkdir(parents=True)  # no registry: not a municipality
    (other / "broken").mkdir()
    (other / "broken" / "registry.yaml").write_text("municipality: {id: elsewhere, name: X}\n")

    results = ingest_inbox(str(other))

    assert [(r["municipality_id"], r["rows"], r["details"]["registry"]) for r in results] == [
        ("riverton", 1, "applied"),
    ]
    assert _batches()[0][1] == (other / "riverton" / "readings" / "a.csv").resolve().as_uri()


def test_an_unregistered_municipality_is_refused_and_not_retried(database, home):
    from prefect.states import Failed
    from sqlalchemy.exc import OperationalError

    from tasks.ingest.registries import UnknownMunicipality
    from tasks.ingest.tasks import _retry_on_io

    _put(home, "nobody/readings/a.csv", _csv("x,2026-11-25T00:00:00Z,1,pH"))
    with pytest.raises(UnknownMunicipality, match="'nobody' is not registered"):
        ingest_municipality.fn("nobody")
    assert _batches() == []
    down = OperationalError("select 1", {}, Exception("server closed the connection"))
    assert _retry_on_io(None, None, Failed(data=down)) is True
    assert _retry_on_io(None, None, Failed(data=UnknownMunicipality("nobody"))) is False
