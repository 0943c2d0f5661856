"""The monthly compliance report end to end: a month of readings in the database, aggregated as
the nightly flow leaves them, judged by the regulators' rules, written in four formats to object
storage (a folder, and a real S3-protocol server), amended by late data, e-mailed through a real
SMTP server once per revision."""

from __future__ import annotations

import hashlib
import io
import json
import socket
from datetime import date, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from zoneinfo import ZoneInfo

import polars as pl
import pypdf
import pytest
from aiosmtpd.controller import Controller
from monthly_content import monthly_content, monthly_meta, sheet_strings, xlsx_parts
from sqlalchemy import insert, select

from tasks.analytics.aggregates import compute_aggregates
from tasks.compliance.monthly import month_bounds
from tasks.database import begin, bulk_insert
from tasks.models import ActionPlan, AuditLog, ComplianceResult, IngestBatch, Insight, Report, WebhookEvent
from tasks.registry import apply_registry, parse_registry
from tasks.reports.monthly import (
    amendment_changes,
    content_from_json,
    email_monthly_report,
    months_due,
    report_key,
    write_monthly_report,
)
from tasks.reports.monthly_email import monthly_email
from tasks.reports.monthly_render import render_monthly_json
from tasks.settings import reset_settings
from tasks.storage import object_store, open_url

MONTH = date(2026, 10, 1)
ZONE = "America/Chicago"
RECIPIENTS = ["regulator@riverton.example"]
REGISTRY = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago, standards: [WHO, EPA, EU],
               regulator_emails: [regulator@riverton.example]}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-ph, parameter: ph, kind: online, interval_seconds: 3600}
      - {id: riverton-turb, parameter: turbidity, kind: online, interval_seconds: 900}
      - {id: riverton-lead, parameter: lead, kind: lab}
"""
OTHER = """
municipality: {id: hillside, name: Hillside, timezone: Europe/Berlin, standards: [EU],
               regulator_emails: [other@hillside.example]}
stations:
  - id: hillside-plant
    name: Hillside Plant
    sensors:
      - {id: hillside-turb, parameter: turbidity, kind: online, interval_seconds: 900}
