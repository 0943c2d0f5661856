"""A municipality's local day as bound SQL parameters (same instants on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection

from tasks.calendar import local_day_bounds
from tasks.database import is_postgres


def sql_time(conn: Connection, value: datetime) -> datetime | str:
    """A UTC instant as a bound parameter of raw SQL: as is on PostgreSQL, and on SQLite the
    naive-UTC text SQLAlchemy stores there, so text comparison orders it correctly."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} given where UTC is required")
    if is_postgres(conn):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sql_date(conn: Connection, value: date) -> date | str:
    """A date as a bound parameter of raw SQL (ISO text on SQLite, as SQLAlchemy stores it)."""
    return value if is_postgres(conn) else value.isoformat()


def day_window(conn: Connection, municipality_id: str, day: date, timezone: str) -> dict:
    """Bound parameters `municipality_id`, `window_start`, `window_end` of a local day."""
    start, end = local_day_bounds(day, timezone)
    return {
        "municipality_id": municipality_id,
        "window_start": sql_time(conn, start),
        "window_end": sql_time(conn, end),
    }
