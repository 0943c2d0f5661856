"""The dispatch flow: send every webhook delivery that is due, one task per endpoint."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.pipeline import publish_run_summary
from tasks.stages import run_stage
from tasks.webhooks.delivery import deliver_endpoint, find_due_endpoints


@flow(name="dispatch_webhooks", task_runner=ThreadPoolTaskRunner(max_workers=8))
def dispatch_webhooks() -> dict:
    """Deliver the due webhook attempts of every active endpoint; the schedule lives in the database."""
    webhooks = run_stage("deliver_webhooks", deliver_endpoint, find_due_endpoints())
    return publish_run_summary(None, [webhooks])
