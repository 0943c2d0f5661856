from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.analytics.backfill import backfill_aggregates, backfill_periods, insight_months
from tasks.calendar import local_day_bounds
from tasks.database import begin, read_frame

STORED = """
select sensor_id, resolution, bucket_start, count_readings, count_expected, value_median, computed_at
from aggregates order by sensor_id, resolution, bucket_start
"""
SCHEMA = {"bucket_start": pl.Datetime("us", "UTC"), "computed_at": pl.Datetime("us", "UTC")}
NOW = datetime(2026, 4, 15, 12, tzinfo=UTC)


def _stored() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(conn, STORED, {}, SCHEMA)


def test_backfill_periods_are_the_weeks_and_months_over_that_overlap_the_range():
    periods = backfill_periods(date(2026, 3, 30), date(2026, 4, 2), today=date(2026, 4, 8))

    # the week of Monday 30 March is over on the 6th; April is not over on the 8th
    assert periods == [("week", date(2026, 3, 30)), ("month", date(2026, 3, 1))]


def test_a_range_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="ends .* before it starts"):
        backfill_periods(date(2026, 4, 2), date(2026, 4, 1), today=date(2026, 4, 8))


def test_backfill_writes_every_resolution_and_a_rerun_writes_nothing(database, seed):
    tz = "America/Chicago"
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", tz, {"rv-ph": "ph"}, interval_seconds=3600)
        start, end = local_day_bounds(date(2026, 3, 2), tz)[0], local_day_bounds(date(2026, 3, 9), tz)[0]
        hours = int((end - start) / timedelta(hours=1))  # 167: the 8th loses an hour
        times = [start + timedelta(hours=i) for i in range(hours)]
        frame = pl.DataFrame(
            {"sensor_id": "rv-ph", "observed_at": times, "value": [7.0 + i % 2 for i in range(hours)]}
        )
        seed.readings(conn, "riverton", batch, frame)

    first = backfill_aggregates.fn("riverton", date(2026, 3, 2), date(2026, 3, 8), now=NOW)
    stored = _stored()
    again = backfill_aggregates.fn("riverton", date(2026, 3, 2), date(2026, 3, 8), now=NOW)

    assert first["details"]["periods"] == ["week 2026-03-02", "month 2026-03-01"]
    assert again["details"]["buckets_written"] == 0
    assert_frame_equal(_stored(), stored)
    week = stored.filter(pl.col("resolution") == "week").row(0, named=True)
    assert week["bucket_start"] == datetime(2026, 3, 2, 6, tzinfo=UTC)  # Monday midnight CST
    assert (week["count_readings"], week["count_expected"], week["value_median"]) == (167, 167, 7.0)
    month = stored.filter(pl.col("resolution") == "month").row(0, named=True)
    # March 2026 in Chicago lasts 31 days less the lost hour: 743 hourly readings expected
    assert (month["count_readings"], month["count_expected"]) == (167, 743)


def test_insight_months_are_those_the_periods_end_in_and_the_next_when_over():
    periods = [("week", date(2026, 3, 30)), ("month", date(2026, 3, 1))]

    # the week ends on 5 April, so April's insights compare with it; May is not over on 15 May
    assert insight_months(periods, today=date(2026, 5, 15)) == [date(2026, 3, 1), date(2026, 4, 1)]
    assert insight_months(periods, today=date(2026, 4, 15)) == [date(2026, 3, 1)]


def test_backfill_recomputes_the_insights_of_the_months_it_changes(database, seed):
    tz = "America/Chicago"
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", tz, {"rv-turb": "turbidity"}, interval_seconds=3600)
        start, end = local_day_bounds(date(2026, 3, 2), tz)[0], local_day_bounds(date(2026, 3, 16), tz)[0]
        second_week = local_day_bounds(date(2026, 3, 9), tz)[0]
        times = pl.datetime_range(start, end, "1h", closed="left", time_zone="UTC", eager=True)
        frame = pl.DataFrame({"sensor_id": "rv-turb", "observed_at": times}).with_columns(
            value=pl.when(pl.col("observed_at") < second_week).then(0.2).otherwise(0.4)
        )
        seed.readings(conn, "riverton", batch, frame)

    first = backfill_aggregates.fn("riverton", date(2026, 3, 2), date(2026, 3, 15), now=NOW)
    again = backfill_aggregates.fn("riverton", date(2026, 3, 2), date(2026, 3, 15), now=NOW)

    with begin() as conn:
        query = "select kind, period_start, sentence from insights"
        insights = read_frame(conn, query, {}, {"period_start": pl.Date})
    assert first["details"]["insights_written"] == 1 and again["details"]["insights_written"] == 0
    assert insights.select("kind", "period_start").rows() == [("week_on_week", date(2026, 3, 9))]
    assert insights["sentence"][0].startswith("Turbidity at Plant rose 100 % week on week")
