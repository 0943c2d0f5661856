from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.compliance.rules import (
    EXCEEDANCE_SCHEMA,
    HISTORY_SCHEMA,
    PERIOD_LIMIT_SCHEMA,
    PERIOD_READING_SCHEMA,
    PERIOD_RESULT_SCHEMA,
    judge_period,
)

START = date(2026, 3, 1)
END = date(2026, 3, 31)
T0 = datetime(2026, 3, 10, tzinfo=UTC)


def limit(
    parameter,
    rule,
    *,
    standard="EPA",
    kind="mcl",
    label="maximum contaminant level (MCL)",
    consequence="violation",
    limit_min=None,
    limit_max=None,
    unit="mg/L",
    min_samples=1,
):
    return {
        "standard": standard,
        "parameter": parameter,
        "kind": kind,
        "label": label,
        "rule": rule,
        "consequence": consequence,
        "limit_min": limit_min,
        "limit_max": limit_max,
        "unit": unit,
        "min_samples": min_samples,
        "confirmed": True,
        "date_confirmed": True,
        "citation": "40 CFR 141",
        "basis": "why",
    }


def limits(*rows) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=PERIOD_LIMIT_SCHEMA)


def reading(parameter, value, *, time=T0, station="S1", sensor=None, kind="online", qc_flag=1):
    return {
        "station_id": station,
        "sensor_id": sensor or f"{station}-{parameter}",
        "parameter": parameter,
        "kind": kind,
        "time": time,
        "value": value,
        "qc_flag": qc_flag,
    }


def frame(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PERIOD_READING_SCHEMA)


def series(parameter, values, *, step=timedelta(hours=1), **kwargs) -> list[dict]:
    """One reading per value, `step` apart from T0."""
    return [reading(parameter, v, time=T0 + i * step, **kwargs) for i, v in enumerate(values)]


def judged(rows, *limit_rows, history=None, parameters=None):
    readings = frame(rows)
    measured = parameters or sorted({r["parameter"] for r in limit_rows})
    return judge_period(readings, history, limits(*limit_rows), measured, START, END)


def only(results: pl.DataFrame, **where) -> dict:
    chosen = results.filter(*(pl.col(k) == v for k, v in where.items())) if where else results
    assert chosen.height == 1, chosen
    return chosen.row(0, named=True)


def summary(row: dict) -> tuple:
    return row["status"], row["statistic"], row["statistic_value"], row["limit"]


# --- sample_max / sample_min / sample_range ----------------------------------------------------

NITRATE_MCL = limit("nitrate", "sample_max", limit_max=44.3, unit="mg/L as NO3")


def test_sample_max_judges_the_period_maximum_and_lists_the_exceeding_readings():
    rows = series("nitrate", [10.0, 50.0, 20.0, 45.0])
    results, exceedances = judged(rows, NITRATE_MCL)
    expected = pl.DataFrame(
        [
            {
                "standard": "EPA",
                "parameter": "nitrate",
                "status": "NON_COMPLIANT",
                "statistic": "max",
                "statistic_value": 50.0,
                "limit": 44.3,
                "limit_kind": "max",
                "unit": "mg/L as NO3",
                "deviation_pct": round((50.0 - 44.3) / 44.3 * 100, 2),
                "rule": "period maximum of 4 online readings compared with the EPA maximum contaminant "
                "level (MCL) 44.3 mg/L as NO3 (why)",
                "citation": "40 CFR 141",
                "sample_count": 4,
                "excluded_count": 0,
                "kind": "mcl",
                "confirmed": True,
                "rule_code": "sample_max",
                "consequence": "violation",
                "period_start": START,
                "period_end": END,
            }
        ],
        schema=PERIOD_RESULT_SCHEMA,
    )
    assert_frame_equal(results, expected)
    assert_frame_equal(
        exceedances,
        pl.DataFrame(
            [
                {
                    "standard": "EPA",
                    "parameter": "nitrate",
                    "rule_code": "sample_max",
                    "statistic": "max",
                    "station_id": "S1",
                    "sensor_id": "S1-nitrate",
                    "time": T0 + timedelta(hours=hour),
                    "value": value,
                    "limit": 44.3,
                    "unit": "mg/L as NO3",
                }
                for hour, value in [(1, 50.0), (3, 45.0)]
            ],
            schema=EXCEEDANCE_SCHEMA,
        ),
    )


def test_sample_max_warns_from_ninety_percent_of_the_limit():
    results, exceedances = judged(series("nitrate", [10.0, 40.0]), NITRATE_MCL)  # 40 >= 0.9 * 44.3
    assert only(results)["status"] == "WARNING"
    assert exceedances.is_empty()
    results, _ = judged(series("nitrate", [10.0, 39.0]), NITRATE_MCL)
    assert only(results)["status"] == "COMPLIANT"


