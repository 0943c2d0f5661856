"""The gate of wide sources: the file's own rows judged before they become readings.

A wide file (one row per time, one column per sensor) whose row has no readable time, or
repeats an earlier row's time, would otherwise give one quarantined reading per sensor with the
same reason. `readings_wide.json` judges the rows themselves; a failing row is refused whole
(the first row of a repeated time loads, as for readings), and its readings never reach the
readings gate.
"""

from __future__ import annotations

import time as time_module

import polars as pl

from tasks.quality.expectations import ROW_NUMBER, run_suite
from tasks.quality.gate import json_safe, json_text, parse_observed_at

SUITE = "readings_wide"
REFUSED_SCHEMA = {ROW_NUMBER: pl.Int64, "raw": pl.String, "reasons": pl.List(pl.String)}
SOURCE_ROW = "__source_row__"


def judge_wide_rows(
    rows: pl.DataFrame, time_column: str, time: pl.Expr, time_format: str | None, source_row: pl.Expr
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(the rows that pass, the refused ones as quarantine rows: row_number, raw, reasons, and
    the suite's validation figures, kept with the batch).

    `time` is the row's time as the readings gate will read it (ISO-8601 text or a timestamp),
    `source_row` the row's 1-based number in the file.
    """
    judged = rows.select(
        source_row.alias(ROW_NUMBER),
        pl.col(time_column).cast(pl.String).str.strip_chars().alias("time_as_written"),
        time.alias("time_read"),
    )
    exact, wall = parse_observed_at("time_read", judged.schema["time_read"])
    key = pl.coalesce(exact.dt.epoch("us").cast(pl.String), wall.dt.strftime("%Y-%m-%dT%H:%M:%S%.f"))
    judged = judged.select(
        ROW_NUMBER,
        pl.when(pl.col("time_as_written") != "").then("time_as_written").alias("time_as_written"),
        key.is_not_null().alias("is_time_readable"),
        key.alias("time_key"),
    )
    started = time_module.perf_counter()
    outcome = run_suite(judged, SUITE)
    failures = outcome.failures
    # Keep-first: GX flags every row of a repeated time; the first one in the file loads.
    later = judged.filter(pl.col("time_key").is_not_null() & ~pl.col("time_key").is_first_distinct())
    failures = failures.filter(
        (pl.col("check") != "wide_time_repeated") | pl.col(ROW_NUMBER).is_in(later[ROW_NUMBER].implode())
    )
    if failures.is_empty():
        return rows, pl.DataFrame(schema=REFUSED_SCHEMA), _validation(outcome, 0, started)
    reasons = (
        failures.join(judged, on=ROW_NUMBER, how="left")
        # a row without a time is not also told its time is unreadable
        .filter((pl.col("check") != "wide_time_invalid") | pl.col("time_as_written").is_not_null())
        .with_columns(_reason(time_format).alias("reason"))
        .group_by(ROW_NUMBER, maintain_order=True)
        .agg(pl.col("reason").unique(maintain_order=True).alias("reasons"))
        .rename({ROW_NUMBER: SOURCE_ROW})
    )
    numbered = rows.with_columns(source_row.alias(SOURCE_ROW))
    refused = numbered.join(reasons, on=SOURCE_ROW, how="inner", maintain_order="left")
    columns = [c for c in rows.columns if not c.startswith("__")]
    raw = json_safe(refused.select(columns)).select(json_text(pl.struct(columns)).alias("raw"))
    quarantined = pl.concat(
        [refused.select(pl.col(SOURCE_ROW).alias(ROW_NUMBER)), raw, refused.select("reasons")],
        how="horizontal",
    )
    kept = numbered.join(reasons, on=SOURCE_ROW, how="anti", maintain_order="left").drop(SOURCE_ROW)
    return kept, quarantined.cast(REFUSED_SCHEMA), _validation(outcome, quarantined.height, started)


def _validation(outcome, rows_failed: int, started: float) -> dict:  # noqa: ANN001
    return {
        "suite": SUITE,
        "statistics": outcome.statistics,
        "expectations": outcome.expectations,
        "gx_seconds": outcome.seconds,
        "gate_seconds": round(time_module.perf_counter() - started, 4),
        "rows_failed": rows_failed,
    }


def _reason(time_format: str | None) -> pl.Expr:
    written = pl.col("time_as_written")
    expected = f"a time in the format {time_format}" if time_format else "an ISO-8601 time"
    return (
        pl.when(pl.col("check") == "wide_time_missing")
        .then(pl.lit("the row has no time; none of its values is loaded"))
        .when(pl.col("check") == "wide_time_invalid")
        .then(pl.format("time '{}' is not {}; none of the row's values is loaded", written, pl.lit(expected)))
        .otherwise(
            pl.format("time {} is on an earlier row of this file too; this row's values are not loaded",
                      written)
        )
    )
