"""`waterline webhooks` as people use it, against a real receiver on loopback: secrets shown once
and nowhere else, test events, rotation, dead letters resent with their original webhook-id, one
municipality never reaching another's endpoint, and plain sentences for bad input."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
import typer
from sqlalchemy import select, update
from typer.testing import CliRunner

from flows.cli_webhooks import webhooks_app
from tasks.database import begin
from tasks.models import AuditLog, WebhookDelivery, WebhookDeliveryAttempt, WebhookEvent, utcnow
from tasks.webhooks.delivery import deliver_endpoint, due_subscription_ids
from tasks.webhooks.outbox import EVENT_TYPES, record_event
from tasks.webhooks.retries import MAX_ATTEMPTS
from tasks.webhooks.signing import generate_secret

runner = CliRunner()

# The command line as flows/cli.py mounts it: `waterline webhooks ...`.
cli = typer.Typer(pretty_exceptions_enable=False)
cli.add_typer(webhooks_app, name="webhooks")

SECRET_LINE = re.compile(r"signing secret \(shown only now, give it to the receiver\): (whsec_\S+)")
COMMANDS = [
    "add",
    "list",
    "show",
    "update",
    "remove",
    "rotate-secret",
    "test",
    "stats",
    "deliveries",
    "redeliver",
]


def run(*args: str, input: str | None = None):  # noqa: A002
    result = runner.invoke(cli, ["webhooks", *args], input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def add(receiver, municipality="riverton", events="*", path="", *extra: str) -> tuple[int, str]:
    """Add a subscription through the CLI; its id and the secret printed once."""
    result = run("add", "-m", municipality, "--url", receiver.url + path, "--events", events, *extra)
    assert result.exit_code == 0, result.output
    subscription_id = int(re.search(r"webhook subscription (\d+) added", result.output)[1])
    secret = SECRET_LINE.search(result.output)[1]
    receiver.secrets.append(secret)
    return subscription_id, secret


def event(municipality="riverton", key="e1", event_type="alert.created", data=None) -> str:
    with begin() as conn:
        return record_event(
            conn,
            municipality_id=municipality,
            event_type=event_type,
            data=data or {"municipality_id": municipality, "sensor_id": f"{municipality}-ph"},
            dedupe_key=key,
        )


def make_due(subscription_id: int) -> None:
    with begin() as conn:
        conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def delivery_rows(subscription_id: int) -> list[dict]:
    with begin() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(WebhookDelivery.__table__)
                .where(WebhookDelivery.subscription_id == subscription_id)
                .order_by(WebhookDelivery.id)
            ).mappings()
        ]


def audit_entries() -> list[tuple]:
    with begin() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(AuditLog.action, AuditLog.entity_id, AuditLog.actor, AuditLog.details).order_by(
                    AuditLog.id
                )
            )
        ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_webhooks_command_explains_itself(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"webhooks {command}" in result.output


def test_the_secret_is_printed_once_at_add_and_at_rotation_and_nowhere_else(allow_loopback, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    added = run(
        "add", "-m", "riverton", "--url", receiver.url, "--events", "alert.created,incident.opened",
        "--description", "ops pager",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    first = SECRET_LINE.search(added.output)[1]
    sid = str(re.search(r"webhook subscription (\d+) added", added.output)[1])
    receiver.secrets.append(first)
    event(key="e1")
    deliver_endpoint.fn(int(sid))
    outputs = [
        run("list"),
        run("list", "-m", "riverton", "--json"),
        run("show", sid),
        run("show", sid, "--json"),
        run("update", sid, "--description", "night shift pager"),
        run("stats"),
        run("stats", sid, "--json"),
        run("deliveries", sid),
        run("deliveries", sid, "--json"),
        run("test", sid),
        run("add", "-m", "riverton", "--url", receiver.url, "--events", "alert.raised"),
        run("update", sid, "--events", "nothing.such"),
    ]
    rotated = run("rotate-secret", sid, "--overlap-hours", "2")
    second = SECRET_LINE.search(rotated.output)[1]
    receiver.secrets.append(second)
    outputs += [run("show", sid, "--json"), run("test", sid), run("deliveries", sid, "--json")]

    assert first != second and first in added.output
    assert rotated.exit_code == 0 and second in rotated.output and first not in rotated.output
    assert [r.exit_code for r in outputs] == [0] * 10 + [1, 1] + [0] * 3
    for result in outputs:
        assert first not in result.output and second not in result.output, result.output
        assert "whsec_" not in result.output
    assert first not in caplog.text and second not in caplog.text
    audit = audit_entries()
    assert "whsec_" not in repr(audit)
    assert [a[0] for a in audit] == [
        "webhook_subscription.added",
        "webhook_subscription.updated",
        "webhook_subscription.secret_rotated",
    ]
    assert audit[0][3] == {
        "url": receiver.url,
        "event_types": ["alert.created", "incident.opened"],
        "min_severity": "HIGH",
        "description": "ops pager",
    }
    # The test event after the rotation carries both signatures, and each verifies.
    last = receiver.requests[-1]
    assert len(last.signatures) == 2 and last.verified == {first: True, second: True}


def test_add_refuses_unknown_types_unsafe_urls_and_malformed_secrets_in_a_sentence(
    allow_loopback, monkeypatch
):
    own = "whsec_" + "c2hvcnQ="  # base64 of b"short": 5 bytes
    unknown = run("add", "-m", "riverton", "--url", "http://127.0.0.1:9/h", "--events", "alert.raised")
    short = run("add", "-m", "riverton", "--url", "http://127.0.0.1:9/h", "--events", "*", "--secret", own)
    metadata = run("add", "-m", "riverton", "--url", "http://169.254.169.254/latest", "--events", "*")
    nowhere = run("add", "-m", "atlantis", "--url", "http://127.0.0.1:9/h", "--events", "*")
    monkeypatch.setenv("WATERLINE_WEBHOOK_REQUIRE_HTTPS", "true")
    from tasks.settings import reset_settings

    reset_settings()
    plain_http = run("add", "-m", "riverton", "--url", "http://127.0.0.1:9/h", "--events", "*")

    assert unknown.exit_code == 1
    assert "unknown event type(s) 'alert.raised'; known: " + ", ".join(EVENT_TYPES) in unknown.output
    assert all(t in unknown.output for t in ("pipeline.failed", "sensor.maintenance_due", "webhook.test"))
    assert short.exit_code == 1 and "24 to 64 bytes after whsec_, this one 5" in short.output
    assert own not in short.output and "c2hvcnQ" not in short.output
    assert metadata.exit_code == 1 and "private or reserved address" in metadata.output
    assert nowhere.exit_code == 1 and "unknown municipality 'atlantis'" in nowhere.output
    assert plain_http.exit_code == 1 and "must use https" in plain_http.output
    assert json.loads(run("list", "--json").output) == []


def test_a_secret_of_ones_own_is_kept_unprinted_and_signs(allow_loopback, receiver):
    own = str(generate_secret())
    added = run("add", "-m", "riverton", "--url", receiver.url, "--events", "*", "--secret", own)
    receiver.secrets.append(own)
    sid = re.search(r"webhook subscription (\d+) added", added.output)[1]
    tested = run("test", sid)

    assert added.exit_code == 0 and own not in added.output
    assert "signing secret: the one you gave" in added.output
    assert tested.exit_code == 0, tested.output
    [request] = receiver.requests
    assert request.verified == {own: True}


def test_test_prints_the_receivers_status_and_body_and_fails_when_it_refuses(allow_loopback, receiver):
    sid, _ = add(receiver, path="?to=first")
    other, _ = add(receiver, path="?to=second")
    receiver.respond((202, {}, b"got it"), (500, {}, b"database is down\x1b[31m"))

    accepted = run("test", str(sid))
    refused = run("test", str(sid))

    assert accepted.exit_code == 0, accepted.output
    assert re.search(r"test event msg_\w+: HTTP 202 in [\d.]+ ms: got it", accepted.output)
    assert refused.exit_code == 1 and "HTTP 500" in refused.output and "error" not in refused.output
    assert "database is down" in refused.output and "\x1b" not in refused.output
    assert [r.path for r in receiver.requests] == ["/hooks?to=first", "/hooks?to=first"]
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["webhook.test", "webhook.test"]
    assert all(r.verified[receiver.secrets[0]] for r in receiver.requests)
    assert delivery_rows(other) == []


def test_rotation_sends_both_signatures_for_the_overlap_then_only_the_new_one(allow_loopback, receiver):
    sid, first = add(receiver)
    overlapping = run("rotate-secret", str(sid), "--overlap-hours", "1")
    second = SECRET_LINE.search(overlapping.output)[1]
    run("test", str(sid))
    at_once = run("rotate-secret", str(sid), "--overlap-hours", "0")
    third = SECRET_LINE.search(at_once.output)[1]
    run("test", str(sid))
    negative = run("rotate-secret", str(sid), "--overlap-hours", "-1")
    receiver.secrets[:] = [first, second, third]

    assert overlapping.exit_code == 0 and "the old one also signs until" in overlapping.output
    during, after = (receiver.verify(r.body, r.headers) for r in receiver.requests)
    assert len(receiver.requests[0].signatures) == 2
    assert all(s.startswith("v1,") for s in receiver.requests[0].signatures)
    assert during == {first: True, second: True, third: False}
    assert len(receiver.requests[1].signatures) == 1
    assert after == {first: False, second: False, third: True}
    assert negative.exit_code == 1 and "the overlap is 0 to 720 hours, not -1" in negative.output


def test_update_disables_with_a_reason_enables_again_and_refuses_bad_changes(allow_loopback, receiver):
    sid, _ = add(receiver, events="alert.created")
    s = str(sid)

    no_reason = run("update", s, "--disable")
    disabled = run("update", s, "--disable", "--reason", "receiver under maintenance")
    listed = json.loads(run("list", "-m", "riverton", "--json").output)
    event(key="while-disabled")
    enabled = run("update", s, "--enable", "--events", "alert.created,incident.opened")
    again = run("update", s, "--enable")
    private = run("update", s, "--url", "http://169.254.169.254/")
    nothing = run("update", s)
    shown = json.loads(run("show", s, "--json").output)

    assert no_reason.exit_code == 1 and "say why the subscription is disabled" in no_reason.output
    assert disabled.exit_code == 0, disabled.output
    assert "is_active True -> False; disabled_reason - -> receiver under maintenance" in disabled.output
    assert [(s["is_active"], s["disabled_reason"]) for s in listed] == [(False, "receiver under maintenance")]
    assert delivery_rows(sid) == []  # a disabled subscription is not owed new events
    assert enabled.exit_code == 0
    assert "event_types ['alert.created'] -> ['alert.created', 'incident.opened']" in enabled.output
    assert again.exit_code == 0 and f"webhook subscription {sid} unchanged" in again.output
    assert private.exit_code == 1 and "private or reserved" in private.output
    assert nothing.exit_code == 1 and "nothing to update" in nothing.output
    assert (shown["is_active"], shown["disabled_reason"], shown["event_types"]) == (
        True,
        None,
        ["alert.created", "incident.opened"],
    )
    assert shown["url"] == receiver.url and "secret" not in shown
    assert [(a[0], a[2].startswith("cli")) for a in audit_entries()] == [
        ("webhook_subscription.added", True),
        ("webhook_subscription.disabled", True),
        ("webhook_subscription.enabled", True),
    ]


def test_remove_asks_first_then_drops_the_subscription_and_its_history(allow_loopback, receiver):
    sid, _ = add(receiver)
    kept = event(key="e1")
    deliver_endpoint.fn(sid)
    later = event(key="e2")

    declined = run("remove", str(sid), input="n\n")
    still = json.loads(run("list", "--json").output)
    removed = run("remove", str(sid), "--yes")
    gone = run("show", str(sid))

    assert declined.exit_code == 1 and [s["id"] for s in still] == [sid]
    assert removed.exit_code == 0, removed.output
    assert "deliveries dropped: 1 pending, 1 succeeded" in removed.output
    assert gone.exit_code == 1 and f"no webhook subscription {sid}" in gone.output
    assert delivery_rows(sid) == []
    with begin() as conn:
        assert conn.execute(select(WebhookDeliveryAttempt.id)).all() == []
    with begin() as conn:  # the events themselves stay recorded
        assert set(conn.execute(select(WebhookEvent.id)).scalars()) == {kept, later}
    assert audit_entries()[-1][:2] == ("webhook_subscription.removed", str(sid))
    assert audit_entries()[-1][3]["deliveries"] == {"pending": 1, "succeeded": 1}


def test_dead_letter_is_listed_with_its_attempts_and_redelivered_with_the_original_webhook_id(
    allow_loopback, receiver
):
    sid, _ = add(receiver)
    receiver.respond(*[(500, {}, b"broken")] * MAX_ATTEMPTS)
    event_id = event()
    for _ in range(MAX_ATTEMPTS):
        make_due(sid)
        deliver_endpoint.fn(sid)
    [dead] = delivery_rows(sid)

    listed = run("deliveries", str(sid), "--status", "dead")
    as_json = json.loads(run("deliveries", str(sid), "--status", "dead", "--json").output)
    pending_ones = json.loads(run("deliveries", str(sid), "--status", "pending", "--json").output)
    redelivered = run("redeliver", str(dead["id"]))
    again = run("redeliver", str(dead["id"]))
    restarted = delivery_rows(sid)[0]
    due = due_subscription_ids()
    deliver_endpoint.fn(sid)
    done = delivery_rows(sid)[0]

    assert (dead["status"], dead["attempt_count"]) == ("dead", MAX_ATTEMPTS)
    assert (
        listed.exit_code == 0 and f"delivery {dead['id']}  {event_id}  alert.created  dead" in listed.output
    )
    assert listed.output.count("HTTP 500") == MAX_ATTEMPTS and "broken" in listed.output
    assert [(d["id"], d["event_id"], len(d["attempts"])) for d in as_json] == [
        (dead["id"], event_id, MAX_ATTEMPTS)
    ]
    assert {(a["status_code"], a["response_body"]) for a in as_json[0]["attempts"]} == {(500, "broken")}
    assert pending_ones == []
    assert redelivered.exit_code == 0 and f"webhook-id {event_id}" in redelivered.output
    assert again.exit_code == 1 and "is still pending" in again.output
    assert (restarted["status"], restarted["attempt_count"], restarted["event_id"]) == (
        "pending",
        0,
        event_id,
    )
    assert restarted["next_attempt_at"] <= utcnow() and due == [sid]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event_id] * (MAX_ATTEMPTS + 1)
    assert all(r.verified[receiver.secrets[0]] for r in receiver.requests)
    assert (done["status"], done["attempt_count"]) == ("succeeded", 1)
    assert audit_entries()[-1][:2] == ("webhook_delivery.redelivered", str(dead["id"]))


def test_redeliver_since_a_time_resends_only_the_endpoints_recent_dead_letters(allow_loopback, receiver):
    sid, _ = add(receiver)
    other, _ = add(receiver, path="?other")
    for key in ("old", "recent", "fine"):
        event(key=key)
    ids = [d["id"] for d in delivery_rows(sid)]
    other_ids = [d["id"] for d in delivery_rows(other)]
    now = utcnow()
    with begin() as conn:
        for delivery_id, status, when in (
            (ids[0], "dead", now - timedelta(days=3)),
            (ids[1], "dead", now - timedelta(hours=2)),
            (ids[2], "succeeded", now - timedelta(hours=1)),
            (other_ids[1], "dead", now - timedelta(hours=2)),
        ):
            conn.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(status=status, attempt_count=8, next_attempt_at=None, updated_at=when)
            )

    both = run("redeliver", str(ids[0]), "--endpoint", str(sid), "--failed-since", "1d")
    half = run("redeliver", "--endpoint", str(sid))
    vague = run("redeliver", "--endpoint", str(sid), "--failed-since", "yesterday")
    resent = run("redeliver", "--endpoint", str(sid), "--failed-since", "1d")
    statuses = [(d["status"], d["attempt_count"]) for d in delivery_rows(sid)]

    assert both.exit_code == 1 and half.exit_code == 1
    assert "give either DELIVERY_ID, or --endpoint ID with --failed-since TIME" in both.output
    assert vague.exit_code == 1 and "--failed-since is a time such as" in vague.output
    assert resent.exit_code == 0, resent.output
    assert f"1 dead deliver(ies) of webhook subscription {sid}" in resent.output
    assert statuses == [("dead", 8), ("pending", 0), ("succeeded", 8)]
    assert [d["status"] for d in delivery_rows(other)] == ["pending", "dead", "pending"]
    assert audit_entries()[-1][3]["delivery_ids"] == [ids[1]]


def test_a_subscription_never_receives_another_municipalitys_events(allow_loopback, receiver):
    riverton, _ = add(receiver, "riverton", path="?for=riverton")
    lakeside, _ = add(receiver, "lakeside", path="?for=lakeside")
    riverton_events = [event("riverton", key=f"r{n}") for n in range(3)]
    lakeside_events = [event("lakeside", key=f"l{n}", event_type="incident.opened") for n in range(2)]
    deliver_endpoint.fn(riverton)
    deliver_endpoint.fn(lakeside)

    riverton_deliveries = json.loads(run("deliveries", str(riverton), "--json").output)
    foreign_show = run("show", str(riverton), "-m", "lakeside")
    foreign_redeliver = run("redeliver", str(riverton_deliveries[0]["id"]), "-m", "lakeside")
    stats = json.loads(run("stats", "-m", "riverton", "--json").output)

    by_path: dict[str, set] = {}
    for r in receiver.requests:
        by_path.setdefault(r.path, set()).add(r.headers["webhook-id"])
        assert json.loads(r.body)["data"]["municipality_id"] in r.path
    assert by_path == {
        "/hooks?for=riverton": set(riverton_events),
        "/hooks?for=lakeside": set(lakeside_events),
    }
    assert {d["event_id"] for d in riverton_deliveries} == set(riverton_events)
    assert foreign_show.exit_code == 1 and f"no webhook subscription {riverton} of lakeside" in (
        foreign_show.output
    )
    assert foreign_redeliver.exit_code == 1 and "of lakeside" in foreign_redeliver.output
    assert [(s["subscription_id"], s["attempts"]) for s in stats] == [(riverton, 3)]


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["show", "999"], "no webhook subscription 999"),
        (["update", "999", "--description", "x"], "no webhook subscription 999"),
        (["remove", "999", "--yes"], "no webhook subscription 999"),
        (["rotate-secret", "999"], "no webhook subscription 999"),
        (["test", "999"], "no webhook subscription 999"),
        (["stats", "999"], "no webhook subscription 999"),
        (["deliveries", "999"], "no webhook subscription 999"),
        (["redeliver", "999"], "no webhook delivery 999"),
        (["redeliver", "--endpoint", "999", "--failed-since", "2d"], "no webhook subscription 999"),
        (["stats", "--since", "last week"], "--since is a time such as"),
    ],
)
def test_unknown_ids_and_bad_input_are_one_sentence_and_exit_1(allow_loopback, args, sentence):
    result = run(*args)
    assert result.exit_code == 1
    assert f"error: {sentence}" in result.output


def test_min_severity_is_chosen_at_add_changed_by_update_and_checked(allow_loopback, receiver):
    sid, _ = add(receiver, "riverton", "alert.created", "", "--min-severity", "critical")
    default_sid, _ = add(receiver, "riverton", "alert.created")

    lowered = run("update", str(sid), "--min-severity", "MEDIUM")
    wrong = run("update", str(sid), "--min-severity", "urgent")
    refused = run("add", "-m", "riverton", "--url", receiver.url, "--events", "*", "--min-severity", "severe")
    listed = json.loads(run("list", "-m", "riverton", "--json").output)

    assert lowered.exit_code == 0 and "min_severity CRITICAL -> MEDIUM" in lowered.output
    for result in (wrong, refused):
        assert result.exit_code == 1
        assert "choose one of LOW, MEDIUM, HIGH, CRITICAL" in result.output
    assert [(s["id"], s["min_severity"]) for s in listed] == [(sid, "MEDIUM"), (default_sid, "HIGH")]
