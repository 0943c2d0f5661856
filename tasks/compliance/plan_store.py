"""What people do with compliance: list and show action plans, update them (status, owner, due
date, notes), read a period's results and the audit trail of one municipality.

Every query names its municipality (or narrows to one when given): one tenant's plans, results and
history never show in another's. Each change to a plan is audited with its before and after, in the
transaction of the change.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import Connection, or_, select, update

from tasks.audit import record_audit
from tasks.calendar import local_day_bounds
from tasks.compliance.plans import CLOSED_STATUSES, PLAN_STATUSES
from tasks.compliance.records import local_today, period_end
from tasks.models import ActionPlan, AuditLog, ComplianceResult, Municipality, utcnow

OPEN_STATUSES = ("open", "in_progress")
PLAN_FIELDS = (
    "id",
    "municipality_id",
    "kind",
    "parameter",
    "rule_code",
    "severity",
    "owner",
    "due_date",
    "status",
    "steps",
    "notes",
    "created_at",
    "updated_at",
    "closed_at",
    "compliance_result_id",
)
RESULT_FIELDS = (
    "standard",
    "parameter",
    "period_kind",
    "period_start",
    "period_end",
    "rule_code",
    "status",
    "statistic",
    "statistic_value",
    "limit_value",
    "limit_kind",
    "unit",
    "deviation_pct",
    "rule",
    "citation",
    "consequence",
    "confirmed",
    "sample_count",
    "excluded_count",
    "computed_at",
)
_PERIOD = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")


def parse_period(text: str) -> tuple[str, date]:
    """`YYYY-MM` is a month, `YYYY-MM-DD` a day: (period_kind, period_start)."""
    match = _PERIOD.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError
        year, month, day = (int(g) if g else None for g in match.groups())
        return ("month", date(year, month, 1)) if day is None else ("day", date(year, month, day))
    except ValueError:
        raise ValueError(f"a period is YYYY-MM (a month) or YYYY-MM-DD (a day), not {text!r}") from None


def parse_day(text: str, what: str) -> date:
    """A YYYY-MM-DD date, or a ValueError naming `what`."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} is a date written YYYY-MM-DD, not {text!r}") from None


def require_municipality(conn: Connection, municipality_id: str) -> str:
    """The municipality's timezone; ValueError if there is no such municipality."""
    timezone = conn.scalar(select(Municipality.timezone).where(Municipality.id == municipality_id))
    if timezone is None:
        raise ValueError(f"there is no municipality {municipality_id!r}")
    return timezone


def _plans():  # noqa: ANN202
    plan, result = ActionPlan, ComplianceResult
    return select(
        *(getattr(plan, name) for name in PLAN_FIELDS),
        result.standard,
        result.period_kind,
        result.period_start,
        result.status.label("result_status"),
    ).join(result, result.id == plan.compliance_result_id)


def is_overdue(status: str, due_date: date, today: date) -> bool:
    """An open or in-progress plan past its due date."""
    return status in OPEN_STATUSES and due_date < today


def list_plans(
    conn: Connection,
    municipality_id: str,
    status: str | None = None,
    parameter: str | None = None,
    today: date | None = None,
) -> list[dict]:
    """A municipality's plans, soonest due first, each with `overdue` against its local today."""
    if status is not None and status not in PLAN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(PLAN_STATUSES)}, not {status!r}")
    require_municipality(conn, municipality_id)
    today = today or local_today(conn, municipality_id)
    query = _plans().where(ActionPlan.municipality_id == municipality_id)
    if status is not None:
        query = query.where(ActionPlan.status == status)
    if parameter is not None:
        query = query.where(ActionPlan.parameter == parameter)
    rows = conn.execute(query.order_by(ActionPlan.due_date, ActionPlan.id)).all()
    return [{**r._asdict(), "overdue": is_overdue(r.status, r.due_date, today)} for r in rows]


def get_plan(conn: Connection, plan_id: int, municipality_id: str | None = None) -> dict:
    """One plan with the result it answers (`result`), and `overdue`; ValueError if there is none
    (in `municipality_id`, when given)."""
    plan, result = ActionPlan, ComplianceResult
    query = select(
        *(getattr(plan, name) for name in PLAN_FIELDS),
        *(getattr(result, name).label(f"result_{name}") for name in RESULT_FIELDS),
    ).join(result, result.id == plan.compliance_result_id)
    query = query.where(plan.id == plan_id)
    if municipality_id is not None:
        query = query.where(plan.municipality_id == municipality_id)
    found = conn.execute(query).first()
    if found is None:
        where = f" in municipality {municipality_id!r}" if municipality_id else ""
        raise ValueError(f"there is no action plan {plan_id}{where}")
    row = found._asdict()
    shown = {name: row[name] for name in PLAN_FIELDS}
    shown["result"] = {name: row[f"result_{name}"] for name in RESULT_FIELDS}
    today = local_today(conn, shown["municipality_id"])
    shown["overdue"] = is_overdue(shown["status"], shown["due_date"], today)
    return shown


