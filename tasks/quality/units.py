"""Unit spellings to each parameter's canonical unit, with pint, as a factor and an offset.

pint runs once per (parameter, accepted spelling), never per row: the gate joins the resulting
table and Polars applies `value * factor + offset` to the whole column. Temperature in °F is
affine, so every conversion is derived from two converted points (0 and 1000).

Nitrate, nitrite and ammonium are reported "as N" (mass of nitrogen) or as the ion (mass of NO3,
NO2, NH4). pint converts between them through the amount of substance: mg/L as N / M(N) * M(NO3).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import pint

# g/mol, IUPAC standard atomic weights rounded as used in water chemistry.
MOLAR_MASS_G_PER_MOL = {"N": 14.007, "NO3": 62.004, "NO2": 46.005, "NH4": 18.039}

# Spellings that pint reads differently or not at all (C is coulomb, F is farad, m3 is unknown).
PINT_SPELLINGS = {
    "C": "degC",
    "F": "degF",
    "m3/h": "m**3/h",
    "pH": "pH_unit",
    "CFU/100mL": "CFU / (100 * mL)",
}
# Units of no physical dimension pint knows: each gets a dimension of its own.
DEFINITIONS = (
    "pH_unit = [pH]",
    "NTU = [turbidity]",
    "FNU = NTU",  # ISO 7027 formazin nephelometric units: the same scale for our purpose
    "CFU = [colony]",
)
# "mg/L as N", "mg/L NO3-N", "mg/L as NO3", "mg/l NO2", "mg/L NH4-N": the species the mass is
# counted as.
_SPECIES = re.compile(r"^(?P<unit>.+?)\s+(?:as\s+)?(?P<species>NO3-N|NO2-N|NH4-N|NO3|NO2|NH4|N)$")


# Two points this far apart give the factor of an affine conversion (°F -> °C goes through
# kelvin, so each converted point carries ~1e-13 of rounding; a wide span divides it away).
_SPAN = 1000.0


class UnitNotConvertible(ValueError):
    """A declared spelling pint cannot read or convert to the canonical unit (a catalog bug)."""


@dataclass(frozen=True)
class Conversion:
    """canonical = value * factor + offset."""

    factor: float
    offset: float = 0.0


# Prefect may check several municipalities' files at once in threads: the registry is built once
# (two registries would make "units of different registries" errors) and pint is used in turns.
_LOCK = threading.RLock()


def registry() -> pint.UnitRegistry:
    """pint's default registry plus the water-quality units it lacks (built once, ~0.3 s)."""
    with _LOCK:
        return _registry()


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    ureg = pint.UnitRegistry()
    for definition in DEFINITIONS:
        ureg.define(definition)
    return ureg


def split_species(spelling: str) -> tuple[str, str | None]:
    """'mg/L as N' -> ('mg/L', 'N'); 'mg/L NO3-N' -> ('mg/L', 'N'); 'mg/L as NH4' -> ('mg/L', 'NH4');
    'uS/cm' -> ('uS/cm', None)."""
    text = " ".join(spelling.split())
    match = _SPECIES.match(text)
    if match is None:
        return text, None
    species = match["species"]
    return match["unit"], "N" if species.endswith("-N") else species


def _quantity_unit(ureg: pint.UnitRegistry, text: str) -> pint.Unit:
    try:
        return ureg.Unit(PINT_SPELLINGS.get(text, text))
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError) as exc:
        raise UnitNotConvertible(f"unit {text!r} is not known to pint: {exc}") from None


def conversion(spelling: str, canonical: str) -> Conversion:
    """How a value written in `spelling` becomes a value in `canonical` (both as in the catalog)."""
    with _LOCK:
        return _conversion(registry(), spelling, canonical)


def _conversion(ureg: pint.UnitRegistry, spelling: str, canonical: str) -> Conversion:
    source_text, source_species = split_species(spelling)
    target_text, target_species = split_species(canonical)
    if source_text == target_text and source_species == target_species:
        return Conversion(1.0)
    if source_species != target_species and "N" not in (source_species, target_species):
        # Only "as N" <-> "as the ion" is a conversion; NO2, NO3 and NH4 are different substances.
        raise UnitNotConvertible(f"{spelling!r} and {canonical!r} do not count the same species")
    source, target = _quantity_unit(ureg, source_text), _quantity_unit(ureg, target_text)
    if source == target and source_species == target_species:
        return Conversion(1.0)  # aliases (µS/cm = uS/cm, °C = degC, FNU = NTU) stay exact

    def convert(magnitude: float) -> float:
        quantity = ureg.Quantity(magnitude, source)
        if source_species != target_species:
            per_mol = ureg.Quantity(MOLAR_MASS_G_PER_MOL[source_species], "g/mol")
            quantity = quantity / per_mol * ureg.Quantity(MOLAR_MASS_G_PER_MOL[target_species], "g/mol")
        return float(quantity.to(target).magnitude)

    try:
        at_zero, at_span = convert(0.0), convert(_SPAN)
    except (pint.errors.DimensionalityError, KeyError) as exc:
        raise UnitNotConvertible(f"{spelling!r} cannot be converted to {canonical!r}: {exc}") from None
    return Conversion(factor=(at_span - at_zero) / _SPAN, offset=at_zero)
