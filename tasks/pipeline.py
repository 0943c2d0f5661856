"""Run-level pieces of the flows: the default day, a range of days, the figures artifact, and the
failure event."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from rich import box
from rich.table import Table
from sqlalchemy import select

from tasks.calendar import yesterday
from tasks.database import begin
from tasks.models import Municipality
from tasks.settings import redact
from tasks.stages import StageRun, run_logger
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


def range_days(day: date | None, from_day: date | None, to_day: date | None) -> list[date] | None:
    """The days of a range run, `from_day` to `to_day` included, in order; None for a one-day run.

    ValueError, in a sentence, for a day and a range together, half a range, or a range that ends
    before it starts."""
    if from_day is None and to_day is None:
        return None
    if day is not None:
        raise ValueError("give either --day or --from/--to (a range of days), not both")
    if from_day is None or to_day is None:
        raise ValueError("a range of days needs both --from and --to (the same day twice runs one day)")
    if to_day < from_day:
        raise ValueError(f"the range ends ({to_day}) before it starts ({from_day})")
    return [from_day + timedelta(days=n) for n in range((to_day - from_day).days + 1)]


@dataclass(frozen=True)
class DayRun:
    """One day of a range run: its run summary, or why it failed."""

    day: date
    summary: dict | None
    failure: str | None
    seconds: float

    @property
    def failed(self) -> bool:
        return self.failure is not None


def run_days(run_day: Callable, days: list[date], keep_going: bool = False) -> Iterator[DayRun]:
    """Run `run_day(day=d, return_state=True)` (a flow: one flow run per day) for each day in
    order, yielding each day's outcome as it ends; after the first failed day, stop unless
    `keep_going`. A day's failure is the first line of its error: the stage and municipality
    that failed, and why (`publish_run_summary`)."""
    for day in days:
        started = time.perf_counter()
        state = run_day(day=day, return_state=True)
        seconds = round(time.perf_counter() - started, 2)
        if state.is_completed():
            yield DayRun(day, state.result(), None, seconds)
            continue
        error = state.result(raise_on_failure=False)
        reason = str(error) if isinstance(error, BaseException) else (state.message or state.name)
        yield DayRun(day, None, (reason.splitlines() or [state.name])[0], seconds)
        if not keep_going:
            return


def day_line(run: DayRun) -> str:
    """One line per day of a range run: the day's main figures, or what failed."""
    if run.failed:
        return f"{run.day}: failed after {run.seconds:.1f} s: {run.failure}"
    stages = run.summary["stages"]

    def total(stage: str, name: str) -> int:
        return int(stages.get(stage, {}).get("totals", {}).get(name, 0))

    def rows(stage: str) -> int:
        return int(stages.get(stage, {}).get("rows", 0))

    municipalities = stages.get("ingest", {}).get("items", 0)
    return (
        f"{run.day}: {municipalities} municipalit{'y' if municipalities == 1 else 'ies'}, "
        f"{rows('ingest'):,} readings loaded, {rows('flag_readings'):,} QC-flagged, "
        f"{total('detect_anomalies', 'anomalies_new'):,} new anomalies, "
        f"{total('detect_anomalies', 'incidents_opened'):,} incidents opened, "
        f"{total('write_reports', 'files_written'):,} report files written, {run.seconds:.1f} s"
    )


def range_total_line(runs: list[DayRun], days: list[date]) -> str:
    """The total of a range run: days run, failed and not run, and the summed figures."""
    done = [r for r in runs if not r.failed]
    failed = [r for r in runs if r.failed]

    def summed(stage: str, name: str | None = None) -> int:
        figures = [r.summary["stages"].get(stage, {}) for r in done]
        return int(sum(f.get("totals", {}).get(name, 0) if name else f.get("rows", 0) for f in figures))

    not_run = len(days) - len(runs)
    return (
        f"total {days[0]}..{days[-1]}: {len(done)} of {len(days)} day(s) done"
        + (f", {len(failed)} failed ({', '.join(str(r.day) for r in failed)})" if failed else "")
        + (f", {not_run} not run" if not_run else "")
        + f"; {summed('ingest'):,} readings loaded, {summed('flag_readings'):,} QC-flagged, "
        f"{summed('detect_anomalies', 'anomalies_new'):,} new anomalies, "
        f"{summed('detect_anomalies', 'incidents_opened'):,} incidents opened, "
        f"{summed('write_reports', 'files_written'):,} report files written, "
        f"{sum(r.seconds for r in runs):.1f} s"
    )


def check_range(runs: list[DayRun], days: list[date]) -> dict:
    """A range run's result (`days`: each day's summary or failure; `total`: the total line);
    RuntimeError naming the failed days, so the run that ran them fails too."""
    logger = run_logger("waterline.nightly")
    for run in runs:
        logger.info("%s", day_line(run))
    failed = [r for r in runs if r.failed]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(days)} day(s) failed: "
            + "; ".join(f"{r.day}: {r.failure}" for r in failed)
            + (f"; {len(days) - len(runs)} later day(s) not run" if len(runs) < len(days) else "")
        )
    return {
        "days": {r.day.isoformat(): r.summary for r in runs},
        "total": range_total_line(runs, days),
    }


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
    """Flow hook: tell every municipality's subscribers that this run failed, once per run.

    A nightly range's parent run fails because a day's child run did, and that run has told them."""
    parameters = flow_run.parameters or {}
    if parameters.get("from_day") is not None and parameters.get("to_day") is not None:
        return
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
