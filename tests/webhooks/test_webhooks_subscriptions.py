from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select

from tasks.database import begin
from tasks.models import (
    AuditLog,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from tasks.webhooks.addresses import UnsafeEndpointError
from tasks.webhooks.outbox import record_event
from tasks.webhooks.signing import generate_secret
from tasks.webhooks.subscriptions import (
    SubscriptionError,
    add_subscription,
    disable_subscription,
    get_subscription,
    list_subscriptions,
    remove_subscription,
    rotate_secret,
    update_subscription,
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
            "min_severity": "HIGH",
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


def test_a_given_secret_is_kept_and_a_malformed_one_refused_without_echo(allow_loopback):
    own = str(generate_secret())
    with begin() as conn:
        sid, secret = add_subscription(conn, "riverton", URL, ["*"], secret=own)
    with pytest.raises(SubscriptionError) as caught:
        with begin() as conn:
            add_subscription(conn, "riverton", URL, ["*"], secret="not-a-secret-at-all")
    assert str(secret) == own and _stored(sid).secret == own
    assert str(caught.value) == "a webhook secret starts with whsec_"
    assert "not-a-secret" not in str(caught.value) and caught.value.__cause__ is None


def test_update_writes_and_audits_only_what_changes(allow_loopback):
    with begin() as conn:
        sid, _ = add_subscription(conn, "riverton", URL, ["alert.created"], "ops pager")
        row, changes = update_subscription(
            conn,
            sid,
            url=URL + "?v=2",
            event_types=["alert.created", "incident.opened"],
            description="ops pager",
            actor="ops:ana",
        )
        _, nothing = update_subscription(conn, sid, event_types=["alert.created", "incident.opened"])
    assert changes == {
        "url": [URL, URL + "?v=2"],
        "event_types": [["alert.created"], ["alert.created", "incident.opened"]],
    }
    assert nothing == {}
    assert (row["url"], row["event_types"], row["description"]) == (
        URL + "?v=2",
        ["alert.created", "incident.opened"],
        "ops pager",
    )
    with begin() as conn:
        audit = conn.execute(
            select(AuditLog.action, AuditLog.actor, AuditLog.details).order_by(AuditLog.id)
        ).all()
    assert [tuple(a) for a in audit[1:]] == [
        ("webhook_subscription.updated", "ops:ana", {"changes": changes})
    ]


def test_disabling_needs_a_reason_and_enabling_clears_it(allow_loopback):
    with begin() as conn:
        sid, _ = add_subscription(conn, "riverton", URL, ["*"])
    with pytest.raises(SubscriptionError, match="say why"):
        with begin() as conn:
            update_subscription(conn, sid, active=False, reason="  ")
    with pytest.raises(SubscriptionError, match="a reason goes with disabling"):
        with begin() as conn:
            update_subscription(conn, sid, reason="no")
    with begin() as conn:
        update_subscription(conn, sid, active=False, reason="receiver retired ")
    disabled = _stored(sid)
    with begin() as conn:
        update_subscription(conn, sid, active=True)
    enabled = _stored(sid)
    assert (disabled.is_active, disabled.disabled_reason) == (False, "receiver retired")
    assert (enabled.is_active, enabled.disabled_reason) == (True, None)


def test_subscription_of_another_municipality_is_not_found_when_scoped(allow_loopback):
    with begin() as conn:
        sid, _ = add_subscription(conn, "riverton", URL, ["*"])
        assert get_subscription(conn, sid, "riverton")["id"] == sid
        for change in (
            lambda: get_subscription(conn, sid, "lakeside"),
            lambda: update_subscription(conn, sid, description="x", municipality_id="lakeside"),
            lambda: rotate_secret(conn, sid, municipality_id="lakeside"),
            lambda: remove_subscription(conn, sid, municipality_id="lakeside"),
        ):
            with pytest.raises(SubscriptionError, match=f"no webhook subscription {sid} of lakeside"):
                change()


def test_rotation_overlap_can_be_chosen_within_bounds(allow_loopback):
    with begin() as conn:
        sid, _ = add_subscription(conn, "riverton", URL, ["*"])
    before = utcnow()
    with begin() as conn:
        rotate_secret(conn, sid, overlap_hours=2)
    expected = before + timedelta(hours=2)
    assert expected <= _stored(sid).previous_secret_expires_at <= expected + timedelta(seconds=30)
    for hours in (-1, 721):
        with pytest.raises(SubscriptionError, match="the overlap is 0 to 720 hours"):
            with begin() as conn:
                rotate_secret(conn, sid, overlap_hours=hours)


def test_remove_drops_deliveries_and_attempts_but_keeps_events_and_others(allow_loopback):
    with begin() as conn:
        gone, _ = add_subscription(conn, "riverton", URL, ["*"])
        kept, _ = add_subscription(conn, "riverton", URL, ["*"])
        event_id = record_event(
            conn, municipality_id="riverton", event_type="alert.created", data={}, dedupe_key="e1"
        )
        delivery_ids = dict(
            conn.execute(select(WebhookDelivery.subscription_id, WebhookDelivery.id)).all()
        )
        conn.execute(
            insert(WebhookDeliveryAttempt).values(
                municipality_id="riverton", delivery_id=delivery_ids[gone], status_code=500
            )
        )
        counts = remove_subscription(conn, gone)
    with begin() as conn:
        left = conn.execute(select(WebhookDelivery.subscription_id, WebhookDelivery.event_id)).all()
        attempts = conn.execute(select(WebhookDeliveryAttempt.id)).all()
        events = conn.execute(select(WebhookEvent.id)).scalars().all()
        subscriptions = [s["id"] for s in list_subscriptions(conn, None)]
    assert counts == {"pending": 1}
    assert [tuple(r) for r in left] == [(kept, event_id)]
    assert attempts == [] and events == [event_id] and subscriptions == [kept]
