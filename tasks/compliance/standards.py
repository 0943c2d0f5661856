"""The drinking-water standards as cited data: `tasks/compliance/standards/*.yaml`, one per body.

Every limit names the `rule` that judges it over a period (RULES), the `statistic` the daily screen
compares (consistent with the rule, RULE_STATISTICS) and the `consequence` of an exceedance.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.parameters import parameter as catalog_parameter

STANDARDS_DIR = Path(__file__).with_name("standards")

Evidence = Literal["C", "C-old", "M"]

# How each kind of limit is named in a rule ("... compared with the EU indicator value 2500 uS/cm").
KIND_LABELS = {
    "guideline": "guideline value",
    "operational": "operational target",
    "operational_minimum": "operational minimum",
    "acceptability": "acceptability threshold",
    "mcl": "maximum contaminant level (MCL)",
    "action_level": "action level",
    "secondary": "secondary MCL",
    "treatment_technique": "treatment-technique limit",
    "mrdl": "maximum residual disinfectant level (MRDL)",
    "minimum_residual": "minimum residual",
    "parametric": "parametric value",
    "indicator": "indicator value",
}

# How compliance over a period is judged; tasks/compliance/rules_* implement these names.
RULES = {
    "sample_max": "each sample or reading compared with a maximum",
    "sample_min": "each sample compared with a minimum",
    "sample_range": "each sample inside [min, max]",
    "p90_round": "90th percentile of a sampling round's lab samples compared with the action level",
    "raa_quarterly": "running annual average of quarterly averages per sampling location",
    "raa_monthly": "running annual average of monthly averages over the system",
    "turbidity_tt": "at least 95 % of a month's readings at most 0.3 NTU and none above 1 NTU",
    "turbidity_consecutive": "two consecutive 15-minute individual-filter readings above 1.0 NTU",
    "confirmation_average": "an exceeding sample averaged with its confirmation sample within 24 h",
    "any_detection": "any detection in a sample is an exceedance",
    "indicator": "an exceedance of an indicator value triggers an investigation",
    "nitrate_nitrite_ratio": "nitrate/50 + nitrite/3 (mg/L as the ions) at most 1",
}

# The daily screen's statistic that goes with each rule. sample_max also allows `mean` where one
# sample stands for an average intake (EU lead and copper: a sample representative of the weekly
# average). turbidity_tt goes on the 0.3 NTU row (its 1 NTU maximum is part of the rule); the
# "none above 1 NTU" row of the daily screen is a sample_max row of its own.
RULE_STATISTICS = {
    "sample_max": ("max", "mean"),
    "sample_min": ("min",),
    "sample_range": ("range",),
    "p90_round": ("p90",),
    "raa_quarterly": ("mean",),
    "raa_monthly": ("mean",),
    "turbidity_tt": ("p95",),
    "turbidity_consecutive": ("max",),
    "confirmation_average": ("max",),
    "any_detection": ("max",),
    "indicator": ("max", "min", "range"),
    "nitrate_nitrite_ratio": ("max",),
}

# What an exceedance means: only a `violation` is enforceable.
CONSEQUENCES = {
    "violation": "a violation of an enforceable limit",
    "investigation": "an investigation (EU indicator parameter), not a violation",
    "advisory": "advisory: a non-enforceable value (EPA secondary standard, WHO guideline)",
    "treatment_technique_trigger": "a treatment-technique assessment or action, not a violation",
}

LIMIT_SCHEMA = {
    "standard": pl.String,
    "parameter": pl.String,
    "kind": pl.String,
    "label": pl.String,
    "statistic": pl.String,
    "limit_min": pl.Float64,
    "limit_max": pl.Float64,
    "unit": pl.String,
    "original": pl.String,
    "min_samples": pl.Int64,
    "effective_from": pl.Date,
    "effective_until": pl.Date,
    "confirmed": pl.Boolean,
    "date_confirmed": pl.Boolean,
    "citation": pl.String,
    "basis": pl.String,
    "rule": pl.String,
    "consequence": pl.String,
    "enforceable": pl.Boolean,
}


class LimitSpec(BaseModel):
    """One published value: what it limits, in which unit, judged how, in force when."""

    model_config = ConfigDict(extra="forbid")

    parameter: str
    kind: Literal[tuple(KIND_LABELS)]  # type: ignore[valid-type]
    min: float | None = None
    max: float | None = None
    unit: str
    original: str
    statistic: Literal["max", "min", "mean", "p90", "p95", "range"]
    rule: Literal[tuple(RULES)]  # type: ignore[valid-type]
    consequence: Literal[tuple(CONSEQUENCES)]  # type: ignore[valid-type]
    min_samples: int = 1
    effective_from: date | None = None  # first day in force; None = always
    effective_until: date | None = None  # first day no longer in force; None = open
    evidence: Evidence
    date_evidence: Evidence | None = None
    sources: list[str]
    citation: str = Field(min_length=20)
    basis: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> LimitSpec:
        canonical = catalog_parameter(self.parameter).unit
        if self.unit != canonical:
            raise ValueError(
                f"{self.parameter}: limit unit {self.unit!r} is not the canonical unit "
                f"{canonical!r}"
            )
        if self.min is None and self.max is None:
            raise ValueError(f"{self.parameter}: a limit needs a min, a max or both")
        if self.statistic == "range" and (self.min is None or self.max is None):
            raise ValueError(f"{self.parameter}: statistic 'range' needs both min and max")
        if (
            self.effective_from
            and self.effective_until
            and self.effective_from >= self.effective_until
        ):
            raise ValueError(f"{self.parameter}: effective_from must be before effective_until")
        self._rule_consistent()
        return self

    def _rule_consistent(self) -> None:
        allowed = RULE_STATISTICS[self.rule]
        if self.statistic not in allowed:
            raise ValueError(
                f"{self.parameter}: rule {self.rule!r} goes with statistic {' or '.join(allowed)}, "
                f"not {self.statistic!r}"
            )
        if (self.rule == "nitrate_nitrite_ratio") != (self.parameter == "nitrate_nitrite_ratio"):
            raise ValueError(
                f"{self.parameter}: rule 'nitrate_nitrite_ratio' belongs to parameter "
                f"'nitrate_nitrite_ratio' and only to it"
            )
        if (self.kind == "indicator") != (self.consequence == "investigation"):
            raise ValueError(
                f"{self.parameter}: an indicator value has consequence 'investigation' and only "
                f"an indicator value has it (kind {self.kind!r}, consequence {self.consequence!r})"
            )
        if (self.kind == "indicator") != (self.rule == "indicator"):
            raise ValueError(
                f"{self.parameter}: an indicator value is judged by rule 'indicator' and only an "
                f"indicator value is (kind {self.kind!r}, rule {self.rule!r})"
            )
        if self.kind == "secondary" and self.consequence != "advisory":
            raise ValueError(
                f"{self.parameter}: a secondary standard is non-enforceable, so its consequence is "
                f"'advisory', not {self.consequence!r}"
            )


class StandardFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    standard: str
    title: str
    sources: dict[str, str]
    limits: list[LimitSpec]

    @model_validator(mode="after")
    def _known_sources(self) -> StandardFile:
        for limit in self.limits:
            unknown = set(limit.sources) - set(self.sources)
            if unknown:
                raise ValueError(
                    f"{self.standard} {limit.parameter}: unknown sources {sorted(unknown)}"
                )
            if self.standard == "WHO" and limit.consequence != "advisory":
                raise ValueError(
                    f"WHO {limit.parameter}: WHO guideline values are not law, so the consequence "
                    f"is 'advisory', not {limit.consequence!r}"
                )
        return self


def read_standard(path: Path) -> StandardFile:
    """Parse and check one standard file; raises ValueError naming the file and the parameter."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML: {exc}") from None
    try:
        return StandardFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, raw) for error in exc.errors())
        raise ValueError(f"{path.name}: {problems}") from None


