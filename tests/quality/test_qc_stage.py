"""The QC stage on real databases: flags stored with provenance, reruns, tenancy, and exclusion."""

from datetime import date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import update

from tasks.analytics import compute_aggregates
from tasks.calendar import local_day_bounds
from tasks.database import begin, bulk_insert, read_frame
from tasks.models import Reading
from tasks.quality import flag_readings
from tasks.quality.qc import load_qc_config

DAY = date(2026, 3, 10)
TZ = "Europe/Berlin"
START, END = local_day_bounds(DAY, TZ)
UTC_TIME = pl.Datetime("us", "UTC")
SENSORS = ("rv-ph-1", "rv-ph-2", "rv-ph-3", "rv-ph-4")

READINGS = "select sensor_id, observed_at, value, qc_flag from readings order by sensor_id, observed_at"
READINGS_QC = """
select sensor_id, observed_at, qc_run_id, qc_gross_range, qc_climatology, qc_spike, qc_rate_of_change,
       qc_flat_line, qc_gap, qc_attenuated, qc_tests
from readings_qc order by sensor_id, observed_at
"""
QC_RUNS = """
select id, municipality_id, day, window_start, window_end, config_version, config_sha256, count_readings,
       count_good, count_not_evaluated, count_suspect, count_fail, count_missing, computed_at
from qc_runs order by id
"""
SCHEMA = {
    "observed_at": UTC_TIME,
    "window_start": UTC_TIME,
    "window_end": UTC_TIME,
    "computed_at": UTC_TIME,
    "day": pl.Date,
    "qc_flag": pl.Int64,
}


def _minutes(first: datetime, last: datetime) -> list[datetime]:
    return [first + timedelta(minutes=i) for i in range(int((last - first) / timedelta(minutes=1)))]


def _signal(sensor_id: str, times: list[datetime]) -> pl.DataFrame:
    """A healthy pH signal (7.0, 7.05, 7.0, ...: it moves every minute, never fast, never flat)."""
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": times,
            "value": [7.05 if t.minute % 2 else 7.0 for t in times],
        },
        schema={"sensor_id": pl.String, "observed_at": UTC_TIME, "value": pl.Float64},
    )


def _at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def _set(frame: pl.DataFrame, first: datetime, last: datetime, value: float) -> pl.DataFrame:
    """`frame` with `value` on the readings of [first, last)."""
    inside = pl.col("observed_at").is_between(first, last, closed="left")
    return frame.with_columns(value=pl.when(inside).then(value).otherwise(pl.col("value")))


def _day_with_faults() -> pl.DataFrame:
    """Riverton's readings from 8 hours before the day to an hour after it: a spike on rv-ph-1 at
    10:00, a stuck rv-ph-2 from 12:00 to 17:00, a 30-minute gap on rv-ph-3 before 08:30, and a
    stuck rv-ph-4 from 21:00 the day before until 01:30 (only the lookback shows how long)."""
    times = _minutes(_at(-8), _at(25))
    spike = _set(_signal("rv-ph-1", times), _at(10), _at(10) + timedelta(minutes=1), 9.0)
    stuck = _set(_signal("rv-ph-2", times), _at(12), _at(17), 7.1)
    gap = _signal("rv-ph-3", times).filter(~pl.col("observed_at").is_between(_at(8), _at(8.5), closed="left"))
    stuck_overnight = _set(_signal("rv-ph-4", times), _at(-3), _at(1.5), 7.1)
    return pl.concat([spike, stuck, gap, stuck_overnight])


@pytest.fixture
def towns(database, seed):
    """Riverton (Berlin) with the faulty day; Lindenfeld (Chicago) with a spike of its own."""
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", TZ, dict.fromkeys(SENSORS, "ph"), interval_seconds=60)
        rows = _day_with_faults().with_columns(
            municipality_id=pl.lit("riverton"), qc_flag=pl.lit(2), batch_id=pl.lit(batch)
        )
        bulk_insert(conn, "readings", rows)
        other = seed.municipality(conn, "lindenfeld", "America/Chicago", {"ld-ph": "ph"}, interval_seconds=60)
        times = _minutes(_at(-8), _at(25))
        spike = _set(_signal("ld-ph", times), _at(10), _at(10) + timedelta(minutes=1), 9.0)
        bulk_insert(
            conn,
            "readings",
            spike.with_columns(
                municipality_id=pl.lit("lindenfeld"), qc_flag=pl.lit(2), batch_id=pl.lit(other)
            ),
        )
    return database


def _read(sql: str) -> pl.DataFrame:
    with begin() as conn:
        frame = read_frame(conn, sql, {}, None)
    return frame.with_columns(
        pl.col(c).str.to_datetime(time_zone="UTC", time_unit="us")
        if frame.schema[c] == pl.String
        else pl.col(c)
        for c in ("observed_at", "window_start", "window_end", "computed_at")
        if c in frame.columns
    ).cast({k: v for k, v in SCHEMA.items() if k in frame.columns and k != "day"})


