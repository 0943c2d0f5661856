"""The dispatch flow: send every webhook delivery that is due, one task per endpoint."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.pipeline import publish_run_summary
from tasks.stages import run_stage
from tasks.webhooks.delivery import deliver_endpoint, find_due_endpoints

# Endpoint tasks mostly wait, on the database or on the process's one sending loop; eight keep
# that loop busy (more only lengthen each request's queue on it).
ENDPOINT_WORKERS = 8


@flow(name="dispatch_webhooks", task_runner=ThreadPoolTaskRunner(max_workers=ENDPOINT_WORKERS))
def dispatch_webhooks() -> dict:
    """Deliver the due webhook attempts of every active endpoint; the schedule lives in the database.

    The only task runs are the endpoints' delivery tasks: the lookup of due endpoints and the
    run's summary run in the flow itself.
    """
    webhooks = run_stage("deliver_webhooks", deliver_endpoint, find_due_endpoints())
    return publish_run_summary.fn(None, [webhooks])
