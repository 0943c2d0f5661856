"""What every pipeline stage reports back to its flow: small figures, never data."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from prefect import get_run_logger
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError


def in_prefect_run() -> bool:
    """Whether this runs inside a Prefect flow or task run (not as `.fn()` or from the command
    line): artifacts and run logs belong to a run."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_logger(fallback: str) -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run's logger, which the UI shows, or the `fallback` logger outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(fallback)


@dataclass
class StageResult:
    """Figures of one stage for one unit of work (a municipality, a batch, an endpoint)."""

    stage: str
    municipality_id: str | None = None
    rows: int = 0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@contextmanager
def stage(name: str, municipality_id: str | None = None):
    """Time a block of work: `with stage("aggregate", m) as result: result.rows = n`."""
    result = StageResult(stage=name, municipality_id=municipality_id)
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = round(time.perf_counter() - started, 4)


@dataclass
class StageRun:
    """One stage over many items: each item's figures, the items that failed and why, wall time."""

    stage: str
    results: list[dict] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def succeeded(self, items: list) -> list:
        """The items of `items` that did not fail in this stage."""
        return [item for item in items if str(item) not in self.failures]

    @property
    def rows(self) -> int:
        return sum(r.get("rows", 0) for r in self.results)


def run_stage(name: str, task, items: list, *args) -> StageRun:  # noqa: ANN001
    """Run one Prefect task per item (a municipality, an endpoint) concurrently and wait for all.

    Each of `args` goes to every task as it is, except a dict, which gives each item its own
    value (`{municipality: day}`). A failed item is recorded with its reason and left out of later
    stages; the others go on.
    """
    from prefect import unmapped

    run = StageRun(stage=name)
    started = time.perf_counter()
    mapped = [[a[item] for item in items] if isinstance(a, dict) else unmapped(a) for a in args]
    futures = task.map(items, *mapped) if items else []
    for item, future in zip(items, futures, strict=True):
        future.wait()
        state = future.state
        if state.is_completed():
            run.results.append(future.result())
        else:
            run.failures[str(item)] = _reason(state)
    run.seconds = round(time.perf_counter() - started, 4)
    return run


def _reason(state) -> str:  # noqa: ANN001
    """A one-line reason from a failed Prefect state, without a traceback."""
    from tasks.settings import redact

    try:
        state.result()
    except Exception as exc:  # noqa: BLE001
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return redact(f"{type(exc).__name__}: {first_line}".strip())
    return redact(state.message or state.name)
