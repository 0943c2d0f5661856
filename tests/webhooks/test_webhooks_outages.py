"""`sensor.offline` once per outage and `sensor.online` when the sensor reports again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import insert, select, update

from tasks.database import begin
from tasks.maintenance.outages import check_sensor_outages
from tasks.models import Sensor, SensorOutage, WebhookEvent

START = datetime(2026, 5, 1, tzinfo=UTC)
STEP = timedelta(minutes=10)  # the seeded sensors' cadence: gap limit 5 x 10 minutes


def _every_step(sensor_id: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Readings of one sensor every 10 minutes in [start, end)."""
    count = int((end - start) / STEP)
    times = [start + i * STEP for i in range(count)]
    return pl.DataFrame({"sensor_id": sensor_id, "observed_at": times, "value": [7.5] * count})


def _sensor_events() -> list[dict]:
    with begin() as conn:
        payloads = conn.execute(
            select(WebhookEvent.payload)
            .where(WebhookEvent.event_type.like("sensor.o%"))
            .order_by(WebhookEvent.created_at, WebhookEvent.id)
        ).scalars()
        return [{"type": p["type"], **p["data"]} for p in payloads]


def _riverton(seed, conn) -> int:  # noqa: ANN001
    return seed.municipality(
        conn, "riverton", "UTC", {"rv-ph": "ph", "rv-turb": "turbidity"}, interval_seconds=600
    )


def test_a_silent_sensor_goes_offline_once_across_hourly_runs_and_online_when_it_returns(
    database, seed, prefect_server
):
    from flows.hourly_ingest import hourly_ingest

    hour = timedelta(hours=1)
    with begin() as conn:
        batch = _riverton(seed, conn)
        for sensor_id in ("rv-ph", "rv-turb"):
            seed.readings(conn, "riverton", batch, _every_step(sensor_id, START, START + 6 * hour))

    first = hourly_ingest()

    assert _sensor_events() == []
    assert first["stages"]["check_outages"]["totals"] == {"outages_started": 0, "outages_ended": 0}

    # rv-ph stops after 05:50; rv-turb goes on, and the data's clock with it
    with begin() as conn:
        seed.readings(conn, "riverton", batch, _every_step("rv-turb", START + 6 * hour, START + 9 * hour))
    hourly_ingest()
    with begin() as conn:
        seed.readings(conn, "riverton", batch, _every_step("rv-turb", START + 9 * hour, START + 10 * hour))
    hourly_ingest()

    [offline] = _sensor_events()
    outage_id = offline["outage_id"]
    assert offline == {
        "type": "sensor.offline",
        "outage_id": outage_id,
        "municipality_id": "riverton",
        "station_id": "riverton-plant",
        "sensor_id": "rv-ph",
        "parameter": "ph",
        "started_at": (START + 6 * hour - STEP).isoformat(),
        "last_reading_at": (START + 6 * hour - STEP).isoformat(),
        "gap_limit_seconds": 3000.0,
        "detected_at": (START + 9 * hour - STEP).isoformat(),
    }

    # rv-ph reports again from 10:00
    with begin() as conn:
        for sensor_id in ("rv-ph", "rv-turb"):
            seed.readings(
                conn, "riverton", batch, _every_step(sensor_id, START + 10 * hour, START + 11 * hour)
            )
    hourly_ingest()
    hourly_ingest()

    events = _sensor_events()
    assert [e["type"] for e in events] == ["sensor.offline", "sensor.online"]
    assert events[1] == {
        **offline,
        "type": "sensor.online",
        "ended_at": (START + 10 * hour).isoformat(),
        "duration_seconds": (4 * hour + STEP).total_seconds(),
    }
    with begin() as conn:
        outage = conn.execute(select(SensorOutage.__table__)).one()
    assert (outage.id, outage.sensor_id, outage.ended_at) == (outage_id, "rv-ph", START + 10 * hour)