def _flags(sensor_id: str, flag: int, frame: pl.DataFrame | None = None) -> list[datetime]:
    frame = _read(READINGS) if frame is None else frame
    return frame.filter((pl.col("sensor_id") == sensor_id) & (pl.col("qc_flag") == flag))[
        "observed_at"
    ].to_list()


def test_a_faulty_day_gets_its_flags_stored_with_each_test_and_the_run(towns):
    result = flag_readings.fn("riverton", DAY, late=0)

    readings = _read(READINGS).filter(pl.col("sensor_id").is_in(SENSORS))
    day = readings.filter(pl.col("observed_at").is_between(START, END, closed="left"))
    outside = readings.filter(~pl.col("observed_at").is_between(START, END, closed="left"))
    assert _flags("rv-ph-1", 4, day) == [_at(10)]  # the spike fails...
    assert _flags("rv-ph-1", 3, day) == [_at(10) + timedelta(minutes=1)]  # ...the fall after it is fast
    # stuck from 12:00: suspect after an hour, failed after four, good again when it moves
    assert _flags("rv-ph-2", 4, day) == _minutes(_at(16), _at(17))
    assert _flags("rv-ph-2", 3, day) == _minutes(_at(13), _at(16))
    assert _flags("rv-ph-3", 3, day) == [_at(8.5)]  # the reading after the gap
    assert _flags("rv-ph-3", 4, day) == []
    # stuck since 21:00 the day before: four hours reached at 01:00, seen only through the lookback
    assert _flags("rv-ph-4", 4, day) == _minutes(_at(1), _at(1.5))
    assert set(day["qc_flag"].unique()) == {1, 3, 4}
    assert outside["qc_flag"].unique().to_list() == [2]  # the lookback and lookahead are read, not stored

    qc = _read(READINGS_QC)
    assert qc.height == day.height
    assert qc.select("sensor_id", "observed_at").equals(day.select("sensor_id", "observed_at"))
    spike = qc.filter((pl.col("sensor_id") == "rv-ph-1") & (pl.col("observed_at") == _at(10))).row(
        0, named=True
    )
    assert (spike["qc_spike"], spike["qc_rate_of_change"], spike["qc_gross_range"], spike["qc_tests"]) == (
        4,
        3,
        1,
        "spike",
    )
    stuck = qc.filter((pl.col("sensor_id") == "rv-ph-2") & (pl.col("observed_at") == _at(16.5))).row(
        0, named=True
    )
    assert (stuck["qc_flat_line"], stuck["qc_attenuated"], stuck["qc_tests"]) == (4, 3, "flat_line")
    gap = qc.filter((pl.col("sensor_id") == "rv-ph-3") & (pl.col("observed_at") == _at(8.5))).row(
        0, named=True
    )
    assert (gap["qc_gap"], gap["qc_tests"]) == (3, "gap")

    runs = _read(QC_RUNS)
    config = load_qc_config()
    assert runs.height == 1
    run = runs.row(0, named=True)
    assert qc["qc_run_id"].unique().to_list() == [run["id"]]
    assert (run["municipality_id"], run["config_version"], run["config_sha256"]) == (
        "riverton",
        config.version,
        config.digest,
    )
    assert (run["window_start"], run["window_end"]) == (START, END)
    fails = 1 + 60 + 30
    suspects = day.filter(pl.col("qc_flag") == 3).height
    assert (run["count_readings"], run["count_fail"], run["count_suspect"], run["count_missing"]) == (
        day.height,
        fails,
        suspects,
        0,
    )
    assert run["count_good"] == day.height - fails - suspects
    assert result["rows"] == day.height
    assert result["details"]["readings_fail"] == fails
    assert result["details"]["readings_excluded"] == fails
    assert result["details"]["fail_by_test"] == {
        "gross_range": 0,
        "climatology": 0,
        "spike": 1,
        "rate_of_change": 0,
        "flat_line": 90,
        "gap": 0,
        "attenuated": 0,
    }
    assert result["details"]["excluded_by_parameter"] == {"ph": fails}


def test_a_rerun_gives_the_same_flags_and_writes_nothing(towns):
    first = flag_readings.fn("riverton", DAY, chunk_readings=1000, late=0)  # one sensor at a time
    stored = [_read(READINGS), _read(READINGS_QC), _read(QC_RUNS)]

    again = flag_readings.fn("riverton", DAY, late=0)  # all sensors at once

    assert first["details"]["sensor_chunks"] == 4 and again["details"]["sensor_chunks"] == 1
    assert (
        first["details"]["readings_flag_changed"] == first["details"]["readings_qc_written"] == first["rows"]
    )
    assert (again["details"]["readings_flag_changed"], again["details"]["readings_qc_written"]) == (0, 0)
    varying = ("sensor_chunks", "readings_flag_changed", "readings_qc_written")
    assert {k: v for k, v in again["details"].items() if k not in varying} == {
        k: v for k, v in first["details"].items() if k not in varying
    }
    for before, after in zip(stored, [_read(READINGS), _read(READINGS_QC), _read(QC_RUNS)], strict=True):
        assert_frame_equal(after, before)


