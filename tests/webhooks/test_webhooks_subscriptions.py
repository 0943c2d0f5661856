from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tasks.database import begin
from tasks.models import AuditLog, WebhookSubscription, utcnow
from tasks.webhooks.addresses import UnsafeEndpointError
from tasks.webhooks.subscriptions import (
    SubscriptionError,
    add_subscription,
    disable_subscription,
    list_subscriptions,
    rotate_secret,
)

URL = "http://127.0.0.1:9/hooks"


def _stored(subscription_id):
    with begin() as conn:
        row = (
            conn.execute(
                select(WebhookSubscription.__table__).where(
                    WebhookSubscription.id == subscription_id
                )
            )
            .mappings()
            .one()
        )
    return SimpleNamespace(**row)


def test_added_subscription_is_listed_without_its_secret(allow_loopback):
    with begin() as conn:
        sid, secret = add_subscription(
            conn, "riverton", URL, ["alert.created", "alert.created"], "ops pager"
        )
        listed = list_subscriptions(conn, "riverton")
        other = list_subscriptions(conn, "lakeside")
    assert _stored(sid).secret == str(secret)
    assert len(listed) == 1
    created_at = listed[0]["created_at"]
    assert listed == [
        {
            "id": sid,
            "municipality_id": "riverton",
            "url": URL,
            "event_types": ["alert.created"],
            "is_active": True,
            "disabled_reason": None,
            "description": "ops pager",
            "created_at": created_at,
            "rotating_until": None,
        }
    ]
    assert other == []
    assert str(secret) not in repr(listed) and "whsec_" not in repr(listed)
    assert str(secret) not in repr((sid, secret))


def test_wildcard_swallows_other_types_and_unknown_types_are_refused(allow_loopback):
    with begin() as conn:
        sid, _ = add_subscription(conn, "riverton", URL, ["alert.created", "*"])
        with pytest.raises(SubscriptionError, match="unknown event type"):
            add_subscription(conn, "riverton", URL, ["alert.raised"])
        with pytest.raises(SubscriptionError, match="at least one"):
            add_subscription(conn, "riverton", URL, [])
    assert _stored(sid).event_types == ["*"]


def test_private_endpoint_is_refused_without_allow_list(database, monkeypatch):
    monkeypatch.delenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", raising=False)
    with pytest.raises(UnsafeEndpointError, match="private or reserved"):
        with begin() as conn:
            add_subscription(conn, "riverton", "http://169.254.169.254/latest", ["*"])


def test_errors_never_carry_the_secret(allow_loopback):
    with pytest.raises(SubscriptionError) as caught:
        with begin() as conn:
            add_subscription(conn, "nowhere", URL, ["*"])
    assert "whsec_" not in str(caught.value) and caught.value.__cause__ is None
    with pytest.raises(SubscriptionError, match="no webhook subscription 999") as caught:
        with begin() as conn:
            rotate_secret(conn, 999)
    assert "whsec_" not in str(caught.value)


def test_rotation_keeps_the_old_secret_for_the_overlap(allow_loopback):
    with begin() as conn:
        sid, first = add_subscription(conn, "riverton", URL, ["*"])
    before = utcnow()
    with begin() as conn:
        second = rotate_secret(conn, sid)
        listed = list_subscriptions(conn, "riverton")
    row = _stored(sid)
    assert (row.secret, row.previous_secret) == (str(second), str(first))
    expected = before + timedelta(hours=24)
    assert expected <= row.previous_secret_expires_at <= expected + timedelta(seconds=30)
    assert listed[0]["rotating_until"] == row.previous_secret_expires_at
    assert str(first) not in repr(listed) and str(second) not in repr(listed)


def test_disable_records_reason_and_audit(allow_loopback):
    with begin() as conn:
        sid, secret = add_subscription(conn, "riverton", URL, ["*"])
        rotate_secret(conn, sid)
        disable_subscription(conn, sid, "receiver retired")
    row = _stored(sid)
    assert (row.is_active, row.disabled_reason) == (False, "receiver retired")
    with begin() as conn:
        audit = conn.execute(
            select(AuditLog.action, AuditLog.entity_id, AuditLog.details).order_by(AuditLog.id)
        ).all()
    assert [(a, e) for a, e, _ in audit] == [
        ("webhook_subscription.added", str(sid)),
        ("webhook_subscription.secret_rotated", str(sid)),
        ("webhook_subscription.disabled", str(sid)),
    ]
    assert "whsec_" not in repr(audit)
