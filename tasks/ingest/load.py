"""Load one inbox file exactly once: batch row, quarantined rows and readings in one transaction."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, insert, update
from sqlalchemy.exc import IntegrityError

from tasks.analytics.aggregates import with_buckets
from tasks.analytics.readings import db_value, lock_municipality, municipality_timezone
from tasks.audit import record_audit
from tasks.database import append_frame, begin, bulk_insert, load_sql, read_frame, run_sql
from tasks.ingest.files import InboxFile, UnreadableFile, file_format, read_inbox_file, with_refused_lines
from tasks.ingest.pieces import (
    PIECEWISE_FORMATS,
    SAMPLE_BYTES,
    InboxChunks,
    chunks_of_pieces,
    estimated_rows,
    file_sha256,
    local_copy,
    read_pieces,
)
from tasks.models import IngestBatch, utcnow
from tasks.quality.docs import publish_validation_docs
from tasks.quality.gate import (
    SENSOR_SCHEMA,
    GateResult,
    check_readings,
    json_text,
    no_validation,
    sensor_chunks,
)
from tasks.settings import get_settings
from tasks.storage import ObjectStore, object_store

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
    chunk_rows: int | None = None,
) -> dict:
    """Gate and load one file once; returns its figures (status loaded, failed or already loaded).

    A file that cannot be parsed gets a failed batch with a plain reason. Any other error
    propagates and leaves nothing behind: the rerun loads the file in full. A CSV or JSON Lines
    file of more than WATERLINE_INGEST_IN_MEMORY_ROWS rows (estimated from its first 4 MB) is
    read in pieces and spooled to disk by chunk, so memory stays bounded whatever its size.
    """
    settings = get_settings()
    rows = chunk_rows or settings.ingest_chunk_rows
    fmt = file_format(key) or "unknown"
    with local_copy(store, key) as path, tempfile.TemporaryDirectory(prefix="waterline-chunks-") as spool:

        def read_whole() -> InboxChunks:
            raw, timezone, refused, validations = read_inbox_file(
                store, municipality_id, key, path.read_bytes(), fmt
            )
            return InboxChunks(sensor_chunks(raw, rows), timezone, refused, validations)

        def read_inbox_piece(data: bytes, plain: str) -> InboxFile:
            return read_inbox_file(store, municipality_id, key, data, plain)

        def read_in_pieces() -> InboxChunks:
            return chunks_of_pieces(read_pieces(path, fmt, read_inbox_piece), rows, Path(spool))

        large = (
            fmt in PIECEWISE_FORMATS
            and path.stat().st_size > SAMPLE_BYTES
            and estimated_rows(path, fmt, read_inbox_piece) > settings.ingest_in_memory_rows
        )
        return _load_once(
            store,
            municipality_id,
            key,
            fmt,
            file_sha256(path),
            read_in_pieces if large else read_whole,
            sensors,
            clock_skew_seconds=clock_skew_seconds,
            now=now,
        )


def _load_once(
    store: ObjectStore,
    municipality_id: str,
    key: str,
    fmt: str,
    checksum: str,
    read: Callable[[], InboxChunks],
    sensors: pl.DataFrame,
    *,
    clock_skew_seconds: int,
    now: datetime | None,
) -> dict:
    """`load_file` once the file's checksum is known: `read` gives its chunks, timezone and refused lines."""
    started = time.perf_counter()
    figures = {"file": key, "checksum_sha256": checksum, **dict.fromkeys(COUNTS, 0)}
    with begin() as conn:
        existing = find_batch_by_checksum(conn, municipality_id, checksum)
    if existing is not None and existing.status == "loaded":
        return {**figures, "status": ALREADY_LOADED, "batch_id": existing.id}
    retry_of = existing.id if existing is not None else None
    try:
        chunks, timezone, refused, source_validations = read()
        read_seconds = time.perf_counter() - started
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
    judge = partial(
        check_readings,
        sensors=sensors,
        municipality_id=municipality_id,
        now=now or utcnow(),
        clock_skew_seconds=clock_skew_seconds,
        timezone=timezone,
    )
    gates = with_refused_lines(map(judge, chunks), refused)  # a salvaged file's broken lines too
    try:
        with begin() as conn:
            counts = write_batch(
                conn, municipality_id, store.url(key), checksum, fmt, gates, retry_of, source_validations
            )
    except IntegrityError:
        # Another worker loaded the same file at the same moment: its batch won the unique key.
        with begin() as conn:
            existing = find_batch_by_checksum(conn, municipality_id, checksum)
        if existing is None or existing.status != "loaded":
            raise
        return {**figures, "status": ALREADY_LOADED, "batch_id": existing.id}
    gx_results = counts.pop("gx_results")  # kept out of the figures: they go to the batch's Data Docs
    docs_url = publish_validation_docs(
        object_store(), municipality_id, counts["batch_id"], gx_results, source=store.url(key)
    )
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
        "validation_docs_url": docs_url,
        "read_seconds": round(read_seconds, 4),
        "seconds": round(time.perf_counter() - started, 4),
    }


