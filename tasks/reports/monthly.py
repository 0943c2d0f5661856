"""The regulator's monthly compliance report of one municipality: judged, written in four formats
to object storage once per content, amended when late data changes it, e-mailed once per revision.

Object keys are predictable: `reports/{municipality}/monthly_compliance/{YYYY-MM}/r{revision}/
compliance-report.{json,csv,xlsx,pdf}`. A rerun with the same content writes nothing; a changed
content is a new revision, marked AMENDED with what changed against the previous one (read back
from that revision's JSON), and recorded as a `report.published` event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, date, timedelta

import polars as pl
from prefect import task
from sqlalchemy import Connection, select, update

from tasks.analytics.insights import refresh_month_insights
from tasks.audit import record_audit
from tasks.compliance.monthly import (
    PERIOD_KIND,
    MonthInputs,
    coverage,
    daily_series,
    judge_month,
    limit_lines,
    load_month,
    measured_parameters,
    month_bounds,
    month_last_day,
    month_of,
)
from tasks.compliance.periods import sql_date, sql_time
from tasks.compliance.records import record_results, record_violations
from tasks.compliance.rules_samples import CONFIRMATION_HOURS
from tasks.database import begin, load_sql, read_frame
from tasks.mail import Attachment, compose, send_with_retries, write_eml
from tasks.models import ActionPlan, ComplianceResult, Report, utcnow
from tasks.reports.data import canonical_json
from tasks.reports.monthly_email import monthly_email
from tasks.reports.monthly_pdf import render_monthly_pdf
from tasks.reports.monthly_render import (
    SCHEMAS,
    monthly_frames,
    render_monthly_csv,
    render_monthly_json,
    status_counts,
)
from tasks.reports.monthly_templates import monthly_layout
from tasks.reports.monthly_xlsx import render_monthly_xlsx
from tasks.reports.published import newest_revision, record_published
from tasks.settings import get_settings
from tasks.stages import in_prefect_run, run_logger, stage
from tasks.storage import object_store, open_url

KIND = "monthly_compliance"
ACTOR = "waterline.reports"
RENDERERS = {
    "json": render_monthly_json,
    "csv": render_monthly_csv,
    "xlsx": render_monthly_xlsx,
    "pdf": render_monthly_pdf,
}
ATTACHED = {
    "pdf": ("application", "pdf"),
    "xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
MOST_CHANGES = 25  # sentences listed in an amendment; the rest are counted
MONTHS_BACK = 3  # earlier months checked for late data that would amend their report
STORED_INSIGHT_SCHEMA = {
    "kind": pl.String,
    "period_start": pl.Date,
    "period_end": pl.Date,
    "station": pl.String,
    "sensor_id": pl.String,
    "parameter": pl.String,
    "change_pct": pl.Float64,
    "is_significant": pl.Int64,
    "sentence": pl.String,
}


def _logger() -> logging.Logger | logging.LoggerAdapter:
    return run_logger("waterline.reports")


def report_key(municipality_id: str, month: date, revision: int, fmt: str) -> str:
    return f"reports/{municipality_id}/{KIND}/{month:%Y-%m}/r{revision}/compliance-report.{fmt}"


def eml_key(municipality_id: str, month: date, revision: int) -> str:
    return f"mail/{municipality_id}/{KIND}/{month:%Y-%m}/r{revision}-compliance-report.eml"


# ---------------------------------------------------------------- the content


def read_plans(conn: Connection, municipality_id: str, month: date) -> pl.DataFrame:
    """The action plans opened for this month's results of this municipality."""
    rows = conn.execute(
        select(
            ActionPlan.id,
            ComplianceResult.standard,
            ActionPlan.parameter,
            ComplianceResult.rule_code,
            ActionPlan.status,
            ActionPlan.owner,
            ActionPlan.due_date,
            ActionPlan.steps,
        )
        .join(ComplianceResult, ComplianceResult.id == ActionPlan.compliance_result_id)
        .where(
            ActionPlan.municipality_id == municipality_id,
            ComplianceResult.municipality_id == municipality_id,
            ComplianceResult.period_kind == PERIOD_KIND,
            ComplianceResult.period_start == month,
        )
        .order_by(ActionPlan.id)
    ).all()
    frame = pl.DataFrame(
        [{**row._asdict(), "id": str(row.id), "steps": list(row.steps or [])} for row in rows],
        schema=SCHEMAS["plans"],
        orient="row",
    )
    return frame


