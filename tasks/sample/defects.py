"""Deliberately bad rows for the quality gate: each one is marked with its kind in a `bad` column.

Kinds, each 1-3 times per readings file, never on a reading inside a short labelled window
(contamination, spike, stuck, outage) nor on the reading a stuck sensor repeats; a slow drift
window can hold them:
- `out_of_range`: the value replaced by one outside the parameter's physical range
  (-9999 or twice the catalog maximum);
- `missing_value`: the value left empty;
- `wrong_unit`: a unit the parameter does not accept (pressure in psi, temperature in kelvin...);
- `unknown_sensor`: an extra row from a sensor id that is not in the registry;
- `duplicate`: an extra row repeating a good row's (sensor_id, observed_at) with another value,
  written right after the original (the original is good, the repeat is the bad row).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.parameters import catalog

BAD_KINDS = ("out_of_range", "missing_value", "wrong_unit", "unknown_sensor", "duplicate")
WRONG_UNITS = {
    "ph": "mV",
    "turbidity": "mg/L",
    "free_chlorine": "ppm",
    "conductivity": "mS/m",
    "temperature": "K",
    "flow": "L/s",
    "pressure": "psi",
}
UNKNOWN_SENSORS = ("orp", "ammonia", "ph-spare", "uv254")
PER_FILE = (1, 3)  # bad rows of each kind per file, inclusive


def inject_bad_rows(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Add and corrupt rows of one readings file; returns it sorted, with a `bad` kind column.

    `frame` has sensor_id, station_id, parameter, observed_at, value, unit and `labelled`
    (rows that must stay intact); the result keeps sensor_id, observed_at, value, unit, bad.
    """
    candidates = np.flatnonzero(~frame["labelled"].to_numpy())
    counts = rng.integers(PER_FILE[0], PER_FILE[1] + 1, len(BAD_KINDS))
    while counts.sum() > len(candidates) and counts.sum() > 0:
        counts = np.maximum(counts - 1, 0)
    picked = rng.choice(candidates, size=int(counts.sum()), replace=False)
    kinds = np.repeat(np.array(BAD_KINDS), counts)
    chosen = pl.DataFrame(
        {"row": picked.astype(np.uint32), "kind": kinds},
        schema={"row": pl.UInt32, "kind": pl.String},
    )
    extra_choice = rng.integers(0, len(UNKNOWN_SENSORS), len(picked))
    chosen = chosen.with_columns(unknown=pl.Series(UNKNOWN_SENSORS).gather(extra_choice))

    rows = frame.with_row_index("row").join(chosen, on="row", how="left")
    physical_max = pl.col("parameter").replace_strict(
        {name: p.max for name, p in catalog().items()}, return_dtype=pl.Float64
    )
    corrupted = rows.with_columns(
        value=pl.when(pl.col("kind") == "missing_value")
        .then(None)
        .when(pl.col("kind") == "out_of_range")
        .then(pl.when(pl.col("row") % 2 == 0).then(-9999.0).otherwise(2 * physical_max))
        .otherwise(pl.col("value")),
        unit=pl.when(pl.col("kind") == "wrong_unit")
        .then(pl.col("parameter").replace_strict(WRONG_UNITS, default=pl.lit("ppm")))
        .otherwise(pl.col("unit")),
        bad=pl.when(pl.col("kind").is_in(["out_of_range", "missing_value", "wrong_unit"])).then(
            pl.col("kind")
        ),
        extra=pl.lit(0),
    )
    duplicates = rows.filter(pl.col("kind") == "duplicate").with_columns(
        value=(pl.col("value") * 1.05 + 0.01).round(3), bad=pl.col("kind"), extra=pl.lit(1)
    )
    unknown = rows.filter(pl.col("kind") == "unknown_sensor").with_columns(
        sensor_id=pl.col("station_id") + "-" + pl.col("unknown"),
        bad=pl.col("kind"),
        extra=pl.lit(1),
    )
    return (
        pl.concat([corrupted, duplicates, unknown])
        .sort("observed_at", "sensor_id", "extra", maintain_order=True)
        .select("sensor_id", "observed_at", "value", "unit", "bad")
    )
