"""Load one inbox file exactly once: batch row, quarantined rows and readings in one transaction."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime

import polars as pl
from sqlalchemy import Connection, insert, update
from sqlalchemy.exc import IntegrityError

from tasks.analytics.aggregates import with_buckets
from tasks.analytics.readings import db_value, lock_municipality, municipality_timezone
from tasks.audit import record_audit
from tasks.database import append_frame, begin, bulk_insert, load_sql, read_frame, run_sql
from tasks.ingest.files import UnreadableFile, file_format, read_inbox_file
from tasks.models import IngestBatch, utcnow
from tasks.quality.gate import SENSOR_SCHEMA, GateResult, check_readings, json_text
from tasks.storage import ObjectStore

ACTOR = "ingest"
ALREADY_LOADED = "already loaded"
COUNTS = ("rows_total", "rows_loaded", "rows_quarantined", "rows_unchanged")
# Figures of a batch beyond its row's columns (in its audit entry and the ingest figures).
CHANGE_COUNTS = ("rows_inserted", "rows_revised", "rows_unchanged", "rows_late", "buckets_marked_stale")

log = logging.getLogger("waterline.ingest")


def read_gate_sensors(conn: Connection, municipality_id: str) -> pl.DataFrame:
    """The sensors registered to one municipality, as the gate needs them."""
    return read_frame(
        conn, load_sql("read_gate_sensors"), {"municipality_id": municipality_id}, SENSOR_SCHEMA
    )


def find_batch_by_checksum(conn: Connection, municipality_id: str, checksum: str):
    """The (id, status, error) of the batch holding this file's checksum, or None."""
    return run_sql(
        conn,
        "find_batch_by_checksum",
        {"municipality_id": municipality_id, "checksum_sha256": checksum},
    ).first()


def load_file(
    store: ObjectStore,
    municipality_id: str,
    key: str,
    sensors: pl.DataFrame,
    *,
    clock_skew_seconds: int,
    now: datetime | None = None,
) -> dict:
    """Gate and load one file once; returns its figures (status loaded, failed or already loaded).

    A file that cannot be parsed gets a failed batch with a plain reason. Any other error
    propagates and leaves nothing behind: the rerun loads the file in full.
    """
    started = time.perf_counter()
    data = store.get_bytes(key)
    checksum = hashlib.sha256(data).hexdigest()
    figures = {"file": key, "checksum_sha256": checksum, **dict.fromkeys(COUNTS, 0)}
    with begin() as conn:
        existing = find_batch_by_checksum(conn, municipality_id, checksum)
    if existing is not None and existing.status == "loaded":
        return {**figures, "status": ALREADY_LOADED, "batch_id": existing.id}
    retry_of = existing.id if existing is not None else None
    fmt = file_format(key) or "unknown"
    try:
        raw, timezone = read_inbox_file(store, municipality_id, key, data, fmt)
    except UnreadableFile as exc:
        failed = {**figures, "status": "failed", "error": str(exc)}
        if existing is not None and existing.error == str(exc):
            # The same bytes failed the same way before: report it, do not record it again.
            return {**failed, "batch_id": existing.id}
        with begin() as conn:
            batch_id = record_failed_batch(
                conn, municipality_id, store.url(key), checksum, fmt, str(exc), retry_of
            )
        log.warning("%s: file %s not loaded: %s", municipality_id, key, exc)
        return {**failed, "batch_id": batch_id}
    gate = check_readings(
        raw,
        sensors,
        municipality_id=municipality_id,
        now=now or utcnow(),
        clock_skew_seconds=clock_skew_seconds,
        timezone=timezone,
    )
    try:
        with begin() as conn:
            counts = write_batch(
                conn, municipality_id, store.url(key), checksum, fmt, gate, retry_of
            )
    except IntegrityError:
        # Another worker loaded the same file at the same moment: its batch won the unique key.
        with begin() as conn:
            existing = find_batch_by_checksum(conn, municipality_id, checksum)
        if existing is None or existing.status != "loaded":
            raise
        return {**figures, "status": ALREADY_LOADED, "batch_id": existing.id}
    log.info(
        "%s: loaded %s: %d rows loaded, %d quarantined, %d unchanged",
        municipality_id,
        key,
        counts["rows_loaded"],
        counts["rows_quarantined"],
        counts["rows_unchanged"],
    )
    return {
        **figures,
        **counts,
        "status": "loaded",
        "gx_seconds": gate.validation["gx_seconds"],
        "seconds": round(time.perf_counter() - started, 4),
    }


