import base64
import hashlib
import io
import json
import re
import zipfile
import zlib
from datetime import UTC, date, datetime, timedelta

import polars as pl
from pypdf import PdfReader
from sqlalchemy import insert, select

from tasks.compliance import judge_compliance
from tasks.database import begin, bulk_insert
from tasks.models import (
    Anomaly,
    Incident,
    IngestBatch,
    Insight,
    MaintenancePrediction,
    Report,
    WebhookEvent,
)
from tasks.registry import apply_registry, parse_registry
from tasks.reports import write_daily_reports
from tasks.storage import object_store, open_url

DAY = date(2026, 11, 25)
START = datetime(2026, 11, 25, 6, tzinfo=UTC)  # Chicago midnight

REGISTRY = """
municipality: {{id: {m}, name: {name}, timezone: America/Chicago, standards: [EU, WHO],
               regulator_emails: [regulator@{m}.example]}}
stations:
  - id: {m}-plant
    name: {name} Plant
    sensors:
      - {{id: {m}-ph, parameter: ph, kind: online, interval_seconds: 3600}}
      - {{id: {m}-cond, parameter: conductivity, kind: online, interval_seconds: 3600}}
"""


def seed(municipality_id: str, conductivity: list[float]) -> int:
    """A municipality with hourly pH and conductivity readings over its local day."""
    name = municipality_id.title()
    with begin() as conn:
        apply_registry(conn, parse_registry(REGISTRY.format(m=municipality_id, name=name)))
        batch_id = conn.execute(
            insert(IngestBatch).values(
                municipality_id=municipality_id,
                source="test",
                checksum_sha256=municipality_id,
                file_format="csv",
                status="loaded",
                rows_total=50,
                rows_loaded=48,
                rows_quarantined=2,
                started_at=START + timedelta(hours=2),
            )
        ).inserted_primary_key[0]
        add_readings(conn, municipality_id, f"{municipality_id}-cond", conductivity, batch_id)
        add_readings(conn, municipality_id, f"{municipality_id}-ph", [7.4] * 24, batch_id)
    return batch_id


def add_readings(conn, municipality_id, sensor_id, values, batch_id, offset_minutes=0) -> None:
    frame = pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [
                START + timedelta(hours=i, minutes=offset_minutes) for i in range(len(values))
            ],
            "value": values,
        }
    ).with_columns(
        pl.col("observed_at").cast(pl.Datetime("us", "UTC")),
        municipality_id=pl.lit(municipality_id),
        qc_flag=pl.lit(1),
        batch_id=pl.lit(batch_id),
    )
    bulk_insert(conn, "readings", frame)


def report_rows():
    with begin() as conn:
        return conn.execute(
            select(
                Report.format,
                Report.revision,
                Report.is_amended,
                Report.object_url,
                Report.sha256,
                Report.size_bytes,
                Report.content_sha256,
            ).order_by(Report.revision, Report.format)
        ).all()


def read(url: str) -> bytes:
    with open_url(url) as handle:
        return handle.read()


def pdf_text(data: bytes) -> str:
    """The text of every content stream of a reportlab PDF (ASCII85 and Flate encoded)."""
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S):
        raw = base64.a85decode(re.sub(rb"\s", b"", stream).removesuffix(b"~>"))
        chunks.append(zlib.decompress(raw).decode("latin-1"))
    return "".join(chunks)


