import hashlib
import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tasks.database import begin, get_engine
from tasks.models import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookSubscription,
    utcnow,
)
from tasks.settings import reset_settings
from tasks.storage import object_store
from tasks.webhooks.delivery import (
    CHUNK_PER_SLOT,
    deliver_endpoint,
    due_subscription_ids,
    send_test_event,
)
from tasks.webhooks.ledger import claim_due_deliveries
from tasks.webhooks.outbox import record_event
from tasks.webhooks.retries import RETRY_SCHEDULE_SECONDS
from tasks.webhooks.sender import USER_AGENT
from tasks.webhooks.subscriptions import add_subscription, list_subscriptions, rotate_secret


def _subscribe(receiver, municipality_id="riverton", event_types=("*",), path=""):
    with begin() as conn:
        sid, secret = add_subscription(
            conn, municipality_id, receiver.url + path, list(event_types)
        )
    receiver.secrets.append(str(secret))
    return sid, secret


def _event(municipality_id="riverton", key="e1", data=None, event_type="alert.created"):
    with begin() as conn:
        return record_event(
            conn,
            municipality_id=municipality_id,
            event_type=event_type,
            data=data or {"sensor_id": "riverton-plant-ph", "value": 9.4},
            dedupe_key=key,
        )


def _deliveries(sid):
    with begin() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(WebhookDelivery.__table__)
                .where(WebhookDelivery.subscription_id == sid)
                .order_by(WebhookDelivery.id)
            ).mappings()
        ]


def _attempts(delivery_id):
    with begin() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(WebhookDeliveryAttempt.__table__)
                .where(WebhookDeliveryAttempt.delivery_id == delivery_id)
                .order_by(WebhookDeliveryAttempt.id)
            ).mappings()
        ]


def _make_due(sid):
    with begin() as conn:
        conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sid, WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_delivery_succeeds_and_verifies_with_standard_webhooks(allow_loopback, receiver):
    sid, _ = _subscribe(receiver)
    event_id = _event()
    assert due_subscription_ids() == [sid]

    figures = deliver_endpoint.fn(sid)

    assert figures["municipality_id"] == "riverton" and figures["rows"] == 1
    assert figures["details"] == {
        "attempts": 1,
        "succeeded": 1,
        "failed": 0,
        "dead": 0,
        "released": 0,
        "disabled": 0,
    }
    [request] = receiver.requests
    assert all(request.verified.values())
    assert request.path == "/hooks"
    assert request.headers["webhook-id"] == event_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert json.loads(request.body)["data"] == {"sensor_id": "riverton-plant-ph", "value": 9.4}
    assert b": " not in request.body  # compact, the bytes that were signed
    [delivery] = _deliveries(sid)
    assert (
        delivery["status"],
        delivery["attempt_count"],
        delivery["last_status_code"],
        delivery["next_attempt_at"],
    ) == ("succeeded", 1, 200, None)
    [attempt] = _attempts(delivery["id"])
    assert (attempt["status_code"], attempt["response_body"], attempt["error"]) == (
        200,
        "thanks",
        None,
    )
    assert attempt["latency_ms"] >= 0
    assert due_subscription_ids() == []
    assert deliver_endpoint.fn(sid)["rows"] == 0  # nothing left to send


def test_500_then_200_retries_with_the_same_id_after_the_scheduled_delay(allow_loopback, receiver):
    sid, _ = _subscribe(receiver)
    event_id = _event()
    receiver.respond((500, {}, b"boom " * 400))

    deliver_endpoint.fn(sid)
    [delivery] = _deliveries(sid)
    [first] = _attempts(delivery["id"])
    assert (
        delivery["status"],
        delivery["attempt_count"],
        delivery["last_status_code"],
        delivery["last_error"],
    ) == ("pending", 1, 500, "the endpoint answered 500")
    assert first["response_body"] == ("boom " * 400)[:1000]
    delay = (delivery["next_attempt_at"] - first["attempted_at"]).total_seconds()
    assert RETRY_SCHEDULE_SECONDS[1] * 0.9 <= delay <= RETRY_SCHEDULE_SECONDS[1] * 1.1
    assert deliver_endpoint.fn(sid)["rows"] == 0  # not due yet

    _make_due(sid)
    deliver_endpoint.fn(sid)
    [delivery] = _deliveries(sid)
    assert (delivery["status"], delivery["attempt_count"]) == ("succeeded", 2)
    assert [a["status_code"] for a in _attempts(delivery["id"])] == [500, 200]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event_id, event_id]
    assert all(all(r.verified.values()) for r in receiver.requests)


