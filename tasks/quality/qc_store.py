"""Where QC flags are kept: `readings.qc_flag` (what statistics use), `readings_qc` (each test's
flag) and `qc_runs` (the configuration and counts of each run), written set-based from a temporary
table: COPY on PostgreSQL, one `update ... from` and one upsert, not a statement per reading."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tasks.analytics.readings import UTC_TIME, db_value
from tasks.database import append_frame, is_postgres, load_sql, read_frame, run_sql
from tasks.models import QcRun, utcnow
from tasks.quality.qc import FLAG_COLUMNS, QcConfig

STAGED_COLUMNS = ("sensor_id", "observed_at", "qc_flag", *FLAG_COLUMNS, "qc_tests")
COUNT_COLUMNS = {
    1: "count_good",
    2: "count_not_evaluated",
    3: "count_suspect",
    4: "count_fail",
    9: "count_missing",
}
RUN_KEY = ["municipality_id", "window_start", "config_sha256"]


def count_sensor_readings(
    conn: Connection, municipality_id: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """`sensor_id` and `count_readings` of each sensor of one municipality with readings in [start, end)."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    schema = {"sensor_id": pl.String, "count_readings": pl.Int64}
    return read_frame(conn, load_sql("count_sensor_readings"), params, schema)


def count_unjudged_readings(conn: Connection, municipality_id: str, start: datetime, end: datetime) -> int:
    """How many of one municipality's readings in [start, end) QC has not judged (flag 2)."""
    params = {"municipality_id": municipality_id, "start": db_value(conn, start), "end": db_value(conn, end)}
    return int(run_sql(conn, "count_unjudged_readings", params).scalar_one())


def start_staging(conn: Connection) -> None:
    """An empty temporary table `qc_incoming` on this connection."""
    run_sql(conn, "drop_qc_incoming")
    run_sql(conn, "create_qc_incoming")


def stage_flags(conn: Connection, flagged: pl.DataFrame) -> None:
    """Append flagged readings (the output of `qc_flags`) to `qc_incoming`."""
    rows = flagged.select(
        "sensor_id",
        pl.col("observed_at").cast(UTC_TIME),
        pl.col("qc_flag", *FLAG_COLUMNS).cast(pl.Int16),
        pl.col("qc_tests").cast(pl.String),
    )
    append_frame(conn, "qc_incoming", rows.select(STAGED_COLUMNS))


def flag_counts(tally: pl.DataFrame) -> dict[str, int]:
    """`count_good` ... `count_missing` and `count_readings` from a tally of `qc_flag` and `len`."""
    by_flag = dict(tally.group_by("qc_flag").agg(pl.col("len").sum()).iter_rows())
    counts = {name: int(by_flag.get(flag, 0)) for flag, name in COUNT_COLUMNS.items()}
    return {"count_readings": int(tally["len"].sum()), **counts}


def record_run(
    conn: Connection,
    municipality_id: str,
    day: date,
    start: datetime,
    end: datetime,
    config: QcConfig,
    counts: dict[str, int],
    test_counts: dict,
) -> int:
    """The id of the QC run of this municipality, window and configuration: inserted once, the
    same row on a rerun (its counts are refreshed by `refresh_run`)."""
    dialect = postgresql if is_postgres(conn) else sqlite
    values = {
        "municipality_id": municipality_id,
        "day": day,
        "window_start": start,
        "window_end": end,
        "config_version": config.version,
        "config_sha256": config.digest,
        "config_json": config.model_dump(mode="json"),
        **counts,
        "test_counts": test_counts,
        "computed_at": utcnow(),
    }
    conn.execute(dialect.insert(QcRun).values(values).on_conflict_do_nothing(index_elements=RUN_KEY))
    return conn.execute(
        select(QcRun.id).where(
            QcRun.municipality_id == municipality_id,
            QcRun.window_start == start,
            QcRun.config_sha256 == config.digest,
        )
    ).scalar_one()


def refresh_run(
    conn: Connection, run_id: int, counts: dict[str, int], test_counts: dict, flags_changed: bool
) -> bool:
    """Give a rerun's run its counts and a new `computed_at` when a stored flag or a count changed;
    a rerun that changed nothing leaves the run as it was. True when the run was updated."""
    stored = conn.execute(select(QcRun).where(QcRun.id == run_id)).one()
    same = all(getattr(stored, k) == v for k, v in counts.items()) and stored.test_counts == test_counts
    if same and not flags_changed:
        return False
    conn.execute(
        update(QcRun)
        .where(QcRun.id == run_id)
        .values(**counts, test_counts=test_counts, computed_at=utcnow())
    )
    return True


def apply_flags(conn: Connection, municipality_id: str, run_id: int) -> tuple[int, int]:
    """Write the staged flags: `readings.qc_flag` where it changed and `readings_qc` where a test's
    flag or the run changed. Returns (readings updated, readings_qc rows written)."""
    if is_postgres(conn):
        conn.exec_driver_sql("analyze qc_incoming")  # a temporary table has no statistics until asked
    updated = run_sql(conn, "update_reading_qc_flags", {"municipality_id": municipality_id}).rowcount
    written = run_sql(conn, "upsert_readings_qc", {"qc_run_id": run_id}).rowcount
    run_sql(conn, "drop_qc_incoming")
    return updated, written
