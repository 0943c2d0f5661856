"""`waterline incidents`: operators list, show, acknowledge and resolve incidents; each change is
an event, an audit entry and a label for the learned detector, within one municipality."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from typer.testing import CliRunner

from flows.cli import app
from tasks.database import begin
from tasks.models import Anomaly, AuditLog, Incident, WebhookEvent
from tasks.registry import apply_registry, parse_registry

runner = CliRunner()
T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)


def _registry(m: str) -> str:
    return (
        f"municipality: {{id: {m}, name: {m.title()}}}\n"
        f"stations:\n  - id: {m}-plant\n    name: Plant\n    sensors:\n"
        f"      - {{id: {m}-turbidity, parameter: turbidity}}\n"
    )


def _incident(m: str, status: str = "open") -> int:
    with begin() as conn:
        apply_registry(conn, parse_registry(_registry(m)))
        incident_id = conn.execute(
            insert(Incident).values(
                municipality_id=m,
                station_id=f"{m}-plant",
                sensor_id=f"{m}-turbidity",
                kind="rolling_zscore",
                severity="HIGH",
                status=status,
                summary=f"turbidity jump at {m}",
                first_observed_at=T0,
                last_observed_at=T0 + timedelta(minutes=9),
                anomaly_count=2,
            )
        ).inserted_primary_key[0]
        for minute, score in ((0, 3.1), (9, 4.2)):
            conn.execute(
                insert(Anomaly).values(
                    municipality_id=m,
                    station_id=f"{m}-plant",
                    sensor_id=f"{m}-turbidity",
                    observed_at=T0 + timedelta(minutes=minute),
                    method="rolling_zscore",
                    value=0.9,
                    score=score,
                    severity="HIGH",
                    window="60 readings",
                    explanation=f"z {score} at minute {minute}",
                    incident_id=incident_id,
                )
            )
    return incident_id


def _state(incident_id: int) -> tuple:
    with begin() as conn:
        i = conn.execute(select(Incident.__table__).where(Incident.id == incident_id)).one()
        events = conn.execute(
            select(WebhookEvent.event_type, WebhookEvent.municipality_id).order_by(WebhookEvent.created_at)
        ).all()
        audits = conn.scalars(select(AuditLog.action).where(AuditLog.entity_type == "incident")).all()
    return (i.status, i.label, i.labelled_by, i.resolved_at is not None), [tuple(e) for e in events], audits


def test_acknowledge_then_resolve_records_events_audit_and_a_confirmed_label(database):
    incident_id = _incident("riverton")

    acked = runner.invoke(
        app, ["incidents", "ack", str(incident_id), "--actor", "ops:ana", "--note", "on it"]
    )
    again = runner.invoke(app, ["incidents", "ack", str(incident_id)])
    after_ack = _state(incident_id)
    resolved = runner.invoke(app, ["incidents", "resolve", str(incident_id), "--actor", "ops:ben"])

    assert acked.exit_code == 0 and "acknowledged by ops:ana" in acked.output, acked.output
    assert again.exit_code == 1 and "is acknowledged, not open" in again.output
    assert "Traceback" not in again.output
    assert after_ack == (
        ("acknowledged", "confirmed", "ops:ana", False),
        [("incident.updated", "riverton")],
        ["incident.acknowledged"],
    )
    assert resolved.exit_code == 0, resolved.output
    assert _state(incident_id) == (
        ("resolved", "confirmed", "ops:ana", True),
        [("incident.updated", "riverton"), ("incident.resolved", "riverton")],
        ["incident.acknowledged", "incident.resolved"],
    )


def test_dismissing_labels_a_false_alarm_and_a_resolved_incident_stays_resolved(database):
    incident_id = _incident("riverton")

    dismissed = runner.invoke(
        app, ["incidents", "resolve", str(incident_id), "--dismiss", "--actor", "ops:ana"]
    )
    twice = runner.invoke(app, ["incidents", "resolve", str(incident_id)])

    assert dismissed.exit_code == 0 and "dismissed as a false alarm" in dismissed.output
    assert twice.exit_code == 1 and "already resolved" in twice.output
    assert _state(incident_id) == (
        ("resolved", "dismissed", "ops:ana", True),
        [("incident.resolved", "riverton")],
        ["incident.dismissed"],
    )


def test_list_and_show_keep_to_the_municipality_asked_for(database):
    riverton = _incident("riverton")
    lakeside = _incident("lakeside")

    listed = runner.invoke(app, ["incidents", "list", "-m", "riverton"])
    shown = runner.invoke(app, ["incidents", "show", str(riverton)])
    foreign = runner.invoke(app, ["incidents", "show", str(lakeside), "-m", "riverton"])
    foreign_ack = runner.invoke(app, ["incidents", "ack", str(lakeside), "-m", "riverton"])
    bad_status = runner.invoke(app, ["incidents", "list", "--status", "closed"])

    assert listed.exit_code == 0 and "1 incident(s)" in listed.output and "lakeside" not in listed.output
    assert shown.exit_code == 0 and "turbidity jump at riverton" in shown.output
    assert shown.output.index("z 4.2 at minute 9") < shown.output.index("z 3.1 at minute 0")
    assert (
        foreign.exit_code == 1
        and f"there is no incident {lakeside} in municipality 'riverton'" in foreign.output
    )
    assert foreign_ack.exit_code == 1 and _state(lakeside)[0][0] == "open"
    assert bad_status.exit_code == 1 and "status must be one of" in bad_status.output


def test_show_lists_first_the_findings_that_set_a_critical_incidents_severity(database):
    registry = (
        "municipality: {id: riverton, name: Riverton}\n"
        "stations:\n  - id: riverton-plant\n    name: Plant\n    sensors:\n"
        "      - {id: rv-turbidity, parameter: turbidity}\n"
        "      - {id: rv-temperature, parameter: temperature}\n"
    )
    findings = [  # sensor, minute, method, severity, score
        ("rv-turbidity", 0, "rolling_zscore", "HIGH", 9.5),
        ("rv-temperature", 1, "rolling_zscore", "CRITICAL", 12.0),  # temperature weighs little
        ("rv-turbidity", 2, "limit_breach", "CRITICAL", 4.5),
        ("rv-turbidity", 3, "combined", "CRITICAL", 2.0),  # restates the others
        ("rv-turbidity", 4, "rolling_zscore", "MEDIUM", 2.6),
    ]
    with begin() as conn:
        apply_registry(conn, parse_registry(registry))
        incident_id = conn.execute(
            insert(Incident).values(
                municipality_id="riverton",
                station_id="riverton-plant",
                sensor_id="rv-turbidity",
                kind="limit_breach",
                severity="CRITICAL",
                status="open",
                summary="a critical incident",
                first_observed_at=T0,
                last_observed_at=T0 + timedelta(minutes=4),
                anomaly_count=5,
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(Anomaly),
            [
                {
                    "municipality_id": "riverton",
                    "station_id": "riverton-plant",
                    "sensor_id": sensor,
                    "observed_at": T0 + timedelta(minutes=minute),
                    "method": method,
                    "value": 1.0,
                    "score": score,
                    "severity": severity,
                    "window": "60 readings",
                    "explanation": f"{method} {severity} on {sensor}",
                    "incident_id": incident_id,
                }
                for sensor, minute, method, severity, score in findings
            ],
        )

    shown = runner.invoke(app, ["incidents", "show", str(incident_id)])

    assert shown.exit_code == 0, shown.output
    order = [
        "* 2026-05-01T08:02:00+00:00  CRITICAL  limit_breach on rv-turbidity",  # sets the severity
        "* 2026-05-01T08:01:00+00:00  CRITICAL  rolling_zscore on rv-temperature",  # temperature's strongest
        "  2026-05-01T08:00:00+00:00  HIGH      rolling_zscore on rv-turbidity",
        "  2026-05-01T08:04:00+00:00  MEDIUM    rolling_zscore on rv-turbidity",
        "  2026-05-01T08:03:00+00:00  CRITICAL  combined on rv-turbidity",
    ]
    positions = [shown.output.index(text) for text in order]
    assert positions == sorted(positions), shown.output
