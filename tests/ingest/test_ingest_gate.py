"""The gate on frames alone: Polars prepares, GX judges, reasons read like sentences."""

import json
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.quality.expectations import ExpectationCrashed, _raise_if_crashed
from tasks.quality.gate import READING_SCHEMA, check_readings, json_text

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SENSORS = pl.DataFrame(
    {
        "sensor_id": ["m1-ph", "m1-turbidity", "m1-temperature"],
        "parameter": ["ph", "turbidity", "temperature"],
        "valid_min": [0.0, 0.0, None],
        "valid_max": [14.0, 50.0, None],
        "installed_at": [datetime(2024, 1, 1, tzinfo=UTC), None, None],
    }
)


def _check(raw: pl.DataFrame):
    return check_readings(raw, SENSORS, municipality_id="m1", now=NOW, clock_skew_seconds=300)


def _csv_rows(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["sensor_id", "observed_at", "value", "unit"], orient="row"
    ).cast(pl.String)


def test_every_failing_row_gets_every_reason_that_applies():
    raw = _csv_rows(
        ("m1-ph", "2026-11-25T00:00:00Z", "7.1", "pH"),
        ("m1-ph", "2026-11-25T00:01:00Z", "17.2", "pH"),
        ("other-ph", "2026-11-25T00:02:00Z", "7", "pH"),
        ("m1-ph", "25.11.2026 00:03", "7", "pH"),
        (None, "2026-11-25T00:04:00Z", "7", "pH"),
        ("m1-ph", "2099-01-01T00:00:00Z", "7", "mg/l"),
        ("m1-ph", "2020-01-01T00:00:00Z", "7", "pH"),
        ("m1-ph", "", "abc", None),
        ("m1-temperature", "2026-11-25T00:05:00+01:00", "-7.5", "°C"),
    )
    result = _check(raw)
    expected = pl.DataFrame(
        {
            "row_number": [2, 3, 4, 5, 6, 7, 8, 9],
            "reasons": [
                ["value 17.2 outside the sensor's valid range 0-14"],
                ["unknown sensor id 'other-ph' for municipality 'm1'"],
                ["observed_at '25.11.2026 00:03' is not an ISO-8601 time"],
                ["sensor_id is missing"],
                [
                    "unit 'mg/l' not accepted for ph (accepted: pH)",
                    "observed_at 2099-01-01T00:00:00Z is later than now plus the allowed clock "
                    "skew (300 s)",
                ],
                [
                    "observed_at 2020-01-01T00:00:00Z is before the sensor was installed "
                    "(2024-01-01T00:00:00Z)"
                ],
                ["observed_at is missing", "value 'abc' is not a number", "unit is missing"],
                ["value -7.5 outside the sensor's valid range -5 to 60"],
            ],
        }
    )
    assert_frame_equal(result.quarantined.select("row_number", "reasons"), expected)
    assert result.quarantined["raw"][0] == (
        '{"sensor_id":"m1-ph","observed_at":"2026-11-25T00:01:00Z","value":"17.2","unit":"pH"}'
    )
    assert result.quarantined["raw"][6] == (
        '{"sensor_id":"m1-ph","observed_at":"","value":"abc","unit":null}'
    )
    assert_frame_equal(
        result.readings,
        pl.DataFrame(
            {
                "sensor_id": ["m1-ph"],
                "observed_at": [datetime(2026, 11, 25, tzinfo=UTC)],
                "value": [7.1],
            },
            schema=READING_SCHEMA,
        ),
    )
    assert result.rows_total == 9
    assert result.validation["statistics"]["evaluated_expectations"] == 17


def test_duplicates_keep_the_first_copy_and_quarantine_the_later_ones():
    raw = _csv_rows(
        ("m1-ph", "2026-11-25T00:00:00Z", "7.0", "pH"),
        ("m1-ph", "2026-11-25T01:00:00+01:00", "7.5", "pH"),  # same instant, other offset
        ("m1-ph", "2026-11-25T00:01:00Z", "7.2", "pH"),
        ("m1-ph", "2026-11-25T00:00:00.000Z", "7.9", "pH"),
    )
    result = _check(raw)
    assert result.quarantined.select("row_number", "reasons").to_dicts() == [
        {"row_number": 2, "reasons": ["duplicate (sensor, time) in this file"]},
        {"row_number": 4, "reasons": ["duplicate (sensor, time) in this file"]},
    ]
    assert result.readings["value"].to_list() == [7.0, 7.2]


