"""Prefect tasks of ingestion, and the plain function behind `waterline ingest [PATH]`."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from prefect import task
from sqlalchemy.exc import DBAPIError

from tasks.database import begin
from tasks.ingest.files import inbox_files
from tasks.ingest.http_source import http_sources, pull_http_source
from tasks.ingest.load import ALREADY_LOADED, CHANGE_COUNTS, COUNTS, load_file, read_gate_sensors
from tasks.ingest.registries import apply_folder_registry, apply_registries, require_municipality
from tasks.settings import get_settings
from tasks.stages import run_logger, stage
from tasks.storage import ObjectStore, inbox_store


def _logger() -> logging.Logger | logging.LoggerAdapter:
    return run_logger("waterline.ingest")


def _retry_on_io(task, task_run, state) -> bool:  # noqa: ANN001
    """Retry only when the database or the object store failed, never for bad input or bugs."""
    try:
        state.result()
    except (DBAPIError, OSError):
        return True
    except Exception:  # noqa: BLE001
        return False
    return False


def ingest_folder(store: ObjectStore, municipality_id: str, now: datetime | None = None) -> dict:
    """Apply the municipality's registry, load its pending files in name order, pull its HTTP sources."""
    with stage("ingest", municipality_id) as result:
        registry, registry_error = apply_folder_registry(store, municipality_id)
        require_municipality(municipality_id)
        with begin() as conn:
            sensors = read_gate_sensors(conn, municipality_id)
        keys, ignored = inbox_files(store, municipality_id)
        skew = get_settings().clock_skew_seconds
        batches = [
            load_file(store, municipality_id, key, sensors, clock_skew_seconds=skew, now=now)
            for key in keys
        ]
        pulls = [
            pull_http_source(store, municipality_id, name, sensors, clock_skew_seconds=skew, now=now)
            for name in http_sources(store, municipality_id)
        ]
        batches += [batch for pull in pulls for batch in pull["batches"]]
        statuses = [b["status"] for b in batches]
        result.rows = sum(b["rows_loaded"] for b in batches)
        result.details = {
            "files": len(batches),
            "files_loaded": statuses.count("loaded"),
            "files_already_loaded": statuses.count(ALREADY_LOADED),
            "files_failed": statuses.count("failed"),
            "files_ignored": len(ignored),
            **{name: sum(b.get(name, 0) for b in batches) for name in dict.fromkeys(COUNTS + CHANGE_COUNTS)},
            "gx_seconds": round(sum(b.get("gx_seconds", 0.0) for b in batches), 4),
            "registry": registry,
            **({"registry_error": registry_error} if registry_error else {}),
            "batches": batches,
            **({"sources": [{k: v for k, v in p.items() if k != "batches"} for p in pulls]} if pulls else {}),
        }
    return result.as_dict()


def store_for(inbox_url: str | None) -> ObjectStore:
    """The configured inbox, or a folder / s3:// URL laid out like it."""
    if inbox_url is None:
        return inbox_store()
    if "://" not in inbox_url:
        return ObjectStore(str(Path(inbox_url).resolve()))
    options = get_settings().storage_options() if inbox_url.startswith("s3://") else {}
    return ObjectStore(inbox_url, options)


def ingest_inbox(inbox_url: str | None = None) -> list[dict]:
    """Apply every registry and load every pending file of an inbox, without Prefect."""
    store = store_for(inbox_url)
    return [ingest_folder(store, m) for m in apply_registries(store)]


@task(
    name="sync_registries",
    task_run_name="sync-registries",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_on_io,
)
def sync_registries() -> list[str]:
    """Apply every registry.yaml in the inbox and list the registered municipalities found there."""
    return apply_registries(inbox_store())


@task(
    name="ingest_municipality",
    task_run_name="ingest-{municipality_id}",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_on_io,
)
def ingest_municipality(municipality_id: str) -> dict:
    """Load a municipality's pending inbox files through the quality gate, one transaction each."""
    figures = ingest_folder(inbox_store(), municipality_id)
    d = figures["details"]
    _logger().info(
        "%d file(s): %d loaded, %d already loaded, %d failed; rows %d loaded, %d quarantined, "
        "%d unchanged, %d revised, %d late (gate %.2f s)",
        d["files"],
        d["files_loaded"],
        d["files_already_loaded"],
        d["files_failed"],
        d["rows_loaded"],
        d["rows_quarantined"],
        d["rows_unchanged"],
        d["rows_revised"],
        d["rows_late"],
        d["gx_seconds"],
    )
    return figures
