"""An endpoint's deliveries with their attempt history, and redelivery of dead letters.

A dead letter is a delivery whose retry schedule ran out (`status = 'dead'`). Redelivering puts
it back to `pending`, due now, with its attempt count at 0 (the schedule starts over); its
event, and so its `webhook-id`, stay the same, so a receiver can tell a resend from a new event.
The dispatch flow sends it on its next run; the earlier attempts stay in the history.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select, update

from tasks.audit import record_audit
from tasks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEvent, utcnow
from tasks.webhooks.subscriptions import ACTOR, SubscriptionError, get_subscription

STATUSES = ("pending", "succeeded", "dead")
REDELIVERABLE = ("dead", "succeeded")
MAX_LISTED = 1_000
_AGO = re.compile(r"(\d+)\s*([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """A UTC instant from `2026-11-25` (its midnight), `2026-11-25T06:00` (UTC unless it names
    an offset) or an age such as `30m`, `6h`, `2d`; a sentence naming `option` otherwise."""
    value = text.strip()
    ago = _AGO.fullmatch(value)
    if ago:
        return (now or utcnow()) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{option} is a time such as 2026-11-25, 2026-11-25T06:00 or 6h (ago), not {text!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def list_deliveries(
    conn: Connection,
    subscription_id: int,
    *,
    status: str | None = None,
    limit: int = 20,
    municipality_id: str | None = None,
) -> list[dict]:
    """An endpoint's newest deliveries (optionally of one status), each with its attempts, oldest first."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"--status is one of {', '.join(STATUSES)}, not {status!r}")
    if not 1 <= limit <= MAX_LISTED:
        raise ValueError(f"--limit is 1 to {MAX_LISTED}, not {limit}")
    m = get_subscription(conn, subscription_id, municipality_id)["municipality_id"]
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.event_id,
            WebhookEvent.event_type,
            WebhookDelivery.status,
            WebhookDelivery.attempt_count,
            WebhookDelivery.next_attempt_at,
            WebhookDelivery.last_status_code,
            WebhookDelivery.last_error,
            WebhookDelivery.created_at,
            WebhookDelivery.updated_at,
        )
        .join(
            WebhookEvent,
            (WebhookEvent.id == WebhookDelivery.event_id) & (WebhookEvent.municipality_id == m),
        )
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.municipality_id == m)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    deliveries = [dict(r) for r in conn.execute(query).mappings()]
    attempts = conn.execute(
        select(
            WebhookDeliveryAttempt.delivery_id,
            WebhookDeliveryAttempt.attempted_at,
            WebhookDeliveryAttempt.status_code,
            WebhookDeliveryAttempt.latency_ms,
            WebhookDeliveryAttempt.response_body,
            WebhookDeliveryAttempt.error,
        )
        .where(
            WebhookDeliveryAttempt.municipality_id == m,
            WebhookDeliveryAttempt.delivery_id.in_([d["id"] for d in deliveries]),
        )
        .order_by(WebhookDeliveryAttempt.attempted_at, WebhookDeliveryAttempt.id)
    ).mappings()
    history: dict[int, list[dict]] = {d["id"]: [] for d in deliveries}
    for a in attempts:  # at most `limit` deliveries x their few attempts
        history[a["delivery_id"]].append({k: v for k, v in a.items() if k != "delivery_id"})
    return [{**d, "attempts": history[d["id"]]} for d in deliveries]


def _restart(conn: Connection, *where) -> list[int]:
    """Deliveries matching `where` back to pending, due now, attempt count 0; their ids."""
    now = utcnow()
    return sorted(
        conn.execute(
            update(WebhookDelivery)
            .where(*where)
            .values(status="pending", attempt_count=0, next_attempt_at=now, updated_at=now)
            .returning(WebhookDelivery.id)
        ).scalars()
    )


def redeliver_delivery(
    conn: Connection,
    delivery_id: int,
    *,
    municipality_id: str | None = None,
    actor: str = ACTOR,
) -> dict:
    """Put one dead (or already succeeded) delivery back in the queue, due now, same webhook-id."""
    query = select(
        WebhookDelivery.id,
        WebhookDelivery.municipality_id,
        WebhookDelivery.subscription_id,
        WebhookDelivery.event_id,
        WebhookDelivery.status,
        WebhookDelivery.next_attempt_at,
    ).where(WebhookDelivery.id == delivery_id)
    if municipality_id is not None:
        query = query.where(WebhookDelivery.municipality_id == municipality_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        where = f" of {municipality_id}" if municipality_id is not None else ""
        raise SubscriptionError(f"no webhook delivery {delivery_id}{where}")
    if row["status"] not in REDELIVERABLE:
        due = row["next_attempt_at"].isoformat(timespec="seconds") if row["next_attempt_at"] else "-"
        raise SubscriptionError(
            f"webhook delivery {delivery_id} is still pending (next attempt {due}); "
            "only dead or succeeded deliveries are redelivered"
        )
    _restart(
        conn,
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.municipality_id == row["municipality_id"],
        WebhookDelivery.status == row["status"],
    )
    record_audit(
        conn,
        municipality_id=row["municipality_id"],
        actor=actor,
        action="webhook_delivery.redelivered",
        entity_type="webhook_delivery",
        entity_id=delivery_id,
        details={"event_id": row["event_id"], "status_before": row["status"]},
    )
    kept = ("id", "municipality_id", "subscription_id", "event_id")
    return {**{k: row[k] for k in kept}, "status_before": row["status"], "status": "pending"}


def redeliver_failed_since(
    conn: Connection,
    subscription_id: int,
    since: datetime,
    *,
    municipality_id: str | None = None,
    actor: str = ACTOR,
) -> list[int]:
    """Put every dead letter of an endpoint that died at or after `since` back in the queue.

    Returns the delivery ids, oldest first; one audit entry records them all.
    """
    m = get_subscription(conn, subscription_id, municipality_id)["municipality_id"]
    ids = _restart(
        conn,
        WebhookDelivery.subscription_id == subscription_id,
        WebhookDelivery.municipality_id == m,
        WebhookDelivery.status == "dead",
        WebhookDelivery.updated_at >= since,
    )
    record_audit(
        conn,
        municipality_id=m,
        actor=actor,
        action="webhook_deliveries.redelivered",
        entity_type="webhook_subscription",
        entity_id=subscription_id,
        details={
            "failed_since": since.isoformat(),
            "count": len(ids),
            "delivery_ids": ids[:MAX_LISTED],
        },
    )
    return ids
