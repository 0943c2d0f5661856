"""Running annual averages from monthly sums and counts (never raw readings: a year of them would
not fit in memory).

raa_quarterly: per station, the average of each of the 4 calendar quarters ending with the
period's quarter; RAA = their mean; the worst station decides (40 CFR 141.24, 141.132-style).
raa_monthly: the system's average of each of the 12 months ending with the period's month; RAA =
their mean (40 CFR 141.133(c) chlorine/chloramine MRDL).
With quarters (months) missing the result is INSUFFICIENT_DATA, unless those present already
force the RAA over the limit whatever the missing ones hold (their sum / 4 > the limit; 40 CFR
141.23(i)(1)); the statistic is then that sum / 4 (/ 12), the lowest the RAA can be.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks.compliance.rules_common import candidates, exceedance_rows


def months_after(day: date, months: int) -> date:
    """The first day of the month `months` after (negative: before) `day`'s month."""
    years, month = divmod(day.month - 1 + months, 12)
    return date(day.year + years, month + 1, 1)


def quarter_label(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _excluded(present: bool) -> pl.Expr:
    return pl.col("excluded_count").sum().cast(pl.Int64) if present else pl.lit(None, pl.Int64)


def _judged(rows: pl.LazyFrame, per_unit: pl.LazyFrame, needed: int, on: list[str]) -> pl.LazyFrame:
    """Rows joined with their per-station (or system) averages: RAA = sum of averages / needed."""
    return rows.join(per_unit, on=on, how="left").with_columns(
        statistic=pl.lit("raa"),
        statistic_value=pl.col("average_sum") / needed,
        bound=pl.lit("max"),
        limit=pl.col("limit_max"),
        incomplete=pl.col("periods").fill_null(0) < needed,
    )


def _note(noun: str, needed: int) -> pl.Expr:
    periods = pl.col("periods").fill_null(0).cast(pl.String)
    have = pl.concat_str(pl.lit("; only "), periods, pl.lit(f" of {needed} {noun}s have samples"))
    return (
        pl.when(~pl.col("incomplete"))
        .then(pl.lit(""))
        .when(pl.col("statistic_value") > pl.col("limit"))
        .then(
            pl.concat_str(
                have,
                pl.lit(
                    f", but they already put the average over the limit whatever the missing {noun}s "
                    f"hold (their sum / {needed})"
                ),
            )
        )
        .otherwise(pl.concat_str(have, pl.lit(": insufficient data")))
    )


def _exceeding(judged: pl.LazyFrame) -> pl.LazyFrame:
    return exceedance_rows(
        judged.filter(pl.col("statistic_value") > pl.col("limit")).with_columns(
            value=pl.col("statistic_value")
        )
    )


def judge_raa_quarterly(
    history: pl.LazyFrame, rows: pl.LazyFrame, period_end: date, excluded_known: bool
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """raa_quarterly: per station, the mean of its 4 quarterly averages; the worst station decides."""
    last_quarter = months_after(period_end, -((period_end.month - 1) % 3))
    first, end = months_after(last_quarter, -9), months_after(last_quarter, 3)
    quarters = (
        history.filter((pl.col("month") >= first) & (pl.col("month") < end))
        .group_by("parameter", "station_id", pl.col("month").dt.truncate("1q").alias("quarter"))
        .agg(
            value_sum=pl.col("value_sum").sum(),
            value_count=pl.col("value_count").sum(),
            excluded_count=_excluded(excluded_known),
        )
        .with_columns(
            average=pl.when(pl.col("value_count") > 0).then(pl.col("value_sum") / pl.col("value_count"))
        )
    )
    stations = quarters.group_by("parameter", "station_id").agg(
        average_sum=pl.col("average").sum(),
        periods=pl.col("average").count().cast(pl.Int64),
        sample_count=pl.col("value_count").sum().cast(pl.Int64),
        excluded_count=_excluded(excluded_known),
    )
    window = f"{quarter_label(first)} to {quarter_label(last_quarter)}"
    judged = _judged(rows, stations, 4, ["parameter"]).with_columns(
        what=pl.concat_str(
            pl.lit("running annual average of the quarterly averages "),
            pl.lit(window),
            pl.when(pl.col("station_id").is_null())
            .then(pl.lit(" (no samples)"))
            .otherwise(
                pl.concat_str(
                    pl.lit(" at station "),
                    "station_id",
                    pl.when(pl.len().over("limit_row") == 1)
                    .then(pl.lit(" (the only station with samples)"))
                    .otherwise(
                        pl.concat_str(
                            pl.lit(" (the worst of "),
                            pl.len().over("limit_row").cast(pl.String),
                            pl.lit(" stations)"),
                        )
                    ),
                )
            ),
        ),
    )
    judged = judged.with_columns(note=_note("quarter", 4))
    return _finish_excluded(candidates(judged), excluded_known), _exceeding(judged)


def judge_raa_monthly(
    history: pl.LazyFrame, rows: pl.LazyFrame, period_end: date, excluded_known: bool
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """raa_monthly: the mean of the system's 12 monthly averages ending with the period's month."""
    first, end = months_after(period_end, -11), months_after(period_end, 1)
    months = (
        history.filter((pl.col("month") >= first) & (pl.col("month") < end))
        .group_by("parameter", "month")
        .agg(
            value_sum=pl.col("value_sum").sum(),
            value_count=pl.col("value_count").sum(),
            excluded_count=_excluded(excluded_known),
        )
        .with_columns(
            average=pl.when(pl.col("value_count") > 0).then(pl.col("value_sum") / pl.col("value_count"))
        )
    )
    system = months.group_by("parameter").agg(
        average_sum=pl.col("average").sum(),
        periods=pl.col("average").count().cast(pl.Int64),
        sample_count=pl.col("value_count").sum().cast(pl.Int64),
        excluded_count=_excluded(excluded_known),
    )
    window = f"{first:%Y-%m} to {months_after(end, -1):%Y-%m}"
    judged = _judged(rows, system, 12, ["parameter"]).with_columns(
        what=pl.lit(f"running annual average of the system's monthly averages {window}"),
    )
    judged = judged.with_columns(note=_note("month", 12))
    return _finish_excluded(candidates(judged), excluded_known), _exceeding(judged)


def _finish_excluded(frame: pl.LazyFrame, excluded_known: bool) -> pl.LazyFrame:
    """Excluded counts are unknown (null) when the history does not carry them."""
    if excluded_known:
        return frame
    return frame.with_columns(excluded_count=pl.lit(None, pl.Int64))
