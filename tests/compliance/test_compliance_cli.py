"""`waterline compliance` as operators use it: results of a period, plans, one plan, updates, the
audit trail; each within one municipality, with plain errors."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from flows.cli_compliance import compliance_app
from tasks.compliance.records import record_results, record_violations
from tasks.database import begin
from tasks.models import ActionPlan

runner = CliRunner()
OCTOBER = date(2026, 10, 1)

# The command line as flows/cli.py mounts it: `waterline compliance ...`.
cli = typer.Typer(pretty_exceptions_enable=False)
cli.add_typer(compliance_app, name="compliance")


def results_of(*rows: dict) -> pl.DataFrame:
    """A monthly judging frame; `rows` override the defaults."""
    base = {
        "standard": "EPA",
        "parameter": "lead",
        "rule_code": "p90_round",
        "status": "NON_COMPLIANT",
        "statistic": "p90",
        "statistic_value": 18.0,
        "limit": 15.0,
        "limit_kind": "max",
        "unit": "ug/L",
        "deviation_pct": 20.0,
        "rule": "90th percentile of the round's first-draw tap samples at most the action level 15 ug/L",
        "consequence": "violation",
        "citation": "40 CFR 141.80(c)",
        "confirmed": True,
        "sample_count": 40,
        "excluded_count": 1,
        "period_start": OCTOBER,
        "period_end": date(2026, 10, 31),
    }
    return pl.DataFrame([{**base, **row} for row in rows])


CONDUCTIVITY = {
    "standard": "EU",
    "parameter": "conductivity",
    "rule_code": "indicator",
    "statistic": "max",
    "status": "WARNING",
    "statistic_value": 2400.0,
    "limit": 2500.0,
    "unit": "uS/cm",
    "deviation_pct": -4.0,
    "consequence": "investigation",
    "rule": "monthly maximum compared with the EU indicator value 2500 uS/cm",
    "citation": "Directive (EU) 2020/2184, Annex I Part C",
}


def judged_town(seed, municipality_id: str, *rows: dict) -> dict[str, int]:
    """A municipality with October judged: its plan ids by parameter."""
    with begin() as conn:
        seed.municipality(conn, municipality_id, "Europe/Madrid", {})
        record_results(conn, municipality_id, OCTOBER, results_of(*rows), period_kind="month")
        record_violations(conn, municipality_id, OCTOBER, period_kind="month")
        return dict(
            conn.execute(
                select(ActionPlan.parameter, ActionPlan.id).where(
                    ActionPlan.municipality_id == municipality_id
                )
            ).all()
        )


def run(*args: str):
    result = runner.invoke(cli, ["compliance", *args])
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("command", ["results", "plans", "show", "update", "history"])
def test_every_compliance_command_explains_itself(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"compliance {command}" in result.output


def test_plans_list_a_municipalitys_plans_and_show_one_with_its_result_steps_and_notes(database, seed):
    plans = judged_town(seed, "riverton", {}, CONDUCTIVITY)

    listed = run("plans", "-m", "riverton")
    as_json = run("plans", "-m", "riverton", "--json")
    investigations = run("plans", "-m", "riverton", "--parameter", "conductivity", "--json")
    shown = run("show", str(plans["lead"]))

    assert listed.exit_code == 0, listed.output
    assert "2 action plan(s) of riverton" in listed.output
    assert "p90_round" in listed.output and "OVERDUE" not in listed.output
    rows = json.loads(as_json.output)
    assert [
        (r["id"], r["kind"], r["parameter"], r["rule_code"], r["status"], r["overdue"]) for r in rows
    ] == [
        (plans["lead"], "violation", "lead", "p90_round", "open", False),  # high: due in 3 days
        (plans["conductivity"], "investigation", "conductivity", "indicator", "open", False),  # low: 14
    ]
    assert [r["parameter"] for r in json.loads(investigations.output)] == ["conductivity"]
    assert shown.exit_code == 0, shown.output
    for expected in (
        f"action plan {plans['lead']}",
        "p90 18 ug/L",
        "max 15 ug/L",
        "rule: 90th percentile of the round's first-draw tap samples at most the action level 15 ug/L",
        "citation: 40 CFR 141.80(c)",
        "public education within 60 days",
        "notes: 0",
    ):
        assert expected in shown.output, expected


def test_update_changes_a_plan_refuses_bad_input_and_history_shows_the_trail_newest_first(database, seed):
    plans = judged_town(seed, "riverton", {})
    lead = str(plans["lead"])

    started = run(
        "update", lead, "--status", "in_progress", "--note", "resampling 12 sites", "--by", "ops:ana"
    )
    overdue = run("update", lead, "--due", "2020-01-15", "--by", "ops:ana")
    listed = run("plans", "-m", "riverton", "--status", "in_progress")
    bad_status = run("update", lead, "--status", "closed")
    bad_due = run("update", lead, "--due", "next week")
    nothing = run("update", lead)
    done = run("update", lead, "--status", "done", "--owner", "lab team", "--by", "ops:ben")
    same = run("update", lead, "--status", "done")
    shown = run("show", lead, "--json")
    trail = run("history", "riverton", "--json")
    table = run("history", "riverton", "--limit", "2")

    assert started.exit_code == 0 and f"action plan {lead} updated: in_progress" in started.output
    assert overdue.exit_code == 0, overdue.output
    assert listed.exit_code == 0 and "2020-01-15 OVERDUE" in listed.output
    assert bad_status.exit_code == 1
    assert "status must be one of open, in_progress, done, cancelled, not 'closed'" in bad_status.output
    assert bad_due.exit_code == 1 and "--due is a date written YYYY-MM-DD, not 'next week'" in bad_due.output
    assert nothing.exit_code == 1 and "nothing to update" in nothing.output
    assert done.exit_code == 0 and "done, owned by lab team" in done.output
    assert same.exit_code == 0 and "unchanged" in same.output
    plan = json.loads(shown.output)
    assert (plan["status"], plan["owner"], plan["due_date"], plan["overdue"]) == (
        "done",
        "lab team",
        "2020-01-15",
        False,
    )
    assert plan["closed_at"] is not None
    assert [(n["by"], n["text"]) for n in plan["notes"]] == [("ops:ana", "resampling 12 sites")]
    assert plan["result"]["deviation_pct"] == 20.0 and plan["result"]["citation"] == "40 CFR 141.80(c)"
    entries = json.loads(trail.output)
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("action_plan.updated", "ops:ben"),
        ("action_plan.updated", "ops:ana"),
        ("action_plan.updated", "ops:ana"),
        ("compliance.violation_recorded", "waterline.compliance"),
        ("action_plan.created", "waterline.compliance"),
        ("compliance_result.recorded", "waterline.compliance"),
    ]
    assert entries[0]["details"]["before"] == {
        "status": "in_progress",
        "owner": "water quality",
        "closed_at": None,
    }
    assert table.exit_code == 0 and "2 audit entr(ies) of riverton, newest first" in table.output
    assert table.output.index(
        "status in_progress -> done; owner water quality -> lab team"
    ) < table.output.index("due_date 2026-")


def test_one_municipality_never_sees_anothers_plans_results_or_history(database, seed):
    riverton = judged_town(seed, "riverton", {})
    lakeside = judged_town(seed, "lakeside", {}, CONDUCTIVITY)
    run("update", str(lakeside["lead"]), "--note", "lakeside only", "--by", "ops:lake")

    plans = json.loads(run("plans", "-m", "riverton", "--json").output)
    history = json.loads(run("history", "riverton", "--json").output)
    results = json.loads(run("results", "-m", "riverton", "--period", "2026-10", "--json").output)
    foreign_show = run("show", str(lakeside["lead"]), "-m", "riverton")
    foreign_update = run("update", str(lakeside["lead"]), "-m", "riverton", "--status", "done")

    assert [p["id"] for p in plans] == [riverton["lead"]]
    assert {e["municipality_id"] for e in history} == {"riverton"}
    lakeside_ids = {str(i) for i in lakeside.values()}
    assert history and not any(
        e["entity_id"] in lakeside_ids for e in history if e["entity_type"] == "action_plan"
    )
    assert "lakeside only" not in json.dumps(history)
    assert [(r["parameter"], r["rule_code"]) for r in results] == [("lead", "p90_round")]
    assert foreign_show.exit_code == 1
    assert f"there is no action plan {lakeside['lead']} in municipality 'riverton'" in foreign_show.output
    assert foreign_update.exit_code == 1
    assert json.loads(run("show", str(lakeside["lead"]), "--json").output)["status"] == "open"


def test_results_of_a_month_and_of_a_day(database, seed):
    judged_town(seed, "riverton", {}, CONDUCTIVITY)

    month = run("results", "-m", "riverton", "--period", "2026-10")
    rows = json.loads(run("results", "-m", "riverton", "--period", "2026-10", "--json").output)
    day = run("results", "-m", "riverton", "--period", "2026-10-01")

    assert month.exit_code == 0 and "2 result(s) of riverton for 2026-10" in month.output
    assert [(r["standard"], r["parameter"], r["status"], r["statistic_value"], r["limit_value"],
             r["deviation_pct"], r["period_end"]) for r in rows] == [
        ("EPA", "lead", "NON_COMPLIANT", 18.0, 15.0, 20.0, "2026-10-31"),
        ("EU", "conductivity", "WARNING", 2400.0, 2500.0, -4.0, "2026-10-31"),
    ]  # fmt: skip
    assert day.exit_code == 0 and "0 result(s) of riverton for 2026-10-01" in day.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plans", "-m", "nowhere"], "there is no municipality 'nowhere'"),
        (["history", "nowhere"], "there is no municipality 'nowhere'"),
        (["results", "-m", "nowhere", "--period", "2026-10"], "there is no municipality 'nowhere'"),
        (["results", "-m", "riverton", "--period", "2026-13"], "a period is YYYY-MM (a month) or YYYY-MM-DD"),
        (["show", "999999"], "there is no action plan 999999"),
        (["update", "999999", "--status", "done"], "there is no action plan 999999"),
        (["plans", "-m", "riverton", "--status", "closed"], "status must be one of open, in_progress"),
        (["history", "riverton", "--since", "yesterday"], "--since is a date written YYYY-MM-DD"),
        (["history", "riverton", "--limit", "0"], "the limit is a positive number of entries, not 0"),
    ],
)
def test_unknown_things_and_bad_input_are_one_sentence_and_exit_code_1(database, seed, args, message):
    judged_town(seed, "riverton", {})

    result = run(*args)

    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
