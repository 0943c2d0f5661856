"""Windows are durations, applied at each sensor's cadence; a detector that cannot run says why."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.anomalies.detectors import (
    DetectorConfigError,
    find_anomalies,
    load_detector_config,
    needed_samples,
    parse_duration,
    robust_zscore,
    rolling_zscore,
    skip_sentences,
    skipped_sensors,
)
from tasks.anomalies.detectors_cadence import sensor_cadences

T0 = datetime(2026, 5, 1, tzinfo=UTC)
LIMITS = {"ph": {"noise_floor": 0.05}, "turbidity": {"noise_floor": 0.005}}
Z_ONLY = {
    "rolling_zscore": {"window": "60m", "thresholds": [2.0, 2.5, 3.0, 3.5]},
    "robust_zscore": {"window": "60m", "spread": "iqr", "thresholds": [2.0, 2.5, 3.0, 3.5]},
    "combined": {"enabled": False},
}


def _readings(sensor_id: str, minutes: list[float], values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [T0 + timedelta(minutes=m) for m in minutes],
            "value": values,
            "qc_flag": 1,
        }
    )


def _sensors(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [(sensor_id, "st-1", parameter, unit) for sensor_id, parameter, unit in rows],
        schema=["sensor_id", "station_id", "parameter", "unit"],
        orient="row",
    )


def _stepped(every_minutes: int, n: int, step_at: int, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 0.02, n)
    return np.round(7.2 + noise + np.where(np.arange(n) >= step_at, 1.0, 0.0), 2)


def test_a_15_minute_sensor_with_a_step_is_found_by_both_z_scores_over_a_60_minute_window():
    n, step = 2 * 96, 150
    readings = _readings("ph-1", [15 * i for i in range(n)], _stepped(15, n, step))
    step_time = T0 + timedelta(minutes=15 * step)

    found = find_anomalies(
        readings, _sensors(("ph-1", "ph", "pH")), T0, T0 + timedelta(days=2), LIMITS, config=Z_ONLY
    )

    at_step = found.filter(pl.col("observed_at") == step_time)
    assert sorted(at_step["method"]) == ["robust_zscore", "rolling_zscore"]
    assert set(at_step["severity"]) == {"CRITICAL"}
    assert set(at_step["window"]) == {"60 minutes"}
    assert found.filter(pl.col("observed_at") < step_time).height < 10  # noise is mostly quiet
    # the new level fills the window within an hour: no finding outlives its evidence
    assert found.filter(pl.col("observed_at") >= step_time + timedelta(minutes=60)).is_empty()
    assert skipped_sensors(readings, _sensors(("ph-1", "ph", "pH")), Z_ONLY, LIMITS).is_empty()


def test_a_time_window_needs_only_a_few_readings_at_15_minute_cadence_where_it_needed_ten():
    n, step = 40, 30
    readings = _readings("ph-1", [15 * i for i in range(n)], _stepped(15, n, step)).with_columns(
        parameter=pl.lit("ph"), unit=pl.lit("pH")
    )
    for detector in (rolling_zscore, robust_zscore):
        found = detector(readings.lazy(), timedelta(minutes=60), (3.0, 3.5, 4.0, 5.0), 0.05).collect()
        assert T0 + timedelta(minutes=15 * step) in found["observed_at"].to_list()
        assert found["window"].unique().to_list() == ["60 minutes"]


def test_an_irregular_15_minute_sensor_runs_its_z_scores_in_time_and_finds_the_step():
    minutes = np.cumsum(np.tile([15, 15, 15, 30], 50)).astype(float)  # every fourth spacing a gap
    step = 120
    readings = _readings("ph-1", list(minutes), _stepped(15, 200, step))
    sensors = _sensors(("ph-1", "ph", "pH"))

    cadence = sensor_cadences(readings.drop("qc_flag"), sensors).row(0, named=True)
    found = find_anomalies(readings, sensors, T0, T0 + timedelta(days=7), LIMITS, config=Z_ONLY)

    assert (cadence["cadence_seconds"], cadence["regular"]) == (900, False)
    step_time = T0 + timedelta(minutes=float(minutes[step]))
    assert sorted(found.filter(pl.col("observed_at") == step_time)["method"]) == [
        "robust_zscore",
        "rolling_zscore",
    ]


def test_an_hourly_sensor_is_skipped_and_the_sentence_says_why():
    hourly = _readings("lab-ph", [60 * i for i in range(48)], _stepped(60, 48, 40))
    quarter = _readings("ph-1", [15 * i for i in range(192)], _stepped(15, 192, 150))
    sensors = _sensors(("lab-ph", "ph", "pH"), ("ph-1", "ph", "pH"))
    readings = pl.concat([hourly, quarter])

    skipped = skipped_sensors(readings, sensors, Z_ONLY, LIMITS)
    found = find_anomalies(readings, sensors, T0, T0 + timedelta(days=2), LIMITS, config=Z_ONLY)

    assert skipped.rows() == [
        ("robust_zscore", "lab-ph", 3600, "hourly cadence: a 60-minute window holds 1 reading, 3 needed"),
        ("rolling_zscore", "lab-ph", 3600, "hourly cadence: a 60-minute window holds 1 reading, 3 needed"),
    ]
    reason = "(hourly cadence: a 60-minute window holds 1 reading, 3 needed): lab-ph"
    assert skip_sentences(skipped) == [
        f"robust_zscore skipped 1 sensor {reason}",
        f"rolling_zscore skipped 1 sensor {reason}",
    ]
    assert "lab-ph" not in found["sensor_id"].to_list()
    assert "ph-1" in found["sensor_id"].to_list()


def test_the_shipped_slow_detectors_skip_15_minute_sensors_with_one_sentence_each():
    readings = _readings("ph-1", [15 * i for i in range(192)], _stepped(15, 192, 150))
    sentences = skip_sentences(skipped_sensors(readings, _sensors(("ph-1", "ph", "pH")), limits=LIMITS))
    assert sentences == [
        "trend skipped 1 sensor (15-minute cadence: a 15-minute window holds 1 reading, 5 needed): ph-1",
        "volatility skipped 1 sensor (15-minute cadence: a 15-minute window holds 1 reading, 5 needed): ph-1",
    ]


def test_a_sensor_with_too_few_readings_and_no_interval_is_skipped_as_of_unknown_cadence():
    readings = _readings("ph-1", [0, 15, 30], np.array([7.0, 7.1, 7.0]))
    sensors = _sensors(("ph-1", "ph", "pH"))
    assert set(skipped_sensors(readings, sensors, Z_ONLY, LIMITS)["reason"]) == {
        "cadence unknown: fewer than 11 readings and no interval in the registry"
    }
    with_interval = sensors.with_columns(interval_seconds=pl.lit(900))
    assert skipped_sensors(readings, with_interval, Z_ONLY, LIMITS).is_empty()


def test_the_shipped_windows_are_durations():
    config = load_detector_config()
    assert config["rolling_zscore"]["window"] == timedelta(minutes=60)
    assert config["robust_zscore"]["window"] == timedelta(minutes=60)
    assert config["trend"]["window"] == config["volatility"]["window"] == timedelta(minutes=15)
    assert config["trend"]["history"] == config["volatility"]["history"] == timedelta(days=1)


@pytest.mark.parametrize("bad", ["60", "60 minutes", "-5m", "0m", "1w"])
def test_a_window_that_is_not_a_duration_is_refused_naming_the_file_and_key(tmp_path: Path, bad: str):
    path = tmp_path / "detectors.yaml"
    path.write_text(f"rolling_zscore:\n  window: {bad}\n  thresholds: [2, 2.5, 3, 3.5]\n")

    with pytest.raises(DetectorConfigError) as refused:
        load_detector_config(path)

    assert str(refused.value).startswith(f"{path}: rolling_zscore.window is ")
    assert "not a duration: write a positive whole number with its unit, like 60m, 2h or 1d" in str(
        refused.value
    )


def test_a_detector_skipping_sensors_for_two_reasons_says_both_in_one_sentence():
    quarter = _readings("ph-15", [15 * i for i in range(192)], _stepped(15, 192, 150))
    hourly = _readings("ph-60", [60 * i for i in range(48)], _stepped(60, 48, 40))
    sensors = _sensors(("ph-15", "ph", "pH"), ("ph-60", "ph", "pH"))

    sentences = skip_sentences(skipped_sensors(pl.concat([quarter, hourly]), sensors, limits=LIMITS))

    assert sentences[0] == (
        "pattern_break skipped 1 sensor (hourly cadence: a 60-minute bucket holds 1 reading, 3 needed): ph-60"
    )
    assert sentences[3] == (
        "trend skipped 2 sensors: "
        "1 (15-minute cadence: a 15-minute window holds 1 reading, 5 needed): ph-15; "
        "1 (hourly cadence: a 15-minute window holds 0 readings, 5 needed): ph-60"
    )
    assert [s.split(" skipped")[0] for s in sentences] == [
        "pattern_break",
        "robust_zscore",
        "rolling_zscore",
        "trend",
        "volatility",
    ]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("90s", 90), ("15m", 900), ("60m", 3600), ("2h", 7200), ("1h30m", 5400), ("1d", 86400)],
)
def test_windows_are_written_as_durations(written: str, seconds: int):
    assert parse_duration(written) == timedelta(seconds=seconds)
    assert parse_duration(timedelta(seconds=seconds)) == timedelta(seconds=seconds)


def test_needed_samples_stays_a_number_for_callers_that_word_it():
    assert needed_samples(60, None) == 30
    assert needed_samples(timedelta(minutes=60), None) == 3  # the least any sensor needs
    assert needed_samples(timedelta(minutes=60), 12) == 12
