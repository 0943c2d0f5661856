"""The hourly flow: load whatever has arrived in the inbox since the last run."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.ingest import ingest_municipality, sync_registries
from tasks.pipeline import plan_days, publish_run_summary, record_pipeline_failure
from tasks.stages import run_stage


@flow(
    name="hourly_ingest",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    on_failure=[record_pipeline_failure],
)
def hourly_ingest() -> dict:
    """Apply registry changes and load every pending inbox file, one task per municipality."""
    sync_registries()
    ingest = run_stage("ingest", ingest_municipality, list(plan_days()))
    return publish_run_summary(None, [ingest])