def test_daily_summary_is_written_in_four_formats_that_open(database):
    seed("riverton", [2000.0] * 23 + [2600.0])
    with begin() as conn:
        conn.execute(
            insert(Incident).values(
                municipality_id="riverton",
                station_id="riverton-plant",
                sensor_id="riverton-cond",
                kind="limit_breach",
                severity="HIGH",
                summary="Conductivity above 2500 uS/cm",
                first_observed_at=START,
                last_observed_at=START,
                opened_at=START + timedelta(hours=23),
            )
        )
        conn.execute(
            insert(Anomaly).values(
                municipality_id="riverton",
                station_id="riverton-plant",
                sensor_id="riverton-cond",
                observed_at=START + timedelta(hours=23),
                method="limit_breach",
                value=2600.0,
                score=4.0,
                severity="HIGH",
                window="1h",
                explanation="above the limit",
            )
        )
        conn.execute(
            insert(MaintenancePrediction).values(
                municipality_id="riverton",
                sensor_id="riverton-ph",
                day=DAY,
                health_score=0.4,
                risk_level="HIGH",
                factors={},
                recommendation="Calibrate the pH probe",
            )
        )
    judge_compliance.fn("riverton", DAY)

    result = write_daily_reports.fn("riverton", DAY)

    assert (result["rows"], result["details"]) == (
        4,
        {"revision": 1, "files_written": 4, "is_amended": 0},
    )
    rows = report_rows()
    assert [(r.format, r.revision, r.is_amended) for r in rows] == [
        ("csv", 1, False),
        ("json", 1, False),
        ("pdf", 1, False),
        ("xlsx", 1, False),
    ]
    assert len({r.content_sha256 for r in rows}) == 1
    assert all(
        r.object_url.endswith(f"reports/riverton/daily/2026-11-25/r1/summary.{r.format}")
        for r in rows
    )
    files = {r.format: read(r.object_url) for r in rows}
    assert {f: hashlib.sha256(b).hexdigest() for f, b in files.items()} == {
        r.format: r.sha256 for r in rows
    }

    report = json.loads(files["json"])
    assert report["report"]["revision"] == 1 and report["report"]["amendment"] is None
    assert report["figures"] | {"coverage_pct": None} == {
        "readings_observed": 48,
        "readings_excluded": 0,
        "sensors_listed": 2,
        "sensors_reporting": 2,
        "coverage_pct": None,
        "batches_received": 1,
        "batches_failed": 0,
        "rows_received": 50,
        "rows_loaded": 48,
        "rows_quarantined": 2,
        "incidents_opened": 1,
        "incidents_open_at_end": 1,
        "anomalies_total": 1,
        "compliance_compliant": 2,
        "compliance_insufficient_data": 0,
        "compliance_warning": 1,  # EU conductivity above its indicator value: an investigation
        "compliance_non_compliant": 0,
        "maintenance_high_risk": 1,
    }
    assert report["figures"]["coverage_pct"] == 100.0
    eu_conductivity = [
        c
        for c in report["compliance"]
        if c["standard"] == "EU" and c["parameter"] == "conductivity"
    ][0]
    assert eu_conductivity["status"] == "WARNING"
    assert eu_conductivity["rule"].endswith("triggers an investigation, not a violation")
    assert eu_conductivity["citation"].startswith("Directive (EU) 2020/2184, Annex I Part C")
    assert report["chart"]["parameter"] == "conductivity" and report["chart"]["limit"] == 2500.0
    assert len(report["chart"]["points"]) == 24

    assert "# Quality control (QARTOD) excluded none of the 48 readings of this day.\n" in files[
        "csv"
    ].decode()
    table = pl.read_csv(io.BytesIO(files["csv"]), comment_prefix="#")
    assert table.select("parameter", "count_readings", "value_max", "compliance_status").rows() == [
        ("conductivity", 24, 2600.0, "WARNING"),
        ("ph", 24, 7.4, "COMPLIANT"),
    ]

    with zipfile.ZipFile(io.BytesIO(files["xlsx"])) as workbook:
        sheets = re.findall(r'<sheet name="([^"]+)"', workbook.read("xl/workbook.xml").decode())
        sensors_sheet = workbook.read("xl/worksheets/sheet3.xml").decode()
    assert sheets == [
        "Summary",
        "Parameters",
        "Sensors",
        "Compliance",
        "Incidents",
        "Anomalies",
        "Maintenance",
        "Insights",
        "Hourly",
    ]
    assert 'state="frozen"' in sensors_sheet and "<v>24</v>" in sensors_sheet  # numbers as numbers

    assert files["pdf"].startswith(b"%PDF")
    text = pdf_text(files["pdf"])
    assert "Daily water-quality summary" in text and "Revision 1" in text

    with begin() as conn:
        events = conn.execute(select(WebhookEvent.dedupe_key, WebhookEvent.payload)).all()
    published = [p for k, p in events if k.startswith("report.published")]
    assert len(published) == 1
    assert published[0]["data"]["files"]["pdf"]["sha256"] == files_sha(rows, "pdf")


def files_sha(rows, fmt: str) -> str:
    return next(r.sha256 for r in rows if r.format == fmt)


