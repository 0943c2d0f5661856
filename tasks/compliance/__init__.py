"""Compliance: cited standards as data, daily statistics judged against the limits in force."""

from tasks.compliance.daily import judge_compliance
from tasks.compliance.judge import daily_statistics, judge
from tasks.compliance.standards import load_standards

__all__ = ["daily_statistics", "judge", "judge_compliance", "load_standards"]
