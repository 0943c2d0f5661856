"""System health per local day, and each sensor's uptime from the coverage of its daily aggregates.

Uptime of a sensor on a day = readings in its daily aggregate / readings expected at its cadence
over that local day (23 or 25 hours on daylight-saving changes), at most 100 %. Only active online
sensors with a cadence are expected to report; a day without an aggregate counts as 0 %.
Delivery success = webhook deliveries succeeded / (succeeded + given up), by the day they were created.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.database import load_sql, read_frame
from tasks.exports.request import ExportRequest, utc_window
from tasks.exports.sources import UTC_TIME, bound_time, read_sensors

WINDOW_DAYS = 31  # local days read at a time
UPTIME_SCHEMA = {
    "day": pl.Date,
    "station_id": pl.String,
    "sensor_id": pl.String,
    "parameter": pl.String,
    "expected_readings": pl.Int64,
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
    "uptime_pct": pl.Float64,
}
HEALTH_SCHEMA = {
    "day": pl.Date,
    "batches": pl.Int64,
    "batches_failed": pl.Int64,
    "rows_received": pl.Int64,
    "rows_loaded": pl.Int64,
    "rows_quarantined": pl.Int64,
    "quarantined_still_held": pl.Int64,
    "qc_runs": pl.Int64,
    "readings_suspect": pl.Int64,
    "readings_failed": pl.Int64,
    "sensors_expected": pl.Int64,
    "sensors_reporting": pl.Int64,
    "sensor_uptime_pct": pl.Float64,
    "webhook_deliveries": pl.Int64,
    "webhook_succeeded": pl.Int64,
    "webhook_given_up": pl.Int64,
    "delivery_success_pct": pl.Float64,
}


def local_days(from_day: date, to_day: date, timezone: str) -> pl.DataFrame:
    """Each local day with the UTC instants it starts and ends."""
    days = pl.date_range(from_day, to_day, "1d", eager=True).alias("day")
    bounds = [utc_window(d, d, timezone) for d in days]  # one pair per day, not per row of data
    return pl.DataFrame(
        {"day": days, "starts_at": [b[0] for b in bounds], "ends_at": [b[1] for b in bounds]},
        schema={"day": pl.Date, "starts_at": UTC_TIME, "ends_at": UTC_TIME},
    )


def sensor_uptime(days: pl.DataFrame, sensors: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
    """Per local day and expected sensor: readings expected, counted, excluded, and uptime %.

    `counts`: `sensor_id`, `day`, `count_readings`, `count_excluded` from the daily aggregates."""
    expected = sensors.filter(
        (pl.col("is_active") == 1) & (pl.col("kind") == "online") & pl.col("interval_seconds").is_not_null()
    )
    seconds = (pl.col("ends_at") - pl.col("starts_at")).dt.total_seconds()
    return (
        days.join(expected, how="cross")
        .join(counts, on=["sensor_id", "day"], how="left")
        .with_columns(
            (seconds // pl.col("interval_seconds")).cast(pl.Int64).alias("expected_readings"),
            pl.col("count_readings", "count_excluded").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            (pl.min_horizontal(pl.col("count_readings") / pl.col("expected_readings"), pl.lit(1.0)) * 100)
            .round(2)
            .alias("uptime_pct")
        )
        .sort("day", "sensor_id")
        .select(list(UPTIME_SCHEMA))
    )


def _per_day(frame: pl.DataFrame, at: str, timezone: str, aggs: list[pl.Expr]) -> pl.DataFrame:
    return frame.group_by(pl.col(at).dt.convert_time_zone(timezone).dt.date().alias("day")).agg(aggs)


def health_days(
    days: pl.DataFrame,
    timezone: str,
    batches: pl.DataFrame,
    quarantine: pl.DataFrame,
    qc_runs: pl.DataFrame,
    uptime: pl.DataFrame,
    deliveries: pl.DataFrame,
) -> pl.DataFrame:
    """One row per local day: ingest, quarantine, QC, sensor uptime and webhook delivery figures."""
    parts = [
        _per_day(
            batches,
            "started_at",
            timezone,
            [
                pl.len().alias("batches"),
                (pl.col("status") == "failed").sum().alias("batches_failed"),
                pl.col("rows_total").sum().alias("rows_received"),
                pl.col("rows_loaded").sum(),
                pl.col("rows_quarantined").sum(),
            ],
        ),
        _per_day(
            quarantine,
            "created_at",
            timezone,
            [(pl.col("is_released") == 0).sum().alias("quarantined_still_held")],
        ),
        qc_runs.group_by("day").agg(
            pl.len().alias("qc_runs"),
            pl.col("count_suspect").sum().alias("readings_suspect"),
            pl.col("count_fail").sum().alias("readings_failed"),
        ),
        uptime.group_by("day").agg(
            pl.len().alias("sensors_expected"),
            (pl.col("count_readings") > 0).sum().alias("sensors_reporting"),
            pl.col("uptime_pct").mean().round(2).alias("sensor_uptime_pct"),
        ),
        _per_day(
            deliveries,
            "created_at",
            timezone,
            [
                pl.len().alias("webhook_deliveries"),
                (pl.col("status") == "succeeded").sum().alias("webhook_succeeded"),
                (pl.col("status") == "dead").sum().alias("webhook_given_up"),
            ],
        ),
    ]
    table = days.select("day")
    for part in parts:
        table = table.join(part, on="day", how="left")
    counts = [name for name, dtype in HEALTH_SCHEMA.items() if dtype == pl.Int64]
    finished = pl.col("webhook_succeeded") + pl.col("webhook_given_up")
    return (
        table.with_columns(pl.col(counts).fill_null(0).cast(pl.Int64))
        .with_columns(
            pl.when(finished > 0)
            .then((pl.col("webhook_succeeded") / finished * 100).round(2))
            .alias("delivery_success_pct")
        )
        .sort("day")
        .select(list(HEALTH_SCHEMA))
        .cast(HEALTH_SCHEMA)
    )


def _windows(request: ExportRequest) -> Iterator[tuple[date, date]]:
    first = request.from_day
    while first <= request.to_day:
        last = min(first + timedelta(days=WINDOW_DAYS - 1), request.to_day)
        yield first, last
        first = last + timedelta(days=1)


def _read(conn: Connection, name: str, params: dict, schema: dict) -> pl.DataFrame:
    return read_frame(conn, load_sql(name), params, schema)


def _uptime_window(
    conn: Connection, request: ExportRequest, sensors: pl.DataFrame, days: pl.DataFrame, timezone: str
) -> pl.DataFrame:
    start, end = days["starts_at"].min(), days["ends_at"].max()
    counts = _read(
        conn,
        "export_day_counts",
        {
            "municipality_id": request.municipality_id,
            "start": bound_time(conn, start),
            "end": bound_time(conn, end),
        },
        {
            "sensor_id": pl.String,
            "bucket_start": UTC_TIME,
            "count_readings": pl.Int64,
            "count_excluded": pl.Int64,
        },
    )
    counts = (
        counts.with_columns(day=pl.col("bucket_start").dt.convert_time_zone(timezone).dt.date())
        .group_by("sensor_id", "day")
        .agg(pl.col("count_readings", "count_excluded").sum())
    )
    return sensor_uptime(days, sensors, counts)


def sensor_uptime_chunks(
    conn: Connection, request: ExportRequest, start: datetime, end: datetime, timezone: str
) -> Iterator[pl.DataFrame]:
    """Each picked sensor's uptime per local day, a month of days at a time."""
    sensors = read_sensors(conn, request)
    for first, last in _windows(request):
        yield _uptime_window(conn, request, sensors, local_days(first, last, timezone), timezone)


