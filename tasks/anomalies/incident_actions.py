"""What operators do with incidents: list them, show one, acknowledge it, resolve it (or dismiss
it as a false alarm).

Acknowledging confirms an incident and resolving one as a false alarm dismisses it: the label,
who gave it and when are kept on the incident for the learned detector's next training. Each
change records its webhook event (`incident.updated`, `incident.resolved`) and an audit entry in
the same transaction. A municipality given narrows every lookup to it.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import Connection, Row, select, update

from tasks.analytics.readings import UTC_TIME
from tasks.anomalies.incident_severity import evidence_frame, evidence_order, load_incident_config
from tasks.anomalies.incident_store import event_data
from tasks.audit import record_audit
from tasks.models import Anomaly, Incident, Sensor, utcnow
from tasks.webhooks.outbox import record_event

STATUSES = ("open", "acknowledged", "resolved")
CONFIRMED, DISMISSED = "confirmed", "dismissed"


def _incidents(municipality_id: str | None):  # noqa: ANN202
    query = select(*Incident.__table__.columns, Sensor.parameter).join(
        Sensor, Sensor.id == Incident.sensor_id, isouter=True
    )
    if municipality_id is not None:
        query = query.where(Incident.municipality_id == municipality_id)
    return query


def list_incidents(
    conn: Connection, municipality_id: str | None = None, status: str | None = None, limit: int = 50
) -> list[Row]:
    """The latest incidents first (by their last anomaly), optionally of one status."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    query = _incidents(municipality_id)
    if status is not None:
        query = query.where(Incident.status == status)
    query = query.order_by(Incident.last_observed_at.desc(), Incident.id.desc()).limit(limit)
    return list(conn.execute(query))


def get_incident(conn: Connection, incident_id: int, municipality_id: str | None = None) -> Row:
    found = conn.execute(_incidents(municipality_id).where(Incident.id == incident_id)).first()
    if found is None:
        where = f" in municipality {municipality_id!r}" if municipality_id else ""
        raise ValueError(f"there is no incident {incident_id}{where}")
    return found


def incident_anomalies(conn: Connection, incident_id: int, limit: int = 20) -> list[dict]:
    """Its anomalies in the order that shows what set its severity (`evidence_order`): first the
    strongest finding of each parameter (`sets_severity` true), most severe for its parameter's
    weight first, then the rest, strongest and latest first. At most `limit`."""
    rows = conn.execute(
        select(
            Anomaly.id,
            Anomaly.station_id,
            Anomaly.sensor_id,
            Sensor.parameter,
            Anomaly.method,
            Anomaly.observed_at,
            Anomaly.severity,
            Anomaly.score,
            Anomaly.explanation,
        )
        .join(Sensor, Sensor.id == Anomaly.sensor_id, isouter=True)
        .where(Anomaly.incident_id == incident_id)
    ).all()
    schema = {
        "id": pl.Int64,
        "station_id": pl.String,
        "sensor_id": pl.String,
        "parameter": pl.String,
        "method": pl.String,
        "observed_at": UTC_TIME,
        "severity": pl.String,
        "score": pl.Float64,
        "explanation": pl.String,
    }
    held = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
    ordered = evidence_order(evidence_frame(held, None, load_incident_config()))
    return ordered.select(*schema, "sets_severity").head(limit).to_dicts()


def acknowledge(
    conn: Connection,
    incident_id: int,
    actor: str,
    *,
    note: str | None = None,
    municipality_id: str | None = None,
    now: datetime | None = None,
) -> Row:
    """Open -> acknowledged, labelled confirmed; records `incident.updated`."""
    found = get_incident(conn, incident_id, municipality_id)
    if found.status != "open":
        raise ValueError(f"incident {incident_id} is {found.status}, not open")
    now = now or utcnow()
    changes = {"status": "acknowledged", "label": CONFIRMED, "labelled_by": actor, "labelled_at": now}
    return _change(conn, found, changes, actor, note, now, "incident.updated", "incident.acknowledged")


def resolve(
    conn: Connection,
    incident_id: int,
    actor: str,
    *,
    dismiss: bool = False,
    note: str | None = None,
    municipality_id: str | None = None,
    now: datetime | None = None,
) -> Row:
    """Open or acknowledged -> resolved; `dismiss` labels it a false alarm. Records
    `incident.resolved`."""
    found = get_incident(conn, incident_id, municipality_id)
    if found.status == "resolved":
        raise ValueError(f"incident {incident_id} is already resolved")
    now = now or utcnow()
    changes = {"status": "resolved", "resolved_at": now}
    if dismiss:
        changes |= {"label": DISMISSED, "labelled_by": actor, "labelled_at": now}
    elif found.label is None:
        changes |= {"label": CONFIRMED, "labelled_by": actor, "labelled_at": now}
    action = "incident.dismissed" if dismiss else "incident.resolved"
    return _change(conn, found, changes, actor, note, now, "incident.resolved", action)


def _change(
    conn: Connection,
    found: Row,
    changes: dict,
    actor: str,
    note: str | None,
    now: datetime,
    event_type: str,
    action: str,
) -> Row:
    incident = found
    values = {**changes, "updated_at": now, **({"note": note} if note else {})}
    conn.execute(update(Incident).where(Incident.id == incident.id).values(**values))
    changed = get_incident(conn, incident.id)
    row = changed._asdict()
    data = {**event_data(incident.municipality_id, row), "label": row["label"], "changed_by": actor}
    if row["resolved_at"] is not None:
        data["resolved_at"] = row["resolved_at"].isoformat()
    record_event(
        conn,
        municipality_id=incident.municipality_id,
        event_type=event_type,
        data=data,
        # the same keys as the nightly flow's: an incident resolves once, whoever resolves it
        dedupe_key=f"incident.resolved:{incident.id}"
        if event_type == "incident.resolved"
        else f"incident.updated:{incident.id}:{changes['status']}",
        occurred_at=now,
    )
    record_audit(
        conn,
        municipality_id=incident.municipality_id,
        actor=actor,
        action=action,
        entity_type="incident",
        entity_id=incident.id,
        details={"from": incident.status, **{k: _plain(v) for k, v in values.items()}},
    )
    return changed


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
