"""The statistical detectors on constructed series: pure Polars, no Prefect, no database."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.anomalies.detectors import (
    ANOMALY_SCHEMA,
    combined,
    detector_lookback,
    find_anomalies,
    load_detector_config,
    pattern_breaks,
    robust_zscore,
    rolling_zscore,
    trend_anomalies,
    volatility_anomalies,
)
from tasks.anomalies.detectors_trend import short_var_column

T0 = datetime(2026, 5, 1, tzinfo=UTC)
FLOORS = {"ph": 0.05, "turbidity": 0.005, "free_chlorine": 0.02}


def _series(values, sensor_id="ph-1", parameter="ph", unit="pH", minutes=1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [T0 + timedelta(minutes=minutes * i) for i in range(len(values))],
            "value": [float(v) for v in values],
            "parameter": parameter,
            "unit": unit,
        }
    )


def _noise(n: int, level: float, sd: float, seed: int = 1) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, sd, n)


def test_a_ramp_is_a_trend_and_steady_noise_is_not():
    values = _noise(1500, 7.2, 0.1)
    values[1400:] += 0.05 * np.arange(100)  # 0.05 pH a minute, as dosing runs away
    readings = _series(values).lazy()

    found = trend_anomalies(readings, window=15, history=1000, noise_floor=FLOORS).collect()

    assert found.height > 0
    assert found["observed_at"].min() >= T0 + timedelta(minutes=1400)
    first = found.row(0, named=True)
    assert first["method"] == "trend"
    assert first["window"] == "15 vs previous 1000 readings"
    assert first["explanation"].startswith("ph rose ")
    assert "per hour over the last 15 readings" in first["explanation"]
    assert "CRITICAL" in found["severity"].to_list()


def test_one_spike_is_not_a_trend():
    values = _noise(1200, 7.2, 0.01)
    values[1100] += 2.0
    found = trend_anomalies(_series(values).lazy(), window=15, history=1000, noise_floor=FLOORS).collect()
    assert found.is_empty()


def test_a_noise_burst_is_volatility_and_a_single_spike_is_not():
    quiet = _noise(1300, 0.2, 0.01)
    burst = quiet.copy()
    burst[1200:1230] = _noise(30, 0.2, 0.08, seed=2)
    spike = quiet.copy()
    spike[1200] = 0.6

    def found(values):
        readings = _series(values, "turb-1", "turbidity", "NTU").lazy()
        return volatility_anomalies(readings, window=15, history=1000, noise_floor=FLOORS).collect()

    bursting = found(burst)
    assert bursting.height > 0
    assert bursting["observed_at"].min() >= T0 + timedelta(minutes=1200)
    assert bursting["observed_at"].max() < T0 + timedelta(minutes=1230 + 15)
    assert "CRITICAL" in bursting["severity"].to_list()
    assert bursting.row(0, named=True)["explanation"].startswith("turbidity varied ")
    assert found(spike).is_empty()
    assert found(quiet).is_empty()


def _daily(days: int, peak_missing_on_last: bool) -> np.ndarray:
    """Ten-minute free chlorine with a daily peak from 07:00 to 09:00 (dosing after the morning draw)."""
    minutes = np.arange(days * 144) * 10
    hour = (minutes // 60) % 24
    values = _noise(len(minutes), 0.5, 0.01) + np.where((hour >= 7) & (hour < 9), 0.3, 0.0)
    if peak_missing_on_last:
        last = minutes >= (days - 1) * 1440
        values[last & (hour >= 7) & (hour < 9)] -= 0.3
    return values


def test_a_missing_daily_peak_is_a_pattern_break():
    readings = _series(_daily(9, True), "cl-1", "free_chlorine", "mg/L", minutes=10).lazy()

    found = pattern_breaks(readings, days=7, noise_floor=FLOORS).collect().sort("observed_at")

    last_day = T0 + timedelta(days=8)
    assert found.height > 0
    assert found["observed_at"].min() >= last_day + timedelta(hours=7)
    assert found["observed_at"].max() < last_day + timedelta(hours=9)
    first = found.row(0, named=True)
    assert first["window"] == "60 min of day, previous 7 days"
    assert first["explanation"].startswith("free_chlorine averaged 0.503 mg/L over 3 readings since 07:00")
    assert (
        "deviations below its usual 0.801 mg/L at that time of day over the previous 7 days"
        in first["explanation"]
    )


def test_the_usual_daily_peak_is_no_pattern_break():
    readings = _series(_daily(9, False), "cl-1", "free_chlorine", "mg/L", minutes=10).lazy()
    assert pattern_breaks(readings, days=7, noise_floor=FLOORS).collect().is_empty()


def test_a_quantised_flat_sensor_does_not_explode_the_robust_zscore():
    values = [7.20] * 120 + [7.21, 7.25, 7.45]  # a 0.01 pH sensor sitting on one value
    readings = _series(values).lazy()
    scored = robust_zscore(readings, 60, (0.0, 0.0, 0.0, 0.0), FLOORS).collect()

    assert scored.filter(pl.col("observed_at") < T0 + timedelta(minutes=120))["score"].abs().max() == 0.0
    tail = scored.tail(3)["score"].to_list()
    assert tail == pytest.approx([0.2, 1.0, 5.0])  # steps over the 0.05 pH floor, not over a MAD of 0
    found = robust_zscore(readings, 60, noise_floor=FLOORS).collect()
    assert found.select("observed_at", "severity").rows() == [(T0 + timedelta(minutes=122), "CRITICAL")]
    assert found["explanation"][0] == (
        "ph 7.45 pH is 5.0 robust standard deviations above the median 7.2 pH of the previous 60 readings"
    )


@pytest.mark.parametrize("spread", ["mad", "iqr"])
def test_a_spike_in_the_window_does_not_move_the_robust_spread(spread):
    base = _noise(200, 7.2, 0.1, seed=3)
    spiked = base.copy()
    spiked[150] = 12.0
    scores = [
        robust_zscore(_series(v).lazy(), 60, (0.0,) * 4, spread=spread).collect()["score"][-1]
        for v in (base, spiked)
    ]
    assert scores[1] == pytest.approx(scores[0], rel=0.25)


def _station_anomalies(rows) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "sensor_id": sensor,
                "observed_at": T0 + timedelta(minutes=minute),
                "method": method,
                "value": 1.0,
                "score": 3.0,
                "severity": severity,
                "window": "60 readings",
                "explanation": "",
            }
            for sensor, minute, method, severity in rows
        ],
        schema=ANOMALY_SCHEMA,
    )


SENSORS = pl.DataFrame(
    {
        "sensor_id": ["turb-1", "cl-1", "ph-1", "turb-2"],
        "station_id": ["st-1", "st-1", "st-1", "st-2"],
        "parameter": ["turbidity", "free_chlorine", "ph", "turbidity"],
    }
)


def test_two_parameters_agreeing_at_a_station_raise_one_combined_anomaly():
    found = _station_anomalies(
        [
            ("turb-1", 2, "rolling_zscore", "HIGH"),
            ("cl-1", 5, "robust_zscore", "MEDIUM"),
            ("cl-1", 9, "trend", "CRITICAL"),  # after the agreement: not counted
            ("turb-2", 5, "rolling_zscore", "CRITICAL"),  # another station
            ("ph-1", 40, "rolling_zscore", "HIGH"),  # another bucket, alone
        ]
    )

    agreed = combined(found, SENSORS).collect()

    assert agreed.rows(named=True) == [
        {
            "sensor_id": "cl-1",
            "observed_at": T0 + timedelta(minutes=5),
            "method": "combined",
            "value": 1.0,
            "score": 2.0,
            "severity": "CRITICAL",
            "window": "15 minutes at one station",
            "explanation": "2 signals agree at station st-1 within 15 minutes: robust_zscore, "
            "rolling_zscore on free_chlorine, turbidity (worst HIGH, raised to CRITICAL)",
        }
    ]


def test_two_z_scores_of_one_sensor_or_weak_findings_are_not_agreement():
    found = _station_anomalies(
        [
            ("turb-1", 2, "rolling_zscore", "HIGH"),
            ("turb-1", 2, "robust_zscore", "HIGH"),  # the same family
            ("cl-1", 3, "rolling_zscore", "LOW"),  # below the member severity
        ]
    )
    assert combined(found, SENSORS).collect().is_empty()


def test_two_methods_on_one_sensor_agree():
    found = _station_anomalies(
        [("turb-1", 2, "rolling_zscore", "MEDIUM"), ("turb-1", 4, "volatility", "MEDIUM")]
    )
    agreed = combined(found, SENSORS).collect()
    assert agreed.select("observed_at", "severity", "score").rows() == [
        (T0 + timedelta(minutes=4), "HIGH", 2.0)
    ]


def _scores(detector, frame: pl.DataFrame) -> pl.DataFrame:
    return detector(frame.lazy()).collect().select("observed_at", "method", "score").sort("observed_at")


@pytest.mark.parametrize(
    "detector",
    [
        lambda r: rolling_zscore(r, 60, (0.0,) * 4, FLOORS),
        lambda r: robust_zscore(r, 60, (0.0,) * 4, FLOORS),
        lambda r: robust_zscore(r, 60, (0.0,) * 4, FLOORS, spread="iqr"),
        lambda r: trend_anomalies(r, 15, 300, (0.0,) * 4, FLOORS, alpha=1.0),
        lambda r: volatility_anomalies(r, 15, 300, (-40.0,) * 4, FLOORS, max_share=1.0),
        lambda r: pattern_breaks(r, 3, (0.0,) * 4, FLOORS, min_days=1),
    ],
    ids=["rolling_zscore", "robust_zscore", "robust_iqr", "trend", "volatility", "pattern_break"],
)
def test_no_detector_looks_ahead(detector):
    values = _daily(5, True)
    values[400:420] += np.linspace(0, 1, 20)
    full = _series(values, "cl-1", "free_chlorine", "mg/L", minutes=10)
    cut = T0 + timedelta(days=3, hours=7, minutes=30)  # in the middle of a pattern bucket
    head = full.filter(pl.col("observed_at") < cut)

    early = _scores(detector, head)
    assert early.height > 100
    assert_frame_equal(_scores(detector, full).filter(pl.col("observed_at") < cut), early)


def test_find_anomalies_runs_every_detector_over_sensors_at_once_as_each_does_alone():
    ph = _noise(3000, 7.2, 0.05, seed=4)
    ph[2500:2560] += 0.02 * np.arange(60)
    turbidity = _noise(3000, 0.2, 0.01, seed=5)
    turbidity[2600:2640] = _noise(40, 0.2, 0.1, seed=6)
    readings = pl.concat(
        [_series(turbidity, "turb-1", "turbidity", "NTU"), _series(ph, "ph-1", "ph", "pH")]
    ).with_columns(qc_flag=pl.lit(1))
    sensors = SENSORS.filter(pl.col("station_id") == "st-1").with_columns(
        unit=pl.col("parameter").replace({"turbidity": "NTU", "ph": "pH", "free_chlorine": "mg/L"})
    )
    limits = {p: {"noise_floor": f} for p, f in FLOORS.items()}
    config = load_detector_config()
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=3)

    found = find_anomalies(readings.drop("parameter", "unit"), sensors, start, end, limits)

    one_by_one = pl.concat(
        [
            rolling_zscore(readings.lazy(), 60, noise_floor=FLOORS),
            robust_zscore(readings.lazy(), 60, noise_floor=FLOORS, spread=config["robust_zscore"]["spread"]),
            trend_anomalies(readings.lazy(), 15, 1440, (3.0, 3.5, 4.0, 5.0), FLOORS, 0.001),
            volatility_anomalies(readings.lazy(), 15, 1440, (3.0, 3.5, 4.0, 5.0), FLOORS, 0.5),
            pattern_breaks(readings.lazy(), 7, (3.0, 3.5, 4.0, 5.0), FLOORS),
        ]
    ).collect()
    one_by_one = pl.concat([one_by_one, combined(one_by_one, sensors).collect()])
    expected = (
        one_by_one.filter(pl.col("observed_at") >= start, pl.col("observed_at") < end)
        .with_columns(station_id=pl.lit("st-1"))
        .sort("sensor_id", "observed_at", "method")
    )
    assert {"trend", "volatility", "rolling_zscore", "combined"} <= set(found["method"])
    key = ["sensor_id", "observed_at", "score"]  # wording may round either way at the last digit
    assert_frame_equal(found.select(key), expected.select(key), check_exact=False, rel_tol=1e-9)


def test_the_lookback_covers_the_longest_window_chain_with_room_for_gaps_and_the_pattern_days():
    config = load_detector_config()
    lookback, days = detector_lookback(config)
    assert lookback == (config["trend"]["window"] + config["trend"]["history"]) * 3 / 2
    assert config["trend"]["history"] == timedelta(days=1)
    assert days == config["pattern_break"]["days"] == 7
    assert detector_lookback({"rolling_zscore": {"window": "30m"}, "pattern_break": {"enabled": False}}) == (
        timedelta(minutes=45),
        0,
    )


def test_lookback_groups_reads_at_least_the_days_asked():
    from tasks.analytics.readings import lookback_groups

    sensors = pl.DataFrame({"sensor_id": ["a", "b"], "interval_seconds": [60, 600]})
    groups = lookback_groups(sensors, 1455, at_least=timedelta(days=7, hours=1))
    assert groups.rows() == [(timedelta(days=7, hours=1), ["a", "b"])]
    assert lookback_groups(sensors, 60).rows() == [
        (timedelta(hours=1, minutes=30), ["a"]),
        (timedelta(hours=15), ["b"]),
    ]


@pytest.mark.parametrize(
    "detector",
    [
        lambda r, sep: trend_anomalies(r, 15, 300, (0.0,) * 4, 0.01, alpha=1.0, separated=sep),
        lambda r, sep: volatility_anomalies(r, 15, 300, (-40.0,) * 4, 0.01, max_share=0.5, separated=sep),
    ],
    ids=["trend", "volatility"],
)
def test_separated_sensors_and_the_shared_short_variance_give_the_per_sensor_findings(detector):
    first = _noise(900, 7.2, 0.05, seed=7)
    first[700:760] += _noise(60, 0.0, 0.4, seed=8) + 0.01 * np.arange(60)
    second = _noise(900, 0.2, 0.01, seed=9)
    second[500:520] = 0.9  # a step: one reading's deviation dominates, then the window's
    readings = pl.concat([_series(first, "a-1"), _series(second, "b-1")])
    gap = pl.DataFrame({"sensor_id": [None] * 400}, schema={"sensor_id": pl.String})
    separated = pl.concat([readings[:900], gap, readings[900:]], how="diagonal")
    shared = separated.with_columns(pl.col("value").rolling_var(15).alias(short_var_column(15)))

    expected = detector(readings.lazy(), False).collect().sort("sensor_id", "observed_at")
    found = detector(separated.lazy(), True).collect(engine="in-memory").sort("sensor_id", "observed_at")
    assert expected.height > 50
    key = ["sensor_id", "observed_at", "score"]  # wording may round either way at the last digit
    assert_frame_equal(found.select(key), expected.select(key), check_exact=False, rel_tol=1e-9)
    sharing = detector(shared.lazy(), True).collect(engine="in-memory").sort("sensor_id", "observed_at")
    assert_frame_equal(sharing, found, check_exact=True)
