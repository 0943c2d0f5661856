"""The standard files as data: coverage, values, rules, consequences, dates and refused files."""

from datetime import date

import polars as pl
import pytest
import yaml

from tasks.compliance.plans import plan_for
from tasks.compliance.standards import (
    CONSEQUENCES,
    RULE_STATISTICS,
    RULES,
    STANDARDS_DIR,
    all_limits,
    load_standards,
    read_standard,
)
from tasks.parameters import catalog

# The 13 parameters the users named in issue #5, and chlorine dioxide.
NAMED = [
    "ph",
    "turbidity",
    "free_chlorine",
    "nitrate",
    "nitrite",
    "arsenic",
    "lead",
    "copper",
    "fluoride",
    "e_coli",
    "total_coliforms",
    "mercury",
    "cadmium",
    "chlorine_dioxide",
]

# Limits the existing daily screen and sample data rely on.
LIMITED = [*NAMED, "conductivity"]


def rows_of(standard: str, parameter: str, on: date | None = None) -> pl.DataFrame:
    limits = all_limits() if on is None else load_standards(on, [standard])
    return limits.filter((pl.col("standard") == standard) & (pl.col("parameter") == parameter))


def limit_of(on: date, standard: str, parameter: str) -> list[float]:
    return rows_of(standard, parameter, on)["limit_max"].to_list()


def test_every_standard_file_parses_with_canonical_units_and_citations():
    limits = all_limits()
    assert sorted(limits["standard"].unique()) == ["EPA", "EU", "WHO"]
    units = {name: p.unit for name, p in catalog().items()}
    assert all(units[p] == u for p, u in limits.select("parameter", "unit").iter_rows())
    assert limits.filter(pl.col("citation").str.len_chars() < 20).is_empty()


def test_every_limit_names_a_known_rule_and_consequence_that_fit_its_statistic():
    limits = all_limits()
    assert limits.filter(pl.col("rule").is_null() | pl.col("consequence").is_null()).is_empty()
    assert set(limits["rule"]) <= set(RULES)
    assert set(limits["consequence"]) <= set(CONSEQUENCES)
    for rule, statistic in limits.select("rule", "statistic").unique().iter_rows():
        assert statistic in RULE_STATISTICS[rule], (rule, statistic)


def test_at_least_25_parameters_including_the_14_the_users_named():
    covered = set(all_limits()["parameter"])
    assert len(covered) >= 25
    assert set(LIMITED) <= covered


def test_known_values_in_canonical_units():
    on = date(2026, 11, 25)
    assert limit_of(on, "EPA", "nitrate") == [44.27]  # 10 mg/L as N x 62.004/14.007
    assert limit_of(on, "EPA", "nitrite") == [3.284]  # 1 mg/L as N x 46.005/14.007
    assert limit_of(on, "EU", "conductivity") == [2500.0]
    assert limit_of(on, "WHO", "lead") == [10.0]  # 0.01 mg/L
    assert limit_of(on, "EPA", "chlorine_dioxide") == [0.8]
    assert limit_of(on, "EPA", "mercury") == [2.0]  # 0.002 mg/L
    assert limit_of(on, "EU", "iron") == [0.2]  # 200 ug/L
    assert limit_of(on, "EPA", "tthm") == [80.0]  # 0.080 mg/L


def test_epa_lead_action_level_drops_from_15_to_10_ug_per_l():
    assert limit_of(date(2027, 10, 31), "EPA", "lead") == [15.0]
    assert limit_of(date(2027, 11, 1), "EPA", "lead") == [10.0]


def test_eu_lead_drops_to_5_ug_per_l_on_2036_01_12():
    assert limit_of(date(2036, 1, 11), "EU", "lead") == [10.0]
    assert limit_of(date(2036, 1, 12), "EU", "lead") == [5.0]


def test_eu_chromium_drops_to_25_ug_per_l_on_2036_01_12_with_unconfirmed_dates():
    assert limit_of(date(2036, 1, 11), "EU", "chromium") == [50.0]
    assert limit_of(date(2036, 1, 12), "EU", "chromium") == [25.0]
    assert rows_of("EU", "chromium")["date_confirmed"].to_list() == [False, False]


def test_epa_total_coliforms_trigger_applies_from_the_rtcr_on_1_april_2016():
    assert limit_of(date(2016, 3, 31), "EPA", "total_coliforms") == []
    row = rows_of("EPA", "total_coliforms", date(2016, 4, 1)).row(0, named=True)
    assert (row["rule"], row["consequence"], row["enforceable"], row["confirmed"]) == (
        "any_detection",
        "treatment_technique_trigger",
        False,
        False,
    )


def test_the_rule_of_each_epa_limit_follows_how_the_epa_judges_it():
    limits = all_limits().filter(pl.col("standard") == "EPA")
    rules = {
        (p, r, s, m)
        for p, r, s, m in limits.select("parameter", "rule", "statistic", "limit_max").iter_rows()
    }
    assert {
        ("lead", "p90_round", "p90", 15.0),
        ("lead", "p90_round", "p90", 10.0),
        ("copper", "p90_round", "p90", 1.3),
        ("tthm", "raa_quarterly", "mean", 80.0),
        ("haa5", "raa_quarterly", "mean", 60.0),
        ("arsenic", "raa_quarterly", "mean", 10.0),
        ("free_chlorine", "raa_monthly", "mean", 4.0),
        ("chloramine", "raa_monthly", "mean", 4.0),
        ("chlorine_dioxide", "sample_max", "max", 0.8),  # a daily sample, not an average
        ("turbidity", "turbidity_tt", "p95", 0.3),
        ("turbidity", "sample_max", "max", 1.0),
        ("turbidity", "turbidity_consecutive", "max", 1.0),
        ("nitrate", "confirmation_average", "max", 44.27),
        ("nitrite", "confirmation_average", "max", 3.284),
        ("e_coli", "any_detection", "max", 0.0),
    } <= rules


