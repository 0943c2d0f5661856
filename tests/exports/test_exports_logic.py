"""Exports' pure logic: requests, formula neutralising, writers, water volumes, uptime and health."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.exports.aggregates import with_changes
from tasks.exports.health import health_days, local_days, sensor_uptime
from tasks.exports.request import make_request
from tasks.exports.usage import sensor_daily_volumes
from tasks.exports.writers import EXCEL_MAX_ROWS, CsvWriter, JsonWriter, ParquetWriter, XlsxWriter

UTC_TIME = pl.Datetime("us", "UTC")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("readings", "a", "2026-01-01", None, "csv"), "unknown export kind 'readings'"),
        (("sensor_data", "a", "2026-01-01", None, "pdf"), "PDF is made for incidents and system_health only"),
        (("sensor_data", "a", "2026-01-02", "2026-01-01", "csv"), "the last day 2026-01-01 is before"),
        (("sensor_data", "a", "01/02/2026", None, "csv"), "--from '01/02/2026' is not a date"),
        (("sensor_data", "", "2026-01-01", None, "csv"), "an export needs a municipality"),
        (("audit_log", "a", "2026-01-01", None, "docx"), "unknown format 'docx'"),
    ],
)
def test_bad_request_is_one_sentence(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_request(*args)


def test_filter_that_does_not_apply_to_the_kind_is_refused():
    with pytest.raises(ValueError, match="the filter severity does not apply to sensor_data"):
        make_request("sensor_data", "a", "2026-01-01", None, severity="HIGH")


def test_bulk_keeps_each_status_for_the_kind_it_belongs_to():
    request = make_request("bulk", "a", "2026-01-01", "2026-01-31", status=["open", "fail"], severity="high")
    assert request.for_kind("incidents").status == ("open",)
    assert request.for_kind("sensor_data").status == ("fail",)
    assert request.for_kind("sensor_data").severity == ()
    assert request.for_kind("alerts").severity == ("HIGH",)
    assert request.for_kind("audit_log").filters() == {}


def test_comma_separated_and_repeated_filters_are_one_list():
    request = make_request("alerts", "a", "2026-01-01", None, sensor=["s1,s2", "s3"], severity="low")
    assert request.sensor == ("s1", "s2", "s3")
    assert request.severity == ("LOW",)


SCHEMA = {"sensor_id": pl.String, "observed_at": UTC_TIME, "value": pl.Float64}
DANGEROUS = pl.DataFrame(
    {
        "sensor_id": ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tcmd", "\rcmd", "plain", "a=b"],
        "observed_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 8,
        "value": [-1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    },
    schema=SCHEMA,
)


def test_csv_neutralises_formulas_and_keeps_numbers(tmp_path):
    writer = CsvWriter(tmp_path / "out.csv", SCHEMA, "t")
    writer.write(DANGEROUS)
    assert writer.close() == 8
    back = pl.read_csv(tmp_path / "out.csv", schema_overrides={"observed_at": pl.String})
    assert back["sensor_id"].to_list() == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tcmd",
        "'\rcmd",
        "plain",
        "a=b",
    ]
    assert back["value"].to_list() == [-1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert back["observed_at"][0] == "2026-01-01T00:00:00Z"


def _sheets(path) -> dict[str, str]:
    with zipfile.ZipFile(path) as zf:
        names = re.findall(r'<sheet name="([^"]+)"', zf.read("xl/workbook.xml").decode())
        return {name: zf.read(f"xl/worksheets/sheet{k + 1}.xml").decode() for k, name in enumerate(names)}


def test_xlsx_splits_sheets_at_the_row_limit_and_writes_no_formula(tmp_path):
    writer = XlsxWriter(tmp_path / "out.xlsx", SCHEMA, "sensor_data", max_rows=4)
    writer.write(DANGEROUS.head(5))
    writer.write(DANGEROUS.tail(3))
    assert writer.close() == 8
    sheets = _sheets(tmp_path / "out.xlsx")
    assert list(sheets) == ["sensor_data", "sensor_data 2", "sensor_data 3"]
    # a header and three data rows per sheet: 3 + 3 + 2 rows of data
    assert [xml.count("<row ") for xml in sheets.values()] == [4, 4, 3]
    assert not any("<f>" in xml for xml in sheets.values())
    assert "'=HYPERLINK" in sheets["sensor_data"]


def test_excel_limit_is_excels():
    assert EXCEL_MAX_ROWS == 2**20


def test_json_is_one_array_over_chunks_and_parquet_keeps_types(tmp_path):
    writer = JsonWriter(tmp_path / "out.json", SCHEMA, "t")
    writer.write(DANGEROUS.head(3))
    writer.write(DANGEROUS.tail(5))
    writer.close()
    rows = json.loads((tmp_path / "out.json").read_text())
    assert [r["sensor_id"] for r in rows] == DANGEROUS["sensor_id"].to_list()  # JSON is not neutralised
    empty = JsonWriter(tmp_path / "empty.json", SCHEMA, "t")
    empty.close()
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    parquet = ParquetWriter(tmp_path / "out.parquet", SCHEMA, "t")
    parquet.write(DANGEROUS.head(3))
    parquet.write(DANGEROUS.tail(5))
    parquet.close()
    assert_frame_equal(pl.read_parquet(tmp_path / "out.parquet"), DANGEROUS)


def _flow(start: datetime, minutes: int, every: int, rate) -> pl.DataFrame:  # noqa: ANN001
    times = [start + timedelta(minutes=every * k) for k in range(minutes // every + 1)]
    return pl.DataFrame(
        {"observed_at": times, "value": [rate(t) for t in times]},
        schema={"observed_at": UTC_TIME, "value": pl.Float64},
    )


def test_constant_flow_gives_rate_times_hours_of_each_local_day_dst_included():
    # Berlin, 2026-03-29 has 23 hours. 60 m3/h for three whole local days, a reading every 10 minutes.
    start = datetime(2026, 3, 27, 23, tzinfo=UTC)  # 2026-03-28 00:00 in Berlin (UTC+1)
    readings = _flow(start, 3 * 24 * 60 - 60, 10, lambda t: 60.0)  # to 2026-03-31 00:00 Berlin (UTC+2)
    volumes = sensor_daily_volumes(
        readings, "Europe/Berlin", timedelta(minutes=30), readings["observed_at"].max()
    )
    volumes = volumes.sort("day")
    assert volumes["day"].to_list() == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert volumes["volume_m3"].round(6).to_list() == [24 * 60.0, 23 * 60.0, 24 * 60.0]
    assert volumes["readings"].to_list() == [144, 138, 144]  # the last, at midnight, only ends an interval


def test_interval_across_midnight_is_split_at_the_interpolated_rate():
    # 0 m3/h at 23:00 UTC rising linearly to 20 m3/h at 01:00 UTC: 10 m3/h at midnight.
    readings = pl.DataFrame(
        {
            "observed_at": [datetime(2026, 1, 1, 23, tzinfo=UTC), datetime(2026, 1, 2, 1, tzinfo=UTC)],
            "value": [0.0, 20.0],
        },
        schema={"observed_at": UTC_TIME, "value": pl.Float64},
    )
    volumes = sensor_daily_volumes(
        readings, "UTC", timedelta(hours=3), datetime(2026, 1, 3, tzinfo=UTC)
    ).sort("day")
    # day 1: (0 + 10) / 2 x 1 h = 5 m3; day 2: (10 + 20) / 2 x 1 h = 15 m3
    assert volumes["volume_m3"].to_list() == [5.0, 15.0]
    assert volumes["seconds_measured"].to_list() == [3600.0, 3600.0]


def test_gap_longer_than_allowed_is_not_bridged():
    readings = pl.DataFrame(
        {
            "observed_at": [datetime(2026, 1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 5, tzinfo=UTC)],
            "value": [10.0, 10.0],
        },
        schema={"observed_at": UTC_TIME, "value": pl.Float64},
    )
    volumes = sensor_daily_volumes(readings, "UTC", timedelta(hours=1), datetime(2026, 1, 2, tzinfo=UTC))
    assert volumes.rows() == [(date(2026, 1, 1), 0.0, 0.0, 2)]


def test_uptime_is_coverage_of_the_local_day_at_the_sensor_cadence():
    days = local_days(date(2026, 3, 28), date(2026, 3, 29), "Europe/Berlin")  # 24 h and 23 h
    sensors = pl.DataFrame(
        {
            "sensor_id": ["s1", "lab"],
            "station_id": ["p", "p"],
            "parameter": ["ph", "lead"],
            "kind": ["online", "lab"],
            "interval_seconds": [600, None],
            "is_active": [1, 1],
        },
        schema_overrides={"interval_seconds": pl.Int64, "is_active": pl.Int8},
    )
    counts = pl.DataFrame(
        {"sensor_id": ["s1"], "day": [date(2026, 3, 29)], "count_readings": [69], "count_excluded": [3]},
        schema_overrides={"count_readings": pl.Int64, "count_excluded": pl.Int64},
    )
    uptime = sensor_uptime(days, sensors, counts)
    assert uptime.rows() == [
        (date(2026, 3, 28), "p", "s1", "ph", 144, 0, 0, 0.0),
        (date(2026, 3, 29), "p", "s1", "ph", 138, 69, 3, 50.0),
    ]


def test_health_counts_each_thing_on_its_local_day():
    days = local_days(date(2026, 1, 1), date(2026, 1, 2), "America/New_York")
    at = datetime(2026, 1, 2, 3, tzinfo=UTC)  # still 2026-01-01 in New York
    batches = pl.DataFrame(
        {
            "started_at": [at, at],
            "status": ["loaded", "failed"],
            "rows_total": [10, 5],
            "rows_loaded": [9, 0],
            "rows_quarantined": [1, 5],
        },
        schema_overrides={"started_at": UTC_TIME},
    )
    quarantine = pl.DataFrame(
        {"created_at": [at] * 3, "is_released": [0, 1, 0]}, schema_overrides={"created_at": UTC_TIME}
    )
    qc_runs = pl.DataFrame(
        {"day": [date(2026, 1, 2)], "count_readings": [100], "count_suspect": [2], "count_fail": [1]}
    )
    uptime = pl.DataFrame(
        {"day": [date(2026, 1, 1)] * 2, "count_readings": [144, 0], "uptime_pct": [100.0, 0.0]}
    )
    deliveries = pl.DataFrame(
        {"created_at": [at] * 4, "status": ["succeeded", "succeeded", "succeeded", "dead"]},
        schema_overrides={"created_at": UTC_TIME},
    )
    health = health_days(days, "America/New_York", batches, quarantine, qc_runs, uptime, deliveries)
    assert health.rows() == [
        (date(2026, 1, 1), 2, 1, 15, 9, 6, 2, 0, 0, 0, 2, 1, 50.0, 4, 3, 1, 75.0),
        (date(2026, 1, 2), 0, 0, 0, 0, 0, 0, 1, 2, 1, 0, 0, None, 0, 0, 0, None),
    ]


def test_aggregates_compare_a_month_with_the_month_before_and_a_year_before():
    starts = [datetime(2025, 1, 1), datetime(2025, 12, 1), datetime(2026, 1, 1), datetime(2026, 3, 1)]
    local = pl.Series(starts).dt.replace_time_zone("Europe/Berlin")
    months = pl.DataFrame(
        {
            "sensor_id": "s1",
            "resolution": "month",
            "bucket_start": local.dt.convert_time_zone("UTC"),
            "value_mean": [4.0, 8.0, 6.0, 3.0],
        }
    )

    out = with_changes(months, "month", "Europe/Berlin")

    assert out.select("change_pct", "change_pct_year_on_year").rows() == [
        (None, None),
        (None, None),  # November 2025 is missing
        (-25.0, 50.0),  # January 2026: from December's 8, and from January 2025's 4
        (None, None),  # February 2026 is missing, and March 2025
    ]
