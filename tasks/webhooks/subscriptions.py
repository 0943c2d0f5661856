"""Webhook subscriptions of a municipality: add, list and show (never with secrets), update,
enable or disable, rotate the secret, remove. Every change is audited without the secret.

A subscription's `min_severity` (LOW, MEDIUM, HIGH or CRITICAL; default HIGH) chooses the alerts
it receives: the runs of anomalies at least that severe (see tasks/anomalies/alerts.py). It
concerns only `alert.created` and `alert.resolved`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, delete, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from tasks.anomalies.detectors_base import SEVERITIES
from tasks.audit import record_audit
from tasks.models import (
    Municipality,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookSubscription,
    utcnow,
)
from tasks.settings import get_settings
from tasks.webhooks.addresses import check_endpoint
from tasks.webhooks.outbox import EVENT_TYPES
from tasks.webhooks.signing import WebhookSecret, generate_secret, validate_secret

ACTOR = "waterline"
DEFAULT_MIN_SEVERITY = "HIGH"
MAX_OVERLAP_HOURS = 720  # 30 days

# What list and show return: every column except secret and previous_secret.
_PUBLIC_COLUMNS = (
    WebhookSubscription.id,
    WebhookSubscription.municipality_id,
    WebhookSubscription.url,
    WebhookSubscription.event_types,
    WebhookSubscription.min_severity,
    WebhookSubscription.is_active,
    WebhookSubscription.disabled_reason,
    WebhookSubscription.description,
    WebhookSubscription.created_at,
    WebhookSubscription.previous_secret_expires_at.label("rotating_until"),
)


class SubscriptionError(ValueError):
    """A subscription cannot be added or changed; the message never contains a secret."""


def validate_event_types(event_types: list[str]) -> list[str]:
    """The event types, de-duplicated in order; each must be a known type or "*"."""
    if isinstance(event_types, str):
        event_types = [event_types]
    wanted = list(dict.fromkeys(t.strip() for t in event_types if t.strip()))
    if not wanted:
        raise SubscriptionError('choose at least one event type (or "*" for all)')
    unknown = [t for t in wanted if t != "*" and t not in EVENT_TYPES]
    if unknown:
        raise SubscriptionError(
            f"unknown event type(s) {', '.join(map(repr, unknown))}; known: {', '.join(EVENT_TYPES)}"
        )
    return ["*"] if "*" in wanted else wanted


def validate_min_severity(min_severity: str) -> str:
    """The severity in capitals; it must be one of LOW, MEDIUM, HIGH, CRITICAL."""
    wanted = min_severity.strip().upper()
    if wanted not in SEVERITIES:
        raise SubscriptionError(f"unknown severity {min_severity!r}; choose one of {', '.join(SEVERITIES)}")
    return wanted


def _checked_secret(secret: str | None) -> WebhookSecret:
    if secret is None:
        return generate_secret()
    try:
        return validate_secret(secret)
    except ValueError as exc:
        raise SubscriptionError(str(exc)) from None


def add_subscription(
    conn: Connection,
    municipality_id: str,
    url: str,
    event_types: list[str],
    description: str | None = None,
    *,
    secret: str | None = None,
    min_severity: str = DEFAULT_MIN_SEVERITY,
    actor: str = ACTOR,
) -> tuple[int, WebhookSecret]:
    """Subscribe `url` to a municipality's events; returns (id, secret). Show the secret once.

    The secret is generated unless one is given (`whsec_` + base64 of 24 to 64 bytes);
    `min_severity` chooses the alerts it receives.
    """
    types = validate_event_types(event_types)
    severity = validate_min_severity(min_severity)
    check_endpoint(url)
    if not conn.execute(select(exists().where(Municipality.id == municipality_id))).scalar():
        raise SubscriptionError(f"unknown municipality {municipality_id!r}")
    secret = _checked_secret(secret)
    try:
        subscription_id = conn.execute(
            insert(WebhookSubscription)
            .values(
                municipality_id=municipality_id,
                url=url,
                event_types=types,
                min_severity=severity,
                secret=str(secret),
                is_active=True,
                description=description,
                created_at=utcnow(),
            )
            .returning(WebhookSubscription.id)
        ).scalar_one()
    except DBAPIError as exc:  # the statement's parameters include the secret: do not chain them
        reason = type(exc.orig).__name__
        raise SubscriptionError(f"could not store the subscription ({reason})") from None
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=actor,
        action="webhook_subscription.added",
        entity_type="webhook_subscription",
        entity_id=subscription_id,
        details={
            "url": url,
            "event_types": types,
            "min_severity": severity,
            "description": description,
        },
    )
    return subscription_id, secret


def list_subscriptions(conn: Connection, municipality_id: str | None) -> list[dict]:
    """A municipality's subscriptions (every one when None), oldest first, without their secrets."""
    query = select(*_PUBLIC_COLUMNS).order_by(WebhookSubscription.id)
    if municipality_id is not None:
        query = query.where(WebhookSubscription.municipality_id == municipality_id)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_subscription(conn: Connection, subscription_id: int, municipality_id: str | None = None) -> dict:
    """One subscription without its secrets, or SubscriptionError; `municipality_id` scopes it."""
    query = select(*_PUBLIC_COLUMNS).where(WebhookSubscription.id == subscription_id)
    if municipality_id is not None:
        query = query.where(WebhookSubscription.municipality_id == municipality_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        where = f" of {municipality_id}" if municipality_id is not None else ""
        raise SubscriptionError(f"no webhook subscription {subscription_id}{where}")
    return dict(row)


def _municipality_of(conn: Connection, subscription_id: int, municipality_id: str | None = None) -> str:
    return get_subscription(conn, subscription_id, municipality_id)["municipality_id"]


def update_subscription(
    conn: Connection,
    subscription_id: int,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    min_severity: str | None = None,
    active: bool | None = None,
    reason: str | None = None,
    municipality_id: str | None = None,
    actor: str = ACTOR,
) -> tuple[dict, dict]:
    """Change a subscription's URL, event types, description, alert severity or state; returns
    (row, changes).

    `active=False` needs a `reason` (kept as `disabled_reason`); `active=True` clears it. Only
    fields that really change are written and audited as `{field: [before, after]}`.
    """
    if active is False and not (reason or "").strip():
        raise SubscriptionError("say why the subscription is disabled (--reason)")
    if reason is not None and active is not False:
        raise SubscriptionError("a reason goes with disabling the subscription (--disable)")
    before = get_subscription(conn, subscription_id, municipality_id)
    wanted: dict = {}
    if url is not None:
        check_endpoint(url)
        wanted["url"] = url
    if event_types is not None:
        wanted["event_types"] = validate_event_types(event_types)
    if description is not None:
        wanted["description"] = description or None
    if min_severity is not None:
        wanted["min_severity"] = validate_min_severity(min_severity)
    if active is True:
        wanted |= {"is_active": True, "disabled_reason": None}
    elif active is False:
        wanted |= {"is_active": False, "disabled_reason": reason.strip()}
    if not wanted:
        raise SubscriptionError(
            "nothing to update: give --url, --events, --description, --min-severity, --enable or --disable"
        )
    changes = {k: [before[k], v] for k, v in wanted.items() if before[k] != v}
    if not changes:
        return before, {}
    conn.execute(
        update(WebhookSubscription)
        .where(
            WebhookSubscription.id == subscription_id,
            WebhookSubscription.municipality_id == before["municipality_id"],
        )
        .values({k: after for k, (_, after) in changes.items()})
    )
    record_audit(
        conn,
        municipality_id=before["municipality_id"],
        actor=actor,
        action=_update_action(active, changes),
        entity_type="webhook_subscription",
        entity_id=subscription_id,
        details={"changes": changes},
    )
    return get_subscription(conn, subscription_id), changes


def _update_action(active: bool | None, changes: dict) -> str:
    if "is_active" in changes:
        return "webhook_subscription.enabled" if active else "webhook_subscription.disabled"
    return "webhook_subscription.updated"


def rotate_secret(
    conn: Connection,
    subscription_id: int,
    *,
    overlap_hours: float | None = None,
    municipality_id: str | None = None,
    actor: str = ACTOR,
) -> WebhookSecret:
    """Give a subscription a new secret; the old one keeps signing for the overlap window.

    The overlap defaults to `webhook_secret_overlap_hours`; 0 retires the old secret at once.
    A secret older than the current one (an earlier rotation still overlapping) stops signing.
    """
    hours = get_settings().webhook_secret_overlap_hours if overlap_hours is None else overlap_hours
    if not 0 <= hours <= MAX_OVERLAP_HOURS:
        raise SubscriptionError(f"the overlap is 0 to {MAX_OVERLAP_HOURS} hours, not {hours:g}")
    municipality_id = _municipality_of(conn, subscription_id, municipality_id)
    until = utcnow() + timedelta(hours=hours)
    secret = generate_secret()
    try:
        conn.execute(
            update(WebhookSubscription)
            .where(
                WebhookSubscription.id == subscription_id,
                WebhookSubscription.municipality_id == municipality_id,
            )
            .values(
                previous_secret=WebhookSubscription.secret,
                previous_secret_expires_at=until,
                secret=str(secret),
            )
        )
    except DBAPIError as exc:
        reason = type(exc.orig).__name__
        raise SubscriptionError(f"could not rotate the secret ({reason})") from None
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=actor,
        action="webhook_subscription.secret_rotated",
        entity_type="webhook_subscription",
        entity_id=subscription_id,
        details={"previous_secret_expires_at": until.isoformat(), "overlap_hours": hours},
    )
    return secret