"""
# Ten lead samples: the 90th percentile (nearest rank, the 9th smallest) is 20 ug/L, above the
# EPA action level of 15; the highest, 25, is above the EU parametric value of 10.
LEAD = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 20.0, 25.0]
HIGH_TURBIDITY_HOURS = 48  # of 744: 6.5 % of the month's readings at 0.5 NTU, above 0.3


def readings(start: datetime, end: datetime, every: timedelta, value) -> pl.DataFrame:  # noqa: ANN001
    times = pl.datetime_range(start, end - every, every, time_zone="UTC", eager=True)
    return pl.DataFrame({"observed_at": times}).with_columns(value=value)


def store_readings(conn, municipality_id: str, name: str, rows: pl.DataFrame) -> None:  # noqa: ANN001
    """`sensor_id`, `observed_at`, `value` rows loaded in a batch of their own, QC good."""
    batch = conn.execute(
        insert(IngestBatch).values(
            municipality_id=municipality_id,
            source=f"test://{name}",
            checksum_sha256=name,
            file_format="csv",
            status="loaded",
        )
    ).inserted_primary_key[0]
    loaded = rows.with_columns(
        qc_flag=pl.lit(1), municipality_id=pl.lit(municipality_id), batch_id=pl.lit(batch)
    )
    bulk_insert(conn, "readings", loaded, conflict_columns=["sensor_id", "observed_at"])


def seed_month(municipality_id: str = "riverton", registry: str = REGISTRY) -> None:
    start, end = month_bounds(MONTH, ZONE)
    high_from = start + timedelta(days=9)
    with begin() as conn:
        apply_registry(conn, parse_registry(registry))
        turbidity = readings(start, end, timedelta(minutes=15), pl.lit(0.1)).with_columns(
            value=pl.when(
                (pl.col("observed_at") >= high_from)
                & (pl.col("observed_at") < high_from + timedelta(hours=HIGH_TURBIDITY_HOURS))
            )
            .then(0.5)
            .otherwise(pl.col("value")),
            sensor_id=pl.lit(f"{municipality_id}-turb"),
        )
        frames = [turbidity]
        if municipality_id == "riverton":
            frames.append(
                readings(start, end, timedelta(hours=1), pl.lit(7.3)).with_columns(
                    sensor_id=pl.lit("riverton-ph")
                )
            )
            frames.append(
                pl.DataFrame(
                    {
                        "sensor_id": "riverton-lead",
                        "observed_at": [
                            start + timedelta(days=2 + 2 * k, hours=15) for k in range(len(LEAD))
                        ],
                        "value": LEAD,
                    }
                )
            )
        rows = pl.concat(frames, how="diagonal_relaxed").select("sensor_id", "observed_at", "value")
        store_readings(conn, municipality_id, f"month-{municipality_id}", rows)
    for day in range(31):
        compute_aggregates.fn(municipality_id, MONTH + timedelta(days=day))


def add_late_turbidity() -> None:
    """Late readings of 20 October: turbidity at 1.6 NTU between the regular 15-minute readings,
    loaded and aggregated as the nightly flow would."""
    start, _ = month_bounds(MONTH, ZONE)
    late_at = start + timedelta(days=19, hours=10, minutes=7)
    with begin() as conn:
        late = pl.DataFrame(
            {
                "sensor_id": "riverton-turb",
                "observed_at": [late_at, late_at + timedelta(minutes=1)],
                "value": 1.6,
            }
        )
        store_readings(conn, "riverton", "late", late)
    compute_aggregates.fn("riverton", date(2026, 10, 20))


def read(url: str) -> bytes:
    with open_url(url) as handle:
        return handle.read()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def add_insights(*rows: tuple[str, str, str, date, date, str]) -> None:
    """Stored insights as the nightly flow leaves them: (municipality, sensor, kind, first local
    day, the day after the last, sentence)."""
    with begin() as conn:
        conn.execute(
            insert(Insight),
            [
                {
                    "municipality_id": municipality_id,
                    "sensor_id": sensor_id,
                    "kind": kind,
                    "period_start": start,
                    "period_end": after,
                    "change_pct": 12.5,
                    "is_significant": True,
                    "sentence": sentence,
                }
                for municipality_id, sensor_id, kind, start, after, sentence in rows
            ],
        )


def words(text: str) -> str:
    """Text with every run of whitespace made one space (a wrapped PDF line reads as one)."""
    return " ".join(text.split())


def report_rows(municipality_id: str = "riverton") -> list:
    with begin() as conn:
        return conn.execute(
            select(Report)
            .where(Report.municipality_id == municipality_id, Report.kind == "monthly_compliance")
            .order_by(Report.revision, Report.format)
        ).all()


def test_the_month_is_judged_by_the_regulators_rules_and_written_in_four_formats(database):
    seed_month()
    first = write_monthly_report.fn("riverton", MONTH)
    assert first["details"]["revision"] == 1 and first["details"]["files_written"] == 4

    with begin() as conn:
        results = conn.execute(
            select(ComplianceResult).where(
                ComplianceResult.municipality_id == "riverton", ComplianceResult.period_kind == "month"
            )
        ).all()
        plans = conn.execute(select(ActionPlan).where(ActionPlan.municipality_id == "riverton")).all()
        events = conn.execute(select(WebhookEvent).where(WebhookEvent.event_type == "report.published")).all()
    by_rule = {(r.standard, r.parameter, r.rule_code, r.statistic): r for r in results}
    lead_p90 = by_rule[("EPA", "lead", "p90_round", "p90")]
    assert lead_p90.status == "NON_COMPLIANT" and lead_p90.statistic_value == 20.0
    assert lead_p90.limit_value == 15.0 and lead_p90.sample_count == 10
    eu_lead = next(r for k, r in by_rule.items() if k[:2] == ("EU", "lead"))
    assert eu_lead.status == "NON_COMPLIANT" and eu_lead.statistic_value == 25.0
    share = by_rule[("EPA", "turbidity", "turbidity_tt", "share_le_limit")]
    expected_share = 100 * (1 - HIGH_TURBIDITY_HOURS * 4 / (744 * 4))
    assert share.status == "NON_COMPLIANT" and share.statistic_value == pytest.approx(
        expected_share, abs=0.01
    )
    ph = [r for k, r in by_rule.items() if k[1] == "ph"]
    assert ph and all(r.status == "COMPLIANT" for r in ph)
    # pH was read through its hourly aggregates: its counts are still the month's readings
    assert {r.sample_count for r in ph} == {744}
    assert {p.parameter for p in plans} >= {"lead", "turbidity"}
    assert (
        len(events) == 1
        and events[0].payload["data"]["revision"] == 1
        and not events[0].payload["data"]["is_amended"]
    )

    rows = report_rows()
    assert [(r.revision, r.format) for r in rows] == [(1, "csv"), (1, "json"), (1, "pdf"), (1, "xlsx")]
    for row in rows:
        data = read(row.object_url)
        assert row.object_url == object_store().url(report_key("riverton", MONTH, 1, row.format))
        assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.size_bytes
    files = {r.format: read(r.object_url) for r in rows}
    text = pdf_text(files["pdf"])
    for words in ("Riverton", "October 2026", "40 CFR 141", "2020/2184", "Non-compliant", "15", "20"):
        assert words in text, words
    assert "AMENDED" not in text
    csv = pl.read_csv(files["csv"])
    assert csv.height == len(results) and set(csv["municipality_id"]) == {"riverton"}
    document = json.loads(files["json"])
    assert document["report"]["revision"] == 1 and document["municipality"]["id"] == "riverton"
    assert files["xlsx"][:2] == b"PK"


def test_a_rerun_writes_nothing_and_late_data_amends_the_report(database):
    seed_month()
    write_monthly_report.fn("riverton", MONTH)
    again = write_monthly_report.fn("riverton", MONTH)
    assert again["details"]["revision"] == 1 and again["details"]["files_written"] == 0
    assert len(report_rows()) == 4
    with begin() as conn:
        assert months_due(conn, "riverton", ZONE, date(2026, 11, 4)) == []

    add_late_turbidity()
    with begin() as conn:
        assert months_due(conn, "riverton", ZONE, date(2026, 11, 4)) == [MONTH]

    amended = write_monthly_report.fn("riverton", MONTH)
    assert amended["details"]["revision"] == 2 and amended["details"]["is_amended"] == 1
    rows = [r for r in report_rows() if r.revision == 2]
    assert len(rows) == 4 and all(r.is_amended for r in rows)
    pdf = pdf_text(read(next(r for r in rows if r.format == "pdf").object_url))
    assert "AMENDED" in pdf and "1.6" in pdf
    with begin() as conn:
        events = conn.execute(
            select(WebhookEvent)
            .where(WebhookEvent.event_type == "report.published")
            .order_by(WebhookEvent.created_at)
        ).all()
        audit = conn.execute(select(AuditLog.action).where(AuditLog.action == "report.published")).all()
    assert [e.payload["data"]["revision"] for e in events] == [1, 2] and events[1].payload["data"][
        "is_amended"
    ]
    changes = events[1].payload["data"]["changes"]
    assert any("turbidity" in c and "1.6" in c for c in changes), changes
    assert len(audit) == 2


def test_reports_never_mix_municipalities(database):
    seed_month()
    seed_month("hillside", OTHER)
    write_monthly_report.fn("riverton", MONTH)
    write_monthly_report.fn("hillside", MONTH)
    hillside = {r.format: read(r.object_url) for r in report_rows("hillside")}
    document = json.loads(hillside["json"])
    assert {r["sensor_id"] for r in document["coverage"]} == {"hillside-turb"}
    assert {r["standard"] for r in document["results"]} == {"EU"}
    assert "riverton" not in hillside["json"].decode() and "Riverton" not in pdf_text(hillside["pdf"])
    assert all("/hillside/" in r.object_url for r in report_rows("hillside"))


FIRST_WEEK = "Turbidity at Riverton Plant rose 38 % week on week; the trend is significant, R² 0.81"
NOT_OCTOBER = [
    # the week of 26 October to 1 November ends in November; September's month ends before October
    "pH at Riverton Plant fell 11 % week on week; the trend is not significant, R² 0.2",
    "pH at Riverton Plant rose 10 % month on month; the trend is significant, R² 0.5",
]


def lead_week_changes() -> list[float]:
    """Week-on-week change in % of the lab lead means: a sample every other day from 3 October, so
    1, 4, 3 and 2 samples in the weeks from Monday 28 September, 5, 12 and 19 October."""
    weeks = [LEAD[:1], LEAD[1:5], LEAD[5:8], LEAD[8:]]
    means = [sum(week) / len(week) for week in weeks]
    return [(later / earlier - 1) * 100 for earlier, later in zip(means, means[1:], strict=False)]


def stored_sentences(municipality_id: str) -> set[str]:
    with begin() as conn:
        rows = conn.execute(select(Insight.sentence).where(Insight.municipality_id == municipality_id))
        return {row.sentence for row in rows}


def test_the_report_lists_its_months_insights_recomputed_from_the_aggregates_and_its_own_only(database):
    seed_month()
    seed_month("hillside", OTHER)
    add_insights(
        # stored by earlier runs for a week and a month outside October: kept, not listed
        ("riverton", "riverton-ph", "week_on_week", date(2026, 10, 26), date(2026, 11, 2), NOT_OCTOBER[0]),
        ("riverton", "riverton-ph", "month_on_month", date(2026, 9, 1), MONTH, NOT_OCTOBER[1]),
        # stored for a week ending in October, which the figures no longer give: withdrawn
        ("riverton", "riverton-turb", "week_on_week", date(2026, 9, 28), date(2026, 10, 5), FIRST_WEEK),
    )

    write_monthly_report.fn("riverton", MONTH)
    write_monthly_report.fn("hillside", MONTH)

    files = {r.format: read(r.object_url) for r in report_rows()}
    insights = json.loads(files["json"])["insights"]
    lead = [i for i in insights if i["sensor_id"] == "riverton-lead"]
    assert [(i["kind"], i["period_start"], i["period_last_day"]) for i in lead] == [
        ("week_on_week", "2026-10-05", "2026-10-11"),
        ("week_on_week", "2026-10-12", "2026-10-18"),
        ("week_on_week", "2026-10-19", "2026-10-25"),
    ]
    assert [i["change_pct"] for i in lead] == pytest.approx(lead_week_changes())
    assert lead[0]["sentence"] == (
        "Lead at Riverton Plant rose 125 % week on week; the trend is significant, R² 1.0"
    )
    assert {i["sensor_id"] for i in insights} <= {"riverton-lead", "riverton-turb", "riverton-ph"}
    text = words(pdf_text(files["pdf"]))
    sheet = sheet_strings(xlsx_parts(files["xlsx"]), "Insights")
    for insight in insights:
        assert f"{insight['period_start']} to {insight['period_last_day']} {insight['sentence']}." in text
        assert insight["sentence"] in sheet
    for other in (*NOT_OCTOBER, FIRST_WEEK):
        assert other not in text and other not in files["json"].decode() and other not in sheet
    assert FIRST_WEEK not in stored_sentences("riverton")
    assert set(NOT_OCTOBER) <= stored_sentences("riverton")

    hillside = {r.format: read(r.object_url) for r in report_rows("hillside")}
    theirs = json.loads(hillside["json"])["insights"]
    assert theirs and all(i["sensor_id"] == "hillside-turb" for i in theirs)
    assert "Riverton" not in words(pdf_text(hillside["pdf"]))


def test_a_rerun_writes_nothing_and_late_data_that_changes_an_insight_amends_the_report(database):
    seed_month()
    write_monthly_report.fn("riverton", MONTH)
    again = write_monthly_report.fn("riverton", MONTH)
    assert again["details"]["revision"] == 1 and again["details"]["files_written"] == 0

    start, _ = month_bounds(MONTH, ZONE)
    with begin() as conn:  # a late lab sample of 20 October: the week of the 19th now averages 35
        at = start + timedelta(days=19, hours=9)
        late = pl.DataFrame({"sensor_id": ["riverton-lead"], "observed_at": [at], "value": 60.0})
        store_readings(conn, "riverton", "late-lead", late)
    for day in range(19, 25):
        compute_aggregates.fn("riverton", MONTH + timedelta(days=day))
    amended = write_monthly_report.fn("riverton", MONTH)

    assert amended["details"]["revision"] == 2 and amended["details"]["files_written"] == 4
    document = json.loads(
        read(next(r.object_url for r in report_rows() if (r.revision, r.format) == (2, "json")))
    )
    last_week = (20.0 + 25.0 + 60.0) / 3 / ((7.0 + 8.0 + 9.0) / 3) * 100 - 100
    [reworded] = [c for c in document["report"]["amendment"]["changes"] if c.startswith("Insight reworded")]
    before, after = reworded.removeprefix("Insight reworded: ").split(" -> ")
    assert before == "Lead at Riverton Plant rose 181 % week on week; the trend is significant, R² 0.86"
    assert after.startswith(f"Lead at Riverton Plant rose {last_week:.0f} % week on week")
    lead = [i for i in document["insights"] if i["sensor_id"] == "riverton-lead"]
    assert lead[-1]["change_pct"] == pytest.approx(last_week)


def test_amendments_name_the_insights_added_withdrawn_or_reworded():
    def data(*insights: tuple[str, str]) -> dict:
        rows = [
            {"sensor_id": s, "kind": "week_on_week", "period_start": "2026-10-05", "sentence": t}
            for s, t in insights
        ]
        return {"results": [], "coverage": [], "exceedances": [], "plans": [], "insights": rows}

    before = data(("a", "pH rose 10 %"), ("b", "Turbidity fell 20 %"))
    after = data(("a", "pH rose 11 %"), ("c", "Lead rose 30 %"))

    assert amendment_changes(before, after) == [
        "Insight reworded: pH rose 10 % -> pH rose 11 %.",
        "Insight no longer listed: Turbidity fell 20 %.",
        "New insight: Lead rose 30 %.",
    ]
    assert amendment_changes(after, after) == []
    older = {k: v for k, v in before.items() if k != "insights"}  # a revision from before insights
    assert amendment_changes(older, after) == ["New insight: pH rose 11 %.", "New insight: Lead rose 30 %."]


def test_a_stored_revision_from_before_insights_reads_back_with_none():
    stored = json.loads(render_monthly_json(monthly_content(), monthly_meta()))
    del stored["insights"]

    content, meta = content_from_json(stored)

    assert content["insights"].is_empty()
    _, text, _ = monthly_email(content, meta, {})
    assert "Insights on how the readings changed: none this month." in text


class Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001, ANN201
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp(monkeypatch):
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("WATERLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("WATERLINE_SMTP_PORT", str(port))
    monkeypatch.setenv("WATERLINE_SMTP_SECURITY", "none")
    reset_settings()
    yield inbox
    controller.stop()


def test_each_revision_is_emailed_once_with_pdf_and_xlsx_and_resent_on_purpose(database, smtp):
    seed_month()
    write_monthly_report.fn("riverton", MONTH)
    sent = email_monthly_report.fn("riverton", MONTH)
    assert sent["details"]["emailed"] == 1 and sent["details"]["via_smtp"] == 1
    assert email_monthly_report.fn("riverton", MONTH)["details"] == {
        "emailed": 0,
        "skipped": "already emailed",
    }
    assert len(smtp.envelopes) == 1
    message = message_from_bytes(smtp.envelopes[0].content, policy=default)
    assert message["To"] == ", ".join(RECIPIENTS) and "October 2026" in message["Subject"]
    assert "AMENDED" not in message["Subject"]
    names = sorted(part.get_filename() for part in message.iter_attachments())
    assert names == [
        "riverton-2026-10-r1-compliance-report.pdf",
        "riverton-2026-10-r1-compliance-report.xlsx",
    ]
    body = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Riverton" in body and "<" in html and "lead" in body
    pdf = next(p for p in message.iter_attachments() if p.get_filename().endswith(".pdf")).get_content()
    assert pdf == read(next(r for r in report_rows() if r.format == "pdf").object_url)

    resent = email_monthly_report.fn("riverton", MONTH, resend=True)
    assert resent["details"]["emailed"] == 1 and len(smtp.envelopes) == 2

    add_late_turbidity()
    write_monthly_report.fn("riverton", MONTH)
    amended = email_monthly_report.fn("riverton", MONTH)
    assert amended["details"]["revision"] == 2 and len(smtp.envelopes) == 3
    message = message_from_bytes(smtp.envelopes[2].content, policy=default)
    assert "AMENDED" in message["Subject"]
    assert "r2-compliance-report.pdf" in [p.get_filename() for p in message.iter_attachments()][0]
    assert "turbidity" in message.get_body(("plain",)).get_content()
    with begin() as conn:
        actions = [
            a for (a,) in conn.execute(select(AuditLog.action).where(AuditLog.entity_type == "report"))
        ]
    assert actions.count("report.emailed") == 2 and actions.count("report.resent") == 1  # r1, r2; r1 again


def test_reports_go_to_a_real_s3_server(database, monkeypatch, s3_server):
    monkeypatch.setenv("WATERLINE_OBJECT_STORE_URL", "s3://waterline/objects")
    monkeypatch.setenv("WATERLINE_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("WATERLINE_S3_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("WATERLINE_S3_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("WATERLINE_S3_REGION", "us-east-1")
    reset_settings()
    seed_month()
    write_monthly_report.fn("riverton", MONTH)
    rows = report_rows()
    assert {r.object_url for r in rows} == {
        f"s3://waterline/objects/reports/riverton/monthly_compliance/2026-10/r1/compliance-report.{f}"
        for f in ("csv", "json", "pdf", "xlsx")
    }
    for row in rows:
        assert hashlib.sha256(read(row.object_url)).hexdigest() == row.sha256
    assert "Riverton" in pdf_text(read(next(r for r in rows if r.format == "pdf").object_url))


def test_the_monthly_flow_writes_and_sends_each_report_once(database, prefect_server):
    from flows.monthly_compliance import monthly_compliance

    seed_month()
    summary = monthly_compliance(month="2026-10")
    stages = summary["stages"]
    assert (
        stages["monthly_reports 2026-10"]["items"] == 1 and stages["monthly_reports 2026-10"]["failed"] == 0
    )
    assert stages["monthly_emails 2026-10"]["totals"]["emailed"] == 1
    rows = report_rows()
    assert len(rows) == 4 and all(r.emailed_to == RECIPIENTS for r in rows)
    assert rows[0].email_url.endswith("r1-compliance-report.eml")  # no SMTP host: kept as .eml

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = ["monthly-riverton-pdf", "monthly-riverton-summary"]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    by_key = {a.key: a for a in artifacts}
    assert by_key["monthly-riverton-pdf"].type == "markdown"  # Prefect stores a link artifact as markdown
    assert "r1/compliance-report.pdf" in by_key["monthly-riverton-pdf"].data
    assert (
        "Non-compliant" in by_key["monthly-riverton-summary"].data
        or "NON_COMPLIANT" in by_key["monthly-riverton-summary"].data
    )

    again = monthly_compliance(month="2026-10")["stages"]
    assert again["monthly_reports 2026-10"]["totals"]["files_written"] == 0
    assert again["monthly_emails 2026-10"]["totals"]["emailed"] == 0
    assert len(report_rows()) == 4


def test_prefect_yaml_schedules_the_monthly_flow():
    from tasks.deployments import deployments_from_yaml

    deployments = {d.name: d for d in deployments_from_yaml()}
    monthly = deployments["monthly-compliance"]
    assert monthly.entrypoint.endswith("monthly_compliance.py:monthly_compliance")
    assert [s.schedule.cron for s in monthly.schedules] == ["0 5 * * *"]


NITRATE_LAB = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago, standards: [EPA],
               regulator_emails: [regulator@riverton.example]}
stations:
  - id: riverton-well
    name: Riverton Well
    sensors:
      - {id: riverton-nitrate, parameter: nitrate, kind: lab}
"""


