"""Judging one day: daily statistics per parameter, compared with the limits in force."""

from __future__ import annotations

import polars as pl

# A statistic at or beyond this share of the way to a limit is a WARNING: 90 % of a max limit,
# 1/0.9 of a min limit, or the last 10 % of a range's width at either end.
WARNING_FRACTION = 0.9

EXCLUDED_QC_FLAGS = (4, 9)  # QARTOD fail and missing: never compared with a limit

STATUS_RANK = {"COMPLIANT": 0, "INSUFFICIENT_DATA": 1, "WARNING": 2, "NON_COMPLIANT": 3}

STATISTIC_WORDS = {
    "max": "maximum",
    "min": "minimum",
    "mean": "mean",
    "p90": "90th percentile",
    "p95": "95th percentile",
}

STATS_SCHEMA = {
    "parameter": pl.String,
    "sample_count": pl.Int64,
    "excluded_count": pl.Int64,
    "source": pl.String,
    "value_min": pl.Float64,
    "value_max": pl.Float64,
    "value_mean": pl.Float64,
    "value_p90": pl.Float64,
    "value_p95": pl.Float64,
}

RESULT_SCHEMA = {
    "standard": pl.String,
    "parameter": pl.String,
    "status": pl.String,
    "statistic": pl.String,
    "statistic_value": pl.Float64,
    "limit": pl.Float64,
    "limit_kind": pl.String,
    "unit": pl.String,
    "deviation_pct": pl.Float64,
    "rule": pl.String,
    "citation": pl.String,
    "sample_count": pl.Int64,
    "excluded_count": pl.Int64,
    "kind": pl.String,
    "confirmed": pl.Boolean,
    "consequence": pl.String,
}


def _nearest_rank(values: pl.Expr, q: float) -> pl.Expr:
    """The q-quantile by the nearest-rank method: the ceil(q*n)-th smallest value (null if n=0)."""
    rank = (values.len() * q).ceil().cast(pl.Int64) - 1
    return values.sort().get(rank.clip(lower_bound=0), null_on_oob=True)


