"""Alert and sensor events as subscribers receive them, on real receivers on loopback: each endpoint
gets the alerts of its own `min_severity`, and only its own municipality's events."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import insert, select

from tasks.anomalies.alert_stage import raise_alerts
from tasks.database import begin
from tasks.maintenance.outages import check_sensor_outages
from tasks.models import Anomaly, WebhookDelivery
from tasks.settings import reset_settings
from tasks.webhooks.delivery import deliver_subscription
from tasks.webhooks.subscriptions import add_subscription

DAY = date(2026, 5, 1)
TOWNS = ("riverton", "lakeside")


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def towns(database, seed, monkeypatch):
    """Two municipalities with a turbidity and a pH sensor each (every 10 minutes), loopback
    endpoints allowed; their ingest batch ids."""
    monkeypatch.setenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    reset_settings()
    with begin() as conn:
        return {
            m: seed.municipality(conn, m, "UTC", {f"{m}-turb": "turbidity", f"{m}-ph": "ph"}, 600)
            for m in TOWNS
        }


def _subscribe(receiver, municipality_id: str, min_severity: str, events=("*",)) -> int:  # noqa: ANN001
    with begin() as conn:
        sid, secret = add_subscription(
            conn, municipality_id, receiver.url, list(events), min_severity=min_severity
        )
    receiver.secrets.append(str(secret))
    return sid


def _anomalies(municipality_id: str, rows: list[tuple[datetime, str]]) -> None:
    """Store anomalies of the municipality's turbidity sensor: (observed_at, severity)."""
    with begin() as conn:
        conn.execute(
            insert(Anomaly),
            [
                {
                    "municipality_id": municipality_id,
                    "station_id": f"{municipality_id}-plant",
                    "sensor_id": f"{municipality_id}-turb",
                    "observed_at": observed_at,
                    "method": "robust_zscore",
                    "value": 2.4,
                    "score": 4.0,
                    "severity": severity,
                    "window": "60 readings",
                    "explanation": f"{severity.lower()} turbidity",
                }
                for observed_at, severity in rows
            ],
        )


def _received(receiver) -> list[tuple]:  # noqa: ANN001
    """(type, level, severity, first_observed_at) of each alert request, checked as signed."""
    assert all(r.verified and all(r.verified.values()) for r in receiver.requests)
    payloads = [json.loads(r.body) for r in receiver.requests]
    return sorted(
        (p["type"], p["data"]["level"], p["data"]["severity"], p["data"]["first_observed_at"])
        for p in payloads
    )


def test_each_endpoint_receives_the_alerts_of_its_own_min_severity(towns, make_receiver):
    low, high, critical = make_receiver(), make_receiver(), make_receiver()
    endpoints = {
        "LOW": _subscribe(low, "riverton", "LOW", ["alert.created", "alert.resolved"]),
        "HIGH": _subscribe(high, "riverton", "HIGH", ["alert.created", "alert.resolved"]),
        "CRITICAL": _subscribe(critical, "riverton", "CRITICAL"),
    }
    # a run that stays HIGH in the night, one that reaches CRITICAL in the afternoon
    _anomalies("riverton", [(_at(3), "HIGH"), (_at(3, 10), "MEDIUM")])
    _anomalies("riverton", [(_at(14), "MEDIUM"), (_at(14, 20), "CRITICAL")])

    raise_alerts.fn("riverton", DAY)
    for sid in endpoints.values():
        deliver_subscription(sid)

    night, afternoon = _at(3).isoformat(), _at(14).isoformat()
    afternoon_high = _at(14, 20).isoformat()
    assert _received(critical) == [
        ("alert.created", "CRITICAL", "CRITICAL", afternoon_high),
        ("alert.resolved", "CRITICAL", "CRITICAL", afternoon_high),
    ]
    assert _received(high) == [
        ("alert.created", "HIGH", "CRITICAL", afternoon_high),
        ("alert.created", "HIGH", "HIGH", night),
        ("alert.resolved", "HIGH", "CRITICAL", afternoon_high),
        ("alert.resolved", "HIGH", "HIGH", night),
    ]
    assert _received(low) == [
        ("alert.created", "LOW", "CRITICAL", afternoon),
        ("alert.created", "LOW", "HIGH", night),
        ("alert.resolved", "LOW", "CRITICAL", afternoon),
        ("alert.resolved", "LOW", "HIGH", night),
    ]


def test_one_municipalitys_alerts_and_outages_never_reach_anothers_endpoint(towns, seed, make_receiver):
    riverton, lakeside = make_receiver(), make_receiver()
    ours = _subscribe(riverton, "riverton", "LOW")
    theirs = _subscribe(lakeside, "lakeside", "LOW")
    _anomalies("riverton", [(_at(3), "CRITICAL")])
    step = timedelta(minutes=10)
    with begin() as conn:
        for m in TOWNS:  # each town's pH stops at 01:00 while its turbidity goes on to 06:00
            for sensor, hours in ((f"{m}-turb", 6), (f"{m}-ph", 1)):
                times = [_at(0) + i * step for i in range(hours * 6)]
                frame = pl.DataFrame({"sensor_id": sensor, "observed_at": times, "value": [1.0] * len(times)})
                seed.readings(conn, m, towns[m], frame)

    raise_alerts.fn("riverton", DAY)
    check_sensor_outages.fn("riverton")
    for sid in (ours, theirs):
        deliver_subscription(sid)

    got = {
        m: [json.loads(r.body) for r in rx.requests]
        for m, rx in (("riverton", riverton), ("lakeside", lakeside))
    }
    assert sorted(p["type"] for p in got["riverton"]) == ["alert.created", "alert.resolved", "sensor.offline"]
    assert {p["data"]["municipality_id"] for p in got["riverton"]} == {"riverton"}
    assert got["lakeside"] == []
    with begin() as conn:
        owed = conn.execute(select(WebhookDelivery.id).where(WebhookDelivery.subscription_id == theirs)).all()
    assert owed == []

    check_sensor_outages.fn("lakeside")  # lakeside's own outage does reach lakeside
    deliver_subscription(theirs)

    assert [(r["type"], r["data"]["sensor_id"]) for r in (json.loads(x.body) for x in lakeside.requests)] == [
        ("sensor.offline", "lakeside-ph")
    ]
