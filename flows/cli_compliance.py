"""`waterline compliance`: a period's results, the action plans they opened, updating a plan, and a
municipality's compliance audit trail.

Registered in flows/cli.py with `app.add_typer(compliance_app, name="compliance")`. This module
keeps its own error wrapper and console so that it imports without flows.cli (no import cycle).
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from flows.cli_common import console, inert, plain_errors

compliance_app = typer.Typer(
    help="Compliance results, the action plans they open, and their audit trail.",
    no_args_is_help=True,
)

TheMunicipality = Annotated[str, typer.Option("--municipality", "-m", help="The municipality.")]
InMunicipality = Annotated[
    str | None, typer.Option("--municipality", "-m", help="Only if the plan is this municipality's.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PlanId = Annotated[int, typer.Argument(metavar="PLAN_ID", help="The action plan's id.")]

# Shorter words for the results table (the JSON keeps the stored value).
CONSEQUENCE_WORDS = {"treatment_technique_trigger": "TT trigger"}


def _text(value: object) -> str:
    """A value as inert text: ISO dates, no terminal control sequences."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return inert(value)


def _cell(value: object) -> Text:
    """A value as a table cell that Rich does not read as markup."""
    return Text(_text(value))


def _json(value: object) -> str:
    return json.dumps(value, indent=2, default=lambda v: v.isoformat())


def _by(name: str | None) -> str:
    return name or f"cli:{getpass.getuser()}"


@compliance_app.command("results")
@plain_errors
def results(
    municipality: TheMunicipality,
    period: Annotated[str, typer.Option(help="A month (YYYY-MM) or a day (YYYY-MM-DD).")],
    as_json: AsJson = False,
) -> None:
    """Show the stored results of a period: status, statistic, limit, deviation and rule applied."""
    from tasks.compliance.plan_store import period_results
    from tasks.database import begin

    with begin() as conn:
        rows = period_results(conn, municipality, period)
    if as_json:
        typer.echo(_json(rows))
        return
    table = Table(
        "parameter",
        "rule",
        "statistic",
        "limit",
        "deviation %",
        "status",
        "consequence",
        title=f"{len(rows)} result(s) of {municipality} for {period}",
    )
    for r in rows:
        table.add_row(
            _cell(f"{r['standard']} {r['parameter']}"),
            _cell(r["rule_code"]),
            _cell(f"{r['statistic']} {_text(r['statistic_value'])}"),
            _cell(f"{r['limit_kind']} {_text(r['limit_value'])} {r['unit']}"),
            _cell(r["deviation_pct"]),
            _cell(r["status"]),
            _cell(CONSEQUENCE_WORDS.get(r["consequence"], r["consequence"])),
        )
    console.print(table)


@compliance_app.command("plans")
@plain_errors
def plans(
    municipality: TheMunicipality,
    status: Annotated[str | None, typer.Option(help="open, in_progress, done or cancelled.")] = None,
    parameter: Annotated[str | None, typer.Option(help="Only this parameter's plans.")] = None,
    as_json: AsJson = False,
) -> None:
    """List a municipality's action plans, soonest due first; overdue ones are marked."""
    from tasks.compliance.plan_store import list_plans
    from tasks.database import begin

    with begin() as conn:
        rows = list_plans(conn, municipality, status, parameter)
    if as_json:
        typer.echo(_json(rows))
        return
    table = Table(
        "id",
        "parameter",
        "rule",
        "kind",
        "severity",
        "owner",
        Column("due", no_wrap=True),
        Column("status", no_wrap=True),
        title=f"{len(rows)} action plan(s) of {municipality}",
    )
    for r in rows:
        table.add_row(
            _cell(r["id"]),
            _cell(f"{r['standard']} {r['parameter']}"),
            *(_cell(r[k]) for k in ("rule_code", "kind", "severity", "owner")),
            Text(f"{_text(r['due_date'])} OVERDUE", style="bold red")
            if r["overdue"]
            else _cell(r["due_date"]),
            _cell(r["status"]),
        )
    console.print(table)


@compliance_app.command("show")
@plain_errors
def show(plan_id: PlanId, municipality: InMunicipality = None, as_json: AsJson = False) -> None:
    """Show one plan: its result (statistic, limit, deviation, rule, citation), steps and notes."""
    from tasks.compliance.plan_store import get_plan
    from tasks.database import begin

    with begin() as conn:
        plan = get_plan(conn, plan_id, municipality)
    if as_json:
        typer.echo(_json(plan))
        return
    _print_plan(plan)


