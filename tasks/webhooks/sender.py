"""Sending signed webhooks to one endpoint: one keep-alive httpx client, bounded concurrency.

The connection goes to the address `check_endpoint` has just vetted (the URL carries that IP; the
Host header and TLS SNI/certificate check carry the host name), so a second DNS lookup cannot
swap in a private address. Left for the later issue: an egress proxy (e.g. smokescreen) and
trying the other vetted addresses when the first does not answer.

All HTTP traffic of a process runs on one event loop in one daemon thread (`sending_loop`): each
endpoint's task (a Prefect worker thread) hands its requests to that loop and does its database
work meanwhile (eight threads each running their own loop were slower: they fight over the
GIL). Nothing that blocks (DNS, object storage, the database) runs on that loop. Its cost is
httpx's, about 1 ms of CPU per request, which bounds one process near 1,000 requests a second.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tasks.models import utcnow
from tasks.webhooks.addresses import Endpoint
from tasks.webhooks.retries import AttemptResult, parse_retry_after
from tasks.webhooks.signing import signature_header

USER_AGENT = "Waterline-Webhooks/0.1"
RESPONSE_BODY_CHARS = 1_000
_READ_LIMIT_BYTES = 16_384


@dataclass(frozen=True)
class Outgoing:
    """One delivery ready to send: the event id (`webhook-id`) and the exact body bytes."""

    delivery_id: int
    event_id: str
    body: bytes


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One certificate store for every client of the process (loading it costs ~50 ms a time)."""
    return httpx.create_ssl_context(trust_env=False)


def make_client(concurrency: int, timeout_seconds: float) -> httpx.AsyncClient:
    """The one client an endpoint's deliveries share (keep-alive, no redirects, no env proxies)."""
    return httpx.AsyncClient(
        verify=_tls_context(),
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        headers={"user-agent": USER_AGENT},
    )


async def open_client(concurrency: int, timeout_seconds: float) -> httpx.AsyncClient:
    """`make_client`, created on the loop that will use it (run it through `submit`)."""
    return make_client(concurrency, timeout_seconds)


def _error_sentence(exc: BaseException, timeout_seconds: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no response within {timeout_seconds:g} s"
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "the endpoint's TLS certificate could not be verified"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect to the endpoint"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the endpoint closed the connection or broke the HTTP protocol"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | ConnectionError):
        return "the endpoint reset the connection"
    return f"the request failed ({type(exc).__name__})"


async def send_one(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    secrets: list[str],
    item: Outgoing,
    timeout_seconds: float,
    url: httpx.URL | None = None,
) -> AttemptResult:
    """POST one signed delivery and describe what happened (never raises for network trouble).

    `url` is `endpoint.connect_url()` parsed once for a whole batch (it is the same for each)."""
    attempted_at = utcnow()
    timestamp = int(attempted_at.timestamp())
    headers = {
        "host": endpoint.host_header(),
        "content-type": "application/json",
        "webhook-id": item.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, item.event_id, timestamp, item.body),
    }
    extensions = {"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_seconds):
            async with client.stream(
                "POST",
                url or httpx.URL(endpoint.connect_url()),
                content=item.body,
                headers=headers,
                extensions=extensions,
            ) as response:
                raw = bytearray()
                async for chunk in response.aiter_bytes():
                    raw.extend(chunk)
                    if len(raw) >= _READ_LIMIT_BYTES:
                        break
    except (TimeoutError, httpx.HTTPError, OSError) as exc:
        return AttemptResult(
            delivery_id=item.delivery_id,
            attempted_at=attempted_at,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=_error_sentence(exc, timeout_seconds),
        )
    text = bytes(raw).decode(response.encoding or "utf-8", errors="replace")
    return AttemptResult(
        delivery_id=item.delivery_id,
        attempted_at=attempted_at,
        status_code=response.status_code,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        response_body=text[:RESPONSE_BODY_CHARS],
        retry_after_seconds=parse_retry_after(response.headers.get("retry-after"), attempted_at),
    )


async def send_batch(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    secrets: list[str],
    items: list[Outgoing],
    *,
    concurrency: int,
    timeout_seconds: float,
) -> list[AttemptResult]:
    """Send `items` over `client`, at most `concurrency` at a time; stop starting new ones
    after a 410 Gone. Returns the results of the items that were sent."""
    gate = asyncio.Semaphore(max(1, concurrency))
    gone = asyncio.Event()
    url = httpx.URL(endpoint.connect_url())

    async def guarded(item: Outgoing) -> AttemptResult | None:
        async with gate:
            if gone.is_set():
                return None
            result = await send_one(client, endpoint, secrets, item, timeout_seconds, url)
            if result.gone:
                gone.set()
            return result

    results = await asyncio.gather(*(guarded(item) for item in items))
    return [r for r in results if r is not None]


def refused_results(items: list[Outgoing], reason: str, now: datetime) -> list[AttemptResult]:
    """Failed attempts for deliveries that were not sent because the endpoint was refused."""
    return [AttemptResult(delivery_id=i.delivery_id, attempted_at=now, error=reason) for i in items]


_loop_guard = threading.Lock()
_loop_state: dict = {}  # pid, loop, thread of this process's sending loop


def sending_loop() -> asyncio.AbstractEventLoop:
    """This process's one event loop for webhook traffic, running in a daemon thread.

    Started on first use, and again in a forked child (threads do not survive a fork).
    """
    with _loop_guard:
        thread = _loop_state.get("thread")
        if _loop_state.get("pid") != os.getpid() or thread is None or not thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="webhook-sending", daemon=True)
            thread.start()
            _loop_state.update(pid=os.getpid(), loop=loop, thread=thread)
        return _loop_state["loop"]


def submit(coro: Coroutine[Any, Any, Any]) -> Future:
    """Start `coro` on the sending loop; the caller's thread stays free (e.g. for the database)."""
    return asyncio.run_coroutine_threadsafe(coro, sending_loop())


def run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` on the sending loop and wait for its result (from any thread but that loop's)."""
    return submit(coro).result()
