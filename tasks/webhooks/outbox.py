"""The outbox: events are recorded in the same transaction as the change that caused them.

Each event is fanned out, when it is recorded, to the active subscriptions of its own
municipality that chose its type (or "*"). An alert event (`alert.created`, `alert.resolved`)
carries its alert's level, and goes only to endpoints whose `min_severity` is that level: each
endpoint hears of a run of anomalies once, at its own threshold (see tasks/anomalies/alerts.py).
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from tasks.models import WebhookDelivery, WebhookEvent, WebhookSubscription, utcnow

EVENT_TYPES = (
    "alert.created",
    "alert.resolved",
    "incident.opened",
    "incident.updated",
    "incident.resolved",
    "sensor.offline",
    "sensor.online",
    "sensor.maintenance_due",
    "compliance.violation",
    "report.published",
    "pipeline.failed",
    "webhook.test",
)


def new_event_id() -> str:
    """A sortable, unique message id (`msg_` + milliseconds + randomness), used as `webhook-id`."""
    return f"msg_{int(time.time() * 1000):013x}{secrets.token_hex(8)}"


def record_event(
    conn: Connection,
    *,
    municipality_id: str,
    event_type: str,
    data: dict,
    dedupe_key: str,
    occurred_at: datetime | None = None,
    alert_level: str | None = None,
) -> str | None:
    """Write one event and its deliveries to the outbox, once per `dedupe_key`.

    Runs inside the caller's transaction, so the event exists exactly when the change does.
    Deliveries go to the municipality's active subscriptions of this type; with `alert_level`
    (alert events) only to those whose `min_severity` is that level, and an alert event no
    subscription wants is not written at all (alerts are tracked at every level; most levels have
    no listener). Returns the new event id, or None when an event with this key was already
    recorded or, for an alert, nobody listens.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    event_id = new_event_id()
    now = occurred_at or utcnow()
    payload = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    subscriptions = conn.execute(
        select(
            WebhookSubscription.id, WebhookSubscription.event_types, WebhookSubscription.min_severity
        ).where(
            WebhookSubscription.municipality_id == municipality_id,
            WebhookSubscription.is_active.is_(True),
        )
    ).all()
    wanted = [
        sid
        for sid, types, min_severity in subscriptions
        if ("*" in types or event_type in types) and alert_level in (None, min_severity)
    ]
    if alert_level is not None and not wanted:
        return None  # an alert of a level no endpoint of the town listens to: nothing to tell
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(WebhookEvent)
        .values(
            id=event_id,
            municipality_id=municipality_id,
            event_type=event_type,
            dedupe_key=dedupe_key,
            payload=payload,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WebhookEvent.id)
    ).scalar_one_or_none()
    if inserted is None:  # (rowcount is not reliable for ON CONFLICT through psycopg)
        return None
    if wanted:
        conn.execute(
            WebhookDelivery.__table__.insert(),
            [
                {
                    "municipality_id": municipality_id,
                    "event_id": event_id,
                    "subscription_id": sid,
                    "status": "pending",
                    "attempt_count": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for sid in wanted
            ],
        )
    return event_id
