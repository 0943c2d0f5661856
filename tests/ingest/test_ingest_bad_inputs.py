"""Broken inbox files (tests/fixtures/bad_inputs/): each gets a plain recorded reason, never a crash.

Every case runs one file through `ingest_inbox` (what `waterline ingest PATH` runs) into an
inbox laid out like the real one, on SQLite and PostgreSQL, and compares the whole outcome:
the batch row, every quarantined row's reasons, and the readings that loaded beside them.
A file with broken lines is salvaged: its good rows load and each broken line is quarantined.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select

from tasks.database import begin, read_frame
from tasks.ingest import ingest_inbox
from tasks.ingest.files import (
    REFUSED_SCHEMA,
    UnreadableFile,
    read_long_file,
    read_table,
    refused_lines,
    with_refused_lines,
)
from tasks.ingest.mappings import CsvSpec
from tasks.models import AuditLog, IngestBatch, QuarantinedRow, Reading
from tasks.quality.gate import FILE_ROW, GateResult

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bad_inputs"
MUNICIPALITY = "badville"
TEN_MB = 10 * 1024 * 1024
T0 = datetime(2026, 11, 20, tzinfo=UTC)
PH = ("bv-ph", T0, 7.1)  # the good row most fixtures carry
CHLORINE = ("bv-chlorine", T0, 0.4)
CHLORINE_UNITS = "mg/L, mg/l, ug/L, µg/L, μg/L"
NOT_AN_OBJECT = (
    'is not a JSON object; each line must be one reading like {"sensor_id": ..., '
    '"observed_at": ..., "value": ..., "unit": ...}'
)
MISSING_COLUMNS = "; a readings file needs sensor_id, observed_at, value, unit"
# What an engineer must never be shown: a traceback or an exception class name.
PYTHON_NOISE = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception)\b")


def ten_mb_value_line() -> bytes:
    """A good row, then one 10 MB line whose value is 10 MB of text."""
    return (
        "sensor_id,observed_at,value,unit\n"
        "bv-ph,2026-11-20T00:00:00Z,7.1,pH\n"
        f"bv-ph,2026-11-20T00:01:00Z,{'x' * TEN_MB},pH\n"
    ).encode()


def ten_mb_header_line() -> bytes:
    """10 MB of text on one line, no newline: a header of one enormous column name."""
    return b"x" * TEN_MB


@dataclass(frozen=True)
class Case:
    """One broken file and what ingesting it must record."""

    file: str  # path below the fixtures folder, and below the municipality's inbox folder
    failed: str | None = None  # the failed batch's exact reason
    quarantined: dict[int, list[str]] = field(default_factory=dict)  # row number -> reasons
    readings: tuple[tuple[str, datetime, float], ...] = ()  # what loads, in sensor/time order
    make: Callable[[], bytes] | None = None  # generated in the test instead of committed

    @property
    def id(self) -> str:
        return self.file.rsplit("/", 1)[-1]


def failed(file: str, reason: str, make: Callable[[], bytes] | None = None) -> Case:
    return Case(file, failed=reason, make=make)


def loaded(file: str, *readings: tuple, make: Callable[[], bytes] | None = None, **rows: list[str]) -> Case:
    """A loaded file: the readings that load, and `row_<n>=[reasons]` for each quarantined row."""
    quarantined = {int(name.removeprefix("row_")): reasons for name, reasons in rows.items()}
    return Case(file, quarantined=quarantined, readings=tuple(readings), make=make)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


CASES = [
    # --- files that cannot be read at all: a failed batch with the reason ---
    failed("readings/empty.csv", "the file is empty"),
    failed("readings/header_only.csv", "the file has a header but no rows"),
    failed("readings/gzip_of_nothing.csv.gz", "the file is empty"),
    failed("readings/truncated.csv.gz", "the file is not valid gzip (it may be truncated)"),
    failed(
        "readings/zip_renamed.csv.gz",
        "the file is a zip archive, not gzip; unzip it, or compress it with gzip",
    ),
    failed("readings/truncated.parquet", "the file is not a readable Parquet file (corrupt or truncated)"),
    failed(
        "readings/semicolon_delimiter.csv",
        "missing required column(s): sensor_id, observed_at, value, unit "
        "(found: sensor_id;observed_at;value;unit)" + MISSING_COLUMNS + "; the header looks separated "
        "by semicolons, not commas",
    ),
    failed(
        "readings/missing_value_column.csv",
        "missing required column(s): value (found: sensor_id, observed_at, unit)" + MISSING_COLUMNS,
    ),
    failed(
        "readings/missing_unit_column.parquet",
        "missing required column(s): unit (found: sensor_id, observed_at, value)" + MISSING_COLUMNS,
    ),
    failed(
        "readings/misspelt_header.csv",
        "missing required column(s): value (found: sensor_id, observed_at, valeu, unit)" + MISSING_COLUMNS,
    ),
    failed(
        "readings/duplicate_header.csv",
        "the header names column 'value' more than once; keep one column of each name",
    ),
    failed(
        "readings/duplicate_header_other_case.csv",
        "the header names column 'value' more than once; keep one column of each name",
    ),
    failed(
        "readings/no_good_line.csv", "line 2 has 5 fields but the header has 4; quote fields that contain ','"
    ),
    failed("readings/no_good_line.jsonl", f"line 1 {NOT_AN_OBJECT}"),
    failed("readings/utf16.csv", "the file is UTF-16 text; save it as UTF-8"),
    failed(
        "readings/binary_garbage.csv",
        "the file is not UTF-8 text (byte 0xbb at offset 2, line 1); save it as UTF-8",
    ),
    failed(
        "readings/ten_mb_header_line.csv",
        "missing required column(s): sensor_id, observed_at, value, unit (found: "
        + "x" * 200
        + "… (10,485,760 characters))"
        + MISSING_COLUMNS,
        make=ten_mb_header_line,
    ),
    # --- files that load: every good row loads, every bad row is quarantined with its reasons ---
    # Broken lines: the file is salvaged; a line is refused before the gate, with one reason.
    loaded(
        "readings/unterminated_quote.csv",
        CHLORINE,
        PH,
        row_2=["unknown sensor id 'bv-ph\ufffdbv-chlorine' for municipality 'badville'"],  # lines 3-4
        row_3=["line 5 opens a quoted field that is never closed"],
    ),
    loaded(
        "readings/ragged_rows.csv",
        CHLORINE,
        PH,
        row_2=["line 3 has 6 fields but the header has 4; quote fields that contain ','"],
        row_3=["unit is missing"],  # fewer fields: padded with nulls, as Polars reads such a line
        row_5=["value 15 outside the sensor's valid range 0-14"],  # numbered in the file, after the gap
    ),
    loaded(
        "local/ragged_naive.csv",
        CHLORINE,
        PH,
        row_2=["line 3 has 5 fields but the header has 4; quote fields that contain ','"],
        row_3=["local time 2026-03-29T02:30 does not exist in Europe/Berlin (daylight-saving gap)"],
    ),
    loaded(
        "readings/latin1.csv",
        ("bv-chlorine", at(11, 20, 0, 1), 0.5),
        PH,
        row_2=["line 3 is not UTF-8 text (byte 0xb5 at offset 104); save the file as UTF-8"],
    ),
    loaded(
        "readings/broken_line.jsonl",
        PH,
        ("bv-ph", at(11, 20, 0, 2), 7.3),
        row_2=["line 3 is not valid JSON: Unterminated string starting at column 63"],  # line 2 is blank
    ),
    loaded(
        "readings/non_object_lines.jsonl",
        PH,
        ("bv-ph", at(11, 20, 0, 1), 7.2),
        row_2=[f"line 2 {NOT_AN_OBJECT}"],
        row_3=[f"line 3 {NOT_AN_OBJECT}"],
        row_4=[f"line 4 {NOT_AN_OBJECT}"],
        row_6=["value 15 outside the sensor's valid range 0-14"],
    ),
    loaded(
        "readings/latin1.jsonl",
        PH,
        ("bv-ph", at(11, 20, 0, 1), 7.2),
        row_2=["line 2 is not UTF-8 text (byte 0xb5 at offset 181); save the file as UTF-8"],
    ),
    loaded("readings/byte_order_mark.csv", CHLORINE, PH),
    loaded("readings/crlf_line_endings.csv", CHLORINE, PH),
    loaded("readings/whitespace_padded.csv", CHLORINE, PH),
    loaded("readings/leap_second.csv", PH, ("bv-ph", at(7, 1, 0), 7.0)),  # read as the next second
    loaded("readings/extra_columns.csv", PH, row_2=["value 15 outside the sensor's valid range 0-14"]),
    loaded(
        "readings/quoted_newline.csv",
        PH,
        row_2=["unknown sensor id 'bv-ph\ufffdbv-chlorine' for municipality 'badville'"],
    ),
    loaded(
        "readings/mixed_types.csv",
        PH,
        row_2=["value 'high' is not a number"],
        row_3=["value 'true' is not a number"],
    ),
    loaded(
        "readings/nan_and_infinity.csv",
        PH,
        row_2=["value 'NaN' is not a number"],
        row_3=["value 'inf' is infinite"],
        row_4=["value '-Infinity' is infinite"],
    ),
    loaded(
        "readings/nan_and_infinity.parquet",
        PH,
        row_2=["value 'NaN' is not a number"],
        row_3=["value 'inf' is infinite"],
        row_4=["value '-inf' is infinite"],
    ),
    loaded(
        "readings/negative_concentration.csv",
        CHLORINE,
        row_2=["value -0.2 outside the sensor's valid range 0-100"],
    ),
    loaded("readings/ph_15.csv", PH, row_2=["value 15 outside the sensor's valid range 0-14"]),
    loaded(
        "readings/epoch_1970.csv",
        PH,
        row_2=["observed_at 1970-01-01T00:00:00Z is before the sensor was installed (2020-01-01T00:00:00Z)"],
    ),
    loaded(
        "readings/future_time.csv",
        PH,
        row_2=["observed_at 2099-01-01T00:00:00Z is later than now plus the allowed clock skew (300 s)"],
    ),
    loaded(
        "readings/year_9999.csv",
        PH,
        row_2=["observed_at 9999-12-31T23:59:59Z is later than now plus the allowed clock skew (300 s)"],
    ),
    loaded(
        "local/daylight_saving_naive.csv",
        ("bv-ph", at(3, 29, 0, 30), 7.1),
        ("bv-ph", at(3, 29, 1, 30), 7.3),
        ("bv-ph", at(10, 25, 2, 30), 7.5),
        row_2=["local time 2026-03-29T02:30 does not exist in Europe/Berlin (daylight-saving gap)"],
        row_4=[
            "local time 2026-10-25T02:30 is ambiguous in Europe/Berlin (daylight-saving fold); "
            "send it with its UTC offset"
        ],
    ),
    loaded(
        "readings/wrong_date_format.csv",
        PH,
        row_2=["observed_at '20/11/2026 00:01' is not an ISO-8601 time"],
        row_3=["observed_at 'Nov 20 2026 00:02' is not an ISO-8601 time"],
    ),
    loaded(
        "readings/duplicate_rows.csv",
        PH,
        row_2=["duplicate (sensor, time) in this file"],
        row_3=["duplicate (sensor, time) in this file"],
    ),
    loaded(
        "readings/unknown_sensor.csv",
        PH,
        row_2=["unknown sensor id 'bv-ph-99' for municipality 'badville'"],
    ),
    loaded(
        "readings/unknown_unit.csv",
        CHLORINE,
        row_2=[f"unit 'ppm' not accepted for free_chlorine (accepted: {CHLORINE_UNITS})"],
    ),
    loaded(
        "readings/unit_case_variants.csv",
        CHLORINE,
        ("bv-chlorine", at(11, 20, 0, 1), 0.5),
        row_3=[f"unit 'MG/L' not accepted for free_chlorine (accepted: {CHLORINE_UNITS})"],
        row_4=["unit 'PH' not accepted for ph (accepted: pH)"],
    ),
    loaded(
        "readings/decimal_comma_and_thousands.csv",
        PH,
        row_2=["value '7,2' is not a number"],
        row_3=["value '1,200' is not a number"],
        row_4=["value '1 200' is not a number"],
    ),
    loaded(
        "readings/empty_sensor_id.csv",
        PH,
        row_2=["sensor_id is missing"],
        row_3=["sensor_id is missing"],
    ),
    loaded(
        "readings/empty_cells.csv",
        PH,
        row_2=["observed_at is missing"],
        row_3=["value is missing"],
        row_4=["unit is missing"],
    ),
    loaded(
        "readings/control_characters.csv",
        PH,
        row_2=["unknown sensor id 'bv-ph\ufffd\ufffd[31m' for municipality 'badville'"],
    ),
    loaded(
        "readings/null_bytes.csv",
        PH,
        row_2=[
            "value '7.0\ufffd' is not a number",
            "unknown sensor id 'bv-ph\ufffd' for municipality 'badville'",
        ],
    ),
    loaded(
        "readings/very_long_sensor_id.csv",
        PH,
        row_2=[f"unknown sensor id 'bv-{'x' * 77}… (5003 characters)' for municipality 'badville'"],
    ),
    loaded(
        "readings/ten_mb_value_line.csv",
        PH,
        row_2=[f"value '{'x' * 80}… (10485760 characters)' is not a number"],
        make=ten_mb_value_line,
    ),
    loaded(
        "readings/spreadsheet_formula.csv",
        PH,
        row_2=["unknown sensor id '=cmd|' /C calc'!A0' for municipality 'badville'"],
        row_3=["value '=HYPERLINK(\"http://x.example\")' is not a number"],
        row_4=["unit '@SUM(1+1)' not accepted for ph (accepted: pH)"],
    ),
    loaded(
        "readings/sql_text.csv",
        PH,
        row_2=["unknown sensor id 'bv-ph'; drop table readings; --' for municipality 'badville'"],
        row_3=["value '1 or 1=1' is not a number"],
    ),
    loaded(
        "readings/wrong_types.parquet",
        PH,
        row_2=["value 'seven' is not a number"],
        row_3=["value '7,3' is not a number"],
    ),
    loaded(
        "readings/integer_times.parquet",
        row_1=["observed_at '1763596800' is not an ISO-8601 time"],
        row_2=["observed_at '1763596860' is not an ISO-8601 time"],
    ),
    loaded(
        "readings/boolean_values.parquet",
        row_1=["value 'true' is not a number"],
        row_2=["value 'false' is not a number"],
    ),
    loaded(
        "readings/binary_strings.parquet",
        PH,
        row_2=["unknown sensor id 'bv-\ufffd\ufffd' for municipality 'badville'"],
    ),
    loaded(
        "readings/nested_value.parquet",
        row_1=["value '[7.1]' is not a number"],
        row_2=["value '[7.2,7.3]' is not a number"],
    ),
    loaded(
        "readings/nested_objects.jsonl",
        PH,
        row_2=["value '{\"reading\": 7.2}' is not a number"],
        row_3=["value '[7.3]' is not a number"],
    ),
    loaded(
        "readings/mixed_types.jsonl",
        PH,
        ("bv-ph", at(11, 20, 0, 1), 7.2),
        row_3=["value 'true' is not a number"],
        row_4=[
            "observed_at '1763596800' is not an ISO-8601 time",
            "value is missing",
            "unknown sensor id '42' for municipality 'badville'",
        ],
    ),
]
READING_SCHEMA = {"sensor_id": pl.String, "observed_at": pl.Datetime("us", "UTC"), "value": pl.Float64}


def _inbox(home: Path, *cases: Case) -> Path:
    """An inbox holding the fixtures' registry and source mapping, and these files."""
    folder = home / "inbox" / MUNICIPALITY
    (folder / "sources").mkdir(parents=True)
    shutil.copy(FIXTURES / "registry.yaml", folder / "registry.yaml")
    shutil.copy(FIXTURES / "sources" / "local.yaml", folder / "sources" / "local.yaml")
    for case in cases:
        target = folder / case.file
        target.parent.mkdir(parents=True, exist_ok=True)
        if case.make is None:
            shutil.copy(FIXTURES / case.file, target)
        else:
            target.write_bytes(case.make())
    return home / "inbox"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_broken_file_gets_a_plain_recorded_reason_and_its_good_rows_load(database, home, case):
    results = ingest_inbox(str(_inbox(home, case)))

    [figures] = results
    assert figures["details"]["registry"] == "applied"
    with begin() as conn:
        batches = conn.execute(
            select(
                IngestBatch.id,
                IngestBatch.status,
                IngestBatch.rows_total,
                IngestBatch.rows_loaded,
                IngestBatch.rows_quarantined,
                IngestBatch.error,
            )
        ).all()
        quarantined = conn.execute(
            select(QuarantinedRow.batch_id, QuarantinedRow.row_number, QuarantinedRow.reasons).order_by(
                QuarantinedRow.row_number
            )
        ).all()
        audits = conn.execute(
            select(AuditLog.action, AuditLog.entity_id).where(AuditLog.action.like("batch.%"))
        )
        audits = [tuple(a) for a in audits]
        readings = read_frame(
            conn,
            "select sensor_id, observed_at, value from readings order by sensor_id, observed_at",
            {},
            READING_SCHEMA,
        )
    [(batch_id, status, total, rows_loaded, rows_quarantined, error)] = batches
    if case.failed is not None:
        assert (status, total, rows_loaded, rows_quarantined, error) == ("failed", 0, 0, 0, case.failed)
        assert audits == [("batch.failed", str(batch_id))]
        assert figures["details"]["files_failed"] == 1
    else:
        expected_total = len(case.readings) + len(case.quarantined)
        assert (status, total, rows_loaded, rows_quarantined, error) == (
            "loaded",
            expected_total,
            len(case.readings),
            len(case.quarantined),
            None,
        )
        assert audits == [("batch.loaded", str(batch_id))]
    assert {row.row_number: row.reasons for row in quarantined} == case.quarantined
    assert {row.batch_id for row in quarantined} <= {batch_id}
    assert readings.rows() == sorted(case.readings)
    shown = [error or "", *(reason for row in quarantined for reason in row.reasons)]
    assert not [text for text in shown if PYTHON_NOISE.search(text)]


