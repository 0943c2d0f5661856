"""The gate with units and local times: pint-converted columns, UTC instants, DST gaps and folds."""

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.quality.gate import READING_SCHEMA, check_readings

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SENSORS = pl.DataFrame(
    {
        "sensor_id": ["s-temp", "s-cond", "s-lead", "s-cu", "s-turb", "s-no3", "s-ph"],
        "parameter": ["temperature", "conductivity", "lead", "copper", "turbidity", "nitrate", "ph"],
        "valid_min": [None] * 7,
        "valid_max": [None] * 7,
        "installed_at": [None] * 7,
    },
    schema_overrides={
        "valid_min": pl.Float64,
        "valid_max": pl.Float64,
        "installed_at": pl.Datetime("us", "UTC"),
    },
)


def _check(rows: list[tuple], timezone: str = "UTC"):
    raw = pl.DataFrame(rows, schema=["sensor_id", "observed_at", "value", "unit"], orient="row")
    return check_readings(
        raw.cast(pl.String),
        SENSORS,
        municipality_id="m1",
        now=NOW,
        clock_skew_seconds=300,
        timezone=timezone,
    )


def _reasons(result) -> list[dict]:
    return result.quarantined.select("row_number", "reasons").to_dicts()


def test_values_load_in_the_canonical_unit_of_their_parameter():
    t = "2026-11-25T00:00:00Z"
    result = _check(
        [
            ("s-temp", t, "68", "°F"),
            ("s-cond", t, "0.5", "mS/cm"),
            ("s-cond", "2026-11-25T00:01:00Z", "0.05", "S/m"),
            ("s-lead", t, "0.012", "mg/L"),
            ("s-cu", t, "1300", "μg/L"),
            ("s-turb", t, "0.7", "FNU"),
            ("s-no3", t, "10", "mg/L as N"),
            ("s-ph", t, "7.2", "pH"),
        ]
    )
    assert result.quarantined.is_empty()
    values = dict(zip(result.readings["sensor_id"], result.readings["value"], strict=False))
    assert result.readings["value"].to_list()[1:3] == pytest.approx([500.0, 500.0])
    assert values["s-temp"] == pytest.approx(20.0)
    assert values["s-lead"] == pytest.approx(12.0)
    assert values["s-cu"] == pytest.approx(1.3)
    assert values["s-turb"] == 0.7
    assert values["s-no3"] == pytest.approx(44.27, rel=1e-3)
    assert values["s-ph"] == 7.2


def test_a_unit_outside_the_accepted_set_is_quarantined_with_the_accepted_ones():
    result = _check([("s-cond", "2026-11-25T00:00:00Z", "50", "mS/m")])
    assert result.readings.is_empty()
    assert _reasons(result) == [
        {
            "row_number": 1,
            "reasons": [
                "unit 'mS/m' not accepted for conductivity (accepted: uS/cm, µS/cm, μS/cm, mS/cm, S/m)"
            ],
        }
    ]


def test_the_range_check_judges_the_converted_value():
    result = _check([("s-temp", "2026-11-25T00:00:00Z", "150", "degF")])  # 65.6 °C > 60
    assert _reasons(result) == [
        {"row_number": 1, "reasons": ["value 65.55555556 outside the sensor's valid range -5 to 60"]}
    ]


