from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from tasks.reports.data import canonical_json, content_sha256
from tasks.reports.summary import (
    AGGREGATE_SCHEMA,
    READING_SCHEMA,
    SENSOR_SCHEMA,
    sensor_day_summary,
)

START = datetime(2026, 11, 25, tzinfo=UTC)

SENSORS = pl.DataFrame(
    [
        ("s-cond", "plant", "conductivity", "uS/cm", "online", 3600, 1),
        ("s-lead", "plant", "lead", "ug/L", "lab", None, 1),
        ("s-old", "plant", "ph", "pH", "online", 3600, 0),
        ("s-ph", "plant", "ph", "pH", "online", 3600, 1),
    ],
    schema=SENSOR_SCHEMA,
    orient="row",
)


def test_sensor_summary_prefers_daily_aggregates_and_measures_coverage():
    readings = pl.DataFrame(
        [("s-ph", START + timedelta(hours=h), 7.0 + h / 10, 1) for h in range(12)]
        + [("s-ph", START + timedelta(hours=12), 13.0, 4), ("s-ph", START, None, 9)]
        + [("s-cond", START + timedelta(hours=h), 500.0, 1) for h in range(24)],
        schema=READING_SCHEMA,
        orient="row",
    )
    aggregates = pl.DataFrame(
        [("s-cond", 24, 0, 480.0, 400.0, 510.0, 12.5)], schema=AGGREGATE_SCHEMA, orient="row"
    )

    summary = sensor_day_summary(SENSORS, readings, aggregates, window_seconds=86_400)

    expected = pl.DataFrame(
        {
            "sensor_id": ["s-cond", "s-lead", "s-ph"],
            "station_id": ["plant"] * 3,
            "parameter": ["conductivity", "lead", "ph"],
            "unit": ["uS/cm", "ug/L", "pH"],
            "kind": ["online", "lab", "online"],
            "count_readings": [24, 0, 14],  # every reading, as in the aggregates; 2 excluded
            "count_excluded": [0, 0, 2],
            "value_mean": [480.0, None, 7.55],
            "value_min": [400.0, None, 7.0],
            "value_max": [510.0, None, 8.1],
            "value_std": [12.5, None, 0.360555],
            "count_received": [24, 0, 13],
            "count_expected": [24, None, 24],
            "coverage_pct": [100.0, None, 54.2],
            "source": ["aggregates", "none", "readings"],
        }
    )
    assert_frame_equal(summary, expected, check_dtypes=False)


def test_content_hash_is_the_same_for_the_same_data_in_any_key_order():
    content = {"period": {"day": date(2026, 11, 25)}, "figures": {"b": 1, "a": 2.5}}
    reordered = {"figures": {"a": 2.5, "b": 1}, "period": {"day": date(2026, 11, 25)}}
    assert content_sha256(content) == content_sha256(reordered)
    assert canonical_json(content) == '{"figures":{"a":2.5,"b":1},"period":{"day":"2026-11-25"}}'
    assert content_sha256(content) != content_sha256({**content, "figures": {"a": 2.5, "b": 2}})


def test_the_exclusion_note_names_the_count_and_the_sensors_most_first():
    from tasks.reports.render import exclusion_note

    sensors = [
        {"sensor_id": "s-ph", "parameter": "ph", "count_excluded": 2},
        {"sensor_id": "s-cond", "parameter": "conductivity", "count_excluded": 0},
        {"sensor_id": "s-turb", "parameter": "turbidity", "count_excluded": 1_200},
    ]
    content = {"figures": {"readings_observed": 40_000, "readings_excluded": 1_202}, "sensors": sensors}

    assert exclusion_note(content) == (
        "Quality control (QARTOD) excluded 1,202 of the 40,000 readings of this day from every statistic"
        " and compliance judgement, as failed (flag 4) or missing (flag 9): s-turb (turbidity): 1,200;"
        " s-ph (ph): 2."
    )
    assert exclusion_note(content, most=1).endswith("s-turb (turbidity): 1,200; and 1 more sensor.")
    none = {"figures": {"readings_observed": 48, "readings_excluded": 0}, "sensors": sensors[1:2]}
    assert exclusion_note(none) == "Quality control (QARTOD) excluded none of the 48 readings of this day."
