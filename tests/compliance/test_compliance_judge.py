from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.compliance.judge import RESULT_SCHEMA, daily_statistics, judge, with_all_parameters
from tasks.compliance.standards import LIMIT_SCHEMA, load_standards


def limit(
    parameter,
    *,
    standard="EU",
    kind="indicator",
    statistic="max",
    limit_min=None,
    limit_max=None,
    unit="uS/cm",
    min_samples=1,
    confirmed=True,
):
    return {
        "standard": standard,
        "parameter": parameter,
        "kind": kind,
        "label": f"{kind} value",
        "statistic": statistic,
        "limit_min": limit_min,
        "limit_max": limit_max,
        "unit": unit,
        "original": "",
        "min_samples": min_samples,
        "effective_from": None,
        "effective_until": None,
        "confirmed": confirmed,
        "date_confirmed": True,
        "citation": "Some Act, Annex I",
        "basis": "a test basis",
    }


def limits(*rows) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=LIMIT_SCHEMA)


def readings(parameter, values, qc_flags=None, kind="online") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "parameter": [parameter] * len(values),
            "kind": [kind] * len(values),
            "value": values,
            "qc_flag": qc_flags or [1] * len(values),
        },
        schema={
            "parameter": pl.String,
            "kind": pl.String,
            "value": pl.Float64,
            "qc_flag": pl.Int64,
        },
    )


def judged(parameter, values, *rows, qc_flags=None, kind="online") -> dict:
    result = judge(daily_statistics(readings(parameter, values, qc_flags, kind)), limits(*rows))
    assert result.height == 1
    return result.row(0, named=True)


CONDUCTIVITY = limit("conductivity", limit_max=2500.0)


def test_statistic_below_ninety_percent_of_a_max_limit_is_compliant():
    row = judged("conductivity", [1000.0, 2249.0], CONDUCTIVITY)
    assert (row["status"], row["statistic"], row["statistic_value"]) == ("COMPLIANT", "max", 2249.0)
    assert row["deviation_pct"] == pytest.approx(-10.04)


def test_statistic_at_ninety_percent_of_a_max_limit_is_a_warning():
    row = judged("conductivity", [1000.0, 2250.0], CONDUCTIVITY)
    assert (row["status"], row["deviation_pct"]) == ("WARNING", -10.0)


def test_statistic_at_the_limit_is_still_a_warning_and_above_it_non_compliant():
    assert judged("conductivity", [2500.0], CONDUCTIVITY)["status"] == "WARNING"
    row = judged("conductivity", [2000.0, 3000.0], CONDUCTIVITY)
    assert (row["status"], row["limit"], row["limit_kind"], row["deviation_pct"]) == (
        "NON_COMPLIANT",
        2500.0,
        "max",
        20.0,
    )


def test_whole_result_row_carries_rule_and_citation():
    result = judge(
        daily_statistics(readings("conductivity", [2600.0, 2400.0])), limits(CONDUCTIVITY)
    )
    expected = pl.DataFrame(
        [
            {
                "standard": "EU",
                "parameter": "conductivity",
                "status": "NON_COMPLIANT",
                "statistic": "max",
                "statistic_value": 2600.0,
                "limit": 2500.0,
                "limit_kind": "max",
                "unit": "uS/cm",
                "deviation_pct": 4.0,
                "rule": "daily maximum of online readings compared with the EU indicator value "
                "2500 uS/cm "
                "(a test basis)",
                "citation": "Some Act, Annex I",
                "sample_count": 2,
                "excluded_count": 0,
                "kind": "indicator",
                "confirmed": True,
            }
        ],
        schema=RESULT_SCHEMA,
    )
    assert_frame_equal(result, expected)


PH_RANGE = limit("ph", statistic="range", limit_min=6.5, limit_max=9.5, unit="pH")


@pytest.mark.parametrize(
    ("values", "status", "statistic", "bound", "value"),
    [
        ([7.0, 8.0], "COMPLIANT", "min", "min", 7.0),  # the side closer to its limit
        ([6.4, 8.0], "NON_COMPLIANT", "min", "min", 6.4),
        ([7.0, 9.6], "NON_COMPLIANT", "max", "max", 9.6),
        ([6.7, 8.0], "WARNING", "min", "min", 6.7),  # within 10 % of the range width above 6.5
        ([7.0, 9.3], "WARNING", "max", "max", 9.3),
    ],
)
def test_ph_range_judges_the_daily_minimum_and_maximum(values, status, statistic, bound, value):
    row = judged("ph", values, PH_RANGE)
    assert (row["status"], row["statistic"], row["limit_kind"], row["statistic_value"]) == (
        status,
        statistic,
        bound,
        value,
    )
    assert row["limit"] == (6.5 if bound == "min" else 9.5)


def test_range_rule_names_the_bound_it_judged():
    row = judged("ph", [6.0, 7.0], PH_RANGE)
    assert row["rule"].startswith(
        "daily minimum of online readings compared with the lower bound of the EU indicator value "
        "6.5-9.5 pH"
    )
    assert row["deviation_pct"] == pytest.approx(7.69)