@pytest.mark.parametrize(
    ("timezone", "local", "utc"),
    [
        ("Europe/Berlin", "2026-01-15T08:00:00", datetime(2026, 1, 15, 7, tzinfo=UTC)),
        ("Europe/Berlin", "2026-07-15 08:00:00", datetime(2026, 7, 15, 6, tzinfo=UTC)),
        ("Europe/Berlin", "2026-03-29T03:30", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("America/Chicago", "2026-01-15T08:00:00", datetime(2026, 1, 15, 14, tzinfo=UTC)),
        ("America/Chicago", "2026-07-15T08:00:00.250", datetime(2026, 7, 15, 13, 0, 0, 250000, tzinfo=UTC)),
        ("UTC", "2026-07-15T08:00:00", datetime(2026, 7, 15, 8, tzinfo=UTC)),
    ],
)
def test_a_naive_time_is_read_in_the_source_timezone(timezone, local, utc):
    result = _check([("s-ph", local, "7", "pH")], timezone)
    assert result.quarantined.is_empty()
    assert result.readings["observed_at"].to_list() == [utc]


def test_times_with_an_offset_are_exact_whatever_the_source_timezone():
    result = _check(
        [
            ("s-ph", "2026-03-29T02:30:00+01:00", "7.0", "pH"),  # in Berlin's gap, but with an offset
            ("s-ph", "2026-10-25T02:30:00+02:00", "7.1", "pH"),  # first pass of Berlin's fold
            ("s-ph", "2026-10-25T02:30:00+01:00", "7.2", "pH"),  # second pass
            ("s-ph", "2026-11-25T00:00:00Z", "7.3", "pH"),
        ],
        "Europe/Berlin",
    )
    assert result.quarantined.is_empty()
    assert_frame_equal(
        result.readings,
        pl.DataFrame(
            {
                "sensor_id": ["s-ph"] * 4,
                "observed_at": [
                    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
                    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
                    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
                    datetime(2026, 11, 25, 0, 0, tzinfo=UTC),
                ],
                "value": [7.0, 7.1, 7.2, 7.3],
            },
            schema=READING_SCHEMA,
        ),
    )


def test_a_local_time_in_the_spring_forward_gap_is_quarantined_not_shifted():
    result = _check(
        [("s-ph", "2026-03-29T02:30", "7", "pH"), ("s-ph", "2026-03-08T02:15:30", "7", "pH")],
        "Europe/Berlin",
    )
    berlin = _reasons(result)
    assert berlin[0] == {
        "row_number": 1,
        "reasons": ["local time 2026-03-29T02:30 does not exist in Europe/Berlin (daylight-saving gap)"],
    }
    # 2026-03-08 02:15 exists in Berlin (its gap is on 29 March) and loads.
    assert len(berlin) == 1 and result.readings.height == 1

    chicago = _check([("s-ph", "2026-03-08T02:15:30", "7", "pH")], "America/Chicago")
    assert chicago.readings.is_empty()
    assert _reasons(chicago) == [
        {
            "row_number": 1,
            "reasons": [
                "local time 2026-03-08T02:15:30 does not exist in America/Chicago (daylight-saving gap)"
            ],
        }
    ]


def test_a_local_time_in_the_fall_back_fold_is_quarantined_as_ambiguous():
    result = _check(
        [("s-ph", "2026-10-25T02:30:00", "7", "pH"), ("s-ph", "2026-10-25T03:30:00", "7", "pH")],
        "Europe/Berlin",
    )
    assert _reasons(result) == [
        {
            "row_number": 1,
            "reasons": [
                "local time 2026-10-25T02:30 is ambiguous in Europe/Berlin (daylight-saving fold); "
                "send it with its UTC offset"
            ],
        }
    ]
    assert result.readings["observed_at"].to_list() == [datetime(2026, 10, 25, 2, 30, tzinfo=UTC)]


def test_nan_and_infinities_are_quarantined_with_a_reason_not_loaded():
    result = _check(
        [
            ("s-ph", "2026-11-25T00:00:00Z", "NaN", "pH"),
            ("s-ph", "2026-11-25T00:01:00Z", "inf", "pH"),
            ("s-ph", "2026-11-25T00:02:00Z", "-Infinity", "pH"),
            ("s-ph", "2026-11-25T00:03:00Z", "7", "pH"),
        ]
    )
    assert _reasons(result) == [
        {"row_number": 1, "reasons": ["value 'NaN' is not a number"]},
        {"row_number": 2, "reasons": ["value 'inf' is infinite"]},
        {"row_number": 3, "reasons": ["value '-Infinity' is infinite"]},
    ]
    assert result.readings["value"].to_list() == [7.0]


def test_parquet_nan_and_infinity_are_quarantined_too():
    raw = pl.DataFrame(
        {
            "sensor_id": ["s-ph"] * 3,
            "observed_at": [datetime(2026, 11, 25, m, tzinfo=UTC) for m in range(3)],
            "value": [float("nan"), float("inf"), 7.0],
            "unit": ["pH"] * 3,
        }
    )
    result = check_readings(raw, SENSORS, municipality_id="m1", now=NOW, clock_skew_seconds=0)
    assert [r["reasons"] for r in _reasons(result)] == [
        ["value 'NaN' is not a number"],
        ["value 'inf' is infinite"],
    ]
    assert result.readings["value"].to_list() == [7.0]
