import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import select

from tasks.calendar import local_day_bounds
from tasks.database import begin, read_frame
from tasks.maintenance import score_sensor_health
from tasks.models import WebhookEvent

DAY = date(2026, 3, 14)
TZ = "Europe/Berlin"
PREDICTIONS = """
select municipality_id, sensor_id, day, health_score, risk_level, factors,
       predicted_failure_date, confidence, calibration_due_date, recommendation, computed_at
from maintenance_predictions order by sensor_id
"""
SCHEMA = {
    "day": pl.Date,
    "predicted_failure_date": pl.Date,
    "calibration_due_date": pl.Date,
    "computed_at": pl.Datetime("us", "UTC"),
    "factors": pl.String,
}


def _days_of(sensor_id: str, days: int, value, stuck_hours: int = 0) -> pl.DataFrame:
    """Readings every 10 minutes over the `days` local days up to DAY; the last `stuck_hours`
    hold one value."""
    start, _ = local_day_bounds(DAY - timedelta(days=days - 1), TZ)
    _, end = local_day_bounds(DAY, TZ)
    n = int((end - start) / timedelta(minutes=10))
    values = [value + (0.02 if i % 2 else -0.02) for i in range(n)]
    if stuck_hours:
        values[-6 * stuck_hours :] = [value] * (6 * stuck_hours)
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "value": values,
            "observed_at": [start + timedelta(minutes=10 * i) for i in range(n)],
        }
    )


def _predictions() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(conn, PREDICTIONS, {}, SCHEMA)


def _events() -> list[tuple[str, str]]:
    with begin() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(WebhookEvent.event_type, WebhookEvent.dedupe_key).order_by(WebhookEvent.id)
            )
        ]


def test_sensors_are_scored_once_and_a_rerun_changes_nothing(database, seed):
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", TZ, {"rv-ph": "ph", "rv-cl": "free_chlorine"})
        seed.readings(
            conn,
            "riverton",
            batch,
            pl.concat([_days_of("rv-ph", 14, 7.2), _days_of("rv-cl", 14, 0.6, stuck_hours=14)]),
        )

    first = score_sensor_health.fn("riverton", DAY)
    stored = _predictions()
    again = score_sensor_health.fn("riverton", DAY)

    assert first["rows"] == 2 * 14 * 144
    assert first["details"]["predictions_written"] == 2
    assert again["details"]["predictions_written"] == 0
    assert again["details"]["events_recorded"] == 0
    assert_frame_equal(_predictions(), stored)
    assert stored.select("sensor_id", "day", "risk_level", "calibration_due_date").rows() == [
        ("rv-cl", DAY, "HIGH", date(2026, 5, 30)),
        ("rv-ph", DAY, "LOW", date(2026, 5, 30)),
    ]
    assert json.loads(stored["factors"][0])["stuck"] is True
    assert _events() == [("sensor.maintenance_due", "sensor.maintenance_due:rv-cl:2026-03-14:HIGH")]
    with begin() as conn:
        data = conn.execute(select(WebhookEvent.payload)).scalar_one()["data"]
    assert {
        k: data[k]
        for k in ("municipality_id", "station_id", "sensor_id", "parameter", "day", "risk_level")
    } == {
        "municipality_id": "riverton",
        "station_id": "riverton-plant",
        "sensor_id": "rv-cl",
        "parameter": "free_chlorine",
        "day": "2026-03-14",
        "risk_level": "HIGH",
    }
    assert data["recommendation"].startswith("Service within 14 days: reading stuck at 0.6 mg/L")


def test_only_this_municipalitys_active_sensors_with_readings_that_day_are_scored(database, seed):
    with begin() as conn:
        ours = seed.municipality(conn, "riverton", TZ, {"rv-ph": "ph", "rv-idle": "ph"})
        theirs = seed.municipality(conn, "lakeside", TZ, {"ls-ph": "ph"})
        seed.readings(conn, "riverton", ours, _days_of("rv-ph", 3, 7.2))
        seed.readings(conn, "lakeside", theirs, _days_of("ls-ph", 3, 7.0, stuck_hours=20))
        # Readings of rv-idle stop two days before DAY.
        seed.readings(
            conn,
            "riverton",
            ours,
            _days_of("rv-idle", 3, 7.2).filter(
                pl.col("observed_at") < local_day_bounds(DAY - timedelta(days=1), TZ)[0]
            ),
        )

    result = score_sensor_health.fn("riverton", DAY)

    stored = _predictions()
    assert result["details"]["sensors_scored"] == 1
    assert stored.select("municipality_id", "sensor_id").rows() == [("riverton", "rv-ph")]
    assert _events() == []
    assert stored["computed_at"][0] <= datetime.now(UTC)


def test_maintenance_due_is_announced_when_risk_rises_not_every_day_it_stays(database, seed):
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", TZ, {"rv-ph": "ph", "rv-cl": "free_chlorine"})
        seed.readings(
            conn,
            "riverton",
            batch,
            pl.concat([_days_of("rv-ph", 14, 7.2), _days_of("rv-cl", 14, 0.6, stuck_hours=40)]),
        )
    before = DAY - timedelta(days=1)
    risks = {}
    for day in (before, DAY):
        score_sensor_health.fn("riverton", day)
        stored = _predictions().filter(pl.col("day") == day)
        risks[day] = dict(stored.select("sensor_id", "risk_level").rows())
    # stuck since the day before: HIGH on both days, announced once, on the day it rose
    assert risks[before]["rv-cl"] == risks[DAY]["rv-cl"] == "HIGH"
    assert _events() == [("sensor.maintenance_due", f"sensor.maintenance_due:rv-cl:{before}:HIGH")]
    with begin() as conn:
        data = conn.execute(select(WebhookEvent.payload)).scalar_one()["data"]
    assert (data["previous_risk_level"], data["risk_level"]) == ("LOW", "HIGH")
