from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tasks.analytics.statistics import aggregate_readings
from tasks.calendar import local_day_bounds

SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "qc_flag": pl.Int16,
}


def _hourly(sensor: str, start: datetime, end: datetime, values=None) -> pl.DataFrame:
    times = pl.datetime_range(start, end, "1h", closed="left", time_zone="UTC", eager=True)
    values = values if values is not None else [float(i % 5) for i in range(times.len())]
    return pl.DataFrame(
        {"sensor_id": sensor, "observed_at": times, "value": values, "qc_flag": 1}, schema=SCHEMA
    )


def test_weeks_start_on_local_monday_and_months_on_the_local_first_across_a_clock_change():
    tz = "Europe/Berlin"
    start, end = local_day_bounds(date(2026, 3, 23), tz)[0], local_day_bounds(date(2026, 4, 6), tz)[0]

    out = aggregate_readings(_hourly("s1", start, end), tz, resolutions=("week", "month"))

    assert out.select("resolution", "bucket_start", "count_readings").rows() == [
        ("month", datetime(2026, 2, 28, 23, tzinfo=UTC), 215),  # 9 days of March less the lost hour
        ("month", datetime(2026, 3, 31, 22, tzinfo=UTC), 120),  # April starts at midnight CEST
        ("week", datetime(2026, 3, 22, 23, tzinfo=UTC), 167),  # Monday 23rd, 00:00 CET
        ("week", datetime(2026, 3, 29, 22, tzinfo=UTC), 168),  # Monday 30th, 00:00 CEST
    ]


def test_week_quantiles_come_from_the_readings_not_from_daily_figures():
    rng = np.random.default_rng(5)
    start = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
    values = rng.lognormal(0, 1, 7 * 24)
    readings = _hourly("s1", start, start + timedelta(days=7), list(values))

    out = aggregate_readings(readings, "UTC", resolutions=("day", "week"))

    week = out.filter(pl.col("resolution") == "week").row(0, named=True)
    assert week["value_median"] == pytest.approx(np.percentile(values, 50))
    assert week["value_p95"] == pytest.approx(np.percentile(values, 95))
    assert week["value_p99"] == pytest.approx(np.percentile(values, 99))
    medians = out.filter(pl.col("resolution") == "day")["value_median"].to_numpy()
    assert week["value_median"] != pytest.approx(np.median(medians))


def test_expected_count_and_coverage_follow_the_cadence_and_the_installation():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    readings = _hourly("s1", start + timedelta(hours=12), start + timedelta(days=1))
    missing = readings.with_columns(
        qc_flag=pl.when(pl.int_range(pl.len()) < 3).then(9).otherwise(1).cast(pl.Int16)
    )
    sensors = pl.DataFrame(
        {"sensor_id": ["s1"], "interval_seconds": [1800], "installed_at": [start + timedelta(hours=6)]}
    )

    out = aggregate_readings(missing, "UTC", sensors, resolutions=("day",)).row(0, named=True)

    # installed at 06:00, one reading per 30 min: 36 expected; 12 arrived, 3 of them flagged missing
    assert (out["count_readings"], out["count_excluded"], out["count_expected"]) == (12, 3, 36)
    assert out["coverage_pct"] == pytest.approx(100 * 9 / 36)


def test_unsorted_readings_give_the_same_buckets_as_sorted_ones():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    readings = pl.concat(
        [_hourly("b", start, start + timedelta(days=2)), _hourly("a", start, start + timedelta(days=2))]
    )

    shuffled = aggregate_readings(readings.sample(fraction=1.0, shuffle=True, seed=1), "America/New_York")

    assert shuffled.equals(aggregate_readings(readings.sort("sensor_id", "observed_at"), "America/New_York"))
    assert shuffled.filter(pl.col("resolution") == "day")["sensor_id"].to_list() == ["a"] * 3 + ["b"] * 3


def test_an_unknown_resolution_is_refused():
    with pytest.raises(ValueError, match="unknown resolution 'year'"):
        aggregate_readings(
            _hourly("s1", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)),
            "UTC",
            resolutions=("year",),
        )
