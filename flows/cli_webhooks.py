"""`waterline webhooks`: subscriptions people manage (add, list, show, update, remove, rotate the
secret, send a test), how each endpoint is doing, its deliveries, and redelivery of dead letters.

Registered in flows/cli.py with `app.add_typer(webhooks_app, name="webhooks")`. A
signing secret is printed once, by `add` and `rotate-secret`; no other output carries it.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from flows.cli_common import console, inert, plain_errors

webhooks_app = typer.Typer(
    help="Webhook subscriptions: add and change them, test them, watch them, resend dead letters.",
    no_args_is_help=True,
)

TheMunicipality = Annotated[str, typer.Option("--municipality", "-m", help="The municipality.")]
InMunicipality = Annotated[
    str | None,
    typer.Option("--municipality", "-m", help="Only if the subscription is this municipality's."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SubscriptionId = Annotated[int, typer.Argument(metavar="ID", help="The subscription's id.")]
Events = Annotated[
    str,
    typer.Option(
        "--events", help='Comma-separated event types, e.g. alert.created,incident.opened; "*" for all.'
    ),
]
MinSeverity = Annotated[
    str | None,
    typer.Option(
        "--min-severity",
        help="The alerts this endpoint receives: runs of anomalies at least this severe "
        "(LOW, MEDIUM, HIGH, CRITICAL; default HIGH).",
    ),
]

BODY_EXCERPT_CHARS = 200


def _text(value: object) -> str:
    """A value as inert text: ISO times to the second, no terminal control sequences."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return inert(value)


def _cell(value: object) -> Text:
    """A value as a table cell that Rich does not read as markup."""
    return Text(_text(value))


def _say(line: str) -> None:
    console.print(_cell(line), soft_wrap=True)


def _json(value: object) -> str:
    return json.dumps(value, indent=2, default=lambda v: v.isoformat())


def _by() -> str:
    """Who runs the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _event_list(events: str) -> list[str]:
    return [e.strip() for e in events.split(",") if e.strip()]


def _state(subscription: dict) -> str:
    if subscription["is_active"]:
        return "active"
    return f"disabled: {subscription['disabled_reason'] or 'no reason given'}"


@webhooks_app.command("add")
@plain_errors
def add(
    municipality: TheMunicipality,
    url: Annotated[str, typer.Option("--url", help="The endpoint (https in production).")],
    events: Events,
    description: Annotated[str | None, typer.Option(help="What this endpoint is, for people.")] = None,
    secret: Annotated[
        str | None,
        typer.Option(help="Your own whsec_ secret (it stays in shell history); default: a new one."),
    ] = None,
    min_severity: MinSeverity = None,
) -> None:
    """Subscribe an endpoint to a municipality's events; a new signing secret is printed once."""
    from tasks.database import begin
    from tasks.webhooks.subscriptions import DEFAULT_MIN_SEVERITY, add_subscription

    with begin() as conn:
        subscription_id, stored = add_subscription(
            conn,
            municipality,
            url,
            _event_list(events),
            description,
            secret=secret,
            min_severity=min_severity or DEFAULT_MIN_SEVERITY,
            actor=_by(),
        )
    _say(f"webhook subscription {subscription_id} added for {municipality}: {url}")
    if secret is None:
        typer.echo(f"signing secret (shown only now, give it to the receiver): {stored}")
    else:
        typer.echo("signing secret: the one you gave")


