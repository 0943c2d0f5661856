"""Receivers that misbehave, and dispatch runs that die: the schedule is followed, every attempt is
recorded, every event arrives under its own webhook-id, none is lost (delivery is at least once)."""

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import insert, select, update

from tasks.database import begin
from tasks.models import (
    AuditLog,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookSubscription,
    utcnow,
)
from tasks.settings import reset_settings
from tasks.webhooks import delivery
from tasks.webhooks.delivery import deliver_endpoint, due_subscription_ids
from tasks.webhooks.ledger import FAILING_DAYS_BEFORE_DISABLING, IN_FLIGHT, INTERRUPTED, failing_since
from tasks.webhooks.outbox import record_event
from tasks.webhooks.retries import RETRY_SCHEDULE_SECONDS
from tasks.webhooks.subscriptions import add_subscription

FIRST_RETRY = RETRY_SCHEDULE_SECONDS[1]


def _subscribe(receiver, municipality_id="riverton"):
    with begin() as conn:
        sid, secret = add_subscription(conn, municipality_id, receiver.url, ["*"])
    receiver.secrets.append(str(secret))
    return sid


def _events(count, municipality_id="riverton", prefix="e"):
    with begin() as conn:
        return [
            record_event(
                conn,
                municipality_id=municipality_id,
                event_type="alert.created",
                data={"n": n},
                dedupe_key=f"{prefix}{n}",
            )
            for n in range(count)
        ]


def _deliveries(sid):
    """Each delivery of `sid` with its event id and its attempts (oldest first)."""
    with begin() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(WebhookDelivery.__table__)
                .where(WebhookDelivery.subscription_id == sid)
                .order_by(WebhookDelivery.id)
            ).mappings()
        ]
        for row in rows:
            row["attempts"] = [
                dict(a)
                for a in conn.execute(
                    select(WebhookDeliveryAttempt.__table__)
                    .where(WebhookDeliveryAttempt.delivery_id == row["id"])
                    .order_by(WebhookDeliveryAttempt.id)
                ).mappings()
            ]
    return rows


def _subscription(conn, sid):
    row = conn.execute(
        select(WebhookSubscription.is_active, WebhookSubscription.disabled_reason).where(
            WebhookSubscription.id == sid
        )
    ).one()
    return {"is_active": row.is_active, "disabled_reason": row.disabled_reason}


