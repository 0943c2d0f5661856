"""Source mappings: wide SCADA exports, renamed long files, JSON Lines, and bad mappings refused."""

import csv
import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import select

from tasks.database import begin, read_frame
from tasks.ingest import ingest_inbox
from tasks.ingest.files import UnreadableFile, inbox_files, read_mapped_file
from tasks.ingest.mappings import BadMapping, parse_mapping
from tasks.models import IngestBatch, QuarantinedRow
from tasks.storage import ObjectStore

GECCO = Path(__file__).parents[1] / "fixtures" / "sources" / "gecco2018"
GECCO_CSV = GECCO / "gecco" / "scada" / "water_quality_2016-03-07.csv"
GECCO_SENSORS = {
    "Tp": "gecco-tp", "Cl": "gecco-cl", "pH": "gecco-ph", "Redox": "gecco-redox", "Leit": "gecco-leit",
    "Trueb": "gecco-trueb", "Cl_2": "gecco-cl-2", "Fm": "gecco-fm", "Fm_2": "gecco-fm-2",
}
LAKESIDE = """
municipality: {id: lakeside, name: Lakeside, timezone: Europe/Berlin}
stations:
  - id: lakeside-plant
    name: Lakeside Plant
    sensors:
      - {id: lakeside-ph, parameter: ph}
      - {id: lakeside-temp, parameter: temperature}
"""
READINGS = {"sensor_id": pl.String, "observed_at": pl.Datetime("us", "UTC"), "value": pl.Float64}


def _put(home: Path, key: str, data: bytes | str) -> None:
    path = home / "inbox" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _readings(sensor_prefix: str) -> pl.DataFrame:
    with begin() as conn:
        return read_frame(
            conn,
            "select sensor_id, observed_at, value from readings where sensor_id like :prefix "
            "order by sensor_id, observed_at",
            {"prefix": f"{sensor_prefix}%"},
            READINGS,
        )


def _batches() -> list[tuple]:
    with begin() as conn:
        rows = conn.execute(
            select(IngestBatch.source, IngestBatch.file_format, IngestBatch.status,
                   IngestBatch.rows_loaded, IngestBatch.rows_quarantined, IngestBatch.error)
            .order_by(IngestBatch.id)
        )
        return [tuple(row) for row in rows]


def _gecco_cells() -> list[tuple[str, datetime, float]]:
    """The fixture's readings, read with the csv module: plant time is UTC+1 all year."""
    cells = []
    with GECCO_CSV.open(newline="") as handle:
        for row in csv.DictReader(handle):
            local = datetime.strptime(row["Time"], "%Y-%m-%d %H:%M:%S")
            at = datetime.fromtimestamp(local.replace(tzinfo=UTC).timestamp() - 3600, UTC)
            cells += [(GECCO_SENSORS[c], at, float(row[c])) for c in GECCO_SENSORS if row[c] != "NA"]
    return sorted(cells)


def test_gecco_wide_export_loads_nine_sensors_in_the_mappings_timezone(database, home):
    shutil.copytree(GECCO / "gecco", home / "inbox" / "gecco")
    [figures] = ingest_inbox()
    expected = pl.DataFrame(_gecco_cells(), schema=READINGS, orient="row")
    assert expected.height == 218 * 9  # 300 rows, the last 82 all NA
    assert_frame_equal(_readings("gecco-"), expected)
    assert _readings("gecco-").row(0) == ("gecco-cl", datetime(2016, 3, 7, 0, 0, tzinfo=UTC), 0.13)
    assert figures["details"]["files_loaded"] == 1
    url = GECCO_CSV.resolve().as_uri().replace(str(GECCO.resolve()), str((home / "inbox").resolve()))
    assert _batches() == [(url, "csv", "loaded", 1962, 0, None)]
    again = ingest_inbox()
    assert again[0]["details"]["files_already_loaded"] == 1
    assert len(_batches()) == 1


