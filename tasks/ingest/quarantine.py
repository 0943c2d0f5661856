"""Quarantined rows as a person meets them: list, show, and release once the cause is fixed.

Release runs the rows' original values through the same gate and loader as a file: rows that
now pass load as a new batch (source `quarantine-release:<ids>`) and are marked released; rows
that still fail stay quarantined with their new reasons. Each municipality is released in its
own transaction and batch, so tenants never mix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
from sqlalchemy import Connection, bindparam, select, update

from tasks.analytics.readings import lock_municipality
from tasks.audit import record_audit
from tasks.database import begin
from tasks.ingest.load import _start_batch, finish_batch, read_gate_sensors, write_readings
from tasks.ingest.registries import apply_folder_registry
from tasks.models import IngestBatch, QuarantinedRow, utcnow
from tasks.quality.gate import REQUIRED_COLUMNS, check_readings
from tasks.settings import get_settings
from tasks.storage import inbox_store

RELEASE_FORMAT = "quarantine"


@dataclass
class Release:
    """What releasing some quarantined rows of one municipality did."""

    municipality_id: str
    registry: str  # applied | absent | rejected: the inbox registry read before the gate ran
    batch_id: int | None = None  # the new batch of the rows that passed, if any
    released: list[int] = field(default_factory=list)
    still_failing: dict[int, list[str]] = field(default_factory=dict)
    already_released: list[int] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


def list_quarantined(
    conn: Connection,
    municipality_id: str | None = None,
    batch_id: int | None = None,
    include_released: bool = False,
) -> list:
    """Quarantined rows, oldest first, of one municipality and/or batch when given."""
    query = _with_source()
    if municipality_id is not None:
        query = query.where(QuarantinedRow.municipality_id == municipality_id)
    if batch_id is not None:
        query = query.where(QuarantinedRow.batch_id == batch_id)
    if not include_released:
        query = query.where(QuarantinedRow.released_at.is_(None))
    return list(conn.execute(query.order_by(QuarantinedRow.id)))


def get_quarantined(conn: Connection, row_id: int, municipality_id: str | None = None):  # noqa: ANN201
    """One quarantined row with its batch's source; ValueError when there is none (for that tenant)."""
    query = _with_source().where(QuarantinedRow.id == row_id)
    if municipality_id is not None:
        query = query.where(QuarantinedRow.municipality_id == municipality_id)
    row = conn.execute(query).first()
    if row is None:
        raise ValueError(f"there is no quarantined row {row_id}{_of(municipality_id)}")
    return row


def _with_source():  # noqa: ANN202
    q = QuarantinedRow
    columns = (q.id, q.municipality_id, q.batch_id, q.row_number, q.raw, q.reasons, q.created_at,
               q.released_at, IngestBatch.source)
    return select(*columns).join(IngestBatch, IngestBatch.id == q.batch_id)


