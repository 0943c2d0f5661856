"""The QC stage of one municipality and day: QARTOD flags on the day's readings, stored with why.

Each reading of the local day is judged by `tasks.quality.qc.qc_flags` with the readings the tests
need around it: a lookback as long as the longest flat-line and attenuated-signal window of its
sensor plus the gap limit (so the first reading of the day has its previous neighbour), and a
lookahead of the gap limit (so the last has its next one, for the spike test). Only the day's
readings are written: `readings.qc_flag` (the worst test, which every later stage reads),
`readings_qc` (each test's flag) and one `qc_runs` row per municipality, day and configuration.
Sensors are judged in chunks of whole sensors, so memory stays bounded however large the day.
Rerunning a day (`waterline run nightly --day`) judges it again: same data and configuration,
same flags, nothing rewritten; a changed `qc.yaml` gives a new run that the readings then point to.

Readings that arrive late, or are revised, after their day was flagged wait with flag 2 (not
evaluated): each night also judges again every one of the `LATE_DAYS` days before that holds
such a reading, before the aggregates refresh the buckets those readings made stale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl
from prefect import task
from sqlalchemy import Connection

from tasks.analytics.readings import (
    READING_SCHEMA,
    lock_municipality,
    municipality_timezone,
    read_municipality_sensors,
    read_sensor_readings,
)
from tasks.calendar import local_day_bounds
from tasks.database import begin
from tasks.quality.gate import CHUNK_KEY, SENSOR_KEY, chunk_plan
from tasks.quality.qc import (
    FAIL,
    FLAG_COLUMNS,
    MISSING,
    SUSPECT,
    TESTS,
    QcConfig,
    load_qc_config,
    qc_flags,
    sensor_thresholds,
)
from tasks.quality.qc_store import (
    COUNT_COLUMNS,
    apply_flags,
    count_sensor_readings,
    count_unjudged_readings,
    flag_counts,
    record_run,
    refresh_run,
    stage_flags,
    start_staging,
)
from tasks.stages import stage

LATE_DAYS = 7  # days before the night's day judged again when late or revised readings wait there
QC_CHUNK_READINGS = 500_000  # day readings judged at once: whole sensors, about this many
# Without a gap test a neighbour may be any distance away; QC looks this far for one.
NEIGHBOUR_REACH = timedelta(hours=1)
FLAG_NAMES = {1: "good", 2: "not_evaluated", 3: "suspect", 4: "fail", 9: "missing"}
FLAG_TALLY_SCHEMA = {"parameter": pl.String, "qc_flag": pl.Int64, "len": pl.Int64}
TEST_TALLY_SCHEMA = {"test": pl.String, "flag": pl.Int64, "len": pl.Int64}
US = 1_000_000


def qc_reach(sensors: pl.DataFrame, config: QcConfig) -> pl.DataFrame:
    """Per sensor, how long before and after a period QC must read so that every test of every
    reading in the period sees what it needs: `lookback` and `lookahead` (durations).

    The lookback is the longest trailing window (flat line's fail time, else its suspect time;
    the attenuated-signal window) plus the neighbour reach (the gap limit, else NEIGHBOUR_REACH);
    the lookahead is the neighbour reach.
    """
    table = sensor_thresholds(sensors["sensor_id"], sensors, config)
    reach_us = pl.col("gap_us").fill_null(NEIGHBOUR_REACH.total_seconds() * US)
    flat_us = pl.col("flat_fail_us").fill_null(pl.col("flat_suspect_us"))
    window_us = pl.max_horizontal(flat_us, pl.col("att_window_us").cast(pl.Float64)).fill_null(0.0)
    seconds = (window_us + reach_us) / US
    return table.select(
        "sensor_id",
        lookback=pl.duration(seconds=seconds.ceil().cast(pl.Int64)),
        lookahead=pl.duration(seconds=(reach_us / US).ceil().cast(pl.Int64)),
    )


def sensor_batches(sizes: pl.DataFrame, rows: int) -> list[list[str]]:
    """The sensors with readings (`sensor_id`, `count_readings`) in runs of whole sensors of about
    `rows` readings each, in sensor-id order (a sensor with more stays whole)."""
    plan = chunk_plan(
        sizes.select(pl.col("sensor_id").alias(SENSOR_KEY), pl.col("count_readings").alias("len")), rows
    )
    grouped = plan.group_by(CHUNK_KEY).agg(pl.col(SENSOR_KEY).sort()).sort(CHUNK_KEY)
    return grouped[SENSOR_KEY].to_list()


def read_qc_readings(
    conn: Connection,
    municipality_id: str,
    reach: pl.DataFrame,
    sensor_ids: list[str],
    start: datetime,
    end: datetime,
) -> pl.DataFrame:
    """The readings of `sensor_ids` in [start, end) widened by each sensor's lookback and lookahead."""
    groups = (
        reach.filter(pl.col("sensor_id").is_in(sensor_ids))
        .group_by("lookback", "lookahead")
        .agg(pl.col("sensor_id").sort())
        .sort("lookback", "lookahead")
    )
    frames = [
        read_sensor_readings(conn, municipality_id, ids, start - before, end + after)
        for before, after, ids in groups.iter_rows()
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=READING_SCHEMA)


