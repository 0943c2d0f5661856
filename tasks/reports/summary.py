"""The figures of a daily summary, as plain Polars functions over one municipality's frames."""

from __future__ import annotations

import polars as pl

from tasks.compliance.judge import EXCLUDED_QC_FLAGS, STATUS_RANK

UTC_TIME = pl.Datetime("us", "UTC")

SENSOR_SCHEMA = {
    "sensor_id": pl.String,
    "station_id": pl.String,
    "parameter": pl.String,
    "unit": pl.String,
    "kind": pl.String,
    "interval_seconds": pl.Int64,
    "is_active": pl.Int64,
}
READING_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": UTC_TIME,
    "value": pl.Float64,
    "qc_flag": pl.Int64,
}
AGGREGATE_SCHEMA = {
    "sensor_id": pl.String,
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
    "value_mean": pl.Float64,
    "value_min": pl.Float64,
    "value_max": pl.Float64,
    "value_std": pl.Float64,
}
STAT_COLUMNS = [
    "count_readings",
    "count_excluded",
    "value_mean",
    "value_min",
    "value_max",
    "value_std",
]
DIGITS = 6  # values are rounded so that the content hash does not see floating-point noise


def _usable() -> pl.Expr:
    return (
        ~pl.col("qc_flag").is_in(EXCLUDED_QC_FLAGS)
        & pl.col("value").is_not_null()
        & pl.col("value").is_not_nan()
    )