def write_batch(
    conn: Connection,
    municipality_id: str,
    source: str,
    checksum: str,
    fmt: str,
    gates: Iterable[GateResult],
    retry_of: int | None = None,
    source_validations: Iterable[dict] = (),
) -> dict:
    """In the caller's transaction: the batch row, its quarantined rows, its readings, its audit.

    `gates` yields the gate's verdict on each chunk of the file (see `sensor_chunks`), judged
    lazily: one chunk at a time is in memory.
    """
    lock_municipality(conn, municipality_id)  # one writer of a tenant's readings at a time
    batch_id = _start_batch(conn, municipality_id, source, checksum, fmt, retry_of)
    tz = municipality_timezone(conn, municipality_id)
    counts = dict.fromkeys(("rows_total", "rows_quarantined"), 0)
    changes = dict.fromkeys(CHANGE_COUNTS, 0)
    validations = []
    gx_results = []
    write_seconds = 0.0
    for gate in gates:
        started = time.perf_counter()
        write_quarantined(conn, municipality_id, batch_id, gate.quarantined)
        written = write_readings(conn, municipality_id, batch_id, gate.readings, tz)
        write_seconds += time.perf_counter() - started
        counts["rows_total"] += gate.rows_total
        counts["rows_quarantined"] += gate.quarantined.height
        for name in CHANGE_COUNTS:
            changes[name] += written[name]
        validations.append(gate.validation)
        gx_results.append(gate.gx_result)
    counts = {
        "batch_id": batch_id,
        **counts,
        "rows_loaded": changes["rows_inserted"] + changes["rows_revised"],
        "rows_unchanged": changes["rows_unchanged"],
    }
    validation = merge_validations(validations)
    if source_validations:  # suites that judged the file's own rows first (wide sources)
        validation = {**validation, "source": merge_validations(list(source_validations))}
    finish_batch(conn, municipality_id, batch_id, counts, changes, validation, ACTOR)
    return {
        **counts,
        **changes,
        "chunks": len(validations),
        "gx_seconds": validation["gx_seconds"],
        "gate_seconds": validation["gate_seconds"],
        "write_seconds": round(write_seconds, 4),
        "gx_results": gx_results,
    }


def merge_validations(validations: list[dict]) -> dict:
    """One batch's validation from its chunks': counts summed, an expectation failed if it failed anywhere."""
    if len(validations) == 1:
        return validations[0]
    if not validations:
        return no_validation()
    expectations = [dict(e) for e in validations[0]["expectations"]]
    for other in validations[1:]:
        for merged, e in zip(expectations, other["expectations"], strict=True):
            merged["success"] = merged["success"] and e["success"]
            merged["unexpected_count"] += e["unexpected_count"]
    successful = sum(e["success"] for e in expectations)
    statistics = {
        "evaluated_expectations": len(expectations),
        "successful_expectations": successful,
        "unsuccessful_expectations": len(expectations) - successful,
        "success_percent": 100.0 * successful / len(expectations) if expectations else 100.0,
    }
    return {
        **validations[0],
        "statistics": statistics,
        "expectations": expectations,
        "gx_seconds": round(sum(v["gx_seconds"] for v in validations), 4),
        "gate_seconds": round(sum(v["gate_seconds"] for v in validations), 4),
        "rows_failed": sum(v["rows_failed"] for v in validations),
        "chunks": len(validations),
    }


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