def _make_due(sid=None):
    """Time passes: every pending delivery's next attempt (or lease) is now."""
    query = update(WebhookDelivery).where(WebhookDelivery.status == "pending")
    if sid is not None:
        query = query.where(WebhookDelivery.subscription_id == sid)
    with begin() as conn:
        conn.execute(query.values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def _first_retry_delay(row):
    return (row["next_attempt_at"] - row["attempts"][-1]["attempted_at"]).total_seconds()


def _assert_first_retry_on_schedule(row):
    assert FIRST_RETRY * 0.9 <= _first_retry_delay(row) <= FIRST_RETRY * 1.1


def test_timeout_is_a_recorded_failure_and_the_retry_carries_the_same_id(
    allow_loopback, receiver, monkeypatch
):
    monkeypatch.setenv("WATERLINE_WEBHOOK_TIMEOUT_SECONDS", "0.3")
    reset_settings()
    sid = _subscribe(receiver)
    [event_id] = _events(1)
    receiver.delay_seconds = 1.0

    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    [attempt] = row["attempts"]
    assert (row["status"], row["attempt_count"]) == ("pending", 1)
    assert (attempt["status_code"], attempt["error"]) == (None, "no response within 0.3 s")
    assert 300 <= attempt["latency_ms"] < 1000  # the client gave up; it did not wait the answer out
    _assert_first_retry_on_schedule(row)

    receiver.delay_seconds = 0
    _make_due(sid)
    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    assert row["status"] == "succeeded"
    assert [a["status_code"] for a in row["attempts"]] == [None, 200]
    receiver.wait_for_requests(2)
    assert receiver.ids == [event_id, event_id]
    assert all(all(r.verified.values()) for r in receiver.requests)


def test_slow_answer_within_the_timeout_succeeds_with_its_latency(allow_loopback, receiver):
    sid = _subscribe(receiver)
    _events(1)
    receiver.delay_seconds = 0.4

    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    [attempt] = row["attempts"]
    assert (row["status"], attempt["status_code"], attempt["error"]) == ("succeeded", 200, None)
    assert attempt["latency_ms"] >= 400


def test_connection_reset_is_a_recorded_failure_then_resent_with_the_same_id(allow_loopback, receiver):
    sid = _subscribe(receiver)
    [event_id] = _events(1)
    receiver.reset_connections(1)

    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    [attempt] = row["attempts"]
    assert (attempt["status_code"], attempt["response_body"]) == (None, None)
    assert attempt["error"] == "the endpoint reset the connection"
    assert (row["status"], row["last_error"]) == ("pending", attempt["error"])
    _assert_first_retry_on_schedule(row)

    _make_due(sid)
    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    assert row["status"] == "succeeded" and len(row["attempts"]) == 2
    assert receiver.ids == [event_id, event_id]


def test_429_with_retry_after_as_a_date_waits_that_long_then_delivers(allow_loopback, receiver):
    sid = _subscribe(receiver)
    [event_id] = _events(1)
    later = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    receiver.respond((429, {"Retry-After": format_datetime(later, usegmt=True)}, b"busy"))

    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    assert (row["status"], row["last_status_code"]) == ("pending", 429)
    assert abs((row["next_attempt_at"] - later).total_seconds()) <= 1
    assert deliver_endpoint.fn(sid)["rows"] == 0  # the endpoint asked for two hours: nothing sent

    _make_due(sid)
    deliver_endpoint.fn(sid)

    [row] = _deliveries(sid)
    assert [a["status_code"] for a in row["attempts"]] == [429, 200]
    assert receiver.ids == [event_id, event_id]


def test_410_gone_disables_the_endpoint_with_an_audit_entry(allow_loopback, receiver):
    sid = _subscribe(receiver)
    _events(1)
    receiver.respond((410, {}, b"gone"))

    deliver_endpoint.fn(sid)

    with begin() as conn:
        subscription = _subscription(conn, sid)
        audit = conn.execute(
            select(AuditLog.actor, AuditLog.details).where(AuditLog.action == "webhook_subscription.disabled")
        ).all()
    assert subscription["is_active"] is False
    assert subscription["disabled_reason"].startswith("the endpoint answered 410 Gone at ")
    assert audit == [("webhook-delivery", {"reason": subscription["disabled_reason"]})]
    [row] = _deliveries(sid)
    assert row["status"] == "pending"  # kept: sent if the endpoint is enabled again


def test_endpoint_down_then_back_receives_every_event_under_its_id(allow_loopback, receiver):
    sid = _subscribe(receiver)
    event_ids = _events(3)
    receiver.stop()

    figures = deliver_endpoint.fn(sid)

    assert figures["details"]["failed"] == 3
    rows = _deliveries(sid)
    assert [[a["error"] for a in r["attempts"]] for r in rows] == [["could not connect to the endpoint"]] * 3
    for row in rows:
        _assert_first_retry_on_schedule(row)

    receiver.start()  # back, on the same port
    _make_due(sid)
    deliver_endpoint.fn(sid)

    rows = _deliveries(sid)
    assert [r["status"] for r in rows] == ["succeeded"] * 3
    assert [[a["status_code"] for a in r["attempts"]] for r in rows] == [[None, 200]] * 3
    assert sorted(receiver.ids) == sorted(event_ids)


def _age_subscription(sid, days):
    with begin() as conn:
        conn.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == sid)
            .values(created_at=utcnow() - timedelta(days=days))
        )


def _past_attempt(sid, days_ago, status_code):
    """An attempt `days_ago` days back on the subscription's first delivery (history)."""
    [row, *_] = _deliveries(sid)
    with begin() as conn:
        conn.execute(
            insert(WebhookDeliveryAttempt).values(
                municipality_id=row["municipality_id"],
                delivery_id=row["id"],
                attempted_at=utcnow() - timedelta(days=days_ago),
                status_code=status_code,
                latency_ms=5.0,
            )
        )


