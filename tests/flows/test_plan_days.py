"""Which day the nightly run covers for each municipality: its own yesterday unless a day is given."""

from datetime import UTC, date, datetime

from tasks.calendar import finished_everywhere, local_day_bounds
from tasks.database import begin
from tasks.pipeline import plan_days
from tasks.registry import apply_registry, parse_registry


def _register(municipality_id: str, zone: str) -> None:
    with begin() as conn:
        apply_registry(conn, parse_registry(
            f"municipality: {{id: {municipality_id}, name: {municipality_id.title()}, timezone: {zone}}}"
        ))


def test_each_municipality_gets_its_own_finished_yesterday(database):
    _register("berlin", "Europe/Berlin")
    _register("chicago", "America/Chicago")
    at_0230_utc = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)

    days = plan_days.fn(now=at_0230_utc)

    assert days == {"berlin": date(2026, 11, 26), "chicago": date(2026, 11, 25)}
    for municipality_id, zone in (("berlin", "Europe/Berlin"), ("chicago", "America/Chicago")):
        assert local_day_bounds(days[municipality_id], zone)[1] <= at_0230_utc


def test_a_given_day_applies_to_every_municipality(database):
    _register("berlin", "Europe/Berlin")
    _register("chicago", "America/Chicago")
    assert plan_days.fn(date(2026, 3, 10)) == {"berlin": date(2026, 3, 10), "chicago": date(2026, 3, 10)}


def test_the_day_finished_everywhere_has_ended_even_at_utc_minus_12():
    day = finished_everywhere()
    assert local_day_bounds(day, "Etc/GMT+12")[1] <= datetime.now(UTC)
