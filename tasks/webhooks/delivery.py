"""Deliver due webhooks, one task per endpoint; the retry schedule lives in the database.

Each task claims its endpoint's due deliveries in chunks (see `ledger`), sends each chunk over
one keep-alive client with bounded concurrency on the process's sending loop (see `sender`) and
records every attempt. The task's thread claims the next chunk and records the last one while a
chunk is on the wire, so the database and the network work at the same time.

What a crash leaves behind (the guarantee is at least once): a chunk's lease is committed before
its first request goes out, and its attempts are recorded together once the chunk is back. A run
killed in between leaves that chunk's deliveries pending with their attempt count unchanged and
unrecorded; when the lease runs out (`_lease`, about 3 minutes) the next dispatch sends them again
under the same `webhook-id`, and that attempt is recorded. A receiver may therefore see an id
twice, never a delivery under another id, and no delivery is dropped.

Ordering is best effort: deliveries are claimed oldest due first, but up to the endpoint's
concurrency limit are on the wire at once, and a failed one is retried after later ones.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prefect import task
from sqlalchemy import insert

from tasks.database import begin
from tasks.models import WebhookDelivery, WebhookEvent, utcnow
from tasks.settings import get_settings
from tasks.stages import run_logger, stage
from tasks.webhooks.addresses import Endpoint, UnsafeEndpointError, check_endpoint
from tasks.webhooks.ledger import (
    claim_due_deliveries,
    due_subscription_ids,
    forget_in_flight,
    load_subscription,
    record_attempts,
)
from tasks.webhooks.outbox import new_event_id
from tasks.webhooks.payloads import payload_body
from tasks.webhooks.retries import AttemptResult
from tasks.webhooks.sender import (
    Outgoing,
    make_client,
    open_client,
    refused_results,
    run_coroutine,
    send_batch,
    submit,
)
from tasks.webhooks.signing import secrets_in_force
from tasks.webhooks.subscriptions import SubscriptionError

CHUNK_PER_SLOT = 16  # a claim takes concurrency x 16 deliveries (64 at the default 4)

__all__ = [
    "deliver_endpoint",
    "deliver_subscription",
    "due_subscription_ids",
    "find_due_endpoints",
    "send_test_event",
]


def _logger() -> logging.Logger | logging.LoggerAdapter:
    return run_logger("tasks.webhooks.delivery")


@dataclass(frozen=True)
class Prepared:
    """A claimed chunk made ready in the task's thread: where to send, how to sign, what."""

    endpoint: Endpoint | None
    refusal: str | None  # why nothing may be sent (the endpoint's address is refused)
    secrets: list[str]
    items: list[Outgoing]


def prepare_claimed(subscription: dict, claimed: list[dict], now: datetime) -> Prepared:
    """Check the endpoint's address again right now and build the bodies (DNS and object storage
    are blocking calls: they happen here, off the sending loop)."""
    m = subscription["municipality_id"]
    items = [Outgoing(r["id"], r["event_id"], payload_body(m, r["event_id"], r["payload"])) for r in claimed]
    secrets = secrets_in_force(
        subscription["secret"],
        subscription["previous_secret"],
        subscription["previous_secret_expires_at"],
        now,
    )
    try:
        endpoint = check_endpoint(subscription["url"])
    except UnsafeEndpointError as exc:
        return Prepared(None, f"not sent: {exc}", secrets, items)
    return Prepared(endpoint, None, secrets, items)


