"""The catalog of measured parameters: canonical unit, physically possible range, accepted units."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

CATALOG_PATH = Path(__file__).with_name("parameters.yaml")


@dataclass(frozen=True)
class Parameter:
    name: str
    unit: str
    min: float
    max: float
    accepted_units: tuple[str, ...]


@lru_cache(maxsize=1)
def catalog() -> dict[str, Parameter]:
    """Every known parameter by name, read from `tasks/parameters.yaml`."""
    raw = yaml.safe_load(CATALOG_PATH.read_text())
    return {
        name: Parameter(name, spec["unit"], float(spec["min"]), float(spec["max"]),
                        tuple(spec["accepted_units"]))
        for name, spec in raw.items()
    }


def parameter(name: str) -> Parameter:
    try:
        return catalog()[name]
    except KeyError:
        known = ", ".join(sorted(catalog()))
        raise ValueError(f"unknown parameter {name!r}; known parameters: {known}") from None