def disable_subscription(conn: Connection, subscription_id: int, reason: str, *, actor: str = ACTOR) -> None:
    """Stop sending to a subscription; its undelivered events stay pending."""
    municipality_id = _municipality_of(conn, subscription_id)
    conn.execute(
        update(WebhookSubscription)
        .where(
            WebhookSubscription.id == subscription_id,
            WebhookSubscription.municipality_id == municipality_id,
        )
        .values(is_active=False, disabled_reason=reason)
    )
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=actor,
        action="webhook_subscription.disabled",
        entity_type="webhook_subscription",
        entity_id=subscription_id,
        details={"reason": reason},
    )


def remove_subscription(
    conn: Connection,
    subscription_id: int,
    *,
    municipality_id: str | None = None,
    actor: str = ACTOR,
) -> dict:
    """Delete a subscription with its deliveries and their attempts; the events stay in the outbox.

    Returns how many deliveries went, by status (pending ones will never be sent).
    """
    subscription = get_subscription(conn, subscription_id, municipality_id)
    m = subscription["municipality_id"]
    mine = (WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.municipality_id == m)
    counts = dict(
        conn.execute(
            select(WebhookDelivery.status, func.count()).where(*mine).group_by(WebhookDelivery.status)
        ).all()
    )
    conn.execute(
        delete(WebhookDeliveryAttempt).where(
            WebhookDeliveryAttempt.municipality_id == m,
            WebhookDeliveryAttempt.delivery_id.in_(select(WebhookDelivery.id).where(*mine)),
        )
    )
    conn.execute(delete(WebhookDelivery).where(*mine))
    conn.execute(
        delete(WebhookSubscription).where(
            WebhookSubscription.id == subscription_id, WebhookSubscription.municipality_id == m
        )
    )
    record_audit(
        conn,
        municipality_id=m,
        actor=actor,
        action="webhook_subscription.removed",
        entity_type="webhook_subscription",
        entity_id=subscription_id,
        details={"url": subscription["url"], "deliveries": counts},
    )
    return counts