def write_batch(
    conn: Connection,
    municipality_id: str,
    source: str,
    checksum: str,
    fmt: str,
    gate: GateResult,
    retry_of: int | None = None,
) -> dict:
    """In the caller's transaction: the batch row, its quarantined rows, its readings, its audit."""
    lock_municipality(conn, municipality_id)  # one writer of a tenant's readings at a time
    batch_id = _start_batch(conn, municipality_id, source, checksum, fmt, retry_of)
    write_quarantined(conn, municipality_id, batch_id, gate.quarantined)
    changes = write_readings(conn, municipality_id, batch_id, gate.readings)
    counts = {
        "batch_id": batch_id,
        "rows_total": gate.rows_total,
        "rows_loaded": changes["rows_inserted"] + changes["rows_revised"],
        "rows_quarantined": gate.quarantined.height,
        "rows_unchanged": changes["rows_unchanged"],
    }
    finish_batch(conn, municipality_id, batch_id, counts, changes, gate.validation, ACTOR)
    return {**counts, **changes}


def write_quarantined(
    conn: Connection, municipality_id: str, batch_id: int, quarantined: pl.DataFrame
) -> None:
    """The rows the gate refused, with their original values and every reason."""
    rows = quarantined.select(
        pl.lit(municipality_id).alias("municipality_id"),
        pl.lit(batch_id).alias("batch_id"),
        "row_number",
        "raw",
        json_text(pl.col("reasons")).alias("reasons"),
        pl.lit(utcnow()).cast(pl.Datetime("us", "UTC")).alias("created_at"),
    )
    bulk_insert(conn, "quarantined_rows", rows)


def write_readings(
    conn: Connection, municipality_id: str, batch_id: int, readings: pl.DataFrame
) -> dict:
    """Insert new readings, keep and replace changed ones, skip equal ones; mark late buckets.

    Set-based: the batch goes into a temporary table (COPY on PostgreSQL), each incoming row is
    matched once against the stored reading of its (sensor, time), then four statements act on
    the whole batch. Returns the figures: rows inserted, revised, unchanged and late, and the
    aggregate buckets marked stale.
    """
    changes = dict.fromkeys(CHANGE_COUNTS, 0)
    if readings.is_empty():
        return changes
    tz = municipality_timezone(conn, municipality_id)
    staged = with_buckets(readings.select("sensor_id", "observed_at", "value"), tz)
    run_sql(conn, "drop_incoming_readings")
    run_sql(conn, "create_incoming_readings")
    append_frame(conn, "incoming_readings", staged)
    now = db_value(conn, utcnow())
    params = {"municipality_id": municipality_id, "batch_id": batch_id}
    matched = run_sql(conn, "classify_incoming_readings").rowcount
    stale = run_sql(conn, "mark_stale_buckets", {**params, "marked_at": now}).rowcount
    revised = 0
    if matched:
        revised = run_sql(conn, "insert_reading_revisions", {**params, "revised_at": now}).rowcount
    if revised:
        run_sql(conn, "update_revised_readings", {"batch_id": batch_id})
    inserted = run_sql(conn, "insert_new_readings", params).rowcount
    late = run_sql(conn, "count_late_readings", {"batch_id": batch_id}).scalar_one() if stale else 0
    run_sql(conn, "drop_incoming_readings")
    return {
        "rows_inserted": inserted,
        "rows_revised": revised,
        "rows_unchanged": matched - revised,
        "rows_late": late,
        "buckets_marked_stale": stale,
    }