def test_a_changed_configuration_is_a_new_run_that_the_flags_point_to(towns, monkeypatch):
    flag_readings.fn("riverton", DAY, late=0)
    config = load_qc_config()
    lenient = config.model_copy(
        update={
            "version": "lenient-1",
            "parameters": {**config.parameters, "ph": {**config.parameters["ph"], "flat_line": None}},
        }
    )
    monkeypatch.setattr("tasks.quality.qc_stage.load_qc_config", lambda: lenient)

    flag_readings.fn("riverton", DAY, late=0)

    runs = _read(QC_RUNS)
    assert runs["config_version"].to_list() == [config.version, "lenient-1"]
    assert runs["config_sha256"].n_unique() == 2
    qc = _read(READINGS_QC)
    assert qc["qc_run_id"].unique().to_list() == [runs["id"][1]]
    assert qc["qc_flat_line"].unique().to_list() == [2]
    assert _flags("rv-ph-2", 4) == []  # no flat-line test: the stuck run is only attenuated (3)
    assert _flags("rv-ph-1", 4) == [_at(10)]


def test_another_municipality_is_untouched(towns):
    flag_readings.fn("riverton", DAY, late=0)

    readings = _read(READINGS)
    assert readings.filter(pl.col("sensor_id") == "ld-ph")["qc_flag"].unique().to_list() == [2]
    assert _read(READINGS_QC).filter(pl.col("sensor_id") == "ld-ph").height == 0
    assert _read(QC_RUNS)["municipality_id"].to_list() == ["riverton"]

    result = flag_readings.fn("lindenfeld", DAY, late=0)

    chicago_start, chicago_end = local_day_bounds(DAY, "America/Chicago")
    ld = _read(READINGS).filter(pl.col("sensor_id") == "ld-ph")
    stored = ld.filter(pl.col("observed_at").is_between(chicago_start, chicago_end, closed="left"))
    assert result["rows"] == stored.height
    assert _flags("ld-ph", 4) == [_at(10)]
    assert (
        _read(READINGS)
        .filter(pl.col("sensor_id") != "ld-ph")
        .equals(readings.filter(pl.col("sensor_id") != "ld-ph"))
    )


def test_failed_readings_are_excluded_and_counted_by_the_aggregates(towns):
    flag_readings.fn("riverton", DAY, late=0)

    result = compute_aggregates.fn("riverton", DAY)

    with begin() as conn:
        aggregates = read_frame(
            conn,
            "select sensor_id, resolution, bucket_start, count_readings, count_excluded, value_max"
            " from aggregates order by sensor_id, resolution, bucket_start",
            {},
            {"bucket_start": UTC_TIME},
        )
    days = aggregates.filter(pl.col("resolution") == "day")
    assert dict(days.select("sensor_id", "count_excluded").iter_rows()) == {
        "rv-ph-1": 1,
        "rv-ph-2": 60,
        "rv-ph-3": 0,
        "rv-ph-4": 30,
    }
    spike_hour = aggregates.filter(
        (pl.col("sensor_id") == "rv-ph-1")
        & (pl.col("resolution") == "hour")
        & (pl.col("bucket_start") == _at(10))
    ).row(0, named=True)
    assert (spike_hour["count_readings"], spike_hour["count_excluded"], spike_hour["value_max"]) == (
        60,
        1,
        7.05,
    )
    assert result["details"]["readings_excluded"] == 91


