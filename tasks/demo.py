"""`waterline demo`: sample data, the nightly flow on the embedded default, and a short summary."""

from __future__ import annotations

from datetime import date, timedelta

from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tasks.calendar import finished_everywhere
from tasks.database import begin, run_sql
from tasks.pipeline import stage_table
from tasks.settings import get_settings

SUMMARY_SQL = "demo_summary"


def run_demo(console: Console, days: int = 2) -> dict:
    """Generate `days` of sample data ending on a finished day, run the nightly flow for it, summarise."""
    from flows.nightly_pipeline import nightly_pipeline
    from tasks.migrations import upgrade
    from tasks.sample import generate_sample
    from tasks.storage import inbox_store

    settings = get_settings()
    # The sample towns lie in zones from Europe to the Americas, and "yesterday" in a western town
    # may not be over yet: its last readings would be in the future and rightly quarantined.
    day = finished_everywhere()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        step = progress.add_task("Preparing the database", total=1)
        upgrade()
        progress.update(step, completed=1, description="Database ready")

        step = progress.add_task("Generating sample data", total=1)
        sample = generate_sample(inbox_store(), start=day - timedelta(days=days - 1), days=days)
        progress.update(step, completed=1,
                        description=f"Sample data: {sample.total_readings:,} readings written")

        step = progress.add_task(f"Running the nightly pipeline for {day}", total=1)
        summary = nightly_pipeline(day=day)
        progress.update(step, completed=1, description=f"Nightly pipeline for {day} done")

    figures = demo_figures(day)
    _print_summary(console, figures, settings.resolved_object_store_url, summary, bool(settings.smtp_host))
    return figures


def demo_figures(day: date) -> list[dict]:
    """Per municipality: readings, quarantine, incidents, compliance and reports for `day`."""
    with begin() as conn:
        rows = run_sql(conn, SUMMARY_SQL, {"day": day}).mappings().all()
    return [dict(r) for r in rows]


def _print_summary(
    console: Console, figures: list[dict], objects_url: str, summary: dict, smtp_configured: bool
) -> None:
    table = Table(title=f"Nightly run for {summary['day']}", box=box.SIMPLE_HEAD, pad_edge=False)
    headers = ("municipality", "readings", "quarantined", "incidents", "compliance\nok/warn/fail",
               "reports", "webhook\nevents")
    for name in headers:
        table.add_column(name, justify="left" if name == "municipality" else "right")
    for f in figures:
        compliance = f"{f['compliant']}/{f['warning']}/{f['non_compliant']}"
        table.add_row(f["municipality_id"], f"{f['readings']:,}", f"{f['quarantined']:,}",
                      str(f["incidents"]), compliance, str(f["reports"]), str(f["webhook_events"]))
    console.print(table)
    console.print(stage_table(summary["stages"], title="Stages"))
    if smtp_configured:
        console.print("Reports are in:")
    else:
        console.print("Reports and e-mails (.eml files, as no SMTP server is set) are in:")
    console.print(objects_url, soft_wrap=True)
