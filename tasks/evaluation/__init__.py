"""Measured accuracy: score the anomaly detectors on a file labelled by operators (issue #4)."""
