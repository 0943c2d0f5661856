from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from tasks.analytics import hourly_and_daily_aggregates
from tasks.analytics.aggregates import AGGREGATE_SCHEMA
from tasks.analytics.changes import rows_to_write
from tasks.calendar import local_day_bounds


def _every(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += step
    return out


def _readings(times: list[datetime], values: list[float], flags: list[int] | None = None):
    return pl.DataFrame(
        {
            "sensor_id": "ph-1",
            "observed_at": times,
            "value": values,
            "qc_flag": flags or [1] * len(times),
        },
        schema={
            "sensor_id": pl.String,
            "observed_at": pl.Datetime("us", "UTC"),
            "value": pl.Float64,
            "qc_flag": pl.Int16,
        },
    ).lazy()


def test_autumn_change_day_has_25_hourly_buckets_and_starts_at_local_midnight():
    start, end = local_day_bounds(date(2026, 11, 1), "America/New_York")
    times = _every(start, end, timedelta(minutes=30))

    out = hourly_and_daily_aggregates(_readings(times, [7.0] * len(times)), "America/New_York")

    hours = out.filter(pl.col("resolution") == "hour")
    assert hours.height == 25
    assert hours["count_readings"].to_list() == [2] * 25
    # 01:00 local happens twice: 05:00 UTC (EDT) and 06:00 UTC (EST), two buckets.
    assert hours["bucket_start"][1:3].to_list() == [
        datetime(2026, 11, 1, 5, tzinfo=UTC),
        datetime(2026, 11, 1, 6, tzinfo=UTC),
    ]
    expected_day = pl.DataFrame(
        {
            "sensor_id": ["ph-1"],
            "resolution": ["day"],
            "bucket_start": [datetime(2026, 11, 1, 4, tzinfo=UTC)],
            "count_readings": [50],
            "count_excluded": [0],
            "count_expected": [None],
            "coverage_pct": [None],
            "value_mean": [7.0],
            "value_min": [7.0],
            "value_max": [7.0],
            "value_std": [0.0],
            "value_median": [7.0],
            "value_p95": [7.0],
            "value_p99": [7.0],
        },
        schema=AGGREGATE_SCHEMA,
    )
    assert_frame_equal(out.filter(pl.col("resolution") == "day"), expected_day)


def test_spring_change_day_has_23_hourly_buckets():
    start, end = local_day_bounds(date(2026, 3, 29), "Europe/Paris")
    times = _every(start, end, timedelta(minutes=15))

    out = hourly_and_daily_aggregates(_readings(times, [1.0] * len(times)), "Europe/Paris")

    assert out.filter(pl.col("resolution") == "hour").height == 23
    day = out.filter(pl.col("resolution") == "day").row(0, named=True)
    assert day["bucket_start"] == datetime(2026, 3, 28, 23, tzinfo=UTC)  # local midnight, CET
    assert day["count_readings"] == 92


def test_half_hour_zone_buckets_start_on_the_local_hour():
    times = [datetime(2026, 5, 1, 18, 40, tzinfo=UTC), datetime(2026, 5, 1, 19, 20, tzinfo=UTC)]

    out = hourly_and_daily_aggregates(_readings(times, [1.0, 3.0]), "Asia/Kolkata")

    # 00:10 and 00:50 IST share the hour starting 00:00 IST = 18:30 UTC.
    assert out.select("resolution", "bucket_start", "count_readings").rows() == [
        ("day", datetime(2026, 5, 1, 18, 30, tzinfo=UTC), 2),
        ("hour", datetime(2026, 5, 1, 18, 30, tzinfo=UTC), 2),
    ]


def test_failed_and_missing_readings_are_counted_but_not_averaged():
    t0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
    times = [t0 + timedelta(minutes=m) for m in range(5)]
    values = [1.0, 3.0, 100.0, float("nan"), 5.0]
    flags = [1, 3, 4, 9, 2]

    out = hourly_and_daily_aggregates(_readings(times, values, flags), "UTC")

    expected = pl.DataFrame(
        {
            "sensor_id": ["ph-1", "ph-1"],
            "resolution": ["day", "hour"],
            "bucket_start": [datetime(2026, 5, 1, tzinfo=UTC), t0],
            "count_readings": [5, 5],
            "count_excluded": [2, 2],
            "count_expected": [None, None],
            "coverage_pct": [None, None],
            "value_mean": [3.0, 3.0],
            "value_min": [1.0, 1.0],
            "value_max": [5.0, 5.0],
            "value_std": [2.0, 2.0],
            "value_median": [3.0, 3.0],
            # usable 1, 3, 5: position 0.95 * 2 = 1.9 lies between 3 and 5
            "value_p95": [4.8, 4.8],
            "value_p99": [4.96, 4.96],
        },
        schema=AGGREGATE_SCHEMA,
    )
    assert_frame_equal(out, expected)


def test_a_bucket_of_only_failed_readings_has_counts_and_no_statistics():
    t0 = datetime(2026, 5, 1, 10, tzinfo=UTC)

    out = hourly_and_daily_aggregates(_readings([t0], [9.0], [4]), "UTC")

    assert out.select("count_readings", "count_excluded", "value_mean", "value_std").rows() == [
        (1, 1, None, None),
        (1, 1, None, None),
    ]


def test_only_new_or_changed_rows_are_written_again():
    stored = pl.DataFrame({"k": ["a", "b", "c"], "x": [1.0, 2.0, None], "n": [1, 2, 3]})
    fresh = pl.DataFrame(
        {"k": ["a", "b", "c", "d"], "x": [1.0 + 1e-13, 2.5, None, 4.0], "n": [1, 2, 4, 5]}
    )

    changed = rows_to_write(fresh, stored, ["k"], ["x", "n"])

    assert changed["k"].to_list() == ["b", "c", "d"]
