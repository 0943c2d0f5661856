"""Reports: the daily summary of one municipality in JSON, CSV, XLSX and PDF, and its e-mail."""

from tasks.reports.daily import write_daily_reports
from tasks.reports.email import email_daily_report

__all__ = ["email_daily_report", "write_daily_reports"]