def test_the_nitrate_nitrite_ratio_rule_is_one_limit_of_1_for_eu_and_who_only():
    ratio = all_limits().filter(pl.col("rule") == "nitrate_nitrite_ratio")
    assert ratio.select("standard", "parameter", "limit_max", "unit").sort("standard").rows() == [
        ("EU", "nitrate_nitrite_ratio", 1.0, "1"),
        ("WHO", "nitrate_nitrite_ratio", 1.0, "1"),
    ]


def test_epa_secondary_standards_are_advisory_and_not_enforceable():
    secondary = all_limits().filter((pl.col("standard") == "EPA") & (pl.col("kind") == "secondary"))
    assert set(secondary["parameter"]) >= {"ph", "copper", "fluoride", "iron", "manganese", "sulfate"}
    assert set(secondary["consequence"]) == {"advisory"}
    assert set(secondary["enforceable"]) == {False}


def test_eu_indicators_call_for_an_investigation_and_parts_a_and_b_are_violations():
    eu = all_limits().filter(pl.col("standard") == "EU")
    indicators = eu.filter(pl.col("kind") == "indicator")
    assert set(indicators["parameter"]) >= {"ph", "conductivity", "total_coliforms", "iron", "ammonium"}
    assert set(indicators.select("rule", "consequence").unique().rows()) == {("indicator", "investigation")}
    assert set(eu.filter(pl.col("kind") == "parametric")["consequence"]) == {"violation"}


def test_who_guideline_values_are_advisory_and_only_violations_are_enforceable():
    limits = all_limits()
    assert set(limits.filter(pl.col("standard") == "WHO")["consequence"]) == {"advisory"}
    assert limits.filter(pl.col("enforceable") != (pl.col("consequence") == "violation")).is_empty()
    epa_arsenic, epa_lead = rows_of("EPA", "arsenic"), rows_of("EPA", "lead")
    assert epa_arsenic["enforceable"].to_list() == [True]
    # an action-level exceedance starts treatment-technique steps; it is not itself a violation
    assert epa_lead["enforceable"].to_list() == [False, False]


def test_unconfirmed_values_are_marked():
    who_nitrate = rows_of("WHO", "nitrate")
    assert who_nitrate["confirmed"].to_list() == [False]
    assert rows_of("EPA", "lead")["date_confirmed"].to_list() == [False, False]
    assert rows_of("EU", "haa5")["confirmed"].to_list() == [False]


# --- refused files ------------------------------------------------------------------------------


def _write_changed(tmp_path, standard: str, parameter: str, change: dict, drop: str | None = None):
    """The real file of `standard` with the first limit of `parameter` changed."""
    data = yaml.safe_load((STANDARDS_DIR / f"{standard}.yaml").read_text(encoding="utf-8"))
    limit = next(item for item in data["limits"] if item["parameter"] == parameter)
    limit.update(change)
    if drop:
        del limit[drop]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_an_unchanged_copy_of_a_file_is_accepted(tmp_path):
    path = _write_changed(tmp_path, "eu", "lead", {})
    assert read_standard(path).standard == "EU"


@pytest.mark.parametrize(
    ("standard", "parameter", "change", "drop", "message"),
    [
        ("epa", "arsenic", {"rule": "weekly_mean"}, None, r"arsenic\): rule: Input .* \(got 'weekly_mean'\)"),
        ("eu", "lead", {}, "citation", r"lead\): citation is required but missing"),
        ("eu", "copper", {"citation": "Annex I"}, None, r"copper\): citation: String should have at least"),
        ("eu", "lead", {"unit": "mg/L"}, None, r"lead\): limit unit 'mg/L' is not the canonical unit 'ug/L'"),
        ("epa", "tthm", {"statistic": "max"}, None, r"tthm\): rule 'raa_quarterly' goes with statistic mean"),
        ("eu", "iron", {"consequence": "violation"}, None, r"iron\): an indicator value has consequence"),
        ("epa", "iron", {"consequence": "violation"}, None, r"iron\): a secondary standard is non-enforc"),
        ("eu", "arsenic", {"rule": "indicator"}, None, r"arsenic\): an indicator value is judged by rule"),
        ("eu", "nitrate", {"rule": "nitrate_nitrite_ratio"}, None, r"nitrate\): rule 'nitrate_nitrite_r"),
        ("epa", "lead", {"consequence": "fine"}, None, r"lead\): consequence: Input should be"),
        ("who", "lead", {"consequence": "violation"}, None, r"WHO lead: WHO guideline values are not law"),
    ],
)
def test_an_invalid_limit_is_refused_with_a_sentence_naming_the_file_and_parameter(
    tmp_path, standard, parameter, change, drop, message
):
    path = _write_changed(tmp_path, standard, parameter, change, drop)
    with pytest.raises(ValueError, match=r"^bad\.yaml: .*" + message):
        read_standard(path)


def test_a_file_that_is_not_yaml_is_refused_with_its_name(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("standard: EU\nlimits: [\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^broken\.yaml: not valid YAML"):
        read_standard(path)


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
