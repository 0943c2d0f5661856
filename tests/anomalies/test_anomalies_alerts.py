"""Alerts: runs of a sensor's anomalies per severity level, created once and resolved once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import insert, select

from tasks.analytics.readings import UTC_TIME
from tasks.anomalies import detect_anomalies
from tasks.anomalies.alert_stage import raise_alerts
from tasks.anomalies.alerts import RUN_SCHEMA, alert_runs
from tasks.anomalies.detectors import SEVERITIES
from tasks.database import begin
from tasks.models import Alert, Anomaly, WebhookEvent
from tasks.settings import reset_settings
from tasks.webhooks.subscriptions import add_subscription

DAY = date(2026, 5, 1)
HOUR = timedelta(hours=1)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _anomalies(rows: list[tuple]) -> pl.DataFrame:
    """(sensor_id, method, observed_at, score, severity, explanation) rows at station `plant`."""
    schema = {
        "sensor_id": pl.String,
        "method": pl.String,
        "observed_at": UTC_TIME,
        "score": pl.Float64,
        "severity": pl.String,
        "explanation": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(station_id=pl.lit("plant"))


def test_each_level_groups_the_anomalies_at_least_that_severe_into_runs():
    found = _anomalies(
        [
            ("ph", "rolling_zscore", _at(DAY, 3), 2.1, "LOW", "a little high"),
            ("ph", "limit_breach", _at(DAY, 3, 20), 9.0, "HIGH", "above the limit"),
            ("ph", "robust_zscore", _at(DAY, 3, 40), 3.7, "CRITICAL", "far above"),
            ("ph", "rolling_zscore", _at(DAY, 4, 30), 3.1, "HIGH", "high again"),  # 50 min later
            ("ph", "rolling_zscore", _at(DAY, 7), 2.2, "LOW", "a little high again"),  # 2.5 h later
        ]
    )

    runs = alert_runs(found, quiet_period=HOUR)

    both = ["limit_breach", "robust_zscore", "rolling_zscore"]
    expected = pl.DataFrame(
        [
            ("LOW", "ph", "plant", _at(DAY, 3), _at(DAY, 4, 30), "CRITICAL", both, "far above"),
            (
                "LOW",
                "ph",
                "plant",
                _at(DAY, 7),
                _at(DAY, 7),
                "LOW",
                ["rolling_zscore"],
                "a little high again",
            ),
            ("MEDIUM", "ph", "plant", _at(DAY, 3, 20), _at(DAY, 4, 30), "CRITICAL", both, "far above"),
            ("HIGH", "ph", "plant", _at(DAY, 3, 20), _at(DAY, 4, 30), "CRITICAL", both, "far above"),
            (
                "CRITICAL",
                "ph",
                "plant",
                _at(DAY, 3, 40),
                _at(DAY, 3, 40),
                "CRITICAL",
                ["robust_zscore"],
                "far above",
            ),
        ],
        schema=RUN_SCHEMA,
        orient="row",
    )
    assert_frame_equal(runs, expected)


def test_a_quiet_period_of_weaker_anomalies_does_not_keep_a_high_alert_running():
    found = _anomalies(
        [("ph", "limit_breach", _at(DAY, 3), 9.0, "HIGH", "first")]
        + [("ph", "rolling_zscore", _at(DAY, 3) + m * HOUR / 2, 2.1, "LOW", "noise") for m in range(1, 6)]
        + [("ph", "limit_breach", _at(DAY, 6), 9.0, "HIGH", "second")]
    )

    high = alert_runs(found, quiet_period=HOUR).filter(pl.col("level") == "HIGH")

    assert high.select("first_observed_at", "last_observed_at").rows() == [
        (_at(DAY, 3), _at(DAY, 3)),
        (_at(DAY, 6), _at(DAY, 6)),
    ]


def _seed_anomalies(rows: list[tuple]) -> None:
    """Store anomalies of sensor `rv-turb` the way detect_anomalies leaves them:
    (observed_at, method, severity, explanation)."""
    with begin() as conn:
        conn.execute(
            insert(Anomaly),
            [
                {
                    "municipality_id": "riverton",
                    "station_id": "riverton-plant",
                    "sensor_id": "rv-turb",
                    "observed_at": observed_at,
                    "method": method,
                    "value": 2.4,
                    "score": 2.4,
                    "severity": severity,
                    "window": "60 readings",
                    "explanation": explanation,
                }
                for observed_at, method, severity, explanation in rows
            ],
        )


def _listen_at_every_level(monkeypatch, municipality_id: str) -> None:
    """An endpoint per alert level, so that every level's events are written (an alert event no
    endpoint listens to is not)."""
    monkeypatch.setenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    reset_settings()
    with begin() as conn:
        for level in SEVERITIES:
            add_subscription(
                conn,
                municipality_id,
                "http://127.0.0.1:9/hook",
                ["alert.created", "alert.resolved"],
                min_severity=level,
            )


def _alert_events() -> list[tuple[str, str, str, str]]:
    """(type, level, severity, first_observed_at) of every alert event, in the order recorded."""
    with begin() as conn:
        payloads = conn.execute(
            select(WebhookEvent.payload)
            .where(WebhookEvent.event_type.like("alert.%"))
            .order_by(WebhookEvent.created_at, WebhookEvent.id)
        ).scalars()
        return [
            (p["type"], p["data"]["level"], p["data"]["severity"], p["data"]["first_observed_at"])
            for p in payloads
        ]


def test_a_run_across_midnight_is_created_once_resolved_once_and_a_rerun_records_nothing(
    database, seed, monkeypatch
):
    with begin() as conn:
        seed.municipality(conn, "riverton", "UTC", {"rv-turb": "turbidity"})
    _listen_at_every_level(monkeypatch, "riverton")
    _seed_anomalies(
        [
            (_at(DAY, 23, 20), "limit_breach", "HIGH", "turbidity 2.4 NTU is above the limit 1 NTU"),
            (_at(DAY, 23, 50), "limit_breach", "HIGH", "turbidity 2.4 NTU is above the limit 1 NTU"),
        ]
    )

    first = raise_alerts.fn("riverton", DAY)

    assert first["details"] == {"alerts_created": 3, "alerts_extended": 0, "alerts_resolved": 0}
    start = _at(DAY, 23, 20).isoformat()
    assert _alert_events() == [("alert.created", level, "HIGH", start) for level in ("LOW", "MEDIUM", "HIGH")]

    next_day = DAY + timedelta(days=1)
    _seed_anomalies([(_at(next_day, 0, 30), "robust_zscore", "CRITICAL", "turbidity far above its median")])
    second = raise_alerts.fn("riverton", next_day)

    assert second["details"] == {"alerts_created": 1, "alerts_extended": 3, "alerts_resolved": 4}
    assert _alert_events()[3:] == [
        ("alert.created", "CRITICAL", "CRITICAL", _at(next_day, 0, 30).isoformat()),
        *(("alert.resolved", level, "CRITICAL", start) for level in ("LOW", "MEDIUM", "HIGH")),
        ("alert.resolved", "CRITICAL", "CRITICAL", _at(next_day, 0, 30).isoformat()),
    ]
    with begin() as conn:
        high = conn.execute(select(Alert.__table__).where(Alert.level == "HIGH")).one()
    assert (high.status, high.first_observed_at, high.last_observed_at, high.resolved_at) == (
        "resolved",
        _at(DAY, 23, 20),
        _at(next_day, 0, 30),
        _at(next_day, 1, 30),
    )
    assert (high.severity, high.methods, high.explanation) == (
        "CRITICAL",
        ["limit_breach", "robust_zscore"],
        "turbidity far above its median",
    )

    events = _alert_events()
    again = [raise_alerts.fn("riverton", d)["details"] for d in (DAY, next_day)]

    assert _alert_events() == events
    assert again == [
        {"alerts_created": 0, "alerts_extended": 0, "alerts_resolved": 0},
        {"alerts_created": 0, "alerts_extended": 0, "alerts_resolved": 0},
    ]


def test_alerts_come_from_what_the_detectors_found(database, seed, monkeypatch):
    """A turbidity burst above its operational limit, through detect_anomalies, is one HIGH alert."""
    start = _at(DAY, 0) - timedelta(days=1)
    times = [start + timedelta(minutes=10 * i) for i in range(2 * 144)]
    burst = {_at(DAY, 3, m) for m in (0, 20, 40)}
    readings = pl.DataFrame(
        {
            "sensor_id": "rv-turb",
            "observed_at": times,
            "value": [2.41 if t in burst else (0.20 if i % 2 else 0.22) for i, t in enumerate(times)],
        }
    )
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", "UTC", {"rv-turb": "turbidity"})
        seed.readings(conn, "riverton", batch, readings)
    _listen_at_every_level(monkeypatch, "riverton")
    detect_anomalies.fn("riverton", DAY)

    raise_alerts.fn("riverton", DAY)

    with begin() as conn:
        high = conn.execute(select(Alert.__table__).where(Alert.level == "HIGH")).all()
    assert len(high) == 1
    assert (high[0].sensor_id, high[0].first_observed_at, high[0].last_observed_at, high[0].status) == (
        "rv-turb",
        _at(DAY, 3),
        _at(DAY, 3, 40),
        "resolved",
    )
    assert "limit_breach" in high[0].methods
    types = [t for t, level, _, _ in _alert_events() if level == "HIGH"]
    assert types == ["alert.created", "alert.resolved"]


def test_an_alert_no_endpoint_listens_to_is_tracked_but_writes_no_event(database, seed, monkeypatch):
    with begin() as conn:
        seed.municipality(conn, "riverton", "UTC", {"rv-turb": "turbidity"})
    monkeypatch.setenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    reset_settings()
    with begin() as conn:  # one endpoint, for HIGH alerts only
        add_subscription(conn, "riverton", "http://127.0.0.1:9/hook", ["alert.created"], min_severity="HIGH")
    _seed_anomalies([(_at(DAY, 3), "limit_breach", "HIGH", "turbidity 2.4 NTU is above the limit 1 NTU")])

    result = raise_alerts.fn("riverton", DAY)

    assert result["details"]["alerts_created"] == 3  # LOW, MEDIUM and HIGH runs are all tracked
    assert _alert_events() == [("alert.created", "HIGH", "HIGH", _at(DAY, 3).isoformat())]
