"""Aggregates: hourly and local-day statistics of each sensor's readings."""

from tasks.analytics.aggregates import compute_aggregates, hourly_and_daily_aggregates

__all__ = ["compute_aggregates", "hourly_and_daily_aggregates"]
