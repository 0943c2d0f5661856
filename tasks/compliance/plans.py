"""Action plans: steps per parameter and rule, an owner, severity by risk, due dates by severity
(`actions.yaml`), and the statuses and kinds a plan can have."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import yaml

ACTIONS_PATH = Path(__file__).with_name("actions.yaml")

PLAN_KINDS = ("violation", "investigation")
PLAN_STATUSES = ("open", "in_progress", "done", "cancelled")
CLOSED_STATUSES = ("done", "cancelled")
DAILY_RULE = "daily"


@dataclass(frozen=True)
class PlanTemplate:
    owner: str
    severity: str
    steps: tuple[str, ...]
    due_date: date
    kind: str = "violation"
    rule_code: str = DAILY_RULE


@lru_cache(maxsize=1)
def _actions() -> dict:
    return yaml.safe_load(ACTIONS_PATH.read_text(encoding="utf-8"))


def escalated(base: str, deviation_pct: float | None, order: list[str], thresholds: list[float]) -> str:
    """`base` raised one level per threshold that `deviation_pct` reaches, at most to the last level."""
    reached = sum(1 for t in thresholds if deviation_pct is not None and deviation_pct >= t)
    return order[min(order.index(base) + reached, len(order) - 1)]


def plan_for(
    parameter: str,
    deviation_pct: float | None,
    opened_on: date,
    rule_code: str = DAILY_RULE,
    kind: str = "violation",
) -> PlanTemplate:
    """The steps, owner, severity and due date of a plan for a result of `parameter` under
    `rule_code` (`daily` for the daily screen); `kind` is violation or investigation.

    The severity comes from the most specific entry of `actions.yaml` and rises one level for each
    of `escalate_at_deviation_pct` the statistic lies beyond the limit; the plan is due that
    severity's `due_days` after `opened_on`.
    """
    if kind not in PLAN_KINDS:
        raise ValueError(f"a plan's kind is one of {', '.join(PLAN_KINDS)}, not {kind!r}")
    actions = _actions()
    spec = actions["parameters"].get(parameter, {})
    # A parameter's own rule entries are written for violations; investigations build on its steps.
    own_rule = (spec.get("rules") or {}).get(rule_code) if kind == "violation" else None
    generic_rule = actions["rules"].get(rule_code) or {}
    investigation = actions["investigation"] if kind == "investigation" else {}
    if own_rule:
        steps = list(own_rule["steps"])
    else:
        base_steps = spec.get("steps") or actions["default"]["steps"]
        steps = [*base_steps, *generic_rule.get("steps", []), *investigation.get("steps", [])]
    layers = [own_rule or {}, generic_rule, investigation, spec, actions["default"]]
    base = next(layer["severity"] for layer in layers if layer.get("severity"))
    owner = next((layer["owner"] for layer in layers if layer.get("owner")), actions["owner"])
    severity = escalated(base, deviation_pct, actions["severity_order"], actions["escalate_at_deviation_pct"])
    return PlanTemplate(
        owner=owner,
        severity=severity,
        steps=tuple(steps),
        due_date=opened_on + timedelta(days=actions["due_days"][severity]),
        kind=kind,
        rule_code=rule_code,
    )