def _print_plan(plan: dict) -> None:
    result = plan["result"]
    table = Table("field", "value", title=f"action plan {plan['id']}", show_header=False)
    for name, value in (
        ("municipality", plan["municipality_id"]),
        ("kind", plan["kind"]),
        ("status", f"{plan['status']} (OVERDUE)" if plan["overdue"] else plan["status"]),
        ("severity", plan["severity"]),
        ("owner", plan["owner"]),
        ("due", plan["due_date"]),
        ("opened at", plan["created_at"]),
        ("updated at", plan["updated_at"]),
        ("closed at", plan["closed_at"]),
        ("standard", result["standard"]),
        ("parameter", result["parameter"]),
        (
            "period",
            f"{result['period_kind']} {_text(result['period_start'])} to {_text(result['period_end'])}",
        ),
        ("rule code", result["rule_code"]),
        ("result", result["status"]),
        ("consequence", result["consequence"]),
        ("statistic", f"{result['statistic']} {_text(result['statistic_value'])} {result['unit']}"),
        ("limit", f"{result['limit_kind']} {_text(result['limit_value'])} {result['unit']}"),
        ("deviation %", result["deviation_pct"]),
        ("samples", f"{result['sample_count']} used, {result['excluded_count']} excluded"),
    ):
        table.add_row(name, _cell(value))
    console.print(table)
    console.print(_cell(f"rule: {result['rule']}"), soft_wrap=True)
    console.print(_cell(f"citation: {result['citation']}"), soft_wrap=True)
    console.print("steps:")
    for n, step in enumerate(plan["steps"], start=1):
        console.print(_cell(f"  {n}. {step}"), soft_wrap=True)
    console.print(f"notes: {len(plan['notes'])}")
    for note in plan["notes"]:
        console.print(_cell(f"  {note['at']} {note['by']}: {note['text']}"), soft_wrap=True)


@compliance_app.command("update")
@plain_errors
def update(
    plan_id: PlanId,
    status: Annotated[str | None, typer.Option(help="open, in_progress, done or cancelled.")] = None,
    owner: Annotated[str | None, typer.Option(help="Who is responsible now.")] = None,
    due: Annotated[str | None, typer.Option(help="A new due date (YYYY-MM-DD).")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the plan.")] = None,
    by: Annotated[
        str | None, typer.Option(help="Who makes the change (for the audit log); default: you.")
    ] = None,
    municipality: InMunicipality = None,
) -> None:
    """Update a plan's status, owner or due date, or add a note; every change is audited."""
    from tasks.compliance.plan_store import parse_day, update_plan
    from tasks.database import begin

    due_date = parse_day(due, "--due") if due is not None else None
    with begin() as conn:
        plan, changed = update_plan(
            conn,
            plan_id,
            _by(by),
            status=status,
            owner=owner,
            due_date=due_date,
            note=note,
            municipality_id=municipality,
        )
    if not changed:
        console.print(
            _cell(
                f"action plan {plan_id} unchanged: it already is {plan['status']}, "
                f"owned by {plan['owner']}, due {_text(plan['due_date'])}"
            ),
            soft_wrap=True,
        )
        return
    console.print(
        _cell(
            f"action plan {plan_id} updated: {plan['status']}, owned by {plan['owner']}, "
            f"due {_text(plan['due_date'])}, {len(plan['notes'])} note(s)"
        ),
        soft_wrap=True,
    )


@compliance_app.command("history")
@plain_errors
def history(
    municipality: Annotated[str, typer.Argument(metavar="MUNICIPALITY", help="The municipality.")],
    since: Annotated[str | None, typer.Option(help="From this local day (YYYY-MM-DD).")] = None,
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 100,
    as_json: AsJson = False,
) -> None:
    """Show the audit trail of a municipality's compliance results, plans and plan changes, newest first."""
    from tasks.compliance.plan_store import compliance_history, describe_entry, parse_day
    from tasks.database import begin

    since_day = parse_day(since, "--since") if since is not None else None
    with begin() as conn:
        entries = compliance_history(conn, municipality, since_day, limit)
    if as_json:
        typer.echo(_json(entries))
        return
    console.print(_cell(f"{len(entries)} audit entr(ies) of {municipality}, newest first"), soft_wrap=True)
    for e in entries:
        entity = f"{e['entity_type']} {e['entity_id'] or ''}".strip()
        at = f"{e['occurred_at']:%Y-%m-%d %H:%M:%S}"
        line = f"{at}  {e['actor']}  {e['action']}  {entity}: {describe_entry(e)}"
        console.print(_cell(line), soft_wrap=True)
