import socket
import traceback
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import polars as pl
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import insert, select

from tasks.database import begin, bulk_insert
from tasks.mail import MailError, compose, send, send_with_retries
from tasks.models import IngestBatch, Report
from tasks.registry import apply_registry, parse_registry
from tasks.reports import email_daily_report, write_daily_reports
from tasks.settings import Settings, reset_settings
from tasks.storage import open_url

DAY = date(2026, 11, 25)
START = datetime(2026, 11, 25, 6, tzinfo=UTC)  # Chicago midnight
RECIPIENTS = ["regulator@riverton.example", "second@state.example"]
PASSWORD = "correct-h0rse-Battery"

REGISTRY = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago, standards: [EU],
               regulator_emails: [regulator@riverton.example, second@state.example]}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-cond, parameter: conductivity, kind: online, interval_seconds: 3600}
"""


class Inbox:
    """An aiosmtpd handler that keeps every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def authenticate(server, session, envelope, mechanism, auth_data):
    login, password = (
        v.decode() if isinstance(v, bytes) else v for v in (auth_data.login, auth_data.password)
    )
    return AuthResult(success=(login, password) == ("waterline", PASSWORD), handled=False)


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


def use_smtp(monkeypatch, controller, password=PASSWORD) -> None:
    monkeypatch.setenv("WATERLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("WATERLINE_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("WATERLINE_SMTP_SECURITY", "none")
    monkeypatch.setenv("WATERLINE_SMTP_USERNAME", "waterline")
    monkeypatch.setenv("WATERLINE_SMTP_PASSWORD", password)
    monkeypatch.setenv("WATERLINE_SMTP_TIMEOUT_SECONDS", "5")
    reset_settings()


def seed_and_report(values: list[float]) -> int:
    with begin() as conn:
        apply_registry(conn, parse_registry(REGISTRY))
        batch_id = conn.execute(
            insert(IngestBatch).values(
                municipality_id="riverton",
                source="test",
                checksum_sha256="0",
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]
        add_readings(conn, values, batch_id)
    write_daily_reports.fn("riverton", DAY)
    return batch_id


def add_readings(conn, values, batch_id, offset_minutes=0) -> None:
    frame = pl.DataFrame(
        {
            "sensor_id": "riverton-cond",
            "observed_at": [
                START + timedelta(hours=i, minutes=offset_minutes) for i in range(len(values))
            ],
            "value": values,
        }
    ).with_columns(
        pl.col("observed_at").cast(pl.Datetime("us", "UTC")),
        municipality_id=pl.lit("riverton"),
        qc_flag=pl.lit(1),
        batch_id=pl.lit(batch_id),
    )
    bulk_insert(conn, "readings", frame)


def reports():
    with begin() as conn:
        return conn.execute(select(Report).order_by(Report.revision, Report.format)).all()


def pdf_of(rows, revision: int) -> tuple[bytes, str]:
    row = next(r for r in rows if r.format == "pdf" and r.revision == revision)
    with open_url(row.object_url) as handle:
        return handle.read(), row.sha256


def test_report_is_emailed_through_smtp_once_per_revision_with_the_pdf(
    database, smtp_server, monkeypatch
):
    controller, inbox = smtp_server
    use_smtp(monkeypatch, controller)
    batch_id = seed_and_report([2000.0] * 24)

    first = email_daily_report.fn("riverton", DAY)
    again = email_daily_report.fn("riverton", DAY)

    assert first["details"] == {
        "emailed": 1,
        "revision": 1,
        "recipients": 2,
        "via_smtp": 1,
        "smtp_attempts": 1,
    }
    assert again["details"] == {"emailed": 0, "skipped": "already emailed"}
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.rcpt_tos == RECIPIENTS
    message = message_from_bytes(envelope.content, policy=default)
    pdf, sha256 = pdf_of(reports(), 1)
    attachments = [(a.get_filename(), a.get_content()) for a in message.iter_attachments()]
    assert attachments == [("riverton-2026-11-25-r1-summary.pdf", pdf)]
    body = message.get_body(("plain",)).get_content()
    assert sha256 in body and "2026-11-25 (America/Chicago)" in body
    assert message["Subject"] == "Waterline report: Riverton water quality 2026-11-25, revision 1"
    assert all(
        r.emailed_to == RECIPIENTS and r.emailed_at is not None and r.email_url is None
        for r in reports()
    )

    with begin() as conn:  # late data: revision 2 is amended and e-mailed again, once
        add_readings(conn, [2100.0], batch_id, offset_minutes=30)
    write_daily_reports.fn("riverton", DAY)
    email_daily_report.fn("riverton", DAY)
    email_daily_report.fn("riverton", DAY)

    assert len(inbox.envelopes) == 2
    amended = message_from_bytes(inbox.envelopes[1].content, policy=default)
    assert amended["Subject"].endswith("2026-11-25, revision 2, amended")
    assert "Amended: revision 2 supersedes revision 1" in amended.get_body(("plain",)).get_content()


def test_without_smtp_the_message_is_kept_as_an_eml_file(database):
    seed_and_report([2000.0] * 24)

    result = email_daily_report.fn("riverton", DAY)

    assert result["details"]["via_smtp"] == 0
    rows = reports()
    urls = {r.email_url for r in rows}
    assert len(urls) == 1 and urls.pop().endswith("mail/riverton/daily/2026-11-25/r1-summary.eml")
    with open_url(rows[0].email_url) as handle:
        message = message_from_bytes(handle.read(), policy=default)
    assert message["To"] == ", ".join(RECIPIENTS)
    assert [a.get_filename() for a in message.iter_attachments()] == [
        "riverton-2026-11-25-r1-summary.pdf"
    ]
    assert email_daily_report.fn("riverton", DAY)["details"]["skipped"] == "already emailed"


def test_a_refused_login_names_the_server_but_never_the_password(
    database, smtp_server, monkeypatch
):
    controller, inbox = smtp_server
    wrong = "Wr0ng-secret-Pa55word"
    use_smtp(monkeypatch, controller, password=wrong)
    seed_and_report([2000.0] * 24)

    with pytest.raises(MailError) as failure:
        email_daily_report.fn("riverton", DAY)

    text = "".join(traceback.format_exception(failure.value))
    assert f"sending mail through 127.0.0.1:{controller.port} failed" in str(failure.value)
    assert "refused the login" in str(failure.value)
    assert wrong not in text and PASSWORD not in text
    assert inbox.envelopes == []
    assert all(r.emailed_at is None for r in reports())


def test_a_refused_connection_is_transient_and_retried_then_reported_without_secrets():
    port = free_port()  # nothing listens here
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_username="waterline",
        smtp_password=PASSWORD,
        smtp_timeout_seconds=2,
    )
    message = compose(sender="w@localhost", recipients=["r@example.org"], subject="s", body="b")

    with pytest.raises(MailError) as failure:
        send(message, settings)
    assert failure.value.transient
    assert str(failure.value) == (
        f"sending mail through 127.0.0.1:{port} failed: the connection was refused"
    )
    with pytest.raises(MailError) as retried:
        send_with_retries(message, settings, delays=(0, 0))
    assert PASSWORD not in "".join(traceback.format_exception(retried.value))
