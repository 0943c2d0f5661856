"""Compliance results stored per period and rule, the action plans they open (violation or
investigation, by consequence), plan updates, and the audit entries of each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from sqlalchemy import func, select, text

from tasks.compliance.plan_store import parse_period, plan_changes, update_plan
from tasks.compliance.plans import ACTIONS_PATH, plan_for
from tasks.compliance.records import (
    STORED_SCHEMA,
    changed_results,
    local_today,
    period_end,
    record_results,
    record_violations,
    stored_results,
)
from tasks.database import begin
from tasks.models import ActionPlan, AuditLog, ComplianceResult, WebhookEvent

OCTOBER = date(2026, 10, 1)
OPENED = date(2026, 11, 2)


def month_results(*rows: dict) -> pl.DataFrame:
    """A monthly judging frame as the monthly step hands it over; `rows` override the defaults."""
    base = {
        "standard": "EPA",
        "parameter": "turbidity",
        "rule_code": "turbidity_tt",
        "status": "COMPLIANT",
        "statistic": "p95",
        "statistic_value": 0.2,
        "limit": 0.3,
        "limit_kind": "max",
        "unit": "NTU",
        "deviation_pct": -33.33,
        "rule": "95th percentile of the month's combined filter effluent readings at most 0.3 NTU",
        "consequence": "treatment_technique_trigger",
        "citation": "40 CFR 141.173",
        "confirmed": True,
        "sample_count": 180,
        "excluded_count": 0,
        "period_start": OCTOBER,
        "period_end": date(2026, 10, 31),
    }
    return pl.DataFrame([{**base, **row} for row in rows])


TURBIDITY_95 = {"status": "NON_COMPLIANT", "statistic_value": 0.45, "deviation_pct": 50.0}
TURBIDITY_MAX = {
    "rule_code": "sample_max",
    "statistic": "max",
    "statistic_value": 0.9,
    "limit": 1.0,
    "deviation_pct": -10.0,
    "status": "WARNING",
    "consequence": "violation",
}
LEAD = {
    "parameter": "lead",
    "rule_code": "p90_round",
    "statistic": "p90",
    "status": "NON_COMPLIANT",
    "statistic_value": 18.0,
    "limit": 15.0,
    "unit": "ug/L",
    "deviation_pct": 20.0,
    "consequence": "violation",
    "citation": "40 CFR 141.80(c)",
}
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
}
COPPER_ADVISORY = {
    "parameter": "copper",
    "rule_code": "sample_max",
    "statistic": "max",
    "status": "NON_COMPLIANT",
    "statistic_value": 1.5,
    "limit": 1.0,
    "unit": "mg/L",
    "deviation_pct": 50.0,
    "consequence": "advisory",
}
PH_COMPLIANT_INVESTIGATION = {
    "standard": "EU",
    "parameter": "ph",
    "rule_code": "indicator",
    "statistic": "min",
    "statistic_value": 7.2,
    "limit": 6.5,
    "limit_kind": "min",
    "unit": "pH",
    "deviation_pct": -9.7,
    "consequence": "investigation",
}
OCTOBER_RESULTS = month_results(
    TURBIDITY_95, TURBIDITY_MAX, LEAD, CONDUCTIVITY, COPPER_ADVISORY, PH_COMPLIANT_INVESTIGATION
)


def add_town(seed, municipality_id: str = "riverton") -> None:
    with begin() as conn:
        seed.municipality(conn, municipality_id, "America/Chicago", {})


def record_month(municipality_id: str = "riverton", results: pl.DataFrame = OCTOBER_RESULTS) -> dict:
    with begin() as conn:
        record_results(conn, municipality_id, OCTOBER, results, period_kind="month")
        return record_violations(conn, municipality_id, OCTOBER, period_kind="month")


def audit_actions(municipality_id: str = "riverton") -> list[tuple[str, str]]:
    with begin() as conn:
        rows = conn.execute(
            select(AuditLog.action, AuditLog.entity_type)
            .where(AuditLog.municipality_id == municipality_id)
            .order_by(AuditLog.id)
        ).all()
    return [tuple(r) for r in rows]


# --- pure logic -------------------------------------------------------------------------------


def test_lead_round_plan_has_its_regulatory_steps_owner_and_due_date():
    plan = plan_for("lead", 20.0, OPENED, "p90_round", "violation")

    assert (plan.kind, plan.rule_code, plan.owner, plan.severity) == (
        "violation",
        "p90_round",
        "water quality",
        "high",
    )
    assert plan.due_date == OPENED + timedelta(days=3)  # high: 3 days
    joined = " ".join(plan.steps)
    assert "Resample the tap sites above the action level" in joined
    assert "public education within 60 days" in joined
    assert "corrosion-control" in joined


def test_a_rule_without_its_own_entry_adds_its_generic_steps_to_the_parameters():
    plan = plan_for("arsenic", 10.0, OPENED, "sample_max", "violation")

    assert plan.steps[0] == "Take a confirmation sample at the same point within 48 hours."
    assert plan.steps[-1].startswith("Take a follow-up sample at the same point")
    assert plan.severity == "high"


def test_severity_rises_one_level_per_deviation_threshold_up_to_critical():
    severities = [
        plan_for("conductivity", d, OPENED).severity for d in (None, -5.0, 49.9, 50.0, 100.0, 900.0)
    ]
    due = [plan_for("conductivity", d, OPENED).due_date for d in (10.0, 60.0, 150.0)]

    assert severities == ["low", "low", "low", "medium", "high", "high"]
    assert due == [OPENED + timedelta(days=n) for n in (14, 7, 3)]
    assert plan_for("e_coli", 500.0, OPENED, "any_detection").severity == "critical"


def test_an_investigation_builds_on_the_parameter_steps_not_on_its_violation_entries():
    plan = plan_for("turbidity", -5.0, OPENED, "sample_max", "investigation")
    violation = plan_for("turbidity", -5.0, OPENED, "sample_max", "violation")

    assert plan.steps[0] == "Take grab samples at the combined filter effluent and at each individual filter."
    assert any("risk to health" in s for s in plan.steps)
    assert not any("primacy agency" in s for s in plan.steps)
    assert any("primacy agency" in s for s in violation.steps)
    assert (plan.owner, plan.severity, violation.severity) == ("water quality", "low", "critical")


def test_an_unknown_plan_kind_is_refused():
    with pytest.raises(ValueError, match="kind is one of violation, investigation"):
        plan_for("lead", 1.0, OPENED, "p90_round", "advisory")


def test_every_actions_entry_has_steps_and_a_known_severity_and_every_rule_code_is_covered():
    actions = yaml.safe_load(ACTIONS_PATH.read_text(encoding="utf-8"))
    order = actions["severity_order"]
    entries = [actions["default"], actions["investigation"], *actions["rules"].values()]
    for spec in actions["parameters"].values():
        entries += [spec, *(spec.get("rules") or {}).values()]

    assert set(actions["due_days"]) == set(order)
    assert all(e.get("severity", order[0]) in order for e in entries)
    assert all(isinstance(s, str) and s.strip() for e in entries for s in e.get("steps", []))
    assert set(actions["rules"]) >= {
        "daily", "sample_max", "sample_min", "sample_range", "p90_round", "raa_quarterly", "raa_monthly",
        "turbidity_tt", "turbidity_consecutive", "confirmation_average", "any_detection", "indicator",
        "nitrate_nitrite_ratio",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("day", date(2026, 3, 9), date(2026, 3, 9)),
        ("month", date(2028, 2, 1), date(2028, 2, 29)),
        ("month", date(2026, 12, 1), date(2026, 12, 31)),
        ("quarter", date(2026, 10, 1), date(2026, 12, 31)),
    ],
)
def test_a_period_ends_on_its_last_day(kind, start, end):
    assert period_end(kind, start) == end


@pytest.mark.parametrize(
    ("kind", "start", "message"),
    [
        ("month", date(2026, 10, 2), "a month starts on its first day, not on 2026-10-02"),
        ("quarter", date(2026, 11, 1), "a quarter starts on its first day"),
        ("week", date(2026, 10, 5), "a period is one of day, month, quarter, not 'week'"),
    ],
)
def test_a_period_that_cannot_start_there_is_refused(kind, start, message):
    with pytest.raises(ValueError, match=message):
        period_end(kind, start)


def test_periods_are_read_as_a_month_or_a_day():
    assert parse_period("2026-10") == ("month", OCTOBER)
    assert parse_period(" 2026-10-07 ") == ("day", date(2026, 10, 7))
    for bad in ("2026-13", "2026/10", "October", "2026-02-30"):
        with pytest.raises(ValueError, match="a period is YYYY-MM .a month. or YYYY-MM-DD .a day., not"):
            parse_period(bad)


def _stored(**overrides) -> dict:
    row = {name: None for name in STORED_SCHEMA} | {
        "id": 1,
        "standard": "EU",
        "parameter": "ph",
        "period_kind": "month",
        "period_start": OCTOBER,
        "rule_code": "indicator",
        "statistic": "min",
        "period_end": date(2026, 10, 31),
        "status": "COMPLIANT",
        "statistic_value": 7.2,
        "limit_value": 6.5,
        "sample_count": 30,
        "excluded_count": 0,
    }
    return row | overrides


def test_changed_results_are_the_new_ones_and_those_judged_differently():
    before = pl.DataFrame(
        [_stored(id=1), _stored(id=2, statistic="max"), _stored(id=3, rule_code="x")],
        schema=STORED_SCHEMA,
        orient="row",
    )
    after = pl.DataFrame(
        [
            _stored(id=1),  # the same
            _stored(id=2, statistic="max", status="WARNING", statistic_value=9.3),  # changed
            _stored(id=3, rule_code="x", confirmed=True),  # changed from null
            _stored(id=4, statistic="mean"),  # new
        ],
        schema=STORED_SCHEMA,
        orient="row",
    )

    changes = changed_results(before, after)

    assert changes.select("id", "is_new", "status_before", "statistic_value_before").rows() == [
        (2, False, "COMPLIANT", 7.2),
        (3, False, "COMPLIANT", 7.2),
        (4, True, None, None),
    ]


def test_closing_a_plan_sets_closed_at_and_reopening_clears_it():
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    plan = {"status": "open", "owner": "operations", "due_date": OPENED, "closed_at": None}

    closing = plan_changes(plan, status="done", owner=" ana ", now=now)
    reopening = plan_changes({**plan, "status": "cancelled", "closed_at": now}, status="in_progress", now=now)
    same = plan_changes(plan, status="open", owner="operations", due_date=OPENED, now=now)

    assert closing == (
        {"status": "open", "owner": "operations", "closed_at": None},
        {"status": "done", "owner": "ana", "closed_at": now},
    )
    assert reopening == (
        {"status": "cancelled", "closed_at": now},
        {"status": "in_progress", "closed_at": None},
    )
    assert same == ({}, {})
    with pytest.raises(
        ValueError, match="status must be one of open, in_progress, done, cancelled, not 'closed'"
    ):
        plan_changes(plan, status="closed", now=now)
    with pytest.raises(ValueError, match="the owner cannot be empty"):
        plan_changes(plan, owner="  ", now=now)


# --- against the database ----------------------------------------------------------------------


def test_a_month_judged_twice_is_stored_once_per_rule_and_audited_once(database, seed):
    add_town(seed)

    first = record_month()
    audits_after_first = audit_actions()
    second = record_month()

    with begin() as conn:
        stored = stored_results(conn, "riverton", "month", OCTOBER).sort("standard", "parameter", "rule_code")
    assert stored.select(
        "standard", "parameter", "rule_code", "statistic", "status", "period_end"
    ).rows() == [
        ("EPA", "copper", "sample_max", "max", "NON_COMPLIANT", date(2026, 10, 31)),
        ("EPA", "lead", "p90_round", "p90", "NON_COMPLIANT", date(2026, 10, 31)),
        ("EPA", "turbidity", "sample_max", "max", "WARNING", date(2026, 10, 31)),
        ("EPA", "turbidity", "turbidity_tt", "p95", "NON_COMPLIANT", date(2026, 10, 31)),
        ("EU", "conductivity", "indicator", "max", "WARNING", date(2026, 10, 31)),
        ("EU", "ph", "indicator", "min", "COMPLIANT", date(2026, 10, 31)),
    ]
    assert first == {"violations": 2, "events_recorded": 2, "action_plans_created": 3}
    assert second == {"violations": 2, "events_recorded": 0, "action_plans_created": 0}
    assert audit_actions() == audits_after_first
    assert [a for a, _ in audits_after_first].count("compliance_result.recorded") == 6
    assert sorted(a for a, _ in audits_after_first if a != "compliance_result.recorded") == [
        "action_plan.created",
        "action_plan.created",
        "action_plan.created",
        "compliance.violation_recorded",
        "compliance.violation_recorded",
    ]


def test_a_result_judged_again_differently_is_replaced_and_audited_with_before_and_after(database, seed):
    add_town(seed)
    record_month()
    lead_again = {**LEAD, "statistic_value": 12.0, "deviation_pct": -20.0, "status": "COMPLIANT"}

    record_month(
        results=month_results(
            TURBIDITY_95, TURBIDITY_MAX, lead_again, CONDUCTIVITY, COPPER_ADVISORY, PH_COMPLIANT_INVESTIGATION
        )
    )

    with begin() as conn:
        count = conn.scalar(select(func.count()).select_from(ComplianceResult))
        lead_id, status = conn.execute(
            select(ComplianceResult.id, ComplianceResult.status).where(ComplianceResult.parameter == "lead")
        ).one()
        changed = conn.execute(
            select(AuditLog.entity_type, AuditLog.entity_id, AuditLog.details).where(
                AuditLog.action == "compliance_result.changed"
            )
        ).all()
        plans = conn.scalar(select(func.count()).select_from(ActionPlan))
    assert (count, status, plans) == (6, "COMPLIANT", 3)
    assert [(t, i) for t, i, _ in changed] == [("compliance_result", str(lead_id))]
    details = changed[0][2]
    assert details["before"] == {
        "status": "NON_COMPLIANT",
        "statistic_value": 18.0,
        "limit": 15.0,
        "deviation_pct": 20.0,
    }
    assert {k: details["after"][k] for k in ("status", "statistic_value", "limit", "rule_code")} == {
        "status": "COMPLIANT",
        "statistic_value": 12.0,
        "limit": 15.0,
        "rule_code": "p90_round",
    }


def test_plans_follow_the_consequence_and_only_violations_send_an_event(database, seed):
    add_town(seed)

    record_month()

    with begin() as conn:
        plans = conn.execute(
            select(
                ActionPlan.kind,
                ActionPlan.parameter,
                ActionPlan.rule_code,
                ActionPlan.severity,
                ActionPlan.owner,
                ActionPlan.due_date,
                ActionPlan.status,
                ActionPlan.notes,
            ).order_by(ActionPlan.parameter, ActionPlan.rule_code)
        ).all()
        events = conn.execute(
            select(WebhookEvent.dedupe_key, WebhookEvent.payload).order_by(WebhookEvent.dedupe_key)
        ).all()
        today = local_today(conn, "riverton")
    # copper (advisory) and the turbidity WARNING under a violation rule get none; ph is COMPLIANT
    assert [tuple(p) for p in plans] == [
        (
            "investigation",
            "conductivity",
            "indicator",
            "low",
            "water quality",
            today + timedelta(days=14),
            "open",
            [],
        ),
        ("violation", "lead", "p90_round", "high", "water quality", today + timedelta(days=3), "open", []),
        # 50 % beyond the limit raises the treatment technique's high to critical
        (
            "violation",
            "turbidity",
            "turbidity_tt",
            "critical",
            "operations",
            today + timedelta(days=1),
            "open",
            [],
        ),
    ]
    assert [key for key, _ in events] == [
        "compliance.violation:riverton:EPA:lead:month:2026-10-01:p90_round:p90",
        "compliance.violation:riverton:EPA:turbidity:month:2026-10-01:turbidity_tt:p95",
    ]
    lead = events[0][1]["data"]
    assert {
        k: lead[k]
        for k in (
            "period_kind",
            "period_start",
            "period_end",
            "rule_code",
            "consequence",
            "statistic_value",
            "limit",
            "severity",
        )
    } == {
        "period_kind": "month",
        "period_start": "2026-10-01",
        "period_end": "2026-10-31",
        "rule_code": "p90_round",
        "consequence": "violation",
        "statistic_value": 18.0,
        "limit": 15.0,
        "severity": "high",
    }


def test_the_daily_screen_keeps_its_rule_its_violation_plans_and_its_event_key(database, seed):
    add_town(seed)
    day = date(2026, 11, 25)
    daily = month_results(
        {
            "standard": "EU",
            "parameter": "conductivity",
            "statistic": "max",
            "status": "NON_COMPLIANT",
            "statistic_value": 3000.0,
            "limit": 2500.0,
            "unit": "uS/cm",
            "deviation_pct": 20.0,
        }
    ).drop("rule_code", "consequence", "period_start", "period_end")

    with begin() as conn:
        record_results(conn, "riverton", day, daily)
        counts = record_violations(conn, "riverton", day)
        stored = conn.execute(
            select(
                ComplianceResult.period_kind,
                ComplianceResult.period_end,
                ComplianceResult.rule_code,
                ComplianceResult.consequence,
                ComplianceResult.confirmed,
            )
        ).all()
        plan = conn.execute(select(ActionPlan.kind, ActionPlan.rule_code)).one()
        key = conn.scalar(select(WebhookEvent.dedupe_key))
    assert [tuple(s) for s in stored] == [("day", day, "daily", None, True)]
    assert counts == {"violations": 1, "events_recorded": 1, "action_plans_created": 1}
    assert tuple(plan) == ("violation", "daily")
    assert key == "compliance.violation:riverton:EU:conductivity:2026-11-25"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (month_results({}).drop("citation"), "the judged results lack the column.s. citation"),
        (month_results({"status": "FAILED"}), "unknown result status.es. FAILED"),
        (month_results({"consequence": "fine"}), "unknown consequence.s. fine"),
        (
            month_results({}, {"statistic_value": 0.1}),
            "hold EPA turbidity rule turbidity_tt statistic p95 more",
        ),
    ],
)
def test_results_that_cannot_be_stored_are_refused_in_a_sentence(database, seed, frame, message):
    add_town(seed)
    with pytest.raises(ValueError, match=message), begin() as conn:
        record_results(conn, "riverton", OCTOBER, frame, period_kind="month")


def test_updating_a_plan_validates_audits_before_and_after_and_closes_it(database, seed):
    add_town(seed)
    record_month()
    with begin() as conn:
        plan_id = conn.scalar(select(ActionPlan.id).where(ActionPlan.parameter == "lead"))
    at = datetime(2026, 11, 3, 15, 30, tzinfo=UTC)

    with begin() as conn:
        _, changed = update_plan(
            conn, plan_id, "ops:ana", status="in_progress", note="resampling 12 sites", now=at
        )
    with begin() as conn:
        done, _ = update_plan(
            conn, plan_id, "ops:ben", status="done", owner="lab", now=at + timedelta(days=2)
        )
    with begin() as conn:
        plan_again, unchanged = update_plan(conn, plan_id, "ops:ben", status="done")
    for bad, message in (
        ({"status": "closed"}, "status must be one of open, in_progress, done, cancelled, not 'closed'"),
        ({}, "nothing to update: give --status, --owner, --due or --note"),
        ({"note": "  "}, "a note cannot be empty"),
    ):
        with pytest.raises(ValueError, match=message), begin() as conn:
            update_plan(conn, plan_id, "ops:eve", **bad)
    with pytest.raises(ValueError, match=f"there is no action plan {plan_id} in municipality 'lakeside'"):
        with begin() as conn:
            update_plan(conn, plan_id, "ops:eve", status="open", municipality_id="lakeside")

    assert changed and not unchanged
    assert (done["status"], done["owner"], done["closed_at"]) == ("done", "lab", at + timedelta(days=2))
    assert done["notes"] == [{"at": at.isoformat(), "by": "ops:ana", "text": "resampling 12 sites"}]
    assert plan_again == done
    with begin() as conn:
        updates = conn.execute(
            select(AuditLog.actor, AuditLog.details)
            .where(AuditLog.action == "action_plan.updated", AuditLog.entity_id == str(plan_id))
            .order_by(AuditLog.id)
        ).all()
    assert [tuple(u) for u in updates] == [
        (
            "ops:ana",
            {"before": {"status": "open"}, "after": {"status": "in_progress"}, "note": "resampling 12 sites"},
        ),
        (
            "ops:ben",
            {
                "before": {"status": "in_progress", "owner": "water quality", "closed_at": None},
                "after": {
                    "status": "done",
                    "owner": "lab",
                    "closed_at": (at + timedelta(days=2)).isoformat(),
                },
            },
        ),
    ]


def test_the_database_refuses_a_plan_status_outside_the_four(database, seed):
    add_town(seed)
    record_month()
    with pytest.raises(Exception, match="ck_action_plans_status|CHECK constraint failed"), begin() as conn:
        conn.execute(text("update action_plans set status = 'closed'"))


def test_stored_results_read_back_as_recorded(database, seed):
    add_town(seed)
    record_month(results=month_results(LEAD))

    with begin() as conn:
        back = stored_results(conn, "riverton", "month", OCTOBER).drop("id")

    expected = pl.DataFrame(
        [
            {
                "standard": "EPA",
                "parameter": "lead",
                "period_kind": "month",
                "period_start": OCTOBER,
                "rule_code": "p90_round",
                "statistic": "p90",
                "period_end": date(2026, 10, 31),
                "status": "NON_COMPLIANT",
                "statistic_value": 18.0,
                "limit_value": 15.0,
                "limit_kind": "max",
                "unit": "ug/L",
                "deviation_pct": 20.0,
                "rule": month_results({})["rule"][0],
                "citation": "40 CFR 141.80(c)",
                "consequence": "violation",
                "confirmed": True,
                "sample_count": 180,
                "excluded_count": 0,
            }
        ],
        schema={k: v for k, v in STORED_SCHEMA.items() if k != "id"},
    )
    assert_frame_equal(back, expected)
