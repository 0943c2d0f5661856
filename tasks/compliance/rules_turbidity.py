"""Turbidity treatment-technique rules and the EU nitrate/nitrite sum, on the period's readings.

turbidity_tt gives two result rows from one limit row (whose limit_max is the 0.3 NTU threshold):
  statistic `share_le_limit`: % of the month's usable readings at or below the threshold,
    compared as a minimum with 95 % (WARNING at 96 % or less: one percentage point of headroom,
    inclusive like judge.py's "90 % of the limit or more");
  statistic `max`: the month's highest reading, compared with 1 NTU that no reading may exceed
    (WARNING from 0.9 NTU, judge.py's 90 %).
The row's status is NON_COMPLIANT when either fails; the two rows say which.
"""

from __future__ import annotations

import polars as pl

from tasks.compliance.rules_common import (
    beyond_limit,
    candidates,
    counts,
    exceedance_rows,
    number,
    source_words,
)

TURBIDITY_REQUIRED_SHARE_PCT = 95.0  # 40 CFR 141.173(a)(1) / 141.551(a): 95 % of the month's readings
TURBIDITY_SHARE_WARNING_PCT = 96.0  # WARNING at or below this share: one point of headroom
TURBIDITY_MAX_NTU = 1.0  # 40 CFR 141.173(a)(2) / 141.551(b): at no time above 1 NTU
SLOT = "15m"

NITRATE_DIVISOR = 50.0  # mg/L as NO3 (Directive (EU) 2020/2184 Annex I Part B, note 10)
NITRITE_DIVISOR = 3.0  # mg/L as NO2