STORED_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "old_value": pl.Float64,
    "old_batch_id": pl.Int64,
}
LAST_BUCKET_SCHEMA = {"sensor_id": pl.String, "last_bucket_start": pl.Datetime("us", "UTC")}
# A day bucket lasts 23 to 25 hours: a reading before the latest bucket's start plus this may be
# in an aggregated bucket (mark_stale_buckets then decides exactly).
LATEST_BUCKET_SPAN = timedelta(hours=26)


def write_readings(
    conn: Connection,
    municipality_id: str,
    batch_id: int,
    readings: pl.DataFrame,
    tz: str | None = None,
) -> dict:
    """Insert new readings, keep and replace changed ones, skip equal ones; mark late buckets.

    The readings stored in the time span each sensor covers are read once (none for new data)
    and matched in Polars: new readings go straight into `readings` by COPY, in key order.
    Changed ones, and new ones that may fall in an aggregated bucket, go through a small
    temporary table for the set-based revision and stale-bucket statements. Returns the
    figures: rows inserted, revised, unchanged and late, and the buckets marked stale.
    """
    changes = dict.fromkeys(CHANGE_COUNTS, 0)
    if readings.is_empty():
        return changes
    tz = tz or municipality_timezone(conn, municipality_id)
    readings = readings.select("sensor_id", "observed_at", "value")
    ranges = readings.group_by("sensor_id").agg(
        first_at=pl.col("observed_at").min(), last_at=pl.col("observed_at").max()
    )
    run_sql(conn, "drop_incoming_ranges")
    run_sql(conn, "create_incoming_ranges")
    append_frame(conn, "incoming_ranges", ranges, analyze=True)
    stored = read_frame(conn, load_sql("read_stored_in_ranges"), schema=STORED_SCHEMA)
    last_buckets = read_frame(conn, load_sql("read_last_aggregated_buckets"), schema=LAST_BUCKET_SCHEMA)
    run_sql(conn, "drop_incoming_ranges")

    matched = readings.join(stored, on=["sensor_id", "observed_at"], how="left")
    is_new = pl.col("old_value").is_null()
    new = matched.filter(is_new).sort("sensor_id", "observed_at")
    append_frame(
        conn,
        "readings",
        new.select(
            "sensor_id",
            "observed_at",
            pl.lit(municipality_id).alias("municipality_id"),
            "value",
            pl.lit(2, dtype=pl.Int16).alias("qc_flag"),  # QARTOD 2: not evaluated yet
            pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
        ),
    )
    revised = matched.filter(pl.col("old_value") != pl.col("value"))
    late_candidates = new.join(last_buckets, on="sensor_id", how="inner").filter(
        pl.col("observed_at") < pl.col("last_bucket_start") + LATEST_BUCKET_SPAN
    )
    changes["rows_inserted"] = new.height
    changes["rows_revised"] = revised.height
    changes["rows_unchanged"] = matched.height - new.height - revised.height
    staged = pl.concat([revised, late_candidates.select(revised.columns)])
    if staged.is_empty():
        return changes

    run_sql(conn, "drop_incoming_readings")
    run_sql(conn, "create_incoming_readings")
    append_frame(conn, "incoming_readings", with_buckets(staged, tz), analyze=True)
    now = db_value(conn, utcnow())
    params = {"municipality_id": municipality_id, "batch_id": batch_id}
    stale = run_sql(conn, "mark_stale_buckets", {**params, "marked_at": now}).rowcount
    if revised.height:
        run_sql(conn, "insert_reading_revisions", {**params, "revised_at": now})
        run_sql(conn, "update_revised_readings", {"batch_id": batch_id})
    if stale:
        changes["rows_late"] = run_sql(conn, "count_late_readings", {"batch_id": batch_id}).scalar_one()
    changes["buckets_marked_stale"] = stale
    run_sql(conn, "drop_incoming_readings")
    return changes


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
