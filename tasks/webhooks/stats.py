"""How each webhook endpoint is doing: attempts, success rate, latency, its failure streak.

Figures over a window (`since`): attempts, success rate, p50 and p95 latency. Figures over the
whole history: the last error, the consecutive failures (attempts since the last 2xx) and since
when it has been failing, the deliveries waiting and dead. Latency counts every attempt that was
sent (a timeout counts as the time waited); attempts refused before sending have none.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import Connection, and_, case, func, not_, or_, select

from tasks.models import WebhookDelivery, WebhookDeliveryAttempt
from tasks.webhooks.subscriptions import get_subscription, list_subscriptions

ATTEMPT_SCHEMA = {"subscription_id": pl.Int64, "status_code": pl.Int64, "latency_ms": pl.Float64}

_A, _D = WebhookDeliveryAttempt, WebhookDelivery
_SUCCEEDED = and_(_A.status_code >= 200, _A.status_code < 300)
_JOINED = and_(_D.id == _A.delivery_id, _D.municipality_id == _A.municipality_id)


def attempt_figures(attempts: pl.LazyFrame) -> pl.DataFrame:
    """Per subscription: attempts, succeeded, success_rate (0 to 1), p50 and p95 latency in ms.

    `attempts` has ATTEMPT_SCHEMA's columns; only 2xx is a success; quantiles interpolate
    linearly between the two nearest latencies.
    """
    ok = pl.col("status_code").is_between(200, 299).fill_null(False)
    return (
        attempts.group_by("subscription_id")
        .agg(
            pl.len().cast(pl.Int64).alias("attempts"),
            ok.sum().cast(pl.Int64).alias("succeeded"),
            pl.col("latency_ms").quantile(0.50, interpolation="linear").alias("p50_latency_ms"),
            pl.col("latency_ms").quantile(0.95, interpolation="linear").alias("p95_latency_ms"),
        )
        .with_columns((pl.col("succeeded") / pl.col("attempts")).alias("success_rate"))
        .sort("subscription_id")
        .collect()
    )


def _window_attempts(conn: Connection, ids: list[int], since: datetime) -> pl.LazyFrame:
    rows = conn.execute(
        select(_D.subscription_id, _A.status_code, _A.latency_ms)
        .join(_D, _JOINED)
        .where(_D.subscription_id.in_(ids), _A.attempted_at >= since)
    ).all()
    return pl.DataFrame(rows, schema=ATTEMPT_SCHEMA, orient="row").lazy()


def _streaks(conn: Connection, ids: list[int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per subscription: its last success; and the attempts after it (all failures by definition)."""
    last_success = (
        select(_D.subscription_id, func.max(_A.attempted_at).label("last_success_at"))
        .join(_D, _JOINED)
        .where(_D.subscription_id.in_(ids), _SUCCEEDED)
        .group_by(_D.subscription_id)
        .cte("last_success")
    )
    failing = (
        select(
            _D.subscription_id,
            func.count().label("consecutive_failures"),
            func.min(_A.attempted_at).label("failing_since"),
        )
        .join(_D, _JOINED)
        .outerjoin(last_success, last_success.c.subscription_id == _D.subscription_id)
        .where(
            _D.subscription_id.in_(ids),
            or_(
                last_success.c.last_success_at.is_(None),
                _A.attempted_at > last_success.c.last_success_at,
            ),
        )
        .group_by(_D.subscription_id)
    )
    return _frame(conn, select(last_success)), _frame(conn, failing)


def _last_errors(conn: Connection, ids: list[int]) -> pl.DataFrame:
    """Per subscription: the newest failed attempt's time and what went wrong."""
    newest = (
        select(
            _D.subscription_id,
            _A.attempted_at.label("last_error_at"),
            _A.status_code,
            _A.error,
            func.row_number()
            .over(partition_by=_D.subscription_id, order_by=(_A.attempted_at.desc(), _A.id.desc()))
            .label("n"),
        )
        .join(_D, _JOINED)
        .where(_D.subscription_id.in_(ids), not_(_SUCCEEDED) | _A.status_code.is_(None))
        .subquery()
    )
    frame = _frame(conn, select(newest).where(newest.c.n == 1))
    return frame.select(
        "subscription_id",
        "last_error_at",
        pl.coalesce(pl.col("error"), pl.format("the endpoint answered {}", pl.col("status_code"))).alias(
            "last_error"
        ),
    )


def _delivery_counts(conn: Connection, ids: list[int]) -> pl.DataFrame:
    def count(status: str):
        return func.sum(case((_D.status == status, 1), else_=0)).label(f"{status}_deliveries")

    query = (
        select(_D.subscription_id, count("pending"), count("dead"))
        .where(_D.subscription_id.in_(ids))
        .group_by(_D.subscription_id)
    )
    return _frame(conn, query)


def _frame(conn: Connection, query) -> pl.DataFrame:  # noqa: ANN001
    result = conn.execute(query)
    names = list(result.keys())
    return pl.DataFrame([tuple(r) for r in result], schema=names, orient="row").with_columns(
        pl.col("subscription_id").cast(pl.Int64)
    )


def endpoint_stats(
    conn: Connection,
    since: datetime,
    *,
    municipality_id: str | None = None,
    subscription_id: int | None = None,
) -> list[dict]:
    """Figures for one endpoint, a municipality's, or every endpoint, oldest subscription first."""
    if subscription_id is not None:
        subscriptions = [get_subscription(conn, subscription_id, municipality_id)]
    else:
        subscriptions = list_subscriptions(conn, municipality_id)
    if not subscriptions:
        return []
    ids = [s["id"] for s in subscriptions]
    base = pl.DataFrame(
        {
            "subscription_id": ids,
            "municipality_id": [s["municipality_id"] for s in subscriptions],
            "url": [s["url"] for s in subscriptions],
            "is_active": [s["is_active"] for s in subscriptions],
            "disabled_reason": [s["disabled_reason"] for s in subscriptions],
        },
        schema_overrides={"subscription_id": pl.Int64, "disabled_reason": pl.String},
    )
    streak_start, streak = _streaks(conn, ids)
    parts = (
        attempt_figures(_window_attempts(conn, ids, since)),
        streak_start,
        streak,
        _last_errors(conn, ids),
        _delivery_counts(conn, ids),
    )
    figures = base
    for part in parts:
        figures = figures.join(part, on="subscription_id", how="left")
    counts = ["attempts", "succeeded", "consecutive_failures", "pending_deliveries", "dead_deliveries"]
    return (
        figures.with_columns(pl.col(counts).fill_null(0).cast(pl.Int64))
        .select(*COLUMNS)
        .sort("subscription_id")
        .to_dicts()
    )


COLUMNS = (
    "subscription_id",
    "municipality_id",
    "url",
    "is_active",
    "disabled_reason",
    "attempts",
    "succeeded",
    "success_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "last_success_at",
    "consecutive_failures",
    "failing_since",
    "last_error_at",
    "last_error",
    "pending_deliveries",
    "dead_deliveries",
)
