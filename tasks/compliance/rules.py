"""Judging a period the way regulators do: each limit row names its rule, and each rule computes
its own statistic (90th percentile of a sampling round, running annual averages, turbidity
treatment technique, confirmation samples...) before the common status logic of judge.py.

Entry point: `judge_period(readings, history, limits, parameters, period_start, period_end)`
returns (results, exceedances):
- results (`PERIOD_RESULT_SCHEMA`): judge.RESULT_SCHEMA plus `rule_code`, `consequence`,
  `period_start`, `period_end`; one row per (standard, parameter, rule_code, statistic), except
  that a range's two ends give one row, the worse. `rule` is the sentence a person reads.
- exceedances (`EXCEEDANCE_SCHEMA`): each reading (or hourly ratio, or station average) beyond
  its limit, with the `rule_code` and `statistic` of the result it belongs to. Running averages
  have no sensor and no time; the nitrate/nitrite ratio has the hour and no sensor.

Status: NON_COMPLIANT beyond a limit; WARNING within 10 % before it (judge.WARNING_FRACTION), and
for every exceedance of a limit whose consequence is `investigation` (EU indicator parameters:
"triggers an investigation, not a violation"); INSUFFICIENT_DATA with fewer usable readings than
the row's `min_samples`, none at all, or running averages with periods missing; else COMPLIANT.
`advisory` and `treatment_technique_trigger` exceedances stay NON_COMPLIANT; the `consequence`
column and the rule sentence say what they mean.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl

from tasks.compliance.rules_averages import judge_raa_monthly, judge_raa_quarterly
from tasks.compliance.rules_common import EXCEEDANCE_SCHEMA, PERIOD_RESULT_SCHEMA, finish, usable
from tasks.compliance.rules_samples import (
    judge_confirmations,
    judge_detections,
    judge_p90_round,
    judge_samples,
)
from tasks.compliance.rules_turbidity import (
    judge_nitrate_nitrite,
    judge_turbidity_consecutive,
    judge_turbidity_tt,
)

__all__ = [
    "EXCEEDANCE_SCHEMA",
    "HISTORY_SCHEMA",
    "PERIOD_LIMIT_SCHEMA",
    "PERIOD_READING_SCHEMA",
    "PERIOD_RESULT_SCHEMA",
    "RULE_CODES",
    "judge_period",
]

# The period's readings of one municipality, usable and not: `kind` online|lab, `time` UTC,
# `value` in the parameter's canonical unit, `qc_flag` QARTOD (4 fail and 9 missing are excluded
# from every statistic and counted in `excluded_count`; null = not evaluated, usable).
PERIOD_READING_SCHEMA = {
    "station_id": pl.String,
    "sensor_id": pl.String,
    "parameter": pl.String,
    "kind": pl.String,
    "time": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "qc_flag": pl.Int64,
}

# Monthly sums and counts of usable readings per station and parameter, from the caller's
# aggregates, covering at least the 12 months that end with the period's month (the running
# averages use nothing else, not the period readings). `month` is the month's first day (any day
# of it is accepted, so daily rows may be passed as they are); `excluded_count` is optional.
HISTORY_SCHEMA = {
    "station_id": pl.String,
    "parameter": pl.String,
    "month": pl.Date,
    "value_sum": pl.Float64,
    "value_count": pl.Int64,
    "excluded_count": pl.Int64,
}

# standards.LIMIT_SCHEMA with the rule and its consequence (load_standards(on) once the standard
# files carry them). `effective_*`, `original` and `enforceable` are not needed here.
PERIOD_LIMIT_SCHEMA = {
    "standard": pl.String,
    "parameter": pl.String,
    "kind": pl.String,
    "label": pl.String,
    "rule": pl.String,
    "consequence": pl.String,
    "limit_min": pl.Float64,
    "limit_max": pl.Float64,
    "unit": pl.String,
    "min_samples": pl.Int64,
    "confirmed": pl.Boolean,
    "date_confirmed": pl.Boolean,
    "citation": pl.String,
    "basis": pl.String,
}

CONSEQUENCES = ("violation", "investigation", "advisory", "treatment_technique_trigger")

ReadingRule = Callable[[pl.LazyFrame, pl.LazyFrame], tuple[pl.LazyFrame, pl.LazyFrame]]

READING_RULES: dict[str, ReadingRule] = {
    "sample_max": judge_samples,
    "sample_min": judge_samples,
    "sample_range": judge_samples,
    "indicator": judge_samples,
    "p90_round": judge_p90_round,
    "any_detection": judge_detections,
    "confirmation_average": judge_confirmations,
    "turbidity_tt": judge_turbidity_tt,
    "turbidity_consecutive": judge_turbidity_consecutive,
    "nitrate_nitrite_ratio": judge_nitrate_nitrite,
}
HISTORY_RULES = {"raa_quarterly": judge_raa_quarterly, "raa_monthly": judge_raa_monthly}
RULE_CODES = (*READING_RULES, *HISTORY_RULES)

# Which bound each rule compares; a row without it cannot be judged.
NEEDS_MAX = {
    "sample_max",
    "p90_round",
    "raa_quarterly",
    "raa_monthly",
    "turbidity_tt",
    "turbidity_consecutive",
    "confirmation_average",
    "nitrate_nitrite_ratio",
}
NEEDS_MIN = {"sample_min"}
NEEDS_BOTH = {"sample_range"}


def _missing_columns(frame: pl.DataFrame | pl.LazyFrame, schema: dict, what: str, optional=()) -> None:
    names = frame.collect_schema().names()
    missing = [name for name in schema if name not in names and name not in optional]
    if missing:
        raise ValueError(f"{what} lack the column(s) {', '.join(missing)}")


def _typed(frame: pl.DataFrame | pl.LazyFrame, schema: dict, what: str) -> pl.LazyFrame:
    """`frame` with the schema's columns in their types; ValueError naming a column that is not."""
    actual = frame.collect_schema()
    columns = []
    for name, dtype in schema.items():
        if name not in actual.names():
            columns.append(pl.lit(None, dtype).alias(name))
            continue
        have = actual[name]
        if isinstance(dtype, pl.Datetime):
            if not isinstance(have, pl.Datetime):
                raise ValueError(f"{what}: column {name} must hold datetimes (UTC), not {have}")
            utc = pl.col(name).dt.replace_time_zone("UTC") if have.time_zone is None else pl.col(name)
            columns.append(utc.dt.convert_time_zone("UTC").cast(dtype))
        elif dtype == pl.Date:
            if have != pl.Date and not isinstance(have, pl.Datetime):
                raise ValueError(f"{what}: column {name} must hold dates, not {have}")
            columns.append(pl.col(name).cast(pl.Date))
        elif dtype.is_numeric() and not (have.is_numeric() or have == pl.Null):
            raise ValueError(f"{what}: column {name} must hold numbers, not {have}")
        else:
            columns.append(pl.col(name).cast(dtype))
    return frame.lazy().select(columns)


