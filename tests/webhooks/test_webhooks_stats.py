"""Endpoint figures: the Polars aggregation on its own, then `endpoint_stats` over a seeded ledger
(SQLite and PostgreSQL) compared whole; and the times people type for --since / --failed-since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import insert

from tasks.database import begin
from tasks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEvent, utcnow
from tasks.webhooks.dead_letters import parse_time
from tasks.webhooks.stats import ATTEMPT_SCHEMA, attempt_figures, endpoint_stats
from tasks.webhooks.subscriptions import add_subscription, disable_subscription

URL = "http://127.0.0.1:9/hooks"
TIMEOUT = "no response within 15 s"
REFUSED = "not sent: the host '10.0.0.7' is private"


def test_attempt_figures_count_only_2xx_and_interpolate_latency_quantiles():
    attempts = pl.LazyFrame(
        {
            "subscription_id": [1, 1, 1, 1, 1, 1, 2],
            "status_code": [200, 204, 500, None, 301, None, 503],
            "latency_ms": [10.0, 20.0, 30.0, 15_000.0, 40.0, None, 7.0],
        },
        schema=ATTEMPT_SCHEMA,
    )
    # Subscription 1: latencies 10, 20, 30, 40, 15000 (the unsent attempt has none).
    # p50 is the middle one, 30; p95 sits at rank 0.95 * 4 = 3.8: 40 + 0.8 * (15000 - 40).
    expected = pl.DataFrame(
        {
            "subscription_id": [1, 2],
            "attempts": [6, 1],
            "succeeded": [2, 0],
            "p50_latency_ms": [30.0, 7.0],
            "p95_latency_ms": [40 + 0.8 * 14_960, 7.0],
            "success_rate": [2 / 6, 0.0],
        }
    )
    assert_frame_equal(attempt_figures(attempts), expected, check_dtypes=False)


def test_attempt_figures_of_no_attempts_is_an_empty_frame():
    empty = pl.LazyFrame(schema=ATTEMPT_SCHEMA)
    assert attempt_figures(empty).height == 0


def _ledger(now: datetime) -> dict[str, int]:
    """Four subscriptions, their deliveries and attempts at known times (see the test)."""
    with begin() as conn:
        ids = {
            "busy": add_subscription(conn, "riverton", URL, ["*"])[0],
            "quiet": add_subscription(conn, "riverton", URL, ["*"])[0],
            "never_ok": add_subscription(conn, "riverton", URL, ["*"])[0],
            "lakeside": add_subscription(conn, "lakeside", URL, ["*"])[0],
        }
        disable_subscription(conn, ids["quiet"], "receiver retired")
        deliveries = {}
        for name, municipality, status in (
            ("busy-dead", "riverton", "dead"),
            ("busy-pending", "riverton", "pending"),
            ("busy-ok", "riverton", "succeeded"),
            ("never_ok", "riverton", "pending"),
            ("lakeside", "lakeside", "succeeded"),
        ):
            conn.execute(
                insert(WebhookEvent).values(
                    id=f"msg_{name}",
                    municipality_id=municipality,
                    event_type="alert.created",
                    dedupe_key=name,
                    payload={"type": "alert.created", "timestamp": now.isoformat(), "data": {}},
                    created_at=now,
                )
            )
            deliveries[name] = conn.execute(
                insert(WebhookDelivery)
                .values(
                    municipality_id=municipality,
                    event_id=f"msg_{name}",
                    subscription_id=ids[name.split("-")[0]],
                    status=status,
                    attempt_count=1,
                    next_attempt_at=now if status == "pending" else None,
                    created_at=now,
                    updated_at=now,
                )
                .returning(WebhookDelivery.id)
            ).scalar_one()
        ago = [
            ("busy-ok", "riverton", timedelta(days=3), 200, 50.0, None),  # before the window
            ("busy-dead", "riverton", timedelta(hours=2), 500, 10.0, None),
            ("busy-ok", "riverton", timedelta(hours=1), 200, 20.0, None),  # the last success
            ("busy-dead", "riverton", timedelta(minutes=30), None, 15_000.0, TIMEOUT),
            ("busy-pending", "riverton", timedelta(minutes=10), 503, 30.0, None),
            ("busy-pending", "riverton", timedelta(minutes=5), None, None, REFUSED),
            ("never_ok", "riverton", timedelta(days=2), 500, 12.0, None),
            ("never_ok", "riverton", timedelta(hours=1), 500, 14.0, None),
            ("lakeside", "lakeside", timedelta(minutes=1), 200, 5.0, None),
        ]
        conn.execute(
            insert(WebhookDeliveryAttempt),
            [
                {
                    "municipality_id": m,
                    "delivery_id": deliveries[name],
                    "attempted_at": now - before,
                    "status_code": status,
                    "latency_ms": latency,
                    "response_body": None,
                    "error": error,
                }
                for name, m, before, status, latency, error in ago
            ],
        )
    return ids


def test_endpoint_stats_over_a_window_with_streaks_and_last_errors_from_all_history(allow_loopback):
    now = utcnow().replace(microsecond=0)
    ids = _ledger(now)
    with begin() as conn:
        riverton = endpoint_stats(conn, now - timedelta(days=1), municipality_id="riverton")
        everyone = endpoint_stats(conn, now - timedelta(days=1))
        one = endpoint_stats(conn, now - timedelta(days=1), subscription_id=ids["never_ok"])

    common = {"municipality_id": "riverton", "url": URL}
    busy = {
        **common,
        "subscription_id": ids["busy"],
        "is_active": True,
        "disabled_reason": None,
        # In the window: 500, 200, timeout, 503, unsent. Latencies 10, 20, 30, 15000:
        # p50 halfway between 20 and 30; p95 at rank 2.85: 30 + 0.85 * (15000 - 30).
        "attempts": 5,
        "succeeded": 1,
        "success_rate": 0.2,
        "p50_latency_ms": 25.0,
        "p95_latency_ms": pytest.approx(30 + 0.85 * 14_970),
        "last_success_at": now - timedelta(hours=1),
        "consecutive_failures": 3,
        "failing_since": now - timedelta(minutes=30),
        "last_error_at": now - timedelta(minutes=5),
        "last_error": REFUSED,
        "pending_deliveries": 1,
        "dead_deliveries": 1,
    }
    quiet = {
        **common,
        "subscription_id": ids["quiet"],
        "is_active": False,
        "disabled_reason": "receiver retired",
        "attempts": 0,
        "succeeded": 0,
        "success_rate": None,
        "p50_latency_ms": None,
        "p95_latency_ms": None,
        "last_success_at": None,
        "consecutive_failures": 0,
        "failing_since": None,
        "last_error_at": None,
        "last_error": None,
        "pending_deliveries": 0,
        "dead_deliveries": 0,
    }
    never_ok = {
        **quiet,
        "subscription_id": ids["never_ok"],
        "is_active": True,
        "disabled_reason": None,
        "attempts": 1,  # the one two days ago is outside the window, but still in the streak
        "success_rate": 0.0,
        "p50_latency_ms": 14.0,
        "p95_latency_ms": 14.0,
        "consecutive_failures": 2,
        "failing_since": now - timedelta(days=2),
        "last_error_at": now - timedelta(hours=1),
        "last_error": "the endpoint answered 500",
        "pending_deliveries": 1,
    }
    assert riverton == [busy, quiet, never_ok]
    assert [s["subscription_id"] for s in everyone] == [
        ids["busy"],
        ids["quiet"],
        ids["never_ok"],
        ids["lakeside"],
    ]
    assert everyone[3]["municipality_id"] == "lakeside" and everyone[3]["last_success_at"] == now - timedelta(
        minutes=1
    )
    assert one == [never_ok]


def test_endpoint_stats_of_a_municipality_without_subscriptions_is_empty(allow_loopback):
    with begin() as conn:
        assert endpoint_stats(conn, utcnow(), municipality_id="lakeside") == []


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T06:30", datetime(2026, 11, 20, 6, 30, tzinfo=UTC)),
        ("2026-11-20T06:30:00+02:00", datetime(2026, 11, 20, 4, 30, tzinfo=UTC)),
        ("45m", NOW - timedelta(minutes=45)),
        ("6h", NOW - timedelta(hours=6)),
        (" 2d ", NOW - timedelta(days=2)),
    ],
)
def test_times_people_type_are_read_as_utc_instants(text, expected):
    assert parse_time(text, "--since", now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "6 weeks", "-2d", ""])
def test_a_time_that_is_none_of_those_is_a_sentence_naming_the_option(text):
    with pytest.raises(ValueError, match=r"--failed-since is a time such as 2026-11-25"):
        parse_time(text, "--failed-since", now=NOW)
