"""`waterline bench webhooks`: a storm of events dispatched to real local HTTP receivers.

On a throwaway database of the configured kind, N endpoints (one per municipality, each a port of
one receiver process on 127.0.0.1) subscribe to every event; E events are written to the outbox,
spread evenly over the municipalities; one `dispatch_webhooks` flow run then delivers them. The
figures: deliveries per second over the dispatch run, attempt latency (p50, p95), Prefect task runs
in that flow run, and what the receivers saw (requests and distinct webhook ids, so a lost or
duplicated delivery shows).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from tasks.bench import _bench_environment
from tasks.settings import get_settings, reset_settings

STORM_SECONDS_GOAL = 60
DELIVERIES_PER_SECOND_GOAL = 500
_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


# --- the receivers: one child process, one asyncio server per endpoint port -------------------


class _Answering(asyncio.Protocol):
    """One keep-alive connection of a receiver: answers 200 to each whole request, counts its
    webhook-id. (A bare protocol: the receivers should cost the machine little next to the sender.)"""

    def __init__(self, seen: dict) -> None:
        self.seen = seen
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length, webhook_id = 0, None
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    webhook_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.seen[webhook_id] = self.seen.get(webhook_id, 0) + 1
            self.transport.write(_OK)


async def _serve(count: int) -> None:
    """Serve `count` ports; print them as a JSON line, then the counts once stdin closes or says stop."""
    seen: dict[bytes | None, int] = {}
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: _Answering(seen), "127.0.0.1", 0, backlog=1024)
        for _ in range(count)
    ]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for server in servers:
        server.close()
    print(json.dumps({"requests": sum(seen.values()), "distinct_ids": len(seen)}), flush=True)


@contextmanager
def local_receivers(count: int) -> Iterator[tuple[list[int], dict]]:
    """`count` HTTP receivers on 127.0.0.1 in a child process (so they do not share our GIL).

    Yields their ports and a dict that, on exit, is filled with what they saw.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", f"import asyncio, tasks.bench_webhooks as b; asyncio.run(b._serve({count}))"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: dict = {}
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark's HTTP receivers did not start")
        yield json.loads(line), seen
        process.stdin.write("stop\n")
        process.stdin.flush()
        seen.update(json.loads(process.stdout.readline() or "{}"))
    finally:
        process.kill()
        process.wait(10)


# --- the benchmark -----------------------------------------------------------------------------


@contextmanager
def _loopback_allowed() -> Iterator[None]:
    saved = os.environ.get("WATERLINE_WEBHOOK_ALLOWED_NETWORKS")
    os.environ["WATERLINE_WEBHOOK_ALLOWED_NETWORKS"] = '["127.0.0.0/8"]'
    reset_settings()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", None)
        else:
            os.environ["WATERLINE_WEBHOOK_ALLOWED_NETWORKS"] = saved
        reset_settings()


def run_webhooks_bench(events: int = 10_000, endpoints: int = 50, keep: bool = False) -> dict:
    """Dispatch `events` events to `endpoints` local receivers in one flow run; return the figures."""
    if events < 1 or endpoints < 1:
        raise ValueError("the webhooks benchmark needs at least one event and one endpoint")
    with _bench_environment(keep), _loopback_allowed(), local_receivers(endpoints) as (ports, seen):
        figures = _measure(events, ports)
    figures["receivers"] = seen
    figures["lost"] = figures["events"] - seen.get("distinct_ids", 0)
    return figures


def _seed(events: int, ports: list[int]) -> list[str]:
    """One municipality per endpoint, each subscribed to "*"; `events` events spread over them."""
    from tasks.database import begin
    from tasks.models import Municipality
    from tasks.webhooks.outbox import record_event
    from tasks.webhooks.subscriptions import add_subscription

    municipalities = [f"bench-{n:02d}" for n in range(len(ports))]
    with begin() as conn:
        for municipality_id, port in zip(municipalities, ports, strict=True):
            conn.execute(
                insert(Municipality).values(
                    id=municipality_id,
                    name=municipality_id,
                    timezone="UTC",
                    standards=["WHO"],
                    regulator_emails=[],
                )
            )
            add_subscription(
                conn, municipality_id, f"http://127.0.0.1:{port}/hooks", ["*"], actor="bench"
            )
    for first in range(0, events, 1_000):
        with begin() as conn:
            for n in range(first, min(first + 1_000, events)):
                record_event(
                    conn,
                    municipality_id=municipalities[n % len(municipalities)],
                    event_type="alert.created",
                    data={"sensor_id": f"bench-ph-{n % 100:03d}", "value": 9.4, "n": n},
                    dedupe_key=f"bench:{n}",
                )
    return municipalities