def test_formula_and_sql_text_are_kept_verbatim_as_data(database, home):
    """Quarantine keeps the original text, as JSON data: nothing evaluates or executes it."""
    ingest_inbox(str(_inbox(home, Case("readings/spreadsheet_formula.csv"), Case("readings/sql_text.csv"))))

    with begin() as conn:
        raws = conn.scalars(select(QuarantinedRow.raw).order_by(QuarantinedRow.id)).all()
        count_readings = conn.scalar(select(func.count()).select_from(Reading))
    assert [(r["sensor_id"], r["value"], r["unit"]) for r in raws] == [
        ("=cmd|' /C calc'!A0", "7.0", "pH"),
        ("bv-ph", '=HYPERLINK("http://x.example")', "pH"),
        ("bv-ph", "7.0", "@SUM(1+1)"),
        ("bv-ph'; drop table readings; --", "7.0", "pH"),
        ("bv-ph", "1 or 1=1", "pH"),
    ]
    assert count_readings == 1  # the readings table is intact; the good row both files share loaded once


def test_the_fixtures_folder_is_small_and_every_file_is_tested():
    files = sorted(
        str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.parent.name in ("readings", "local")
    )
    committed = sorted(c.file for c in CASES if c.make is None)
    assert files == committed
    assert sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()) < 200_000
    readme = (FIXTURES / "README.md").read_text()
    assert [c.file for c in CASES if c.file not in readme] == []