def release_quarantined(
    row_ids: list[int] | None = None,
    *,
    batch_id: int | None = None,
    municipality_id: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> list[Release]:
    """Re-gate and load quarantined rows (by id, or every unreleased row of a batch).

    ValueError when neither or both selections are given, or when a given id does not exist
    (in `municipality_id`, when given): nothing is released then.
    """
    if bool(row_ids) == (batch_id is not None):
        raise ValueError("give quarantined row ids or --batch, one of the two")
    with begin() as conn:
        rows = _selected(conn, row_ids, batch_id, municipality_id)
    tenants = sorted({r.municipality_id for r in rows})
    return [
        _release_tenant(m, [r.id for r in rows if r.municipality_id == m], actor, now or utcnow())
        for m in tenants
    ]


UNREADABLE_LINE = (
    "this line could not be read as a row of its file; correct the file and drop it into the inbox again"
)


def _selected(conn: Connection, row_ids, batch_id, municipality_id) -> list:  # noqa: ANN001
    query = select(QuarantinedRow.id, QuarantinedRow.municipality_id)
    if municipality_id is not None:
        query = query.where(QuarantinedRow.municipality_id == municipality_id)
    if batch_id is not None:
        rows = list(conn.execute(query.where(QuarantinedRow.batch_id == batch_id)))
        if not rows:
            raise ValueError(f"batch {batch_id} has no quarantined rows{_of(municipality_id)}")
        return rows
    wanted = sorted(set(row_ids))
    rows = list(conn.execute(query.where(QuarantinedRow.id.in_(wanted))))
    missing = sorted(set(wanted) - {r.id for r in rows})
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise ValueError(f"there is no quarantined row {listed}{_of(municipality_id)}")
    return rows


def _release_tenant(municipality_id: str, row_ids: list[int], actor: str, now: datetime) -> Release:
    """Release some rows of one municipality in one transaction (after re-reading its registry)."""
    registry, _ = apply_folder_registry(inbox_store(), municipality_id)
    result = Release(municipality_id=municipality_id, registry=registry)
    with begin() as conn:
        lock_municipality(conn, municipality_id)
        rows = conn.execute(
            select(QuarantinedRow.id, QuarantinedRow.raw, QuarantinedRow.released_at)
            .where(QuarantinedRow.id.in_(row_ids))
            .order_by(QuarantinedRow.id)
        ).all()
        result.already_released = [r.id for r in rows if r.released_at is not None]
        # A line refused before the gate (raw {"line": ...}) is no row to judge again: its file
        # must be corrected and dropped again. Its stored reason stays.
        unreadable = {
            r.id: [UNREADABLE_LINE] for r in rows if r.released_at is None and set(r.raw) == {"line"}
        }
        result.still_failing = dict(unreadable)
        pending = [r for r in rows if r.released_at is None and r.id not in unreadable]
        if not pending:
            return result
        ids = [r.id for r in pending]
        gate = check_readings(
            raw_frame([r.raw for r in pending]),
            read_gate_sensors(conn, municipality_id),
            municipality_id=municipality_id,
            now=now,
            clock_skew_seconds=get_settings().clock_skew_seconds,
        )
        failing = {ids[n - 1]: reasons for n, reasons in gate.quarantined.select(
            "row_number", "reasons").iter_rows()}
        result.still_failing.update(failing)
        result.released = [i for i in ids if i not in failing]
        if failing:
            conn.execute(
                update(QuarantinedRow)
                .where(QuarantinedRow.id == bindparam("row_id"))
                .values(reasons=bindparam("new_reasons")),
                [{"row_id": i, "new_reasons": list(r)} for i, r in failing.items()],
            )
        if result.released:
            result.batch_id, result.figures = _load_released(
                conn, municipality_id, result, gate, actor, now
            )
        record_audit(
            conn,
            municipality_id=municipality_id,
            actor=actor,
            action="quarantine.released",
            entity_type="quarantined_rows",
            entity_id=result.batch_id,
            details={
                "released_ids": result.released,
                "still_quarantined": {str(i): r for i, r in result.still_failing.items()},
                "batch_id": result.batch_id,
                "registry": registry,
            },
        )
    return result


def _load_released(conn: Connection, municipality_id: str, result: Release, gate, actor: str, now):  # noqa: ANN001, ANN202
    """The batch of the rows that now pass: readings written like a file's, rows marked released."""
    ids = ",".join(str(i) for i in result.released)
    source = f"quarantine-release:{ids}"
    # A release is an event, not a file: the same rows may be released again after a failure.
    checksum = hashlib.sha256(f"{source}@{now.isoformat()}".encode()).hexdigest()
    batch_id = _start_batch(conn, municipality_id, source, checksum, RELEASE_FORMAT, None)
    changes = write_readings(conn, municipality_id, batch_id, gate.readings)
    counts = {
        "rows_total": gate.rows_total,
        "rows_loaded": changes["rows_inserted"] + changes["rows_revised"],
        "rows_quarantined": gate.quarantined.height,
        "rows_unchanged": changes["rows_unchanged"],
    }
    conn.execute(
        update(QuarantinedRow)
        .where(QuarantinedRow.id.in_(result.released))
        .values(released_at=now)
    )
    finish_batch(
        conn,
        municipality_id,
        batch_id,
        counts,
        changes,
        gate.validation,
        actor,
        details={"released_ids": result.released, "still_quarantined_ids": sorted(result.still_failing)},
    )
    return batch_id, {**counts, **changes}


def raw_frame(raws: list[dict]) -> pl.DataFrame:
    """Quarantined rows' original values as a file-like frame of text (the gate parses text)."""
    columns = list(REQUIRED_COLUMNS) + sorted({k for raw in raws for k in raw} - set(REQUIRED_COLUMNS))
    return pl.DataFrame(
        {c: [_text(raw.get(c)) for raw in raws] for c in columns},
        schema=dict.fromkeys(columns, pl.String),
    )


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _of(municipality_id: str | None) -> str:
    return f" in municipality {municipality_id!r}" if municipality_id else ""
