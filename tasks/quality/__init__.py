"""Data quality: the great-expectations gate every incoming file passes before it loads, and the
QARTOD flags the nightly flow gives every loaded reading (`flag_readings`)."""

from tasks.quality.qc_stage import flag_readings

__all__ = ["flag_readings"]