def test_sample_min_judges_the_period_minimum():
    residual = limit(
        "free_chlorine", "sample_min", kind="minimum_residual", label="minimum residual", limit_min=0.2
    )
    results, exceedances = judged(series("free_chlorine", [0.5, 0.15, 0.6]), residual)
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "min", 0.15, 0.2)
    assert row["limit_kind"] == "min"
    assert (
        "period minimum of 3 online readings compared with the EPA minimum residual of at least 0.2 mg/L"
        in (row["rule"])
    )
    assert exceedances["value"].to_list() == [0.15]


PH_RANGE = limit(
    "ph", "sample_range", kind="secondary", label="secondary MCL", limit_min=6.5, limit_max=8.5, unit="pH"
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([7.0, 8.0], ("COMPLIANT", "max", 8.0, 8.5)),  # 8.0 is 0.5 from 8.5, 7.0 is 0.5 from 6.5
        ([6.6, 7.5], ("WARNING", "min", 6.6, 6.5)),  # within 10 % of the 2-pH width above 6.5
        ([6.4, 8.45], ("NON_COMPLIANT", "min", 6.4, 6.5)),  # below beats a max-side warning
        ([7.0, 8.7], ("NON_COMPLIANT", "max", 8.7, 8.5)),
    ],
)
def test_sample_range_gives_one_row_for_the_worse_end(values, expected):
    results, _ = judged(series("ph", values), PH_RANGE)
    assert summary(only(results)) == expected


def test_sample_range_lists_readings_beyond_either_bound_with_the_bound_they_crossed():
    _, exceedances = judged(series("ph", [6.0, 7.0, 9.0]), PH_RANGE)
    assert exceedances.select("value", "limit").rows() == [(6.0, 6.5), (9.0, 8.5)]


# --- quality control and insufficient data -----------------------------------------------------


def test_a_qc_failed_reading_that_would_exceed_is_excluded_and_counted():
    rows = series("nitrate", [10.0, 90.0, 20.0, 95.0])
    rows[1]["qc_flag"] = 4
    rows[3]["qc_flag"] = 9
    results, exceedances = judged(rows, NITRATE_MCL)
    row = only(results)
    assert (row["status"], row["statistic_value"], row["sample_count"], row["excluded_count"]) == (
        "COMPLIANT",
        20.0,
        2,
        2,
    )
    assert exceedances.is_empty()


def test_a_reading_not_yet_flagged_by_quality_control_is_usable():
    rows = series("nitrate", [10.0, 50.0])
    rows[1]["qc_flag"] = None
    row = only(judged(rows, NITRATE_MCL)[0])
    assert (row["status"], row["sample_count"], row["excluded_count"]) == ("NON_COMPLIANT", 2, 0)


def test_a_measured_parameter_with_no_usable_readings_is_insufficient_data_not_compliant():
    rows = series("nitrate", [90.0], qc_flag=4)
    results, _ = judged(rows, NITRATE_MCL)
    row = only(results)
    assert (row["status"], row["statistic_value"], row["sample_count"], row["excluded_count"]) == (
        "INSUFFICIENT_DATA",
        None,
        0,
        1,
    )
    assert row["rule"].endswith("; 0 usable reading(s), at least 1 needed")
    results, _ = judged([], NITRATE_MCL, parameters=["nitrate"])
    assert only(results)["status"] == "INSUFFICIENT_DATA"


def test_fewer_usable_readings_than_min_samples_is_insufficient_data():
    needs_three = limit("nitrate", "sample_max", limit_max=44.3, unit="mg/L as NO3", min_samples=3)
    results, _ = judged(series("nitrate", [90.0, 10.0]), needs_three)
    row = only(results)
    assert (row["status"], row["deviation_pct"]) == ("INSUFFICIENT_DATA", None)
    assert row["rule"].endswith("; 2 usable reading(s), at least 3 needed")


def test_a_parameter_the_municipality_does_not_measure_gives_no_row():
    results, exceedances = judged(series("nitrate", [10.0]), NITRATE_MCL, parameters=["ph"])
    assert results.is_empty() and exceedances.is_empty()
    assert results.schema == pl.Schema(PERIOD_RESULT_SCHEMA)


# --- p90_round ---------------------------------------------------------------------------------

LEAD_AL = limit("lead", "p90_round", kind="action_level", label="action level", limit_max=15.0, unit="ug/L")