def test_wide_cells_that_fail_the_gate_are_quarantined_with_their_origin(database, home):
    _put(home, "lakeside/registry.yaml", LAKESIDE)
    _put(
        home,
        "lakeside/sources/plc.yaml",
        "layout: wide\ntime: {column: Zeit, format: '%d.%m.%Y %H:%M'}\ntimezone: Europe/Berlin\n"
        "csv: {delimiter: ';', decimal: ','}\n"
        "columns: {pH: {sensor_id: lakeside-ph, unit: pH}, T: {sensor_id: lakeside-temp, unit: degC}}\n",
    )
    _put(
        home,
        "lakeside/plc/2026-07-01.csv",
        "Zeit;pH;T;Kommentar\n01.07.2026 12:00;7,2;18,5;ok\n01.07.2026 12:01;;18,6;\n"
        "01.07.2026 12:02;7,3;x;\n32.07.2026 12:03;7,4;18,7;\n01.07.2026 12:00;7,9;19,0;again\n",
    )
    ingest_inbox()
    assert_frame_equal(
        _readings("lakeside-"),
        pl.DataFrame(
            [
                ("lakeside-ph", datetime(2026, 7, 1, 10, 0, tzinfo=UTC), 7.2),
                ("lakeside-ph", datetime(2026, 7, 1, 10, 2, tzinfo=UTC), 7.3),
                ("lakeside-temp", datetime(2026, 7, 1, 10, 0, tzinfo=UTC), 18.5),
                ("lakeside-temp", datetime(2026, 7, 1, 10, 1, tzinfo=UTC), 18.6),
            ],
            schema=READINGS,
            orient="row",
        ),
    )
    with begin() as conn:
        rows = conn.execute(
            select(QuarantinedRow.raw, QuarantinedRow.reasons).order_by(QuarantinedRow.id)
        ).all()
    quarantined = [(r.raw if isinstance(r.raw, dict) else json.loads(r.raw), r.reasons) for r in rows]
    # The wide gate refuses whole rows: a time that is none, a time an earlier row has.
    assert len(quarantined) == 3
    assert [q for q in quarantined if "Zeit" in q[0]] == [
        ({"Zeit": "32.07.2026 12:03", "pH": "7,4", "T": "18,7", "Kommentar": None},
         ["time '32.07.2026 12:03' is not a time in the format %d.%m.%Y %H:%M; "
          "none of the row's values is loaded"]),
        ({"Zeit": "01.07.2026 12:00", "pH": "7,9", "T": "19,0", "Kommentar": "again"},
         ["time 01.07.2026 12:00 is on an earlier row of this file too; this row's values are not loaded"]),
    ]
    with begin() as conn:
        lakeside = IngestBatch.municipality_id == "lakeside"
        validation = conn.scalar(select(IngestBatch.validation).where(lakeside))
    assert validation["source"]["suite"] == "readings_wide" and validation["source"]["rows_failed"] == 2
    assert validation["source"]["statistics"]["evaluated_expectations"] == 4
    assert (validation["suite"], validation["rows_failed"]) == ("readings_long", 1)
    # The readings gate refuses single cells, traced to their row and column.
    assert [q for q in quarantined if "Zeit" not in q[0]] == [
        ({"sensor_id": "lakeside-temp", "observed_at": "2026-07-01T12:02:00", "value": "x", "unit": "degC",
          "source_row": 3, "source_column": "T", "time_as_written": "01.07.2026 12:02"},
         ["value 'x' is not a number"]),
    ]


def test_long_mapping_renames_columns_of_a_gzipped_json_lines_file(database, home):
    _put(home, "lakeside/registry.yaml", LAKESIDE)
    _put(
        home,
        "lakeside/sources/lab.yaml",
        "time: {column: taken, format: '%Y-%m-%d %H:%M'}\ntimezone: Europe/Berlin\n"
        "rename: {probe: sensor_id, reading: value, uom: unit}\n",
    )
    lines = (
        '{"probe": "lakeside-ph", "taken": "2026-01-15 08:30", "reading": 7.4, "uom": "pH"}\n'
        '{"probe": "lakeside-temp", "taken": "2026-01-15 08:30", "reading": 9, "uom": "°C"}\n'
    )
    _put(home, "lakeside/lab/2026-01-15.jsonl.gz", gzip.compress(lines.encode()))
    ingest_inbox()
    assert_frame_equal(
        _readings("lakeside-"),
        pl.DataFrame(
            [
                ("lakeside-ph", datetime(2026, 1, 15, 7, 30, tzinfo=UTC), 7.4),
                ("lakeside-temp", datetime(2026, 1, 15, 7, 30, tzinfo=UTC), 9.0),
            ],
            schema=READINGS,
            orient="row",
        ),
    )


