"""What every period rule shares: usable readings, the candidate-row contract, status and sentence.

Each rule module turns its limit rows into *candidate* rows (`CANDIDATE_SCHEMA`): one per limit
row, bound and (for location rules) location, carrying the statistic, the limit it meets and the
opening words of its rule sentence. `finish` judges them all the same way as the daily screen
(tasks/compliance/judge.py) and keeps the worst candidate of each result row.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks.compliance.judge import (
    EXCLUDED_QC_FLAGS,
    RESULT_SCHEMA,
    STATUS_RANK,
    WARNING_FRACTION,
    _citation,
    _number,
    shortfall_words,
)

PERIOD_RESULT_SCHEMA = {
    **{name: dtype for name, dtype in RESULT_SCHEMA.items() if name != "consequence"},
    "rule_code": pl.String,
    "consequence": pl.String,
    "period_start": pl.Date,
    "period_end": pl.Date,
}

EXCEEDANCE_SCHEMA = {
    "standard": pl.String,
    "parameter": pl.String,
    "rule_code": pl.String,
    "statistic": pl.String,
    "station_id": pl.String,
    "sensor_id": pl.String,
    "time": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "limit": pl.Float64,
    "unit": pl.String,
}

# A candidate: the limit row's own columns (standard ... basis, consequence, rule_code, limit_row)
# plus what the rule computed. `what` opens the rule sentence ("90th percentile of 24 lab
# samples"); `note` is appended to it ("; 3 of 4 quarters have samples"); `width` is a range's
# width (its warning band), `warn_at` overrides the warning threshold; `incomplete` marks a
# running average with periods missing (INSUFFICIENT_DATA unless the statistic is already over a
# max limit); `slot` separates result rows of one rule (turbidity_tt's two statistics).
CANDIDATE_SCHEMA = {
    "limit_row": pl.UInt32,
    "standard": pl.String,
    "parameter": pl.String,
    "kind": pl.String,
    "label": pl.String,
    "rule_code": pl.String,
    "consequence": pl.String,
    "unit": pl.String,
    "min_samples": pl.Int64,
    "confirmed": pl.Boolean,
    "date_confirmed": pl.Boolean,
    "citation": pl.String,
    "basis": pl.String,
    "statistic": pl.String,
    "statistic_value": pl.Float64,
    "bound": pl.String,
    "limit": pl.Float64,
    "width": pl.Float64,
    "warn_at": pl.Float64,
    "incomplete": pl.Boolean,
    "sample_count": pl.Int64,
    "excluded_count": pl.Int64,
    "what": pl.String,
    "note": pl.String,
    "slot": pl.String,
}


def usable() -> pl.Expr:
    """A reading that may be compared with a limit: not QARTOD 4 (fail) or 9 (missing), with a
    number. A null flag (not yet evaluated) counts as usable, like QARTOD 2."""
    return (
        (~pl.col("qc_flag").is_in(EXCLUDED_QC_FLAGS)).fill_null(True)
        & pl.col("value").is_not_null()
        & pl.col("value").is_not_nan()
    )


def counts() -> dict[str, pl.Expr]:
    """Aggregations of the usable and the excluded readings' counts (needs a `usable` column)."""
    return {
        "sample_count": pl.col("usable").sum().cast(pl.Int64),
        "excluded_count": (~pl.col("usable")).sum().cast(pl.Int64),
    }


def source_words(count: pl.Expr, kinds: pl.Expr) -> pl.Expr:
    """'24 lab samples', '2880 online readings', '3 online readings and lab samples'."""
    online = kinds.list.contains("online").fill_null(False)
    lab = kinds.list.contains("lab").fill_null(False)
    noun = (
        pl.when(online & lab)
        .then(pl.lit("online readings and lab samples"))
        .when(online)
        .then(pl.lit("online readings"))
        .when(lab)
        .then(pl.lit("lab samples"))
        .otherwise(pl.lit("readings"))
    )
    return pl.concat_str(count.fill_null(0).cast(pl.String), pl.lit(" "), noun)