@webhooks_app.command("list")
@plain_errors
def list_(
    municipality: Annotated[
        str | None, typer.Option("--municipality", "-m", help="Only this municipality's.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List webhook subscriptions (never their secrets), oldest first."""
    from tasks.database import begin
    from tasks.webhooks.subscriptions import list_subscriptions

    with begin() as conn:
        rows = list_subscriptions(conn, municipality)
    if as_json:
        typer.echo(_json(rows))
        return
    where = f" of {municipality}" if municipality else ""
    table = Table(
        "id",
        "municipality",
        Column("url", overflow="fold"),
        "events",
        "alerts",
        "state",
        "description",
        title=f"{len(rows)} subscription(s){where}",
    )
    for r in rows:
        table.add_row(
            *(_cell(r[k]) for k in ("id", "municipality_id", "url")),
            _cell(", ".join(r["event_types"])),
            _cell(f"{r['min_severity']}+"),
            _cell(_state(r)),
            _cell(r["description"]),
        )
    console.print(table)


@webhooks_app.command("show")
@plain_errors
def show(
    subscription_id: SubscriptionId, municipality: InMunicipality = None, as_json: AsJson = False
) -> None:
    """Show one subscription (never its secret) and how its endpoint did over the last 7 days."""
    from tasks.database import begin
    from tasks.models import utcnow
    from tasks.webhooks.stats import endpoint_stats
    from tasks.webhooks.subscriptions import get_subscription

    with begin() as conn:
        subscription = get_subscription(conn, subscription_id, municipality)
        [figures] = endpoint_stats(conn, utcnow() - timedelta(days=7), subscription_id=subscription_id)
    if as_json:
        typer.echo(_json({**subscription, "stats": figures}))
        return
    table = Table("field", "value", title=f"webhook subscription {subscription_id}", show_header=False)
    for name, value in (
        ("municipality", subscription["municipality_id"]),
        ("url", subscription["url"]),
        ("events", ", ".join(subscription["event_types"])),
        ("alerts of at least", subscription["min_severity"]),
        ("state", _state(subscription)),
        ("description", subscription["description"]),
        ("created at", subscription["created_at"]),
        ("previous secret signs until", subscription["rotating_until"]),
        ("attempts (7 days)", figures["attempts"]),
        ("success rate (7 days)", _percent(figures["success_rate"])),
        ("consecutive failures", figures["consecutive_failures"]),
        ("last error", _last_error(figures)),
        ("deliveries waiting", figures["pending_deliveries"]),
        ("dead letters", figures["dead_deliveries"]),
    ):
        table.add_row(name, _cell(value))
    console.print(table)


@webhooks_app.command("update")
@plain_errors
def update(
    subscription_id: SubscriptionId,
    url: Annotated[str | None, typer.Option("--url", help="A new endpoint URL.")] = None,
    events: Annotated[
        str | None, typer.Option("--events", help="The new comma-separated event types.")
    ] = None,
    description: Annotated[str | None, typer.Option(help='A new description ("" clears it).')] = None,
    min_severity: MinSeverity = None,
    active: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Start or stop sending (--disable needs --reason)."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why the subscription is disabled.")] = None,
    municipality: InMunicipality = None,
) -> None:
    """Change a subscription's URL, event types, description or alert severity, or enable or
    disable it (audited)."""
    from tasks.database import begin
    from tasks.webhooks.subscriptions import update_subscription

    with begin() as conn:
        row, changes = update_subscription(
            conn,
            subscription_id,
            url=url,
            event_types=_event_list(events) if events is not None else None,
            description=description,
            min_severity=min_severity,
            active=active,
            reason=reason,
            municipality_id=municipality,
            actor=_by(),
        )
    if not changes:
        _say(f"webhook subscription {subscription_id} unchanged")
        return
    said = "; ".join(f"{k} {_text(before)} -> {_text(after)}" for k, (before, after) in changes.items())
    _say(f"webhook subscription {subscription_id} updated: {said}")


@webhooks_app.command("remove")
@plain_errors
def remove(
    subscription_id: SubscriptionId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    municipality: InMunicipality = None,
) -> None:
    """Delete a subscription with its deliveries and their history (audited); events stay recorded."""
    from tasks.database import begin
    from tasks.webhooks.subscriptions import get_subscription, remove_subscription

    if not yes:
        with begin() as conn:
            subscription = get_subscription(conn, subscription_id, municipality)
        typer.confirm(
            f"Remove webhook subscription {subscription_id} ({subscription['url']}) "
            "and its delivery history?",
            abort=True,
        )
    with begin() as conn:
        counts = remove_subscription(conn, subscription_id, municipality_id=municipality, actor=_by())
    dropped = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    _say(f"webhook subscription {subscription_id} removed; deliveries dropped: {dropped}")


@webhooks_app.command("rotate-secret")
@plain_errors
def rotate_secret(
    subscription_id: SubscriptionId,
    overlap_hours: Annotated[
        float | None,
        typer.Option(help="Hours the old secret keeps signing too (default: the setting, 24)."),
    ] = None,
    municipality: InMunicipality = None,
) -> None:
    """Give a subscription a new signing secret, printed once; both sign during the overlap."""
    from tasks.database import begin
    from tasks.webhooks.subscriptions import get_subscription
    from tasks.webhooks.subscriptions import rotate_secret as rotate

    with begin() as conn:
        secret = rotate(
            conn, subscription_id, overlap_hours=overlap_hours, municipality_id=municipality, actor=_by()
        )
        until = get_subscription(conn, subscription_id)["rotating_until"]
    _say(
        f"webhook subscription {subscription_id} has a new secret; "
        f"the old one also signs until {_text(until)}"
    )
    typer.echo(f"new signing secret (shown only now, give it to the receiver): {secret}")


@webhooks_app.command("test")
@plain_errors
def test(subscription_id: SubscriptionId, municipality: InMunicipality = None) -> None:
    """Send a webhook.test event to this endpoint only, now, and print what it answered."""
    from tasks.database import begin
    from tasks.webhooks.delivery import send_test_event
    from tasks.webhooks.subscriptions import get_subscription

    with begin() as conn:
        get_subscription(conn, subscription_id, municipality)
    outcome = send_test_event(subscription_id)
    took = f" in {_text(outcome['latency_ms'])} ms" if outcome["latency_ms"] is not None else ""
    if outcome["status_code"] is None:
        _say(f"test event {outcome['event_id']} not delivered{took}: {outcome['error']}")
    else:
        body = (outcome["body"] or "")[:BODY_EXCERPT_CHARS]
        _say(f"test event {outcome['event_id']}: HTTP {outcome['status_code']}{took}: {body}")
    if not outcome["succeeded"]:
        raise typer.Exit(1)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _last_error(figures: dict) -> str:
    if figures["last_error"] is None:
        return "-"
    return f"{_text(figures['last_error_at'])} {figures['last_error']}"


@webhooks_app.command("stats")
@plain_errors
def stats(
    subscription_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="One subscription; default: all.")
    ] = None,
    municipality: Annotated[
        str | None, typer.Option("--municipality", "-m", help="Only this municipality's.")
    ] = None,
    since: Annotated[str, typer.Option(help="Window of the attempt figures: a time or an age (7d).")] = "7d",
    as_json: AsJson = False,
) -> None:
    """Per endpoint: attempts, success rate, p50/p95 latency, last error, failure streak, state."""
    from tasks.database import begin
    from tasks.webhooks.dead_letters import parse_time
    from tasks.webhooks.stats import endpoint_stats

    start = parse_time(since, "--since")
    with begin() as conn:
        rows = endpoint_stats(conn, start, municipality_id=municipality, subscription_id=subscription_id)
    if as_json:
        typer.echo(_json(rows))
        return
    table = Table(
        "id",
        "municipality",
        "state",
        "attempts",
        "success",
        "p50 ms",
        "p95 ms",
        "failing",
        "waiting",
        "dead",
        title=f"{len(rows)} endpoint(s), attempts since {_text(start)}",
    )
    for r in rows:
        table.add_row(
            _cell(r["subscription_id"]),
            _cell(r["municipality_id"]),
            _cell("active" if r["is_active"] else "disabled"),
            _cell(r["attempts"]),
            _cell(_percent(r["success_rate"])),
            *(
                _cell(r[k])
                for k in (
                    "p50_latency_ms",
                    "p95_latency_ms",
                    "consecutive_failures",
                    "pending_deliveries",
                    "dead_deliveries",
                )
            ),
        )
    console.print(table)
    for r in rows:
        if not r["is_active"]:
            _say(f"endpoint {r['subscription_id']} is {_state(r)}")
        if r["consecutive_failures"]:
            _say(f"endpoint {r['subscription_id']} failing since {_text(r['failing_since'])}")
        if r["last_error"] is not None:
            _say(f"endpoint {r['subscription_id']} last error: {_last_error(r)}")


