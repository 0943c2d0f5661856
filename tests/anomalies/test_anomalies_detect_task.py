from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import func, select

from tasks.anomalies import detect_anomalies
from tasks.database import begin, read_frame
from tasks.models import AuditLog, WebhookEvent

DAY = date(2026, 5, 1)
CHICAGO = ZoneInfo("America/Chicago")
TIME = pl.Datetime("us", "UTC")
INCIDENTS = """
select id, municipality_id, station_id, sensor_id, kind, severity, status, summary,
       first_observed_at, last_observed_at, anomaly_count, opened_at, updated_at, resolved_at
from incidents order by id
"""
INCIDENT_TIMES = {
    c: TIME for c in ("first_observed_at", "last_observed_at", "opened_at", "updated_at", "resolved_at")
}
ANOMALIES = """
select id, municipality_id, station_id, sensor_id, observed_at, method, value, score, severity,
       "window", explanation, incident_id, detected_at
from anomalies order by id
"""
ANOMALY_TIMES = {"observed_at": TIME, "detected_at": TIME}


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHICAGO).astimezone(UTC)


def _turbidity(sensor_id: str, days: int, spikes: dict[datetime, float]) -> pl.DataFrame:
    """Readings every 10 minutes from the day before DAY for `days` days, 0.20/0.22 NTU apart
    from `spikes`."""
    start = _local(DAY - timedelta(days=1), 0)
    times = [start + timedelta(minutes=10 * i) for i in range(days * 144)]
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": times,
            "value": [spikes.get(t, 0.20 if i % 2 else 0.22) for i, t in enumerate(times)],
        }
    )


def _table(sql: str, schema: dict) -> pl.DataFrame:
    with begin() as conn:
        return read_frame(conn, sql, {}, schema)


def _events() -> list[tuple[str, str]]:
    with begin() as conn:
        rows = conn.execute(
            select(WebhookEvent.event_type, WebhookEvent.dedupe_key).order_by(
                WebhookEvent.created_at, WebhookEvent.id
            )
        ).all()
    return [tuple(r) for r in rows]


def test_a_burst_becomes_one_incident_resolved_by_the_end_of_the_day(database, seed):
    burst = {_local(DAY, 3, m): 2.41 for m in (0, 20, 40)} | {_local(DAY, 4): 2.41}
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", "America/Chicago", {"rv-turb": "turbidity"})
        seed.readings(conn, "riverton", batch, _turbidity("rv-turb", 2, burst))

    result = detect_anomalies.fn("riverton", DAY)

    # one incident for the station: the limit breaches and the z-scores of the same readings
    incidents = _table(INCIDENTS, INCIDENT_TIMES)
    anomalies = _table(ANOMALIES, ANOMALY_TIMES)
    assert incidents.height == 1
    # findings below MEDIUM stay recorded anomalies outside any incident (incidents.yaml)
    counted = anomalies.filter(pl.col("severity") != "LOW")
    assert anomalies.filter(pl.col("severity") == "LOW")["incident_id"].null_count() == (
        anomalies.filter(pl.col("severity") == "LOW").height
    )
    breach = incidents.row(0, named=True)
    assert {
        k: breach[k]
        for k in (
            "sensor_id",
            "station_id",
            "kind",
            "severity",
            "status",
            "first_observed_at",
            "last_observed_at",
            "anomaly_count",
            "opened_at",
            "resolved_at",
        )
    } == {
        "sensor_id": "rv-turb",
        "station_id": "riverton-plant",
        "kind": "limit_breach",
        "severity": "HIGH",  # a health parameter beyond its limit by the HIGH step, for an hour
        "status": "resolved",
        "first_observed_at": _local(DAY, 3),
        "anomaly_count": counted.height,
        "last_observed_at": _local(DAY, 4),
        "opened_at": _local(DAY, 3),
        "resolved_at": _local(DAY, 5),
    }
    assert set(anomalies["method"]) >= {"limit_breach", "rolling_zscore"}
    assert breach["summary"].startswith(
        f"{counted.height} limit-breach anomalies at station riverton-plant on turbidity from "
        "2026-05-01 03:00 CDT to 2026-05-01 04:00 CDT; HIGH: "
    )
    assert "an operational limit is breached" in breach["summary"]
    assert breach["summary"].endswith(
        "; worst (turbidity sensor rv-turb): turbidity 2.41 NTU is 1.41 NTU above the operational limit 1 NTU"
    )
    assert incidents["status"].to_list() == ["resolved"] * incidents.height
    assert counted["incident_id"].null_count() == 0
    assert result["details"]["incidents_opened"] == incidents.height
    assert result["details"]["incidents_resolved"] == incidents.height
    assert sorted(_events()) == sorted(
        [("incident.opened", f"incident.opened:{i}") for i in incidents["id"]]
        + [("incident.resolved", f"incident.resolved:{i}") for i in incidents["id"]]
    )
    with begin() as conn:
        audited = conn.execute(
            select(AuditLog.action, func.count()).group_by(AuditLog.action).order_by(AuditLog.action)
        ).all()
    assert [tuple(a) for a in audited] == [
        ("incident.opened", incidents.height),
        ("incident.resolved", incidents.height),
    ]


