"""A station's readings as detection sees them: one row per time, one column per sensor, a label.

Built from a labelled file (`tasks.evaluation.labelled.read_labelled`) or from the database
(`tasks.detection.frames`); the learned detector's features, the station alarm and the scores all
take this frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class LabelledReadings:
    """One row per time: `observed_at`, a Float64 column per sensor and `label` (bool)."""

    frame: pl.DataFrame
    parameters: dict[str, str]  # sensor column -> parameter, only the columns present

    @property
    def sensors(self) -> list[str]:
        return list(self.parameters)


def is_covered(readings: LabelledReadings) -> pl.Expr:
    """Rows where at least one sensor has a reading; rows with every sensor missing are not scored."""
    return pl.any_horizontal(pl.col(readings.sensors).is_not_null())


def iso_week(time: pl.Expr) -> pl.Expr:
    return time.dt.strftime("%G-W%V")
