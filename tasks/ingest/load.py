"""Load one inbox file exactly once: batch row, quarantined rows and readings in one transaction."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime

import polars as pl
from sqlalchemy import Connection, insert, update
from sqlalchemy.exc import IntegrityError

from tasks.audit import record_audit
from tasks.database import begin, bulk_insert, load_sql, read_frame, run_sql
from tasks.ingest.files import UnreadableFile, file_format, read_long_file
from tasks.models import IngestBatch, utcnow
from tasks.quality.gate import SENSOR_SCHEMA, GateResult, check_readings, json_text
from tasks.storage import ObjectStore

ACTOR = "ingest"
ALREADY_LOADED = "already loaded"
COUNTS = ("rows_total", "rows_loaded", "rows_quarantined", "rows_unchanged")

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
        raw = read_long_file(data, fmt)
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
    batch_id = _start_batch(conn, municipality_id, source, checksum, fmt, retry_of)
    now = utcnow()
    quarantined = gate.quarantined.select(
        pl.lit(municipality_id).alias("municipality_id"),
        pl.lit(batch_id).alias("batch_id"),
        "row_number",
        "raw",
        json_text(pl.col("reasons")).alias("reasons"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("created_at"),
    )
    bulk_insert(conn, "quarantined_rows", quarantined)
    readings = gate.readings.with_columns(
        municipality_id=pl.lit(municipality_id),
        qc_flag=pl.lit(2, dtype=pl.Int16),  # QARTOD "not evaluated": the QC stage judges later
        batch_id=pl.lit(batch_id),
    )
    loaded = bulk_insert(conn, "readings", readings, conflict_columns=["sensor_id", "observed_at"])
    counts = {
        "batch_id": batch_id,
        "rows_total": gate.rows_total,
        "rows_loaded": loaded,
        "rows_quarantined": gate.quarantined.height,
        "rows_unchanged": gate.readings.height - loaded,
    }
    conn.execute(
        update(IngestBatch)
        .where(IngestBatch.id == batch_id)
        .values(
            status="loaded",
            error=None,
            validation=gate.validation,
            finished_at=utcnow(),
            **{k: counts[k] for k in COUNTS},
        )
    )
    record_audit(
        conn,
        municipality_id=municipality_id,
        actor=ACTOR,
        action="batch.loaded",
        entity_type="ingest_batch",
        entity_id=batch_id,
        details={"source": source, "checksum_sha256": checksum, **{k: counts[k] for k in COUNTS}},
    )
    return counts


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