def test_a_broken_line_is_quarantined_as_its_text(database, home):
    """A refused line keeps the file's text (bytes that are not UTF-8 as U+FFFD) under `line`."""
    files = ("readings/latin1.csv", "readings/unterminated_quote.csv", "readings/broken_line.jsonl")
    ingest_inbox(str(_inbox(home, *(Case(file) for file in files))))

    with begin() as conn:
        rows = conn.execute(select(QuarantinedRow.row_number, QuarantinedRow.raw).order_by(QuarantinedRow.id))
        lines = [(row.row_number, row.raw) for row in rows if "line" in row.raw]
    assert sorted(lines, key=lambda r: r[1]["line"]) == [
        (2, {"line": "bv-chlorine,2026-11-20T00:00:00Z,400,\ufffdg/L"}),
        (3, {"line": 'bv-ph,2026-11-20T00:02:00Z,"7.3,pH'}),
        (2, {"line": '{"sensor_id": "bv-ph", "observed_at": "2026-11-20T00:01:00Z", "val'}),
    ]


def test_reading_a_file_outside_the_inbox_refuses_it_at_its_first_broken_line():
    """`read_long_file` does not salvage: only the inbox load quarantines broken lines."""
    with pytest.raises(UnreadableFile) as refused:
        read_long_file((FIXTURES / "readings/ragged_rows.csv").read_bytes(), "csv")
    assert str(refused.value) == "line 3 has 6 fields but the header has 4; quote fields that contain ','"


