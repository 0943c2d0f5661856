"""Anomalies: detectors over each sensor's readings, grouped into incidents."""

from tasks.anomalies.detection import detect_anomalies
from tasks.anomalies.detectors import find_anomalies, limit_breaches, rolling_zscore
from tasks.anomalies.incidents import plan_incidents

__all__ = [
    "detect_anomalies",
    "find_anomalies",
    "limit_breaches",
    "plan_incidents",
    "rolling_zscore",
]