def test_endpoint_failing_for_five_days_is_disabled_and_a_person_is_told(allow_loopback, receiver, caplog):
    sid = _subscribe(receiver)
    _events(1)
    _age_subscription(sid, FAILING_DAYS_BEFORE_DISABLING + 1)
    _past_attempt(sid, FAILING_DAYS_BEFORE_DISABLING + 0.5, 503)
    receiver.respond((500, {}, b"still broken"))

    with caplog.at_level(logging.WARNING):
        figures = deliver_endpoint.fn(sid)

    assert figures["details"]["disabled"] == 1
    with begin() as conn:
        subscription = _subscription(conn, sid)
        [audit] = conn.execute(
            select(AuditLog.actor, AuditLog.details).where(AuditLog.action == "webhook_subscription.disabled")
        ).all()
    reason = subscription["disabled_reason"]
    assert subscription["is_active"] is False
    assert reason.startswith("every attempt since ")
    assert reason.endswith("failed (5 days or more without a 2xx answer); last: the endpoint answered 500")
    assert audit == ("webhook-delivery", {"reason": reason})
    disabled = [r.getMessage() for r in caplog.records if "disabled" in r.getMessage()]
    assert disabled == [f"webhook subscription {sid} was disabled: {reason}"]  # said once
    assert due_subscription_ids() == []
    [row] = _deliveries(sid)
    assert row["status"] == "pending"  # nothing is thrown away


def test_endpoint_that_succeeded_within_five_days_stays_active(allow_loopback, receiver):
    sid = _subscribe(receiver)
    _events(1)
    _age_subscription(sid, FAILING_DAYS_BEFORE_DISABLING + 3)
    _past_attempt(sid, FAILING_DAYS_BEFORE_DISABLING + 2, 500)
    _past_attempt(sid, FAILING_DAYS_BEFORE_DISABLING - 1, 200)
    receiver.respond((500, {}, b"broken again"))

    figures = deliver_endpoint.fn(sid)

    assert figures["details"]["disabled"] == 0
    with begin() as conn:
        assert _subscription(conn, sid)["is_active"] is True
        since = failing_since(conn, sid, "riverton")
    [row] = _deliveries(sid)
    assert since == row["attempts"][-1]["attempted_at"]  # the failure after the last success


def test_failing_since_is_none_after_a_success_and_the_first_failure_otherwise(allow_loopback, receiver):
    sid = _subscribe(receiver)
    _events(1)
    with begin() as conn:
        assert failing_since(conn, sid, "riverton") is None  # never attempted
    _past_attempt(sid, 3, 500)
    _past_attempt(sid, 2, 502)
    [row] = _deliveries(sid)
    first_failure = row["attempts"][0]["attempted_at"]
    with begin() as conn:
        assert failing_since(conn, sid, "riverton") == first_failure
    _past_attempt(sid, 1, 204)
    with begin() as conn:
        assert failing_since(conn, sid, "riverton") is None


def test_an_error_between_send_and_record_loses_nothing(allow_loopback, receiver, monkeypatch):
    sid = _subscribe(receiver)
    event_ids = _events(3)
    real_record = delivery.record_attempts

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died before recording")

    monkeypatch.setattr(delivery, "record_attempts", crash)
    with pytest.raises(RuntimeError, match="the worker died before recording"):
        delivery.deliver_subscription(sid)

    assert sorted(receiver.ids) == sorted(event_ids)  # they reached the receiver ...
    rows = _deliveries(sid)
    assert [(r["status"], r["attempt_count"]) for r in rows] == [("pending", 0)] * 3
    assert [[a["error"] for a in r["attempts"]] for r in rows] == [[IN_FLIGHT]] * 3  # ... recorded as sent,
    assert all(r["next_attempt_at"] > utcnow() for r in rows)  # ... and stay leased, not lost
    assert due_subscription_ids() == []

    monkeypatch.setattr(delivery, "record_attempts", real_record)
    _make_due(sid)  # the lease ran out
    deliver_endpoint.fn(sid)

    rows = _deliveries(sid)
    assert [r["status"] for r in rows] == ["succeeded"] * 3
    assert [[a["error"] for a in r["attempts"]] for r in rows] == [[INTERRUPTED, None]] * 3
    assert sorted(receiver.ids) == sorted(event_ids * 2)  # re-sent under the same ids


_DISPATCH_ONE = (
    "import sys; from tasks.webhooks.delivery import deliver_subscription; "
    "deliver_subscription(int(sys.argv[1]))"
)


