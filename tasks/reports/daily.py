"""The Prefect task that writes a municipality's daily summary in four formats, once per content."""

from __future__ import annotations

import logging
import re
from datetime import date

from prefect import task
from sqlalchemy import Connection

from tasks.database import begin
from tasks.models import utcnow
from tasks.reports.data import KIND, collect_daily, content_sha256
from tasks.reports.pdf import render_pdf
from tasks.reports.published import newest_revision, record_published
from tasks.reports.render import render_csv, render_json, render_xlsx, report_meta
from tasks.stages import in_prefect_run, run_logger, stage
from tasks.storage import object_store

ACTOR = "waterline.reports"
RENDERERS = {"json": render_json, "csv": render_csv, "xlsx": render_xlsx, "pdf": render_pdf}


def _logger() -> logging.Logger | logging.LoggerAdapter:
    return run_logger("waterline.reports")


def report_key(municipality_id: str, day: date, revision: int, fmt: str) -> str:
    return f"reports/{municipality_id}/daily/{day.isoformat()}/r{revision}/summary.{fmt}"


def latest_revision(conn: Connection, municipality_id: str, day: date) -> tuple[int, dict]:
    """The newest revision of the day's summary (0 if none) and its rows by format."""
    return newest_revision(conn, municipality_id, KIND, day)


def plan_revision(latest: int, existing: dict, content_hash: str) -> tuple[int, list[str]]:
    """Which revision to write and which formats: nothing when the newest revision already
    holds this content in every format, the missing formats when it holds it in some, and a
    new revision of all formats when the content changed."""
    if latest and all(row.content_sha256 == content_hash for row in existing.values()):
        return latest, [fmt for fmt in RENDERERS if fmt not in existing]
    return latest + 1, list(RENDERERS)


def _create_link_artifacts(municipality_id: str, day: date, revision: int, files: dict) -> None:
    """One Prefect link artifact per format, only inside a flow or task run."""
    from prefect.artifacts import create_link_artifact

    if not in_prefect_run():
        return
    slug = re.sub(r"[^a-z0-9-]+", "-", municipality_id.lower())
    for fmt, stored in files.items():
        create_link_artifact(
            key=f"report-{slug}-{fmt}",
            link=stored["url"],
            link_text=f"{municipality_id} {day.isoformat()} r{revision} summary.{fmt}",
            description=f"Daily summary of {municipality_id} for {day.isoformat()}, revision "
            f"{revision} ({fmt}), sha256 {stored['sha256']}",
        )


@task(
    name="write_daily_reports",
    task_run_name="report-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def write_daily_reports(municipality_id: str, day: date) -> dict:
    """Write one municipality's daily summary (JSON, CSV, XLSX, PDF) when its content changed."""
    with stage("write_daily_reports", municipality_id) as result:
        with begin() as conn:
            content = collect_daily(conn, municipality_id, day)
            latest, existing = latest_revision(conn, municipality_id, day)
        content_hash = content_sha256(content)
        revision, formats = plan_revision(latest, existing, content_hash)
        result.details = {
            "revision": revision,
            "files_written": len(formats),
            "is_amended": int(revision > 1),
        }
        if formats:
            files = _write(municipality_id, day, revision, content, content_hash, formats)
            result.rows = len(formats)
        else:
            files = {
                fmt: {"url": row.object_url, "sha256": row.sha256} for fmt, row in existing.items()
            }
    _create_link_artifacts(municipality_id, day, revision, files)
    _logger().info(
        "report %s %s revision %d: %s",
        municipality_id,
        day,
        revision,
        f"wrote {', '.join(formats)}" if formats else "unchanged, nothing written",
    )
    return result.as_dict()


def _write(
    municipality_id: str,
    day: date,
    revision: int,
    content: dict,
    content_hash: str,
    formats: list[str],
) -> dict:
    """Render and store each format, then record them; returns url/sha256/size per format."""
    meta = report_meta(content, revision, content_hash, utcnow())
    store = object_store()
    files = {}
    for fmt in formats:
        stored = store.put_bytes(
            report_key(municipality_id, day, revision, fmt), RENDERERS[fmt](content, meta)
        )
        files[fmt] = {"url": stored.url, "sha256": stored.sha256, "size_bytes": stored.size_bytes}
    with begin() as conn:
        _record(conn, municipality_id, day, revision, content_hash, files)
    return files


def _record(
    conn: Connection, municipality_id: str, day: date, revision: int, content_hash: str, files: dict
) -> None:
    """The `reports` rows, the `report.published` event and the audit entry, in one transaction."""
    record_published(
        conn,
        municipality_id=municipality_id,
        kind=KIND,
        period_start=day,
        period_end=day,
        period_label=day.isoformat(),
        revision=revision,
        content_hash=content_hash,
        files=files,
    )
