"""Incidents: a station's anomalies grouped until a quiet period passes, opened on consensus.

What an operator acts on is an event at a station, not a method's finding: one contamination moves
turbidity, chlorine, conductivity and pH at once and is one incident. A run of a station's findings
of at least the evidence severity (gaps of at most the quiet period) joins the station's open
incident when it comes within the quiet period of its last finding; otherwise it opens one only on
consensus (`incident_severity.consensus`: two method families or two parameters agreeing, an
extreme finding sustained, a limit breach or a learned alarm). A single short blip stays a recorded
anomaly in no incident. The incident's severity weighs its findings (`incident_severity.severity`,
`incidents.yaml`); its `sensor_id` is the sensor of its strongest finding.

Plain functions over frames; `tasks.anomalies.incident_store` writes what they decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from tasks.analytics.readings import UTC_TIME
from tasks.anomalies.detectors import SEVERITY_RANK
from tasks.anomalies.incident_severity import (
    consensus,
    evidence_frame,
    load_incident_config,
    rank_of,
    severity,
)

QUIET_PERIOD = timedelta(minutes=60)
# The severity at which one finding counts as a detection in evaluation and in the learned
# detector's station alarm (tasks.detection.station_alarm): |z| 3 on the default ladder.
OPEN_AT = "HIGH"
DEFAULT_KIND = "anomaly"
KIND_LABELS = {"limit_breach": "limit-breach", DEFAULT_KIND: "detected"}  # "3 detected anomalies at..."

INCIDENT_SCHEMA = {
    "id": pl.Int64,
    "station_id": pl.String,
    "sensor_id": pl.String,
    "kind": pl.String,
    "severity": pl.String,
    "status": pl.String,
    "summary": pl.String,
    "first_observed_at": UTC_TIME,
    "last_observed_at": UTC_TIME,
    "anomaly_count": pl.Int64,
}
ANOMALY_ROW_SCHEMA = {
    "id": pl.Int64,
    "sensor_id": pl.String,
    "station_id": pl.String,
    "method": pl.String,
    "observed_at": UTC_TIME,
    "value": pl.Float64,
    "score": pl.Float64,
    "severity": pl.String,
    "explanation": pl.String,
}
PLAN_SCHEMA = {
    "station_id": pl.String,
    "sensor_id": pl.String,
    "kind": pl.String,
    "incident_id": pl.Int64,
    "first_observed_at": UTC_TIME,
    "last_observed_at": UTC_TIME,
    "anomaly_count": pl.Int64,
    "severity": pl.String,
    "worst_explanation": pl.String,
    "parameters": pl.String,
    "reason": pl.String,
    "anomaly_ids": pl.List(pl.Int64),
}


def severity_rank(column: str = "severity") -> pl.Expr:
    return rank_of(column)


def plan_incidents(
    anomalies: pl.DataFrame,
    open_incidents: pl.DataFrame,
    quiet_period: timedelta = QUIET_PERIOD,
    sensors: pl.DataFrame | None = None,
    config: Mapping | None = None,
) -> pl.DataFrame:
    """Group new anomalies per station into runs of findings of at least the evidence severity with
    gaps of at most `quiet_period`, and say which open incident each run joins (null: a new one).

    A run joins an open incident of its station when it begins no later than the quiet period after
    the incident's last anomaly (and ends no earlier than the quiet period before its first). A run
    that joins none opens an incident only on consensus; the others are left out (their anomalies
    stay recorded, in no incident). `sensors` gives each sensor's `parameter` (for the weights),
    unless the anomalies carry it. One row per run (`PLAN_SCHEMA`): the lead `sensor_id`, `kind`,
    times, `anomaly_count`, `severity` of the run alone, `reason` (consensus and severity in words)
    and the `anomaly_ids` it holds.
    """
    config = load_incident_config() if config is None else config
    evidence = evidence_frame(
        anomalies.filter(rank_of() >= SEVERITY_RANK[config["evidence"]]), sensors, config
    )
    if evidence.is_empty():
        return pl.DataFrame(schema=PLAN_SCHEMA)
    gap = pl.col("observed_at").diff().over("station_id")
    evidence = evidence.sort("station_id", "observed_at", "sensor_id", "method").with_columns(
        (gap.is_null() | (gap > quiet_period)).cum_sum().alias("run")
    )
    runs = (
        evidence.group_by("run")
        .agg(
            pl.col("station_id").first(),
            pl.col("observed_at").min().alias("first_observed_at"),
            pl.col("observed_at").max().alias("last_observed_at"),
            pl.len().cast(pl.Int64).alias("anomaly_count"),
            pl.col("id").sort().alias("anomaly_ids"),
        )
        .join(severity(evidence, "run", config), on="run")
        .join(consensus(evidence, "run", config), on="run")
    )
    joins = (
        runs.join(
            open_incidents.select(
                pl.col("id").alias("incident_id"),
                "station_id",
                pl.col("first_observed_at").alias("open_first"),
                pl.col("last_observed_at").alias("open_last"),
            ),
            on="station_id",
            how="inner",
        )
        .filter(
            pl.col("first_observed_at") <= pl.col("open_last") + quiet_period,
            pl.col("last_observed_at") >= pl.col("open_first") - quiet_period,
        )
        .sort("open_last")
        .group_by("run")
        .agg(pl.col("incident_id").last())
    )
    return (
        runs.join(joins, on="run", how="left")
        .filter(pl.col("incident_id").is_not_null() | pl.col("has_consensus"))
        .with_columns(
            pl.when(pl.col("has_consensus"))
            .then(pl.format("{}; {}", "consensus", "severity_reason"))
            .otherwise(pl.format("joins an open incident; {}", "severity_reason"))
            .alias("reason")
        )
        .select(*PLAN_SCHEMA)
        .cast(PLAN_SCHEMA)
        .sort("station_id", "first_observed_at")
    )


def incident_figures(
    anomalies: pl.DataFrame, sensors: pl.DataFrame | None = None, config: Mapping | None = None
) -> pl.DataFrame:
    """Per `incident_id`, from every anomaly the incident holds: first and last observed_at, anomaly
    count, severity, kind, lead `sensor_id`, `parameters`, `worst_explanation` and `reason`."""
    config = load_incident_config() if config is None else config
    evidence = evidence_frame(anomalies, sensors, config)
    return (
        evidence.group_by("incident_id")
        .agg(
            pl.col("observed_at").min().alias("first_observed_at"),
            pl.col("observed_at").max().alias("last_observed_at"),
            pl.len().cast(pl.Int64).alias("anomaly_count"),
        )
        .join(severity(evidence, "incident_id", config), on="incident_id")
        .join(consensus(evidence, "incident_id", config), on="incident_id")
        .with_columns(pl.format("{}; {}", "consensus", "severity_reason").alias("reason"))
        .drop("severity_reason", "has_consensus", "consensus", "severity_points", "worst_severity", "methods")
    )


def with_summaries(incidents: pl.DataFrame, sensors: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Add the lead sensor's `parameter` and a one-line `summary` (times on the municipality's
    wall clock): how many anomalies, where, on which parameters, when, why this severity, the
    worst finding."""

    def local(column: str) -> pl.Expr:
        return pl.col(column).dt.convert_time_zone(tz).dt.strftime("%Y-%m-%d %H:%M %Z")

    return incidents.join(sensors.select("sensor_id", "parameter"), on="sensor_id", how="left").with_columns(
        pl.format(
            "{} {} {} at station {} on {} from {} to {}; {}: {}; worst ({} sensor {}): {}",
            "anomaly_count",
            pl.col("kind").replace(KIND_LABELS),
            pl.when(pl.col("anomaly_count") == 1).then(pl.lit("anomaly")).otherwise(pl.lit("anomalies")),
            "station_id",
            pl.col("parameters").fill_null("unknown"),
            local("first_observed_at"),
            local("last_observed_at"),
            "severity",
            "reason",
            pl.col("parameter").fill_null("unknown"),
            "sensor_id",
            "worst_explanation",
        ).alias("summary")
    )
