"""QC for labelled files: readings that QC fails never reach a baseline, a feature or a threshold.

One function, so that a QC entry point made for labelled files can take its place in one line.
Today it runs the pipeline's own QARTOD tests (`tasks.quality.qc.qc_flags`, the shipped
`qc.yaml`) on the file's readings and drops those flagged fail (4); suspect readings stay, as
they do in the nightly run.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from tasks.quality.qc import qc_flags

FAIL = 4


def drop_failed_readings(long: pl.DataFrame, parameters: Mapping[str, str]) -> pl.DataFrame:
    """`long` (`sensor_id`, `observed_at` naive UTC, `value`) without the readings QC fails."""
    if long.is_empty():
        return long
    sensors = pl.DataFrame(
        {"sensor_id": list(parameters), "parameter": list(parameters.values())},
        schema={"sensor_id": pl.String, "parameter": pl.String},
    )
    readings = long.with_columns(pl.col("observed_at").dt.replace_time_zone("UTC"))
    flagged = qc_flags(readings, sensors)
    return (
        flagged.filter(pl.col("qc_flag") != FAIL)
        .select("sensor_id", pl.col("observed_at").dt.replace_time_zone(None), "value")
        .sort("sensor_id", "observed_at")
    )