def test_lab_retired_and_uninstalled_sensors_never_go_offline(database, seed):
    later = datetime.now(UTC) + timedelta(days=30)
    with begin() as conn:
        batch = _riverton(seed, conn)
        seed.readings(conn, "riverton", batch, _every_step("rv-turb", START, START + timedelta(days=1)))
        seed.readings(conn, "riverton", batch, _every_step("rv-ph", START, START + timedelta(hours=1)))
        conn.execute(update(Sensor).where(Sensor.id == "rv-ph").values(active=False))
        for sensor_id, parameter, kind, installed in (
            ("rv-lead", "lead", "lab", START),
            ("rv-new", "conductivity", "online", later),
        ):
            conn.execute(
                insert(Sensor).values(
                    id=sensor_id,
                    municipality_id="riverton",
                    station_id="riverton-plant",
                    parameter=parameter,
                    unit="x",
                    kind=kind,
                    interval_seconds=600,
                    installed_at=installed,
                    active=True,
                )
            )

    figures = check_sensor_outages.fn("riverton")

    assert _sensor_events() == []
    assert figures["rows"] == 1  # only rv-turb is watched
    assert figures["details"] == {
        "outages_started": 0,
        "outages_ended": 0,
        "as_of": (START + timedelta(days=1) - STEP).isoformat(),
    }


def test_a_sensor_that_never_reported_is_offline_from_its_installation_if_it_has_one(database, seed):
    with begin() as conn:
        batch = _riverton(seed, conn)  # both installed 2026-01-01
        seed.readings(conn, "riverton", batch, _every_step("rv-turb", START, START + timedelta(hours=2)))
        conn.execute(
            insert(Sensor).values(
                id="rv-cl",
                municipality_id="riverton",
                station_id="riverton-plant",
                parameter="free_chlorine",
                unit="mg/L",
                kind="online",
                interval_seconds=600,
                installed_at=None,
                active=True,
            )
        )

    check_sensor_outages.fn("riverton")
    check_sensor_outages.fn("riverton")

    [offline] = _sensor_events()
    assert (offline["type"], offline["sensor_id"], offline["last_reading_at"], offline["started_at"]) == (
        "sensor.offline",
        "rv-ph",
        None,
        datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
    )

    with begin() as conn:
        seed.readings(
            conn,
            "riverton",
            batch,
            _every_step("rv-ph", START + timedelta(hours=2), START + timedelta(hours=3)),
        )
        seed.readings(
            conn,
            "riverton",
            batch,
            _every_step("rv-turb", START + timedelta(hours=2), START + timedelta(hours=3)),
        )
    check_sensor_outages.fn("riverton")

    online = _sensor_events()[1]
    assert (online["type"], online["sensor_id"], online["ended_at"]) == (
        "sensor.online",
        "rv-ph",
        (START + timedelta(hours=2)).isoformat(),
    )


def test_a_sensor_back_for_a_moment_and_silent_again_gets_online_then_a_new_offline(database, seed):
    hour = timedelta(hours=1)
    with begin() as conn:
        batch = _riverton(seed, conn)
        seed.readings(conn, "riverton", batch, _every_step("rv-turb", START, START + 3 * hour))
        seed.readings(conn, "riverton", batch, _every_step("rv-ph", START, START + hour))
    check_sensor_outages.fn("riverton")
    with begin() as conn:
        seed.readings(conn, "riverton", batch, _every_step("rv-turb", START + 3 * hour, START + 6 * hour))
        seed.readings(
            conn, "riverton", batch, _every_step("rv-ph", START + 4 * hour, START + 4 * hour + STEP)
        )

    check_sensor_outages.fn("riverton")

    events = _sensor_events()
    assert [(e["type"], e["started_at"]) for e in events] == [
        ("sensor.offline", (START + hour - STEP).isoformat()),
        ("sensor.online", (START + hour - STEP).isoformat()),
        ("sensor.offline", (START + 4 * hour).isoformat()),
    ]
    assert events[1]["ended_at"] == (START + 4 * hour).isoformat()
