"""The pure pieces of the QC stage: how far it reads, how it chunks, how it counts."""

from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from tasks.quality.qc import QcConfig, qc_flags
from tasks.quality.qc_stage import (
    count_by_test,
    in_period,
    parameter_table,
    qc_reach,
    sensor_batches,
    tally_flags,
    tally_tests,
)

CONFIG = QcConfig.model_validate(
    {
        "version": "t-1",
        "defaults": {"expected_interval_seconds": 60, "gross_range": {}, "gap": {"max_intervals": 5}},
        "parameters": {
            "ph": {
                "spike": {"suspect": 0.3, "fail": 1.0},
                "flat_line": {"suspect_minutes": 60, "fail_minutes": 240},
                "attenuated": {"window_minutes": 120, "suspect_below": 0.003},
            },
            "temperature": {
                "flat_line": {"suspect_minutes": 120},
                "attenuated": {"window_minutes": 300, "suspect_below": 0.01},
            },
            "lead": {"gap": None},
        },
        "sensors": {"ph-slow": {"expected_interval_seconds": 600}},
    }
)
SENSORS = pl.DataFrame(
    {
        "sensor_id": ["ph-1", "ph-slow", "temp-1", "lead-1"],
        "parameter": ["ph", "ph", "temperature", "lead"],
    }
)


def test_qc_reads_back_the_longest_window_plus_the_gap_limit_and_ahead_the_gap_limit():
    reach = qc_reach(SENSORS, CONFIG)

    expected = pl.DataFrame(
        {
            "sensor_id": ["ph-1", "ph-slow", "temp-1", "lead-1"],
            "lookback": [
                timedelta(minutes=240 + 5),  # flat line fails after 4 h; the gap limit is 5 x 1 min
                timedelta(minutes=240 + 50),  # a 10-minute sensor: a 50-minute gap limit
                timedelta(minutes=300 + 5),  # the attenuated window is the longest
                timedelta(hours=1),  # no window, no gap test: the neighbour reach
            ],
            "lookahead": [
                timedelta(minutes=5),
                timedelta(minutes=50),
                timedelta(minutes=5),
                timedelta(hours=1),
            ],
        }
    )
    assert_frame_equal(reach, expected, check_dtypes=False)


def test_sensors_are_batched_whole_in_id_order():
    sizes = pl.DataFrame({"sensor_id": ["c", "a", "b", "d"], "count_readings": [1440, 1440, 3000, 10]})

    assert sensor_batches(sizes, 2000) == [["a", "b"], ["c", "d"]]
    assert sensor_batches(sizes, 10_000) == [["a", "b", "c", "d"]]
    assert sensor_batches(sizes.head(0), 10) == []


def test_only_the_period_is_kept_and_flags_are_counted_per_parameter_and_test():
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    times = [t0 + timedelta(minutes=m) for m in range(-2, 6)]
    readings = pl.DataFrame(
        {
            "sensor_id": "ph-1",
            "observed_at": times,
            "value": [7.0, 7.05, 7.0, 9.0, 7.0, 7.05, None, 15.0],
        },
        schema_overrides={"observed_at": pl.Datetime("us", "UTC")},
    )
    flagged = in_period(qc_flags(readings, SENSORS, CONFIG), t0, t0 + timedelta(minutes=5))

    assert flagged["observed_at"].to_list() == times[2:7]
    assert flagged["qc_flag"].to_list() == [1, 4, 1, 1, 9]
    flags = tally_flags(flagged, SENSORS)
    assert parameter_table(flags) == [
        {
            "parameter": "ph",
            "readings": 5,
            "good": 3,
            "not evaluated": 0,
            "suspect": 0,
            "fail": 1,
            "missing": 1,
            "excluded": 2,
        }
    ]
    per_test = count_by_test(tally_tests(flagged))
    assert per_test["spike"] == {"1": 3, "4": 1, "9": 1}
    assert per_test["climatology"] == {"2": 4, "9": 1}
