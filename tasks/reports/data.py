"""The data of one municipality's daily summary, read from the database; its canonical hash."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.calendar import local_day_bounds
from tasks.compliance.daily import load_municipality
from tasks.compliance.periods import day_window, sql_date
from tasks.database import load_sql, read_frame
from tasks.reports.summary import (
    AGGREGATE_SCHEMA,
    READING_SCHEMA,
    SENSOR_SCHEMA,
    UTC_TIME,
    chart_series,
    key_figures,
    parameter_table,
    sensor_day_summary,
)

KIND = "daily_summary"

INCIDENT_SCHEMA = {
    "incident_id": pl.Int64,
    "station_id": pl.String,
    "sensor_id": pl.String,
    "kind": pl.String,
    "severity": pl.String,
    "summary": pl.String,
    "first_observed_at": UTC_TIME,
    "opened_at": UTC_TIME,
    "resolved_at": UTC_TIME,
    "is_opened_that_day": pl.Int64,
    "is_open_at_end": pl.Int64,
}
ANOMALY_SCHEMA = {"severity": pl.String, "anomaly_count": pl.Int64}
MAINTENANCE_SCHEMA = {
    "sensor_id": pl.String,
    "health_score": pl.Float64,
    "risk_level": pl.String,
    "predicted_failure_date": pl.Date,
    "calibration_due_date": pl.Date,
    "recommendation": pl.String,
}
COMPLIANCE_SCHEMA = {
    "standard": pl.String,
    "parameter": pl.String,
    "status": pl.String,
    "statistic": pl.String,
    "statistic_value": pl.Float64,
    "limit_value": pl.Float64,
    "limit_kind": pl.String,
    "unit": pl.String,
    "deviation_pct": pl.Float64,
    "sample_count": pl.Int64,
    "excluded_count": pl.Int64,
    "rule": pl.String,
    "citation": pl.String,
}
INGEST_SCHEMA = {
    "batches_received": pl.Int64,
    "batches_failed": pl.Int64,
    "rows_received": pl.Int64,
    "rows_loaded": pl.Int64,
    "rows_quarantined": pl.Int64,
}
INSIGHT_SCHEMA = {"sensor_id": pl.String, "kind": pl.String, "sentence": pl.String}
SEVERITY_ORDER = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]


def collect_daily(conn: Connection, municipality_id: str, day: date) -> dict:
    """The content of one municipality's daily summary: only its own rows, and nothing that
    changes when the same data is reported again (no generation time, no revision)."""
    town = load_municipality(conn, municipality_id)
    start, end = local_day_bounds(day, town.timezone)
    window = day_window(conn, municipality_id, day, town.timezone)
    on_day = {"municipality_id": municipality_id, "day": sql_date(conn, day)}
    tenant = {"municipality_id": municipality_id}

    def frame(name: str, params: dict, schema: dict) -> pl.DataFrame:
        return read_frame(conn, load_sql(name), params, schema)

    sensors = frame("load_report_sensors", tenant, SENSOR_SCHEMA)
    readings = frame("load_report_readings", window, READING_SCHEMA)
    aggregates = frame(
        "load_report_day_aggregates",
        {**tenant, "window_start": window["window_start"]},
        AGGREGATE_SCHEMA,
    )
    ingest = frame("load_report_ingest", window, INGEST_SCHEMA).row(0, named=True)
    incidents = frame("load_report_incidents", window, INCIDENT_SCHEMA)
    anomalies = (
        frame("load_report_anomalies", window, ANOMALY_SCHEMA)
        .with_columns(
            order=pl.col("severity")
            .str.to_uppercase()
            .replace_strict(
                {s: i for i, s in enumerate(SEVERITY_ORDER)},
                default=len(SEVERITY_ORDER),
                return_dtype=pl.Int64,
            )
        )
        .sort("order", "severity")
        .drop("order")
    )
    maintenance = frame("load_report_maintenance", on_day, MAINTENANCE_SCHEMA)
    compliance = frame("load_report_compliance", on_day, COMPLIANCE_SCHEMA)
    day_after = {**tenant, "day_after": sql_date(conn, day + timedelta(days=1))}
    insights = frame("load_report_insights", day_after, INSIGHT_SCHEMA)

    sensor_summary = sensor_day_summary(
        sensors, readings, aggregates, int((end - start).total_seconds())
    )
    return {
        "kind": KIND,
        "municipality": {"id": town.id, "name": town.name, "timezone": town.timezone},
        "period": {"day": day, "start_utc": start, "end_utc": end},
        "figures": key_figures(
            sensor_summary, readings, ingest, incidents, anomalies, compliance, maintenance
        ),
        "parameters": parameter_table(sensor_summary, compliance).to_dicts(),
        "sensors": sensor_summary.to_dicts(),
        "compliance": compliance.to_dicts(),
        "incidents": incidents.with_columns(
            pl.col("is_opened_that_day", "is_open_at_end").cast(pl.Boolean)
        ).to_dicts(),
        "anomalies": anomalies.to_dicts(),
        "maintenance": maintenance.to_dicts(),
        "insights": insights.to_dicts(),
        "chart": chart_series(sensor_summary, readings, compliance, town.timezone, start),
    }


def _jsonable(value):  # noqa: ANN001, ANN202
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(data: dict, indent: int | None = None) -> str:
    """JSON with sorted keys and ISO dates: the same data always gives the same text."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        data,
        sort_keys=True,
        default=_jsonable,
        ensure_ascii=False,
        separators=separators,
        indent=indent,
        allow_nan=False,
    )


def content_sha256(content: dict) -> str:
    """The hash of a report's data (its canonical JSON), the same for every format."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()
