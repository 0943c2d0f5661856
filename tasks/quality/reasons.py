"""Great Expectations failures turned into short reasons a person at a utility can act on."""

from __future__ import annotations

import polars as pl

from tasks.quality.expectations import ROW_NUMBER

# The `check` of each expectation in the suite, in the order reasons are listed for a row.
CHECKS = (
    "sensor_id_missing",
    "observed_at_invalid",
    "local_time_nonexistent",
    "local_time_ambiguous",
    "value_invalid",
    "value_not_finite",
    "unit_missing",
    "sensor_unknown",
    "duplicate",
    "unit_not_accepted",
    "value_out_of_range",
    "observed_in_future",
    "observed_before_install",
)
REASONS_SCHEMA = {ROW_NUMBER: pl.Int64, "reasons": pl.List(pl.String)}
# How much of a row's own text a reason quotes; the quarantined row keeps all of it.
QUOTED_CHARS = 80


def number_text(expr: pl.Expr) -> pl.Expr:
    """A float as short text: 14.0 -> "14", 17.25 -> "17.25", 65.55555555554 -> "65.55555556"."""
    expr = expr.round_sig_figs(10)  # converted values carry float noise in their last digits
    whole = (expr == expr.floor()) & (expr.abs() < 1e15)
    return pl.when(whole).then(expr.cast(pl.Int64).cast(pl.String)).otherwise(expr.cast(pl.String))


def quoted_text(expr: pl.Expr) -> pl.Expr:
    """Text from the file as a reason quotes it: control characters shown as U+FFFD, cut at
    QUOTED_CHARS characters with the full length said ('xxxx… (5003 characters)')."""
    text = expr.cast(pl.String).str.replace_all(r"[\x00-\x1f\x7f]", "\ufffd")
    length = text.str.len_chars()
    return (
        pl.when(length > QUOTED_CHARS)
        .then(pl.format("{}… ({} characters)", text.str.slice(0, QUOTED_CHARS), length))
        .otherwise(text)
    )


def time_text(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def local_time_text(expr: pl.Expr) -> pl.Expr:
    """A wall-clock time as written for people: 2026-03-29T02:30, seconds only when present."""
    whole_second = expr.dt.microsecond() == 0
    return (
        pl.when(whole_second & (expr.dt.second() == 0))
        .then(expr.dt.strftime("%Y-%m-%dT%H:%M"))
        .when(whole_second)
        .then(expr.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        .otherwise(expr.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f").str.strip_chars_end("0"))
    )


def reason_text(municipality_id: str, clock_skew_seconds: int, timezone: str = "UTC") -> pl.Expr:
    """One human sentence per (row, check), from the prepared columns of that row."""
    check = pl.col("check")
    local_time = local_time_text(pl.col("observed_at_local"))
    low, high = number_text(pl.col("valid_min")), number_text(pl.col("valid_max"))
    valid_range = (
        pl.when(pl.col("valid_min") < 0)
        .then(pl.format("{} to {}", low, high))
        .otherwise(pl.format("{}-{}", low, high))
    )
    return (
        pl.when(check == "sensor_id_missing")
        .then(pl.lit("sensor_id is missing"))
        .when(check == "observed_at_invalid")
        .then(
            pl.when(_blank("observed_at_text"))
            .then(pl.lit("observed_at is missing"))
            .otherwise(
                pl.format("observed_at '{}' is not an ISO-8601 time", quoted_text(pl.col("observed_at_text")))
            )
        )
        .when(check == "local_time_nonexistent")
        .then(
            pl.format(
                "local time {} does not exist in {} (daylight-saving gap)",
                local_time,
                pl.lit(timezone),
            )
        )
        .when(check == "local_time_ambiguous")
        .then(
            pl.format(
                "local time {} is ambiguous in {} (daylight-saving fold); send it with its UTC offset",
                local_time,
                pl.lit(timezone),
            )
        )
        .when(check == "value_invalid")
        .then(
            pl.when(_blank("value_text"))
            .then(pl.lit("value is missing"))
            .otherwise(pl.format("value '{}' is not a number", quoted_text(pl.col("value_text"))))
        )
        .when(check == "value_not_finite")
        .then(
            pl.when(pl.col("value_number").is_nan())
            .then(pl.format("value '{}' is not a number", quoted_text(pl.col("value_text"))))
            .otherwise(pl.format("value '{}' is infinite", quoted_text(pl.col("value_text"))))
        )
        .when(check == "unit_missing")
        .then(pl.lit("unit is missing"))
        .when(check == "sensor_unknown")
        .then(
            pl.format(
                "unknown sensor id '{}' for municipality '{}'",
                quoted_text(pl.col("sensor_id")),
                pl.lit(municipality_id),
            )
        )
        .when(check == "duplicate")
        .then(pl.lit("duplicate (sensor, time) in this file"))
        .when(check == "unit_not_accepted")
        .then(
            pl.format(
                "unit '{}' not accepted for {} (accepted: {})",
                quoted_text(pl.col("unit")),
                pl.col("parameter"),
                pl.col("accepted_units"),
            )
        )
        .when(check == "value_out_of_range")
        .then(
            pl.format(
                "value {} outside the sensor's valid range {}",
                number_text(pl.col("value_canonical")),
                valid_range,
            )
        )
        .when(check == "observed_in_future")
        .then(
            pl.format(
                "observed_at {} is later than now plus the allowed clock skew ({} s)",
                time_text(pl.col("observed_at")),
                pl.lit(clock_skew_seconds),
            )
        )
        .when(check == "observed_before_install")
        .then(
            pl.format(
                "observed_at {} is before the sensor was installed ({})",
                time_text(pl.col("observed_at")),
                time_text(pl.col("installed_at")),
            )
        )
        .otherwise(pl.format("failed check {}", check))
    )


def _blank(name: str) -> pl.Expr:
    return pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")


def explain_failures(
    prepared: pl.DataFrame,
    failures: pl.DataFrame,
    *,
    municipality_id: str,
    clock_skew_seconds: int,
    timezone: str = "UTC",
) -> pl.DataFrame:
    """One row per failing row with the list of every reason that applies, in CHECKS order."""
    if failures.is_empty():
        return pl.DataFrame(schema=REASONS_SCHEMA)
    order = pl.DataFrame({"check": CHECKS, "check_order": range(len(CHECKS))})
    return (
        failures.select(ROW_NUMBER, "check")
        .unique()
        .join(order, on="check", how="left")
        .join(prepared, on=ROW_NUMBER, how="left")
        .with_columns(reason=reason_text(municipality_id, clock_skew_seconds, timezone))
        .sort(ROW_NUMBER, "check_order")
        .group_by(ROW_NUMBER, maintain_order=True)
        .agg(reasons=pl.col("reason"))
        .cast(REASONS_SCHEMA)
    )
