import hashlib
import json
import random
from datetime import UTC, datetime, timedelta

from tasks.storage import object_store
from tasks.webhooks.payloads import MAX_PAYLOAD_BYTES, payload_body, serialize
from tasks.webhooks.retries import (
    RETRY_SCHEDULE_SECONDS,
    AttemptResult,
    next_delivery_state,
    parse_retry_after,
    retry_delay_seconds,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _failure(status=500, retry_after=None, at=T0):
    return AttemptResult(
        delivery_id=1, attempted_at=at, status_code=status, retry_after_seconds=retry_after
    )


def test_schedule_is_the_svix_schedule_with_ten_percent_jitter():
    assert RETRY_SCHEDULE_SECONDS == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    rng = random.Random(7)
    for attempts_made, base in enumerate(RETRY_SCHEDULE_SECONDS):
        delays = [retry_delay_seconds(attempts_made, rng) for _ in range(200)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
    assert retry_delay_seconds(len(RETRY_SCHEDULE_SECONDS), rng) is None


def test_failures_walk_the_schedule_then_the_delivery_is_dead():
    rng = random.Random(1)
    delays, statuses = [], []
    for attempts_before in range(len(RETRY_SCHEDULE_SECONDS)):
        state = next_delivery_state(attempts_before, _failure(), rng)
        statuses.append(state["status"])
        if state["next_attempt_at"] is not None:
            delays.append((state["next_attempt_at"] - T0).total_seconds())
        assert state["attempt_count"] == attempts_before + 1
        assert state["last_error"] == "the endpoint answered 500"
    assert statuses == ["pending"] * 7 + ["dead"]
    ratios = [d / b for d, b in zip(delays, RETRY_SCHEDULE_SECONDS[1:], strict=True)]
    assert len(ratios) == 7 and all(0.9 <= r <= 1.1 for r in ratios)


def test_only_2xx_succeeds():
    ok = next_delivery_state(0, _failure(204))
    assert ok == {
        "attempt_count": 1,
        "last_status_code": 204,
        "last_error": None,
        "updated_at": T0,
        "status": "succeeded",
        "next_attempt_at": None,
    }
    for status in (301, 302, 400, 404, 429, 500):
        assert next_delivery_state(0, _failure(status))["status"] == "pending"
    redirect = next_delivery_state(0, _failure(302))
    assert redirect["last_error"] == "the endpoint answered 302 (redirects are not followed)"


def test_retry_after_on_429_and_503_postpones_the_next_attempt():
    for status in (429, 503):
        state = next_delivery_state(0, _failure(status, retry_after=3600), random.Random(3))
        assert state["next_attempt_at"] == T0 + timedelta(seconds=3600)
    # a Retry-After shorter than the schedule does not bring the attempt forward
    state = next_delivery_state(0, _failure(429, retry_after=1), random.Random(3))
    assert (state["next_attempt_at"] - T0).total_seconds() >= 4.5
    # other statuses ignore it
    state = next_delivery_state(0, _failure(500, retry_after=3600), random.Random(3))
    assert (state["next_attempt_at"] - T0).total_seconds() <= 5.5


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after("Wed, 25 Nov 2026 12:10:00 GMT", T0) == 600
    assert parse_retry_after("999999", T0) == 86400
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


def test_network_error_is_kept_as_the_sentence():
    result = AttemptResult(delivery_id=1, attempted_at=T0, error="no response within 15 s")
    state = next_delivery_state(0, result, random.Random(0))
    assert state["status"] == "pending" and state["last_error"] == "no response within 15 s"


def test_small_payload_is_sent_as_compact_json(home):
    payload = {"type": "alert.created", "timestamp": T0.isoformat(), "data": {"ph": 9.1, "s": "é"}}
    body = payload_body("riverton", "msg_1", payload)
    assert (
        body
        == '{"type":"alert.created","timestamp":"2026-11-25T12:00:00+00:00",'
        '"data":{"ph":9.1,"s":"é"}}'.encode()
    )
    assert object_store().list("webhooks") == []


def test_large_payload_is_replaced_by_a_link_to_the_full_copy(home):
    payload = {
        "type": "report.published",
        "timestamp": T0.isoformat(),
        "data": {"rows": ["x" * 100] * 300},
    }
    body = payload_body("riverton", "msg_big", payload)
    assert len(body) < MAX_PAYLOAD_BYTES
    sent = json.loads(body)
    store = object_store()
    full = serialize(payload)
    assert sent == {
        "type": "report.published",
        "timestamp": T0.isoformat(),
        "data": {
            "truncated": True,
            "url": store.url("webhooks/riverton/msg_big.json"),
            "sha256": hashlib.sha256(full).hexdigest(),
            "size_bytes": len(full),
        },
    }
    assert store.get_bytes("webhooks/riverton/msg_big.json") == serialize(payload)
    assert payload_body("riverton", "msg_big", payload) == body  # same bytes on a retry
