"""Exports against real databases (SQLite and PostgreSQL): rows, filters, formats, the archive, the
CLI, and never another municipality's data."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, date, datetime

import polars as pl
import pytest
from pypdf import PdfReader
from sqlalchemy import text
from typer.testing import CliRunner

from flows.cli_exports import exports_app
from tasks.analytics.aggregates import compute_aggregates
from tasks.database import begin, begin_snapshot
from tasks.exports.export import run_export
from tasks.exports.request import KINDS, make_request, utc_window
from tasks.exports.sources import sensor_data_chunks


def _csv(result: dict) -> pl.DataFrame:
    return pl.read_csv(result["location"], infer_schema_length=0)


def test_sensor_data_csv_has_every_reading_with_its_qc_flag(towns, tmp_path):
    result = run_export(make_request("sensor_data", "a", "2026-04-02", None, "csv"), str(tmp_path) + "/")
    frame = _csv(result)
    assert result["rows"] == frame.height == 144 + 144  # the flow sensor's 145th reading is the next day
    assert frame.columns == [
        "station_id",
        "sensor_id",
        "parameter",
        "unit",
        "observed_at",
        "value",
        "qc_flag",
        "qc_status",
    ]
    assert frame.row(0) == ("a-plant", "a-flow", "flow", "m3/h", "2026-04-01T22:00:00Z", "30.0", "1", "good")
    ph = frame.filter(pl.col("sensor_id") == "a-ph")
    assert ph.row(0) == ("a-plant", "a-ph", "ph", "pH", "2026-04-01T22:00:00Z", "7.25", "4", "fail")
    assert ph["qc_status"].value_counts().sort("qc_status").rows() == [("fail", 15), ("good", 129)]


def test_qc_status_filter_keeps_only_those_readings(towns, tmp_path):
    request = make_request("sensor_data", "a", "2026-04-02", None, "csv", parameter="ph", status="fail")
    frame = _csv(run_export(request, str(tmp_path / "fail.csv")))
    assert frame["qc_status"].unique().to_list() == ["fail"]
    assert frame.height == 15


@pytest.mark.parametrize("kind", [*KINDS, "bulk"])
def test_no_export_holds_another_municipalitys_data(towns, tmp_path, kind):
    fmt = "json"
    result = run_export(make_request(kind, "a", "2026-04-01", "2026-04-03", fmt), str(tmp_path) + "/")
    if kind == "bulk":
        with zipfile.ZipFile(result["location"]) as zf:
            # PDFs by their text, as a reader sees them: their bytes hold random ids and hashes
            text = "".join(
                "".join(page.extract_text() for page in PdfReader(io.BytesIO(zf.read(name))).pages)
                if name.endswith(".pdf")
                else zf.read(name).decode("utf-8")
                for name in zf.namelist()
            )
    else:
        text = open(result["location"], encoding="utf-8").read()
    # B's sensor ids as JSON strings, and its readings' values as JSON numbers (timestamps such
    # as 10:04:59.997 must not count)
    assert '"b-' not in text and '"b"' not in text and not re.search(r"\bb-(ph|flow|plant)\b", text)
    assert not re.search(r"[:\[,]\s*(999(\.0+)?|9\.99)\s*[,}\]]", text)


@pytest.mark.parametrize("option", [("sensor", "b-ph"), ("station", "b-plant")])
def test_a_sensor_or_station_of_another_municipality_is_refused(towns, tmp_path, option):
    name, value = option
    out = tmp_path / "out"
    out.mkdir()
    for kind in ("sensor_data", "alerts", "incidents", "bulk"):
        request = make_request(kind, "a", "2026-04-02", None, "csv", **{name: value})
        with pytest.raises(ValueError, match=f"municipality 'a' has no {name} '{value}'"):
            run_export(request, str(out))
    assert list(out.iterdir()) == []


def test_water_usage_is_the_integrated_flow_per_local_day(towns, tmp_path):
    frame = _csv(run_export(make_request("water_usage", "a", "2026-04-02", None, "csv"), str(tmp_path) + "/"))
    # 30 m3/h over the whole Berlin day (144 ten-minute intervals) = 720 m3
    assert frame.rows() == [("2026-04-02", "a-plant", "Plant", "720.0", "1", "144", "24.0")]


def test_incident_csv_and_xlsx_neutralise_a_formula_and_the_pdf_is_readable(towns, tmp_path):
    csv = _csv(run_export(make_request("incidents", "a", "2026-04-02", None, "csv"), str(tmp_path) + "/"))
    assert csv["summary"].to_list() == ["'=cmd|' /C calc'!A0 at a"]
    pdf = run_export(make_request("incidents", "a", "2026-04-02", None, "pdf"), str(tmp_path) + "/")
    text = "".join(page.extract_text() for page in PdfReader(pdf["location"]).pages)
    assert "Incidents of a" in text and "limit" not in text.split("Incidents of a")[0]
    assert "=cmd" in text and "a-ph" in text and "b-ph" not in text


def test_bulk_is_one_zip_of_every_kind_two_pdfs_and_a_manifest(towns, tmp_path):
    result = run_export(make_request("bulk", "a", "2026-04-02", None, "parquet"), str(tmp_path) + "/")
    with zipfile.ZipFile(result["location"]) as zf:
        names = sorted(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        readings = pl.read_parquet(io.BytesIO(zf.read("a_sensor_data_2026-04-02_2026-04-02.parquet")))
    assert names == sorted(
        ["manifest.json"]
        + [make_request(kind, "a", "2026-04-02", None, "parquet").file_name() for kind in KINDS]
        + ["a_incidents_2026-04-02_2026-04-02.pdf", "a_system_health_2026-04-02_2026-04-02.pdf"]
    )
    assert manifest["rows"]["a_sensor_data_2026-04-02_2026-04-02.parquet"] == readings.height == 288
    assert manifest["rows"]["a_audit_log_2026-04-02_2026-04-02.parquet"] == 1


def test_export_to_object_storage_by_default(towns):
    result = run_export(make_request("audit_log", "a", "2026-04-02", None, "jsonl"))
    assert result["location"].startswith("file://")
    assert result["location"].endswith("exports/a/audit_log/a_audit_log_2026-04-02_2026-04-02.jsonl")


def test_cli_writes_the_file_and_says_where(towns, tmp_path):
    out = tmp_path / "alerts.csv"
    runner = CliRunner()
    done = runner.invoke(
        exports_app, ["alerts", "-m", "a", "--from", "2026-04-02", "--severity", "high", "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert "wrote 1 rows of alerts" in done.output
    assert _csv({"location": out})["sensor_id"].to_list() == ["a-ph"]


def test_cli_bad_input_is_one_sentence(towns):
    runner = CliRunner()
    done = runner.invoke(exports_app, ["sensor-data", "-m", "nowhere", "--from", "2026-04-02"])
    assert done.exit_code == 1
    assert done.output.strip() == "error: unknown municipality 'nowhere'"
    done = runner.invoke(exports_app, ["sensor-data", "-m", "a", "--from", "2026-04-02", "--sensor", "b-ph"])
    assert done.output.strip() == "error: municipality 'a' has no sensor 'b-ph'"


def test_an_export_reads_one_snapshot_whatever_commits_while_it_runs(towns, seed):
    request = make_request("sensor_data", "a", "2026-04-02", None, "csv")
    late = pl.DataFrame(
        {"sensor_id": ["a-ph", "a-flow"], "observed_at": [datetime(2026, 4, 1, 22, 5, tzinfo=UTC)] * 2},
        schema_overrides={"observed_at": pl.Datetime("us", "UTC")},
    ).with_columns(value=pl.lit(1.0))
    with begin_snapshot() as conn:
        start, end = utc_window(request.from_day, request.to_day, "Europe/Berlin")
        chunks = sensor_data_chunks(conn, request, start, end, "Europe/Berlin")
        first = next(chunks)  # the export has begun reading
        with begin() as other:  # a late batch lands for both sensors while it runs
            batch_id = other.execute(text("select max(id) from ingest_batches")).scalar_one()
            assert seed.readings(other, "a", batch_id, late) == 2
        rest = list(chunks)

    assert first.height + sum(chunk.height for chunk in rest) == 144 + 144
    assert run_export(request, None)["rows"] == 144 + 144 + 2


def test_aggregates_have_their_local_start_and_a_moving_average_filled_from_earlier_buckets(towns, tmp_path):
    for town in ("a", "b"):
        for day in (date(2026, 4, 2), date(2026, 4, 3)):
            compute_aggregates.fn(town, day)

    hours = _csv(
        run_export(
            make_request("aggregates", "a", "2026-04-02", None, "csv", resolution="hour", window=3),
            str(tmp_path) + "/",
        )
    )
    days = _csv(run_export(make_request("aggregates", "a", "2026-04-02", None, "csv"), str(tmp_path) + "/"))
    next_day = _csv(
        run_export(
            make_request("aggregates", "a", "2026-04-03", None, "csv", resolution="hour", window=3),
            str(tmp_path) + "/",
        )
    )

    ph = hours.filter(pl.col("sensor_id") == "a-ph")
    assert ph.height == 24 and set(hours["sensor_id"]) == {"a-ph", "a-flow"}
    assert ph.row(0, named=True) == {
        "station_id": "a-plant",
        "sensor_id": "a-ph",
        "parameter": "ph",
        "unit": "pH",
        "resolution": "hour",
        "bucket_start": "2026-04-01T22:00:00Z",
        "bucket_start_local": "2026-04-02T00:00:00+02:00",
        "count_readings": "6",
        "count_excluded": "1",  # the readings flagged 4 (every tenth) are counted, not averaged
        "count_expected": "6",
        "coverage_pct": "100.0",
        "value_mean": "7.25",
        "value_min": "7.25",
        "value_max": "7.25",
        "value_std": "0.0",
        "value_median": "7.25",
        "value_p95": "7.25",
        "value_p99": "7.25",
        "moving_average": None,
        "moving_average_points": "3",
        "change_pct": None,  # hours are not compared
        "change_pct_year_on_year": None,
    }
    assert ph["moving_average"].to_list()[:3] == [None, None, "7.25"]  # 3 points from the third hour
    day = days.filter(pl.col("sensor_id") == "a-ph")
    assert day.select("count_readings", "count_excluded", "moving_average", "change_pct").rows() == [
        ("144", "15", None, None)  # no day before to compare with
    ]
    later = _csv(run_export(make_request("aggregates", "a", "2026-04-03", None, "csv"), str(tmp_path) + "/"))
    assert later.select("sensor_id", "change_pct").rows() == [("a-flow", "0.0")]  # 30 m3/h both days
    # the 00:00 hour of 3 April averages the two hours before it, read from the day before
    flow = next_day.filter(pl.col("sensor_id") == "a-flow")
    assert flow.select("bucket_start_local", "moving_average").rows() == [
        ("2026-04-03T00:00:00+02:00", "30.0")
    ]
    assert not any("b-" in text for text in (*hours["sensor_id"], *days["sensor_id"], *next_day["sensor_id"]))

    out = tmp_path / "hours.csv"
    options = ["--from", "2026-04-02", "--resolution", "hour", "--window", "2", "-o", str(out)]
    done = CliRunner().invoke(exports_app, ["aggregates", "-m", "a", *options])
    assert done.exit_code == 0, done.output
    assert "wrote 48 rows of aggregates" in done.output
    assert _csv({"location": out})["moving_average_points"].unique().to_list() == ["2"]


def test_resolution_and_window_apply_to_aggregates_only():
    with pytest.raises(ValueError, match="apply to aggregates, not to sensor_data"):
        make_request("sensor_data", "a", "2026-04-02", None, "csv", window=5)
    with pytest.raises(ValueError, match="unknown resolution 'minute'"):
        make_request("aggregates", "a", "2026-04-02", None, "csv", resolution="minute")
    with pytest.raises(ValueError, match="window is 1 to 1000 points, not 0"):
        make_request("aggregates", "a", "2026-04-02", None, "csv", window=0)
