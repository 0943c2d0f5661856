"""The nightly flow: every stage of Waterline for one day, municipality by municipality."""

from __future__ import annotations

from datetime import date

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.analytics import compute_aggregates
from tasks.analytics.insights import publish_insights
from tasks.anomalies import detect_anomalies
from tasks.anomalies.alert_stage import raise_alerts
from tasks.compliance import judge_compliance
from tasks.ingest import ingest_municipality, sync_registries
from tasks.maintenance import score_sensor_health
from tasks.maintenance.outages import check_sensor_outages
from tasks.pipeline import (
    check_range,
    plan_days,
    publish_run_summary,
    range_days,
    record_pipeline_failure,
    run_days,
)
from tasks.quality import flag_readings
from tasks.reports import email_daily_report, write_daily_reports
from tasks.stages import run_stage
from tasks.webhooks.delivery import deliver_endpoint, find_due_endpoints


@flow(
    name="nightly_pipeline",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    on_failure=[record_pipeline_failure],
    on_crashed=[record_pipeline_failure],
)
def nightly_pipeline(
    day: date | None = None,
    from_day: date | None = None,
    to_day: date | None = None,
    keep_going: bool = False,
) -> dict:
    """Ingest, check, judge and report one day of readings for every municipality, then notify.

    Without `day`, each municipality gets its own yesterday: at 02:30 UTC that is the 26th in
    Berlin but the 25th in Chicago, whose 26th is not over yet. With `from_day` and `to_day`
    instead, every day of that range (included, in order) gets its own nightly run, a child flow
    run of a few dozen task runs; the range stops at the first failed day unless `keep_going`.
    """
    days = range_days(day, from_day, to_day)
    if days is not None:
        return check_range(list(run_days(nightly_pipeline, days, keep_going)), days)

    sync_registries()
    days = plan_days(day)
    municipalities = list(days)

    ingest = run_stage("ingest", ingest_municipality, municipalities)
    loaded = ingest.succeeded(municipalities)
    qc = run_stage("flag_readings", flag_readings, loaded, days)
    loaded = qc.succeeded(loaded)  # ingested and QC-flagged: every later stage reads the flags
    aggregate = run_stage("aggregate", compute_aggregates, loaded, days)
    insights = run_stage("publish_insights", publish_insights, aggregate.succeeded(loaded), days)
    anomalies = run_stage("detect_anomalies", detect_anomalies, aggregate.succeeded(loaded), days)
    alerts = run_stage("raise_alerts", raise_alerts, anomalies.succeeded(aggregate.succeeded(loaded)), days)
    maintenance = run_stage("score_sensors", score_sensor_health, loaded, days)
    outages = run_stage("check_outages", check_sensor_outages, ingest.succeeded(municipalities))
    compliance = run_stage("judge_compliance", judge_compliance, aggregate.succeeded(loaded), days)
    reports = run_stage("write_reports", write_daily_reports, compliance.succeeded(loaded), days)
    emails = run_stage("email_reports", email_daily_report, reports.succeeded(loaded), days)
    webhooks = run_stage("deliver_webhooks", deliver_endpoint, find_due_endpoints())

    return publish_run_summary(
        day,
        [
            ingest,
            qc,
            aggregate,
            insights,
            anomalies,
            alerts,
            maintenance,
            outages,
            compliance,
            reports,
            emails,
            webhooks,
        ],
    )
