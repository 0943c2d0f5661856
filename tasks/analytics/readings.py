"""What the analytics stages read: one municipality, a bounded window, as Polars frames."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection, select

from tasks.database import is_postgres, load_sql, read_frame
from tasks.models import Municipality

UTC_TIME = pl.Datetime("us", "UTC")

# QARTOD 4 (fail) and 9 (missing): counted in aggregates, never in statistics or detection.
EXCLUDED_FLAGS = (4, 9)

READING_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": UTC_TIME,
    "value": pl.Float64,
    "qc_flag": pl.Int16,
}

SENSOR_SCHEMA = {
    "sensor_id": pl.String,
    "station_id": pl.String,
    "parameter": pl.String,
    "unit": pl.String,
    "kind": pl.String,
    "valid_min": pl.Float64,
    "valid_max": pl.Float64,
    "interval_seconds": pl.Int64,
    "installed_at": UTC_TIME,
    "last_calibrated_at": UTC_TIME,
    "is_active": pl.Int8,
}


def db_value(conn: Connection, value: datetime | date) -> datetime | date | str:
    """A time or date as a bound parameter of raw SQL: as is on PostgreSQL, and on SQLite the
    naive-UTC text SQLAlchemy stores there (so text comparison orders it correctly)."""
    if is_postgres(conn):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.isoformat()


def municipality_timezone(conn: Connection, municipality_id: str) -> str:
    """The IANA timezone of a municipality; ValueError when the municipality is unknown."""
    zone = conn.execute(
        select(Municipality.timezone).where(Municipality.id == municipality_id)
    ).scalar_one_or_none()
    if zone is None:
        raise ValueError(f"unknown municipality {municipality_id!r}")
    return zone


def lock_municipality(conn: Connection, municipality_id: str) -> None:
    """Serialise writers of one municipality's derived data for this transaction (PostgreSQL
    row lock; SQLite already has a single writer)."""
    conn.execute(
        select(Municipality.id).where(Municipality.id == municipality_id).with_for_update()
    )


def read_municipality_readings(
    conn: Connection, municipality_id: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Every reading of one municipality observed in [start, end)."""
    params = {
        "municipality_id": municipality_id,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_municipality_readings"), params, READING_SCHEMA)


def read_sensor_readings(
    conn: Connection,
    municipality_id: str,
    sensor_ids: list[str],
    start: datetime,
    end: datetime,
) -> pl.DataFrame:
    """The readings of some sensors of one municipality observed in [start, end)."""
    if not sensor_ids:
        return pl.DataFrame(schema=READING_SCHEMA)
    params = {
        "municipality_id": municipality_id,
        "sensor_ids": list(sensor_ids),
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_sensor_readings"), params, READING_SCHEMA)


def read_municipality_sensors(conn: Connection, municipality_id: str) -> pl.DataFrame:
    """Every sensor of one municipality (active or not) with its parameter, unit and range."""
    return read_frame(
        conn,
        load_sql("read_municipality_sensors"),
        {"municipality_id": municipality_id},
        SENSOR_SCHEMA,
    )


def lookback_groups(
    sensors: pl.DataFrame,
    window: int | timedelta,
    default_interval_seconds: int = 60,
    longest: timedelta = timedelta(days=7),
    at_least: timedelta = timedelta(0),
) -> pl.DataFrame:
    """How far before the day each sensor must be read so a trailing window is full.

    A window of `n` readings needs about `n` times the sensor's cadence (plus half again for
    gaps), at least one hour and at most `longest`; a time window needs exactly itself. Every
    sensor is read at least `at_least` back (a detector that compares with earlier days).
    Returns one row per distinct lookback: `lookback` (duration) and its `sensor_ids` (list).
    """
    floor = int(at_least.total_seconds())
    if isinstance(window, timedelta):
        lookback = pl.lit(max(window, at_least))
    else:
        seconds = pl.col("interval_seconds").fill_null(default_interval_seconds) * window * 3 // 2
        ceiling = max(int(longest.total_seconds()), floor)
        lookback = pl.duration(seconds=seconds.clip(max(3600, floor), ceiling))
    return (
        sensors.select("sensor_id", lookback.alias("lookback"))
        .group_by("lookback")
        .agg(pl.col("sensor_id").sort().alias("sensor_ids"))
        .sort("lookback")
    )


def is_excluded(value: pl.Expr, qc_flag: pl.Expr) -> pl.Expr:
    """A reading that must not enter statistics: failed or missing, or with no finite value."""
    return (
        qc_flag.fill_null(2).is_in(EXCLUDED_FLAGS) | value.is_null() | ~value.is_finite()
    ).fill_null(True)
