"""Writing an export: read it chunk by chunk in one snapshot, write the file, deliver it to object
storage or a local path; a bulk export zips every kind (and the two PDFs) with a manifest."""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import Connection

from tasks.database import begin_snapshot
from tasks.exports.aggregates import AGGREGATE_EXPORT_SCHEMA, aggregate_chunks
from tasks.exports.health import HEALTH_SCHEMA, UPTIME_SCHEMA, sensor_uptime_chunks, system_health_chunks
from tasks.exports.pdf import PDF_MAX_ROWS, render_export_pdf
from tasks.exports.request import BULK, KINDS, PDF_KINDS, ExportRequest, utc_window
from tasks.exports.sources import (
    ALERT_SCHEMA,
    AUDIT_SCHEMA,
    INCIDENT_SCHEMA,
    SENSOR_DATA_SCHEMA,
    alert_chunks,
    audit_chunks,
    incident_chunks,
    municipality_timezone,
    sensor_data_chunks,
)
from tasks.exports.usage import USAGE_SCHEMA, water_usage_chunks
from tasks.exports.writers import open_writer

SOURCES: dict[str, tuple[Callable, dict]] = {
    "sensor_data": (sensor_data_chunks, SENSOR_DATA_SCHEMA),
    "alerts": (alert_chunks, ALERT_SCHEMA),
    "incidents": (incident_chunks, INCIDENT_SCHEMA),
    "water_usage": (water_usage_chunks, USAGE_SCHEMA),
    "system_health": (system_health_chunks, HEALTH_SCHEMA),
    "sensor_uptime": (sensor_uptime_chunks, UPTIME_SCHEMA),
    "audit_log": (audit_chunks, AUDIT_SCHEMA),
    "aggregates": (aggregate_chunks, AGGREGATE_EXPORT_SCHEMA),
}
NOTES = [
    "Every file was read from one snapshot of the database: together they describe one moment.",
    "Times are UTC (ISO 8601); days are the municipality's local days.",
    "Text that a spreadsheet would run as a formula (starting with = + - @, tab or carriage return) "
    "is prefixed with an apostrophe in CSV and XLSX.",
]


def prefetched(chunks: Iterator[pl.DataFrame], depth: int = 2) -> Iterator[pl.DataFrame]:
    """The chunks, read `depth` ahead on a thread so reading and writing overlap (at most
    `depth` + 1 chunks in memory)."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                slots.put(chunk)
            slots.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            slots.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def write_kind(request: ExportRequest, path: Path, conn: Connection | None = None) -> int:
    """Write one kind's export to `path` in the request's format, read in one snapshot (`conn`'s
    when given, from `begin_snapshot`); the rows written."""
    if conn is None:
        with begin_snapshot() as snapshot:
            return write_kind(request, path, snapshot)
    source, schema = SOURCES[request.kind]
    timezone = municipality_timezone(conn, request.municipality_id)
    start, end = utc_window(request.from_day, request.to_day, timezone)
    chunks = source(conn, request, start, end, timezone)
    if request.fmt == "pdf":
        return _write_pdf(request, chunks, path, conn, start, end, timezone)
    writer = open_writer(request.fmt, path, schema, request.kind)
    try:
        for chunk in prefetched(chunks):
            writer.write(chunk)
    finally:
        rows = writer.close()
    return rows


def _write_pdf(request, chunks, path, conn, start, end, timezone) -> int:  # noqa: ANN001
    """The first PDF_MAX_ROWS rows on the page; the rest only counted."""
    kept, total = [], 0
    for chunk in chunks:
        if total < PDF_MAX_ROWS:
            kept.append(chunk.head(PDF_MAX_ROWS - total))
        total += chunk.height
    frame = pl.concat(kept) if kept else pl.DataFrame(schema=SOURCES[request.kind][1])
    extra = None
    if request.kind == "system_health":
        uptime = pl.concat(list(sensor_uptime_chunks(conn, request, start, end, timezone)))
        extra = (
            uptime.group_by("station_id", "sensor_id", "parameter")
            .agg(pl.col("uptime_pct").mean().round(2), pl.col("count_readings").sum())
            .sort("uptime_pct", "sensor_id")
            .head(PDF_MAX_ROWS)
        )
    path.write_bytes(render_export_pdf(request, frame, total, extra))
    return total


def write_bulk(request: ExportRequest, folder: Path) -> tuple[Path, dict]:
    """Every kind in the request's format, the two PDFs and a manifest, zipped, all read in one
    snapshot; the zip and its rows."""
    rows: dict[str, int] = {}
    files: list[Path] = []
    with begin_snapshot() as conn:  # every file of the archive from the same state of the data
        for kind in KINDS:
            part = request.for_kind(kind)
            files.append(folder / part.file_name())
            rows[part.file_name()] = write_kind(part, files[-1], conn)
            if kind in PDF_KINDS:
                pdf = replace(part, fmt="pdf")
                files.append(folder / pdf.file_name())
                rows[pdf.file_name()] = write_kind(pdf, files[-1], conn)
    manifest = {
        "municipality_id": request.municipality_id,
        "from_day": request.from_day.isoformat(),
        "to_day": request.to_day.isoformat(),
        "format": request.fmt,
        "filters": {k: list(v) for k, v in request.filters().items()},
        "generated_at": datetime.now(UTC).isoformat(),
        "rows": rows,
        "notes": NOTES,
    }
    archive = folder / request.file_name()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        for file in files:
            zf.write(file, file.name)  # streamed from disk, a block at a time
            file.unlink()
    return archive, rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def deliver(path: Path, request: ExportRequest, destination: str | None) -> str:
    """Put the file where it was asked: object storage (no destination), an s3:// or file:// URL, or
    a local path (a folder gets the export's own file name). Its URL or path."""
    from tasks.storage import object_store, open_url

    if destination is None:
        store = object_store()
        key = request.object_key()
        with path.open("rb") as source, store.open(key, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        return store.url(key)
    if "://" in destination and not destination.startswith("file://"):
        url = (
            destination.rstrip("/") + "/" + request.file_name() if destination.endswith("/") else destination
        )
        with path.open("rb") as source, open_url(url, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        return url
    target = Path(destination.removeprefix("file://")).expanduser()
    if target.is_dir() or destination.endswith("/"):
        target = target / request.file_name()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)
    return str(target.resolve())


def run_export(request: ExportRequest, destination: str | None = None) -> dict:
    """Write and deliver one export; what it wrote: rows, bytes, sha256 and where."""
    with tempfile.TemporaryDirectory(prefix="waterline-export-") as folder:
        if request.kind == BULK:
            path, rows = write_bulk(request, Path(folder))
            total = sum(rows.values())
        else:
            path = Path(folder) / request.file_name()
            total = write_kind(request, path)
            rows = {request.file_name(): total}
        size, sha256 = path.stat().st_size, _sha256(path)
        where = deliver(path, request, destination)
    return {
        "kind": request.kind,
        "format": "zip" if request.kind == BULK else request.fmt,
        "municipality_id": request.municipality_id,
        "from_day": request.from_day.isoformat(),
        "to_day": request.to_day.isoformat(),
        "rows": total,
        "files": rows,
        "size_bytes": size,
        "sha256": sha256,
        "location": where,
    }
