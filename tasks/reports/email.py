"""The Prefect task that e-mails the newest PDF of a daily summary to the regulators, once."""

from __future__ import annotations

import logging
from datetime import date

from prefect import task
from sqlalchemy import select, update

from tasks.audit import record_audit
from tasks.compliance.daily import load_municipality
from tasks.database import begin
from tasks.mail import Attachment, compose, send_with_retries, write_eml
from tasks.models import Report, utcnow
from tasks.reports.data import KIND
from tasks.reports.templates import amendment_note, daily_email, daily_layout
from tasks.settings import get_settings
from tasks.stages import run_logger, stage
from tasks.storage import object_store, open_url

ACTOR = "waterline.mail"


def _logger() -> logging.Logger | logging.LoggerAdapter:
    return run_logger("waterline.mail")


def eml_key(municipality_id: str, day: date, revision: int) -> str:
    return f"mail/{municipality_id}/daily/{day.isoformat()}/r{revision}-summary.eml"


def newest_pdf(conn, municipality_id: str, day: date):  # noqa: ANN001, ANN201
    """The newest revision's PDF row of the day's summary, or None."""
    return conn.execute(
        select(Report)
        .where(
            Report.municipality_id == municipality_id,
            Report.kind == KIND,
            Report.period_start == day,
            Report.format == "pdf",
        )
        .order_by(Report.revision.desc())
        .limit(1)
    ).one_or_none()


@task(name="email_daily_report", task_run_name="email-report-{municipality_id}-{day}")
def email_daily_report(municipality_id: str, day: date) -> dict:
    """E-mail the newest PDF revision of one municipality's daily summary to its regulators."""
    with stage("email_daily_report", municipality_id) as result:
        with begin() as conn:
            town = load_municipality(conn, municipality_id)
            report = newest_pdf(conn, municipality_id, day)
        recipients = list(town.regulator_emails or [])
        skipped = (
            "no report"
            if report is None
            else "already emailed"
            if report.emailed_at is not None
            else "no regulator e-mail addresses"
            if not recipients
            else None
        )
        if skipped:
            result.details = {"emailed": 0, "skipped": skipped}
        else:
            result.details = _send(town, report, day)
            result.rows = 1
    _logger().info(
        "e-mail of %s %s: %s",
        municipality_id,
        day,
        f"skipped ({skipped})" if skipped else f"sent revision {report.revision}",
    )
    return result.as_dict()


def _send(town, report, day: date) -> dict:  # noqa: ANN001
    """Send (or keep as .eml) the report's PDF, then mark the revision e-mailed and audit it."""
    municipality_id = town.id
    recipients = list(town.regulator_emails)
    with open_url(report.object_url) as handle:
        pdf = handle.read()
    settings = get_settings()
    layout = daily_layout()
    note = amendment_note(report.revision)
    text = daily_email(
        publisher=layout["publisher"],
        municipality_name=town.name,
        municipality_id=town.id,
        day=day.isoformat(),
        timezone=town.timezone,
        revision=report.revision,
        amended_suffix=", amended" if note else "",
        amended_line=f" ({note})" if note else "",
        filename=f"{municipality_id}-{day.isoformat()}-r{report.revision}-summary.pdf",
        sha256=report.sha256,
        content_sha256=report.content_sha256,
    )
    message = compose(
        sender=settings.mail_from,
        recipients=recipients,
        subject=text.subject,
        body=text.body,
        attachments=[
            Attachment(
                f"{municipality_id}-{day.isoformat()}-r{report.revision}-summary.pdf",
                pdf,
                "application",
                "pdf",
            )
        ],
        headers={"X-Waterline-Report-Sha256": report.sha256},
    )
    if settings.smtp_host:
        attempts = send_with_retries(message, settings)
        via, email_url = "smtp", None
    else:
        attempts = 0
        stored = write_eml(object_store(), eml_key(municipality_id, day, report.revision), message)
        via, email_url = "eml", stored.url

    with begin() as conn:
        marked = conn.execute(
            update(Report)
            .where(
                Report.municipality_id == municipality_id,
                Report.kind == KIND,
                Report.period_start == day,
                Report.revision == report.revision,
                Report.emailed_at.is_(None),
            )
            .values(emailed_to=recipients, emailed_at=utcnow(), email_url=email_url)
        ).rowcount
        record_audit(
            conn,
            municipality_id=municipality_id,
            actor=ACTOR,
            action="report.emailed",
            entity_type="report",
            entity_id=report.id,
            details={
                "day": day.isoformat(),
                "revision": report.revision,
                "via": via,
                "recipients": recipients,
                "message_id": message["Message-ID"],
                "sha256": report.sha256,
                "email_url": email_url,
                "rows_marked": marked,
            },
        )
    return {
        "emailed": 1,
        "revision": report.revision,
        "recipients": len(recipients),
        "via_smtp": int(via == "smtp"),
        "smtp_attempts": attempts,
    }