def test_a_rerun_changes_nothing(database, seed):
    burst = {_local(DAY, 3, m): 2.41 for m in (0, 20, 40)} | {_local(DAY, 23, 50): 6.0}
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", "America/Chicago", {"rv-turb": "turbidity"})
        seed.readings(conn, "riverton", batch, _turbidity("rv-turb", 2, burst))
    detect_anomalies.fn("riverton", DAY)
    incidents, anomalies, events = (
        _table(INCIDENTS, INCIDENT_TIMES),
        _table(ANOMALIES, ANOMALY_TIMES),
        _events(),
    )

    again = detect_anomalies.fn("riverton", DAY)

    assert again["details"]["anomalies_new"] == 0
    assert again["details"]["incidents_opened"] == again["details"]["incidents_resolved"] == 0
    assert_frame_equal(_table(INCIDENTS, INCIDENT_TIMES), incidents)
    assert_frame_equal(_table(ANOMALIES, ANOMALY_TIMES), anomalies)
    assert _events() == events
    assert set(incidents["status"]) == {"open", "resolved"}  # 23:50 is not quiet yet


def test_an_incident_carries_over_midnight_and_its_rise_in_severity_is_announced(database, seed):
    spikes = {
        _local(DAY, 23, 30): 1.6,  # beyond the 1 NTU limit by its MEDIUM step
        _local(DAY, 23, 50): 1.6,
        _local(DAY + timedelta(days=1), 0, 10): 6.0,  # by its CRITICAL step
    }
    with begin() as conn:
        batch = seed.municipality(conn, "riverton", "America/Chicago", {"rv-turb": "turbidity"})
        seed.readings(conn, "riverton", batch, _turbidity("rv-turb", 3, spikes))

    detect_anomalies.fn("riverton", DAY)
    after_first_day = _table(INCIDENTS, INCIDENT_TIMES)
    held_first_day = _table(ANOMALIES, ANOMALY_TIMES).filter(pl.col("severity") != "LOW").height
    detect_anomalies.fn("riverton", DAY + timedelta(days=1))

    incidents = _table(INCIDENTS, INCIDENT_TIMES)
    held = _table(ANOMALIES, ANOMALY_TIMES)
    # every finding of MEDIUM or worse joined the one incident; LOW ones stay outside incidents
    assert set(held.filter(pl.col("severity") != "LOW")["incident_id"]) == {after_first_day["id"][0]}
    assert held.filter(pl.col("severity") == "LOW")["incident_id"].null_count() == (
        held.filter(pl.col("severity") == "LOW").height
    )
    assert after_first_day.select("kind", "severity", "status", "anomaly_count").rows() == [
        ("limit_breach", "MEDIUM", "open", held_first_day)
    ]
    assert incidents.select(
        "id", "severity", "status", "anomaly_count", "first_observed_at", "last_observed_at"
    ).rows() == [
        (
            after_first_day["id"][0],
            "HIGH",
            "resolved",
            held.filter(pl.col("severity") != "LOW").height,
            _local(DAY, 23, 30),
            _local(DAY + timedelta(days=1), 0, 10),
        )
    ]
    incident_id = incidents["id"][0]
    assert [e for e in _events() if e[1].endswith((f":{incident_id}", f":{incident_id}:HIGH"))] == [
        ("incident.opened", f"incident.opened:{incident_id}"),
        ("incident.updated", f"incident.updated:{incident_id}:HIGH"),
        ("incident.resolved", f"incident.resolved:{incident_id}"),
    ]
    with begin() as conn:
        payload = conn.execute(
            select(WebhookEvent.payload).where(
                WebhookEvent.dedupe_key == f"incident.updated:{incident_id}:HIGH"
            )
        ).scalar_one()
    assert payload["data"] | {"summary": None} == {
        "incident_id": incident_id,
        "municipality_id": "riverton",
        "station_id": "riverton-plant",
        "sensor_id": "rv-turb",
        "parameter": "turbidity",
        "kind": "limit_breach",
        "severity": "HIGH",
        "previous_severity": "MEDIUM",
        "status": "open",
        "first_observed_at": _local(DAY, 23, 30).isoformat(),
        "last_observed_at": _local(DAY + timedelta(days=1), 0, 10).isoformat(),
        "anomaly_count": held.filter(pl.col("severity") != "LOW").height,
        "summary": None,
    }


