"""The nightly flow's failure hook: one `pipeline.failed` event per failed run, not two for a range."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from prefect.states import Failed
from sqlalchemy import select

from tasks.database import begin
from tasks.models import WebhookEvent
from tasks.pipeline import record_pipeline_failure


def _failed_run(**parameters) -> SimpleNamespace:  # noqa: ANN003
    return SimpleNamespace(id=uuid.uuid4(), name="nightly-run", parameters=parameters)


def _failure_events() -> list[tuple[str, dict]]:
    with begin() as conn:
        rows = conn.execute(
            select(WebhookEvent.municipality_id, WebhookEvent.payload).where(
                WebhookEvent.event_type == "pipeline.failed"
            )
        ).all()
    return [(m, p["data"]["parameters"]) for m, p in rows]


def test_a_failed_day_is_told_once_and_its_range_parent_adds_nothing(database, seed):
    with begin() as conn:
        seed.municipality(conn, "riverton", "UTC", {"rv-turb": "turbidity"})
    flow = SimpleNamespace(name="nightly_pipeline")
    state = Failed(message="ingest failed for riverton: the registry is refused")

    record_pipeline_failure(flow, _failed_run(day="2026-05-02"), state)
    record_pipeline_failure(flow, _failed_run(from_day="2026-05-01", to_day="2026-05-03"), state)

    assert _failure_events() == [("riverton", {"day": "2026-05-02"})]