def lead_samples(values, kind="lab"):
    return [
        reading("lead", v, station=f"home{i}", kind=kind, time=T0 + timedelta(days=i))
        for i, v in enumerate(values)
    ]


def test_p90_round_takes_the_nearest_rank_90th_percentile_of_lab_samples():
    # 20 samples 1..20: the 90th percentile is the ceil(0.9 * 20) = 18th smallest, 18 ug/L.
    results, exceedances = judged(lead_samples([float(v) for v in range(20, 0, -1)]), LEAD_AL)
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "p90", 18.0, 15.0)
    assert row["deviation_pct"] == 20.0
    assert row["rule"].startswith(
        "90th percentile of 20 lab samples compared with the EPA action level 15 ug/L"
    )
    assert sorted(exceedances["value"]) == [16.0, 17.0, 18.0, 19.0, 20.0]


def test_p90_round_two_high_samples_of_twenty_do_not_move_the_percentile():
    # 18 samples at 5 and 2 at 100: the 18th smallest is 5; the two high ones are listed.
    results, exceedances = judged(lead_samples([5.0] * 18 + [100.0, 100.0]), LEAD_AL)
    assert summary(only(results)) == ("COMPLIANT", "p90", 5.0, 15.0)
    assert exceedances["value"].to_list() == [100.0, 100.0]


def test_p90_round_ignores_online_readings():
    rows = lead_samples([14.0] * 10) + lead_samples([500.0] * 10, kind="online")
    row = only(judged(rows, LEAD_AL)[0])
    assert (row["status"], row["statistic_value"], row["sample_count"]) == ("WARNING", 14.0, 10)


def test_p90_round_with_fewer_than_five_samples_takes_the_highest():
    row = only(judged(lead_samples([3.0, 16.0, 2.0]), LEAD_AL)[0])
    assert summary(row) == ("NON_COMPLIANT", "p90", 16.0, 15.0)
    assert row["rule"].startswith("highest of 3 lab samples (fewer than 5")


def test_p90_round_with_only_online_readings_is_insufficient_data():
    row = only(judged(lead_samples([1.0] * 6, kind="online"), LEAD_AL)[0])
    assert (row["status"], row["sample_count"]) == ("INSUFFICIENT_DATA", 0)


# --- raa_quarterly / raa_monthly ---------------------------------------------------------------

ARSENIC_MCL = limit("arsenic", "raa_quarterly", limit_max=10.0, unit="ug/L")


def month_row(station, month, value_sum, value_count, excluded=0, parameter="arsenic"):
    return {
        "station_id": station,
        "parameter": parameter,
        "month": month,
        "value_sum": value_sum,
        "value_count": value_count,
        "excluded_count": excluded,
    }


def quarters(station, averages):
    """One month of one sample per quarter, 2025-Q2 .. 2026-Q1 (the period ends in 2026-Q1)."""
    months = [date(2025, 5, 1), date(2025, 8, 1), date(2025, 11, 1), date(2026, 2, 1)]
    return [month_row(station, m, a, 1) for m, a in zip(months, averages, strict=False) if a is not None]


def raa(history_rows, limit_row=ARSENIC_MCL):
    history = pl.DataFrame(history_rows, schema=HISTORY_SCHEMA)
    return judge_period(frame([]), history, limits(limit_row), [limit_row["parameter"]], START, END)


def test_raa_quarterly_just_above_the_limit_is_non_compliant_and_the_worst_station_decides():
    # A: (9 + 10 + 11 + 10.4) / 4 = 10.1 > 10; B: (9 + 10 + 11 + 9.6) / 4 = 9.9, a warning.
    results, exceedances = raa(quarters("A", [9.0, 10.0, 11.0, 10.4]) + quarters("B", [9.0, 10.0, 11.0, 9.6]))
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "raa", pytest.approx(10.1), 10.0)
    assert "at station A (the worst of 2 stations)" in row["rule"]
    assert exceedances.select("station_id", "sensor_id", "time").rows() == [("A", None, None)]
    assert exceedances["value"].to_list() == [pytest.approx(10.1)]


def test_raa_quarterly_exactly_at_the_limit_is_a_warning_not_an_exceedance():
    results, exceedances = raa(quarters("A", [10.0, 10.0, 10.0, 10.0]))
    assert summary(only(results)) == ("WARNING", "raa", 10.0, 10.0)
    assert exceedances.is_empty()


def test_raa_quarterly_just_below_the_limit_is_a_warning():
    row = only(raa(quarters("B", [9.0, 10.0, 11.0, 9.6]))[0])
    assert summary(row) == ("WARNING", "raa", pytest.approx(9.9), 10.0)
    assert row["rule"].startswith(
        "running annual average of the quarterly averages 2025-Q2 to 2026-Q1 at station B"
    )


