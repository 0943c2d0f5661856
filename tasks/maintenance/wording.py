"""How a sensor's health reads: its factors as JSON and one plain recommendation sentence.

Both are Polars expressions over the frame `tasks.maintenance.health` builds.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks.anomalies.detectors import number_text

RISK_ADVICE = {
    "LOW": "Keep monitoring",
    "MEDIUM": "Service within 30 days",
    "HIGH": "Service within 14 days",
    "CRITICAL": "Service now",
}


def factors_json() -> pl.Expr:
    """Each sensor's factors and the figures behind them, as one JSON object."""

    def r(name: str) -> pl.Expr:
        return pl.col(name).round(4)

    return (
        pl.struct(
            r("f_drift").alias("drift"),
            r("slope_per_day").alias("drift_slope_per_day"),
            r("peer_slope_per_day"),
            r("p_value").alias("drift_p_value"),
            r("f_instability").alias("instability"),
            r("std_ratio"),
            r("f_out_of_range").alias("out_of_range"),
            r("out_of_range_share"),
            r("f_degradation").alias("degradation"),
            r("degraded_share"),
            r("usual_degraded_share"),
            r("f_variation").alias("variation"),
            r("cv").alias("coefficient_of_variation"),
            pl.col("stuck"),
            pl.col("longest_run_minutes").alias("longest_flat_minutes"),
            pl.col("days_of_data"),
        )
        .struct.json_encode()
        .alias("factors")
    )


def _percent(column: str) -> pl.Expr:
    return number_text(pl.col(column) * 100)


def recommendation(day: date) -> pl.Expr:
    """One plain sentence: what to do by when, and why."""
    factor_reason = [
        pl.format("daily mean drifting {} {}/day", number_text(pl.col("slope_per_day")), "unit"),
        pl.format("readings spread {} times their usual amount", number_text(pl.col("std_ratio"))),
        pl.format("{}% of readings out of range or failed", _percent("out_of_range_share")),
        pl.format(
            "{}% of readings flagged or flat, against {}% usually",
            _percent("degraded_share"),
            _percent("usual_degraded_share"),
        ),
        pl.format("coefficient of variation {}", number_text(pl.col("cv"))),
    ]
    by_factor = pl.when(pl.col("top_factor") == 0).then(factor_reason[0])
    for index, reason in enumerate(factor_reason[1:], start=1):
        by_factor = by_factor.when(pl.col("top_factor") == index).then(reason)
    reason = (
        pl.when(pl.col("stuck"))
        .then(
            pl.format(
                "reading stuck at {} {} for {} h",
                number_text(pl.col("longest_run_value")),
                "unit",
                (pl.col("longest_run_minutes") / 60).round(0).cast(pl.Int64),
            )
        )
        .when(pl.col("predicted_failure_date").is_not_null())
        .then(
            pl.format(
                "daily mean drifting {} {}/day reaches the valid limit {} {} about {}",
                number_text(pl.col("slope_per_day")),
                "unit",
                number_text(pl.col("limit")),
                "unit",
                pl.col("predicted_failure_date"),
            )
        )
        .when(pl.col("top_penalty") >= 5)
        .then(by_factor)
    )
    overdue = (pl.col("calibration_due_date") < day).fill_null(False)
    calibration = (
        pl.when(pl.col("calibration_due_date").is_null())
        .then(pl.lit("no calibration on record"))
        .when(overdue)
        .then(pl.format("calibration overdue since {}", pl.col("calibration_due_date")))
        .otherwise(pl.format("calibration due {}", pl.col("calibration_due_date")))
    )
    advice = pl.col("risk_level").replace_strict(RISK_ADVICE, return_dtype=pl.String)
    return (
        pl.when(reason.is_not_null())
        .then(pl.format("{}: {}; {}.", advice, reason, calibration))
        .when(overdue)
        .then(pl.format("{}: {}.", advice, calibration))
        .otherwise(pl.format("{}: no sign of trouble; {}.", advice, calibration))
        .alias("recommendation")
    )
