"""Great Expectations Data Docs of one ingest batch: rendered by GX, kept in object storage, linked
from the Prefect run.

A batch's page is `quality/<municipality>/batches/<batch_id>/index.html`. GX's validation page
inlines its own styles, loads Bootstrap, jQuery, Vega and Font Awesome from public CDNs and its
logo from GX's bucket; the only file of GX's 4 MB `static/` folder it links is the favicon, whose
relative path (`../../../static/images/favicon.ico`) leads to `quality/static/images/favicon.ico`,
written once per store. Pages are rendered one at a time with GX's own renderer and view (what its SiteBuilder
runs per validation), without the site index of every validation, which grows with each batch.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from sqlalchemy import Connection, update

from tasks.database import begin
from tasks.models import IngestBatch
from tasks.stages import in_prefect_run
from tasks.storage import ObjectStore

FAVICON_KEY = "quality/static/images/favicon.ico"
HTML_TYPE = "text/html; charset=utf-8"
PARTIAL = 20  # entries of each partial list, as GX's SUMMARY format keeps
COUNTS = ("element_count", "unexpected_count", "missing_count")

log = logging.getLogger("waterline.quality")

_static_written: set[str] = set()
_static_lock = threading.Lock()


def docs_key(municipality_id: str, batch_id: int) -> str:
    """The object key of a batch's Data Docs page."""
    return f"quality/{municipality_id}/batches/{batch_id}/index.html"


def write_validation_docs(
    store: ObjectStore,
    municipality_id: str,
    batch_id: int,
    results: Any,
    *,
    source: str | None = None,
) -> str:
    """Render GX Data Docs for one batch, store the page (and the shared favicon once); its URL.

    `results` is a GX ExpectationSuiteValidationResult, its JSON (`SuiteOutcome.gx_result`), or a
    list of them, one per chunk of the file, merged into one result first (`merge_results`).
    `source` (the file's URL) names the data asset on the page, without query or credentials.
    """
    result = merge_results(results if _is_sequence(results) else [results])
    html = render_validation_page(
        result,
        run_name=f"{municipality_id} batch {batch_id}",
        data_asset_name=_plain_url(source) if source else f"batch {batch_id}",
    )
    _write_static_once(store)
    key = docs_key(municipality_id, batch_id)
    _put(store, key, html.encode("utf-8"), HTML_TYPE)
    return store.url(key)


def render_validation_page(result: Mapping, *, run_name: str, data_asset_name: str) -> str:
    """The HTML of GX's validation results page for a JSON validation result."""
    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )

    meta = dict(result.get("meta") or {})
    meta["run_id"] = {"run_name": run_name, "run_time": _validated_at(meta).isoformat()}
    meta["batch_spec"] = {**(meta.get("batch_spec") or {}), "data_asset_name": data_asset_name}
    validation = expectationSuiteValidationResultSchema.load({**result, "meta": meta})
    renderer, view = _page_renderer()
    document = renderer.render(validation)
    # No data context id: GX would append it to the URL of its logo, fetched from its own bucket.
    return view.render(document, data_context_id=None, show_how_to_buttons=False)


def merge_results(results: Sequence[Any]) -> dict:
    """One JSON validation result from the results of a file's chunks (the same suite each).

    Counts add up and percentages are recomputed; an expectation fails if it failed in any chunk;
    partial lists are joined and cut to 20 entries, partial value counts summed.
    """
    from tasks.quality.expectations import summary_result

    dicts = [r if isinstance(r, Mapping) else summary_result(r) for r in results]
    if not dicts:
        raise ValueError("no validation result to merge")
    if len(dicts) == 1:
        return dict(dicts[0])
    first = dicts[0]
    by_expectation: dict[str, list[dict]] = {}
    for d in dicts:
        for item in d["results"]:
            by_expectation.setdefault(_expectation_key(item), []).append(item)
    merged_items = [_merge_item(items) for items in by_expectation.values()]
    successful = sum(bool(item["success"]) for item in merged_items)
    evaluated = len(merged_items)
    return {
        **first,
        "success": all(d["success"] for d in dicts),
        "results": merged_items,
        "statistics": {
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": successful / evaluated * 100 if evaluated else None,
        },
    }


def publish_docs_link(
    url: str, municipality_id: str, batch_id: int, *, description: str | None = None
) -> UUID | None:
    """A Prefect link artifact to a batch's Data Docs, only inside a flow or task run."""
    from prefect.artifacts import create_link_artifact

    if not in_prefect_run():
        return None
    return create_link_artifact(
        key=artifact_key(municipality_id),
        link=url,
        link_text=f"{municipality_id} batch {batch_id} validation",
        description=description or f"Great Expectations Data Docs of batch {batch_id} of {municipality_id}",
    )


