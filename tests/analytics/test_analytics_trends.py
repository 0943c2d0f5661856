from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from tasks.analytics.trends import compare_periods, linear_trend, moving_average


def _days(values: list[float | None], sensor: str = "s1", first: datetime = datetime(2026, 3, 1, tzinfo=UTC)):
    return pl.DataFrame(
        {
            "sensor_id": sensor,
            "bucket_start": [first + timedelta(days=i) for i in range(len(values))],
            "value_mean": values,
        },
        schema={"sensor_id": pl.String, "bucket_start": pl.Datetime("us", "UTC"), "value_mean": pl.Float64},
    )


def test_moving_average_is_null_until_the_window_is_full_then_the_mean_of_the_last_points():
    out = moving_average(_days([1.0, 2.0, 3.0, 4.0, None, 6.0]), window=3)

    # 3 points: (1+2+3)/3, (2+3+4)/3, (3+4)/2 with the missing one skipped, (4+6)/2
    assert out["moving_average"].to_list() == [None, None, 2.0, 3.0, 3.5, 5.0]


def test_moving_average_defaults_to_ten_points_and_keeps_sensors_apart():
    frame = pl.concat([_days([1.0] * 12, "a"), _days([5.0] * 12, "b")])

    out = moving_average(frame)

    assert out.filter(pl.col("moving_average").is_not_null()).group_by("sensor_id").agg(
        pl.len(), pl.col("moving_average").max()
    ).sort("sensor_id").rows() == [("a", 3, 1.0), ("b", 3, 5.0)]


def test_a_window_below_one_point_is_refused():
    with pytest.raises(ValueError, match="at least 1 point"):
        moving_average(_days([1.0]), window=0)


def test_linear_trend_matches_scipy_linregress():
    rng = np.random.default_rng(3)
    y = 2.0 + 0.25 * np.arange(20) + rng.normal(0, 0.5, 20)

    out = linear_trend(_days(list(y))).row(0, named=True)

    ref = stats.linregress(np.arange(20.0), y)
    half = stats.t.ppf(0.975, 18) * ref.stderr
    assert out["points"] == 20
    assert out["slope_per_day"] == pytest.approx(ref.slope)
    assert out["intercept"] == pytest.approx(ref.intercept)
    assert out["r_squared"] == pytest.approx(ref.rvalue**2)
    assert out["p_value"] == pytest.approx(ref.pvalue)
    assert (out["slope_low"], out["slope_high"]) == pytest.approx((ref.slope - half, ref.slope + half))


def test_linear_trend_of_a_perfect_line_is_certain_and_of_noise_is_not():
    line = linear_trend(_days([1.0, 3.0, 5.0, 7.0], "line"))
    flat = linear_trend(_days([5.0, 5.0, 5.0, 5.0], "flat"))

    assert line.select("slope_per_day", "r_squared", "p_value").row(0) == (2.0, 1.0, 0.0)
    assert flat.select("slope_per_day", "r_squared", "p_value").row(0) == (0.0, 1.0, 1.0)


def test_two_points_give_a_slope_without_confidence():
    out = linear_trend(_days([1.0, 2.0])).row(0, named=True)

    assert out["slope_per_day"] == 1.0 and out["p_value"] is None and out["slope_low"] is None


def _periods(resolution: str, starts: list[date], means: list[float], tz: str = "Europe/Paris"):
    from tasks.calendar import local_day_bounds

    return pl.DataFrame(
        {
            "sensor_id": "s1",
            "resolution": resolution,
            "bucket_start": [local_day_bounds(d, tz)[0] for d in starts],
            "value_mean": means,
        },
        schema={
            "sensor_id": pl.String,
            "resolution": pl.String,
            "bucket_start": pl.Datetime("us", "UTC"),
            "value_mean": pl.Float64,
        },
    )


def test_week_on_week_compares_each_week_with_the_one_before_across_a_clock_change():
    # Monday 23 March 2026 (CET) and Monday 30 March (CEST): bucket starts 23:00 and 22:00 UTC
    weeks = _periods("week", [date(2026, 3, 16), date(2026, 3, 23), date(2026, 3, 30)], [0.5, 0.5, 0.69])

    out = compare_periods(weeks, "week_on_week", "Europe/Paris")

    assert out.select("period_start", "previous_start").rows() == [
        (date(2026, 3, 23), date(2026, 3, 16)),
        (date(2026, 3, 30), date(2026, 3, 23)),
    ]
    assert out["change_pct"].round(6).to_list() == [0.0, 38.0]


def test_year_on_year_compares_a_month_with_the_same_month_a_year_before_only():
    months = _periods("month", [date(2025, 3, 1), date(2026, 2, 1), date(2026, 3, 1)], [2.0, 9.0, 1.5])

    yoy = compare_periods(months, "year_on_year", "Europe/Paris")
    mom = compare_periods(months, "month_on_month", "Europe/Paris")

    expected = pl.DataFrame(
        {
            "sensor_id": ["s1"],
            "kind": ["year_on_year"],
            "period_start": [date(2026, 3, 1)],
            "previous_start": [date(2025, 3, 1)],
            "value_mean": [1.5],
            "previous_mean": [2.0],
            "change_pct": [-25.0],
        }
    )
    assert_frame_equal(yoy, expected)
    assert mom.select("period_start", "change_pct").rows() == [(date(2026, 3, 1), pytest.approx(-83.3333333))]


def test_an_unknown_comparison_is_refused_with_the_known_ones_named():
    with pytest.raises(ValueError, match="day_on_day, week_on_week, month_on_month, year_on_year"):
        compare_periods(_periods("week", [date(2026, 3, 2)], [1.0]), "hour_on_hour", "UTC")