def add_nitrate(*samples: tuple[datetime, float]) -> None:
    """Lab nitrate samples (mg/L as NO3), loaded and aggregated as the nightly flow would."""
    times, values = zip(*samples, strict=True)
    frame = pl.DataFrame({"sensor_id": "riverton-nitrate", "observed_at": list(times), "value": list(values)})
    with begin() as conn:
        store_readings(conn, "riverton", f"lab-{times[0].isoformat()}", frame)
    for day in sorted({t.astimezone(ZoneInfo(ZONE)).date() for t, _ in samples}):
        compute_aggregates.fn("riverton", day)


def nitrate_result() -> dict:
    with begin() as conn:
        row = conn.execute(
            select(ComplianceResult).where(
                ComplianceResult.rule_code == "confirmation_average", ComplianceResult.period_kind == "month"
            )
        ).one()
    return {"status": row.status, "statistic_value": row.statistic_value, "sample_count": row.sample_count}


def test_a_confirmation_sample_of_the_day_after_the_month_amends_its_report(database):
    _, end = month_bounds(MONTH, ZONE)
    last = end - timedelta(hours=4)  # 31 October, 20:00 in Riverton
    with begin() as conn:
        apply_registry(conn, parse_registry(NITRATE_LAB))
    add_nitrate((last, 60.0))  # above the MCL of 44.27 mg/L as NO3 (10 as N)
    write_monthly_report.fn("riverton", MONTH)
    assert nitrate_result() == {"status": "NON_COMPLIANT", "statistic_value": 60.0, "sample_count": 1}

    add_nitrate((last + timedelta(hours=12), 10.0))  # its confirmation, 1 November
    add_nitrate((last + timedelta(days=3), 90.0))  # November's own sample, no confirmation
    with begin() as conn:
        assert months_due(conn, "riverton", ZONE, date(2026, 11, 4)) == [MONTH]
    amended = write_monthly_report.fn("riverton", MONTH)

    assert amended["details"]["revision"] == 2 and amended["details"]["is_amended"] == 1
    assert nitrate_result() == {"status": "COMPLIANT", "statistic_value": 35.0, "sample_count": 1}
    with begin() as conn:
        assert months_due(conn, "riverton", ZONE, date(2026, 11, 4)) == []


def test_a_month_judged_again_without_change_is_no_longer_due(database):
    _, end = month_bounds(MONTH, ZONE)
    last = end - timedelta(hours=4)
    with begin() as conn:
        apply_registry(conn, parse_registry(NITRATE_LAB))
    add_nitrate((last, 20.0))
    write_monthly_report.fn("riverton", MONTH)
    add_nitrate((last + timedelta(hours=12), 15.0))  # new lab data of the day after, confirming nothing
    with begin() as conn:
        assert months_due(conn, "riverton", ZONE, date(2026, 11, 4)) == [MONTH]

    again = write_monthly_report.fn("riverton", MONTH)

    assert again["details"]["revision"] == 1 and again["details"]["files_written"] == 0
    with begin() as conn:
        assert months_due(conn, "riverton", ZONE, date(2026, 11, 4)) == []
        [entry] = conn.execute(
            select(AuditLog.entity_id, AuditLog.details).where(AuditLog.action == "report.rechecked")
        ).all()
    assert entry.entity_id == "riverton:monthly_compliance:2026-10" and entry.details["revision"] == 1
