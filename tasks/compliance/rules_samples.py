"""Rules on the period's individual readings: every sample against the limit, EPA lead/copper
90th percentile, any detection, and nitrate-style confirmation samples.

Each function takes the period readings (typed, with a `usable` column) and its limit rows (with
`limit_row`), and returns (candidate rows, exceedance rows) as lazy frames.
"""

from __future__ import annotations

import polars as pl

from tasks.compliance.judge import _nearest_rank
from tasks.compliance.rules_common import beyond_limit, candidates, counts, exceedance_rows, source_words

# With fewer lab samples than this, the EPA does not compute a 90th percentile (40 CFR 141.80(c)(3):
# the highest and second-highest results decide); Waterline takes the highest of them, which is
# never lower than either reading of that rule.
P90_MIN_SAMPLES = 5

CONFIRMATION_HOURS = 24  # 40 CFR 141.23(f)(2): a nitrate/nitrite confirmation sample within 24 hours

STATISTIC_WORDS = {"max": "period maximum", "min": "period minimum"}


def _sides(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per bound a rule compares: sample_max the max, sample_min the min, sample_range and
    indicator each bound they have (a range's width sets its warning band, as in judge.py)."""
    code = pl.col("rule_code")
    both = pl.col("limit_min").is_not_null() & pl.col("limit_max").is_not_null()
    width = pl.when(both).then(pl.col("limit_max") - pl.col("limit_min"))
    upper = rows.filter(pl.col("limit_max").is_not_null() & (code != "sample_min")).with_columns(
        bound=pl.lit("max"), limit=pl.col("limit_max")
    )
    lower = rows.filter(pl.col("limit_min").is_not_null() & (code != "sample_max")).with_columns(
        bound=pl.lit("min"), limit=pl.col("limit_min")
    )
    return pl.concat([upper, lower]).with_columns(statistic=pl.col("bound"), width=width)


def _per_parameter(readings: pl.LazyFrame, condition: pl.Expr | None = None) -> pl.LazyFrame:
    """Usable and excluded counts, kinds, min and max of usable values, per parameter."""
    chosen = readings if condition is None else readings.filter(condition)
    values = pl.col("value").filter("usable")
    return chosen.group_by("parameter").agg(
        **counts(),
        kinds=pl.col("kind").filter("usable").unique(),
        value_min=values.min(),
        value_max=values.max(),
        positives=(values > 0).sum().cast(pl.Int64),
    )


def judge_samples(readings: pl.LazyFrame, rows: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """sample_max, sample_min, sample_range and indicator: the period's worst reading vs the limit."""
    sides = _sides(rows)
    judged = sides.join(_per_parameter(readings), on="parameter", how="left").with_columns(
        statistic_value=pl.when(pl.col("bound") == "max").then("value_max").otherwise("value_min"),
        what=pl.concat_str(
            pl.col("bound").replace_strict(STATISTIC_WORDS),
            pl.lit(" of "),
            source_words(pl.col("sample_count"), pl.col("kinds")),
        ),
    )
    exceeding = readings.filter("usable").join(sides, on="parameter", how="inner").filter(beyond_limit())
    return candidates(judged), exceedance_rows(exceeding)


def judge_detections(readings: pl.LazyFrame, rows: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """any_detection: any usable sample above 0 is a breach, whatever the row's value says."""
    sides = rows.with_columns(bound=pl.lit("max"), limit=pl.lit(0.0), statistic=pl.lit("max"))
    judged = sides.join(_per_parameter(readings), on="parameter", how="left").with_columns(
        statistic_value=pl.col("value_max"),
        what=pl.concat_str(
            pl.lit("any detection (a value above 0) in "),
            source_words(pl.col("sample_count"), pl.col("kinds")),
            pl.lit(": "),
            pl.col("positives").fill_null(0).cast(pl.String),
            pl.lit(" positive"),
        ),
    )
    exceeding = readings.filter("usable").join(sides, on="parameter", how="inner").filter(beyond_limit())
    return candidates(judged), exceedance_rows(exceeding)


def judge_p90_round(readings: pl.LazyFrame, rows: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """p90_round: nearest-rank 90th percentile of the period's lab samples across the system vs the
    action level; with fewer than 5 samples the highest of them stands for it."""
    is_lab = pl.col("kind") == "lab"
    values = pl.col("value").filter("usable")
    stats = (
        readings.filter(is_lab)
        .group_by("parameter")
        .agg(**counts(), p90=_nearest_rank(values, 0.9), value_max=values.max())
    )
    few = pl.col("sample_count") < P90_MIN_SAMPLES
    sides = rows.with_columns(bound=pl.lit("max"), limit=pl.col("limit_max"), statistic=pl.lit("p90"))
    samples = pl.concat_str(pl.col("sample_count").fill_null(0).cast(pl.String), pl.lit(" lab samples"))
    judged = sides.join(stats, on="parameter", how="left").with_columns(
        statistic_value=pl.when(few).then("value_max").otherwise("p90"),
        what=pl.when(few)
        .then(
            pl.concat_str(
                pl.lit("highest of "),
                samples,
                pl.lit(f" (fewer than {P90_MIN_SAMPLES}: the highest stands for the 90th percentile)"),
            )
        )
        .otherwise(pl.concat_str(pl.lit("90th percentile of "), samples)),
    )
    exceeding = (
        readings.filter(pl.col("usable") & is_lab)
        .join(sides, on="parameter", how="inner")
        .filter(beyond_limit())
    )
    return candidates(judged), exceedance_rows(exceeding)


def confirmed_results(samples: pl.LazyFrame) -> pl.LazyFrame:
    """Per limit row, the results of initial samples: a sample above `limit` averaged with the next
    sample at its station within 24 hours (its confirmation), otherwise the sample alone.

    `samples` are usable lab samples joined with their limit rows. Consecutive samples of a
    station form a chain while each one is above the limit and the next follows within 24 hours;
    in a chain, samples alternate initial, confirmation, initial... so a confirmation is never
    judged again as an initial sample. Adds `result`, `is_initial`, `is_confirmed`.
    """
    group = ["limit_row", "station_id"]
    ordered = samples.sort([*group, "time"])
    previous_links = (pl.col("value").shift(1) > pl.col("limit")) & (
        pl.col("time") - pl.col("time").shift(1) <= pl.duration(hours=CONFIRMATION_HOURS)
    )
    chained = ordered.with_columns(
        chain=(~previous_links.fill_null(False)).cum_sum().over(group),
    ).with_columns(
        position=pl.int_range(pl.len()).over([*group, "chain"]),
        next_value=pl.col("value").shift(-1).over([*group, "chain"]),
    )
    is_initial = pl.col("position") % 2 == 0
    is_confirmed = is_initial & pl.col("next_value").is_not_null()
    return chained.with_columns(
        is_initial=is_initial,
        is_confirmed=is_confirmed,
        result=pl.when(is_confirmed).then((pl.col("value") + pl.col("next_value")) / 2).otherwise("value"),
    )


def judge_confirmations(
    readings: pl.LazyFrame, rows: pl.LazyFrame, followups: pl.LazyFrame | None = None
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """confirmation_average: the worst result of an initial lab sample, averaged with its
    confirmation sample when one was taken at the same station within 24 hours.

    `followups` are usable readings taken in the 24 hours after the period: they can confirm a
    sample of the period's last day, but are neither judged nor counted themselves."""
    is_lab = pl.col("kind") == "lab"
    sides = rows.with_columns(bound=pl.lit("max"), limit=pl.col("limit_max"), statistic=pl.lit("max_result"))
    samples = readings.filter(pl.col("usable")).with_columns(in_period=pl.lit(True))
    if followups is not None:
        later = followups.filter(pl.col("usable")).with_columns(in_period=pl.lit(False))
        samples = pl.concat([samples, later], how="vertical_relaxed")
    results = confirmed_results(
        samples.filter(is_lab).join(sides, on="parameter", how="inner")
    ).filter(pl.col("is_initial") & pl.col("in_period"))
    above = pl.col("value") > pl.col("limit")
    stats = results.group_by("limit_row").agg(
        statistic_value=pl.col("result").max(),
        confirmed_count=(above & pl.col("is_confirmed")).sum().cast(pl.Int64),
        alone_count=(above & ~pl.col("is_confirmed")).sum().cast(pl.Int64),
    )
    sample_counts = readings.filter(is_lab).group_by("parameter").agg(**counts())
    judged = (
        sides.join(sample_counts, on="parameter", how="left")
        .join(stats, on="limit_row", how="left")
        .with_columns(
            what=pl.concat_str(
                pl.lit("highest result of "),
                pl.col("sample_count").fill_null(0).cast(pl.String),
                pl.lit(
                    " lab samples, a sample above the limit averaged with its confirmation sample at "
                    "the same station within 24 hours ("
                ),
                pl.col("confirmed_count").fill_null(0).cast(pl.String),
                pl.lit(" confirmed; "),
                pl.col("alone_count").fill_null(0).cast(pl.String),
                pl.lit(" with no confirmation within 24 h, standing on its own)"),
            )
        )
    )
    exceeding = results.filter(pl.col("result") > pl.col("limit")).with_columns(value=pl.col("result"))
    return candidates(judged), exceedance_rows(exceeding)