@webhooks_app.command("deliveries")
@plain_errors
def deliveries(
    subscription_id: SubscriptionId,
    status: Annotated[str | None, typer.Option(help="dead, pending or succeeded.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    municipality: InMunicipality = None,
    as_json: AsJson = False,
) -> None:
    """An endpoint's newest deliveries, each with its attempts (time, HTTP status, latency, answer)."""
    from tasks.database import begin
    from tasks.webhooks.dead_letters import list_deliveries

    with begin() as conn:
        rows = list_deliveries(
            conn, subscription_id, status=status, limit=limit, municipality_id=municipality
        )
    if as_json:
        typer.echo(_json(rows))
        return
    of = f" {status}" if status else ""
    _say(f"{len(rows)}{of} deliver(ies) of webhook subscription {subscription_id}, newest first")
    for d in rows:
        due = f", next attempt {_text(d['next_attempt_at'])}" if d["status"] == "pending" else ""
        _say(
            f"delivery {d['id']}  {d['event_id']}  {d['event_type']}  {d['status']}"
            f"  {d['attempt_count']} attempt(s){due}"
        )
        for a in d["attempts"]:
            answer = f"HTTP {a['status_code']}" if a["status_code"] is not None else "no answer"
            said = a["error"] or (a["response_body"] or "")[:BODY_EXCERPT_CHARS]
            _say(f"    {_text(a['attempted_at'])}  {answer}  {_text(a['latency_ms'])} ms  {said}")


@webhooks_app.command("redeliver")
@plain_errors
def redeliver(
    delivery_id: Annotated[
        int | None, typer.Argument(metavar="[DELIVERY_ID]", help="One delivery to send again.")
    ] = None,
    endpoint: Annotated[
        int | None, typer.Option("--endpoint", help="A subscription whose dead letters to send again.")
    ] = None,
    failed_since: Annotated[
        str | None, typer.Option(help="With --endpoint: those that died since this time or age (2d).")
    ] = None,
    municipality: InMunicipality = None,
) -> None:
    """Send a dead letter again, or all of an endpoint's since a time, with the original webhook-id."""
    from tasks.database import begin
    from tasks.webhooks.dead_letters import parse_time, redeliver_delivery, redeliver_failed_since
    from tasks.webhooks.subscriptions import get_subscription

    if (delivery_id is None) == (endpoint is None) or (endpoint is None) != (failed_since is None):
        raise ValueError("give either DELIVERY_ID, or --endpoint ID with --failed-since TIME")
    with begin() as conn:
        if delivery_id is not None:
            row = redeliver_delivery(conn, delivery_id, municipality_id=municipality, actor=_by())
            subscription = get_subscription(conn, row["subscription_id"])
            said = f"delivery {delivery_id} (webhook-id {row['event_id']}) is due again"
        else:
            since = parse_time(failed_since, "--failed-since")
            ids = redeliver_failed_since(conn, endpoint, since, municipality_id=municipality, actor=_by())
            subscription = get_subscription(conn, endpoint)
            said = (
                f"{len(ids)} dead deliver(ies) of webhook subscription {endpoint} "
                f"since {_text(since)} due again"
            )
    if subscription["is_active"]:
        _say(f"{said}; the next dispatch run sends it (every minute, or `waterline run dispatch`)")
    else:
        _say(
            f"{said}, but webhook subscription {subscription['id']} is disabled; "
            f"`waterline webhooks update {subscription['id']} --enable` lets it go out"
        )