def _checked_limits(limits: pl.DataFrame, parameters: list[str]) -> pl.DataFrame:
    """The limit rows of measured parameters, numbered; ValueError for a rule it cannot apply."""
    _missing_columns(limits, PERIOD_LIMIT_SCHEMA, "the limits")
    rows = _typed(limits, PERIOD_LIMIT_SCHEMA, "the limits").collect()
    for row in rows.iter_rows(named=True):  # a few dozen limit rows, not data
        name = f"{row['standard']} {row['parameter']}"
        code = row["rule"]
        if code not in RULE_CODES:
            raise ValueError(
                f"{name}: unknown compliance rule {code!r}; known rules: {', '.join(RULE_CODES)}"
            )
        if row["consequence"] not in CONSEQUENCES:
            raise ValueError(
                f"{name}: unknown consequence {row['consequence']!r}; known: {', '.join(CONSEQUENCES)}"
            )
        has_min, has_max = row["limit_min"] is not None, row["limit_max"] is not None
        if (
            (code in NEEDS_MAX and not has_max)
            or (code in NEEDS_MIN and not has_min)
            or (code in NEEDS_BOTH and not (has_min and has_max))
            or not (has_min or has_max or code == "any_detection")
        ):
            raise ValueError(f"{name}: rule {code} needs limit_min/limit_max values it does not have")
    measured = pl.col("parameter").is_in(parameters)
    if {"nitrate", "nitrite"} & set(parameters):
        # the sum rule may carry a parameter of its own (`nitrate_nitrite_ratio`): it applies
        # wherever either ion is measured, and says so when no hour has both
        measured = measured | (pl.col("rule") == "nitrate_nitrite_ratio")
    return (
        rows.filter(measured)
        .with_columns(pl.col("min_samples").fill_null(1))
        .with_row_index("limit_row")
        .rename({"rule": "rule_code"})
    )