def test_rerun_with_the_same_data_writes_nothing(database):
    seed("riverton", [2000.0] * 24)
    judge_compliance.fn("riverton", DAY)
    write_daily_reports.fn("riverton", DAY)
    keys = object_store().list("reports")

    again = write_daily_reports.fn("riverton", DAY)

    assert (again["rows"], again["details"]["files_written"], again["details"]["revision"]) == (
        0,
        0,
        1,
    )
    assert len(report_rows()) == 4
    assert object_store().list("reports") == keys
    with begin() as conn:
        assert len(conn.execute(select(WebhookEvent.id)).all()) == 1


def test_late_data_writes_revision_2_marked_amended_in_every_format(database):
    batch_id = seed("riverton", [2000.0] * 24)
    judge_compliance.fn("riverton", DAY)
    write_daily_reports.fn("riverton", DAY)
    with begin() as conn:  # a late reading changes the day
        add_readings(conn, "riverton", "riverton-cond", [2450.0], batch_id, offset_minutes=30)
    judge_compliance.fn("riverton", DAY)

    result = write_daily_reports.fn("riverton", DAY)

    assert result["details"] == {"revision": 2, "files_written": 4, "is_amended": 1}
    rows = report_rows()
    assert [(r.revision, r.is_amended) for r in rows] == [(1, False)] * 4 + [(2, True)] * 4
    assert rows[0].content_sha256 != rows[-1].content_sha256
    note = "Amended: revision 2 supersedes revision 1"
    files = {r.format: read(r.object_url) for r in rows if r.revision == 2}
    assert json.loads(files["json"])["report"]["amendment"] == note
    assert f"# {note}\n" in files["csv"].decode()
    with zipfile.ZipFile(io.BytesIO(files["xlsx"])) as workbook:
        assert note in workbook.read("xl/sharedStrings.xml").decode()
    assert note in pdf_text(files["pdf"])
    with begin() as conn:
        keys = conn.execute(select(WebhookEvent.dedupe_key).order_by(WebhookEvent.dedupe_key))
        assert [k for (k,) in keys if k.startswith("report.")] == [
            "report.published:riverton:2026-11-25:r1",
            "report.published:riverton:2026-11-25:r2",
        ]


def test_a_report_holds_only_its_own_municipality(database):
    seed("riverton", [2000.0] * 24)
    seed("lakeside", [9000.0] * 24)
    judge_compliance.fn("riverton", DAY)
    judge_compliance.fn("lakeside", DAY)

    write_daily_reports.fn("riverton", DAY)

    rows = report_rows()
    report = json.loads(read(next(r.object_url for r in rows if r.format == "json")))
    text = json.dumps(report)
    assert "lakeside" not in text and "9000" not in text
    assert [s["sensor_id"] for s in report["sensors"]] == ["riverton-cond", "riverton-ph"]
    assert report["figures"]["readings_observed"] == 48
    assert report["figures"]["batches_received"] == 1
    assert all(c["status"] == "COMPLIANT" for c in report["compliance"])


def test_the_insights_of_a_week_or_month_ending_that_day_are_in_the_report(database):
    seed("riverton", [2000.0] * 24)
    seed("lakeside", [2000.0] * 24)

    def insight(municipality_id: str, period_end: date, sentence: str) -> dict:
        return {
            "municipality_id": municipality_id,
            "sensor_id": f"{municipality_id}-cond",
            "kind": "week_on_week",
            "period_start": period_end - timedelta(days=7),
            "period_end": period_end,
            "is_significant": True,
            "sentence": sentence,
        }

    with begin() as conn:
        conn.execute(
            insert(Insight),
            [
                insight("riverton", DAY + timedelta(days=1), "Conductivity at Plant rose 38 % week on week"),
                insight("riverton", DAY, "Conductivity at Plant fell 12 % week on week"),  # a day earlier
                insight("lakeside", DAY + timedelta(days=1), "Conductivity at Lakeside rose 90 %"),
            ],
        )

    write_daily_reports.fn("riverton", DAY)

    files = {r.format: read(r.object_url) for r in report_rows()}
    report = json.loads(files["json"])
    assert [i["sentence"] for i in report["insights"]] == ["Conductivity at Plant rose 38 % week on week"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(files["pdf"])).pages)
    assert "Conductivity at Plant rose 38 % week on week" in text
    assert "fell 12 %" not in text and "Lakeside" not in text
