"""The hourly flow: load whatever has arrived in the inbox since the last run, then see which
sensors went offline or came back."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.ingest import ingest_municipality, sync_registries
from tasks.maintenance.outages import check_sensor_outages
from tasks.pipeline import plan_days, publish_run_summary, record_pipeline_failure
from tasks.stages import run_stage


@flow(
    name="hourly_ingest",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    on_failure=[record_pipeline_failure],
)
def hourly_ingest() -> dict:
    """Apply registry changes, load every pending inbox file and record the sensors that went
    offline or came back, one task per municipality."""
    sync_registries()
    municipalities = list(plan_days())
    ingest = run_stage("ingest", ingest_municipality, municipalities)
    outages = run_stage("check_outages", check_sensor_outages, ingest.succeeded(municipalities))
    return publish_run_summary(None, [ingest, outages])
