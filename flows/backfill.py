"""The backfill flow: recompute every aggregate of a range of local days, idempotently."""

from __future__ import annotations

from datetime import date

from prefect import flow

from tasks.analytics.backfill import backfill_aggregates
from tasks.pipeline import plan_days, publish_run_summary
from tasks.stages import run_stage


@flow(name="backfill")
def backfill(from_day: date, to_day: date, municipality: str | None = None) -> dict:
    """Recompute the hourly, daily, weekly and monthly aggregates of [from_day, to_day] (local
    days), and the insights of the months they change, for every municipality or one, one task
    per municipality; a rerun writes nothing."""
    if to_day < from_day:
        raise ValueError(f"the range ends ({to_day}) before it starts ({from_day})")
    known = list(plan_days(to_day))
    if municipality and municipality not in known:
        raise ValueError(f"unknown municipality {municipality!r}")
    municipalities = [municipality] if municipality else known
    run = run_stage("backfill", backfill_aggregates, municipalities, from_day, to_day)
    return publish_run_summary(None, [run])