def number(expr: pl.Expr) -> pl.Expr:
    """A value as text: 2500 not 2500.0, 0.3 as 0.3."""
    return _number(expr)


def candidates(frame: pl.LazyFrame) -> pl.LazyFrame:
    """`frame` reduced to the candidate columns; absent optional ones are null/empty."""
    fill = {
        "width": pl.lit(None, pl.Float64),
        "warn_at": pl.lit(None, pl.Float64),
        "incomplete": pl.lit(False),
        "note": pl.lit(""),
        "slot": pl.lit(""),
    }
    present = frame.collect_schema().names()
    columns = [
        (pl.col(name) if name in present else fill[name]).cast(dtype).alias(name)
        for name, dtype in CANDIDATE_SCHEMA.items()
    ]
    return frame.select(columns).with_columns(pl.col("sample_count", "excluded_count").fill_null(0))


def _status() -> pl.Expr:
    value = pl.col("statistic_value")
    limit = pl.col("limit")
    is_max = pl.col("bound") == "max"
    default_warn = (
        pl.when(is_max & pl.col("width").is_not_null())
        .then(limit - (1 - WARNING_FRACTION) * pl.col("width"))
        .when(is_max)
        .then(limit * WARNING_FRACTION)
        .when(pl.col("width").is_not_null())
        .then(limit + (1 - WARNING_FRACTION) * pl.col("width"))
        .otherwise(limit / WARNING_FRACTION)
        .round(9)
    )
    warn_at = pl.coalesce(pl.col("warn_at"), default_warn)
    beyond = pl.col("beyond")
    warning = (
        pl.when(is_max)
        .then((warn_at < limit) & (value >= warn_at))
        .otherwise((warn_at > limit) & (value <= warn_at))
    )
    too_few = (pl.col("sample_count") < pl.col("min_samples")) | value.is_null()
    undecided = pl.col("incomplete") & ~(is_max & beyond)
    return (
        pl.when(too_few | undecided)
        .then(pl.lit("INSUFFICIENT_DATA"))
        .when(beyond & (pl.col("consequence") == "investigation"))
        .then(pl.lit("WARNING"))
        .when(beyond)
        .then(pl.lit("NON_COMPLIANT"))
        .when(warning)
        .then(pl.lit("WARNING"))
        .otherwise(pl.lit("COMPLIANT"))
    )


def _deviation() -> pl.Expr:
    """How far beyond the limit the statistic lies, in % of the limit (negative = inside)."""
    value = pl.col("statistic_value")
    signed = (
        pl.when(pl.col("bound") == "max").then(value - pl.col("limit")).otherwise(pl.col("limit") - value)
    )
    return (
        pl.when((pl.col("status") == "INSUFFICIENT_DATA") | (pl.col("limit") == 0))
        .then(None)
        .otherwise((signed / pl.col("limit") * 100).round(2))
    )


def _limit_words() -> pl.Expr:
    """'the EU indicator value 2500 uS/cm', 'the lower bound of the EU indicator value 6.5-9.5 pH',
    'the EPA minimum residual of at least 0.2 mg/L'."""
    is_range = pl.col("width").is_not_null()
    bound_words = (
        pl.when(is_range & (pl.col("bound") == "min"))
        .then(pl.lit("the lower bound of the "))
        .when(is_range)
        .then(pl.lit("the upper bound of the "))
        .otherwise(pl.lit("the "))
    )
    value_words = (
        pl.when(is_range)
        .then(_range_text())
        .when(pl.col("bound") == "min")
        .then(pl.concat_str(pl.lit("of at least "), number(pl.col("limit"))))
        .otherwise(number(pl.col("limit")))
    )
    unit = pl.when(pl.col("unit") == "").then(pl.lit("")).otherwise(pl.concat_str(pl.lit(" "), "unit"))
    return pl.concat_str(bound_words, "standard", pl.lit(" "), "label", pl.lit(" "), value_words, unit)