def test_raa_quarterly_averages_a_quarter_over_its_samples_and_ignores_older_quarters():
    # 2025-Q2: 3 samples averaging 10 and 1 sample of 5 -> 35 / 4 = 8.75 (not the months' 7.5);
    # 2025-Q1 is outside the window, however high.
    history = [
        month_row("A", date(2025, 1, 1), 1000.0, 1),
        month_row("A", date(2025, 4, 1), 30.0, 3),
        month_row("A", date(2025, 6, 1), 5.0, 1),
        *quarters("A", [None, 8.0, 8.0, 8.0]),
    ]
    row = only(raa(history)[0])
    assert row["statistic_value"] == pytest.approx((8.75 + 24.0) / 4)
    assert row["sample_count"] == 7


def test_raa_quarterly_accepts_daily_rows_dated_any_day_of_their_month():
    # Two daily rows in 2025-Q2 (10 from 1 sample, 20 from 3 samples: 30 / 4 = 7.5).
    history = [
        month_row("A", date(2025, 5, 17), 10.0, 1),
        month_row("A", date(2025, 6, 30), 20.0, 3),
        *quarters("A", [None, 7.5, 7.5, 7.5]),
    ]
    row = only(raa(history)[0])
    assert (row["status"], row["statistic_value"], row["sample_count"]) == ("COMPLIANT", 7.5, 7)


def test_raa_quarterly_with_a_quarter_missing_is_insufficient_data():
    row = only(raa(quarters("A", [None, 12.0, 12.0, 12.0]))[0])  # 36 <= 4 * 10: could still comply
    assert (row["status"], row["statistic_value"], row["deviation_pct"]) == ("INSUFFICIENT_DATA", None, None)
    assert "only 3 of 4 quarters have samples: insufficient data" in row["rule"]


def test_raa_quarterly_one_station_short_of_quarters_keeps_the_system_from_compliant():
    row = only(raa(quarters("A", [1.0, 1.0, 1.0, 1.0]) + quarters("B", [None, 1.0, 1.0, 1.0]))[0])
    assert row["status"] == "INSUFFICIENT_DATA"
    assert "at station B (the worst of 2 stations)" in row["rule"]


def test_raa_quarterly_already_forced_over_the_limit_is_non_compliant_with_quarters_missing():
    row = only(raa(quarters("A", [None, 15.0, 15.0, 11.0]))[0])  # 41 > 4 * 10 whatever Q2 holds
    assert summary(row) == ("NON_COMPLIANT", "raa", 10.25, 10.0)
    assert "already put the average over the limit whatever the missing quarters hold" in row["rule"]


def test_raa_quarterly_counts_the_excluded_readings_of_the_history():
    history = [dict(r, excluded_count=2) for r in quarters("A", [1.0, 1.0, 1.0, 1.0])]
    row = only(raa(history)[0])
    assert (row["status"], row["sample_count"], row["excluded_count"]) == ("COMPLIANT", 4, 8)


def test_raa_without_history_is_insufficient_data():
    results, _ = judge_period(frame([]), None, limits(ARSENIC_MCL), ["arsenic"], START, END)
    row = only(results)
    assert (row["status"], row["sample_count"]) == ("INSUFFICIENT_DATA", 0)


CHLORINE_MRDL = limit(
    "free_chlorine",
    "raa_monthly",
    kind="mrdl",
    label="maximum residual disinfectant level (MRDL)",
    limit_max=4.0,
)