def sensor_day_summary(
    sensors: pl.DataFrame,
    readings: pl.DataFrame,
    aggregates: pl.DataFrame,
    window_seconds: int,
) -> pl.DataFrame:
    """One row per sensor (active, or inactive with readings): the day's statistics from the
    daily aggregate when there is one (`source` 'aggregates'), else computed from the readings
    ('readings'), with readings received, readings expected from the cadence, and coverage.

    Either way `count_readings` counts every reading and `count_excluded` those of them that QC
    failed or found missing (QARTOD 4, 9), which no statistic includes."""
    values = pl.col("value").filter(_usable())
    computed = readings.group_by("sensor_id").agg(
        count_readings=pl.len().cast(pl.Int64),
        count_excluded=(~_usable()).sum().cast(pl.Int64),
        value_mean=values.mean(),
        value_min=values.min(),
        value_max=values.max(),
        value_std=values.std(),
        count_received=(pl.col("qc_flag") != 9).sum().cast(pl.Int64),
    )
    listed = sensors.filter(
        (pl.col("is_active") == 1) | pl.col("sensor_id").is_in(computed["sensor_id"].implode())
    )
    from_aggregates = pl.col("agg_count_readings").is_not_null()
    expected = (
        pl.when((pl.col("kind") == "online") & (pl.col("interval_seconds") > 0))
        .then(window_seconds // pl.col("interval_seconds"))
        .otherwise(None)
    )
    return (
        listed.join(computed, on="sensor_id", how="left")
        .join(aggregates.rename({c: f"agg_{c}" for c in STAT_COLUMNS}), on="sensor_id", how="left")
        .with_columns(
            [
                pl.when(from_aggregates).then(pl.col(f"agg_{c}")).otherwise(pl.col(c)).alias(c)
                for c in STAT_COLUMNS
            ]
        )
        .with_columns(
            source=pl.when(from_aggregates)
            .then(pl.lit("aggregates"))
            .when(pl.col("count_received").is_not_null())
            .then(pl.lit("readings"))
            .otherwise(pl.lit("none")),
            count_readings=pl.col("count_readings").fill_null(0),
            count_excluded=pl.col("count_excluded").fill_null(0),
            count_received=pl.col("count_received").fill_null(0),
            count_expected=expected.cast(pl.Int64),
        )
        .with_columns(
            coverage_pct=pl.when(pl.col("count_expected") > 0)
            .then(
                pl.min_horizontal(
                    pl.col("count_received") / pl.col("count_expected") * 100, pl.lit(100.0)
                ).round(1)
            )
            .otherwise(None),
        )
        .with_columns(pl.col("^value_.*$").fill_nan(None).round(DIGITS))
        .select(
            "sensor_id",
            "station_id",
            "parameter",
            "unit",
            "kind",
            *STAT_COLUMNS,
            "count_received",
            "count_expected",
            "coverage_pct",
            "source",
        )
        .sort("sensor_id")
    )


def parameter_table(sensor_summary: pl.DataFrame, compliance: pl.DataFrame) -> pl.DataFrame:
    """One row per parameter: sensors, readings, min, count-weighted mean, max, and the worst
    compliance status of the day across standards."""
    worst = (
        compliance.with_columns(
            rank=pl.col("status").replace_strict(STATUS_RANK, return_dtype=pl.Int8)
        )
        .sort("rank", descending=True)
        .group_by("parameter", maintain_order=True)
        .agg(compliance_status=pl.col("status").first())
    )
    weight = pl.col("count_readings") - pl.col("count_excluded")  # the readings in the mean
    return (
        sensor_summary.group_by("parameter", "unit")
        .agg(
            sensors=pl.len().cast(pl.Int64),
            count_readings=pl.col("count_readings").sum().cast(pl.Int64),
            count_excluded=pl.col("count_excluded").sum().cast(pl.Int64),
            value_min=pl.col("value_min").min(),
            value_mean=(
                (pl.col("value_mean") * weight).sum()
                / weight.filter(pl.col("value_mean").is_not_null()).sum()
            ),
            value_max=pl.col("value_max").max(),
        )
        .with_columns(pl.col("value_mean").fill_nan(None).round(DIGITS))
        .join(worst, on="parameter", how="left")
        .with_columns(pl.col("compliance_status").fill_null("NOT_JUDGED"))
        .sort("parameter")
    )


def chart_series(
    sensor_summary: pl.DataFrame,
    readings: pl.DataFrame,
    compliance: pl.DataFrame,
    timezone: str,
    window_start,  # noqa: ANN001 - a UTC datetime
) -> dict | None:
    """The one chart of the report: hourly means of the online sensor of the worst-judged
    parameter (or the first parameter with online readings) and the limit it was judged on."""
    online = sensor_summary.filter((pl.col("kind") == "online") & (pl.col("count_readings") > 0))
    if online.is_empty():
        return None
    ranked = (
        compliance.filter(pl.col("parameter").is_in(online["parameter"].implode()))
        .with_columns(rank=pl.col("status").replace_strict(STATUS_RANK, return_dtype=pl.Int8))
        .sort(  # every key, so ties never depend on the row order the database returned
            ["rank", "deviation_pct", "standard", "parameter", "statistic"],
            descending=[True, True, False, False, False],
            nulls_last=True,
        )
    )
    limit = ranked.row(0, named=True) if ranked.height else None
    parameter = limit["parameter"] if limit else online["parameter"].sort()[0]
    sensor = (
        online.filter(pl.col("parameter") == parameter)
        .sort(["count_readings", "sensor_id"], descending=[True, False])
        .row(0, named=True)
    )
    hourly = (
        readings.filter((pl.col("sensor_id") == sensor["sensor_id"]) & _usable())
        .with_columns(hour_start=pl.col("observed_at").dt.truncate("1h"))
        .group_by("hour_start")
        .agg(value=pl.col("value").mean().round(DIGITS))
        .sort("hour_start")
        .select(
            hours_from_start=((pl.col("hour_start") - window_start).dt.total_seconds() / 3600),
            local_time=pl.col("hour_start").dt.convert_time_zone(timezone).dt.strftime("%H:%M"),
            value="value",
        )
    )
    return {
        "parameter": parameter,
        "sensor_id": sensor["sensor_id"],
        "unit": sensor["unit"],
        "statistic": "hourly mean",
        "limit": limit["limit_value"] if limit else None,
        "limit_kind": limit["limit_kind"] if limit else None,
        "limit_standard": limit["standard"] if limit else None,
        "points": hourly.to_dicts(),
    }


def key_figures(
    sensor_summary: pl.DataFrame,
    readings: pl.DataFrame,
    ingest: dict,
    incidents: pl.DataFrame,
    anomalies: pl.DataFrame,
    compliance: pl.DataFrame,
    maintenance: pl.DataFrame,
) -> dict:
    """The headline numbers of the day, all integers or one-decimal percentages."""
    expected = sensor_summary.filter(pl.col("count_expected").is_not_null())
    total_expected = int(expected["count_expected"].sum())
    by_status = dict(compliance.group_by("status").len().iter_rows())
    return {
        "readings_observed": readings.height,
        "readings_excluded": int((~readings.select(_usable()).to_series()).sum()),
        "sensors_listed": sensor_summary.height,
        "sensors_reporting": int((sensor_summary["count_received"] > 0).sum()),
        "coverage_pct": (
            round(min(int(expected["count_received"].sum()) / total_expected * 100, 100.0), 1)
            if total_expected
            else None
        ),
        **{key: int(value) for key, value in ingest.items()},
        "incidents_opened": int(incidents["is_opened_that_day"].sum()),
        "incidents_open_at_end": int(incidents["is_open_at_end"].sum()),
        "anomalies_total": int(anomalies["anomaly_count"].sum()),
        **{f"compliance_{s.lower()}": int(by_status.get(s, 0)) for s in STATUS_RANK},
        "maintenance_high_risk": int(
            maintenance["risk_level"].str.to_uppercase().is_in(["HIGH", "CRITICAL"]).sum()
        ),
    }
