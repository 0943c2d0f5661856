"""The station alarm: causal z-scores of the quality sensors, k-th largest, runs and hold."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.detection.labelled import LabelledReadings
from tasks.detection.station_alarm import (
    DEFAULT_CONFIG,
    alarm_expr,
    kth_largest,
    quality_sensors,
    station_alarm,
)
from tasks.evaluation.labelled import GECCO_PARAMETERS, read_labelled

from .conftest import labelled_frame, write_labelled


def flat_then_step(minutes: int = 40, step_at: int = 30) -> LabelledReadings:
    """pH flat at 7.0 then 7.5 from `step_at`; temperature flat at 10 throughout."""
    start = datetime(2016, 2, 15)
    frame = pl.DataFrame(
        {
            "observed_at": [start + timedelta(minutes=i) for i in range(minutes)],
            "pH": [7.0 if i < step_at else 7.5 for i in range(minutes)],
            "Tp": [10.0] * minutes,
            "label": [i >= step_at for i in range(minutes)],
        }
    )
    return LabelledReadings(frame, {"pH": "ph", "Tp": "temperature"})


@pytest.mark.parametrize("statistic", ["mean", "median", "median_mad"])
def test_a_step_on_a_flat_sensor_scores_its_size_over_the_noise_floor(statistic):
    z = kth_largest(flat_then_step(), 60, statistic, [1, 2])
    at_step = z.row(30, named=True)
    # pH noise floor is 0.05 (limits.yaml): a 0.5 step is 10 floors; the flat temperature scores 0
    assert at_step == {"observed_at": datetime(2016, 2, 15, 0, 30), "z_1": pytest.approx(10.0), "z_2": 0.0}
    assert z["z_1"][:10].is_null().all()  # fewer than 10 earlier readings in the window


@pytest.mark.parametrize("statistic", ["mean", "median", "median_mad"])
def test_scores_use_only_earlier_readings(statistic, tmp_path):
    readings = read_labelled(write_labelled(tmp_path / "f.csv", labelled_frame(days=3)))
    cut = readings.frame.height // 2
    head = LabelledReadings(readings.frame.head(cut), readings.parameters)
    assert_frame_equal(
        kth_largest(readings, 60, statistic, [1, 2]).head(cut), kth_largest(head, 60, statistic, [1, 2])
    )


def test_flow_is_not_a_quality_sensor():
    assert quality_sensors(GECCO_PARAMETERS) == ["Tp", "Cl", "pH", "Redox", "Leit", "Trueb", "Cl_2"]


def test_min_run_waits_for_consecutive_minutes_and_hold_keeps_the_alarm_on():
    z = pl.DataFrame({"z": [0.0, 5.0, 5.0, 5.0, 0.0, 0.0, 0.0, 5.0, 0.0, None]})

    def alarms(min_run: int, hold: int) -> str:
        flags = z.select(alarm_expr(pl.col("z"), 4.0, min_run, hold)).to_series()
        return "".join("1" if f else "0" for f in flags)

    assert alarms(1, 0) == "0111000100"
    assert alarms(2, 0) == "0011000000"
    assert alarms(1, 2) == "0111110111"
    assert alarms(2, 1) == "0011100000"


def test_the_default_alarm_catches_the_injected_steps(tmp_path):
    readings = read_labelled(write_labelled(tmp_path / "f.csv", labelled_frame(days=3)))
    alarm = station_alarm(readings, DEFAULT_CONFIG)
    starts = alarm.filter(pl.col("label") & ~pl.col("label").shift(1).fill_null(False))
    assert starts.height == 3 and starts["alarm"].all()