def _range_text() -> pl.Expr:
    low = pl.when(pl.col("bound") == "min").then("limit").otherwise(pl.col("limit") - pl.col("width"))
    high = pl.when(pl.col("bound") == "max").then("limit").otherwise(pl.col("limit") + pl.col("width"))
    return pl.concat_str(number(low), pl.lit("-"), number(high))


def _consequence_words() -> pl.Expr:
    """What an exceedance means when it is not a plain violation."""
    beyond = pl.col("beyond")
    standard_label = pl.concat_str("standard", pl.lit(" "), "label")
    return (
        pl.when(~beyond | (pl.col("status") == "INSUFFICIENT_DATA"))
        .then(pl.lit(""))
        .when(pl.col("consequence") == "investigation")
        .then(
            pl.concat_str(
                pl.lit("; exceeds the "),
                standard_label,
                pl.lit(": triggers an investigation, not a violation"),
            )
        )
        .when(pl.col("consequence") == "advisory")
        .then(
            pl.concat_str(
                pl.lit("; exceeds the "), standard_label, pl.lit(": advisory, not an enforceable limit")
            )
        )
        .when(pl.col("consequence") == "treatment_technique_trigger")
        .then(pl.lit("; triggers a treatment-technique assessment or action"))
        .otherwise(pl.lit(""))
    )


def _rule_sentence() -> pl.Expr:
    shortfall = shortfall_words()
    return pl.concat_str(
        "what",
        pl.lit(" compared with "),
        _limit_words(),
        pl.lit(" ("),
        "basis",
        pl.lit(")"),
        "note",
        shortfall,
        _consequence_words(),
        ignore_nulls=True,
    )


def finish(candidate_frames: list[pl.LazyFrame], period_start: date, period_end: date) -> pl.LazyFrame:
    """Judge every candidate and keep the worst of each (standard, parameter, rule, slot)."""
    if not candidate_frames:
        return pl.LazyFrame(schema=PERIOD_RESULT_SCHEMA)
    judged = (
        pl.concat(candidate_frames)
        .with_columns(beyond=_beyond(pl.col("statistic_value")).fill_null(False))
        .with_columns(status=_status())
        .with_columns(
            deviation_pct=_deviation(),
            # an incomplete running average is only a lower bound: shown only when it decides
            statistic_value=pl.when(pl.col("incomplete") & (pl.col("status") == "INSUFFICIENT_DATA"))
            .then(None)
            .otherwise("statistic_value"),
        )
        .with_columns(rule=_rule_sentence(), citation=_citation())
        .with_columns(rank=pl.col("status").replace_strict(STATUS_RANK, return_dtype=pl.Int8))
        .sort(
            ["standard", "parameter", "rule_code", "slot", "rank", "deviation_pct", "statistic_value"],
            descending=[False, False, False, False, True, True, True],
            nulls_last=True,
        )
        .unique(subset=["standard", "parameter", "rule_code", "slot"], keep="first", maintain_order=True)
    )
    return judged.select(
        "standard",
        "parameter",
        "status",
        "statistic",
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
        "rule_code",
        "consequence",
        period_start=pl.lit(period_start, pl.Date),
        period_end=pl.lit(period_end, pl.Date),
    ).cast(PERIOD_RESULT_SCHEMA)


def exceedance_rows(frame: pl.LazyFrame) -> pl.LazyFrame:
    """`frame` reduced to the exceedance columns, in their types."""
    present = frame.collect_schema().names()
    return frame.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in EXCEEDANCE_SCHEMA.items()
        ]
    )


def _beyond(value: pl.Expr) -> pl.Expr:
    return pl.when(pl.col("bound") == "max").then(value > pl.col("limit")).otherwise(value < pl.col("limit"))


def beyond_limit() -> pl.Expr:
    """A reading's `value` past its `limit` on the side named by `bound`."""
    return _beyond(pl.col("value"))