def daily_statistics(readings: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per parameter: usable and excluded counts, min, max, mean, p90 and p95 of usable readings.

    `readings` has `parameter`, `kind` (online|lab), `value` and `qc_flag`; readings flagged 4
    (fail) or 9 (missing), and null or NaN values, are excluded and counted.
    """
    usable = (
        ~pl.col("qc_flag").is_in(EXCLUDED_QC_FLAGS)
        & pl.col("value").is_not_null()
        & pl.col("value").is_not_nan()
    )
    values = pl.col("value").filter(usable)
    kinds = pl.col("kind").filter(usable).unique().sort()
    stats = (
        readings.lazy()
        .group_by("parameter")
        .agg(
            sample_count=usable.sum().cast(pl.Int64),
            excluded_count=(~usable).sum().cast(pl.Int64),
            kinds=kinds,
            value_min=values.min(),
            value_max=values.max(),
            value_mean=values.mean(),
            value_p90=_nearest_rank(values, 0.9),
            value_p95=_nearest_rank(values, 0.95),
        )
        .with_columns(source=_source_words(pl.col("kinds")))
        .select(list(STATS_SCHEMA))
        .sort("parameter")
        .collect()
    )
    return stats.cast(STATS_SCHEMA)


def _source_words(kinds: pl.Expr) -> pl.Expr:
    online = kinds.list.contains("online")
    lab = kinds.list.contains("lab")
    return (
        pl.when(online & lab)
        .then(pl.lit("online readings and lab samples"))
        .when(online)
        .then(pl.lit("online readings"))
        .when(lab)
        .then(pl.lit("lab samples"))
        .otherwise(pl.lit("readings"))
    )


def with_all_parameters(stats: pl.DataFrame, parameters: list[str]) -> pl.DataFrame:
    """`stats` plus an empty row (no readings) for each of `parameters` that has none."""
    missing = pl.DataFrame({"parameter": sorted(set(parameters) - set(stats["parameter"]))})
    empty = missing.with_columns(
        sample_count=pl.lit(0, pl.Int64),
        excluded_count=pl.lit(0, pl.Int64),
        source=pl.lit("readings"),
    )
    return pl.concat([stats, empty], how="diagonal").cast(STATS_SCHEMA).sort("parameter")


def _number(expr: pl.Expr) -> pl.Expr:
    """A limit as text: 2500 not 2500.0, 0.3 as 0.3."""
    return (
        pl.when(expr == expr.round(0))
        .then(expr.cast(pl.Int64).cast(pl.String))
        .otherwise(expr.round(6).cast(pl.String))
    )


def _sides(limits: pl.DataFrame) -> pl.LazyFrame:
    """One row per bound: a range gives a min side and a max side, each with its own statistic."""
    lazy = limits.lazy()
    side_statistic = (
        pl.when(pl.col("statistic") == "range").then(pl.col("bound")).otherwise(pl.col("statistic"))
    )
    upper = lazy.filter(pl.col("limit_max").is_not_null()).with_columns(
        bound=pl.lit("max"), limit=pl.col("limit_max")
    )
    lower = lazy.filter(pl.col("limit_min").is_not_null()).with_columns(
        bound=pl.lit("min"), limit=pl.col("limit_min")
    )
    return pl.concat([upper, lower]).with_columns(side_statistic=side_statistic)


def judge(stats: pl.DataFrame, limits: pl.DataFrame) -> pl.DataFrame:
    """One result per (standard, parameter) in both frames: the worst of its limits' bounds.

    Status: NON_COMPLIANT beyond a limit; WARNING within the last 10 % before it (a statistic at
    >= 90 % of a max limit), and beyond a limit whose consequence is `investigation` (an EU
    indicator value: an investigation, not a violation); INSUFFICIENT_DATA with fewer usable
    readings than the limit needs; else COMPLIANT. `deviation_pct` is how far beyond the limit
    the statistic lies, in % of the limit (negative = inside). `consequence` is the limit's
    (null when the limits frame has none).
    """
    if "consequence" not in limits.columns:
        limits = limits.with_columns(consequence=pl.lit(None, pl.String))
    long_stats = (
        stats.lazy()
        .unpivot(
            index=["parameter", "sample_count", "excluded_count", "source"],
            on=["value_min", "value_max", "value_mean", "value_p90", "value_p95"],
            variable_name="side_statistic",
            value_name="statistic_value",
        )
        .with_columns(pl.col("side_statistic").str.strip_prefix("value_"))
    )
    width = pl.col("limit_max") - pl.col("limit_min")
    is_max = pl.col("bound") == "max"
    warn_at = (
        pl.when(is_max & width.is_not_null())
        .then(pl.col("limit") - (1 - WARNING_FRACTION) * width)
        .when(is_max)
        .then(pl.col("limit") * WARNING_FRACTION)
        .when(width.is_not_null())
        .then(pl.col("limit") + (1 - WARNING_FRACTION) * width)
        .otherwise(pl.col("limit") / WARNING_FRACTION)
        .round(9)
    )
    value = pl.col("statistic_value")
    insufficient = (pl.col("sample_count") < pl.col("min_samples")) | value.is_null()
    beyond = pl.when(is_max).then(value > pl.col("limit")).otherwise(value < pl.col("limit"))
    warning = (
        pl.when(is_max)
        .then((pl.col("warn_at") < pl.col("limit")) & (value >= pl.col("warn_at")))
        .otherwise((pl.col("warn_at") > pl.col("limit")) & (value <= pl.col("warn_at")))
    )
    investigation = pl.col("consequence") == "investigation"
    status = (
        pl.when(insufficient)
        .then(pl.lit("INSUFFICIENT_DATA"))
        .when(beyond & investigation.fill_null(False))
        .then(pl.lit("WARNING"))
        .when(beyond)
        .then(pl.lit("NON_COMPLIANT"))
        .when(warning)
        .then(pl.lit("WARNING"))
        .otherwise(pl.lit("COMPLIANT"))
    )
    signed = pl.when(is_max).then(value - pl.col("limit")).otherwise(pl.col("limit") - value)
    deviation = (
        pl.when(insufficient | (pl.col("limit") == 0))
        .then(None)
        .otherwise((signed / pl.col("limit") * 100).round(2))
    )
    judged = (
        _sides(limits)
        .join(long_stats, on=["parameter", "side_statistic"], how="inner")
        .with_columns(warn_at=warn_at)
        .with_columns(status=status, deviation_pct=deviation)
        .with_columns(rule=_rule(), citation=_citation())
    )
    worst_first = judged.with_columns(
        rank=pl.col("status").replace_strict(STATUS_RANK, return_dtype=pl.Int8)
    ).sort(  # every tie broken, so two limits with the same figures always give the same row
        ["standard", "parameter", "rank", "deviation_pct", "side_statistic", "limit", "citation"],
        descending=[False, False, True, True, False, False, False],
        nulls_last=True,
    )
    return (
        worst_first.unique(subset=["standard", "parameter"], keep="first", maintain_order=True)
        .select(
            "standard",
            "parameter",
            "status",
            pl.col("side_statistic").alias("statistic"),
            "statistic_value",
            "limit",
            pl.col("bound").alias("limit_kind"),
            "unit",
            "deviation_pct",
            "rule",
            "citation",
            "sample_count",
            "excluded_count",
            "kind",
            "confirmed",
            "consequence",
        )
        .collect()
        .cast(RESULT_SCHEMA)
    )


def _rule() -> pl.Expr:
    """Plain words: 'daily maximum of online readings compared with the EU indicator value 2500
    uS/cm (why)'; for a range bound 'the lower/upper bound of the ... range 6.5-9.5 pH'."""
    statistic = pl.col("side_statistic").replace_strict(STATISTIC_WORDS, return_dtype=pl.String)
    is_range = pl.col("limit_min").is_not_null() & pl.col("limit_max").is_not_null()
    bound_words = (
        pl.when(is_range & (pl.col("bound") == "min"))
        .then(pl.lit("the lower bound of the "))
        .when(is_range)
        .then(pl.lit("the upper bound of the "))
        .otherwise(pl.lit("the "))
    )
    value_words = (
        pl.when(is_range)
        .then(
            pl.concat_str(_number(pl.col("limit_min")), pl.lit("-"), _number(pl.col("limit_max")))
        )
        .when(pl.col("bound") == "min")
        .then(pl.concat_str(pl.lit("of at least "), _number(pl.col("limit"))))
        .otherwise(_number(pl.col("limit")))
    )
    shortfall = shortfall_words()
    return pl.concat_str(
        pl.lit("daily "),
        statistic,
        pl.lit(" of "),
        pl.col("source"),
        pl.lit(" compared with "),
        bound_words,
        pl.col("standard"),
        pl.lit(" "),
        pl.col("label"),
        pl.lit(" "),
        value_words,
        pl.lit(" "),
        pl.col("unit"),
        pl.lit(" ("),
        pl.col("basis"),
        pl.lit(")"),
        shortfall,
        pl.when((pl.col("consequence") == "investigation") & (pl.col("status") == "WARNING"))
        .then(pl.lit("; exceeds the indicator value: triggers an investigation, not a violation"))
        .otherwise(pl.lit("")),
    )


def shortfall_words() -> pl.Expr:
    """'; 3 usable reading(s), at least 6 needed' on a row INSUFFICIENT_DATA for want of readings."""
    short = (pl.col("status") == "INSUFFICIENT_DATA") & (pl.col("sample_count") < pl.col("min_samples"))
    return (
        pl.when(short)
        .then(
            pl.concat_str(
                pl.lit("; "),
                pl.col("sample_count").cast(pl.String),
                pl.lit(" usable reading(s), at least "),
                pl.col("min_samples").cast(pl.String),
                pl.lit(" needed"),
            )
        )
        .otherwise(pl.lit(""))
    )


def _citation() -> pl.Expr:
    return pl.concat_str(
        pl.col("citation"),
        pl.when(pl.col("confirmed"))
        .then(pl.lit(""))
        .otherwise(pl.lit(" [value not confirmed from a primary text]")),
        pl.when(pl.col("date_confirmed"))
        .then(pl.lit(""))
        .otherwise(pl.lit(" [effective date not confirmed from a primary text]")),
    )
