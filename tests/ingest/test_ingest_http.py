"""HTTP sources against a real JSON API on loopback: paging, retries, the stored cursor, secrets."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import func, select

from tasks.database import begin
from tasks.ingest import ingest_inbox
from tasks.ingest.http_source import retry_wait
from tasks.models import IngestBatch, Reading, SourceCursor

TOKEN = "s3cret-token-do-not-log"
RIVERTON = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-ph, parameter: ph}
"""


@dataclass
class Api:
    """Serves `records` in pages of `page_size`; the cursor is the offset of the next record."""

    url: str = ""
    records: list[dict] = field(default_factory=list)
    page_size: int = 3
    failures: dict[str, deque] = field(default_factory=dict)  # cursor -> (status, headers) to answer first
    requests: list[tuple[float, str | None, str | None]] = field(default_factory=list)  # (at, cursor, auth)

    def page(self, query: dict[str, str]) -> bytes:
        if "since" in query:  # since paging: the records after that time, oldest first
            since = datetime.fromisoformat(query["since"])
            later = [r for r in self.records if datetime.fromisoformat(r["at"]) > since]
            return json.dumps({"readings": later[: self.page_size]}).encode()
        start = int(query.get("cursor", 0))
        chunk = self.records[start : start + self.page_size]
        return json.dumps({"readings": chunk, "next_cursor": str(start + len(chunk))}).encode()