def test_min_only_limit_flags_a_low_residual():
    residual = limit(
        "free_chlorine",
        standard="EPA",
        kind="minimum residual",
        statistic="min",
        limit_min=0.2,
        unit="mg/L",
    )
    assert judged("free_chlorine", [0.15, 0.6], residual)["status"] == "NON_COMPLIANT"
    assert judged("free_chlorine", [0.21, 0.6], residual)["status"] == "WARNING"
    assert judged("free_chlorine", [0.3, 0.6], residual)["status"] == "COMPLIANT"


def test_zero_limit_has_no_warning_band():
    e_coli = limit("e_coli", kind="parametric", limit_max=0.0, unit="CFU/100mL")
    assert judged("e_coli", [0.0, 0.0], e_coli, kind="lab")["status"] == "COMPLIANT"
    row = judged("e_coli", [0.0, 2.0], e_coli, kind="lab")
    assert (row["status"], row["deviation_pct"]) == ("NON_COMPLIANT", None)
    assert "of lab samples" in row["rule"]


def test_no_readings_is_insufficient_data():
    stats = with_all_parameters(daily_statistics(readings("ph", [7.0])), ["ph", "conductivity"])
    result = judge(stats, limits(CONDUCTIVITY))
    row = result.row(0, named=True)
    assert (row["status"], row["statistic_value"], row["sample_count"]) == (
        "INSUFFICIENT_DATA",
        None,
        0,
    )
    assert row["rule"].endswith("; 0 usable reading(s), at least 1 needed")


def test_fewer_readings_than_the_limit_needs_is_insufficient_data():
    p95 = limit(
        "turbidity",
        standard="EPA",
        kind="treatment technique",
        statistic="p95",
        limit_max=0.3,
        unit="NTU",
        min_samples=6,
    )
    row = judged("turbidity", [0.1, 0.1, 0.1], p95)
    assert (row["status"], row["sample_count"], row["deviation_pct"]) == (
        "INSUFFICIENT_DATA",
        3,
        None,
    )


def test_failed_readings_are_excluded_and_counted():
    row = judged(
        "conductivity", [1000.0, 9000.0, 1200.0, None], CONDUCTIVITY, qc_flags=[1, 4, 3, 9]
    )
    assert (row["status"], row["statistic_value"], row["sample_count"], row["excluded_count"]) == (
        "COMPLIANT",
        1200.0,
        2,
        2,
    )


def test_only_failed_readings_leave_nothing_to_judge():
    row = judged("conductivity", [9000.0], CONDUCTIVITY, qc_flags=[4])
    assert (row["status"], row["sample_count"], row["excluded_count"]) == (
        "INSUFFICIENT_DATA",
        0,
        1,
    )


def test_percentiles_use_the_nearest_rank():
    stats = daily_statistics(readings("lead", [float(v) for v in range(1, 11)], kind="lab"))
    assert stats.select("value_p90", "value_p95", "value_mean").row(0) == (9.0, 10.0, 5.5)


def test_worst_limit_of_a_parameter_decides():
    action_level = limit(
        "copper", standard="EPA", kind="action level", statistic="p90", limit_max=1.3, unit="mg/L"
    )
    secondary = limit(
        "copper", standard="EPA", kind="secondary", statistic="mean", limit_max=1.0, unit="mg/L"
    )
    row = judged("copper", [1.1, 1.1, 1.2], action_level, secondary, kind="lab")
    assert (row["status"], row["statistic"], row["limit"]) == ("NON_COMPLIANT", "mean", 1.0)


def test_unconfirmed_values_say_so_in_the_citation():
    row = judged("conductivity", [100.0], limit("conductivity", limit_max=2500.0, confirmed=False))
    assert row["citation"] == "Some Act, Annex I [value not confirmed from a primary text]"


def test_eu_lead_limit_in_force_changes_on_2036_01_12():
    readings_7 = daily_statistics(readings("lead", [7.0], kind="lab"))
    before = judge(readings_7, load_standards(date(2036, 1, 11), ["EU"])).row(0, named=True)
    after = judge(readings_7, load_standards(date(2036, 1, 12), ["EU"])).row(0, named=True)
    assert (before["status"], before["limit"]) == ("COMPLIANT", 10.0)
    assert (after["status"], after["limit"]) == ("NON_COMPLIANT", 5.0)


def test_two_limits_with_the_same_figures_always_give_the_same_row():
    """EPA turbidity has two 1 NTU maxima (never above 1, and the individual-filter rule): which
    one a day's result cites must not depend on the order the limits come in."""
    first = {**limit("turbidity", standard="EPA", limit_max=1.0, unit="NTU"), "citation": "A: rule"}
    second = {**first, "citation": "B: rule"}
    stats = daily_statistics(readings("turbidity", [0.4, 1.6]))
    picked = [judge(stats, limits(*rows))["citation"].item() for rows in ([first, second], [second, first])]
    assert picked == ["A: rule", "A: rule"]
