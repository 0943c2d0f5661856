"""The exports' database fixture: two municipalities whose data must never mix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import insert

from tasks.database import begin
from tasks.models import Anomaly, AuditLog, Incident

START = datetime(2026, 4, 1, 22, tzinfo=UTC)  # 2026-04-02 00:00 in Berlin (UTC+2)


def _readings(sensor_id: str, n: int, value: float, flag_every: int = 0) -> pl.DataFrame:
    times = [START + timedelta(minutes=10 * k) for k in range(n)]
    flags = [4 if flag_every and k % flag_every == 0 else 1 for k in range(n)]
    return pl.DataFrame(
        {"sensor_id": sensor_id, "observed_at": times, "value": value, "qc_flag": flags},
        schema_overrides={"observed_at": pl.Datetime("us", "UTC"), "qc_flag": pl.Int16},
    )


@pytest.fixture
def towns(database, seed):
    """Two municipalities in Berlin time, each a pH and a flow sensor; B's readings say 'B' loudly."""
    with begin() as conn:
        a = seed.municipality(conn, "a", "Europe/Berlin", {"a-ph": "ph", "a-flow": "flow"})
        b = seed.municipality(conn, "b", "Europe/Berlin", {"b-ph": "ph", "b-flow": "flow"})
        seed.readings(conn, "a", a, _readings("a-ph", 144, 7.25, flag_every=10))
        seed.readings(conn, "a", a, _readings("a-flow", 145, 30.0))
        seed.readings(conn, "b", b, _readings("b-ph", 144, 9.99))
        seed.readings(conn, "b", b, _readings("b-flow", 145, 999.0))
        for town, sensor in (("a", "a-ph"), ("b", "b-ph")):
            incident = conn.execute(
                insert(Incident).values(
                    municipality_id=town,
                    station_id=f"{town}-plant",
                    sensor_id=sensor,
                    kind="limit_breach",
                    severity="HIGH",
                    status="open",
                    summary=f"=cmd|' /C calc'!A0 at {town}",
                    first_observed_at=START + timedelta(hours=1),
                    last_observed_at=START + timedelta(hours=2),
                    anomaly_count=1,
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(Anomaly).values(
                    municipality_id=town,
                    station_id=f"{town}-plant",
                    sensor_id=sensor,
                    observed_at=START + timedelta(hours=1),
                    method="limit_breach",
                    value=11.0,
                    score=3.0,
                    severity="HIGH",
                    window="1h",
                    explanation="above the limit",
                    incident_id=incident,
                )
            )
            conn.execute(
                insert(AuditLog).values(
                    municipality_id=town,
                    occurred_at=START + timedelta(hours=3),
                    actor=f"{town}-operator",
                    action="acknowledge",
                    entity_type="incident",
                    entity_id=str(incident),
                    details={"town": town},
                )
            )
    return database