async def send_prepared(client: httpx.AsyncClient, prepared: Prepared) -> list[AttemptResult]:
    """Send a prepared chunk (on the sending loop); a refused endpoint gives failed attempts."""
    if prepared.endpoint is None:
        return refused_results(prepared.items, prepared.refusal or "not sent", utcnow())
    settings = get_settings()
    return await send_batch(
        client,
        prepared.endpoint,
        prepared.secrets,
        prepared.items,
        concurrency=settings.webhook_max_concurrency_per_endpoint,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


def _open_client() -> httpx.AsyncClient:
    settings = get_settings()
    return run_coroutine(
        open_client(settings.webhook_max_concurrency_per_endpoint, settings.webhook_timeout_seconds)
    )


def _lease(chunk: int) -> timedelta:
    """How long a claim keeps a chunk from other workers: every round of sends timing out, plus
    a minute to record them. A killed run's deliveries become due again after this."""
    settings = get_settings()
    rounds = math.ceil(chunk / max(1, settings.webhook_max_concurrency_per_endpoint))
    return timedelta(seconds=settings.webhook_timeout_seconds * rounds + 60)


@dataclass
class _Flight:
    """A claimed chunk on the wire."""

    subscription: dict
    claimed: list[dict]
    sending: Future


def _launch(
    client: httpx.AsyncClient, subscription_id: int, due_before: datetime, chunk: int
) -> _Flight | None:
    """Claim the next chunk of due deliveries and start sending it; None when there is none
    (or the subscription is gone or disabled)."""
    with begin() as conn:
        subscription = load_subscription(conn, subscription_id)
        if subscription is None or not subscription["is_active"]:
            return None
        lease_until = utcnow() + _lease(chunk)
        claimed = claim_due_deliveries(
            conn, subscription_id, subscription["municipality_id"], due_before, lease_until, chunk
        )
    if not claimed:
        return None
    try:
        prepared = prepare_claimed(subscription, claimed, utcnow())
    except Exception:  # nothing was sent: no attempt to keep (the lease still holds them)
        with begin() as conn:
            forget_in_flight(conn, subscription["municipality_id"], [row["id"] for row in claimed])
        raise
    return _Flight(subscription, claimed, submit(send_prepared(client, prepared)))


def _deliver_due(subscription_id: int, totals: dict) -> tuple[str | None, str | None]:
    """Claim, send and record chunk after chunk over one client, one chunk on the wire while the
    previous is recorded; returns the municipality and why the endpoint was disabled, if it was.

    Only deliveries due when the task started are taken, so a failure retried "immediately" waits
    for the next dispatch run instead of looping here.
    """
    chunk = max(1, get_settings().webhook_max_concurrency_per_endpoint) * CHUNK_PER_SLOT
    started = utcnow()
    municipality_id, disabled_reason = None, None
    client = _open_client()
    flight = None
    try:
        flight = _launch(client, subscription_id, started, chunk)
        while flight is not None:
            municipality_id = flight.subscription["municipality_id"]
            results = flight.sending.result()
            done, flight = flight, None
            try:
                if not any(r.gone for r in results):  # after a 410 nothing more is sent
                    flight = _launch(client, subscription_id, started, chunk)
            finally:  # the chunk that came back is recorded even if the next could not start
                with begin() as conn:
                    figures = record_attempts(conn, done.subscription, done.claimed, results)
            for key in totals:
                totals[key] += figures[key]
            disabled_reason = figures["disabled_reason"] or disabled_reason
    finally:
        if flight is not None:  # an error left a chunk on the wire: let it finish (it is leased)
            flight.sending.exception()
        run_coroutine(client.aclose())
    return municipality_id, disabled_reason


def deliver_subscription(subscription_id: int) -> dict:
    """Send every delivery of one subscription that is due now; returns the stage figures."""
    totals = {"attempts": 0, "succeeded": 0, "failed": 0, "dead": 0, "released": 0, "disabled": 0}
    with stage("deliver_webhooks") as result:
        result.municipality_id, reason = _deliver_due(subscription_id, totals)
        result.rows = totals["attempts"]
        result.details = totals
    if reason is not None:
        _logger().warning("webhook subscription %s was disabled: %s", subscription_id, reason)
    return result.as_dict()


def find_due_endpoints() -> list[int]:
    """The subscriptions that have webhook deliveries due now, one delivery task each.

    A plain query run by the flow itself, not a task: a dispatch run's task runs are exactly its
    endpoints' delivery tasks.
    """
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
        ", then disabled" if d["disabled"] else "",
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

    prepared = prepare_claimed(subscription, claimed, utcnow())

    async def send_now() -> list[AttemptResult]:
        settings = get_settings()
        async with make_client(1, settings.webhook_timeout_seconds) as client:
            return await send_prepared(client, prepared)

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