def test_every_failure_follows_the_schedule_until_dead(allow_loopback, receiver):
    sid, _ = _subscribe(receiver)
    _event()
    receiver.respond(*[(503, {}, b"down")] * len(RETRY_SCHEDULE_SECONDS))
    delays = []
    for _ in RETRY_SCHEDULE_SECONDS:
        deliver_endpoint.fn(sid)
        [delivery] = _deliveries(sid)
        if delivery["next_attempt_at"] is not None:
            last = _attempts(delivery["id"])[-1]
            delays.append((delivery["next_attempt_at"] - last["attempted_at"]).total_seconds())
        _make_due(sid)
    [delivery] = _deliveries(sid)
    assert (delivery["status"], delivery["attempt_count"], delivery["next_attempt_at"]) == (
        "dead",
        len(RETRY_SCHEDULE_SECONDS),
        None,
    )
    assert len(_attempts(delivery["id"])) == len(RETRY_SCHEDULE_SECONDS) == len(receiver.requests)
    assert len(delays) == len(RETRY_SCHEDULE_SECONDS) - 1
    for delay, base in zip(delays, RETRY_SCHEDULE_SECONDS[1:], strict=True):
        assert base * 0.9 <= delay <= base * 1.1
    assert due_subscription_ids() == []
    assert deliver_endpoint.fn(sid)["rows"] == 0


def test_retry_after_is_honoured_on_429(allow_loopback, receiver):
    sid, _ = _subscribe(receiver)
    _event()
    receiver.respond((429, {"Retry-After": "3600"}, b"slow down"))
    deliver_endpoint.fn(sid)
    [delivery] = _deliveries(sid)
    [attempt] = _attempts(delivery["id"])
    assert delivery["next_attempt_at"] - attempt["attempted_at"] == timedelta(seconds=3600)


def test_410_disables_the_subscription_and_stops(allow_loopback, receiver, monkeypatch):
    monkeypatch.setenv("WATERLINE_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT", "1")
    reset_settings()
    sid, _ = _subscribe(receiver)
    for n in range(3):
        _event(key=f"e{n}")
    receiver.respond((410, {}, b"gone"))
    scheduled = [d["next_attempt_at"] for d in _deliveries(sid)]

    figures = deliver_endpoint.fn(sid)

    assert figures["details"] == {
        "attempts": 1,
        "succeeded": 0,
        "failed": 1,
        "dead": 0,
        "released": 2,
        "disabled": 1,
    }
    assert len(receiver.requests) == 1
    with begin() as conn:
        [listed] = list_subscriptions(conn, "riverton")
    assert listed["is_active"] is False
    assert listed["disabled_reason"].startswith("the endpoint answered 410 Gone at ")
    deliveries = _deliveries(sid)
    assert [d["status"] for d in deliveries] == ["pending"] * 3
    assert [d["attempt_count"] for d in deliveries] == [1, 0, 0]
    assert [d["next_attempt_at"] for d in deliveries[1:]] == scheduled[1:]  # released, not leased
    assert due_subscription_ids() == []
    assert deliver_endpoint.fn(sid)["rows"] == 0
    assert len(receiver.requests) == 1


def test_during_rotation_both_signatures_are_sent_and_each_secret_verifies(
    allow_loopback, receiver
):
    sid, old = _subscribe(receiver)
    with begin() as conn:
        new = rotate_secret(conn, sid)
    receiver.secrets = [str(new), str(old)]
    _event()
    deliver_endpoint.fn(sid)
    [request] = receiver.requests
    assert len(request.signatures) == 2
    assert request.verified == {str(new): True, str(old): True}

    with begin() as conn:  # the overlap has ended: only the new secret signs
        conn.execute(
            update(WebhookSubscription).values(
                previous_secret_expires_at=utcnow() - timedelta(seconds=1)
            )
        )
    _event(key="e2")
    deliver_endpoint.fn(sid)
    assert len(receiver.requests[1].signatures) == 1
    assert receiver.requests[1].verified == {str(new): True, str(old): False}


def test_endpoint_turned_private_is_refused_at_send_time(allow_loopback, receiver, monkeypatch):
    sid, secret = _subscribe(receiver)
    _event()
    monkeypatch.delenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS")
    reset_settings()

    deliver_endpoint.fn(sid)

    assert receiver.requests == []
    [delivery] = _deliveries(sid)
    [attempt] = _attempts(delivery["id"])
    assert delivery["status"] == "pending" and delivery["attempt_count"] == 1
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("not sent: the host '127.0.0.1' resolves to 127.0.0.1")
    assert str(secret) not in attempt["error"] and str(secret) not in delivery["last_error"]


