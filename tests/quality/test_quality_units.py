"""Unit spellings become each parameter's canonical unit through pint, one factor and offset per unit."""

import math

import pytest

from tasks.parameters import catalog
from tasks.quality.units import MOLAR_MASS_G_PER_MOL, Conversion, UnitNotConvertible, conversion


def _converted(value: float, spelling: str, canonical: str) -> float:
    c = conversion(spelling, canonical)
    return value * c.factor + c.offset


@pytest.mark.parametrize(
    ("value", "spelling", "canonical", "expected"),
    [
        (250.0, "µg/L", "mg/L", 0.25),
        (250.0, "ug/L", "mg/L", 0.25),
        (250.0, "μg/L", "mg/L", 0.25),  # Greek mu, not the micro sign
        (0.01, "mg/L", "ug/L", 10.0),
        (0.5, "mS/cm", "uS/cm", 500.0),
        (0.05, "S/m", "uS/cm", 500.0),
        (32.0, "°F", "degC", 0.0),
        (212.0, "degF", "degC", 100.0),
        (-40.0, "F", "degC", -40.0),
        (20.0, "C", "degC", 20.0),
        (3.2, "FNU", "NTU", 3.2),
        (10.0, "mg/L as N", "mg/L as NO3", 44.27),
        (10.0, "mg/L NO3-N", "mg/L as NO3", 44.27),
        (1.0, "mg/l as N", "mg/L as NO2", 3.285),
    ],
)
def test_a_value_in_an_accepted_unit_converts_to_the_canonical_unit(value, spelling, canonical, expected):
    assert _converted(value, spelling, canonical) == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_nitrate_as_n_is_as_no3_times_the_molar_mass_ratio():
    factor = conversion("mg/L as N", "mg/L as NO3").factor
    assert factor == pytest.approx(4.427, rel=1e-3)
    assert factor == pytest.approx(MOLAR_MASS_G_PER_MOL["NO3"] / MOLAR_MASS_G_PER_MOL["N"], rel=1e-12)


def test_aliases_are_exact_identities():
    for spelling, canonical in [("µS/cm", "uS/cm"), ("°C", "degC"), ("FNU", "NTU"), ("pH", "pH")]:
        assert conversion(spelling, canonical) == Conversion(1.0, 0.0)


def test_every_accepted_unit_of_the_catalog_converts_with_a_finite_factor():
    for p in catalog().values():
        assert p.unit in p.accepted_units, p.name
        for spelling in p.accepted_units:
            c = conversion(spelling, p.unit)
            assert math.isfinite(c.factor) and c.factor > 0 and math.isfinite(c.offset), (p.name, spelling)


def test_units_of_another_dimension_or_species_are_refused():
    with pytest.raises(UnitNotConvertible):
        conversion("mV", "degC")
    with pytest.raises(UnitNotConvertible):
        conversion("mg/L as NO2", "mg/L as NO3")
    with pytest.raises(UnitNotConvertible):
        conversion("furlongs", "mg/L")
