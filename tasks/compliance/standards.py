"""The drinking-water standards as cited data: `tasks/compliance/standards/*.yaml`, one per body."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, model_validator

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
    min_samples: int = 1
    effective_from: date | None = None  # first day in force; None = always
    effective_until: date | None = None  # first day no longer in force; None = open
    evidence: Evidence
    date_evidence: Evidence | None = None
    sources: list[str]
    citation: str
    basis: str

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
        return self


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
        return self


def read_standard(path: Path) -> StandardFile:
    """Parse and check one standard file; raises ValueError naming the file."""
    try:
        return StandardFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None


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
    return limits.sort("standard", "parameter", "kind", "statistic")


def known_standards() -> list[str]:
    return sorted(all_limits()["standard"].unique().to_list())