def in_period(flagged: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """The flagged readings observed in [start, end): the only ones a run stores."""
    return flagged.filter(pl.col("observed_at").is_between(start, end, closed="left"))


def tally_flags(flagged: pl.DataFrame, sensors: pl.DataFrame) -> pl.DataFrame:
    """How many readings of each parameter got each flag: `parameter`, `qc_flag`, `len`."""
    return (
        flagged.join(sensors.select("sensor_id", "parameter"), on="sensor_id", how="left")
        .group_by("parameter", "qc_flag")
        .len()
        .with_columns(pl.col("qc_flag").cast(pl.Int64), pl.col("len").cast(pl.Int64))
    )


def tally_tests(flagged: pl.DataFrame) -> pl.DataFrame:
    """How many readings each test flagged with each flag: `test`, `flag`, `len`."""
    return (
        flagged.select(FLAG_COLUMNS)
        .unpivot(variable_name="test", value_name="flag")
        .group_by("test", "flag")
        .len()
        .with_columns(
            pl.col("test").str.strip_prefix("qc_"),
            pl.col("flag").cast(pl.Int64),
            pl.col("len").cast(pl.Int64),
        )
    )


def count_by_test(tests: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per test (in TESTS order) its non-zero flag counts, `{"spike": {"1": n, "4": n}}`."""
    summed = tests.group_by("test", "flag").agg(pl.col("len").sum()).sort("flag")
    return {
        name: {
            str(f): int(n) for f, n in summed.filter(pl.col("test") == name).select("flag", "len").iter_rows()
        }
        for name in TESTS
    }


def parameter_table(flags: pl.DataFrame) -> list[dict]:
    """One row per parameter: readings, the count of each flag, and how many QC excluded (4, 9)."""
    rows = []
    for (parameter,), group in flags.group_by("parameter", maintain_order=True):
        counts = dict(group.group_by("qc_flag").agg(pl.col("len").sum()).iter_rows())
        rows.append(
            {
                "parameter": parameter or "-",
                "readings": int(group["len"].sum()),
                **{FLAG_NAMES[f].replace("_", " "): int(counts.get(f, 0)) for f in FLAG_NAMES},
                "excluded": int(counts.get(FAIL, 0) + counts.get(MISSING, 0)),
            }
        )
    return sorted(rows, key=lambda r: r["parameter"])


def _publish_table(municipality_id: str, day: date, rows: list[dict], config: QcConfig) -> None:
    """A Prefect table artifact of the flags per parameter, when running inside a task run."""
    from prefect.artifacts import create_table_artifact
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        return
    key = re.sub(r"[^a-z0-9-]+", "-", f"qc-flags-{municipality_id}".lower())
    create_table_artifact(
        key=key,
        table=rows,
        description=f"QARTOD flags of {municipality_id} on {day} (config {config.version}); "
        "fail (4) and missing (9) readings are excluded from statistics and judgements.",
    )


@dataclass
class DayFlags:
    """What judging one day found and wrote."""

    day: date
    flags: pl.DataFrame  # FLAG_TALLY_SCHEMA
    tests: pl.DataFrame  # TEST_TALLY_SCHEMA
    updated: int
    written: int
    chunks: int


def flag_day(
    conn: Connection,
    municipality_id: str,
    day: date,
    tz: str,
    sensors: pl.DataFrame,
    config: QcConfig,
    chunk_readings: int = QC_CHUNK_READINGS,
) -> DayFlags:
    """Judge and store the flags of one local day's readings, in chunks of whole sensors."""
    start, end = local_day_bounds(day, tz)
    reach = qc_reach(sensors, config)
    batches = sensor_batches(count_sensor_readings(conn, municipality_id, start, end), chunk_readings)
    start_staging(conn)
    flag_tallies, test_tallies = [], []
    for sensor_ids in batches:
        readings = read_qc_readings(conn, municipality_id, reach, sensor_ids, start, end)
        flagged = in_period(qc_flags(readings, sensors, config), start, end)
        stage_flags(conn, flagged)
        flag_tallies.append(tally_flags(flagged, sensors))
        test_tallies.append(tally_tests(flagged))
    flags = pl.concat([pl.DataFrame(schema=FLAG_TALLY_SCHEMA), *flag_tallies])
    tests = pl.concat([pl.DataFrame(schema=TEST_TALLY_SCHEMA), *test_tallies])
    counts, per_test = flag_counts(flags), count_by_test(tests)
    run_id = record_run(conn, municipality_id, day, start, end, config, counts, per_test)
    updated, written = apply_flags(conn, municipality_id, run_id)
    refresh_run(conn, run_id, counts, per_test, flags_changed=bool(updated or written))
    return DayFlags(day, flags, tests, updated, written, len(batches))


def late_days(
    conn: Connection, municipality_id: str, day: date, tz: str, days: int = LATE_DAYS
) -> list[date]:
    """The `days` local days before `day` that hold readings QC has not judged, oldest first."""
    earlier = [day - timedelta(days=k) for k in range(days, 0, -1)]
    return [d for d in earlier if count_unjudged_readings(conn, municipality_id, *local_day_bounds(d, tz))]


@task(
    name="flag_readings",
    task_run_name="flag-readings-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def flag_readings(
    municipality_id: str, day: date, chunk_readings: int = QC_CHUNK_READINGS, late: int = LATE_DAYS
) -> dict:
    """Judge one municipality's readings of one day with the QARTOD tests, and again each of the
    `late` days before that holds late or revised readings; store each flag and why. The figures
    are the day's; `late_*` counts the earlier days judged again."""
    config = load_qc_config()
    with stage("flag_readings", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)
        tz = municipality_timezone(conn, municipality_id)
        sensors = read_municipality_sensors(conn, municipality_id)
        earlier = [
            flag_day(conn, municipality_id, d, tz, sensors, config, chunk_readings)
            for d in late_days(conn, municipality_id, day, tz, late)
        ]
        judged = flag_day(conn, municipality_id, day, tz, sensors, config, chunk_readings)
        flags, per_test = judged.flags, count_by_test(judged.tests)
        counts = flag_counts(flags)
        table = parameter_table(flags)
        result.rows = counts["count_readings"]
        result.details = {
            **{f"readings_{FLAG_NAMES[flag]}": counts[name] for flag, name in COUNT_COLUMNS.items()},
            "readings_excluded": counts["count_fail"] + counts["count_missing"],
            "readings_flag_changed": judged.updated,
            "readings_qc_written": judged.written,
            "late_days_judged": len(earlier),
            "late_days": [e.day.isoformat() for e in earlier],
            "late_readings_judged": sum(int(e.flags["len"].sum()) for e in earlier),
            "late_flag_changed": sum(e.updated for e in earlier),
            "sensor_chunks": judged.chunks,
            "config_version": config.version,
            "fail_by_test": {name: flags_.get(str(FAIL), 0) for name, flags_ in per_test.items()},
            "suspect_by_test": {name: flags_.get(str(SUSPECT), 0) for name, flags_ in per_test.items()},
            "excluded_by_parameter": {row["parameter"]: row["excluded"] for row in table},
        }
    _publish_table(municipality_id, day, table, config)
    return result.as_dict()