def judge_turbidity_tt(readings: pl.LazyFrame, rows: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """turbidity_tt: share of usable readings at or below the row's limit, and the maximum."""
    values = readings.filter("usable").join(
        rows.select("limit_row", "parameter", "limit_max"), on="parameter"
    )
    shares = values.group_by("limit_row").agg(
        share=(pl.col("value") <= pl.col("limit_max")).sum() * 100.0 / pl.len(),
        value_max=pl.col("value").max(),
    )
    stats = readings.group_by("parameter").agg(**counts(), kinds=pl.col("kind").filter("usable").unique())
    base = rows.join(stats, on="parameter", how="left").join(shares, on="limit_row", how="left")
    source = source_words(pl.col("sample_count"), pl.col("kinds"))
    share = base.with_columns(
        statistic=pl.lit("share_le_limit"),
        statistic_value=pl.col("share").round(4),
        bound=pl.lit("min"),
        limit=pl.lit(TURBIDITY_REQUIRED_SHARE_PCT),
        warn_at=pl.lit(TURBIDITY_SHARE_WARNING_PCT),
        unit=pl.lit("%"),
        what=pl.concat_str(
            pl.lit("share of "),
            source,
            pl.lit(" at or below "),
            number(pl.col("limit_max")),
            pl.lit(" "),
            pl.col("unit"),
        ),
        slot=pl.lit("share_le_limit"),
    )
    highest = base.with_columns(
        statistic=pl.lit("max"),
        statistic_value=pl.col("value_max"),
        bound=pl.lit("max"),
        limit=pl.lit(TURBIDITY_MAX_NTU),
        what=pl.concat_str(pl.lit("maximum of "), source, pl.lit(" (none may exceed the limit)")),
        slot=pl.lit("max"),
    )
    failing_share = shares.filter(pl.col("share") < TURBIDITY_REQUIRED_SHARE_PCT).select("limit_row")
    row_columns = rows.drop("parameter", "limit_max")
    above_threshold = (
        values.filter(pl.col("value") > pl.col("limit_max"))
        .join(failing_share, on="limit_row")
        .join(row_columns, on="limit_row")
        .with_columns(statistic=pl.lit("share_le_limit"), limit=pl.col("limit_max"))
    )
    above_max = (
        values.filter(pl.col("value") > TURBIDITY_MAX_NTU)
        .join(row_columns, on="limit_row")
        .with_columns(statistic=pl.lit("max"), limit=pl.lit(TURBIDITY_MAX_NTU))
    )
    exceeding = pl.concat([exceedance_rows(above_threshold), exceedance_rows(above_max)])
    return pl.concat([candidates(share), candidates(highest)]), exceeding


def slot_readings(readings: pl.LazyFrame) -> pl.LazyFrame:
    """Per parameter and sensor, the last usable reading of each 15-minute slot, with the previous
    and next slot's value when that slot is the adjacent one (a missing slot breaks the run)."""
    group = ["parameter", "sensor_id"]
    step = pl.duration(minutes=15)
    slots = (
        readings.filter("usable")
        .with_columns(slot=pl.col("time").dt.truncate(SLOT))
        .group_by([*group, "station_id", "slot"])
        .agg(value=pl.col("value").get(pl.col("time").arg_max()), time=pl.col("time").max())
        .sort([*group, "slot"])
    )
    previous_adjacent = (pl.col("slot") - pl.col("slot").shift(1)) == step
    next_adjacent = (pl.col("slot").shift(-1) - pl.col("slot")) == step
    return slots.with_columns(
        previous_value=pl.when(previous_adjacent).then(pl.col("value").shift(1)).over(group),
        next_value=pl.when(next_adjacent).then(pl.col("value").shift(-1)).over(group),
    )


def judge_turbidity_consecutive(
    readings: pl.LazyFrame, rows: pl.LazyFrame
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """turbidity_consecutive: the highest level held over two consecutive 15-minute slots of one
    sensor; above the limit (1.0 NTU) means two consecutive slots above it."""
    slots = slot_readings(readings)
    held = slots.group_by("parameter").agg(
        held_max=pl.when(pl.col("previous_value").is_not_null())
        .then(pl.min_horizontal("value", "previous_value"))
        .max(),
        slot_count=pl.len().cast(pl.Int64),
    )
    stats = readings.group_by("parameter").agg(**counts(), kinds=pl.col("kind").filter("usable").unique())
    judged = (
        rows.join(stats, on="parameter", how="left")
        .join(held, on="parameter", how="left")
        .with_columns(
            statistic=pl.lit("consecutive_max"),
            statistic_value=pl.col("held_max"),
            bound=pl.lit("max"),
            limit=pl.col("limit_max"),
            what=pl.concat_str(
                pl.lit(
                    "highest level held over two consecutive 15-minute slots of one sensor (the last "
                    "usable reading of each slot) in "
                ),
                source_words(pl.col("sample_count"), pl.col("kinds")),
            ),
            note=pl.when((pl.col("sample_count") > 0) & pl.col("held_max").is_null())
            .then(pl.lit("; no sensor has readings in two consecutive 15-minute slots"))
            .otherwise(pl.lit("")),
        )
    )
    sides = rows.with_columns(bound=pl.lit("max"), limit=pl.col("limit_max"))
    exceeding = (
        slots.join(sides, on="parameter")
        .filter(
            (pl.col("value") > pl.col("limit"))
            & (
                (pl.col("previous_value") > pl.col("limit")) | (pl.col("next_value") > pl.col("limit"))
            ).fill_null(False)
        )
        .with_columns(statistic=pl.lit("consecutive_max"))
    )
    return candidates(judged), exceedance_rows(exceeding)


def judge_nitrate_nitrite(readings: pl.LazyFrame, rows: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """nitrate_nitrite_ratio: per station and hour with both measured, nitrate/50 + nitrite/3 (hourly
    means, mg/L as NO3 and as NO2); the highest over the period vs the row's limit (1)."""
    both = readings.filter(pl.col("parameter").is_in(["nitrate", "nitrite"]))
    hourly = (
        both.filter("usable")
        .with_columns(time=pl.col("time").dt.truncate("1h"))
        .group_by("station_id", "time")
        .agg(
            nitrate=pl.col("value").filter(pl.col("parameter") == "nitrate").mean(),
            nitrite=pl.col("value").filter(pl.col("parameter") == "nitrite").mean(),
        )
        .drop_nulls(["nitrate", "nitrite"])
        .with_columns(value=pl.col("nitrate") / NITRATE_DIVISOR + pl.col("nitrite") / NITRITE_DIVISOR)
    )
    stats = hourly.select(statistic_value=pl.col("value").max(), sample_count=pl.len().cast(pl.Int64)).join(
        both.select(excluded_count=(~pl.col("usable")).sum().cast(pl.Int64)), how="cross"
    )
    sides = rows.with_columns(bound=pl.lit("max"), limit=pl.col("limit_max"), unit=pl.lit(""))
    judged = sides.join(stats, how="cross").with_columns(
        statistic=pl.lit("max"),
        what=pl.concat_str(
            pl.lit("highest nitrate/50 + nitrite/3 (hourly means in mg/L as NO3 and as NO2) of "),
            pl.col("sample_count").cast(pl.String),
            pl.lit(" station-hour(s) with both measured"),
        ),
        note=pl.when(pl.col("sample_count") == 0)
        .then(pl.lit("; no station has nitrate and nitrite readings in the same hour"))
        .otherwise(pl.lit("")),
    )
    exceeding = hourly.join(sides, how="cross").filter(beyond_limit()).with_columns(statistic=pl.lit("max"))
    return candidates(judged), exceedance_rows(exceeding)