def test_a_killed_dispatch_run_leaves_every_sent_attempt_recorded_and_resent(allow_loopback, receiver):
    sid = _subscribe(receiver)
    event_ids = _events(3)
    receiver.hold = threading.Event()  # the receiver gets the requests but answers nothing yet
    worker = subprocess.Popen(
        [sys.executable, "-c", _DISPATCH_ONE, str(sid)], env=dict(os.environ), cwd=os.getcwd()
    )
    try:
        receiver.wait_for_requests(3, timeout=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(30) == -signal.SIGKILL
    receiver.hold.set()

    assert sorted(receiver.ids) == sorted(event_ids)
    rows = _deliveries(sid)
    # each attempt the dead run sent is recorded, its answer unknown
    assert [(r["status"], r["attempt_count"]) for r in rows] == [("pending", 0)] * 3
    assert [[(a["status_code"], a["error"]) for a in r["attempts"]] for r in rows] == [
        [(None, IN_FLIGHT)]
    ] * 3
    assert all(r["next_attempt_at"] > utcnow() for r in rows)  # leased by the dead run

    _make_due(sid)  # its lease ran out
    deliver_endpoint.fn(sid)

    rows = _deliveries(sid)
    assert [r["status"] for r in rows] == ["succeeded"] * 3
    assert [[(a["status_code"], a["error"]) for a in r["attempts"]] for r in rows] == [
        [(None, INTERRUPTED), (200, None)]
    ] * 3
    assert sorted(receiver.ids) == sorted(event_ids * 2)  # each again, under its own id


def test_a_storm_against_misbehaving_endpoints_loses_nothing(allow_loopback, make_receiver, monkeypatch):
    """Four endpoints answer 200, 500 then 200, reset then 200, 429 then 200; every round of
    dispatch is followed by "time passing" until nothing is pending."""
    monkeypatch.setenv("WATERLINE_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT", "2")
    reset_settings()
    receivers = [make_receiver() for _ in range(4)]
    receivers[1].respond(*[(500, {}, b"oops")] * 5)
    receivers[2].reset_connections(3)
    receivers[3].respond(*[(429, {"Retry-After": "60"}, b"later")] * 4)
    sids = [_subscribe(r, "lakeside") for r in receivers]
    event_ids = _events(24, "lakeside")

    rounds = 0
    while due_subscription_ids():
        rounds += 1
        assert rounds <= 5, "the storm did not settle"
        for sid in due_subscription_ids():
            deliver_endpoint.fn(sid)
        _make_due()

    for sid, r in zip(sids, receivers, strict=True):
        rows = _deliveries(sid)
        assert {row["status"] for row in rows} == {"succeeded"}
        attempts = sum(len(row["attempts"]) for row in rows)
        assert len(r.requests) == attempts  # every request that arrived was recorded
        assert set(r.ids) == set(event_ids)  # every event, under its own id, and no other id
        assert all(all(req.verified.values()) for req in r.requests)
    assert [len(r.requests) for r in receivers] == [24, 24 + 5, 24 + 3, 24 + 4]


def test_a_chunk_that_came_back_is_recorded_even_if_the_next_cannot_start(
    allow_loopback, receiver, monkeypatch
):
    monkeypatch.setenv("WATERLINE_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT", "1")
    reset_settings()
    sid = _subscribe(receiver)
    chunk = delivery.CHUNK_PER_SLOT  # concurrency 1: one claim takes this many
    event_ids = _events(chunk + 1)
    real_prepare = delivery.prepare_claimed
    calls = []

    def prepare_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("object storage is unreachable")
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(delivery, "prepare_claimed", prepare_once)
    with pytest.raises(OSError, match="object storage is unreachable"):
        delivery.deliver_subscription(sid)

    rows = _deliveries(sid)
    assert [r["status"] for r in rows] == ["succeeded"] * chunk + ["pending"]
    assert [len(r["attempts"]) for r in rows] == [1] * chunk + [0]
    assert receiver.ids == event_ids[:chunk]

    monkeypatch.setattr(delivery, "prepare_claimed", real_prepare)
    _make_due(sid)
    deliver_endpoint.fn(sid)
    assert [r["status"] for r in _deliveries(sid)] == ["succeeded"] * (chunk + 1)
    assert receiver.ids == event_ids