def months(averages, station="A"):
    """Monthly rows, April 2025 .. March 2026 (the 12 months ending with the period's month)."""
    firsts = [date(2025 + (3 + i) // 12, (3 + i) % 12 + 1, 1) for i in range(12)]
    return [
        month_row(station, m, 2 * a, 2, parameter="free_chlorine")
        for m, a in zip(firsts, averages, strict=True)
        if a is not None
    ]


def test_raa_monthly_averages_twelve_system_monthly_averages():
    # March 2026 is 3.0 at station A and 5.0 at station B: the system month averages 4.0.
    history = months([4.5] * 11 + [3.0]) + months([None] * 11 + [5.0], station="B")
    row = only(raa(history, CHLORINE_MRDL)[0])
    assert summary(row) == ("NON_COMPLIANT", "raa", pytest.approx((4.5 * 11 + 4.0) / 12), 4.0)
    history = months([3.0] * 12)
    assert only(raa(history, CHLORINE_MRDL)[0])["status"] == "COMPLIANT"


def test_raa_monthly_with_eleven_months_is_insufficient_unless_already_over():
    assert only(raa(months([None] + [3.9] * 11), CHLORINE_MRDL)[0])["status"] == "INSUFFICIENT_DATA"
    row = only(raa(months([None] + [4.5] * 11), CHLORINE_MRDL)[0])  # 49.5 / 12 = 4.125 > 4
    assert summary(row) == ("NON_COMPLIANT", "raa", pytest.approx(4.125), 4.0)


# --- turbidity ---------------------------------------------------------------------------------

TURBIDITY_TT = limit(
    "turbidity",
    "turbidity_tt",
    kind="treatment_technique",
    label="treatment-technique limit",
    limit_max=0.3,
    unit="NTU",
    consequence="violation",
)


def turbidity(low, high, *, high_value=0.5, extra=()):
    values = [0.1] * low + [high_value] * high + list(extra)
    return series("turbidity", values, step=timedelta(minutes=10))


def by_statistic(results):
    return {row["statistic"]: row for row in results.iter_rows(named=True)}


def test_turbidity_tt_97_percent_at_or_below_0_3_ntu_complies():
    rows = by_statistic(judged(turbidity(97, 3), TURBIDITY_TT)[0])
    share = rows["share_le_limit"]
    assert (share["status"], share["statistic_value"], share["limit"], share["unit"]) == (
        "COMPLIANT",
        97.0,
        95.0,
        "%",
    )
    assert share["limit_kind"] == "min"
    assert share["rule"].startswith(
        "share of 100 online readings at or below 0.3 NTU compared with the EPA treatment-technique "
        "limit of at least 95 %"
    )
    assert summary(rows["max"]) == ("COMPLIANT", "max", 0.5, 1.0)


def test_turbidity_tt_94_percent_fails_and_lists_the_readings_above_0_3_ntu():
    results, exceedances = judged(turbidity(94, 6), TURBIDITY_TT)
    share = by_statistic(results)["share_le_limit"]
    assert (share["status"], share["statistic_value"]) == ("NON_COMPLIANT", 94.0)
    assert share["deviation_pct"] == round(1 / 95 * 100, 2)
    assert exceedances.filter(pl.col("statistic") == "share_le_limit")["value"].to_list() == [0.5] * 6


@pytest.mark.parametrize(("low", "high", "share"), [(96, 4, 96.0), (191, 9, 95.5), (95, 5, 95.0)])
def test_turbidity_tt_warns_from_96_percent_down_to_95(low, high, share):
    row = by_statistic(judged(turbidity(low, high), TURBIDITY_TT)[0])["share_le_limit"]
    assert (row["status"], row["statistic_value"]) == ("WARNING", share)


def test_turbidity_tt_one_reading_above_1_ntu_fails_the_maximum():
    results, exceedances = judged(turbidity(99, 0, extra=[1.2]), TURBIDITY_TT)
    rows = by_statistic(results)
    assert rows["share_le_limit"]["status"] == "COMPLIANT"
    assert summary(rows["max"]) == ("NON_COMPLIANT", "max", 1.2, 1.0)
    assert exceedances.select("statistic", "value", "limit").rows() == [("max", 1.2, 1.0)]
    assert only(judged(turbidity(99, 0, extra=[0.9]), TURBIDITY_TT)[0], statistic="max")["status"] == (
        "WARNING"
    )


def test_turbidity_tt_with_fewer_readings_than_needed_is_insufficient_data_on_both_rows():
    needs_many = dict(TURBIDITY_TT, min_samples=10)
    results, _ = judged(turbidity(5, 0), needs_many)
    assert results["status"].to_list() == ["INSUFFICIENT_DATA", "INSUFFICIENT_DATA"]


TURBIDITY_CONSECUTIVE = limit(
    "turbidity",
    "turbidity_consecutive",
    kind="treatment_technique",
    label="treatment-technique limit",
    limit_max=1.0,
    unit="NTU",
)


def slots(values, *, sensor="F1", start=T0):
    """One reading per 15-minute slot, 5 minutes into the slot; None leaves the slot empty."""
    return [
        reading("turbidity", v, sensor=sensor, time=start + timedelta(minutes=15 * i + 5))
        for i, v in enumerate(values)
        if v is not None
    ]


def test_two_consecutive_slots_above_1_ntu_are_non_compliant_and_listed():
    results, exceedances = judged(slots([0.2, 1.2, 1.3, 0.2]), TURBIDITY_CONSECUTIVE)
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "consecutive_max", 1.2, 1.0)  # the lower of the pair
    assert exceedances.select("sensor_id", "time", "value").rows() == [
        ("F1", T0 + timedelta(minutes=20), 1.2),
        ("F1", T0 + timedelta(minutes=35), 1.3),
    ]


def test_two_slots_above_1_ntu_that_are_not_consecutive_comply():
    results, exceedances = judged(slots([0.2, 1.2, 0.2, 1.3, 0.2]), TURBIDITY_CONSECUTIVE)
    assert summary(only(results)) == ("COMPLIANT", "consecutive_max", 0.2, 1.0)
    assert exceedances.is_empty()


def test_a_missing_slot_breaks_the_run():
    results, _ = judged(slots([0.2, 1.2, None, 1.3, 0.2]), TURBIDITY_CONSECUTIVE)
    assert only(results)["status"] == "COMPLIANT"


def test_consecutive_slots_of_two_different_sensors_do_not_make_a_run():
    rows = slots([0.2, 1.2, 0.2], sensor="F1") + slots([0.2, 0.2, 1.3], sensor="F2")
    assert only(judged(rows, TURBIDITY_CONSECUTIVE)[0])["status"] == "COMPLIANT"


def test_the_last_usable_reading_of_a_slot_stands_for_it():
    rows = slots([0.2, 1.2, 1.3])
    # slot 2 also has 1.5 early on, then 0.4 at its end: 0.4 stands for the slot.
    rows.append(reading("turbidity", 1.5, sensor="F1", time=T0 + timedelta(minutes=31)))
    rows.append(reading("turbidity", 0.4, sensor="F1", time=T0 + timedelta(minutes=44)))
    # a failed reading at the very end of slot 1 is ignored: 1.2 still stands for slot 1.
    rows.append(reading("turbidity", 0.1, sensor="F1", time=T0 + timedelta(minutes=29), qc_flag=4))
    row = only(judged(rows, TURBIDITY_CONSECUTIVE)[0])
    assert (row["status"], row["statistic_value"], row["excluded_count"]) == ("COMPLIANT", 0.4, 1)


def test_readings_without_two_adjacent_slots_are_insufficient_data():
    row = only(judged(slots([1.5, None, 1.5]), TURBIDITY_CONSECUTIVE)[0])
    assert row["status"] == "INSUFFICIENT_DATA"
    assert row["rule"].endswith("; no sensor has readings in two consecutive 15-minute slots")


# --- confirmation_average ----------------------------------------------------------------------

NITRATE_CONFIRMED = dict(NITRATE_MCL, rule="confirmation_average")


def nitrate_lab(station, *samples):
    """(hours after T0, value) lab samples at one station."""
    return [
        reading("nitrate", v, station=station, kind="lab", time=T0 + timedelta(hours=h)) for h, v in samples
    ]


def test_an_exceedance_confirmed_within_24_hours_is_averaged_with_its_confirmation():
    results, exceedances = judged(nitrate_lab("S1", (0, 50.0), (20, 40.0)), NITRATE_CONFIRMED)
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "max_result", 45.0, 44.3)
    assert "(1 confirmed; 0 with no confirmation within 24 h, standing on its own)" in row["rule"]
    assert exceedances.select("time", "value").rows() == [(T0, 45.0)]


