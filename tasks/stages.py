"""What every pipeline stage reports back to its flow: small figures, never data."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field


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
