"""The `waterline` command line: set up, feed, run, demonstrate and measure the pipeline."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from flows.cli_common import cell as _cell
from flows.cli_common import console, plain_errors

app = typer.Typer(
    help="Waterline: a Prefect pipeline for drinking-water sensor data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
run_app = typer.Typer(help="Run one flow now, in this process.", no_args_is_help=True)
app.add_typer(db_app, name="db")
quarantine_app = typer.Typer(help="See quarantined rows and release them once fixed.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(quarantine_app, name="quarantine")


@db_app.command("upgrade")
@plain_errors
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest version."""
    from tasks.migrations import upgrade
    from tasks.settings import get_settings

    revision = upgrade()
    console.print(
        f"database {get_settings().redacted_database_url} is at revision {revision}", soft_wrap=True
    )


@app.command()
@plain_errors
def sample(
    days: Annotated[int, typer.Option(help="Days of readings to generate.")] = 2,
    municipalities: Annotated[int, typer.Option(help="How many municipalities.")] = 3,
    stations: Annotated[int, typer.Option(help="Stations per municipality.")] = 3,
    interval: Annotated[
        list[int] | None,
        typer.Option(
            help="Seconds between online readings (60, 300, 900...); repeat it to mix cadences: "
            "municipality k reads at the k-th interval, round-robin."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First day (YYYY-MM-DD); default: days ending two days ago.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files.")] = 7,
    inbox: Annotated[
        str | None, typer.Option(help="Inbox folder or s3:// URL; default: configured inbox.")
    ] = None,
) -> None:
    """Write realistic synthetic input files (registry, readings, lab samples, labels) into the inbox."""
    summary = _generate_sample(days, municipalities, stations, interval or [60], start, seed, inbox)
    towns = summary.municipalities.values()
    cadences = ", ".join(f"{m.municipality_id} every {m.interval_seconds} s" for m in towns)
    console.print(
        f"wrote {summary.total_readings:,} readings for {len(summary.municipality_ids)} "
        f"municipalities into {summary.inbox_url} ({cadences})",
        soft_wrap=True,
    )


def _generate_sample(days, municipalities, stations, interval, start, seed, inbox):  # noqa: ANN001, ANN202
    from tasks.calendar import finished_everywhere
    from tasks.sample import generate_sample
    from tasks.storage import ObjectStore, inbox_store

    store = ObjectStore(inbox) if inbox else inbox_store()
    first_day = date.fromisoformat(start) if start else finished_everywhere() - timedelta(days=days - 1)
    return generate_sample(
        store,
        start=first_day,
        days=days,
        municipalities=municipalities,
        stations_per_municipality=stations,
        interval_seconds=interval,
        seed=seed,
    )


@app.command()
@plain_errors
def ingest(
    path: Annotated[str | None, typer.Argument(help="Folder or s3:// URL laid out like the inbox.")] = None,
) -> None:
    """Load every pending file from the inbox (or PATH) now, without Prefect."""
    from tasks.ingest import ingest_inbox

    results = ingest_inbox(path)
    table = Table("municipality", "files", "loaded", "quarantined", "unchanged", "failed files")
    for r in results:
        d = r.get("details", {})
        table.add_row(
            r["municipality_id"],
            str(d.get("files", 0)),
            f"{d.get('rows_loaded', 0):,}",
            f"{d.get('rows_quarantined', 0):,}",
            f"{d.get('rows_unchanged', 0):,}",
            str(d.get("files_failed", 0)),
        )
    console.print(table)


@run_app.command("nightly")
@plain_errors
def run_nightly(
    day: Annotated[str | None, typer.Option(help="Day to process (YYYY-MM-DD); default yesterday.")] = None,
    from_day: Annotated[
        str | None, typer.Option("--from", help="First day of a range to process (YYYY-MM-DD).")
    ] = None,
    to_day: Annotated[
        str | None, typer.Option("--to", help="Last day of the range (YYYY-MM-DD, included).")
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Go on with the next days after a day fails.")
    ] = False,
) -> None:
    """Run the nightly pipeline for one day, or for each day of --from..--to in order (one flow run
    per day), stopping at the first failed day unless --keep-going."""
    from flows.nightly_pipeline import nightly_pipeline
    from tasks.pipeline import day_line, range_days, range_total_line, run_days

    days = range_days(
        date.fromisoformat(day) if day else None,
        date.fromisoformat(from_day) if from_day else None,
        date.fromisoformat(to_day) if to_day else None,
    )
    if days is None:
        _print_stages(nightly_pipeline(day=date.fromisoformat(day) if day else None))
        return
    runs = []
    for run in run_days(nightly_pipeline, days, keep_going):
        runs.append(run)
        console.print(_cell(day_line(run)), soft_wrap=True)
    console.print(_cell(range_total_line(runs, days)), soft_wrap=True)
    failed = [r for r in runs if r.failed]
    if failed and len(runs) < len(days):
        console.print(
            _cell(
                f"stopped at {failed[0].day}, the first failed day: {len(days) - len(runs)} later day(s) not "
                "run; fix the cause and run the range again from that day, or pass --keep-going"
            ),
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(1)


@run_app.command("monthly")
@plain_errors
def run_monthly(
    month: Annotated[
        str | None, typer.Option(help="Month to report (YYYY-MM); default: whatever is due.")
    ] = None,
    municipality: Annotated[str | None, typer.Option("--municipality", "-m", help="Only this one.")] = None,
) -> None:
    """Judge and write the monthly compliance reports that are due (or one month's), and e-mail them."""
    from flows.monthly_compliance import monthly_compliance

    _print_stages(monthly_compliance(month=month, municipality=municipality))


@run_app.command("backfill")
@plain_errors
def run_backfill(
    from_day: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")],
    to_day: Annotated[str, typer.Option("--to", help="Last local day, YYYY-MM-DD (included).")],
    municipality: Annotated[str | None, typer.Option("--municipality", "-m", help="Only this one.")] = None,
) -> None:
    """Recompute the aggregates of a range of days (and the weeks and months they end), idempotently."""
    from flows.backfill import backfill

    _print_stages(backfill(date.fromisoformat(from_day), date.fromisoformat(to_day), municipality))


@run_app.command("hourly")
@plain_errors
def run_hourly() -> None:
    """Run the hourly ingestion flow once."""
    from flows.hourly_ingest import hourly_ingest

    _print_stages(hourly_ingest())


@run_app.command("dispatch")
@plain_errors
def run_dispatch() -> None:
    """Deliver the webhook attempts that are due now."""
    from flows.dispatch_webhooks import dispatch_webhooks

    _print_stages(dispatch_webhooks())


@app.command()
@plain_errors
def serve() -> None:
    """Serve every deployment of prefect.yaml from this process (needs `prefect server start`)."""
    from tasks.deployments import serve_all

    serve_all()


@app.command()
@plain_errors
def demo(
    days: Annotated[int, typer.Option(help="Days of sample data.")] = 2,
) -> None:
    """Generate sample data and run the nightly pipeline on the embedded default, then summarise."""
    quiet_prefect()
    from tasks.demo import run_demo

    run_demo(console, days=days)


@app.command()
@plain_errors
def evaluate(
    path: Annotated[
        str, typer.Argument(help="Labelled file: GECCO's columns, or any layout with --mapping.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    mapping: Annotated[
        str | None,
        typer.Option(
            help="Source mapping YAML (as for ingestion); sensors' parameters from ../registry.yaml."
        ),
    ] = None,
    label_column: Annotated[
        list[str] | None, typer.Option(help="Label column(s) of PATH; a row is labelled if any says so.")
    ] = None,
    label_when: Annotated[
        str, typer.Option(help="`true`: a label column reads true/1/yes; `not-empty`: it holds any text.")
    ] = "true",
    intervals: Annotated[
        str | None,
        typer.Option(help="A CSV of labelled intervals (start, end[, is_event]) instead of columns."),
    ] = None,
    split_at: Annotated[
        datetime | None,
        typer.Option(help="Score from this time (file's timezone); default: 70 % of the rows, to a day."),
    ] = None,
    gap: Annotated[str, typer.Option(help="Time left out between fit and scored part (at least 1d).")] = "1d",
    folds: Annotated[
        int, typer.Option(min=0, help="Forward-chaining folds for the second line (0: none).")
    ] = 3,
    cross_validate: Annotated[
        bool, typer.Option("--cross-validate", help="Also print week-wise cross-validation (an extra line).")
    ] = False,
    tune_on: Annotated[
        str | None, typer.Option(help="Also choose the parameters on this labelled file and score PATH.")
    ] = None,
    learned: Annotated[
        bool, typer.Option(help="Also score the learned detector (gradient boosting).")
    ] = True,
    synthetic: Annotated[
        bool, typer.Option(help="Also score QC flags and detectors on generated faults, per kind.")
    ] = True,
    synthetic_days: Annotated[int, typer.Option(min=2, help="Days of generated faults to score.")] = 14,
    synthetic_interval: Annotated[
        int, typer.Option(min=1, help="Seconds between the generated online readings (60, 300, 900...).")
    ] = 60,
) -> None:
    """Score the detectors forward in time on a labelled file: every setting and model chosen on the
    part before --split-at (less --gap), scored after it, beside two bare baselines; then forward-
    chaining folds; week-wise cross-validation only with --cross-validate; and the shipped QC flags
    and detectors on the sample generator's labelled faults, per kind of fault."""
    from tasks.evaluation.forward import duration
    from tasks.evaluation.labelled import LabelSpec
    from tasks.evaluation.report import print_evaluation
    from tasks.evaluation.tune import evaluate as evaluate_file

    if label_when not in ("true", "not-empty"):
        raise ValueError("--label-when is `true` or `not-empty`")
    labels = LabelSpec(
        tuple(label_column or ("EVENT",)), "not_empty" if label_when == "not-empty" else "true"
    )
    report = evaluate_file(
        path,
        tune_on=tune_on,
        learned=learned,
        synthetic=synthetic and synthetic_days,
        synthetic_interval=synthetic_interval,
        mapping=mapping,
        labels=labels,
        intervals=intervals,
        split_at=split_at,
        gap=duration(gap),
        folds=folds,
        week_wise=cross_validate,
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_evaluation(console, report)


bench_app = typer.Typer(help="Measure the pipeline on generated data, on a throwaway database.")
app.add_typer(bench_app, name="bench")
JsonOption = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]
KeepOption = Annotated[bool, typer.Option(help="Keep the benchmark database afterwards.")]


@bench_app.callback(invoke_without_command=True)
@plain_errors
def bench(
    ctx: typer.Context,
    readings: Annotated[int, typer.Option(help="How many readings to generate and process.")] = 1_000_000,
    as_json: JsonOption = False,
    keep: KeepOption = False,
) -> None:
    """Measure every nightly stage on N generated readings against the configured kind of database.

    `waterline bench ingest` measures ingestion alone, step by step.
    """
    if ctx.invoked_subcommand is not None:
        return
    quiet_prefect()
    from tasks.bench import print_bench, run_bench

    figures = run_bench(readings, keep=keep, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_bench(console, figures)


@bench_app.command("ingest")
@plain_errors
def bench_ingest(
    readings: Annotated[int, typer.Option(help="Readings in the generated file.")] = 5_000_000,
    as_json: JsonOption = False,
    keep: KeepOption = False,
) -> None:
    """Ingest one generated CSV file: readings per second of each step, and against a bare COPY."""
    quiet_prefect()
    from tasks.bench import print_ingest_bench, run_ingest_bench

    figures = run_ingest_bench(readings, keep=keep)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_ingest_bench(console, figures)


@bench_app.command("detect")
@plain_errors
def bench_detect(
    readings: Annotated[int, typer.Option(help="Readings to generate and judge.")] = 10_000_000,
    as_json: JsonOption = False,
) -> None:
    """Time QC flags and the anomaly detectors on generated readings, beside a bare rolling mean."""
    quiet_prefect()
    from tasks.bench_detect import print_detect_bench, run_detect_bench

    figures = run_detect_bench(readings)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_detect_bench(console, figures)


@bench_app.command("analytics")
@plain_errors
def bench_analytics(
    readings: Annotated[int, typer.Option(help="Readings to generate and aggregate.")] = 10_000_000,
    repeats: Annotated[int, typer.Option(help="Runs of each step; the fastest counts.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Time aggregation into hour, day, week and month buckets beside a bare Polars group_by_dynamic."""
    quiet_prefect()
    from tasks.bench_analytics import print_analytics_bench, run_analytics_bench

    figures = run_analytics_bench(readings, repeats)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_analytics_bench(console, figures)


@bench_app.command("webhooks")
@plain_errors
def bench_webhooks(
    events: Annotated[int, typer.Option(help="Events written to the outbox, spread evenly.")] = 10_000,
    endpoints: Annotated[int, typer.Option(help="Local HTTP receivers, one municipality each.")] = 50,
    as_json: JsonOption = False,
    keep: KeepOption = False,
) -> None:
    """Dispatch a storm of events to local receivers: deliveries per second, p95 latency, task runs."""
    quiet_prefect()
    from tasks.bench_webhooks import print_webhooks_bench, run_webhooks_bench

    figures = run_webhooks_bench(events=events, endpoints=endpoints, keep=keep)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_webhooks_bench(console, figures)


@bench_app.command("export")
@plain_errors
def bench_export(
    readings: Annotated[int, typer.Option(help="Readings to load and export.")] = 10_000_000,
    sensors: Annotated[int, typer.Option(help="Sensors they are spread over.")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="Export format.")] = "csv",
    as_json: JsonOption = False,
    keep: KeepOption = False,
) -> None:
    """Time an export of N readings (goal: CSV at 1M rows/s) and its peak memory, on a throwaway database."""
    quiet_prefect()
    from tasks.bench_export import print_export_bench, run_export_bench

    figures = run_export_bench(readings, sensors, fmt, keep=keep)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_export_bench(console, figures)


@bench_app.command("report")
@plain_errors
def bench_report(
    sensors: Annotated[int, typer.Option(help="Online sensors, one reading a minute for a month.")] = 500,
    as_json: JsonOption = False,
    keep: KeepOption = False,
) -> None:
    """Time one municipality's monthly compliance report: read, judge, record, render four formats."""
    quiet_prefect()
    from tasks.bench_report import print_report_bench, run_report_bench

    figures = run_report_bench(sensors, keep=keep)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        print_report_bench(console, figures)


Municipality = Annotated[
    str | None, typer.Option("--municipality", "-m", help="Only this municipality's rows.")
]


@quarantine_app.command("list")
@plain_errors
def quarantine_list(
    municipality: Municipality = None,
    batch: Annotated[int | None, typer.Option(help="Only the rows of this ingest batch.")] = None,
    released: Annotated[bool, typer.Option("--released", help="Include rows already released.")] = False,
) -> None:
    """List quarantined rows with their reasons, oldest first."""
    from tasks.database import begin
    from tasks.ingest.quarantine import list_quarantined

    with begin() as conn:
        rows = list_quarantined(conn, municipality, batch, include_released=released)
    table = Table(
        "id",
        "municipality",
        "batch",
        "row",
        "sensor",
        "observed at",
        "value",
        "unit",
        "reasons",
        "released",
        title=f"{len(rows):,} quarantined row(s)",
    )
    for r in rows:
        q, raw = r, r.raw
        table.add_row(
            str(q.id),
            q.municipality_id,
            str(q.batch_id),
            str(q.row_number),
            *(_cell(raw.get(c)) for c in ("sensor_id", "observed_at", "value", "unit")),
            _cell("; ".join(q.reasons)),
            _cell(q.released_at),
        )
    console.print(table)


@quarantine_app.command("show")
@plain_errors
def quarantine_show(
    row_id: Annotated[int, typer.Argument(metavar="ID", help="The quarantined row's id.")],
    municipality: Municipality = None,
) -> None:
    """Show one quarantined row: where it came from, its original values and every reason."""
    from tasks.database import begin
    from tasks.ingest.quarantine import get_quarantined

    with begin() as conn:
        row = get_quarantined(conn, row_id, municipality)
    q = row
    table = Table("field", "value", title=f"quarantined row {q.id}", show_header=False)
    for name, value in (
        ("municipality", q.municipality_id),
        ("batch", q.batch_id),
        ("source", row.source),
        ("row in file", q.row_number),
        ("quarantined at", q.created_at),
        ("released at", q.released_at),
    ):
        table.add_row(name, _cell(value))
    for name, value in q.raw.items():
        table.add_row(f"raw {name}", _cell(value))
    for n, reason in enumerate(q.reasons, start=1):
        table.add_row(f"reason {n}", _cell(reason))
    console.print(table)


@quarantine_app.command("release")
@plain_errors
def quarantine_release(
    row_ids: Annotated[list[int] | None, typer.Argument(metavar="ID...", help="Quarantined row ids.")] = None,
    batch: Annotated[int | None, typer.Option(help="Every unreleased row of this ingest batch.")] = None,
    municipality: Municipality = None,
    actor: Annotated[str | None, typer.Option(help="Who releases (for the audit log); default: you.")] = None,
) -> None:
    """Re-check quarantined rows against the current registry; load those that now pass."""
    import getpass

    from tasks.ingest.quarantine import release_quarantined

    releases = release_quarantined(
        row_ids, batch_id=batch, municipality_id=municipality, actor=actor or f"cli:{getpass.getuser()}"
    )
    table = Table(
        "municipality", "released", "new batch", "revised", "late", "still quarantined", "already released"
    )
    for r in releases:
        table.add_row(
            r.municipality_id,
            _ids(r.released),
            _cell(r.batch_id),
            str(r.figures.get("rows_revised", 0)),
            str(r.figures.get("rows_late", 0)),
            _ids(r.still_failing),
            _ids(r.already_released),
        )
    console.print(table)
    for r in releases:
        for row_id, reasons in r.still_failing.items():
            console.print(_cell(f"row {row_id} is still quarantined: {'; '.join(reasons)}"), soft_wrap=True)


incidents_app = typer.Typer(help="See incidents and act on them: acknowledge, resolve, dismiss.")
app.add_typer(incidents_app, name="incidents")
Actor = Annotated[str | None, typer.Option(help="Who acts (for the audit log and the label); default: you.")]
Note = Annotated[str | None, typer.Option(help="A note kept with the incident.")]


def _actor(actor: str | None) -> str:
    import getpass

    return actor or f"cli:{getpass.getuser()}"


@incidents_app.command("list")
@plain_errors
def incidents_list(
    municipality: Municipality = None,
    status: Annotated[str | None, typer.Option(help="open, acknowledged or resolved.")] = None,
    limit: Annotated[int, typer.Option(help="How many, latest first.")] = 50,
) -> None:
    """List incidents (one per station and event), the latest first."""
    from tasks.anomalies.incident_actions import list_incidents
    from tasks.database import begin

    with begin() as conn:
        rows = list_incidents(conn, municipality, status, limit)
    table = Table("id", "municipality", "station", "kind", "severity", "status", "label", "last anomaly",
                  "anomalies", title=f"{len(rows)} incident(s)")
    for i in rows:
        table.add_row(str(i.id), i.municipality_id, i.station_id, i.kind, i.severity,
                      i.status, _cell(i.label), _cell(i.last_observed_at), str(i.anomaly_count))
    console.print(table)


@incidents_app.command("show")
@plain_errors
def incidents_show(
    incident_id: Annotated[int, typer.Argument(metavar="ID", help="The incident's id.")],
    municipality: Municipality = None,
) -> None:
    """Show one incident: what, where, when, its label, and the anomalies that set its severity first."""
    from tasks.anomalies.incident_actions import get_incident, incident_anomalies
    from tasks.database import begin

    with begin() as conn:
        found = get_incident(conn, incident_id, municipality)
        anomalies = incident_anomalies(conn, incident_id)
    i = found
    table = Table("field", "value", title=f"incident {i.id}", show_header=False)
    for name in ("municipality_id", "station_id", "sensor_id", "kind", "severity", "status", "summary",
                 "first_observed_at", "last_observed_at", "anomaly_count", "opened_at", "resolved_at",
                 "label", "labelled_by", "labelled_at", "note"):
        table.add_row(name.replace("_", " "), _cell(getattr(i, name)))
    console.print(table)
    console.print("its anomalies, first those that set its severity (* the strongest of its parameter):")
    for a in anomalies:
        console.print(
            f"{'*' if a['sets_severity'] else ' '} {_cell(a['observed_at'])}  {a['severity']:<8}  "
            f"{a['method']} on {_cell(a['sensor_id'])} (score {a['score']:.2f}): {_cell(a['explanation'])}",
            soft_wrap=True,
            highlight=False,
        )


@incidents_app.command("ack")
@plain_errors
def incidents_ack(
    incident_id: Annotated[int, typer.Argument(metavar="ID", help="The incident's id.")],
    municipality: Municipality = None,
    actor: Actor = None,
    note: Note = None,
) -> None:
    """Acknowledge an open incident: someone is on it (it counts as a confirmed event)."""
    from tasks.anomalies.incident_actions import acknowledge
    from tasks.database import begin

    with begin() as conn:
        changed = acknowledge(conn, incident_id, _actor(actor), note=note, municipality_id=municipality)
    console.print(f"incident {incident_id} acknowledged by {changed.labelled_by}", soft_wrap=True)


@incidents_app.command("resolve")
@plain_errors
def incidents_resolve(
    incident_id: Annotated[int, typer.Argument(metavar="ID", help="The incident's id.")],
    municipality: Municipality = None,
    dismiss: Annotated[bool, typer.Option("--dismiss", help="It was a false alarm.")] = False,
    actor: Actor = None,
    note: Note = None,
) -> None:
    """Resolve an incident; with --dismiss, as a false alarm."""
    from tasks.anomalies.incident_actions import resolve
    from tasks.database import begin

    with begin() as conn:
        changed = resolve(
            conn, incident_id, _actor(actor), dismiss=dismiss, note=note, municipality_id=municipality
        )
    how = "dismissed as a false alarm" if dismiss else "resolved"
    console.print(f"incident {incident_id} {how} (label: {changed.label})", soft_wrap=True)


detect_app = typer.Typer(
    help="The learned detector: import labels, train it per station, list its models.", no_args_is_help=True
)
app.add_typer(detect_app, name="detect")
TheMunicipality = Annotated[str, typer.Option("--municipality", "-m", help="The municipality.")]


@detect_app.command("import-labels")
@plain_errors
def detect_import_labels(
    path: Annotated[str, typer.Argument(metavar="FILE", help="Labelled CSV: a time, a true/false column.")],
    municipality: TheMunicipality,
    station: Annotated[str, typer.Option("--station", "-s", help="The station the labels describe.")],
    time_column: Annotated[str, typer.Option(help="The time column.")] = "Time",
    event_column: Annotated[str, typer.Option(help="The true/false event column.")] = "EVENT",
    timezone: Annotated[
        str | None,
        typer.Option(
            help="The IANA zone of times written without an offset (default: --source's, else the "
            "municipality's). Times with Z or an offset are exact."
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="The source mapping whose timezone the file's times without an offset follow."),
    ] = None,
) -> None:
    """Keep a labelled file's event and normal stretches as one station's training labels.

    Times are ISO 8601: with Z or an offset (2016-03-01T11:00:00+01:00) they are exact; without one
    they are local times, and one that a daylight-saving change skips or repeats is refused."""
    from tasks.database import begin
    from tasks.detection.labels import import_labels

    with begin() as conn:
        done = import_labels(
            conn, municipality, station, path, time_column, event_column, timezone, source=source
        )
    replaced = f"; {done.replaced} interval(s) of its earlier import replaced" if done.replaced else ""
    console.print(
        _cell(
            f"{done.source}: {done.rows:,} labelled rows kept as {done.intervals:,} interval(s) of station "
            f"{station}, {done.event_intervals:,} of them events ({done.event_minutes:,.0f} min){replaced}; "
            f"times without an offset read in {done.timezone} ({done.timezone_origin})"
        ),
        soft_wrap=True,
    )


@detect_app.command("train")
@plain_errors
def detect_train(
    municipality: TheMunicipality,
    station: Annotated[str | None, typer.Option("--station", "-s", help="Only this station.")] = None,
    from_day: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First local day (default: 60 days back)."),
    ] = None,
    to_day: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last local day (default: the last reading's)."),
    ] = None,
    unlabelled_as_normal: Annotated[
        bool,
        typer.Option(
            "--unlabelled-as-normal",
            help="Count minutes no label covers as normal (default: train on labelled minutes only).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Train each station's learned detector on its labelled minutes (events and stretches called
    normal), score it out of fold beside the statistical detector, store it, and make it active only
    if it beats the statistical one. A station with events but nothing labelled normal is refused
    unless --unlabelled-as-normal."""
    from tasks.detection.report import training_line, training_table
    from tasks.detection.training import train_detectors

    results = train_detectors(
        municipality,
        station,
        from_day and from_day.date(),
        to_day and to_day.date(),
        unlabelled_as_normal=unlabelled_as_normal,
    )
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        console.print(training_table(results, municipality))
        for r in results:
            console.print(_cell(training_line(r)), soft_wrap=True)
    if any(r.status == "refused" for r in results):
        raise typer.Exit(1)


@detect_app.command("models")
@plain_errors
def detect_models(
    municipality: Municipality = None,
    station: Annotated[str | None, typer.Option("--station", "-s", help="Only this station.")] = None,
) -> None:
    """List the learned models, the latest first: data range, held-out scores, active or why not."""
    from tasks.database import begin
    from tasks.detection.model_store import list_models
    from tasks.detection.report import coverage_text, models_table

    with begin() as conn:
        models = list_models(conn, municipality, station)
    console.print(models_table(models, municipality))
    for m in models:
        used = coverage_text(m.description.get("minutes_used"))
        console.print(
            _cell(f"model {m.id}: {m.reason}; {used} ({m.object_url}, sha256 {m.sha256[:12]}...)"),
            soft_wrap=True,
        )


qc_app = typer.Typer(help="Explain QARTOD quality-control flags of stored readings.", no_args_is_help=True)
app.add_typer(qc_app, name="qc")


@qc_app.command("show")
@plain_errors
def qc_show(
    sensor_id: Annotated[str, typer.Argument(metavar="SENSOR_ID", help="The sensor's id.")],
    at: Annotated[str, typer.Option(help="ISO 8601 time (no offset: UTC); the reading then or before.")],
    municipality: Municipality = None,
) -> None:
    """Explain one reading's QC flag: each test's flag, the settings it ran with, the config version and SHA.

    The flags come from the nightly flow; `waterline run nightly --day YYYY-MM-DD` judges the day again.
    """
    from tasks.database import begin
    from tasks.quality.qc_explain import explain_reading, parse_time

    with begin() as conn:
        found = explain_reading(conn, sensor_id, parse_time(at), municipality)
    table = Table("field", "value", title=f"QC of {found['sensor_id']}", show_header=False)
    run = found["run"] or {}
    for name, value in (
        ("municipality", found["municipality_id"]),
        ("parameter", f"{found['parameter']} ({found['unit']})"),
        ("observed at", found["observed_at"]),
        ("value", found["value"]),
        ("qc flag", f"{found['qc_flag']} ({found['meaning']})"),
        ("previous reading", _at_time(found["previous"])),
        ("next reading", _at_time(found["next"])),
        ("expected interval (s)", found["expected_interval_seconds"]),
        ("qc run", run.get("id")),
        ("qc day", run.get("day")),
        ("config version", run.get("config_version")),
        ("config sha256", run.get("config_sha256")),
        ("is current qc.yaml", run.get("is_current_config")),
        ("computed at", run.get("computed_at")),
    ):
        table.add_row(name, _cell(value))
    console.print(table)
    tests = Table("test", "flag", "meaning", "settings", title="tests (settings as stored with the run)")
    for test in found["tests"]:
        tests.add_row(test["test"], str(test["flag"]), test["meaning"], _cell(test["settings"]))
    if found["tests"]:
        console.print(tests)
    console.print(_cell(found["note"]), soft_wrap=True)


def _at_time(reading: dict | None) -> str | None:
    return f"{reading['value']} at {reading['observed_at'].isoformat()}" if reading else None


from flows.cli_compliance import compliance_app  # noqa: E402

app.add_typer(compliance_app, name="compliance")

from flows.cli_webhooks import webhooks_app  # noqa: E402

app.add_typer(webhooks_app, name="webhooks")

from flows.cli_exports import exports_app  # noqa: E402

app.add_typer(exports_app, name="export")

reports_app = typer.Typer(help="The regulator's reports: list them, e-mail one again.", no_args_is_help=True)
app.add_typer(reports_app, name="reports")


@reports_app.command("list")
@plain_errors
def reports_list(
    municipality: Annotated[str, typer.Option("--municipality", "-m", help="The municipality.")],
    kind: Annotated[str | None, typer.Option(help="daily_summary or monthly_compliance.")] = None,
    limit: Annotated[int, typer.Option(help="How many files, newest first.")] = 40,
) -> None:
    """List one municipality's report files: period, revision, amended, sha256, e-mailed."""
    from sqlalchemy import select

    from tasks.compliance.daily import load_municipality
    from tasks.database import begin
    from tasks.models import Report

    with begin() as conn:
        load_municipality(conn, municipality)
        query = select(Report).where(Report.municipality_id == municipality)
        if kind:
            query = query.where(Report.kind == kind)
        rows = conn.execute(
            query.order_by(Report.period_start.desc(), Report.revision.desc(), Report.format).limit(limit)
        ).all()
    table = Table("kind", "period", "rev", "amended", "format", "sha256", "e-mailed", "url",
                  title=f"{len(rows)} report file(s) of {municipality}")
    for r in rows:
        amended = "yes" if r.is_amended else "no"
        table.add_row(r.kind, _cell(r.period_start), str(r.revision), amended, r.format, r.sha256[:12],
                      _cell(r.emailed_at), _cell(r.object_url))
    console.print(table)


@reports_app.command("resend")
@plain_errors
def reports_resend(
    municipality: Annotated[str, typer.Option("--municipality", "-m", help="The municipality.")],
    month: Annotated[str, typer.Option(help="The report's month, YYYY-MM.")],
) -> None:
    """E-mail the newest revision of a monthly compliance report again, on purpose."""
    from tasks.compliance.monthly import month_of
    from tasks.reports.monthly import email_monthly_report

    result = email_monthly_report.fn(municipality, month_of(month), resend=True)
    details = result["details"]
    if details.get("skipped"):
        raise ValueError(f"nothing was sent: {details['skipped']}")
    via = "over SMTP" if details["via_smtp"] else "kept as .eml: no SMTP host is set"
    console.print(
        f"sent revision {details['revision']} of the {month} report of {municipality} to "
        f"{details['recipients']} address(es), {via}"
    )




def _ids(ids: object) -> str:
    return ", ".join(str(i) for i in ids) or "-"


def _print_stages(summary: dict) -> None:
    from tasks.pipeline import stage_table

    console.print(stage_table(summary["stages"]))


def quiet_prefect() -> None:
    """Keep Prefect's per-task INFO lines out of interactive output (set before Prefect loads)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # The temporary server would otherwise try to send usage telemetry and log its failure offline.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


if __name__ == "__main__":
    app()
