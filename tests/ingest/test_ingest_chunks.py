"""A file judged and loaded in chunks gives exactly what it gives whole: same readings, same
quarantined rows with the same file row numbers and reasons, duplicates found across chunks."""

import gzip
import io
from datetime import UTC, datetime
from functools import partial

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import select

from tasks.database import begin
from tasks.ingest import ingest_inbox
from tasks.models import IngestBatch, QuarantinedRow, Reading
from tasks.quality.gate import check_readings, sensor_chunks

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SENSOR_IDS = [f"m1-ph-{i}" for i in range(6)]
SENSORS = pl.DataFrame(
    {
        "sensor_id": SENSOR_IDS,
        "parameter": ["ph"] * 6,
        "valid_min": [0.0] * 6,
        "valid_max": [14.0] * 6,
        "installed_at": [None] * 6,
    }
)
REGISTRY = (
    "municipality: {id: m1, name: M1}\nstations:\n  - id: m1-plant\n    name: Plant\n    sensors:\n"
    + "".join(f"      - {{id: {s}, parameter: ph}}\n" for s in SENSOR_IDS)
)


def _file() -> pl.DataFrame:
    """60 rows, sensors interleaved; row 7 repeats row 1's (sensor, time) 6 rows later with
    another value, rows 20 and 41 are out of range, row 33 has an unknown sensor."""
    rows = [
        (SENSOR_IDS[i % 6], f"2026-11-25T{i // 6:02d}:00:00Z", f"{7 + (i % 5) / 10}", "pH")
        for i in range(60)
    ]
    rows[6] = (SENSOR_IDS[0], "2026-11-25T00:00:00Z", "8.0", "pH")
    rows[19] = (rows[19][0], rows[19][1], "15", "pH")
    rows[40] = (rows[40][0], rows[40][1], "-1", "pH")
    rows[32] = ("m1-ghost", rows[32][1], "7", "pH")
    return pl.DataFrame(rows, schema=["sensor_id", "observed_at", "value", "unit"], orient="row")


def _judge_whole_and_in_chunks(rows: int):
    judge = partial(
        check_readings, sensors=SENSORS, municipality_id="m1", now=NOW, clock_skew_seconds=300
    )
    whole = judge(_file())
    chunked = [judge(chunk) for chunk in sensor_chunks(_file(), rows)]
    readings = pl.concat([g.readings for g in chunked]).sort("sensor_id", "observed_at")
    quarantined = pl.concat([g.quarantined for g in chunked]).sort("row_number")
    return whole, chunked, readings, quarantined


def test_chunks_judged_one_by_one_agree_with_the_whole_file():
    whole, chunked, readings, quarantined = _judge_whole_and_in_chunks(rows=15)
    assert len(chunked) >= 2
    assert_frame_equal(readings, whole.readings.sort("sensor_id", "observed_at"))
    assert_frame_equal(quarantined, whole.quarantined.sort("row_number"))
    assert quarantined["row_number"].to_list() == [7, 20, 33, 41]
    assert quarantined.filter(pl.col("row_number") == 7)["reasons"].to_list() == [
        ["duplicate (sensor, time) in this file"]
    ]
    assert quarantined.filter(pl.col("row_number") == 7)["raw"].to_list() == [
        '{"sensor_id":"m1-ph-0","observed_at":"2026-11-25T00:00:00Z","value":"8.0","unit":"pH"}'
    ]


def test_every_sensor_lands_in_exactly_one_chunk():
    chunks = list(sensor_chunks(_file(), 15))
    owners = pl.concat(
        [c.select("sensor_id").unique().with_columns(chunk=pl.lit(i)) for i, c in enumerate(chunks)]
    )
    assert owners["sensor_id"].is_duplicated().sum() == 0
    assert sum(c.height for c in chunks) == 60
    # in sensor-id order, so the readings go into the table's key in order, chunk after chunk
    assert [c["sensor_id"].unique().sort().to_list() for c in chunks] == [
        ["m1-ghost", "m1-ph-0", "m1-ph-1"],
        ["m1-ph-2"],
        ["m1-ph-3", "m1-ph-4"],
        ["m1-ph-5"],
    ]