def test_qc_show_explains_a_flag_with_each_test_its_settings_and_the_run(towns):
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    before = runner.invoke(app, ["qc", "show", "rv-ph-1", "--at", _at(10).isoformat()])
    assert before.exit_code == 0, before.output
    assert "Not judged by QC yet (flag 2)" in before.output
    assert "waterline run nightly --day 2026-03-10" in before.output

    flag_readings.fn("riverton", DAY, late=0)
    config = load_qc_config()
    with begin() as conn:
        from tasks.quality.qc_explain import explain_reading

        found = explain_reading(conn, "rv-ph-1", _at(10) + timedelta(seconds=30))  # the reading just before
    assert (found["observed_at"], found["value"], found["qc_flag"], found["qc_tests"]) == (
        _at(10),
        9.0,
        4,
        "spike",
    )
    assert found["previous"] == {"observed_at": _at(10) - timedelta(minutes=1), "value": 7.05}
    assert found["next"] == {"observed_at": _at(10) + timedelta(minutes=1), "value": 7.05}
    tests = {t["test"]: (t["flag"], t["settings"]) for t in found["tests"]}
    assert tests["spike"] == (4, "suspect=0.3, fail=1.0, method=differential")
    # the registry gives these sensors the catalog's range, so the pinned rule has no instrument end
    assert tests["gross_range"] == (
        1,
        "fail_span=[0.0, 14.0], suspect_span=[6.5, 9.5], pinned=no instrument range",
    )
    assert tests["climatology"] == (2, "off")
    assert found["run"]["config_sha256"] == config.digest and found["run"]["is_current_config"]

    shown = runner.invoke(app, ["qc", "show", "rv-ph-1", "--at", "2026-03-10T10:00:00+01:00"])
    assert shown.exit_code == 0, shown.output
    for text in (
        "4 (fail)",
        "spike",
        "suspect=0.3, fail=1.0",
        config.version,
        config.digest,
        "given by: spike",
    ):
        assert text in shown.output, text

    elsewhere = runner.invoke(app, ["qc", "show", "rv-ph-1", "--at", _at(10).isoformat(), "-m", "lindenfeld"])
    assert elsewhere.exit_code == 1
    assert "has no reading at or before" in elsewhere.output


def test_a_day_without_readings_records_an_empty_run(towns):
    result = flag_readings.fn("riverton", DAY + timedelta(days=5), late=0)

    assert (result["rows"], result["details"]["readings_excluded"], result["details"]["sensor_chunks"]) == (
        0,
        0,
        0,
    )
    assert _read(QC_RUNS).select("count_readings", "count_fail").rows() == [(0, 0)]
    assert _read(READINGS_QC).height == 0


def test_late_and_revised_readings_of_earlier_days_are_judged_the_next_night(towns):
    day_before = DAY - timedelta(days=1)
    night = flag_readings.fn("riverton", DAY + timedelta(days=1))  # no reading that day

    # the evening before DAY and DAY itself waited unjudged: both are judged, oldest first
    assert night["details"]["late_days"] == [day_before.isoformat(), DAY.isoformat()]
    riverton = _read(READINGS).filter(pl.col("sensor_id").is_in(SENSORS))
    assert 2 not in riverton["qc_flag"].unique().to_list()
    stuck_since_evening = riverton.filter(pl.col("sensor_id") == "rv-ph-4", pl.col("observed_at") >= START)
    assert 4 in stuck_since_evening["qc_flag"].to_list()  # judged with its lookback, as on its own night

    assert flag_readings.fn("riverton", DAY + timedelta(days=1))["details"]["late_days_judged"] == 0

    # a revision (the ingest sets the new value's flag back to 2) is judged again the next night
    with begin() as conn:
        revised = conn.execute(
            update(Reading)
            .where(Reading.sensor_id == "rv-ph-1", Reading.observed_at == _at(10))
            .values(value=7.2, qc_flag=2)
        )
        assert revised.rowcount == 1
    again = flag_readings.fn("riverton", DAY + timedelta(days=2))
    assert again["details"]["late_days"] == [DAY.isoformat()]
    assert again["details"]["late_flag_changed"] >= 1  # the spike is gone: that reading is good now
    spike = _read(READINGS).filter(pl.col("sensor_id") == "rv-ph-1", pl.col("observed_at") == _at(10))
    assert spike["qc_flag"].to_list() == [1]


def test_readings_pinned_at_the_registry_range_fail_and_the_explanation_names_the_range(towns):
    from tasks.models import Sensor
    from tasks.quality.qc_explain import explain_reading

    with begin() as conn:  # rv-ph-3's instrument measures 4 to 10; it sits at 4 from 14:00 to 14:30
        conn.execute(update(Sensor).where(Sensor.id == "rv-ph-3").values(valid_min=4.0, valid_max=10.0))
        pinned = (Reading.sensor_id == "rv-ph-3") & Reading.observed_at.between(_at(14), _at(14.5))
        conn.execute(update(Reading).where(pinned).values(value=4.0))

    flag_readings.fn("riverton", DAY, late=0)

    held = _minutes(_at(14), _at(14.5) + timedelta(minutes=1))
    assert _flags("rv-ph-3", 4) == held  # each one, the first as much as the last: not suspect
    with begin() as conn:
        found = explain_reading(conn, "rv-ph-3", _at(14.25))
    tests = {t["test"]: (t["flag"], t["settings"]) for t in found["tests"]}
    assert tests["gross_range"] == (4, "fail_span=[0.0, 14.0], suspect_span=[6.5, 9.5], pinned=[4.0, 10.0]")
    assert found["qc_tests"].startswith("gross_range")
