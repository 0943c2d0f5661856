"""`waterline demo`: sample data, the nightly flow on the embedded default, and a short summary."""

from __future__ import annotations

from datetime import date, timedelta

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text

from tasks.database import begin
from tasks.settings import get_settings

SUMMARY_SQL = "demo_summary"


def run_demo(console: Console, days: int = 2) -> dict:
    """Generate `days` of sample data ending yesterday, run the nightly flow for yesterday, summarise."""
    from flows.nightly_pipeline import nightly_pipeline
    from tasks.migrations import upgrade
    from tasks.sample import generate_sample
    from tasks.storage import inbox_store

    settings = get_settings()
    day = date.today() - timedelta(days=1)
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
    _print_summary(console, figures, settings.resolved_object_store_url, summary)
    return figures


def demo_figures(day: date) -> list[dict]:
    """Per municipality: readings, quarantine, incidents, compliance and reports for `day`."""
    from tasks.database import load_sql

    with begin() as conn:
        rows = conn.execute(text(load_sql(SUMMARY_SQL)), {"day": day}).mappings().all()
    return [dict(r) for r in rows]


def _print_summary(console: Console, figures: list[dict], objects_url: str, summary: dict) -> None:
    table = Table(title="Waterline demo", show_lines=False)
    for name in ("municipality", "readings", "quarantined", "incidents", "compliant", "warning",
                 "non-compliant", "reports", "webhook events"):
        table.add_column(name, justify="left" if name == "municipality" else "right")
    for f in figures:
        table.add_row(f["municipality_id"], f"{f['readings']:,}", f"{f['quarantined']:,}",
                      str(f["incidents"]), str(f["compliant"]), str(f["warning"]),
                      str(f["non_compliant"]), str(f["reports"]), str(f["webhook_events"]))
    console.print(table)
    seconds = sum(s["seconds"] for s in summary["stages"].values())
    console.print(f"Stages took {seconds:.1f} s. Reports and e-mails (.eml) are in {objects_url}")
