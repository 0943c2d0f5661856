"""HTTP sources: pull pages of readings from a JSON API, one ingest batch per page.

Declared like file sources, in `<inbox>/<municipality>/sources/<name>.yaml` with `kind: http`:

    kind: http
    url: https://scada.example/api/readings
    paging: {style: cursor, param: cursor, next_field: next_cursor}   # or {style: since, param: since}
    records: readings            # the field of each page body holding its records
    auth: {env: RIVERTON_SCADA_TOKEN, header: Authorization, scheme: Bearer}
    layout: long                 # and every other field of a file mapping (time, timezone, ...)

Paging: `cursor` sends the stored cursor as `?<param>=` and continues with the body's
`next_field` until it is null or repeats; `since` sends the latest loaded time (UTC, ISO-8601)
and continues until a page has no records. A page body is kept in the inbox at
`<municipality>/pulled/<name>/<sha256>.json` and loaded by `load_file` like any file, so the
checksum of the body makes each page load exactly once. The cursor is stored in
`source_cursors` after its page loaded: a run stopped half-way continues at the first page it
had not finished, and a page seen again loads nothing twice. Connect errors, timeouts, 5xx and
429 are retried with exponential backoff (Retry-After honoured, capped by `max_wait_seconds`).
The secret comes from the environment variable named in `auth.env` and is never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import polars as pl
from sqlalchemy import select, update

from tasks.database import begin
from tasks.ingest.files import UnreadableFile, read_mapped_file
from tasks.ingest.load import find_batch_by_checksum, load_file, record_failed_batch
from tasks.ingest.mappings import (
    PULLED_FOLDER,
    BadMapping,
    SourceMapping,
    declared_kind,
    mapping_key,
    read_mapping,
    source_names,
)
from tasks.models import SourceCursor, utcnow
from tasks.storage import ObjectStore

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_ERRORS = (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError)

log = logging.getLogger("waterline.ingest")


class SourceUnavailable(RuntimeError):
    """The API did not answer usefully after every retry; the message holds no secret."""


def http_sources(store: ObjectStore, municipality_id: str) -> list[str]:
    """The declared sources whose mapping says `kind: http` (a bad mapping is kept: it must fail)."""
    return [
        name
        for name in source_names(store, municipality_id)
        if declared_kind(store.get_bytes(mapping_key(municipality_id, name))) == "http"
    ]


def retry_wait(response: httpx.Response | None, attempt: int, backoff_seconds: float) -> float:
    """Seconds to wait before retry `attempt` (0-based): Retry-After if given, else 2**attempt backoff."""
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        header = header.strip()
        if header.isdigit():
            return float(header)
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return backoff_seconds * 2**attempt


def fetch_page(
    client: httpx.Client,
    url: str,
    params: dict,
    mapping: SourceMapping,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """GET one page, retrying connect errors, timeouts, 5xx and 429; other 4xx fail at once."""
    attempts = mapping.retries + 1
    for attempt in range(attempts):
        response = None
        try:
            response = client.get(url, params=params)
        except RETRY_ERRORS as exc:
            problem = f"{type(exc).__name__}"
        else:
            if response.status_code not in RETRY_STATUSES:
                if response.is_error:
                    raise SourceUnavailable(f"{url} answered HTTP {response.status_code}")
                return response
            problem = f"HTTP {response.status_code}"
        if attempt + 1 == attempts:
            raise SourceUnavailable(f"{url} failed {attempts} time(s); last: {problem}")
        wait = min(retry_wait(response, attempt, mapping.backoff_seconds), mapping.max_wait_seconds)
        log.warning("%s: %s, retry %d/%d in %.1f s", url, problem, attempt + 1, mapping.retries, wait)
        sleep(wait)
    raise AssertionError("unreachable")


def auth_headers(mapping: SourceMapping) -> dict[str, str]:
    """The auth header from the environment (missing variable: an error naming it, not a value)."""
    if mapping.auth is None:
        return {}
    secret = os.environ.get(mapping.auth.env)
    if not secret:
        raise SourceUnavailable(f"environment variable {mapping.auth.env} (the source's secret) is not set")
    value = f"{mapping.auth.scheme} {secret}" if mapping.auth.scheme else secret
    return {mapping.auth.header: value}


def read_cursor(municipality_id: str, name: str) -> str | None:
    with begin() as conn:
        return conn.scalar(
            select(SourceCursor.cursor).where(
                SourceCursor.municipality_id == municipality_id, SourceCursor.source == name
            )
        )


def save_cursor(municipality_id: str, name: str, cursor: str | None) -> None:
    """Store where the source stopped (insert the first time, update after)."""
    with begin() as conn:
        updated = conn.execute(
            update(SourceCursor)
            .where(SourceCursor.municipality_id == municipality_id, SourceCursor.source == name)
            .values(cursor=cursor, updated_at=utcnow())
        )
        if updated.rowcount == 0:
            conn.execute(
                SourceCursor.__table__.insert().values(
                    municipality_id=municipality_id, source=name, cursor=cursor, updated_at=utcnow()
                )
            )


def next_cursor(body: bytes, mapping: SourceMapping, cursor: str | None) -> str | None:
    """The cursor after this page: the body's `next_field` (cursor) or its latest time (since)."""
    if mapping.paging.style == "cursor":
        value = json.loads(body).get(mapping.paging.next_field)
        return None if value is None else str(value)
    frame = read_mapped_file(body, "json", mapping)
    latest = frame.select(
        pl.col("observed_at").cast(pl.String).str.to_datetime(
            format="%+", time_zone="UTC", time_unit="us", strict=False
        ).max()
    ).item()
    return cursor if latest is None else latest.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pull_http_source(
    store: ObjectStore,
    municipality_id: str,
    name: str,
    sensors: pl.DataFrame,
    *,
    clock_skew_seconds: int,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Pull pages from the stored cursor on, each loaded as one batch; figures of the pull.

    Never raises for the source's own faults: a bad mapping becomes a failed batch, an API that
    stays unavailable is reported in the figures (`status: failed`) and the cursor stays put.
    """
    figures: dict = {"source": name, "status": "pulled", "pages": 0, "batches": []}
    try:
        mapping = read_mapping(store, municipality_id, name)
    except BadMapping as exc:
        figures["batches"].append(_failed_mapping(store, municipality_id, name, str(exc)))
        return {**figures, "status": "failed", "error": str(exc)}
    cursor = read_cursor(municipality_id, name)
    try:
        with httpx.Client(timeout=mapping.timeout_seconds, headers=auth_headers(mapping)) as client:
            for _ in range(mapping.max_pages):
                params = {mapping.paging.param: cursor} if cursor is not None else {}
                body = fetch_page(client, mapping.url, params, mapping, sleep).content
                if _empty_page(body, mapping):
                    break  # nothing new yet: the cursor stays where it is
                key = f"{municipality_id}/{PULLED_FOLDER}/{name}/{hashlib.sha256(body).hexdigest()}.json"
                if not store.exists(key):
                    store.put_bytes(key, body)
                batch = load_file(
                    store, municipality_id, key, sensors, clock_skew_seconds=clock_skew_seconds, now=now
                )
                figures["batches"].append(batch)
                figures["pages"] += 1
                if batch["status"] == "failed":
                    return {**figures, "status": "failed", "error": batch["error"], "cursor": cursor}
                following = next_cursor(body, mapping, cursor)
                if following is None or following == cursor:
                    break
                cursor = following
                save_cursor(municipality_id, name, cursor)
    except (SourceUnavailable, UnreadableFile) as exc:
        log.error("%s: source %s not pulled: %s", municipality_id, name, exc)
        return {**figures, "status": "failed", "error": str(exc), "cursor": cursor}
    except (ValueError, AttributeError) as exc:  # a body that is not the JSON object it should be
        error = f"a page of {mapping.url} is not a JSON object with {mapping.records!r}: {exc}"
        log.error("%s: source %s not pulled: %s", municipality_id, name, error)
        return {**figures, "status": "failed", "error": error, "cursor": cursor}
    return {**figures, "cursor": cursor}


def _empty_page(body: bytes, mapping: SourceMapping) -> bool:
    """A page whose records are an empty list (anything else malformed is for the loader to refuse)."""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get(mapping.records) == []


def _failed_mapping(store: ObjectStore, municipality_id: str, name: str, error: str) -> dict:
    """A failed batch for a bad http mapping, keyed by the mapping's bytes (recorded once)."""
    key = mapping_key(municipality_id, name)
    data = store.get_bytes(key)
    checksum = hashlib.sha256(data).hexdigest()
    figures = {"file": key, "checksum_sha256": checksum, "status": "failed", "error": error}
    figures.update(rows_total=0, rows_loaded=0, rows_quarantined=0, rows_unchanged=0)
    with begin() as conn:
        existing = find_batch_by_checksum(conn, municipality_id, checksum)
        if existing is not None and existing.error == error:
            return {**figures, "batch_id": existing.id}
        retry_of = existing.id if existing is not None else None
        batch_id = record_failed_batch(
            conn, municipality_id, store.url(key), checksum, "yaml", error, retry_of
        )
    log.error("%s: source mapping %s rejected: %s", municipality_id, key, error)
    return {**figures, "batch_id": batch_id}