HEADER = "sensor_id,observed_at,value,unit\n"


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "bv-ph,t1,7.1,pH\n\nbv-ph,t2,7.2,pH\n",  # a blank line is a row of nulls
        "\ufeff" + (HEADER + "bv-ph,t1,7.1,pH\n\nbv-ph,t2,7.2\n").replace("\n", "\r\n"),
        "\n\n" + HEADER + '"bv-ph\nx",t1,"7,1","a ""b"""\n bv-ph , t2 ,\t7.2\t,pH \n',
        HEADER + "bv-ph,,7.1,\nbv-ph,t2\n,,,\nbv-ph,t3,NA,pH\n",
        HEADER + "bv-ph,t1,7.1,pH\n\n",  # a blank line at the end is a row too
    ],
    ids=["blank-line", "bom-crlf", "quotes-and-padding", "short-and-empty", "blank-at-end"],
)
def test_a_salvaged_file_reads_its_good_lines_as_polars_does(text):
    """The same line reads the same whether or not another line of its file is broken."""
    spec = CsvSpec(null_values=["NA"])
    whole = read_table(text.encode(), "csv", spec)
    broken = text + "bv-ph,t9,7.9,pH,extra\n"
    salvaged = read_table(broken.encode(), "csv", spec)

    assert whole.refused.height == 0
    assert salvaged.frame.drop(FILE_ROW).rows() == whole.frame.rows()
    assert salvaged.frame.columns[:-1] == whole.frame.columns
    assert salvaged.frame[FILE_ROW].to_list() == list(range(1, whole.frame.height + 1))
    [(row, raw, reasons)] = salvaged.refused.rows()
    assert row == whole.frame.height + 1
    assert raw == '{"line": "bv-ph,t9,7.9,pH,extra"}'
    line = broken.count("\n")  # the broken line is the last
    assert reasons == [f"line {line} has 5 fields but the header has 4; quote fields that contain ','"]


def test_refused_lines_join_the_first_chunk_of_the_batch():
    refused = refused_lines([(2, "a\x00b", "line 3 is broken")])
    gate = GateResult(
        readings=pl.DataFrame(schema=READING_SCHEMA),
        quarantined=refused_lines([(3, "gate", "value is missing")]),
        validation={"rows_failed": 1},
    )
    first, second = with_refused_lines([gate, gate], refused)

    assert first.quarantined.rows() == [
        (2, '{"line": "a\ufffdb"}', ["line 3 is broken"]),
        (3, '{"line": "gate"}', ["value is missing"]),
    ]
    assert (first.validation, second) == ({"rows_failed": 1}, gate)
    [alone] = with_refused_lines([], refused)  # no row reached the gate: the refused lines still count
    assert (alone.rows_total, alone.quarantined.schema) == (1, pl.Schema(REFUSED_SCHEMA))
