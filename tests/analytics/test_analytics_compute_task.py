from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from tasks.analytics import compute_aggregates
from tasks.calendar import local_day_bounds
from tasks.database import begin, read_frame

DAY = date(2026, 3, 8)  # clocks go forward in Chicago: a 23-hour day

STORED = """
select municipality_id, sensor_id, resolution, bucket_start, count_readings, count_excluded,
       value_mean, value_min, value_max, value_std, computed_at
from aggregates order by municipality_id, sensor_id, resolution, bucket_start
"""
SCHEMA = {
    "bucket_start": pl.Datetime("us", "UTC"),
    "computed_at": pl.Datetime("us", "UTC"),
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
}


def _day_of_readings(sensor_id: str, tz: str, value: float, step_minutes: int = 10):
    start, end = local_day_bounds(DAY, tz)
    n = int((end - start) / timedelta(minutes=step_minutes))
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [start + timedelta(minutes=step_minutes * i) for i in range(n)],
            "value": [value + (i % 3) * 0.1 for i in range(n)],
        }
    )


def _stored() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(conn, STORED, {}, SCHEMA)


def test_aggregates_are_upserted_once_and_a_rerun_changes_nothing(database, seed):
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", "America/Chicago", {"rv-ph": "ph"})
        seed.readings(conn, "riverton", batch, _day_of_readings("rv-ph", "America/Chicago", 7.0))

    first = compute_aggregates.fn("riverton", DAY)
    stored = _stored()
    again = compute_aggregates.fn("riverton", DAY)

    assert first["rows"] == 23 * 6
    # 23 hours, the day, and the week it ends (a Sunday: Monday 2 to Sunday 8 March)
    assert first["details"]["buckets"] == 25 and first["details"]["buckets_written"] == 25
    assert first["details"]["periods_ended"] == ["week 2026-03-02"]
    assert first["details"]["hours_in_day"] == 23
    assert again["details"]["buckets_written"] == 0
    assert_frame_equal(_stored(), stored)
    day_row = stored.filter(pl.col("resolution") == "day").row(0, named=True)
    assert day_row["bucket_start"] == datetime(2026, 3, 8, 6, tzinfo=UTC)  # midnight CST
    assert day_row["count_readings"] == 138


def test_a_rerun_with_a_new_reading_rewrites_only_its_hour_day_and_the_week_the_day_ends(database, seed):
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", "UTC", {"rv-ph": "ph"})
        seed.readings(conn, "riverton", batch, _day_of_readings("rv-ph", "UTC", 7.0))
    compute_aggregates.fn("riverton", DAY)
    before = _stored()
    with begin() as conn:
        late = pl.DataFrame(
            {
                "sensor_id": ["rv-ph"],
                "value": [9.0],
                "observed_at": [datetime(2026, 3, 8, 5, 5, tzinfo=UTC)],
            }
        )
        seed.readings(conn, "riverton", batch, late)

    result = compute_aggregates.fn("riverton", DAY)

    after = _stored()
    changed = after.join(before, on=["sensor_id", "resolution", "bucket_start"], suffix="_before")
    changed = changed.filter(pl.col("count_readings") != pl.col("count_readings_before"))
    assert result["details"]["buckets_written"] == 3
    assert changed.select("resolution", "bucket_start", "count_readings").rows() == [
        ("day", datetime(2026, 3, 8, tzinfo=UTC), 145),
        ("hour", datetime(2026, 3, 8, 5, tzinfo=UTC), 7),
        ("week", datetime(2026, 3, 2, tzinfo=UTC), 145),  # only the 8th has readings
    ]


def test_another_municipalitys_readings_never_enter_these_aggregates(database, seed):
    with begin() as conn:
        ours = seed.municipality(conn, "riverton", "UTC", {"rv-ph": "ph"})
        theirs = seed.municipality(conn, "lakeside", "UTC", {"ls-ph": "ph"})
        seed.readings(conn, "riverton", ours, _day_of_readings("rv-ph", "UTC", 7.0))
        seed.readings(conn, "lakeside", theirs, _day_of_readings("ls-ph", "UTC", 8.0))

    result = compute_aggregates.fn("riverton", DAY)

    stored = _stored()
    assert result["rows"] == 144
    assert stored.select("municipality_id", "sensor_id").unique().rows() == [("riverton", "rv-ph")]
    assert stored.filter(pl.col("resolution") == "day")["value_mean"].round(6).to_list() == [7.1]
