"""Webhook subscriptions of a municipality: add, list (never with secrets), rotate, disable."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, exists, insert, select, update
from sqlalchemy.exc import DBAPIError

from tasks.audit import record_audit
from tasks.models import Municipality, WebhookSubscription, utcnow
from tasks.settings import get_settings
from tasks.webhooks.addresses import check_endpoint
from tasks.webhooks.outbox import EVENT_TYPES
from tasks.webhooks.signing import WebhookSecret, generate_secret

ACTOR = "waterline"

# What list_subscriptions shows: every column except secret and previous_secret.
_PUBLIC_COLUMNS = (
    WebhookSubscription.id,
    WebhookSubscription.municipality_id,
    WebhookSubscription.url,
    WebhookSubscription.event_types,
    WebhookSubscription.is_active,
    WebhookSubscription.disabled_reason,
    WebhookSubscription.description,
    WebhookSubscription.created_at,
    WebhookSubscription.previous_secret_expires_at,
)


class SubscriptionError(ValueError):
    """A subscription cannot be added or changed; the message never contains a secret."""


def validate_event_types(event_types: list[str]) -> list[str]:
    """The event types, de-duplicated in order; each must be a known type or "*"."""
    if isinstance(event_types, str):
        event_types = [event_types]
    wanted = list(dict.fromkeys(event_types))
    if not wanted:
        raise SubscriptionError('choose at least one event type (or "*" for all)')
    unknown = [t for t in wanted if t != "*" and t not in EVENT_TYPES]
    if unknown:
        raise SubscriptionError(
            f"unknown event type(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EVENT_TYPES)}"
        )
    return ["*"] if "*" in wanted else wanted


def add_subscription(
    conn: Connection,
    municipality_id: str,
    url: str,
    event_types: list[str],
    description: str | None = None,
    *,
    actor: str = ACTOR,
) -> tuple[int, WebhookSecret]:
    """Subscribe `url` to a municipality's events; returns (id, secret). Show the secret once."""
    types = validate_event_types(event_types)
    check_endpoint(url)
    if not conn.execute(select(exists().where(Municipality.id == municipality_id))).scalar():
        raise SubscriptionError(f"unknown municipality {municipality_id!r}")
    secret = generate_secret()
    try:
        subscription_id = conn.execute(
            insert(WebhookSubscription)
            .values(
                municipality_id=municipality_id,
                url=url,
                event_types=types,
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
        details={"url": url, "event_types": types},
    )
    return subscription_id, secret


def list_subscriptions(conn: Connection, municipality_id: str) -> list[dict]:
    """A municipality's subscriptions, oldest first, without their secrets."""
    rows = conn.execute(
        select(*_PUBLIC_COLUMNS)
        .where(WebhookSubscription.municipality_id == municipality_id)
        .order_by(WebhookSubscription.id)
    ).mappings()
    return [
        {
            **{k: v for k, v in row.items() if k != "previous_secret_expires_at"},
            "rotating_until": row["previous_secret_expires_at"],
        }
        for row in rows
    ]


def _municipality_of(conn: Connection, subscription_id: int) -> str:
    municipality_id = conn.execute(
        select(WebhookSubscription.municipality_id).where(WebhookSubscription.id == subscription_id)
    ).scalar()
    if municipality_id is None:
        raise SubscriptionError(f"no webhook subscription {subscription_id}")
    return municipality_id


def rotate_secret(conn: Connection, subscription_id: int, *, actor: str = ACTOR) -> WebhookSecret:
    """Give a subscription a new secret; the old one keeps signing for the overlap window."""
    municipality_id = _municipality_of(conn, subscription_id)
    now = utcnow()
    overlap = timedelta(hours=get_settings().webhook_secret_overlap_hours)
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
                previous_secret_expires_at=now + overlap,
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
        details={"previous_secret_expires_at": (now + overlap).isoformat()},
    )
    return secret


def disable_subscription(
    conn: Connection, subscription_id: int, reason: str, *, actor: str = ACTOR
) -> None:
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
