"""Backfill: recompute every bucket of a range of local days, idempotently (a rerun writes nothing)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from prefect import task

from tasks.analytics.aggregates import period_aggregates, refresh_day, write_changed
from tasks.analytics.buckets import next_month, period_bounds
from tasks.analytics.insights import refresh_month_insights
from tasks.analytics.readings import (
    db_value,
    lock_municipality,
    municipality_timezone,
    read_municipality_sensors,
)
from tasks.calendar import local_day_bounds
from tasks.database import begin, run_sql
from tasks.models import utcnow
from tasks.stages import stage


def backfill_periods(from_day: date, to_day: date, today: date) -> list[tuple[str, date]]:
    """The weeks and months that overlap [from_day, to_day] and are over before `today`."""
    if to_day < from_day:
        raise ValueError(f"the range ends ({to_day}) before it starts ({from_day})")
    periods = []
    for resolution in ("week", "month"):
        day = from_day
        while day <= to_day:  # one step per week or month of the range
            first = day - timedelta(days=day.weekday()) if resolution == "week" else day.replace(day=1)
            after = (
                first + timedelta(days=7)
                if resolution == "week"
                else (first + timedelta(days=32)).replace(day=1)
            )
            if after <= today:
                periods.append((resolution, first))
            day = after
    return periods


def insight_months(periods: list[tuple[str, date]], today: date) -> list[date]:
    """The months (first days) whose insights the recomputed periods change, over before `today`:
    the month each week or month ends in, and the next (its week or month compares with them)."""
    months = set()
    for resolution, first in periods:
        last = first + timedelta(days=6) if resolution == "week" else next_month(first) - timedelta(days=1)
        months |= {last.replace(day=1), next_month(last.replace(day=1))}
    return sorted(month for month in months if next_month(month) <= today)


@task(name="backfill_aggregates", task_run_name="backfill-{municipality_id}-{from_day}-{to_day}")
def backfill_aggregates(
    municipality_id: str, from_day: date, to_day: date, now: datetime | None = None
) -> dict:
    """Recompute every hour and day of [from_day, to_day], the weeks and months that overlap it, and
    the insights of the months those change."""
    with stage("backfill", municipality_id) as result, begin() as conn:
        lock_municipality(conn, municipality_id)
        tz = municipality_timezone(conn, municipality_id)
        sensors = read_municipality_sensors(conn, municipality_id)
        today = (now or utcnow()).astimezone(ZoneInfo(tz)).date()
        periods = backfill_periods(from_day, to_day, today)
        readings = written = 0
        day = from_day
        while day <= to_day:  # one day of readings at a time: memory bounded by a day
            refreshed = refresh_day(conn, municipality_id, tz, day, sensors)
            readings += refreshed["readings"]
            written += refreshed["buckets_written"]
            day += timedelta(days=1)
        for resolution, first in periods:  # each a whole week or month, in chunks of sensors
            start, end = period_bounds(resolution, first, tz)
            fresh = period_aggregates(conn, municipality_id, tz, sensors, resolution, first)
            written += write_changed(conn, municipality_id, fresh, start, end)
        insights = sum(
            refresh_month_insights(conn, municipality_id, tz, month)
            for month in insight_months(periods, today)
        )
        start, end = local_day_bounds(from_day, tz)[0], local_day_bounds(to_day, tz)[1]
        params = {
            "municipality_id": municipality_id,
            "start": db_value(conn, start),
            "end": db_value(conn, end),
        }
        cleared = run_sql(conn, "clear_stale_buckets_between", params).rowcount
        result.rows = readings
        result.details = {
            "days": (to_day - from_day).days + 1,
            "periods": [f"{r} {f.isoformat()}" for r, f in periods],
            "buckets_written": written,
            "insights_written": insights,
            "stale_marks_cleared": cleared,
        }
    return result.as_dict()