def judge_period(
    readings: pl.DataFrame | pl.LazyFrame,
    history: pl.DataFrame | pl.LazyFrame | None,
    limits: pl.DataFrame,
    parameters: list[str],
    period_start: date,
    period_end: date,
    followups: pl.DataFrame | pl.LazyFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One municipality's period judged by every limit row's rule: (results, exceedances).

    `parameters` are those the municipality measures: their limits give a row each (with no
    usable readings, INSUFFICIENT_DATA); limits of other parameters give none, except the
    nitrate/nitrite sum, which applies where nitrate or nitrite is measured. `period_end` is
    the period's last day (inclusive); running averages end with its quarter or month.
    `followups` (the readings' schema) are the lab samples of the 24 hours after the period:
    only confirmation samples of the period's last samples, never judged or counted themselves.
    """
    if isinstance(parameters, str) or not all(isinstance(name, str) for name in parameters):
        raise ValueError("parameters must be a list of parameter names, e.g. ['ph', 'turbidity']")
    if period_start > period_end:
        raise ValueError(f"the period starts ({period_start}) after it ends ({period_end})")
    _missing_columns(readings, PERIOD_READING_SCHEMA, "the readings")
    rows = _checked_limits(limits, parameters)
    lazy_rows = rows.lazy()
    by_rule = {code: lazy_rows.filter(pl.col("rule_code").is_in(codes)) for code, codes in _groups(rows)}
    typed = _typed(readings, PERIOD_READING_SCHEMA, "the readings").with_columns(usable=usable())
    # Typed once and shared by every rule (each scans it, with its own filters and groups).
    relevant = typed.filter(pl.col("parameter").is_in(_read_parameters(rows))).collect().lazy()

    later = None
    if followups is not None:
        _missing_columns(followups, PERIOD_READING_SCHEMA, "the follow-up samples")
        later = _typed(followups, PERIOD_READING_SCHEMA, "the follow-up samples")
        later = later.with_columns(usable=usable())

    judged: list[tuple[pl.LazyFrame, pl.LazyFrame]] = []
    for code, rule_rows in by_rule.items():
        if code == "confirmation_average":
            judged.append(judge_confirmations(relevant, rule_rows, later))
        elif code in READING_RULES:
            judged.append(READING_RULES[code](relevant, rule_rows))
    if any(code in HISTORY_RULES for code in by_rule):
        excluded_known = history is not None and "excluded_count" in history.collect_schema().names()
        if history is not None:
            _missing_columns(history, HISTORY_SCHEMA, "the history", optional=("excluded_count",))
            past = _typed(history, HISTORY_SCHEMA, "the history")
        else:
            past = pl.LazyFrame(schema=HISTORY_SCHEMA)
        past = past.with_columns(pl.col("month").dt.month_start())
        for code, rule in HISTORY_RULES.items():
            if code in by_rule:
                judged.append(rule(past, by_rule[code], period_end, excluded_known))

    results = finish([candidate for candidate, _ in judged], period_start, period_end)
    exceedances = (
        pl.concat([exceeding for _, exceeding in judged])
        if judged
        else pl.LazyFrame(schema=EXCEEDANCE_SCHEMA)
    )
    results_frame, exceedance_frame = pl.collect_all(
        [
            results.sort("standard", "parameter", "rule_code", "statistic"),
            exceedances.sort(
                "standard", "parameter", "rule_code", "time", "station_id", "sensor_id", "statistic"
            ),
        ]
    )
    return results_frame, exceedance_frame


def _read_parameters(rows: pl.DataFrame) -> list[str]:
    """The parameters whose readings the rules read: their own, and both of the nitrate/nitrite sum."""
    wanted = set(rows["parameter"])
    if "nitrate_nitrite_ratio" in set(rows["rule_code"]):
        wanted |= {"nitrate", "nitrite"}
    return sorted(wanted)


def _groups(rows: pl.DataFrame) -> list[tuple[str, list[str]]]:
    """The rule functions to call: one per function, with the rule codes it handles."""
    present = set(rows["rule_code"])
    sample_codes = sorted(present & {"sample_max", "sample_min", "sample_range", "indicator"})
    groups = [("sample_max", sample_codes)] if sample_codes else []
    groups += [(code, [code]) for code in RULE_CODES if code in present and code not in sample_codes]
    return groups
