from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from tasks.anomalies import find_anomalies, limit_breaches, rolling_zscore
from tasks.anomalies.detectors import ANOMALY_SCHEMA, load_limits

T0 = datetime(2026, 5, 1, tzinfo=UTC)
LIMITS = {
    "turbidity": {"noise_floor": 0.005, "high": {"limit": 1.0, "steps": [0.5, 1.0, 4.0]}},
    "ph": {
        "noise_floor": 0.05,
        "low": {"limit": 6.5, "steps": [0.25, 0.5, 1.0]},
        "high": {"limit": 8.5, "steps": [0.25, 0.5, 1.0]},
    },
}


def _series(sensor_id: str, parameter: str, unit: str, values: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [T0 + timedelta(minutes=i) for i in range(len(values))],
            "value": values,
            "parameter": parameter,
            "unit": unit,
        }
    )


def _alternating(n: int, low: float, high: float) -> list[float]:
    return [low if i % 2 else high for i in range(n)]


def test_a_spike_is_found_with_its_severity_and_a_readable_explanation():
    values = _alternating(60, 0.20, 0.22) + [2.41]  # window mean 0.21, std ~0.01
    readings = _series("turb-1", "turbidity", "NTU", values)

    found = rolling_zscore(readings.lazy(), window=60, noise_floor={"turbidity": 0.005}).collect()

    assert found.height == 1
    spike = found.row(0, named=True)
    assert spike["observed_at"] == T0 + timedelta(minutes=60)
    assert spike["severity"] == "CRITICAL"
    assert spike["window"] == "60 readings"
    assert round(spike["score"], 1) == 218.2
    assert spike["explanation"] == (
        "turbidity 2.41 NTU is 218.2 standard deviations above the mean 0.21 NTU of the previous 60 readings"
    )


def test_severity_follows_the_z_thresholds():
    base = _alternating(60, -1.0, 1.0)  # mean 0, sample std ~1.008
    readings = pl.concat(
        [
            _series(f"s{i}", "ph", "pH", [7 + v for v in base] + [7 + z * 1.0084]).with_columns(
                pl.lit(f"s{i}").alias("sensor_id")
            )
            for i, z in enumerate([1.9, 2.2, 2.7, 3.2, -3.6])
        ]
    )

    found = rolling_zscore(readings.lazy(), window=60).collect().sort("sensor_id")

    assert found.select("sensor_id", "severity").rows() == [
        ("s1", "LOW"),
        ("s2", "MEDIUM"),
        ("s3", "HIGH"),
        ("s4", "CRITICAL"),
    ]
    assert "below the mean 7 pH" in found.row(3, named=True)["explanation"]


def test_a_quiet_series_gives_no_anomaly():
    values = [7.2 + 0.01 * ((i * 7) % 5 - 2) for i in range(500)]  # noise under the floor
    readings = _series("ph-1", "ph", "pH", values)

    assert rolling_zscore(readings.lazy(), noise_floor={"ph": 0.05}).collect().is_empty()
    assert limit_breaches(readings.lazy(), LIMITS).collect().is_empty()


def test_a_time_window_excludes_the_reading_itself():
    values = [7.0] * 30 + [7.0 + 1.0]
    readings = _series("ph-1", "ph", "pH", values)

    found = rolling_zscore(readings.lazy(), window="30m", noise_floor=0.05).collect()

    assert found.select("observed_at", "score", "window").rows() == [
        (T0 + timedelta(minutes=30), 20.0, "30m")
    ]


def test_limit_breaches_grow_in_severity_with_distance():
    readings = pl.concat(
        [
            _series("turb-1", "turbidity", "NTU", [0.9, 1.2, 1.6, 2.41, 6.0]),
            _series("ph-1", "ph", "pH", [6.2]),
        ]
    )

    found = limit_breaches(readings.lazy(), LIMITS).collect().sort("sensor_id", "observed_at")

    expected = pl.DataFrame(
        {
            "sensor_id": ["ph-1", "turb-1", "turb-1", "turb-1", "turb-1"],
            "observed_at": [T0] + [T0 + timedelta(minutes=m) for m in (1, 2, 3, 4)],
            "method": "limit_breach",
            "value": [6.2, 1.2, 1.6, 2.41, 6.0],
            "score": [6.5 - 6.2, 1.2 - 1.0, 1.6 - 1.0, 2.41 - 1.0, 5.0],
            "severity": ["MEDIUM", "LOW", "MEDIUM", "HIGH", "CRITICAL"],
            "window": "1 reading",
            "explanation": [
                "ph 6.2 pH is 0.3 pH below the operational limit 6.5 pH",
                "turbidity 1.2 NTU is 0.2 NTU above the operational limit 1 NTU",
                "turbidity 1.6 NTU is 0.6 NTU above the operational limit 1 NTU",
                "turbidity 2.41 NTU is 1.41 NTU above the operational limit 1 NTU",
                "turbidity 6 NTU is 5 NTU above the operational limit 1 NTU",
            ],
        },
        schema=ANOMALY_SCHEMA,
    )
    assert_frame_equal(found, expected)


def test_failed_readings_feed_no_detector_and_only_the_day_is_reported():
    values = _alternating(60, 0.20, 0.22) + [2.41, 0.21, 3.0]
    readings = (
        _series("turb-1", "turbidity", "NTU", values)
        .with_columns(qc_flag=pl.when(pl.col("value") == 2.41).then(4).otherwise(1))
        .drop("parameter", "unit")
    )
    sensors = pl.DataFrame(
        {
            "sensor_id": ["turb-1"],
            "station_id": ["st-1"],
            "parameter": ["turbidity"],
            "unit": ["NTU"],
        }
    )
    day_start = T0 + timedelta(minutes=61)

    found = find_anomalies(readings, sensors, day_start, T0 + timedelta(days=1), LIMITS)

    # the 3.0 NTU reading breaches the limit and both z-scores: two method families agree
    assert found.select("observed_at", "method", "severity", "station_id").rows() == [
        (T0 + timedelta(minutes=62), "combined", "CRITICAL", "st-1"),
        (T0 + timedelta(minutes=62), "limit_breach", "HIGH", "st-1"),
        (T0 + timedelta(minutes=62), "robust_zscore", "CRITICAL", "st-1"),
        (T0 + timedelta(minutes=62), "rolling_zscore", "CRITICAL", "st-1"),
    ]


def test_the_limits_file_covers_every_catalogued_parameter():
    from tasks.parameters import catalog

    limits = load_limits()
    assert set(limits) == set(catalog())
    for spec in limits.values():
        for side in ("low", "high"):
            if side in spec:
                assert sorted(spec[side]["steps"]) == spec[side]["steps"]