def artifact_key(municipality_id: str) -> str:
    """The artifact key of a municipality's validation docs (each batch adds a version)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", municipality_id.lower()).strip("-")
    return f"validation-docs-{slug}"


def record_validation_docs_url(conn: Connection, batch_id: int, url: str) -> None:
    """Set the batch row's `validation_docs_url`, in the caller's transaction."""
    conn.execute(update(IngestBatch).where(IngestBatch.id == batch_id).values(validation_docs_url=url))


def publish_validation_docs(
    store: ObjectStore,
    municipality_id: str,
    batch_id: int,
    results: Any,
    *,
    source: str | None = None,
) -> str | None:
    """After a batch is committed: write its Data Docs, record their URL on the batch, link them
    from the run. Returns the URL, or None when they could not be written. Failures are logged,
    not raised: the batch is loaded, and a retry would find it loaded and write no docs.
    A file without rows (no chunk validated) has no docs."""
    if _is_sequence(results) and not results:
        return None
    try:
        result = merge_results(results if _is_sequence(results) else [results])
        url = write_validation_docs(store, municipality_id, batch_id, result, source=source)
        with begin() as conn:
            record_validation_docs_url(conn, batch_id, url)
    except Exception as exc:  # noqa: BLE001
        _warn(municipality_id, batch_id, "not written", exc)
        return None
    stats = result.get("statistics") or {}
    description = (
        f"Batch {batch_id} of {municipality_id}, suite {result.get('suite_name')}: "
        f"{stats.get('unsuccessful_expectations', 0)} of {stats.get('evaluated_expectations', 0)} "
        "expectations failed"
    )
    try:
        publish_docs_link(url, municipality_id, batch_id, description=description)
    except Exception as exc:  # noqa: BLE001
        _warn(municipality_id, batch_id, "not linked from the run", exc)
    return url


def _warn(municipality_id: str, batch_id: int, what: str, exc: Exception) -> None:
    log.warning(
        "%s: validation docs of batch %d %s: %s: %s", municipality_id, batch_id, what, type(exc).__name__, exc
    )


@lru_cache(maxsize=1)
def _page_renderer():
    """GX's validation page renderer and Jinja page view, built once (the view compiles templates)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return ValidationResultsPageRenderer(), DefaultJinjaPageView()


def _expectation_key(item: Mapping) -> str:
    """Which expectation a result is of (GX orders results its own way; match them by content)."""
    config = item.get("expectation_config") or {}
    identity = [config.get("type"), config.get("kwargs"), config.get("meta")]
    return json.dumps(identity, sort_keys=True, default=str)


def _merge_item(items: list[dict]) -> dict:
    """One expectation's result over every chunk."""
    failed = [item for item in items if not item.get("success")]
    base = failed[0] if failed else items[0]
    result = dict(base.get("result") or {})
    parts = [item.get("result") or {} for item in items]
    for name in COUNTS:
        if name in result:
            result[name] = sum(part.get(name) or 0 for part in parts)
    _recompute_percents(result)
    for name in ("partial_unexpected_list", "partial_unexpected_index_list"):
        if name in result:
            result[name] = [entry for part in parts for entry in part.get(name) or []][:PARTIAL]
    if "partial_unexpected_counts" in result:
        result["partial_unexpected_counts"] = _merge_value_counts(
            [part.get("partial_unexpected_counts") or [] for part in parts]
        )
    crashed = [item for item in items if (item.get("exception_info") or {}).get("raised_exception")]
    return {
        **base,
        "success": not failed,
        "result": result,
        "exception_info": (crashed[0] if crashed else base).get("exception_info"),
    }


def _recompute_percents(result: dict) -> None:
    total = result.get("element_count")
    if total is None:
        return
    missing = result.get("missing_count") or 0
    unexpected = result.get("unexpected_count") or 0
    present = total - missing

    def percent(part: int, whole: int) -> float | None:
        return part / whole * 100 if whole else None

    figures = {
        "missing_percent": percent(missing, total),
        "unexpected_percent_total": percent(unexpected, total),
        "unexpected_percent_nonmissing": percent(unexpected, present),
        "unexpected_percent": percent(unexpected, present),
    }
    result.update({name: value for name, value in figures.items() if name in result})


def _merge_value_counts(lists: list[list[dict]]) -> list[dict]:
    """Partial value counts of several chunks summed per value, most frequent first, 20 at most."""
    totals: dict[str, list] = {}
    for counts in lists:
        for entry in counts:
            key = json.dumps(entry.get("value"), sort_keys=True, default=str)
            if key in totals:
                totals[key][1] += entry.get("count") or 0
            else:
                totals[key] = [entry.get("value"), entry.get("count") or 0]
    ranked = sorted(totals.values(), key=lambda pair: -pair[1])
    return [{"value": value, "count": count} for value, count in ranked[:PARTIAL]]


def _validated_at(meta: Mapping) -> datetime:
    """When GX loaded the batch (its `ge_load_time` marker), or now."""
    stamp = (meta.get("batch_markers") or {}).get("ge_load_time")
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def _write_static_once(store: ObjectStore) -> None:
    """The favicon GX's page links, written once per store (checked once per process)."""
    identity = f"{store.protocol}:{store.root}"
    with _static_lock:
        if identity in _static_written:
            return
    if not store.exists(FAVICON_KEY):
        icon = files("great_expectations").joinpath("render/view/static/images/favicon.ico")
        _put(store, FAVICON_KEY, icon.read_bytes(), "image/x-icon")
    with _static_lock:
        _static_written.add(identity)


def _put(store: ObjectStore, key: str, data: bytes, content_type: str) -> None:
    """Store bytes; on S3 with their content type, so a browser shows the page, not a download."""
    if store.protocol == "s3":
        store.fs.pipe_file(store.url(key), data, ContentType=content_type)
    else:
        store.put_bytes(key, data)


def _plain_url(url: str) -> str:
    """A URL without user, password, query or fragment (a source URL may carry a token)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
