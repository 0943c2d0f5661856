"""Sensor maintenance: health scores, risk, failure and calibration dates per sensor."""

from tasks.maintenance.health import sensor_health
from tasks.maintenance.scoring import score_sensor_health

__all__ = ["score_sensor_health", "sensor_health"]
