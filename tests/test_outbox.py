from sqlalchemy import insert, select

from tasks.database import begin
from tasks.models import Municipality, WebhookDelivery, WebhookEvent, WebhookSubscription
from tasks.webhooks.outbox import record_event


def _municipality(conn, mid: str) -> None:
    conn.execute(insert(Municipality).values(id=mid, name=mid, timezone="UTC", standards=[],
                                             regulator_emails=[]))


def _subscribe(conn, mid: str, types: list[str]) -> int:
    return conn.execute(insert(WebhookSubscription).values(
        municipality_id=mid, url="http://127.0.0.1/hook", event_types=types, secret="whsec_x",
    )).inserted_primary_key[0]


def test_event_is_recorded_once_with_one_delivery_per_matching_subscription(database):
    with begin() as conn:
        _municipality(conn, "a")
        _municipality(conn, "b")
        wants_all = _subscribe(conn, "a", ["*"])
        wants_reports = _subscribe(conn, "a", ["report.published"])
        _subscribe(conn, "a", ["incident.opened"])
        _subscribe(conn, "b", ["*"])
        first = record_event(conn, municipality_id="a", event_type="report.published",
                             data={"municipality_id": "a"}, dedupe_key="report:a:1")
        again = record_event(conn, municipality_id="a", event_type="report.published",
                             data={"municipality_id": "a"}, dedupe_key="report:a:1")
    with begin() as conn:
        events = conn.execute(select(WebhookEvent.id, WebhookEvent.payload)).all()
        deliveries = conn.execute(
            select(WebhookDelivery.event_id, WebhookDelivery.subscription_id, WebhookDelivery.status)
            .order_by(WebhookDelivery.subscription_id)
        ).all()
    assert again is None
    assert [e.id for e in events] == [first]
    assert events[0].payload["type"] == "report.published"
    assert [tuple(d) for d in deliveries] == [
        (first, wants_all, "pending"), (first, wants_reports, "pending"),
    ]


def test_event_rolls_back_with_the_change_that_caused_it(database):
    with begin() as conn:
        _municipality(conn, "a")
    try:
        with begin() as conn:
            record_event(conn, municipality_id="a", event_type="incident.opened", data={},
                         dedupe_key="incident:1")
            raise RuntimeError("the change failed after the event was written")
    except RuntimeError:
        pass
    with begin() as conn:
        assert conn.execute(select(WebhookEvent)).all() == []