def system_health_chunks(
    conn: Connection, request: ExportRequest, start: datetime, end: datetime, timezone: str
) -> Iterator[pl.DataFrame]:
    """The municipality's health per local day, a month of days at a time."""
    sensors = read_sensors(conn, request)
    for first, last in _windows(request):
        days = local_days(first, last, timezone)
        window = {
            "municipality_id": request.municipality_id,
            "start": bound_time(conn, days["starts_at"].min()),
            "end": bound_time(conn, days["ends_at"].max()),
        }
        batches = _read(
            conn,
            "export_health_batches",
            window,
            {
                "started_at": UTC_TIME,
                "status": pl.String,
                "rows_total": pl.Int64,
                "rows_loaded": pl.Int64,
                "rows_quarantined": pl.Int64,
            },
        )
        quarantine = _read(
            conn, "export_health_quarantine", window, {"created_at": UTC_TIME, "is_released": pl.Int64}
        )
        qc_runs = _read(
            conn,
            "export_health_qc_runs",
            {
                "municipality_id": request.municipality_id,
                "from_day": bound_time(conn, first),
                "to_day": bound_time(conn, last),
            },
            {"day": pl.Date, "count_readings": pl.Int64, "count_suspect": pl.Int64, "count_fail": pl.Int64},
        )
        deliveries = _read(
            conn,
            "export_health_deliveries",
            window,
            {"created_at": UTC_TIME, "status": pl.String, "attempt_count": pl.Int64},
        )
        uptime = _uptime_window(conn, request, sensors, days, timezone)
        yield health_days(days, timezone, batches, quarantine, qc_runs, uptime, deliveries)
