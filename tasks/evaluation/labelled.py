"""Read a labelled wide file (a time column, one column per sensor, an event label) into Polars.

The GECCO 2018 drinking-water file is the model: `Time`, nine sensor columns and `EVENT`
(true/false), one row per minute, `NA` for a missing reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from tasks.detection.labelled import LabelledReadings

# Column -> canonical parameter (tasks/parameters.yaml) for the GECCO 2018 file.
GECCO_PARAMETERS: dict[str, str] = {
    "Tp": "temperature",
    "Cl": "chlorine_dioxide",
    "pH": "ph",
    "Redox": "redox",
    "Leit": "conductivity",
    "Trueb": "turbidity",
    "Cl_2": "chlorine_dioxide",
    "Fm": "flow",
    "Fm_2": "flow",
}
TRUE_TEXT = ("true", "1", "yes", "t")


def read_labelled(
    path: str | Path,
    parameters: Mapping[str, str] | None = None,
    time_column: str = "Time",
    label_column: str = "EVENT",
) -> LabelledReadings:
    """The labelled file at `path`, sorted by time; `parameters` maps sensor columns to parameters
    (default: the GECCO columns). Raises FileNotFoundError or ValueError with a readable sentence."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labelled file at {path}")
    wanted = dict(GECCO_PARAMETERS if parameters is None else parameters)
    header = pl.read_csv(path, n_rows=0).columns
    missing = [c for c in (time_column, label_column) if c not in header]
    if missing:
        raise ValueError(f"{path.name} has no {' or '.join(missing)} column: it is not a labelled file")
    present = {column: parameter for column, parameter in wanted.items() if column in header}
    if not present:
        raise ValueError(f"{path.name} has none of the sensor columns {', '.join(wanted)}")
    raw = pl.read_csv(
        path,
        columns=[time_column, *present, label_column],
        schema_overrides={label_column: pl.String, **{c: pl.Float64 for c in present}},
        null_values=["NA", "NaN", ""],
    )
    frame = raw.select(
        pl.col(time_column).str.to_datetime(strict=True).alias("observed_at"),
        *(pl.col(c) for c in present),
        pl.col(label_column).str.strip_chars().str.to_lowercase().is_in(TRUE_TEXT).alias("label"),
    ).sort("observed_at")
    if frame["observed_at"].is_duplicated().any():
        raise ValueError(f"{path.name} has more than one row for the same time")
    return LabelledReadings(frame, present)