def test_a_confirmation_below_the_limit_can_bring_the_result_under_it():
    results, exceedances = judged(nitrate_lab("S1", (0, 50.0), (20, 20.0)), NITRATE_CONFIRMED)
    assert summary(only(results)) == ("COMPLIANT", "max_result", 35.0, 44.3)
    assert exceedances.is_empty()


def test_an_exceedance_with_no_confirmation_within_24_hours_stands_on_its_own():
    rows = nitrate_lab("S1", (0, 50.0), (30, 20.0)) + nitrate_lab("S2", (1, 20.0))  # S2 is elsewhere
    results, exceedances = judged(rows, NITRATE_CONFIRMED)
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "max_result", 50.0, 44.3)
    assert "(0 confirmed; 1 with no confirmation within 24 h, standing on its own)" in row["rule"]
    assert exceedances.select("station_id", "value").rows() == [("S1", 50.0)]


def test_a_confirmation_sample_is_not_judged_again_as_an_initial_sample():
    # 50 confirmed by 60 (55); 60, above the limit and unconfirmed for 30 hours, would stand at
    # 60 if it were judged again as an initial sample.
    results, exceedances = judged(nitrate_lab("S1", (0, 50.0), (10, 60.0), (40, 10.0)), NITRATE_CONFIRMED)
    assert only(results)["statistic_value"] == 55.0
    assert exceedances.select("time", "value").rows() == [(T0, 55.0)]


# --- any_detection and indicator ---------------------------------------------------------------

