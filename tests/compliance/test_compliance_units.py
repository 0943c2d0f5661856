"""Limits published in one unit and stored in the canonical one agree through pint
(tasks/quality/units.py): nitrate and nitrite "as N" against the ions, ammonium, ug/L and mg/L."""

import re

import polars as pl
import pytest

from tasks.compliance.standards import all_limits
from tasks.parameters import catalog
from tasks.quality.units import MOLAR_MASS_G_PER_MOL, UnitNotConvertible, conversion


def converted(value: float, spelling: str, canonical: str) -> float:
    c = conversion(spelling, canonical)
    return value * c.factor + c.offset


def limit(standard: str, parameter: str) -> float:
    rows = all_limits().filter((pl.col("standard") == standard) & (pl.col("parameter") == parameter))
    return rows["limit_max"].max()


@pytest.mark.parametrize(
    ("value", "spelling", "canonical", "expected"),
    [
        # mass of N to mass of the ion: x M(NO3)/M(N) = 62.004/14.007 = 4.4267
        (10.0, "mg/L as N", "mg/L as NO3", 44.267),
        (10.0, "mg/l NO3-N", "mg/L as NO3", 44.267),
        # x M(NO2)/M(N) = 46.005/14.007 = 3.2844
        (1.0, "mg/L as N", "mg/L as NO2", 3.2844),
        # and back: WHO/EU 50 mg/L nitrate is about 11.3 mg/L as N, EU nitrite 0.50 about 0.15
        (50.0, "mg/L as NO3", "mg/L as N", 11.295),
        (0.5, "mg/L as NO2", "mg/L as N", 0.15223),
        # ammonium: x M(N)/M(NH4) = 14.007/18.039 = 0.7765
        (0.5, "mg/L as NH4", "mg/L as N", 0.38824),
        (1.0, "mg/L NH4-N", "mg/L as NH4", 1.28786),
        # mass concentrations: 0.015 mg/L = 15 ug/L (EPA lead), 200 ug/L = 0.2 mg/L (EU iron)
        (0.015, "mg/L", "ug/L", 15.0),
        (200.0, "µg/L", "mg/L", 0.2),
    ],
)
def test_a_value_converts_between_published_and_canonical_units(value, spelling, canonical, expected):
    assert converted(value, spelling, canonical) == pytest.approx(expected, rel=1e-4)


def test_the_epa_nitrate_and_nitrite_limits_are_their_as_n_values_in_the_ion_units():
    assert limit("EPA", "nitrate") == pytest.approx(converted(10.0, "mg/L as N", "mg/L as NO3"), rel=1e-3)
    assert limit("EPA", "nitrite") == pytest.approx(converted(1.0, "mg/L as N", "mg/L as NO2"), rel=1e-3)
    # the EPA nitrate MCL is the stricter one: 10 mg/L as N is below WHO/EU 50 mg/L as nitrate
    assert limit("EPA", "nitrate") < limit("EU", "nitrate") == limit("WHO", "nitrate") == 50.0


def test_a_reading_as_n_converts_with_the_ratio_of_molar_masses():
    factor = conversion("mg/L as N", "mg/L as NH4").factor
    assert factor == pytest.approx(MOLAR_MASS_G_PER_MOL["NH4"] / MOLAR_MASS_G_PER_MOL["N"], rel=1e-12)


def test_different_ions_are_never_converted_into_each_other():
    for spelling, canonical in [("mg/L as NH4", "mg/L as NO3"), ("mg/L NO2", "mg/L as NH4")]:
        with pytest.raises(UnitNotConvertible, match="do not count the same species"):
            conversion(spelling, canonical)


# "0.010 mg/L", "10 mg/L as N", "about 0.3 mg/L", "50 mg/L (as NO3-)", "200 ug/L", "4.0 mg/L as Cl2"
_PUBLISHED = re.compile(r"^(?:about )?(?P<value>\d+(?:\.\d+)?) (?P<unit>mg/L|ug/L|NTU)(?P<as_n> as N\b)?")


def test_every_published_single_value_agrees_with_the_stored_limit():
    """Where `original` opens with one value and a unit, pint turns it into the stored limit: a
    slip between the published text and the canonical number (mg/L for ug/L) cannot hide."""
    checked = 0
    for row in all_limits().iter_rows(named=True):
        match = _PUBLISHED.match(row["original"])
        if match is None:
            continue
        canonical = row["unit"]
        species = canonical.split(" as ")[1] if " as " in canonical else None
        published = match["unit"] + (" as N" if match["as_n"] else f" as {species}" if species else "")
        stored = row["limit_max"] if row["limit_max"] is not None else row["limit_min"]
        value = converted(float(match["value"]), published, canonical)
        assert stored == pytest.approx(value, rel=1e-3), (row["standard"], row["parameter"], row["original"])
        checked += 1
    assert checked >= 50  # most limits are published as one value and a unit


def test_every_limit_unit_is_one_its_parameter_accepts():
    for parameter, unit in all_limits().select("parameter", "unit").unique().iter_rows():
        assert unit in catalog()[parameter].accepted_units, parameter