def test_alias_units_load_in_the_canonical_unit_and_parquet_types_are_read():
    raw = pl.DataFrame(
        {
            "sensor_id": ["m1-turbidity", "m1-temperature", "m1-ph"],
            "observed_at": [datetime(2026, 11, 25, 1, tzinfo=UTC)] * 3,
            "value": [0.4, 11.5, float("nan")],
            "unit": ["FNU", "°C", "pH"],
        }
    )
    result = _check(raw)
    assert_frame_equal(
        result.readings,
        pl.DataFrame(
            {
                "sensor_id": ["m1-turbidity", "m1-temperature"],
                "observed_at": [datetime(2026, 11, 25, 1, tzinfo=UTC)] * 2,
                "value": [0.4, 11.5],
            },
            schema=READING_SCHEMA,
        ),
    )
    assert result.quarantined.select("row_number", "reasons").to_dicts() == [
        {"row_number": 3, "reasons": ["value 'NaN' is not a number"]},
    ]
    assert result.quarantined["raw"][0] == (
        '{"sensor_id":"m1-ph","observed_at":"2026-11-25T01:00:00+00:00","value":null,"unit":"pH"}'
    )


def test_naive_parquet_timestamps_are_read_in_the_source_timezone_like_text_without_offset():
    raw = pl.DataFrame(
        {
            "sensor_id": ["m1-ph", "m1-ph"],
            "observed_at": [datetime(2026, 11, 25, 1), datetime(2026, 11, 25, 2)],
            "value": [7.0, 7.1],
            "unit": ["pH", "pH"],
        }
    )
    text = raw.with_columns(pl.col("observed_at").dt.strftime("%Y-%m-%dT%H:%M:%S"))
    for frame in (raw, text):
        result = check_readings(
            frame,
            SENSORS,
            municipality_id="m1",
            now=NOW,
            clock_skew_seconds=300,
            timezone="America/Chicago",
        )
        assert result.quarantined.is_empty()
        assert result.readings["observed_at"].to_list() == [
            datetime(2026, 11, 25, 7, tzinfo=UTC),
            datetime(2026, 11, 25, 8, tzinfo=UTC),
        ]


def test_extra_columns_are_kept_in_the_raw_row_even_one_named_row_number():
    raw = _csv_rows(("m1-ph", "2026-11-25T00:00:00Z", "70", "pH")).with_columns(
        row_number=pl.lit("A7"), note=pl.lit("probe rinsed")
    )
    result = _check(raw)
    assert result.quarantined.rows() == [
        (
            1,
            '{"sensor_id":"m1-ph","observed_at":"2026-11-25T00:00:00Z","value":"70","unit":"pH",'
            '"row_number":"A7","note":"probe rinsed"}',
            ["value 70 outside the sensor's valid range 0-14"],
        )
    ]


def test_a_clean_file_quarantines_nothing():
    raw = _csv_rows(*[("m1-ph", f"2026-11-25T00:{m:02d}:00Z", "7.0", "pH") for m in range(60)])
    result = _check(raw)
    assert result.quarantined.height == 0
    assert result.readings.height == 60
    assert result.validation["statistics"]["success_percent"] == 100.0


def test_a_crashed_expectation_raises_instead_of_passing_rows():
    with pytest.raises(ExpectationCrashed, match="boom"):
        _raise_if_crashed(
            "expect_x",
            {"metric": {"raised_exception": True, "exception_message": "boom\nTraceback..."}},
        )
    _raise_if_crashed("expect_x", {"raised_exception": False, "exception_message": None})


def test_json_text_encodes_lists_and_escapes_quotes():
    frame = pl.DataFrame({"reasons": [["a", 'b "c"'], []]})
    assert frame.select(json_text(pl.col("reasons"))).to_series().to_list() == [
        '["a","b \\"c\\""]',
        "[]",
    ]


def test_json_text_keeps_multibyte_text_whole():
    frame = pl.DataFrame({"unit": ["µS/cm"], "site": ["Zürich-Süd"]})
    encoded = frame.select(json_text(pl.struct("unit", "site"))).item()
    assert json.loads(encoded) == {"unit": "µS/cm", "site": "Zürich-Süd"}
