from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from tasks.anomalies.detectors import find_anomalies, robust_zscore

T0 = datetime(2026, 5, 1, tzinfo=UTC)
FLOORS = {"ph": 0.05, "turbidity": 0.005}


def test_the_separated_iqr_path_scores_every_reading_as_robust_zscore_does_from_each_sensors_start():
    rng = np.random.default_rng(3)
    frames = [
        pl.DataFrame(
            {
                "sensor_id": sensor_id,
                "observed_at": [T0 + timedelta(minutes=i) for i in range(n)],
                "value": np.round(level + rng.normal(0, noise, n), 3),
                "qc_flag": 1,
            }
        )
        for sensor_id, n, level, noise in (("ph-1", 400, 7.2, 0.05), ("turb-1", 250, 0.2, 0.01))
    ]
    readings = pl.concat(frames)
    sensors = pl.DataFrame(
        {
            "sensor_id": ["ph-1", "turb-1"],
            "station_id": ["st-1", "st-1"],
            "parameter": ["ph", "turbidity"],
            "unit": ["pH", "NTU"],
        }
    )
    limits = {p: {"noise_floor": f} for p, f in FLOORS.items()}
    iqr = {"window": "60m", "spread": "iqr", "thresholds": [0.0, 0.0, 0.0, 0.0]}
    config = {"robust_zscore": iqr, "combined": {"enabled": False}}

    found = find_anomalies(readings, sensors, T0, T0 + timedelta(days=1), limits, config=config)

    alone = robust_zscore(
        readings.join(sensors, on="sensor_id").lazy(),
        60,
        (0.0,) * 4,
        FLOORS,
        spread="iqr",
        label=timedelta(minutes=60),
    ).collect()
    columns = ["sensor_id", "observed_at", "score", "explanation"]
    assert found.height > 500  # from the 31st reading of each sensor, every one
    assert_frame_equal(found.select(columns), alone.select(columns).sort("sensor_id", "observed_at"))
