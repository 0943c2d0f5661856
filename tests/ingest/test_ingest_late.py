"""Late data: readings that reach an aggregated bucket mark exactly it stale; the next run fixes it."""

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from tasks.analytics import compute_aggregates
from tasks.database import begin, read_frame
from tasks.ingest import ingest_municipality

RIVERTON = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-ph, parameter: ph}
      - {id: riverton-turbidity, parameter: turbidity}
      - {id: riverton-chlorine, parameter: free_chlorine}
"""
HEADER = "sensor_id,observed_at,value,unit\n"
DAY = date(2026, 11, 24)  # Chicago: 2026-11-24T06:00Z to 2026-11-25T06:00Z
DAY_START = datetime(2026, 11, 24, 6, tzinfo=UTC)
UTC_TIME = pl.Datetime("us", "UTC")
STALE_SCHEMA = {
    "sensor_id": pl.String,
    "resolution": pl.String,
    "bucket_start": UTC_TIME,
    "municipality_id": pl.String,
    "batch_id": pl.Int64,
}
AGGREGATE_SCHEMA = {
    "sensor_id": pl.String,
    "resolution": pl.String,
    "bucket_start": UTC_TIME,
    "count_readings": pl.Int64,
    "value_mean": pl.Float64,
    "computed_at": UTC_TIME,
}


def _put(home: Path, key: str, *rows: str) -> None:
    path = home / "inbox" / "riverton" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows) if rows else RIVERTON)


def _stale() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(
            conn,
            "select sensor_id, resolution, bucket_start, municipality_id, batch_id from stale_buckets "
            "order by sensor_id, resolution, bucket_start",
            {},
            STALE_SCHEMA,
        )


def _aggregates() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(
            conn,
            "select sensor_id, resolution, bucket_start, count_readings, value_mean, computed_at "
            "from aggregates order by sensor_id, resolution, bucket_start",
            {},
            AGGREGATE_SCHEMA,
        )


def _ingest_and_aggregate_a_day(home: Path) -> None:
    _put(home, "registry.yaml")
    _put(
        home,
        "readings/1.csv",
        "riverton-ph,2026-11-24T12:00:00Z,7.0,pH",
        "riverton-ph,2026-11-24T13:00:00Z,7.2,pH",
        "riverton-ph,2026-11-25T03:00:00Z,7.4,pH",  # 21:00 local: still the 24th in Chicago
        "riverton-turbidity,2026-11-24T12:00:00Z,0.4,FNU",
    )
    ingest_municipality.fn("riverton")
    compute_aggregates.fn("riverton", DAY)


def test_a_late_reading_marks_only_its_hour_and_local_day_stale(database, home):
    _ingest_and_aggregate_a_day(home)
    _put(
        home,
        "readings/2.csv",
        "riverton-ph,2026-11-25T03:30:00Z,7.8,pH",  # late: its hour and local day were aggregated
        "riverton-ph,2026-11-25T12:00:00Z,7.1,pH",  # a day not aggregated yet: not late
        "riverton-chlorine,2026-11-24T12:00:00Z,0.5,mg/L",  # a sensor with no aggregates: not late
    )

    figures = ingest_municipality.fn("riverton")

    batch = figures["details"]["batches"][1]
    assert (batch["rows_inserted"], batch["rows_late"], batch["buckets_marked_stale"]) == (3, 1, 2)
    assert_frame_equal(
        _stale(),
        pl.DataFrame(
            [
                ("riverton-ph", "day", DAY_START, "riverton", batch["batch_id"]),
                ("riverton-ph", "hour", datetime(2026, 11, 25, 3, tzinfo=UTC), "riverton",
                 batch["batch_id"]),
            ],
            schema=STALE_SCHEMA,
            orient="row",
        ),
    )


def test_the_next_aggregation_recomputes_only_the_stale_buckets_and_clears_them(database, home):
    _ingest_and_aggregate_a_day(home)
    before = _aggregates()
    _put(
        home,
        "readings/2.csv",
        "riverton-ph,2026-11-25T03:30:00Z,7.8,pH",  # late, new
        "riverton-turbidity,2026-11-24T12:00:00Z,0.6,FNU",  # late, revised
    )
    figures = ingest_municipality.fn("riverton")
    assert figures["details"]["batches"][1]["rows_late"] == 2
    assert _stale().height == 4

    result = compute_aggregates.fn("riverton", date(2026, 11, 25))

    assert result["details"]["stale_buckets_recomputed"] == 4
    assert _stale().is_empty()
    after = _aggregates().filter(pl.col("bucket_start") < datetime(2026, 11, 25, 6, tzinfo=UTC))
    changed = after.join(before, on=["sensor_id", "resolution", "bucket_start"], suffix="_before")
    recomputed = changed.filter(pl.col("computed_at") != pl.col("computed_at_before"))
    assert_frame_equal(
        recomputed.select("sensor_id", "resolution", "bucket_start", "count_readings", "value_mean")
        .sort("sensor_id", "resolution"),
        pl.DataFrame(
            [
                ("riverton-ph", "day", DAY_START, 4, (7.0 + 7.2 + 7.4 + 7.8) / 4),
                ("riverton-ph", "hour", datetime(2026, 11, 25, 3, tzinfo=UTC), 2, (7.4 + 7.8) / 2),
                ("riverton-turbidity", "day", DAY_START, 1, 0.6),
                ("riverton-turbidity", "hour", datetime(2026, 11, 24, 12, tzinfo=UTC), 1, 0.6),
            ],
            schema={k: v for k, v in AGGREGATE_SCHEMA.items() if k != "computed_at"},
            orient="row",
        ),
    )
    assert after.height == before.height  # no new buckets of the old day, none lost


def test_a_rerun_of_the_same_late_file_marks_nothing(database, home):
    _ingest_and_aggregate_a_day(home)
    _put(home, "readings/2.csv", "riverton-ph,2026-11-24T12:00:00Z,7.0,pH")  # same value again

    figures = ingest_municipality.fn("riverton")

    assert figures["details"]["batches"][1]["rows_late"] == 0
    assert _stale().is_empty()


def test_a_late_reading_in_an_hour_that_had_none_creates_its_bucket(database, home):
    _ingest_and_aggregate_a_day(home)
    gap_hour = datetime(2026, 11, 24, 20, tzinfo=UTC)  # the pH sensor sent nothing in this hour
    _put(home, "readings/2.csv", "riverton-ph,2026-11-24T20:15:00Z,7.6,pH")

    ingest_municipality.fn("riverton")

    marked = set(_stale().select("resolution", "bucket_start").rows())
    assert marked == {("day", DAY_START), ("hour", gap_hour)}
    compute_aggregates.fn("riverton", date(2026, 11, 25))
    hours = _aggregates().filter(pl.col("sensor_id") == "riverton-ph", pl.col("resolution") == "hour")
    assert hours.filter(pl.col("bucket_start") == gap_hour).select("count_readings", "value_mean").rows() == [
        (1, 7.6)
    ]
    day = _aggregates().filter(
        pl.col("sensor_id") == "riverton-ph",
        pl.col("resolution") == "day",
        pl.col("bucket_start") == DAY_START,
    )
    assert day["count_readings"].to_list() == [4]
