"""The delivery ledger: which deliveries are due, claiming them, and recording each attempt.

A delivery is claimed by pushing its `next_attempt_at` forward by a lease, in a transaction that
commits before anything is sent (on PostgreSQL the claiming select also uses `for update skip
locked`), so two workers never send the same attempt. The attempts are recorded after they come
back. If the worker dies in between, the lease runs out and the delivery is sent again under the
same `webhook-id`: delivery is at least once, never at most once.

An endpoint that has answered nothing but failures for `FAILING_DAYS_BEFORE_DISABLING` days is
disabled, with the reason in `disabled_reason` (the stats show it), an audit entry, and a warning
in the log; so is one that answers 410 Gone.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update

from tasks.database import begin
from tasks.models import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from tasks.webhooks.retries import AttemptResult, describe_failure, next_delivery_state
from tasks.webhooks.subscriptions import disable_subscription

FAILING_DAYS_BEFORE_DISABLING = 5
ACTOR = "webhook-delivery"


def due_subscription_ids(conn: Connection | None = None, now: datetime | None = None) -> list[int]:
    """Active subscriptions that have at least one delivery due now."""
    now = now or utcnow()
    query = (
        select(WebhookDelivery.subscription_id)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookSubscription.is_active.is_(True),
            WebhookDelivery.municipality_id == WebhookSubscription.municipality_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
        )
        .distinct()
        .order_by(WebhookDelivery.subscription_id)
    )
    if conn is not None:
        return list(conn.execute(query).scalars())
    with begin() as own:
        return list(own.execute(query).scalars())


def load_subscription(conn: Connection, subscription_id: int) -> dict | None:
    """The subscription row, secrets included (internal: never log or return it)."""
    row = (
        conn.execute(select(WebhookSubscription.__table__).where(WebhookSubscription.id == subscription_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


# An attempt is recorded when its delivery is leased, before anything is sent, with this error;
# the answer replaces it. A run killed in between leaves it, turned into INTERRUPTED by the next
# claim of that delivery, so no attempt that may have reached the receiver goes unrecorded.
IN_FLIGHT = "no answer recorded yet: the dispatch run is sending it"
INTERRUPTED = (
    "no answer recorded: the dispatch run stopped before recording it (sent again under the same id)"
)


def claim_due_deliveries(
    conn: Connection,
    subscription_id: int,
    municipality_id: str,
    due_before: datetime,
    lease_until: datetime,
    limit: int,
) -> list[dict]:
    """Take up to `limit` due deliveries of one subscription and lease them until `lease_until`.

    Rows come with the event payload; locked rows (another worker's claim) are skipped.
    """
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.event_id,
            WebhookDelivery.attempt_count,
            WebhookDelivery.next_attempt_at,
        )
        .where(
            WebhookDelivery.subscription_id == subscription_id,
            WebhookDelivery.municipality_id == municipality_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= due_before,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # ignored on SQLite
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    now = utcnow()
    conn.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids), WebhookDelivery.municipality_id == municipality_id)
        .values(next_attempt_at=lease_until, updated_at=now)
    )
    attempts = WebhookDeliveryAttempt.__table__
    conn.execute(  # what an earlier run left in flight was interrupted
        update(attempts)
        .where(
            attempts.c.delivery_id.in_(ids),
            attempts.c.municipality_id == municipality_id,
            attempts.c.error == IN_FLIGHT,
        )
        .values(error=INTERRUPTED)
    )
    conn.execute(
        insert(attempts),
        [
            {"municipality_id": municipality_id, "delivery_id": i, "attempted_at": now, "error": IN_FLIGHT}
            for i in ids
        ],
    )
    # Payloads in a second query: the locking query stays on one table and one index.
    payloads = dict(
        conn.execute(
            select(WebhookEvent.id, WebhookEvent.payload).where(
                WebhookEvent.id.in_([r["event_id"] for r in rows]),
                WebhookEvent.municipality_id == municipality_id,
            )
        ).all()
    )
    return [{**r, "payload": payloads[r["event_id"]]} for r in rows]


def forget_in_flight(conn: Connection, municipality_id: str, delivery_ids: list[int]) -> None:
    """Remove the in-flight records of claimed deliveries that were never sent."""
    attempts = WebhookDeliveryAttempt.__table__
    conn.execute(
        delete(attempts).where(
            attempts.c.delivery_id.in_(delivery_ids),
            attempts.c.municipality_id == municipality_id,
            attempts.c.error == IN_FLIGHT,
        )
    )


def record_attempts(
    conn: Connection,
    subscription: dict,
    claimed: list[dict],
    results: list[AttemptResult],
    rng: random.Random | None = None,
) -> dict:
    """Store each attempt, move each delivery on (or release it if unsent); disable the endpoint
    on 410 Gone or after 5 days of failures. Returns counts, and the reason when it disabled."""
    municipality_id = subscription["municipality_id"]
    by_id = {row["id"]: row for row in claimed}
    forget_in_flight(conn, municipality_id, list(by_id))  # the answers (or nothing: unsent) replace them
    if results:
        conn.execute(
            insert(WebhookDeliveryAttempt),
            [
                {
                    "municipality_id": municipality_id,
                    "delivery_id": r.delivery_id,
                    "attempted_at": r.attempted_at,
                    "status_code": r.status_code,
                    "latency_ms": r.latency_ms,
                    "response_body": r.response_body,
                    "error": r.error,
                }
                for r in results
            ],
        )
    states = [
        {
            "b_id": r.delivery_id,
            **next_delivery_state(by_id[r.delivery_id]["attempt_count"], r, rng),
        }
        for r in results
    ]
    sent = {r.delivery_id for r in results}
    released = [
        {"b_id": row["id"], "next_attempt_at": row["next_attempt_at"]}
        for row in claimed
        if row["id"] not in sent
    ]
    table = WebhookDelivery.__table__
    if states:
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.municipality_id == municipality_id)
            .values({k: bindparam(k) for k in states[0] if k != "b_id"}),
            states,
        )
    if released:
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.municipality_id == municipality_id)
            .values(next_attempt_at=bindparam("next_attempt_at")),
            released,
        )
    statuses = [s["status"] for s in states]
    figures = {
        "attempts": len(results),
        "succeeded": statuses.count("succeeded"),
        "failed": statuses.count("pending"),
        "dead": statuses.count("dead"),
        "released": len(released),
        "disabled": 0,
        "disabled_reason": None,
    }
    reason = _disabling_reason(conn, subscription, results)
    if reason is not None and _still_active(conn, subscription):
        disable_subscription(conn, subscription["id"], reason, actor=ACTOR)  # the task logs it once
        figures.update(disabled=1, disabled_reason=reason)
    return figures


def _disabling_reason(conn: Connection, subscription: dict, results: list[AttemptResult]) -> str | None:
    """Why these results disable the endpoint (410 Gone, or failing for 5 days), else None."""
    gone = next((r for r in results if r.gone), None)
    if gone is not None:
        return f"the endpoint answered 410 Gone at {gone.attempted_at.isoformat(timespec='seconds')}"
    if not results or any(r.succeeded for r in results):
        return None
    now = max(r.attempted_at for r in results)
    limit = timedelta(days=FAILING_DAYS_BEFORE_DISABLING)
    created_at = subscription.get("created_at")
    if created_at is not None and created_at > now - limit:
        return None  # too young to have failed for that long
    since = failing_since(conn, subscription["id"], subscription["municipality_id"])
    if since is None or since > now - limit:
        return None
    return (
        f"every attempt since {since.isoformat(timespec='seconds')} failed "
        f"({FAILING_DAYS_BEFORE_DISABLING} days or more without a 2xx answer); "
        f"last: {describe_failure(results[-1])}"
    )


def failing_since(conn: Connection, subscription_id: int, municipality_id: str) -> datetime | None:
    """The first attempt after the endpoint's last success (its first ever if it never
    succeeded), i.e. since when it has been failing; None when its last attempt succeeded."""
    a, d = WebhookDeliveryAttempt, WebhookDelivery
    joined = and_(d.id == a.delivery_id, d.municipality_id == a.municipality_id)
    mine = and_(d.subscription_id == subscription_id, d.municipality_id == municipality_id)
    last_success = (
        select(func.max(a.attempted_at))
        .join(d, joined)
        .where(mine, a.status_code >= 200, a.status_code < 300)
        .scalar_subquery()
    )
    return conn.execute(
        select(func.min(a.attempted_at))
        .join(d, joined)
        .where(mine, or_(last_success.is_(None), a.attempted_at > last_success))
    ).scalar()


def _still_active(conn: Connection, subscription: dict) -> bool:
    """Read again: another worker may have disabled it since `subscription` was loaded."""
    return bool(
        conn.execute(
            select(WebhookSubscription.is_active).where(
                WebhookSubscription.id == subscription["id"],
                WebhookSubscription.municipality_id == subscription["municipality_id"],
            )
        ).scalar()
    )