def finish_batch(
    conn: Connection,
    municipality_id: str,
    batch_id: int,
    counts: dict,
    changes: dict,
    validation: dict | None,
    actor: str,
    details: dict | None = None,
) -> None:
    """Mark the batch loaded with its figures; audit it, and its revisions as one entry."""
    row = conn.execute(
        update(IngestBatch)
        .where(IngestBatch.id == batch_id)
        .values(
            status="loaded",
            error=None,
            validation=validation,
            finished_at=utcnow(),
            **{k: counts[k] for k in COUNTS},
        )
        .returning(IngestBatch.source, IngestBatch.checksum_sha256)
    ).one()
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=actor,
        action="batch.loaded",
        entity_type="ingest_batch",
        entity_id=batch_id,
        details={
            "source": row.source,
            "checksum_sha256": row.checksum_sha256,
            **{k: counts[k] for k in COUNTS},
            **changes,
            **(details or {}),
        },
    )
    if changes["rows_revised"]:
        record_audit(
            conn,
            municipality_id=municipality_id,
            actor=actor,
            action="readings.revised",
            entity_type="ingest_batch",
            entity_id=batch_id,
            details=revision_summary(conn, batch_id),
        )


def revision_summary(conn: Connection, batch_id: int) -> dict:
    """What a batch revised: how many readings, of which sensors, over which times, from which batches."""
    row = run_sql(conn, "summarise_batch_revisions", {"batch_id": batch_id}).one()
    sensors = [r.sensor_id for r in run_sql(conn, "list_batch_revised_sensors", {"batch_id": batch_id})]
    old_batches = [r.old_batch_id for r in run_sql(conn, "list_batch_revised_from", {"batch_id": batch_id})]
    return {
        "rows_revised": row.count_revised,
        "first_observed_at": _iso(row.first_observed_at),
        "last_observed_at": _iso(row.last_observed_at),
        "sensor_ids": sensors,
        "old_batch_ids": old_batches,
    }


def _iso(value: object) -> str | None:
    """A timestamp from either dialect as ISO text (SQLite returns the stored text)."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def record_failed_batch(
    conn: Connection,
    municipality_id: str,
    source: str,
    checksum: str,
    fmt: str,
    error: str,
    retry_of: int | None = None,
) -> int:
    """A failed batch with its plain-language error (an earlier failure of the file is reused)."""
    now = utcnow()
    values = {
        "source": source,
        "file_format": fmt,
        "status": "failed",
        "error": error,
        "started_at": now,
        "finished_at": now,
        **dict.fromkeys(COUNTS, 0),
    }
    if retry_of is None:
        batch_id = conn.execute(
            insert(IngestBatch).values(
                municipality_id=municipality_id, checksum_sha256=checksum, **values
            )
        ).inserted_primary_key[0]
    else:
        batch_id = retry_of
        conn.execute(update(IngestBatch).where(IngestBatch.id == batch_id).values(**values))
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=ACTOR,
        action="batch.failed",
        entity_type="ingest_batch",
        entity_id=batch_id,
        details={"source": source, "checksum_sha256": checksum, "error": error},
    )
    return batch_id


def _start_batch(
    conn: Connection,
    municipality_id: str,
    source: str,
    checksum: str,
    fmt: str,
    retry_of: int | None,
) -> int:
    """The batch row in status `loading` (a retried failed file reuses its failed row)."""
    values = {
        "source": source,
        "file_format": fmt,
        "status": "loading",
        "error": None,
        "started_at": utcnow(),
        "finished_at": None,
        **dict.fromkeys(COUNTS, 0),
    }
    if retry_of is not None:
        updated = conn.execute(
            update(IngestBatch)
            .where(IngestBatch.id == retry_of, IngestBatch.status == "failed")
            .values(**values)
        )
        if updated.rowcount == 1:
            return retry_of
    return conn.execute(
        insert(IngestBatch).values(
            municipality_id=municipality_id, checksum_sha256=checksum, **values
        )
    ).inserted_primary_key[0]