def test_unreachable_endpoint_is_a_failed_attempt_with_a_sentence(allow_loopback, receiver):
    with begin() as conn:
        sid, secret = add_subscription(conn, "riverton", "http://127.0.0.1:1/hooks", ["*"])
    _event()
    deliver_endpoint.fn(sid)
    [delivery] = _deliveries(sid)
    [attempt] = _attempts(delivery["id"])
    assert (attempt["status_code"], attempt["error"]) == (None, "could not connect to the endpoint")
    assert delivery["last_error"] == "could not connect to the endpoint"
    assert "whsec_" not in attempt["error"]


def test_redirects_are_failures_and_not_followed(allow_loopback, receiver):
    sid, _ = _subscribe(receiver)
    _event()
    receiver.respond((302, {"Location": receiver.url + "/elsewhere"}, b""))
    deliver_endpoint.fn(sid)
    assert [r.path for r in receiver.requests] == ["/hooks"]
    [delivery] = _deliveries(sid)
    assert (delivery["status"], delivery["last_status_code"], delivery["last_error"]) == (
        "pending",
        302,
        "the endpoint answered 302 (redirects are not followed)",
    )


def test_slow_endpoint_is_a_failed_attempt_after_the_timeout(allow_loopback, receiver, monkeypatch):
    monkeypatch.setenv("WATERLINE_WEBHOOK_TIMEOUT_SECONDS", "0.2")
    reset_settings()
    sid, _ = _subscribe(receiver)
    _event()
    receiver.delay_seconds = 1.0
    deliver_endpoint.fn(sid)
    [delivery] = _deliveries(sid)
    [attempt] = _attempts(delivery["id"])
    assert (attempt["status_code"], attempt["error"]) == (None, "no response within 0.2 s")
    assert (delivery["status"], delivery["attempt_count"]) == ("pending", 1)


def test_events_of_another_municipality_never_reach_the_endpoint(allow_loopback, receiver):
    sid, _ = _subscribe(receiver, "riverton")
    riverton_event = _event("riverton", key="r1")
    _event("lakeside", key="l1", data={"secret_of": "lakeside"})
    _event("lakeside", key="l2", event_type="incident.opened")
    assert due_subscription_ids() == [sid]

    deliver_endpoint.fn(sid)

    assert [r.headers["webhook-id"] for r in receiver.requests] == [riverton_event]
    assert all(b"lakeside" not in r.body for r in receiver.requests)


def test_only_subscribed_event_types_are_delivered(allow_loopback, receiver):
    sid, _ = _subscribe(receiver, event_types=["incident.opened"])
    _event(key="a1", event_type="alert.created")
    wanted = _event(key="i1", event_type="incident.opened")
    deliver_endpoint.fn(sid)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [wanted]


def test_large_payload_arrives_as_a_link_to_the_full_copy(allow_loopback, receiver):
    sid, _ = _subscribe(receiver)
    data = {"rows": [{"sensor_id": f"s{i}", "value": i} for i in range(2000)]}
    event_id = _event(data=data)
    deliver_endpoint.fn(sid)
    [request] = receiver.requests
    assert all(request.verified.values())
    key = f"webhooks/riverton/{event_id}.json"
    stored = object_store().get_bytes(key)
    assert json.loads(request.body)["data"] == {
        "truncated": True,
        "url": object_store().url(key),
        "sha256": hashlib.sha256(stored).hexdigest(),
        "size_bytes": len(stored),
    }
    assert json.loads(stored)["data"] == data


def test_one_keep_alive_client_with_bounded_concurrency(allow_loopback, receiver, monkeypatch):
    monkeypatch.setenv("WATERLINE_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT", "2")
    reset_settings()
    sid, _ = _subscribe(receiver)
    count = 2 * CHUNK_PER_SLOT + 4  # more than one claim's worth
    with begin() as conn:
        for n in range(count):
            record_event(
                conn,
                municipality_id="riverton",
                event_type="alert.created",
                data={"n": n},
                dedupe_key=f"e{n}",
            )
    receiver.barrier = threading.Barrier(2, timeout=10)  # passes only if two arrive together

    figures = deliver_endpoint.fn(sid)

    assert figures["details"]["succeeded"] == count
    assert receiver.max_in_flight == 2
    assert len({r.client_port for r in receiver.requests}) <= 2  # one client, connections reused
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == count


