"""The nightly flow end to end against real servers on loopback: PostgreSQL, SMTP (aiosmtpd) and an
HTTP receiver that verifies every webhook with the `standardwebhooks` package."""

from __future__ import annotations

import email
import socket
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from tasks.database import begin
from tasks.models import (
    QcRun,
    QuarantinedRow,
    Reading,
    ReadingQc,
    Report,
    WebhookDelivery,
    WebhookEvent,
)
from tasks.settings import reset_settings

DAY = date(2026, 3, 10)


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(monkeypatch):
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    monkeypatch.setenv("WATERLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("WATERLINE_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("WATERLINE_SMTP_SECURITY", "none")
    reset_settings()
    yield mailbox
    controller.stop()


class _Receiver:
    """Received webhook requests; each verified against the subscription's secret(s)."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.requests: list[dict] = []


@pytest.fixture
def webhook_receiver(monkeypatch):
    receiver = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            payload = Webhook(receiver.secret).verify(body, headers)  # raises if the signature is bad
            receiver.requests.append({"id": headers["webhook-id"], "payload": payload})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):  # noqa: ANN002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    reset_settings()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield receiver
    server.shutdown()


def _counts() -> dict:
    with begin() as conn:
        return {
            "readings": conn.scalar(select(func.count()).select_from(Reading)),
            "quarantined": conn.scalar(select(func.count()).select_from(QuarantinedRow)),
            "reports": conn.scalar(select(func.count()).select_from(Report)),
            "events": conn.scalar(select(func.count()).select_from(WebhookEvent)),
            "deliveries": conn.scalar(select(func.count()).select_from(WebhookDelivery)),
            "qc_runs": conn.scalar(select(func.count()).select_from(QcRun)),
            "readings_qc": conn.scalar(select(func.count()).select_from(ReadingQc)),
            "readings_not_judged": conn.scalar(select(func.count()).select_from(Reading)
                                               .where(Reading.qc_flag == 2)),
        }


def test_nightly_pipeline_end_to_end_and_rerun_changes_nothing(
    postgres_database, prefect_server, smtp_server, webhook_receiver
):
    from flows.nightly_pipeline import nightly_pipeline
    from tasks.ingest import sync_registries
    from tasks.sample import generate_sample
    from tasks.storage import inbox_store
    from tasks.webhooks.subscriptions import add_subscription

    sample = generate_sample(inbox_store(), start=DAY, days=1, municipalities=2,
                             stations_per_municipality=1, interval_seconds=300, seed=11)
    first, second = sample.municipality_ids[:2]
    sync_registries.fn()
    with begin() as conn:
        _, secret = add_subscription(conn, first, webhook_receiver.url, ["*"])
    webhook_receiver.secret = secret

    summary = nightly_pipeline(day=DAY)

    counts = _counts()
    assert counts["readings"] == sample.total_readings - sample.total_bad_rows
    assert counts["quarantined"] == sample.total_bad_rows
    assert summary["failures"] == {}
    qc, aggregate = summary["stages"]["flag_readings"], summary["stages"]["aggregate"]
    assert counts["qc_runs"] == 2 and counts["readings_qc"] == qc["rows"] == aggregate["rows"] > 0
    assert counts["readings_not_judged"] == counts["readings"] - qc["rows"]  # only outside the day
    # the sample's injected faults are failed by QC, and the aggregates count exactly those as excluded
    assert qc["totals"]["readings_fail"] > 0
    assert aggregate["totals"]["readings_excluded"] == qc["totals"]["readings_excluded"]
    with begin() as conn:
        formats = conn.execute(
            select(Report.municipality_id, Report.format).where(Report.period_start == DAY)
        ).all()
    assert sorted(formats) == sorted((m, f) for m in (first, second) for f in ("csv", "json", "pdf", "xlsx"))

    assert len(smtp_server.messages) == 2
    for recipients, message in smtp_server.messages:
        attachments = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
        assert len(attachments) == 1
        assert attachments[0].get_payload(decode=True).startswith(b"%PDF")
        assert all(r.endswith(".example") for r in recipients)

    received = webhook_receiver.requests
    assert received, "the subscriber received no webhook"
    assert {r["payload"]["data"].get("municipality_id", first) for r in received} == {first}
    assert "report.published" in {r["payload"]["type"] for r in received}
    # the sample's injected faults raise alerts; the subscriber's (default HIGH) reach it
    alerts = summary["stages"]["raise_alerts"]
    assert alerts["items"] == 2 and alerts["totals"]["alerts_created"] > 0
    assert {"alert.created", "alert.resolved"} <= {r["payload"]["type"] for r in received}
    assert {r["payload"]["data"]["level"] for r in received if r["payload"]["type"].startswith("alert.")} == {
        "HIGH"
    }
    assert summary["stages"]["check_outages"]["items"] == 2
    with begin() as conn:
        pending = conn.scalar(select(func.count()).select_from(WebhookDelivery)
                              .where(WebhookDelivery.status != "succeeded"))
    assert pending == 0

    nightly_pipeline(day=DAY)

    assert _counts() == counts
    assert len(smtp_server.messages) == 2
    assert len(webhook_receiver.requests) == len(received)