def _problem(error: dict, raw: object) -> str:
    """One validation error as words: 'limit 4 (lead): rule: Input should be ...'."""
    loc = list(error["loc"])
    where, name = "", None
    if len(loc) >= 2 and loc[0] == "limits" and isinstance(loc[1], int):
        limits = raw.get("limits") if isinstance(raw, dict) else None
        entry = limits[loc[1]] if isinstance(limits, list) and loc[1] < len(limits) else None
        name = entry.get("parameter") if isinstance(entry, dict) else None
        where = f"limit {loc[1] + 1} ({name or 'no parameter'})"
        loc = loc[2:]
    field = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if where and name:
        message = message.removeprefix(f"{name}: ")
    if error["type"] == "missing":
        message = f"{field or 'a field'} is required but missing"
    else:
        if error["type"] == "literal_error":
            message = f"{message} (got {error['input']!r})"
        message = f"{field}: {message}" if field else message
    return f"{where}: {message}" if where else message


@lru_cache(maxsize=1)
def all_limits() -> pl.DataFrame:
    """Every limit of every standard file, whatever its dates."""
    rows = []
    for path in sorted(STANDARDS_DIR.glob("*.yaml")):
        spec = read_standard(path)
        for limit in spec.limits:
            rows.append(
                {
                    "standard": spec.standard,
                    "parameter": limit.parameter,
                    "kind": limit.kind,
                    "label": KIND_LABELS[limit.kind],
                    "statistic": limit.statistic,
                    "limit_min": limit.min,
                    "limit_max": limit.max,
                    "unit": limit.unit,
                    "original": limit.original,
                    "min_samples": limit.min_samples,
                    "effective_from": limit.effective_from,
                    "effective_until": limit.effective_until,
                    "confirmed": limit.evidence == "C",
                    "date_confirmed": (limit.date_evidence or "C") == "C",
                    "citation": " ".join(limit.citation.split()),
                    "basis": " ".join(limit.basis.split()),
                    "rule": limit.rule,
                    "consequence": limit.consequence,
                    "enforceable": limit.consequence == "violation",
                }
            )
    return pl.DataFrame(rows, schema=LIMIT_SCHEMA)


def load_standards(on: date, standards: list[str] | None = None) -> pl.DataFrame:
    """The limits in force on day `on` (optionally of some standards only), one row per limit."""
    limits = all_limits().filter(
        (pl.col("effective_from").is_null() | (pl.col("effective_from") <= on))
        & (pl.col("effective_until").is_null() | (pl.col("effective_until") > on))
    )
    if standards is not None:
        limits = limits.filter(pl.col("standard").is_in([s.upper() for s in standards]))
    return limits.sort("standard", "parameter", "kind", "rule", "statistic", "limit_max")


def known_standards() -> list[str]:
    """The standards the files define (EPA, EU, WHO)."""
    return sorted(all_limits()["standard"].unique().to_list())