E_COLI = limit("e_coli", "any_detection", limit_max=0.0, unit="CFU/100mL")


def test_any_detection_is_non_compliant_and_a_trigger_says_so():
    trigger = dict(E_COLI, consequence="treatment_technique_trigger")
    rows = series("e_coli", [0.0, 0.0, 2.0], kind="lab")
    results, exceedances = judged(rows, trigger)
    row = only(results)
    assert (row["status"], row["consequence"], row["deviation_pct"]) == (
        "NON_COMPLIANT",
        "treatment_technique_trigger",
        None,
    )
    assert row["rule"].startswith("any detection (a value above 0) in 3 lab samples: 1 positive")
    assert row["rule"].endswith("; triggers a treatment-technique assessment or action")
    assert exceedances["value"].to_list() == [2.0]


def test_no_detection_complies():
    results, _ = judged(series("e_coli", [0.0, 0.0], kind="lab"), E_COLI)
    assert summary(only(results)) == ("COMPLIANT", "max", 0.0, 0.0)


EU_CONDUCTIVITY = limit(
    "conductivity",
    "indicator",
    standard="EU",
    kind="indicator",
    label="indicator value",
    consequence="investigation",
    limit_max=2500.0,
    unit="uS/cm",
)


def test_an_indicator_exceedance_is_a_warning_that_triggers_an_investigation():
    results, exceedances = judged(series("conductivity", [2000.0, 2600.0]), EU_CONDUCTIVITY)
    row = only(results)
    assert (row["status"], row["consequence"], row["deviation_pct"]) == ("WARNING", "investigation", 4.0)
    assert row["rule"].endswith(
        "; exceeds the EU indicator value: triggers an investigation, not a violation"
    )
    assert exceedances["value"].to_list() == [2600.0]


def test_an_indicator_within_its_value_has_no_investigation_sentence():
    row = only(judged(series("conductivity", [2000.0]), EU_CONDUCTIVITY)[0])
    assert row["status"] == "COMPLIANT" and "investigation" not in row["rule"]


def test_an_advisory_exceedance_is_non_compliant_against_its_own_value_and_says_advisory():
    secondary = dict(
        EU_CONDUCTIVITY, standard="WHO", label="guideline value", consequence="advisory", limit_max=1000.0
    )
    row = only(judged(series("conductivity", [1200.0]), secondary)[0])
    assert (row["status"], row["consequence"]) == ("NON_COMPLIANT", "advisory")
    assert row["rule"].endswith("; exceeds the WHO guideline value: advisory, not an enforceable limit")


# --- nitrate_nitrite_ratio ---------------------------------------------------------------------

EU_SUM = limit(
    "nitrate",
    "nitrate_nitrite_ratio",
    standard="EU",
    kind="parametric",
    label="parametric value",
    limit_max=1.0,
    unit="mg/L as NO3",
)


def test_nitrate_nitrite_ratio_pairs_hourly_means_at_one_station():
    hour = T0 + timedelta(hours=10)
    rows = [
        reading("nitrate", 25.0, time=hour + timedelta(minutes=5)),
        reading("nitrate", 30.0, time=hour + timedelta(minutes=50)),  # hourly mean 27.5
        reading("nitrite", 1.5, time=hour + timedelta(minutes=20)),  # 27.5/50 + 1.5/3 = 1.05
        reading("nitrate", 40.0, time=T0),  # no nitrite that hour
        reading("nitrite", 3.0, time=T0, station="S2"),  # another station
        reading("nitrite", 99.0, time=hour, qc_flag=4),  # failed: excluded, counted
    ]
    results, exceedances = judged(rows, EU_SUM, parameters=["nitrate", "nitrite"])
    row = only(results)
    assert summary(row) == ("NON_COMPLIANT", "max", pytest.approx(1.05), 1.0)
    assert (row["sample_count"], row["excluded_count"], row["unit"]) == (1, 1, "")
    assert row["rule"].startswith("highest nitrate/50 + nitrite/3")
    assert exceedances.select("station_id", "sensor_id", "time").rows() == [("S1", None, hour)]


def test_nitrate_without_nitrite_in_the_same_hour_is_insufficient_data():
    rows = [reading("nitrate", 40.0), reading("nitrite", 0.1, time=T0 + timedelta(hours=2))]
    row = only(judged(rows, EU_SUM, parameters=["nitrate", "nitrite"])[0])
    assert (row["status"], row["sample_count"]) == ("INSUFFICIENT_DATA", 0)
    assert "; no station has nitrate and nitrite readings in the same hour" in row["rule"]


