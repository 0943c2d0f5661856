"""Action plans for violations: steps per parameter, due dates by severity (`actions.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import yaml

ACTIONS_PATH = Path(__file__).with_name("actions.yaml")


@dataclass(frozen=True)
class PlanTemplate:
    owner: str
    severity: str
    steps: tuple[str, ...]
    due_date: date


@lru_cache(maxsize=1)
def _actions() -> dict:
    return yaml.safe_load(ACTIONS_PATH.read_text(encoding="utf-8"))


def plan_for(parameter: str, deviation_pct: float | None, opened_on: date) -> PlanTemplate:
    """The steps, owner, severity and due date of a plan for a violation of `parameter`.

    The parameter's severity is raised one level when the statistic lies at least
    `escalate_at_deviation_pct` beyond the limit; the plan is due that many days after `opened_on`.
    """
    actions = _actions()
    spec = actions["parameters"].get(parameter, actions["default"])
    order = actions["severity_order"]
    level = order.index(spec["severity"])
    if deviation_pct is not None and deviation_pct >= actions["escalate_at_deviation_pct"]:
        level = min(level + 1, len(order) - 1)
    severity = order[level]
    return PlanTemplate(
        owner=actions["owner"],
        severity=severity,
        steps=tuple(spec["steps"]),
        due_date=opened_on + timedelta(days=actions["due_days"][severity]),
    )
