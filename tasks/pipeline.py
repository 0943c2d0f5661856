"""Run-level pieces of the flows: the default day, the figures artifact, and the failure event."""

from __future__ import annotations

from datetime import date, datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from rich import box
from rich.table import Table
from sqlalchemy import select

from tasks.calendar import yesterday
from tasks.database import begin
from tasks.models import Municipality
from tasks.settings import redact
from tasks.stages import StageRun
from tasks.webhooks.outbox import record_event


def stage_table(stages: dict, title: str | None = None) -> Table:
    """The stages of a run summary (or a benchmark) as a console table: units, rows, time, rate."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("stage", "units", "rows", "seconds", "rows/s", "failed"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for name, f in stages.items():
        rate = f.get("rows_per_second")
        table.add_row(name, str(f["items"]), f"{f['rows']:,}", f"{f['seconds']:.2f}",
                      f"{rate:,.0f}" if rate else "-", str(f.get("failed", 0)))
    return table


@task(name="plan_days", task_run_name="plan-days")
def plan_days(day: date | None = None, now: datetime | None = None) -> dict[str, date]:
    """Every registered municipality and its day to process: `day`, or yesterday in its own timezone."""
    with begin() as conn:
        zones = conn.execute(select(Municipality.id, Municipality.timezone).order_by(Municipality.id)).all()
    return {municipality_id: day or yesterday(zone, now) for municipality_id, zone in zones}


def summarize(day: date | None, stages: list[StageRun]) -> dict:
    """The run's figures: per stage its items, rows, wall seconds, rate, failures and summed details."""
    summary: dict = {"day": day.isoformat() if day else None, "stages": {}, "failures": {}}
    for run in stages:
        totals: dict[str, float] = {}
        for result in run.results:
            for key, value in (result.get("details") or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    totals[key] = totals.get(key, 0) + value
        summary["stages"][run.stage] = {
            "items": len(run.results) + len(run.failures),
            "rows": run.rows,
            "seconds": run.seconds,
            "rows_per_second": round(run.rows / run.seconds, 1) if run.seconds else None,
            "failed": len(run.failures),
            "totals": totals,
        }
        for item, reason in run.failures.items():
            summary["failures"][f"{run.stage}:{item}"] = reason
    return summary


@task(name="publish_run_summary", task_run_name="publish-run-summary")
def publish_run_summary(day: date | None, stages: list[StageRun]) -> dict:
    """Publish the run's figures as a table artifact; fail the run, with reasons, if any stage failed."""
    summary = summarize(day, stages)
    rows = [
        {"stage": name, **{k: v for k, v in figures.items() if k != "totals"},
         **{f"total {k}": v for k, v in figures["totals"].items()}}
        for name, figures in summary["stages"].items()
    ]
    period = day or "each municipality's yesterday"
    create_table_artifact(key="run-figures", table=rows, description=f"Figures for {period}")
    logger = get_run_logger()
    for name, figures in summary["stages"].items():
        logger.info(
            "%s: %d item(s), %d rows in %.2f s%s", name, figures["items"], figures["rows"],
            figures["seconds"], f", {figures['failed']} failed" if figures["failed"] else "",
        )
    if summary["failures"]:
        lines = "\n".join(f"- `{where}`: {reason}" for where, reason in summary["failures"].items())
        create_markdown_artifact(key="run-failures", markdown=f"## Failures\n\n{lines}\n")
        raise RuntimeError(
            f"{len(summary['failures'])} unit(s) of work failed: "
            + "; ".join(f"{where}: {reason}" for where, reason in summary["failures"].items())
        )
    return summary


def record_pipeline_failure(flow, flow_run, state) -> None:  # noqa: ANN001
    """Flow hook: tell every municipality's subscribers that this run failed, once per run."""
    message = redact((state.message or state.name or "failed").splitlines()[0])[:500]
    with begin() as conn:
        for municipality_id in conn.execute(select(Municipality.id)).scalars():
            record_event(
                conn,
                municipality_id=municipality_id,
                event_type="pipeline.failed",
                data={
                    "flow": flow.name,
                    "flow_run_id": str(flow_run.id),
                    "flow_run_name": flow_run.name,
                    "parameters": {k: str(v) for k, v in (flow_run.parameters or {}).items()},
                    "state": state.name,
                    "message": message,
                },
                dedupe_key=f"pipeline.failed:{flow_run.id}:{municipality_id}",
            )