@pytest.fixture
def api():
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            cursor = query.get("cursor", query.get("since"))
            state.requests.append((time.monotonic(), cursor, self.headers.get("authorization")))
            queued = state.failures.get(cursor or "")
            status, headers, body = (*queued.popleft(), b"busy") if queued else (200, {}, state.page(query))
            self.send_response(status)
            for name, value in {**headers, "content-type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/readings"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _records(start: datetime, count: int) -> list[dict]:
    return [
        {"sensor": "riverton-ph", "at": (start + timedelta(minutes=i)).isoformat(), "ph": 7 + i / 100,
         "unit": "pH"}
        for i in range(count)
    ]


def _declare(home: Path, api: Api, **extra: str) -> None:
    folder = home / "inbox" / "riverton"
    (folder / "sources").mkdir(parents=True, exist_ok=True)
    (folder / "registry.yaml").write_text(RIVERTON)
    mapping = {
        "kind": "http",
        "url": api.url,
        "paging": {"style": "cursor", "param": "cursor", "next_field": "next_cursor"},
        "auth": {"env": "RIVERTON_API_TOKEN"},
        "time": {"column": "at"},
        "rename": {"sensor": "sensor_id", "ph": "value"},
        "retries": 2,
        "backoff_seconds": 0.05,
        **extra,
    }
    (folder / "sources" / "scada-api.yaml").write_text(json.dumps(mapping))


def _count(model) -> int:  # noqa: ANN001
    with begin() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def _cursor() -> str | None:
    with begin() as conn:
        return conn.scalar(select(SourceCursor.cursor).where(SourceCursor.source == "scada-api"))


def test_pages_load_once_each_and_the_next_run_continues_from_the_stored_cursor(
    database, home, api, monkeypatch, caplog
):
    monkeypatch.setenv("RIVERTON_API_TOKEN", TOKEN)
    api.records = _records(datetime(2026, 3, 1, tzinfo=UTC), 7)
    api.failures["3"] = deque([(503, {"retry-after": "1"})])
    _declare(home, api)
    caplog.set_level(logging.DEBUG)

    [first] = ingest_inbox()

    assert [r[1] for r in api.requests] == [None, "3", "3", "6", "7"]  # 503 on "3", then success
    retried = [at for at, cursor, _ in api.requests if cursor == "3"]
    assert retried[1] - retried[0] >= 0.9  # Retry-After: 1 was honoured
    assert {auth for _, _, auth in api.requests} == {f"Bearer {TOKEN}"}
    assert [b["rows_loaded"] for b in first["details"]["batches"]] == [3, 3, 1]
    assert first["details"]["sources"] == [
        {"source": "scada-api", "status": "pulled", "pages": 3, "cursor": "7"}
    ]
    assert _count(Reading) == 7
    assert _cursor() == "7"

    api.records += _records(datetime(2026, 3, 2, tzinfo=UTC), 2)
    api.requests.clear()
    [second] = ingest_inbox()

    assert [r[1] for r in api.requests] == ["7", "9"]  # continued where the first run stopped
    assert [b["rows_loaded"] for b in second["details"]["batches"]] == [2]
    assert _count(Reading) == 9
    assert _count(IngestBatch) == 4  # one batch per page, no page twice
    assert _cursor() == "9"
    with begin() as conn:
        stored = " ".join(str(v) for v in conn.execute(select(IngestBatch.source, IngestBatch.error)).all())
    assert TOKEN not in caplog.text + stored + json.dumps(first, default=str)


def test_a_page_seen_again_after_an_interrupted_run_loads_nothing_twice(database, home, api, monkeypatch):
    monkeypatch.setenv("RIVERTON_API_TOKEN", TOKEN)
    api.records = _records(datetime(2026, 3, 1, tzinfo=UTC), 3)
    _declare(home, api)
    ingest_inbox()
    with begin() as conn:  # as if the run had stopped before storing the cursor
        conn.execute(SourceCursor.__table__.delete())
    [again] = ingest_inbox()
    assert [b["status"] for b in again["details"]["batches"]] == ["already loaded"]
    assert (_count(Reading), _count(IngestBatch), _cursor()) == (3, 1, "3")


def test_an_api_that_stays_down_is_reported_and_keeps_the_cursor(database, home, api, monkeypatch):
    monkeypatch.setenv("RIVERTON_API_TOKEN", TOKEN)
    api.records = _records(datetime(2026, 3, 1, tzinfo=UTC), 2)
    api.failures[""] = deque([(500, {})] * 3)
    _declare(home, api)
    [figures] = ingest_inbox()
    [source] = figures["details"]["sources"]
    assert source["status"] == "failed"
    assert source["error"] == f"{api.url} failed 3 time(s); last: HTTP 500"
    assert (_count(Reading), _cursor()) == (0, None)


def test_a_missing_secret_is_named_and_nothing_is_requested(database, home, api, monkeypatch):
    monkeypatch.delenv("RIVERTON_API_TOKEN", raising=False)
    _declare(home, api)
    [figures] = ingest_inbox()
    assert figures["details"]["sources"][0]["error"] == (
        "environment variable RIVERTON_API_TOKEN (the source's secret) is not set"
    )
    assert api.requests == []


def test_a_bad_http_mapping_is_a_failed_batch(database, home, api):
    _declare(home, api, paging="sideways")
    ingest_inbox()
    with begin() as conn:
        [(status, fmt, error)] = conn.execute(
            select(IngestBatch.status, IngestBatch.file_format, IngestBatch.error)
        ).all()
    assert (status, fmt) == ("failed", "yaml")
    assert error.startswith("source mapping riverton/sources/scada-api.yaml is not valid: paging: ")
    assert api.requests == []


def test_since_paging_sends_the_latest_loaded_time(database, home, api, monkeypatch):
    monkeypatch.setenv("RIVERTON_API_TOKEN", TOKEN)
    api.records = _records(datetime(2026, 3, 1, tzinfo=UTC), 5)
    _declare(home, api, paging={"style": "since", "param": "since"})
    ingest_inbox()
    assert [r[1] for r in api.requests] == [
        None, "2026-03-01T00:02:00.000000Z", "2026-03-01T00:04:00.000000Z"
    ]
    assert (_count(Reading), _count(IngestBatch), _cursor()) == (5, 2, "2026-03-01T00:04:00.000000Z")


def test_retry_wait_honours_retry_after_seconds_and_dates_else_backs_off():
    request = httpx.Request("GET", "http://api.example")
    assert retry_wait(httpx.Response(429, headers={"retry-after": "7"}, request=request), 0, 1.0) == 7.0
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    wait = retry_wait(httpx.Response(503, headers={"retry-after": soon}, request=request), 0, 1.0)
    assert 25 <= wait <= 30
    assert [retry_wait(None, attempt, 0.5) for attempt in range(4)] == [0.5, 1.0, 2.0, 4.0]