def test_send_test_event_goes_to_that_subscription_only(allow_loopback, receiver):
    sid, _ = _subscribe(receiver, path="?to=first")
    _subscribe(receiver, path="?to=second")
    receiver.respond((202, {}, b"got it"))

    outcome = send_test_event(sid)

    assert (outcome["succeeded"], outcome["status_code"], outcome["body"], outcome["error"]) == (
        True,
        202,
        "got it",
        None,
    )
    [request] = receiver.requests
    assert request.path == "/hooks?to=first"
    assert request.headers["webhook-id"] == outcome["event_id"]
    assert request.verified[receiver.secrets[0]] is True
    payload = json.loads(request.body)
    assert payload["type"] == "webhook.test" and payload["data"]["subscription_id"] == sid
    assert [d["status"] for d in _deliveries(sid)] == ["succeeded"]
    assert due_subscription_ids() == []


def test_a_second_worker_skips_claimed_deliveries_on_postgresql(allow_loopback_postgres, receiver):
    sid, _ = _subscribe(receiver)
    for n in range(3):
        _event(key=f"e{n}")
    now = utcnow()
    lease = now + timedelta(minutes=5)
    engine = get_engine()
    with engine.connect() as first, engine.connect() as second:
        with first.begin():
            mine = claim_due_deliveries(first, sid, "riverton", now, lease, 2)
            with second.begin():  # while the first claim still holds its row locks
                theirs = claim_due_deliveries(second, sid, "riverton", now, lease, 10)
    assert len(mine) == 2 and len(theirs) == 1
    assert not {d["id"] for d in mine} & {d["id"] for d in theirs}
    with begin() as conn:  # committed leases keep them from everyone until they run out
        assert claim_due_deliveries(conn, sid, "riverton", now, lease, 10) == []
    assert due_subscription_ids() == []
    assert deliver_endpoint.fn(sid)["rows"] == 0


def _task_run_names(flow_run_id) -> list[str]:
    """The task runs Prefect recorded in a flow run (they arrive as events: wait until steady)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    names, steady = None, 0
    with get_client(sync_client=True) as client:
        for _ in range(100):
            now = sorted(r.name for r in client.read_task_runs(flow_run_filter=flow_filter))
            steady = steady + 1 if now == names else 0
            names = now
            if steady == 5:
                break
            time.sleep(0.1)
    return names


def test_a_dispatch_run_has_one_task_run_per_endpoint_and_no_other(
    allow_loopback_postgres, make_receiver, prefect_server
):
    from flows.dispatch_webhooks import dispatch_webhooks

    receivers = [make_receiver(), make_receiver()]
    sids = [_subscribe(receivers[0], "riverton")[0], _subscribe(receivers[1], "lakeside")[0]]
    for n in range(5):
        _event("riverton", key=f"r{n}")
        _event("lakeside", key=f"l{n}")

    state = dispatch_webhooks(return_state=True)

    summary = state.result()
    assert summary["stages"]["deliver_webhooks"]["items"] == 2
    assert summary["stages"]["deliver_webhooks"]["rows"] == 10
    assert [len(r.requests) for r in receivers] == [5, 5]
    names = _task_run_names(state.state_details.flow_run_id)
    assert names == sorted(f"deliver-webhooks-{sid}" for sid in sids)


def test_the_bench_delivers_every_event_once_with_one_task_run_per_endpoint(
    postgres_database, prefect_server
):
    from rich.console import Console

    from tasks.bench_webhooks import print_webhooks_bench, run_webhooks_bench

    figures = run_webhooks_bench(events=40, endpoints=4)

    assert figures["database"] == "postgresql"
    assert (figures["events"], figures["endpoints"], figures["endpoints_dispatched"]) == (40, 4, 4)
    assert (figures["deliveries_succeeded"], figures["deliveries_pending"], figures["attempts"]) == (
        40,
        0,
        40,
    )
    assert figures["receivers"] == {"requests": 40, "distinct_ids": 40}
    assert (figures["lost"], figures["task_runs"]) == (0, 4)
    assert figures["latency_p50_ms"] <= figures["latency_p95_ms"]
    console = Console(record=True, width=120)
    print_webhooks_bench(console, figures)
    text = console.export_text()
    assert "40 events to 4 local endpoints on postgresql" in text
    assert "Prefect task runs in the dispatch" in text and "0 lost" in text


def test_the_bench_refuses_an_empty_storm_with_a_sentence():
    from tasks.bench_webhooks import run_webhooks_bench

    with pytest.raises(ValueError, match="at least one event and one endpoint"):
        run_webhooks_bench(events=0, endpoints=50)