def test_another_municipalitys_readings_never_become_these_anomalies(database, seed):
    with begin() as conn:
        ours = seed.municipality(conn, "riverton", "America/Chicago", {"rv-turb": "turbidity"})
        theirs = seed.municipality(conn, "lakeside", "America/Chicago", {"ls-turb": "turbidity"})
        seed.readings(conn, "riverton", ours, _turbidity("rv-turb", 2, {}))
        seed.readings(
            conn,
            "lakeside",
            theirs,
            _turbidity("ls-turb", 2, {_local(DAY, 3): 5.0, _local(DAY, 9): 5.0}),
        )

    result = detect_anomalies.fn("riverton", DAY)

    assert result["details"]["anomalies_found"] == 0
    assert _table(ANOMALIES, ANOMALY_TIMES).is_empty()
    assert _table(INCIDENTS, INCIDENT_TIMES).is_empty()
    assert _events() == []


def test_a_detector_that_cannot_run_on_a_sensor_says_so_once_in_the_run_log(database, seed, caplog):
    start = _local(DAY - timedelta(days=1), 0)
    hourly = pl.DataFrame(
        {
            "sensor_id": "rv-lead",
            "observed_at": [start + timedelta(hours=i) for i in range(48)],
            "value": [2.0 + 0.1 * (i % 3) for i in range(48)],
        }
    )
    with begin() as conn:
        batch = seed.municipality(
            conn, "riverton", "America/Chicago", {"rv-turb": "turbidity", "rv-lead": "lead"}
        )
        seed.readings(conn, "riverton", batch, _turbidity("rv-turb", 2, {}))
        seed.readings(conn, "riverton", batch, hourly)

    with caplog.at_level("INFO", logger="tasks.anomalies.detection"):
        result = detect_anomalies.fn("riverton", DAY)

    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    hourly_window = "(hourly cadence: a 60-minute window holds 1 reading, 3 needed): rv-lead"
    assert f"riverton, 2026-05-01: robust_zscore skipped 1 sensor {hourly_window}" in lines
    assert f"riverton, 2026-05-01: rolling_zscore skipped 1 sensor {hourly_window}" in lines
    assert (
        "riverton, 2026-05-01: pattern_break skipped 1 sensor "
        "(hourly cadence: a 60-minute bucket holds 1 reading, 3 needed): rv-lead"
    ) in lines
    assert len(lines) == len({line.split(" skipped")[0] for line in lines})  # one line per detector
    assert result["details"]["detectors_skipped"]["robust_zscore"] == 1