def read_month_insights(conn: Connection, municipality_id: str, month: date) -> pl.DataFrame:
    """This municipality's stored insights whose period ends in the month: the month against the
    month before and a year before, and each week whose last day is in the month."""
    params = {
        "municipality_id": municipality_id,
        "month_start": sql_date(conn, month),
        "month_after": sql_date(conn, month_last_day(month) + timedelta(days=1)),
    }
    stored = read_frame(conn, load_sql("read_month_insights"), params, STORED_INSIGHT_SCHEMA)
    return stored.with_columns(
        period_last_day=pl.col("period_end").dt.offset_by("-1d"),  # stored: the day after the period
        is_significant=pl.col("is_significant").cast(pl.Boolean),  # read as 1 or 0
    ).select(list(SCHEMAS["insights"]))


def build_content(
    inputs: MonthInputs,
    results: pl.DataFrame,
    exceedances: pl.DataFrame,
    plans: pl.DataFrame,
    insights: pl.DataFrame | None = None,
) -> dict:
    """The report's data: only this municipality's rows, and nothing that changes when the same
    data is reported again (no generation time, no revision). `insights` from
    `read_month_insights`; none when not given."""
    town, month = inputs.municipality, inputs.month
    stations = inputs.sensors.select("station_id", "station").unique("station_id")
    return {
        "municipality": {"id": town["id"], "name": town["name"], "timezone": town["timezone"]},
        "period": {
            "kind": PERIOD_KIND,
            "start": month,
            "end": inputs.last_day,
            "label": f"{month:%B %Y}",
        },
        "standards": sorted(town["standards"]),
        "results": results.select(list(SCHEMAS["results"])),
        "exceedances": exceedances.join(stations, on="station_id", how="left").select(
            list(SCHEMAS["exceedances"])
        ),
        "coverage": coverage(inputs),
        "series": daily_series(inputs),
        "limit_lines": limit_lines(inputs.limits, measured_parameters(inputs)),
        "plans": plans,
        "insights": pl.DataFrame(schema=SCHEMAS["insights"]) if insights is None else insights,
    }


def content_data(content: dict) -> dict:
    """The content as plain JSON-able data (sections checked, typed and sorted)."""
    frames = monthly_frames(content)
    return json.loads(canonical_json({**content, **{k: f.to_dicts() for k, f in frames.items()}}))


def content_sha256(data: dict) -> str:
    """The hash of the report's data (`content_data`), the same for every format and rerun."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def _number(value) -> str:  # noqa: ANN001
    return "none" if value is None else f"{value:.4g}"


def amendment_changes(previous: dict, current: dict, most: int = MOST_CHANGES) -> list[str]:
    """Sentences saying what changed between two revisions' data (`content_data` form)."""
    changes = []

    def keyed(rows: list[dict], *key: str) -> dict:
        return {tuple(row[k] for k in key): row for row in rows}

    before = keyed(previous["results"], "standard", "parameter", "rule_code", "statistic")
    after = keyed(current["results"], "standard", "parameter", "rule_code", "statistic")
    for key in sorted(before.keys() | after.keys(), key=lambda k: tuple(str(p) for p in k)):
        name = f"{key[0]} {key[1]} ({key[2]}, {key[3]})"
        old, new = before.get(key), after.get(key)
        if old is None:
            changes.append(f"{name}: new result, {new['status']}.")
        elif new is None:
            changes.append(f"{name}: no longer judged (was {old['status']}).")
        elif old["status"] != new["status"]:
            changes.append(
                f"{name}: status {old['status']} -> {new['status']} (statistic "
                f"{_number(old['statistic_value'])} -> {_number(new['statistic_value'])} {new['unit']})."
            )
        elif old["statistic_value"] != new["statistic_value"] or old["sample_count"] != new["sample_count"]:
            changes.append(
                f"{name}: statistic {_number(old['statistic_value'])} -> "
                f"{_number(new['statistic_value'])} {new['unit']}, samples {old['sample_count']:,} -> "
                f"{new['sample_count']:,}."
            )
    received = [sum(r["received_count"] or 0 for r in d["coverage"]) for d in (previous, current)]
    if received[0] != received[1]:
        changes.append(f"Readings received in the month: {received[0]:,} -> {received[1]:,}.")
    excluded = [sum(r["excluded_count"] or 0 for r in d["coverage"]) for d in (previous, current)]
    if excluded[0] != excluded[1]:
        changes.append(f"Readings excluded by quality control: {excluded[0]:,} -> {excluded[1]:,}.")
    counts = [len(d["exceedances"]) for d in (previous, current)]
    if counts[0] != counts[1]:
        changes.append(f"Exceedances listed: {counts[0]:,} -> {counts[1]:,}.")
    new_plans = {p["id"] for p in current["plans"]} - {p["id"] for p in previous["plans"]}
    if new_plans:
        changes.append(f"New action plans: {', '.join(sorted(new_plans, key=int))}.")
    changes += _insight_changes(previous.get("insights", []), current["insights"])
    if len(changes) > most:
        changes = [*changes[:most], f"... and {len(changes) - most} more changes."]
    return changes


