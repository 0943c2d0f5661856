"""The combined detector: one station, one time bucket, several methods or parameters agreeing.

A real water-quality event rarely moves one number alone: a main break stirs turbidity and drops
chlorine and pressure together; an intrusion shifts conductivity, redox and chlorine. Single
sensor findings that agree at one station are raised into one anomaly with a higher severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from tasks.anomalies.detectors_base import ANOMALY_SCHEMA, SEVERITIES, SEVERITY_RANK, text, window_text

COMBINED_BUCKET_MINUTES = 15
MEMBER_SEVERITY = "MEDIUM"  # the least severity a finding needs to count towards agreement
MIN_METHODS = 2  # distinct method families at one station and bucket
MIN_PARAMETERS = 2  # or distinct parameters
RAISE_STEPS = 1  # severity steps above the worst agreeing finding
# Methods that measure the same thing count as one family: two z-scores agreeing is not news.
FAMILIES = {"rolling_zscore": "zscore", "robust_zscore": "zscore"}


def kth_first(column: str, k: int) -> pl.Expr:
    """The k-th earliest of a group's `column` values, null when the group has fewer than k."""
    return pl.when(pl.len() >= k).then(pl.col(column).bottom_k(k).max())


def combined(
    anomalies: pl.LazyFrame | pl.DataFrame,
    sensors: pl.DataFrame,
    bucket_minutes: int = COMBINED_BUCKET_MINUTES,
    member_severity: str = MEMBER_SEVERITY,
    min_methods: int = MIN_METHODS,
    min_parameters: int = MIN_PARAMETERS,
    raise_steps: int = RAISE_STEPS,
    families: Mapping[str, str] | None = None,
) -> pl.LazyFrame:
    """One `combined` anomaly per station and `bucket_minutes` clock bucket in which findings of at
    least `min_methods` method families or `min_parameters` parameters agree.

    It is observed at the first moment the agreement holds, on the sensor of the worst finding
    at that moment, and counts only findings up to then (causal). Its severity is the worst of
    those findings raised `raise_steps` (at most CRITICAL), its score the number of agreeing
    signals (method family and sensor), and its explanation names the methods and parameters.
    """
    families = FAMILIES if families is None else families
    key = ["station_id", "bucket"]
    rank = pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8)
    members = (
        anomalies.lazy()
        .select(*ANOMALY_SCHEMA)
        .filter(pl.col("method") != "combined", rank >= SEVERITY_RANK[member_severity])
        .join(sensors.lazy().select("sensor_id", "station_id", "parameter"), on="sensor_id", how="inner")
        .with_columns(
            pl.col("method").replace(dict(families)).alias("family"),
            pl.col("observed_at").dt.truncate(f"{bucket_minutes}m").alias("bucket"),
            rank.alias("rank"),
        )
    )

    def agreement(by: str, k: int) -> pl.LazyFrame:
        firsts = members.group_by(*key, by).agg(pl.col("observed_at").min().alias("first"))
        return firsts.group_by(key).agg(kth_first("first", k).alias(f"by_{by}"))

    agreed = (
        agreement("family", min_methods)
        .join(agreement("parameter", min_parameters), on=key, how="full", coalesce=True)
        .with_columns(pl.min_horizontal("by_family", "by_parameter").alias("agreed_at"))
        .drop_nulls("agreed_at")
        .select(*key, "agreed_at")
    )
    at_agreement = pl.col("observed_at") == pl.col("agreed_at")
    # ties broken by score, then sensor and method, so a rerun puts it on the same sensor
    worst_then = [at_agreement, pl.col("rank"), pl.col("score").abs(), pl.col("sensor_id"), pl.col("method")]
    grouped = (
        members.join(agreed, on=key, how="inner")
        .filter(pl.col("observed_at") <= pl.col("agreed_at"))
        .group_by(key)
        .agg(
            pl.col("agreed_at").first().alias("observed_at"),
            pl.col("sensor_id").sort_by(worst_then).last(),
            pl.col("value").sort_by(worst_then).last(),
            pl.col("rank").max().alias("worst"),
            pl.struct("family", "sensor_id").n_unique().cast(pl.Float64).alias("score"),
            pl.col("method").unique().sort().str.join(", ").alias("methods"),
            pl.col("parameter").unique().sort().str.join(", ").alias("parameters"),
        )
    )
    names = dict(enumerate(SEVERITIES, start=1))
    described = window_text(timedelta(minutes=bucket_minutes))
    raised = (pl.col("worst") + raise_steps).clip(upper_bound=len(SEVERITIES))
    explanation = text(
        "{} signals agree at station {} within {}: {} on {} (worst {}, raised to {})",
        pl.col("score").cast(pl.Int64),
        "station_id",
        pl.lit(described),
        "methods",
        "parameters",
        pl.col("worst").replace_strict(names, return_dtype=pl.String),
        raised.replace_strict(names, return_dtype=pl.String),
    )
    return grouped.select(
        "sensor_id",
        "observed_at",
        pl.lit("combined").alias("method"),
        "value",
        "score",
        raised.replace_strict(names, return_dtype=pl.String).alias("severity"),
        pl.lit(f"{described} at one station").alias("window"),
        explanation.alias("explanation"),
    ).cast(ANOMALY_SCHEMA)