def _task_runs(flow_run_id) -> int:  # noqa: ANN001
    """How many task runs Prefect recorded in one flow run (they arrive as events: wait for them)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    counted, stable_since = -1, time.monotonic()
    with get_client(sync_client=True) as client:
        while time.monotonic() - stable_since < 2.0:
            now = len(client.read_task_runs(flow_run_filter=flow_filter, limit=200))
            if now != counted:
                counted, stable_since = now, time.monotonic()
            time.sleep(0.2)
    return counted


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def _measure(events: int, ports: list[int]) -> dict:
    from flows.dispatch_webhooks import dispatch_webhooks
    from tasks.database import begin
    from tasks.migrations import upgrade
    from tasks.models import WebhookDelivery, WebhookDeliveryAttempt

    upgrade()
    started = time.perf_counter()
    dispatch_webhooks()  # nothing is due yet: this starts Prefect (a temporary server, when local)
    warm_up_seconds = time.perf_counter() - started

    started = time.perf_counter()
    _seed(events, ports)
    outbox_seconds = time.perf_counter() - started

    started = time.perf_counter()
    state = dispatch_webhooks(return_state=True)
    dispatch_seconds = time.perf_counter() - started
    summary = state.result()
    task_runs = _task_runs(state.state_details.flow_run_id)

    with begin() as conn:
        statuses = dict(
            conn.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
            ).all()
        )
        latencies = list(conn.execute(select(WebhookDeliveryAttempt.latency_ms)).scalars())
        first, last = conn.execute(
            select(func.min(WebhookDeliveryAttempt.attempted_at),
                   func.max(WebhookDeliveryAttempt.attempted_at))
        ).one()
    succeeded = statuses.get("succeeded", 0)
    sending = (last - first) if first is not None else timedelta(0)
    return {
        "events": events,
        "endpoints": len(ports),
        "database": make_url(get_settings().resolved_database_url).get_backend_name(),
        "concurrency_per_endpoint": get_settings().webhook_max_concurrency_per_endpoint,
        "prefect_warm_up_seconds": round(warm_up_seconds, 3),
        "outbox_seconds": round(outbox_seconds, 3),
        "dispatch_seconds": round(dispatch_seconds, 3),
        "deliveries_succeeded": succeeded,
        "deliveries_pending": statuses.get("pending", 0),
        "deliveries_dead": statuses.get("dead", 0),
        "attempts": len(latencies),
        "deliveries_per_second": round(succeeded / dispatch_seconds, 1) if dispatch_seconds else None,
        "sending_seconds": round(sending.total_seconds(), 3),
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "task_runs": task_runs,
        "endpoints_dispatched": summary["stages"]["deliver_webhooks"]["items"],
    }


def print_webhooks_bench(console: Console, figures: dict) -> None:
    """The benchmark's figures as a table, each against its goal where it has one."""
    table = Table(
        title=f"{figures['events']:,} events to {figures['endpoints']} local endpoints "
        f"on {figures['database']}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    rate = figures["deliveries_per_second"] or 0.0
    table.add_row("deliveries per second", f"{rate:,.0f}", f">= {DELIVERIES_PER_SECOND_GOAL}")
    table.add_row("dispatch run (s)", f"{figures['dispatch_seconds']:.1f}", f"<= {STORM_SECONDS_GOAL}")
    table.add_row("attempt latency p50 (ms)", f"{figures['latency_p50_ms']}", "")
    table.add_row("attempt latency p95 (ms)", f"{figures['latency_p95_ms']}", "")
    endpoints = figures["endpoints"]
    table.add_row("Prefect task runs in the dispatch", f"{figures['task_runs']}", f"<= {endpoints}")
    table.add_row("deliveries succeeded", f"{figures['deliveries_succeeded']:,}", f"{figures['events']:,}")
    table.add_row("attempts recorded", f"{figures['attempts']:,}", "")
    received = figures["receivers"]
    table.add_row("requests received", f"{received.get('requests', 0):,}", "")
    distinct = received.get("distinct_ids", 0)
    table.add_row("distinct webhook ids received", f"{distinct:,}", f"{figures['events']:,}")
    console.print(table)
    console.print(
        f"outbox: {figures['events']:,} events written in {figures['outbox_seconds']:.1f} s; "
        f"{figures['lost']} lost"
    )