def _insight_changes(previous: list[dict], current: list[dict]) -> list[str]:
    """Sentences on the insights added, withdrawn or reworded between two revisions (a revision
    written before reports held insights has none)."""
    key = ("sensor_id", "kind", "period_start")
    before = {tuple(row[k] for k in key): row["sentence"] for row in previous}
    after = {tuple(row[k] for k in key): row["sentence"] for row in current}
    changes = []
    for which in sorted(before.keys() | after.keys()):
        old, new = before.get(which), after.get(which)
        if old is None:
            changes.append(f"New insight: {new}.")
        elif new is None:
            changes.append(f"Insight no longer listed: {old}.")
        elif old != new:
            changes.append(f"Insight reworded: {old} -> {new}.")
    return changes


def content_from_json(data: dict) -> tuple[dict, dict]:
    """A stored JSON report read back as (content, meta), for the e-mail of a stored revision
    (a section that an older revision lacks, such as its insights, reads back empty)."""
    content = {k: v for k, v in data.items() if k != "report"}
    period = dict(content["period"])
    period["start"], period["end"] = date.fromisoformat(period["start"]), date.fromisoformat(period["end"])
    content["period"] = period
    for name, schema in SCHEMAS.items():
        rows = content.get(name) or []
        parsed = {}
        for column, dtype in schema.items():
            values = [row.get(column) for row in rows]
            if dtype == pl.Date:
                parsed[column] = pl.Series(column, values, pl.String).str.to_date()
            elif isinstance(dtype, pl.Datetime):
                parsed[column] = pl.Series(column, values, pl.String).str.to_datetime(time_zone="UTC")
            else:
                parsed[column] = pl.Series(column, values, dtype)
        content[name] = pl.DataFrame(parsed)
    meta = dict(data["report"])
    meta["generated_at"] = pl.Series([meta["generated_at"]]).str.to_datetime(time_zone="UTC")[0]
    return content, meta


# ---------------------------------------------------------------- revisions


def latest_revision(conn: Connection, municipality_id: str, month: date) -> tuple[int, dict]:
    """The newest revision of the month's report (0 if none) and its rows by format."""
    return newest_revision(conn, municipality_id, KIND, month)


def _read_json(url: str) -> dict:
    with open_url(url) as handle:
        return json.loads(handle.read())


