"""Alerts: runs of one sensor's anomalies at or above a severity, for webhook subscribers.

What an alert is. For each level L of LOW, MEDIUM, HIGH and CRITICAL, an alert of level L is a
run of one sensor's anomalies of severity L or worse, found by any method (statistical, limit
breach, combined, learned), each within the quiet period (60 minutes, as for incidents) of the one
before. It is created with its first such anomaly (`alert.created`) and resolved once the quiet
period has passed after its last (`alert.resolved`, `resolved_at` = last anomaly + quiet
period). Its `severity` is the worst of its anomalies so far, its `methods` the methods that found
them, its `explanation` the sentence of the worst one (the highest score among equals). Weaker
anomalies neither open nor keep open an alert of a higher level: an alert ends with its evidence.

Who receives it. An endpoint chooses one level (`min_severity`, default HIGH) and receives the
alerts of that level only, so it hears once, with one `alert.created` and one `alert.resolved`,
of every run of anomalies at least that severe; a CRITICAL endpoint never hears of a run that
stayed HIGH. Alerts are kept whatever the subscriptions, one row per sensor, level and run.

Unlike incidents (per sensor and kind, opened only at HIGH, acknowledged and resolved by
operators), alerts follow the anomalies alone. `raise_alerts` (tasks/anomalies/alert_stage.py)
makes them from the stored anomalies of a day after `detect_anomalies`, stores them and records
their events, so a rerun of a day finds its runs already stored and records nothing new: a run
joins a stored alert of its sensor and level when it begins no later than the quiet period after
the alert's last anomaly and ends no earlier than the quiet period before its first, and each
event is recorded once per alert id. Anomalies that arrive later for a resolved alert's run (a
backfill) extend it without a new event.

This module holds the definition as plain functions over frames.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tasks.analytics.readings import UTC_TIME
from tasks.anomalies.detectors_base import SEVERITIES, SEVERITY_RANK
from tasks.anomalies.incidents import QUIET_PERIOD, severity_rank

ALERT_ANOMALY_SCHEMA = {
    "sensor_id": pl.String,
    "station_id": pl.String,
    "method": pl.String,
    "observed_at": UTC_TIME,
    "score": pl.Float64,
    "severity": pl.String,
    "explanation": pl.String,
}
RUN_SCHEMA = {
    "level": pl.String,
    "sensor_id": pl.String,
    "station_id": pl.String,
    "first_observed_at": UTC_TIME,
    "last_observed_at": UTC_TIME,
    "severity": pl.String,
    "methods": pl.List(pl.String),
    "explanation": pl.String,
}
ALERT_SCHEMA = {
    "id": pl.Int64,
    "station_id": pl.String,
    "sensor_id": pl.String,
    "level": pl.String,
    "severity": pl.String,
    "status": pl.String,
    "first_observed_at": UTC_TIME,
    "last_observed_at": UTC_TIME,
    "methods": pl.List(pl.String),
    "explanation": pl.String,
    "resolved_at": UTC_TIME,
}
_LEVELS = pl.DataFrame({"level": SEVERITIES, "level_rank": [SEVERITY_RANK[s] for s in SEVERITIES]})
_RANKS = {rank: name for name, rank in SEVERITY_RANK.items()}


def alert_runs(anomalies: pl.DataFrame, quiet_period: timedelta = QUIET_PERIOD) -> pl.DataFrame:
    """The runs of `anomalies` per level and sensor (RUN_SCHEMA): for each level, the sensor's
    anomalies of at least that severity with gaps of at most `quiet_period`."""
    if anomalies.is_empty():
        return pl.DataFrame(schema=RUN_SCHEMA)
    per_level = (
        anomalies.with_columns(severity_rank().alias("rank"))
        .join(_LEVELS, how="cross")
        .filter(pl.col("rank") >= pl.col("level_rank"))
        .sort("level_rank", "sensor_id", "observed_at")
    )
    gap = pl.col("observed_at").diff().over("level", "sensor_id")
    worst_first = pl.col("explanation").sort_by(
        ["rank", "score", "observed_at"], descending=[True, True, False]
    )
    return (
        per_level.with_columns(
            (gap.is_null() | (gap > quiet_period)).cum_sum().over("level", "sensor_id").alias("run")
        )
        .group_by("level_rank", "level", "sensor_id", "run")
        .agg(
            pl.col("station_id").first(),
            pl.col("observed_at").min().alias("first_observed_at"),
            pl.col("observed_at").max().alias("last_observed_at"),
            pl.col("rank").max().replace_strict(_RANKS, return_dtype=pl.String).alias("severity"),
            pl.col("method").unique().sort().alias("methods"),
            worst_first.first().alias("explanation"),
        )
        .sort("level_rank", "sensor_id", "first_observed_at")
        .select(list(RUN_SCHEMA))
        .cast(RUN_SCHEMA)
    )


def match_runs(
    runs: pl.DataFrame, stored: pl.DataFrame, quiet_period: timedelta = QUIET_PERIOD
) -> pl.DataFrame:
    """`runs` with `alert_id`: the stored alert of the same sensor and level that each joins (the
    oldest when several do), or null for a new alert."""
    keyed = runs.with_row_index("run")
    candidates = keyed.join(
        stored.select(
            pl.col("id").alias("alert_id"),
            "sensor_id",
            "level",
            pl.col("first_observed_at").alias("alert_first"),
            pl.col("last_observed_at").alias("alert_last"),
        ),
        on=["sensor_id", "level"],
    ).filter(
        pl.col("first_observed_at") <= pl.col("alert_last") + quiet_period,
        pl.col("last_observed_at") >= pl.col("alert_first") - quiet_period,
    )
    chosen = candidates.group_by("run").agg(pl.col("alert_id").min())
    return keyed.join(chosen, on="run", how="left").sort("run").drop("run")


def merged_alerts(matched: pl.DataFrame, stored: pl.DataFrame, quiet_period: timedelta) -> pl.DataFrame:
    """The stored alerts that runs joined, as they become with those runs added (ALERT_SCHEMA);
    only those that change, so a rerun of the same day changes none."""
    worst_first = severity_rank().alias("rank")
    runs = (
        matched.filter(pl.col("alert_id").is_not_null())
        .with_columns(worst_first)
        .group_by("alert_id")
        .agg(
            pl.col("first_observed_at").min().alias("run_first"),
            pl.col("last_observed_at").max().alias("run_last"),
            pl.col("methods").list.explode(keep_nulls=False, empty_as_null=False).alias("run_methods"),
            pl.col("severity").sort_by("rank", descending=True).first().alias("run_severity"),
            pl.col("explanation").sort_by("rank", descending=True).first().alias("run_explanation"),
        )
    )
    worse = severity_rank("run_severity") > severity_rank()
    after = (
        stored.join(runs, left_on="id", right_on="alert_id")
        .with_columns(
            pl.min_horizontal("first_observed_at", "run_first").alias("first_observed_at"),
            pl.max_horizontal("last_observed_at", "run_last").alias("last_observed_at"),
            pl.concat_list("methods", "run_methods").list.unique().list.sort().alias("methods"),
            pl.when(worse).then("run_severity").otherwise("severity").alias("severity"),
            pl.when(worse).then("run_explanation").otherwise("explanation").alias("explanation"),
        )
        .with_columns(
            pl.when(pl.col("status") == "resolved")
            .then(pl.col("last_observed_at") + quiet_period)
            .otherwise(pl.col("resolved_at"))
            .alias("resolved_at")
        )
        .select(list(ALERT_SCHEMA))
    )
    compared = ["first_observed_at", "last_observed_at", "severity", "methods", "explanation"]
    before = stored.select("id", *(pl.col(c).alias(f"{c}_before") for c in compared))
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_before")) for c in compared)
    return after.join(before, on="id").filter(differs).select(list(ALERT_SCHEMA))


def event_data(municipality_id: str, row: dict, parameters: dict[str, str]) -> dict:
    """The webhook payload `data` of an alert event."""
    data = {
        "alert_id": row["id"],
        "municipality_id": municipality_id,
        "station_id": row["station_id"],
        "sensor_id": row["sensor_id"],
        "parameter": parameters.get(row["sensor_id"]),
        "level": row["level"],
        "severity": row["severity"],
        "status": row["status"],
        "first_observed_at": row["first_observed_at"].isoformat(),
        "last_observed_at": row["last_observed_at"].isoformat(),
        "methods": list(row["methods"]),
        "explanation": row["explanation"],
    }
    if row.get("resolved_at") is not None:
        data["resolved_at"] = row["resolved_at"].isoformat()
    return data
