"""A small labelled file like GECCO 2018: quiet noisy sensors, step changes labelled as events."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

START = datetime(2026, 3, 7)  # a Saturday: 15 days reach into three ISO weeks


def labelled_frame(days: int = 15, seed: int = 4, steps_per_day: int = 1) -> pl.DataFrame:
    """One row per minute; every day at 10:00 + 37 min x day, pH steps up by 0.8 for 40 minutes
    (labelled), and one day the whole station is missing for three hours."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    minutes = np.arange(n)
    ph = 8.3 + rng.normal(0, 0.01, n)
    label = np.zeros(n, dtype=bool)
    for day in range(days):
        for step in range(steps_per_day):
            start = day * 1440 + 600 + 37 * day + 300 * step
            ph[start : start + 40] += 0.8
            label[start : start + 40] = True
    frame = pl.DataFrame(
        {
            "Time": [START + timedelta(minutes=int(m)) for m in minutes],
            "Tp": 10 + rng.normal(0, 0.05, n).round(1),
            "pH": ph.round(3),
            "Leit": 400 + rng.normal(0, 2, n).round(0),
            "Trueb": 0.05 + rng.normal(0, 0.003, n).round(3),
            "Fm": 1000 + rng.normal(0, 100, n).round(0),
            "EVENT": label,
        }
    )
    outage = (pl.col("Time") >= START + timedelta(days=2)) & (
        pl.col("Time") < START + timedelta(days=2, hours=3)
    )
    return frame.with_columns(pl.when(~outage).then(pl.col(c)) for c in ("Tp", "pH", "Leit", "Trueb", "Fm"))


def write_labelled(path: Path, frame: pl.DataFrame) -> Path:
    """Write as GECCO does: `NA` for missing, `true`/`false` labels, seconds in the time."""
    frame.with_columns(
        pl.col("Time").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("EVENT").cast(pl.String).str.to_lowercase(),
    ).write_csv(path, null_value="NA")
    return path


@pytest.fixture
def labelled_file(tmp_path: Path) -> Path:
    return write_labelled(tmp_path / "labelled.csv", labelled_frame())
