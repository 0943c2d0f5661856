"""Deliver due webhooks, one endpoint per task; the retry schedule lives in the database.

Each task claims its endpoint's due deliveries in chunks (see `ledger`), sends each chunk over
one keep-alive client with bounded concurrency (see `sender`) and records every attempt.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

import httpx
from prefect import task
from sqlalchemy import insert

from tasks.database import begin
from tasks.models import WebhookDelivery, WebhookEvent, utcnow
from tasks.settings import get_settings
from tasks.stages import stage
from tasks.webhooks.addresses import UnsafeEndpointError, check_endpoint
from tasks.webhooks.ledger import (
    claim_due_deliveries,
    due_subscription_ids,
    load_subscription,
    record_attempts,
)
from tasks.webhooks.outbox import new_event_id
from tasks.webhooks.payloads import payload_body
from tasks.webhooks.retries import AttemptResult
from tasks.webhooks.sender import (
    Outgoing,
    make_client,
    refused_results,
    run_coroutine,
    send_batch,
)
from tasks.webhooks.signing import secrets_in_force
from tasks.webhooks.subscriptions import SubscriptionError

CHUNK_PER_SLOT = 8  # a claim takes concurrency x 8 deliveries

__all__ = [
    "deliver_endpoint",
    "deliver_subscription",
    "due_subscription_ids",
    "find_due_endpoints",
    "send_test_event",
]


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a Prefect run (tests, CLI)
        return logging.getLogger(__name__)


async def send_claimed(
    client: httpx.AsyncClient, subscription: dict, claimed: list[dict]
) -> list[AttemptResult]:
    """Check the endpoint's address again right now, then send the claimed deliveries."""
    settings = get_settings()
    now = utcnow()
    m = subscription["municipality_id"]
    items = [
        Outgoing(r["id"], r["event_id"], payload_body(m, r["event_id"], r["payload"]))
        for r in claimed
    ]
    try:
        endpoint = check_endpoint(subscription["url"])
    except UnsafeEndpointError as exc:
        return refused_results(items, f"not sent: {exc}", now)
    secrets = secrets_in_force(
        subscription["secret"],
        subscription["previous_secret"],
        subscription["previous_secret_expires_at"],
        now,
    )
    return await send_batch(
        client,
        endpoint,
        secrets,
        items,
        concurrency=settings.webhook_max_concurrency_per_endpoint,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


def _client() -> httpx.AsyncClient:
    settings = get_settings()
    return make_client(
        settings.webhook_max_concurrency_per_endpoint, settings.webhook_timeout_seconds
    )


def _lease(chunk: int) -> timedelta:
    settings = get_settings()
    rounds = math.ceil(chunk / max(1, settings.webhook_max_concurrency_per_endpoint))
    return timedelta(seconds=settings.webhook_timeout_seconds * rounds + 60)


async def _deliver_due(subscription_id: int, totals: dict) -> str | None:
    """Claim, send and record chunk after chunk over one client; returns the municipality.

    The database calls block the event loop only between chunks, when nothing is in flight.
    """
    chunk = max(1, get_settings().webhook_max_concurrency_per_endpoint) * CHUNK_PER_SLOT
    started = utcnow()
    municipality_id = None
    async with _client() as client:
        while True:
            with begin() as conn:
                subscription = load_subscription(conn, subscription_id)
                if subscription is None or not subscription["is_active"]:
                    break
                municipality_id = subscription["municipality_id"]
                lease_until = utcnow() + _lease(chunk)
                claimed = claim_due_deliveries(
                    conn, subscription_id, municipality_id, started, lease_until, chunk
                )
            if not claimed:
                break
            results = await send_claimed(client, subscription, claimed)
            with begin() as conn:
                figures = record_attempts(conn, subscription, claimed, results)
            for key in totals:
                totals[key] += figures[key]
            if figures["disabled"]:
                break
    return municipality_id


def deliver_subscription(subscription_id: int) -> dict:
    """Send every delivery of one subscription that is due now; returns the stage figures."""
    totals = {"attempts": 0, "succeeded": 0, "failed": 0, "dead": 0, "released": 0, "disabled": 0}
    with stage("deliver_webhooks") as result:
        result.municipality_id = run_coroutine(_deliver_due(subscription_id, totals))
        result.rows = totals["attempts"]
        result.details = totals
    return result.as_dict()


@task(name="find_due_endpoints", task_run_name="find-due-endpoints")
def find_due_endpoints() -> list[int]:
    """The subscriptions that have webhook deliveries due now, one delivery task each."""
    return due_subscription_ids()


@task(name="deliver_endpoint", task_run_name="deliver-webhooks-{subscription_id}")
def deliver_endpoint(subscription_id: int) -> dict:
    """Send one endpoint's due webhook deliveries and schedule retries of the failed ones."""
    figures = deliver_subscription(subscription_id)
    d = figures["details"]
    _logger().info(
        "subscription %s: %d attempt(s), %d succeeded, %d to retry, %d dead%s",
        subscription_id,
        d["attempts"],
        d["succeeded"],
        d["failed"],
        d["dead"],
        ", disabled after 410 Gone" if d["disabled"] else "",
    )
    return figures


def send_test_event(subscription_id: int) -> dict:
    """Record a webhook.test event for one subscription, send it now, say what came back."""
    now = utcnow()
    with begin() as conn:
        subscription = load_subscription(conn, subscription_id)
        if subscription is None:
            raise SubscriptionError(f"no webhook subscription {subscription_id}")
        municipality_id = subscription["municipality_id"]
        event_id = new_event_id()
        payload = {
            "type": "webhook.test",
            "timestamp": now.isoformat(),
            "data": {"subscription_id": subscription_id, "message": "Test event from Waterline."},
        }
        conn.execute(
            insert(WebhookEvent).values(
                id=event_id,
                municipality_id=municipality_id,
                event_type="webhook.test",
                dedupe_key=f"webhook.test:{event_id}",
                payload=payload,
                created_at=now,
            )
        )
        delivery_id = conn.execute(
            insert(WebhookDelivery)
            .values(
                municipality_id=municipality_id,
                event_id=event_id,
                subscription_id=subscription_id,
                status="pending",
                attempt_count=0,
                next_attempt_at=now + _lease(1),
                created_at=now,
                updated_at=now,
            )
            .returning(WebhookDelivery.id)
        ).scalar_one()
    claimed = [
        {
            "id": delivery_id,
            "event_id": event_id,
            "attempt_count": 0,
            "next_attempt_at": now,
            "payload": payload,
        }
    ]

    async def send_now() -> list[AttemptResult]:
        async with _client() as client:
            return await send_claimed(client, subscription, claimed)

    results = run_coroutine(send_now())
    with begin() as conn:
        record_attempts(conn, subscription, claimed, results)
    attempt = results[0]
    return {
        "event_id": event_id,
        "delivery_id": delivery_id,
        "succeeded": attempt.succeeded,
        "status_code": attempt.status_code,
        "body": attempt.response_body,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
    }
