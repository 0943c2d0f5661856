import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from tasks.maintenance import sensor_health

DAY = date(2026, 3, 14)
START = datetime(2026, 3, 1, tzinfo=UTC)  # 14 days up to the end of DAY
STEP = timedelta(minutes=10)
N = 14 * 144


def _readings(sensor_id: str, values, flags=None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [START + STEP * i for i in range(len(values))],
            "value": np.asarray(values, dtype=float),
            "qc_flag": flags if flags is not None else [1] * len(values),
        },
        schema_overrides={"qc_flag": pl.Int16},
    )


def _sensors(*rows: tuple[str, str, str, float, float, datetime | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (sid, "st-1", parameter, unit, lo, hi, START, calibrated)
            for sid, parameter, unit, lo, hi, calibrated in rows
        ],
        schema={
            "sensor_id": pl.String,
            "station_id": pl.String,
            "parameter": pl.String,
            "unit": pl.String,
            "valid_min": pl.Float64,
            "valid_max": pl.Float64,
            "installed_at": pl.Datetime("us", "UTC"),
            "last_calibrated_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )


def _noise(seed: int, scale: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, N)


def test_a_healthy_sensor_is_low_risk_with_calibration_due_after_90_days():
    readings = _readings("ph-ok", 7.2 + _noise(1, 0.03))

    out = sensor_health(readings, _sensors(("ph-ok", "ph", "pH", 0, 14, START)), DAY)

    row = out.row(0, named=True)
    assert (row["risk_level"], row["health_score"], row["predicted_failure_date"]) == (
        "LOW",
        100.0,
        None,
    )
    assert row["calibration_due_date"] == date(2026, 5, 30)
    assert row["recommendation"] == ("Keep monitoring: no sign of trouble; calibration due 2026-05-30.")
    assert json.loads(row["factors"])["days_of_data"] == 14


def test_a_stuck_sensor_is_high_risk():
    values = 7.2 + _noise(2, 0.03)
    values[-100:] = 7.21  # the last 16.5 hours on one value
    readings = _readings("ph-stuck", values)

    out = sensor_health(readings, _sensors(("ph-stuck", "ph", "pH", 0, 14, START)), DAY)

    row = out.row(0, named=True)
    assert row["risk_level"] == "HIGH"
    assert row["health_score"] <= 59.9
    assert row["recommendation"].startswith("Service within 14 days: reading stuck at 7.21 pH for 16 h;")
    factors = json.loads(row["factors"])
    assert factors["stuck"] is True and factors["longest_flat_minutes"] == 990


def test_a_few_hours_on_one_value_is_stuck_for_a_sensor_that_never_holds_one():
    values = 0.6 + _noise(7, 0.02)
    values[-40:-20] = 0.61  # 190 minutes held in the afternoon of DAY
    readings = _readings("chl-2", values)

    out = sensor_health(readings, _sensors(("chl-2", "free_chlorine", "mg/L", 0, 5, START)), DAY)

    assert out.select("risk_level", "health_score").row(0) == ("HIGH", 59.9)
    assert json.loads(out["factors"][0])["longest_flat_minutes"] == 190


def test_a_quantised_sensor_that_often_holds_a_value_is_not_stuck():
    # Conductivity on a 1 uS/cm grid: every day it holds one value for 8 hours.
    day_pattern = np.concatenate([np.full(48, 230.0), 230.0 + np.tile([1.0, -1.0], 48)])
    readings = _readings("cond-1", np.tile(day_pattern, 14))

    out = sensor_health(readings, _sensors(("cond-1", "conductivity", "uS/cm", 0, 2000, START)), DAY)

    row = out.row(0, named=True)
    assert row["risk_level"] == "LOW"
    assert json.loads(row["factors"])["stuck"] is False


def test_a_drifting_sensor_gets_a_predicted_failure_date():
    # Turbidity creeping up 0.08 NTU a day towards the top of its 0-2 NTU range.
    values = 0.5 + np.arange(N) / 144 * 0.08 + _noise(3, 0.02)
    readings = _readings("turb-1", values)

    out = sensor_health(readings, _sensors(("turb-1", "turbidity", "NTU", 0, 2, START)), DAY)

    row = out.row(0, named=True)
    # Fitted level on DAY about 1.54 NTU; (2 - 1.54) / 0.08 = 5.8 days ahead.
    assert row["predicted_failure_date"] == date(2026, 3, 20)
    assert row["confidence"] == 1.0
    assert row["risk_level"] == "HIGH"
    assert row["calibration_due_date"] == date(2026, 4, 15)  # 90 days halved by full drift
    assert "drifting 0.0799 NTU/day reaches the valid limit 2 NTU about 2026-03-20" in (row["recommendation"])


def test_an_overdue_calibration_is_medium_risk_and_a_day_without_readings_is_not_scored():
    readings = pl.concat(
        [
            _readings("ph-old", 7.2 + _noise(4, 0.03)),
            _readings("ph-gone", (7.2 + _noise(5, 0.03))[: N - 144]),
        ]
    )
    sensors = _sensors(
        ("ph-old", "ph", "pH", 0, 14, datetime(2025, 11, 1, tzinfo=UTC)),
        ("ph-gone", "ph", "pH", 0, 14, START),
    )

    out = sensor_health(readings, sensors, DAY)

    assert out.select("sensor_id", "risk_level", "calibration_due_date").rows() == [
        ("ph-old", "MEDIUM", date(2026, 1, 30))
    ]
    assert out["recommendation"][0] == "Service within 30 days: calibration overdue since 2026-01-30."


def test_failed_readings_count_as_out_of_range_and_lower_the_score():
    flags = [1] * N
    flags[-144:] = [4 if i % 4 == 0 else 1 for i in range(144)]  # a quarter of the day failed
    readings = _readings("chl-1", 0.5 + _noise(6, 0.01), flags)

    out = sensor_health(readings, _sensors(("chl-1", "free_chlorine", "mg/L", 0, 5, START)), DAY)

    row = out.row(0, named=True)
    factors = json.loads(row["factors"])
    assert factors["out_of_range"] == 1.0 and factors["out_of_range_share"] == 0.25
    assert factors["degradation"] == 1.0
    assert (row["health_score"], row["risk_level"]) == (55.0, "HIGH")


def test_a_short_event_on_the_day_does_not_make_a_probe_unstable():
    values = 0.12 + _noise(6, 0.005)
    values[N - 100 : N - 88] += 3.0  # two hours of a turbidity event on the scored day
    values[N - 50] += 6.0  # and a spike
    out = sensor_health(
        _readings("turb-ok", values), _sensors(("turb-ok", "turbidity", "NTU", 0, 10, START)), DAY
    )
    row = out.row(0, named=True)
    factors = json.loads(row["factors"])
    assert (factors["instability"], factors["variation"]) == (0.0, 0.0)
    assert row["risk_level"] == "LOW"


def test_a_noisier_probe_is_unstable():
    values = 7.2 + _noise(7, 0.03)
    values[N - 144 :] += _noise(8, 0.3)[:144]  # ten times its usual noise all day
    out = sensor_health(_readings("ph-noisy", values), _sensors(("ph-noisy", "ph", "pH", 0, 14, START)), DAY)
    factors = json.loads(out["factors"][0])
    assert factors["instability"] == 1.0 and factors["std_ratio"] > 5


def test_water_warming_with_the_season_is_not_drift_but_a_probe_warming_faster_than_its_peers_is():
    season = np.arange(N) / 144 * 0.08  # 0.08 degC a day: 2.4 degC in 30 days
    readings = pl.concat(
        [_readings(f"tp-{k}", 10 + k + season + _noise(10 + k, 0.05)) for k in range(3)]
        + [_readings("tp-bad", 11 + 3 * season + _noise(20, 0.05))]
    )
    sensors = _sensors(
        *((sid, "temperature", "degC", 0, 40, START) for sid in ("tp-0", "tp-1", "tp-2", "tp-bad"))
    )
    out = sensor_health(readings, sensors, DAY).sort("sensor_id")
    factors = {sid: json.loads(f) for sid, f in out.select("sensor_id", "factors").iter_rows()}
    for sid in ("tp-0", "tp-1", "tp-2"):
        assert factors[sid]["drift"] < 0.1, factors[sid]
    assert abs(factors["tp-bad"]["peer_slope_per_day"] - 0.08) < 0.01
    assert abs(factors["tp-bad"]["drift_slope_per_day"] - 0.16) < 0.01  # its own 0.24 less its peers'
    assert factors["tp-bad"]["drift"] == 1.0
    # alone, a warming probe cannot be told from warming water: its whole slope counts
    alone = sensor_health(_readings("tp-0", 10 + season), sensors.head(1), DAY)
    assert json.loads(alone["factors"][0])["peer_slope_per_day"] is None
