"""Recording one revision of a report: its file rows, its `report.published` event and its audit
entry, in the caller's transaction (shared by the daily summary and the monthly report)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, insert, select

from tasks.audit import record_audit
from tasks.models import Report, utcnow
from tasks.webhooks.outbox import record_event

ACTOR = "waterline.reports"


def newest_revision(
    conn: Connection, municipality_id: str, kind: str, period_start: date
) -> tuple[int, dict]:
    """The newest revision of a report (0 if none) and its rows by format."""
    rows = conn.execute(
        select(Report)
        .where(
            Report.municipality_id == municipality_id,
            Report.kind == kind,
            Report.period_start == period_start,
        )
        .order_by(Report.revision.desc())
    ).all()
    if not rows:
        return 0, {}
    newest = rows[0].revision
    return newest, {row.format: row for row in rows if row.revision == newest}


def record_published(
    conn: Connection,
    *,
    municipality_id: str,
    kind: str,
    period_start: date,
    period_end: date,
    period_label: str,
    revision: int,
    content_hash: str,
    files: dict,
    changes: list[str] | None = None,
) -> None:
    """Insert the rows of the `files` written for `revision` ({format: url, sha256, size_bytes}),
    then publish every file of that revision (also those written by an earlier, interrupted run)
    as one `report.published` event, deduplicated on the period's label (`2026-11-25` for a
    day, `2026-10` for a month) and the revision."""
    now = utcnow()
    conn.execute(
        insert(Report),
        [
            {
                "municipality_id": municipality_id,
                "kind": kind,
                "period_start": period_start,
                "period_end": period_end,
                "format": fmt,
                "revision": revision,
                "is_amended": revision > 1,
                "content_sha256": content_hash,
                "object_url": f["url"],
                "sha256": f["sha256"],
                "size_bytes": f["size_bytes"],
                "created_at": now,
            }
            for fmt, f in files.items()
        ],
    )
    rows = conn.execute(
        select(Report.format, Report.object_url, Report.sha256, Report.size_bytes).where(
            Report.municipality_id == municipality_id,
            Report.kind == kind,
            Report.period_start == period_start,
            Report.revision == revision,
        )
    ).all()
    data = {
        "municipality_id": municipality_id,
        "kind": kind,
        "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(),
        "revision": revision,
        "is_amended": revision > 1,
        "supersedes_revision": revision - 1 if revision > 1 else None,
        "content_sha256": content_hash,
        "files": {
            r.format: {"url": r.object_url, "sha256": r.sha256, "size_bytes": r.size_bytes} for r in rows
        },
    }
    details = {"formats": sorted(files), "content_sha256": content_hash}
    if changes is not None:
        data["changes"] = details["changes"] = changes
    record_event(
        conn,
        municipality_id=municipality_id,
        event_type="report.published",
        data=data,
        dedupe_key=f"report.published:{municipality_id}:{period_label}:r{revision}",
    )
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=ACTOR,
        action="report.published",
        entity_type="report",
        entity_id=f"{municipality_id}:{kind}:{period_label}:r{revision}",
        details=details,
    )
