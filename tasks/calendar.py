"""Local days: the nightly run works on a municipality's calendar day, not a UTC one."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def yesterday(timezone: str, now: datetime | None = None) -> date:
    """Yesterday's date in `timezone` (the default day of a nightly run)."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def finished_everywhere() -> date:
    """The latest day that is over in every timezone (UTC-12 ends a UTC day twelve hours late)."""
    return datetime.now(UTC).date() - timedelta(days=2)


def local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of `day` in `timezone`; 23 or 25 hours long on DST changes."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return start, end