def plan_changes(
    plan: dict,
    *,
    status: str | None = None,
    owner: str | None = None,
    due_date: date | None = None,
    now: datetime,
) -> tuple[dict, dict]:
    """(before, after) of the fields an update changes; closing sets `closed_at`, reopening clears it."""
    if status is not None and status not in PLAN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(PLAN_STATUSES)}, not {status!r}")
    if owner is not None and not owner.strip():
        raise ValueError("the owner cannot be empty")
    wanted = {"status": status, "owner": owner and owner.strip(), "due_date": due_date}
    after = {k: v for k, v in wanted.items() if v is not None and v != plan[k]}
    if "status" in after:
        closing = after["status"] in CLOSED_STATUSES
        if closing or plan["closed_at"] is not None:
            after["closed_at"] = now if closing else None
    before = {k: plan[k] for k in after}
    return before, after


def update_plan(
    conn: Connection,
    plan_id: int,
    actor: str,
    *,
    status: str | None = None,
    owner: str | None = None,
    due_date: date | None = None,
    note: str | None = None,
    municipality_id: str | None = None,
    now: datetime | None = None,
) -> tuple[dict, bool]:
    """Change a plan's status, owner or due date, and/or add a note {at, by, text}; audited as
    `action_plan.updated` with before and after. Returns the plan and whether anything changed."""
    if status is None and owner is None and due_date is None and note is None:
        raise ValueError("nothing to update: give --status, --owner, --due or --note")
    if note is not None and not note.strip():
        raise ValueError("a note cannot be empty")
    plan = get_plan(conn, plan_id, municipality_id)
    now = now or utcnow()
    before, after = plan_changes(plan, status=status, owner=owner, due_date=due_date, now=now)
    added = {"at": now.isoformat(), "by": actor, "text": note.strip()} if note is not None else None
    if not after and added is None:
        return plan, False
    values = {**after, "updated_at": now}
    if added is not None:
        values["notes"] = [*plan["notes"], added]
    conn.execute(update(ActionPlan).where(ActionPlan.id == plan["id"]).values(**values))
    record_audit(
        conn,
        municipality_id=plan["municipality_id"],
        actor=actor,
        action="action_plan.updated",
        entity_type="action_plan",
        entity_id=plan["id"],
        details={
            "before": _plain(before),
            "after": _plain(after),
            **({"note": added["text"]} if added else {}),
        },
    )
    return get_plan(conn, plan["id"]), True


def _plain(values: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def compliance_history(
    conn: Connection, municipality_id: str, since: date | None = None, limit: int = 100
) -> list[dict]:
    """The municipality's audit entries of compliance results, judgements and plans, newest first;
    `since` is a local day."""
    if limit < 1:
        raise ValueError(f"the limit is a positive number of entries, not {limit}")
    timezone = require_municipality(conn, municipality_id)
    log = AuditLog
    query = select(
        log.id,
        log.municipality_id,
        log.occurred_at,
        log.actor,
        log.action,
        log.entity_type,
        log.entity_id,
        log.details,
    ).where(
        log.municipality_id == municipality_id,
        or_(log.entity_type.like("compliance%"), log.entity_type == "action_plan"),
    )
    if since is not None:
        query = query.where(log.occurred_at >= local_day_bounds(since, timezone)[0])
    rows = conn.execute(query.order_by(log.occurred_at.desc(), log.id.desc()).limit(limit)).all()
    return [r._asdict() for r in rows]


def period_results(conn: Connection, municipality_id: str, period: str) -> list[dict]:
    """The stored results of a municipality's day (YYYY-MM-DD) or month (YYYY-MM)."""
    period_kind, period_start = parse_period(period)
    period_end(period_kind, period_start)
    require_municipality(conn, municipality_id)
    result = ComplianceResult
    rows = conn.execute(
        select(result.id, *(getattr(result, name) for name in RESULT_FIELDS))
        .where(
            result.municipality_id == municipality_id,
            result.period_kind == period_kind,
            result.period_start == period_start,
        )
        .order_by(result.standard, result.parameter, result.rule_code, result.statistic)
    ).all()
    return [r._asdict() for r in rows]


def describe_entry(entry: dict) -> str:
    """One line of what an audit entry says, for people."""
    details = entry["details"] or {}
    action = entry["action"]
    if action in ("compliance_result.recorded", "compliance_result.changed"):
        now = details.get("after", details)
        text = (
            f"{now.get('standard')} {now.get('parameter')} {now.get('rule_code')} {now.get('statistic')}"
            f" {now.get('period_start')}: {now.get('status')} {_number(now.get('statistic_value'))}"
            f" (limit {_number(now.get('limit'))} {now.get('unit') or ''})"
        ).replace(" )", ")")
        before = details.get("before")
        return (
            f"{text}, was {before.get('status')} {_number(before.get('statistic_value'))}" if before else text
        )
    if action == "action_plan.created":
        return (
            f"{details.get('kind', 'violation')} plan for {details.get('standard')}"
            f" {details.get('parameter')} {details.get('rule_code', 'daily')}: {details.get('severity')},"
            f" {details.get('owner')}, due {details.get('due_date')}"
        )
    if action == "action_plan.updated":
        before, after = details.get("before", {}), details.get("after", {})
        # a fixed order: PostgreSQL's jsonb does not keep the keys' order
        changes = [
            f"{k} {before.get(k)} -> {after[k]}" for k in ("status", "owner", "due_date") if k in after
        ]
        if "note" in details:
            changes.append(f"note: {details['note']}")
        return "; ".join(changes)
    if action == "compliance.violation_recorded":
        return (
            f"violation event {details.get('event_id')} for {details.get('standard')}"
            f" {details.get('parameter')} {details.get('rule_code', 'daily')}"
        )
    return ", ".join(f"{k}={v}" for k, v in details.items())


def _number(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
