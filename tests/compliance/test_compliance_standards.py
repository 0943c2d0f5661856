from datetime import date

import polars as pl
import pytest

from tasks.compliance.plans import plan_for
from tasks.compliance.standards import STANDARDS_DIR, all_limits, load_standards, read_standard
from tasks.parameters import catalog

LIMITED = [
    "ph",
    "turbidity",
    "free_chlorine",
    "chlorine_dioxide",
    "conductivity",
    "lead",
    "copper",
    "arsenic",
    "nitrate",
    "nitrite",
    "fluoride",
    "e_coli",
]


def limit_of(on: date, standard: str, parameter: str) -> list[float]:
    return (
        load_standards(on, [standard])
        .filter(pl.col("parameter") == parameter)["limit_max"]
        .to_list()
    )


def test_every_standard_file_parses_with_canonical_units_and_citations():
    limits = all_limits()
    assert sorted(limits["standard"].unique()) == ["EPA", "EU", "WHO"]
    units = {name: p.unit for name, p in catalog().items()}
    assert all(units[p] == u for p, u in limits.select("parameter", "unit").iter_rows())
    assert limits.filter(pl.col("citation").str.len_chars() < 20).is_empty()


def test_every_parameter_with_limits_is_covered_by_some_standard():
    covered = set(all_limits()["parameter"])
    assert set(LIMITED) <= covered


def test_known_values_in_canonical_units():
    on = date(2026, 11, 25)
    assert limit_of(on, "EPA", "nitrate") == [44.3]  # 10 mg/L as N
    assert limit_of(on, "EPA", "nitrite") == [3.3]  # 1 mg/L as N
    assert limit_of(on, "EU", "conductivity") == [2500.0]
    assert limit_of(on, "WHO", "lead") == [10.0]  # 0.01 mg/L
    assert limit_of(on, "EPA", "chlorine_dioxide") == [0.8]


def test_epa_lead_action_level_drops_from_15_to_10_ug_per_l():
    assert limit_of(date(2027, 10, 31), "EPA", "lead") == [15.0]
    assert limit_of(date(2027, 11, 1), "EPA", "lead") == [10.0]


def test_eu_lead_drops_to_5_ug_per_l_on_2036_01_12():
    assert limit_of(date(2036, 1, 11), "EU", "lead") == [10.0]
    assert limit_of(date(2036, 1, 12), "EU", "lead") == [5.0]


def test_unconfirmed_values_are_marked():
    limits = all_limits()
    who_nitrate = limits.filter((pl.col("standard") == "WHO") & (pl.col("parameter") == "nitrate"))
    assert who_nitrate["confirmed"].to_list() == [False]
    epa_lead = limits.filter((pl.col("standard") == "EPA") & (pl.col("parameter") == "lead"))
    assert epa_lead["date_confirmed"].to_list() == [False, False]


def test_a_limit_in_a_foreign_unit_is_refused(tmp_path):
    text = (STANDARDS_DIR / "eu.yaml").read_text().replace("unit: ug/L", "unit: mg/L", 1)
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match="not the canonical unit"):
        read_standard(tmp_path / "bad.yaml")


def test_action_plan_severity_sets_the_due_date_and_escalates_with_deviation():
    opened = date(2026, 11, 26)
    nitrate = plan_for("nitrate", 10.0, opened)
    assert (nitrate.severity, nitrate.due_date, nitrate.owner) == (
        "critical",
        date(2026, 11, 27),
        "operations",
    )
    assert plan_for("ph", 5.0, opened).due_date == date(2026, 12, 3)
    assert plan_for("ph", 60.0, opened).severity == "high"
    assert plan_for("temperature", None, opened).steps[0].startswith("Verify the measurement")