def test_the_sum_rule_under_a_parameter_of_its_own_applies_where_nitrate_is_measured():
    own = dict(EU_SUM, parameter="nitrate_nitrite_ratio", unit="1")
    rows = [reading("nitrate", 45.0), reading("nitrite", 0.3)]  # 0.9 + 0.1 = 1.0: at the limit
    row = only(judged(rows, own, parameters=["nitrate", "nitrite"])[0])
    assert (row["parameter"], row["status"], row["statistic_value"]) == (
        "nitrate_nitrite_ratio",
        "WARNING",
        pytest.approx(1.0),
    )
    results, _ = judged([reading("ph", 7.0)], own, parameters=["ph"])
    assert results.is_empty()


# --- several rules at once and bad input -------------------------------------------------------


def test_rows_come_one_per_standard_parameter_rule_and_statistic():
    rows = series("nitrate", [10.0]) + turbidity(100, 0)
    results, _ = judged(rows, NITRATE_MCL, TURBIDITY_TT, TURBIDITY_CONSECUTIVE)
    assert results.select("parameter", "rule_code", "statistic").rows() == [
        ("nitrate", "sample_max", "max"),
        ("turbidity", "turbidity_consecutive", "consecutive_max"),
        ("turbidity", "turbidity_tt", "max"),
        ("turbidity", "turbidity_tt", "share_le_limit"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rule": "weekly_mean"}, "EPA nitrate: unknown compliance rule 'weekly_mean'"),
        ({"consequence": "fine"}, "EPA nitrate: unknown consequence 'fine'"),
        ({"limit_max": None}, "EPA nitrate: rule sample_max needs limit_min/limit_max values"),
    ],
)
def test_a_limit_row_that_cannot_be_applied_is_refused_with_a_sentence(change, message):
    with pytest.raises(ValueError, match=message):
        judged(series("nitrate", [10.0]), dict(NITRATE_MCL, **change))


def test_readings_without_a_needed_column_or_with_text_times_are_refused():
    readings = frame(series("nitrate", [10.0]))
    with pytest.raises(ValueError, match="the readings lack the column"):
        judge_period(readings.drop("qc_flag"), None, limits(NITRATE_MCL), ["nitrate"], START, END)
    text_times = readings.with_columns(pl.col("time").dt.to_string())
    with pytest.raises(ValueError, match="column time must hold datetimes"):
        judge_period(text_times, None, limits(NITRATE_MCL), ["nitrate"], START, END)


def test_naive_times_are_taken_as_utc():
    naive = frame(series("nitrate", [50.0])).with_columns(pl.col("time").dt.replace_time_zone(None))
    _, exceedances = judge_period(naive, None, limits(NITRATE_MCL), ["nitrate"], START, END)
    assert exceedances["time"].to_list() == [T0]


def test_parameters_given_as_one_string_are_refused():
    with pytest.raises(ValueError, match="parameters must be a list"):
        judge_period(frame([]), None, limits(NITRATE_MCL), "nitrate", START, END)


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="starts"):
        judge_period(frame([]), None, limits(NITRATE_MCL), ["nitrate"], END, START)


def test_a_sample_of_the_24_hours_after_the_period_confirms_one_of_its_last_day():
    last = datetime.combine(END, time(20), tzinfo=UTC)
    rows = [reading("nitrate", 50.0, station="S1", kind="lab", time=last)]
    after = frame([reading("nitrate", 20.0, station="S1", kind="lab", time=last + timedelta(hours=12))])

    alone, _ = judged(rows, NITRATE_CONFIRMED)
    confirmed, exceedances = judge_period(
        frame(rows), None, limits(NITRATE_CONFIRMED), ["nitrate"], START, END, followups=after
    )

    assert summary(only(alone)) == ("NON_COMPLIANT", "max_result", 50.0, 44.3)
    row = only(confirmed)
    assert summary(row) == ("COMPLIANT", "max_result", 35.0, 44.3)
    assert row["sample_count"] == 1  # the follow-up confirms; it is not one of the period's samples
    assert exceedances.is_empty()


def test_a_follow_up_sample_is_never_judged_on_its_own():
    first = datetime.combine(END, time(1), tzinfo=UTC)
    rows = [reading("nitrate", 10.0, station="S1", kind="lab", time=first)]
    after = frame([reading("nitrate", 90.0, station="S1", kind="lab", time=first + timedelta(days=1))])

    results, exceedances = judge_period(
        frame(rows), None, limits(NITRATE_CONFIRMED), ["nitrate"], START, END, followups=after
    )

    assert summary(only(results)) == ("COMPLIANT", "max_result", 10.0, 44.3)
    assert exceedances.is_empty()
