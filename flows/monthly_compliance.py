"""The monthly compliance flow: each municipality's regulator report for the last month, and
amended reports for earlier months that late data changed."""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import select

from tasks.calendar import yesterday
from tasks.compliance.monthly import month_of
from tasks.database import begin
from tasks.models import Municipality
from tasks.pipeline import publish_run_summary, record_pipeline_failure
from tasks.reports.monthly import email_monthly_report, months_due, write_monthly_report
from tasks.stages import run_stage


@task(name="plan_months", task_run_name="plan-months")
def plan_months(month: str | None = None, municipality: str | None = None) -> dict[date, list[str]]:
    """The municipalities to report per month: `month` for all (or one), or what each needs."""
    with begin() as conn:
        query = select(Municipality.id, Municipality.timezone).order_by(Municipality.id)
        if municipality:
            query = query.where(Municipality.id == municipality)
        towns = conn.execute(query).all()
        if municipality and not towns:
            raise ValueError(f"unknown municipality {municipality!r}")
        plan: dict[date, list[str]] = {}
        for town in towns:
            months = (
                [month_of(month)]
                if month
                else months_due(conn, town.id, town.timezone, yesterday(town.timezone))
            )
            for due in months:
                plan.setdefault(due, []).append(town.id)
    return dict(sorted(plan.items()))


@flow(
    name="monthly_compliance",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    on_failure=[record_pipeline_failure],
    on_crashed=[record_pipeline_failure],
)
def monthly_compliance(month: str | None = None, municipality: str | None = None) -> dict:
    """Judge and report each municipality's month, then e-mail each new revision once.

    Without `month`: the last complete month of each municipality that has no report yet, and
    the earlier months whose data changed since their report (amended). With `month` (YYYY-MM):
    that month, for every municipality or the one named."""
    stages = []
    for due, towns in plan_months(month, municipality).items():
        label = f"{due:%Y-%m}"
        reports = run_stage(f"monthly_reports {label}", write_monthly_report, towns, due)
        emails = run_stage(f"monthly_emails {label}", email_monthly_report, reports.succeeded(towns), due)
        stages += [reports, emails]
    return publish_run_summary(None, stages)