def test_unmapped_ndjson_file_loads_in_the_long_layout(database, home):
    _put(home, "lakeside/registry.yaml", LAKESIDE)
    _put(
        home,
        "lakeside/readings/a.ndjson",
        '{"sensor_id": "lakeside-ph", "observed_at": "2026-01-15T08:30:00Z", "value": 7.1, "unit": "pH"}\n',
    )
    ingest_inbox()
    assert _readings("lakeside-").rows() == [("lakeside-ph", datetime(2026, 1, 15, 8, 30, tzinfo=UTC), 7.1)]


def test_bad_mapping_fails_each_file_of_its_source_naming_the_file_and_field(database, home):
    _put(home, "lakeside/registry.yaml", LAKESIDE)
    _put(home, "lakeside/sources/plc.yaml", "layout: sideways\ntimezone: Mars/Olympus\n")
    _put(home, "lakeside/plc/a.csv", "Zeit;pH\n01.07.2026 12:00;7,2\n")
    [figures] = ingest_inbox()
    [(source, fmt, status, loaded, quarantined, error)] = _batches()
    assert (status, loaded, fmt) == ("failed", 0, "csv")
    assert error == (
        "source mapping lakeside/sources/plc.yaml is not valid: layout: Input should be 'long' or "
        "'wide'; timezone: Value error, unknown timezone 'Mars/Olympus'"
    )
    assert figures["details"]["files_failed"] == 1
    ingest_inbox()
    assert len(_batches()) == 1  # the same failure is not recorded again


def test_files_of_a_declared_source_folder_are_listed_after_readings(tmp_path):
    store = ObjectStore(str(tmp_path))
    for key in ("m/readings/a.csv", "m/plc/b.csv", "m/plc/notes.txt", "m/other/c.csv", "m/sources/plc.yaml"):
        store.put_bytes(key, b"x")
    assert inbox_files(store, "m") == (["m/readings/a.csv", "m/plc/b.csv"], ["m/plc/notes.txt"])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("layout: wide\n", "mapping: Value error, a wide layout needs `columns`"),
        ("columns: {a: {sensor_id: s}}\nlayout: wide\n", "columns.a.unit: Field required"),
        ("kind: http\n", "mapping: Value error, an http source needs `url` and `paging`"),
        ("delimiter: ';'\n", "delimiter: Extra inputs are not permitted"),
        ("- a\n", "must be a YAML mapping of fields"),
        ("layout: [\n", "is not valid YAML"),
    ],
    ids=["wide-without-columns", "column-without-unit", "http-without-url", "unknown-field", "list",
         "bad-yaml"],
)
def test_bad_mappings_are_refused_naming_the_field(document, message):
    with pytest.raises(BadMapping, match="^source mapping m/sources/x.yaml ") as raised:
        parse_mapping(document, "m/sources/x.yaml")
    assert message in str(raised.value)


def test_wide_file_without_a_declared_column_is_refused_in_plain_words():
    mapping = parse_mapping("layout: wide\ntime: {column: t}\ncolumns: {a: {sensor_id: s, unit: pH}}", "x")
    with pytest.raises(UnreadableFile, match=r"missing column\(s\) declared by the source mapping: a"):
        read_mapped_file(b"t,b\n2026-01-01T00:00:00Z,1\n", "csv", mapping)


def test_wide_parquet_keeps_naive_times_as_wall_clock_for_the_gate_to_place(tmp_path):
    mapping = parse_mapping(
        "layout: wide\ntime: {column: t}\ntimezone: America/Chicago\n"
        "columns: {a: {sensor_id: s-a, unit: pH}, b: {sensor_id: s-b, unit: pH}}",
        "x",
    )
    frame = pl.DataFrame({"t": [datetime(2026, 1, 1, 6)], "a": [7], "b": [7.5]})
    path = tmp_path / "w.parquet"
    frame.write_parquet(path)
    long = read_mapped_file(path.read_bytes(), "parquet", mapping)
    assert long.select("sensor_id", "observed_at", "value").rows() == [
        ("s-a", datetime(2026, 1, 1, 6), 7.0),
        ("s-b", datetime(2026, 1, 1, 6), 7.5),
    ]
