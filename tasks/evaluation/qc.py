"""QC for labelled files: readings that QC fails never reach a baseline, a feature or a threshold.

The pipeline's own QARTOD tests (`tasks.quality.qc.flag_long_frame`, the shipped `qc.yaml`) run
on the file's readings with each sensor's instrument range (a reading pinned at an end fails) and
cadence, from the mapping's registry or GECCO's built-in ranges; readings flagged fail (4) are
dropped. Suspect readings stay, as they do in the nightly run.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from tasks.quality.qc import FAIL, flag_long_frame


def drop_failed_readings(
    long: pl.DataFrame,
    parameters: Mapping[str, str],
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    cadences: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """`long` (`sensor_id`, `observed_at` naive UTC, `value`) without the readings QC fails."""
    if long.is_empty():
        return long
    readings = long.with_columns(
        pl.col("observed_at").dt.replace_time_zone("UTC"),
        pl.col("sensor_id").replace_strict(dict(parameters), return_dtype=pl.String).alias("parameter"),
    )
    flagged = flag_long_frame(readings, ranges or None, cadences or None)
    return (
        flagged.filter(pl.col("qc_flag") != FAIL)
        .select("sensor_id", pl.col("observed_at").dt.replace_time_zone(None), "value")
        .sort("sensor_id", "observed_at")
    )