def test_a_file_loaded_in_chunks_is_loaded_once_with_file_row_numbers(database, home, monkeypatch):
    monkeypatch.setenv("WATERLINE_INGEST_CHUNK_ROWS", "15")
    from tasks.settings import reset_settings

    reset_settings()
    folder = home / "inbox" / "m1"
    (folder / "readings").mkdir(parents=True)
    (folder / "registry.yaml").write_text(REGISTRY)
    _file().write_csv(folder / "readings" / "2026-11-25.csv")

    figures = ingest_inbox()
    again = ingest_inbox()

    with begin() as conn:
        readings = conn.execute(select(Reading.sensor_id, Reading.value)).all()
        quarantined = conn.scalars(select(QuarantinedRow.row_number).order_by(QuarantinedRow.row_number))
        quarantined = list(quarantined)
        batches = conn.execute(
            select(IngestBatch.status, IngestBatch.rows_loaded, IngestBatch.validation)
        ).all()
    assert len(readings) == 56
    assert quarantined == [7, 20, 33, 41]
    (status, loaded, validation), = batches
    assert (status, loaded) == ("loaded", 56)
    chunks = len(list(sensor_chunks(_file(), 15)))
    assert chunks >= 2
    assert validation["chunks"] == chunks and validation["rows_failed"] == 4
    assert figures[0]["details"]["batches"][0]["chunks"] == chunks
    assert again[0]["details"]["files_already_loaded"] == 1


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "jsonl", "parquet"])
def test_a_large_file_read_in_pieces_loads_exactly_as_one_read_whole(database, home, monkeypatch, fmt):
    """Files above WATERLINE_INGEST_IN_MEMORY_ROWS are read in pieces of whole lines and spooled
    by chunk: the same readings, the same quarantined rows, numbers and reasons."""
    from tasks.ingest import load, pieces

    monkeypatch.setenv("WATERLINE_INGEST_CHUNK_ROWS", "15")
    monkeypatch.setenv("WATERLINE_INGEST_IN_MEMORY_ROWS", "10")
    monkeypatch.setattr(pieces, "PIECE_BYTES", 700)  # several pieces of a 3 KB file
    monkeypatch.setattr(pieces, "PARQUET_PIECE_ROWS", 17)
    monkeypatch.setattr(load, "SAMPLE_BYTES", 100)  # files above it are sampled
    from tasks.settings import reset_settings

    reset_settings()
    folder = home / "inbox" / "m1"
    (folder / "readings").mkdir(parents=True)
    (folder / "registry.yaml").write_text(REGISTRY)
    buffer = io.BytesIO()
    if fmt.startswith("csv"):
        _file().write_csv(buffer)
    elif fmt == "parquet":
        _file().write_parquet(buffer)
    else:
        _file().write_ndjson(buffer)
    data = gzip.compress(buffer.getvalue()) if fmt.endswith(".gz") else buffer.getvalue()
    (folder / "readings" / f"2026-11-25.{fmt}").write_bytes(data)

    read_in_pieces = []
    real = load.chunks_of_pieces
    monkeypatch.setattr(load, "chunks_of_pieces", lambda *a: read_in_pieces.append(1) or real(*a))

    figures = ingest_inbox()

    assert read_in_pieces == [1]
    with begin() as conn:
        readings = conn.execute(select(Reading.sensor_id, Reading.value)).all()
        quarantined = conn.execute(
            select(QuarantinedRow.row_number, QuarantinedRow.reasons).order_by(QuarantinedRow.row_number)
        ).all()
    assert figures[0]["details"]["files_loaded"] == 1, figures[0]["details"]["batches"]
    assert len(readings) == 56
    assert [r.row_number for r in quarantined] == [7, 20, 33, 41]
    assert quarantined[0].reasons == ["duplicate (sensor, time) in this file"]
    assert figures[0]["details"]["batches"][0]["chunks"] == len(list(sensor_chunks(_file(), 15)))