def _artifacts(municipality_id: str, month: date, revision: int, files: dict, summary: str) -> None:
    """A link artifact per format and a markdown summary, only inside a flow or task run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    if not in_prefect_run():
        return
    slug = re.sub(r"[^a-z0-9-]+", "-", municipality_id.lower())
    for fmt, stored in files.items():
        create_link_artifact(
            key=f"monthly-{slug}-{fmt}",
            link=stored["url"],
            link_text=f"{municipality_id} {month:%Y-%m} r{revision} compliance-report.{fmt}",
            description=f"Monthly compliance report of {municipality_id} for {month:%B %Y}, revision "
            f"{revision} ({fmt}), sha256 {stored['sha256']}",
        )
    create_markdown_artifact(key=f"monthly-{slug}-summary", markdown=summary)


def summary_markdown(content: dict, revision: int, is_amended: bool, changes: list[str], files: dict) -> str:
    """The report's summary as a markdown artifact: status counts, non-compliances, links."""
    frames = monthly_frames(content)
    results = frames["results"]
    town, period = content["municipality"], content["period"]
    lines = [
        f"# {town['name']}: compliance report for {period['label']}, revision {revision}"
        + (" (AMENDED)" if is_amended else ""),
        "",
        "| status | results |",
        "|---|---|",
        *(f"| {status} | {count} |" for status, count in status_counts(results)),
        "",
    ]
    failing = results.filter(pl.col("status") == "NON_COMPLIANT")
    if failing.height:
        lines += [
            "| standard | parameter | rule | statistic | limit | consequence |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['standard']} | {r['parameter']} | {r['rule_code']} | {_number(r['statistic_value'])} "
            f"{r['unit']} | {_number(r['limit'])} {r['unit']} | {r['consequence']} |"
            for r in failing.iter_rows(named=True)
        ]
        lines.append("")
    if changes:
        lines += ["What changed since the previous revision:", "", *(f"- {c}" for c in changes), ""]
    lines += [f"- [{fmt.upper()}]({f['url']}) sha256 `{f['sha256']}`" for fmt, f in sorted(files.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------- which months


def months_due(
    conn: Connection,
    municipality_id: str,
    timezone: str,
    last_complete_day: date,
    months_back: int = MONTHS_BACK,
) -> list[date]:
    """The months whose report is due, oldest first: the last complete month (local calendar,
    complete when `last_complete_day` is its last day or later) when it has no report yet, and
    any of the `months_back` months before it whose aggregates were recomputed after its newest
    report revision (late or revised data: an amendment), its lab sensors' aggregates of the day
    after it included (a confirmation sample of its last samples)."""
    last = month_of((last_complete_day + timedelta(days=1)).replace(day=1) - timedelta(days=1))
    due = []
    for back in range(months_back, -1, -1):
        month = _month_minus(last, back)
        _, rows = latest_revision(conn, municipality_id, month)
        if not rows:
            if back == 0:
                due.append(month)
            continue
        start, end = month_bounds(month, timezone)
        params = {
            "municipality_id": municipality_id,
            "start": sql_time(conn, start),
            "end": sql_time(conn, end),
            "followed_until": sql_time(conn, end + timedelta(hours=CONFIRMATION_HOURS)),
        }
        refreshed = read_frame(
            conn, load_sql("read_month_refreshed_after"), params, {"computed_at": pl.Datetime("us", "UTC")}
        )["computed_at"][0]
        rechecked = read_frame(
            conn,
            load_sql("read_month_rechecked"),
            {"municipality_id": municipality_id, "entity_id": report_entity(municipality_id, month)},
            {"occurred_at": pl.Datetime("us", "UTC")},
        )["occurred_at"][0]
        seen = [row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC) for row in rows.values()]
        reported = max([*seen, *([rechecked] if rechecked is not None else [])])
        if refreshed is not None and refreshed > reported:
            due.append(month)
    return due


def report_entity(municipality_id: str, month: date) -> str:
    """The audit entity of a month's monthly compliance report (all revisions)."""
    return f"{municipality_id}:{KIND}:{month:%Y-%m}"


def _month_minus(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


# ---------------------------------------------------------------- the tasks


def judge_and_record(
    municipality_id: str, month: date
) -> tuple[MonthInputs, pl.DataFrame, pl.DataFrame, dict]:
    """Judge the month, upsert its results, open plans and violation events (each once)."""
    with begin() as conn:
        inputs = load_month(conn, municipality_id, month)
    results, exceedances = judge_month(inputs)
    with begin() as conn:
        record_results(conn, municipality_id, inputs.month, results, period_kind=PERIOD_KIND)
        counts = record_violations(conn, municipality_id, inputs.month, period_kind=PERIOD_KIND)
    return inputs, results, exceedances, counts


@task(
    name="write_monthly_report",
    task_run_name="monthly-report-{municipality_id}-{month}",
    retries=2,
    retry_delay_seconds=10,
)
def write_monthly_report(municipality_id: str, month: date) -> dict:
    """Judge one municipality's month and write its compliance report when its content changed
    (when it did not, an audit entry says it was judged again, so the month is no longer due)."""
    month = month_of(month)
    with stage("write_monthly_report", municipality_id) as result:
        inputs, results, exceedances, counts = judge_and_record(municipality_id, month)
        with begin() as conn:
            plans = read_plans(conn, municipality_id, month)
            refresh_month_insights(conn, municipality_id, inputs.timezone, month)
            insights = read_month_insights(conn, municipality_id, month)
            latest, existing = latest_revision(conn, municipality_id, month)
        content = build_content(inputs, results, exceedances, plans, insights)
        data = content_data(content)
        content_hash = content_sha256(data)
        unchanged = latest and all(row.content_sha256 == content_hash for row in existing.values())
        formats = [f for f in RENDERERS if f not in existing] if unchanged else list(RENDERERS)
        revision = latest if unchanged else latest + 1
        changes: list[str] = []
        if revision > 1 and not unchanged:
            previous = latest_revision_json(existing)
            changes = amendment_changes(previous, data) if previous else []
        by_status = dict(status_counts(monthly_frames(content)["results"]))
        result.details = {
            "revision": revision,
            "files_written": len(formats),
            "is_amended": int(revision > 1),
            **{s.lower(): n for s, n in by_status.items()},
            **counts,
        }
        files = (
            {
                fmt: {"url": row.object_url, "sha256": row.sha256, "size_bytes": row.size_bytes}
                for fmt, row in existing.items()
            }
            if unchanged
            else {}
        )
        if formats:
            meta = {
                "title": monthly_layout()["title"],
                "revision": revision,
                "is_amended": revision > 1,
                "amendment": {"previous_revision": revision - 1, "changes": changes}
                if revision > 1
                else None,
                "content_sha256": content_hash,
                "generated_at": utcnow(),
            }
            written = _write(municipality_id, month, revision, content, meta, formats, changes)
            files.update(written)
            result.rows = len(formats)
        else:
            with begin() as conn:
                record_audit(
                    conn,
                    municipality_id=municipality_id,
                    actor=ACTOR,
                    action="report.rechecked",
                    entity_type="report",
                    entity_id=report_entity(municipality_id, month),
                    details={"revision": revision, "content_sha256": content_hash},
                )
    _artifacts(
        municipality_id,
        month,
        revision,
        files,
        summary_markdown(content, revision, revision > 1, changes, files),
    )
    _logger().info(
        "monthly report %s %s revision %d: %s",
        municipality_id,
        f"{month:%Y-%m}",
        revision,
        f"wrote {', '.join(formats)}" if formats else "unchanged, nothing written",
    )
    return result.as_dict()


def latest_revision_json(existing: dict) -> dict | None:
    row = existing.get("json")
    return _read_json(row.object_url) if row is not None else None


def _write(
    municipality_id: str,
    month: date,
    revision: int,
    content: dict,
    meta: dict,
    formats: list[str],
    changes: list[str],
) -> dict:
    """Render and store each format, then record them in one transaction; url/sha256/size each."""
    store = object_store()
    files = {}
    for fmt in formats:
        stored = store.put_bytes(
            report_key(municipality_id, month, revision, fmt), RENDERERS[fmt](content, meta)
        )
        files[fmt] = {"url": stored.url, "sha256": stored.sha256, "size_bytes": stored.size_bytes}
    with begin() as conn:
        _record(conn, municipality_id, month, revision, meta["content_sha256"], files, changes)
    return files


def _record(
    conn: Connection,
    municipality_id: str,
    month: date,
    revision: int,
    content_hash: str,
    files: dict,
    changes: list[str],
) -> None:
    """The `reports` rows, the `report.published` event (with what changed) and the audit entry."""
    record_published(
        conn,
        municipality_id=municipality_id,
        kind=KIND,
        period_start=month,
        period_end=month_last_day(month),
        period_label=f"{month:%Y-%m}",
        revision=revision,
        content_hash=content_hash,
        files=files,
        changes=changes,
    )


@task(name="email_monthly_report", task_run_name="email-monthly-report-{municipality_id}-{month}")
def email_monthly_report(municipality_id: str, month: date, resend: bool = False) -> dict:
    """E-mail the newest revision of the month's report (PDF and XLSX attached) to the
    municipality's regulators: once per revision, or again on purpose with `resend`."""
    month = month_of(month)
    with stage("email_monthly_report", municipality_id) as result:
        with begin() as conn:
            from tasks.compliance.daily import load_municipality

            town = load_municipality(conn, municipality_id)
            revision, rows = latest_revision(conn, municipality_id, month)
        recipients = list(town.regulator_emails or [])
        skipped = (
            "no report"
            if not revision or not {"json", "pdf", "xlsx"} <= rows.keys()
            else "already emailed"
            if rows["pdf"].emailed_at is not None and not resend
            else "no regulator e-mail addresses"
            if not recipients
            else None
        )
        if skipped:
            result.details = {"emailed": 0, "skipped": skipped}
        else:
            result.details = send_report(town, month, revision, rows, recipients, resend)
            result.rows = 1
    _logger().info(
        "e-mail of the %s report of %s: %s",
        f"{month:%Y-%m}",
        municipality_id,
        f"skipped ({skipped})" if skipped else f"sent revision {revision} to {len(recipients)} address(es)",
    )
    return result.as_dict()


def send_report(town, month: date, revision: int, rows: dict, recipients: list[str], resend: bool) -> dict:  # noqa: ANN001
    """Compose the e-mail of a stored revision from its JSON, attach its PDF and XLSX, send it
    (or keep it as .eml without SMTP), then mark the revision e-mailed and audit it."""
    content, meta = content_from_json(_read_json(rows["json"].object_url))
    links = {fmt.upper(): row.object_url for fmt, row in sorted(rows.items())}
    subject, text, html = monthly_email(content, meta, links)
    attachments = []
    for fmt, (maintype, subtype) in ATTACHED.items():
        with open_url(rows[fmt].object_url) as handle:
            data = handle.read()
        name = f"{town.id}-{month:%Y-%m}-r{revision}-compliance-report.{fmt}"
        attachments.append(Attachment(name, data, maintype, subtype))
    settings = get_settings()
    message = compose(
        sender=settings.mail_from,
        recipients=recipients,
        subject=subject,
        body=text,
        html=html,
        attachments=attachments,
        headers={"X-Waterline-Report-Sha256": rows["pdf"].sha256},
    )
    if settings.smtp_host:
        attempts, via, email_url = send_with_retries(message, settings), "smtp", None
    else:
        stored = write_eml(object_store(), eml_key(town.id, month, revision), message)
        attempts, via, email_url = 0, "eml", stored.url
    with begin() as conn:
        marked = conn.execute(
            update(Report)
            .where(
                Report.municipality_id == town.id,
                Report.kind == KIND,
                Report.period_start == month,
                Report.revision == revision,
            )
            .values(emailed_to=recipients, emailed_at=utcnow(), email_url=email_url)
        ).rowcount
        record_audit(
            conn,
            municipality_id=town.id,
            actor=ACTOR,
            action="report.resent" if resend else "report.emailed",
            entity_type="report",
            entity_id=f"{town.id}:{KIND}:{month:%Y-%m}:r{revision}",
            details={
                "revision": revision,
                "via": via,
                "recipients": recipients,
                "message_id": message["Message-ID"],
                "attachments": [a.filename for a in attachments],
                "email_url": email_url,
                "rows_marked": marked,
            },
        )
    return {
        "emailed": 1,
        "revision": revision,
        "recipients": len(recipients),
        "via_smtp": int(via == "smtp"),
        "smtp_attempts": attempts,
    }
