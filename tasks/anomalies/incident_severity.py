"""When a group of anomalies is an incident (consensus) and how severe it is, from `incidents.yaml`.

Plain functions over a frame of evidence: anomalies with their sensor's `station_id` and
`parameter`, grouped by a key column (a run of the station's findings, or an incident's
anomalies). Consensus asks that two method families or two parameters agree, that one finding is
extreme and sustained, that an operational limit is breached or that the station's learned model
alarms; severity adds points for the worst finding (weighted by its parameter's health
relevance), for every further parameter and method agreeing, and for how long the evidence lasts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from tasks.anomalies.detectors_base import SEVERITIES, SEVERITY_RANK

INCIDENTS_PATH = Path(__file__).with_name("incidents.yaml")
LIMIT_METHOD = "limit_breach"
LEARNED_METHOD = "learned"


@lru_cache(maxsize=4)
def load_incident_config(path: Path = INCIDENTS_PATH) -> dict:
    """Consensus rules, severity points and parameter weights, from `tasks/anomalies/incidents.yaml`."""
    return yaml.safe_load(path.read_text())


def rank_of(column: str = "severity") -> pl.Expr:
    return pl.col(column).replace_strict(SEVERITY_RANK, return_dtype=pl.Int8)


def name_of_rank(expr: pl.Expr) -> pl.Expr:
    return expr.replace_strict(dict(enumerate(SEVERITIES, start=1)), default=None, return_dtype=pl.String)


def evidence_frame(anomalies: pl.DataFrame, sensors: pl.DataFrame | None, config: Mapping) -> pl.DataFrame:
    """The anomalies with `parameter` (from `sensors` unless given), `rank`, `family`, `weight`,
    `restates` (a finding that restates others) and `points` (its magnitude: its own severity
    times its parameter's weight, plus the limit-breach points for a breach; -1 when it restates)."""
    if "parameter" not in anomalies.columns:
        if sensors is None:
            anomalies = anomalies.with_columns(pl.lit(None, dtype=pl.String).alias("parameter"))
        else:
            anomalies = anomalies.join(sensors.select("sensor_id", "parameter"), on="sensor_id", how="left")
    points = config["severity"]
    weight = pl.col("parameter").replace_strict(
        config["weights"], default=config["default_weight"], return_dtype=pl.Float64
    )
    magnitude = pl.col("severity").replace_strict(points["magnitude"], default=0.0, return_dtype=pl.Float64)
    limit = pl.when(pl.col("method") == LIMIT_METHOD).then(points["limit_breach"]).otherwise(0.0)
    return anomalies.with_columns(
        rank_of().alias("rank"),
        pl.col("method").replace(config["families"]).alias("family"),
        weight.alias("weight"),
        pl.col("method").is_in(config["restating"]).alias("restates"),
    ).with_columns(
        pl.when(pl.col("restates"))
        .then(-1.0)
        .otherwise((magnitude + limit) * pl.col("weight"))
        .alias("points")
    )


def _most_agreeing(
    evidence: pl.DataFrame, key: str, by: str, count: str, minutes: int, name: str
) -> pl.DataFrame:
    """Per `key`: the most distinct `count` values among rows of one `by` within `minutes`."""
    if evidence.is_empty():
        return pl.DataFrame(schema={key: evidence.schema[key], name: pl.UInt32})
    rolled = (
        evidence.sort(key, by, "observed_at")
        .rolling("observed_at", period=f"{minutes}m", group_by=[key, by])
        .agg(pl.col(count).n_unique().alias(name))
    )
    return rolled.group_by(key).agg(pl.col(name).max())


def consensus(evidence: pl.DataFrame, key: str, config: Mapping) -> pl.DataFrame:
    """Per `key` of `evidence_frame` rows: `has_consensus` and the `consensus` that holds, in words."""
    rules = config["consensus"]
    minutes = int(rules["window_minutes"])
    counted = evidence.filter(~pl.col("restates"))
    agreeing = counted.filter(pl.col("rank") >= SEVERITY_RANK[rules["agree_severity"]])
    keys = evidence.select(key).unique()
    families = _most_agreeing(agreeing, key, "sensor_id", "family", minutes, "families")
    parameters = _most_agreeing(
        agreeing.with_columns(pl.col("parameter").fill_null(pl.col("sensor_id"))),
        key,
        "station_id",
        "parameter",
        minutes,
        "parameters",
    )
    chain_gap = pl.col("observed_at").diff().over(key, "sensor_id")
    sustained = (
        counted.filter(pl.col("rank") >= SEVERITY_RANK[rules["sustained_severity"]])
        .sort(key, "sensor_id", "observed_at")
        .with_columns(
            (chain_gap.is_null() | (chain_gap > timedelta(minutes=rules["sustained_gap_minutes"])))
            .cum_sum()
            .alias("chain")
        )
        .group_by(key, "sensor_id", "chain")
        .agg((pl.col("observed_at").max() - pl.col("observed_at").min()).dt.total_minutes().alias("span"))
        .group_by(key)
        .agg(pl.col("span").max().alias("sustained"))
    )
    flags = counted.group_by(key).agg(
        ((pl.col("method") == LIMIT_METHOD) & (pl.col("rank") >= SEVERITY_RANK[rules["limit_severity"]]))
        .any()
        .alias("breach"),
        ((pl.col("method") == LEARNED_METHOD) & (pl.col("rank") >= SEVERITY_RANK[rules["learned_severity"]]))
        .any()
        .alias("learned"),
    )
    joined = (
        keys.join(families, on=key, how="left")
        .join(parameters, on=key, how="left")
        .join(sustained, on=key, how="left")
        .join(flags, on=key, how="left")
        .with_columns(pl.col("families", "parameters", "sustained").fill_null(0))
        .with_columns(pl.col("breach", "learned").fill_null(False))
    )
    agree = rules["agree_severity"]
    reasons = [
        (
            pl.col("families") >= rules["min_families"],
            pl.format(f"{{}} methods agree on one sensor at {agree} or more", "families"),
        ),
        (
            pl.col("parameters") >= rules["min_parameters"],
            pl.format(f"{{}} parameters agree at {agree} or more", "parameters"),
        ),
        (
            pl.col("sustained") >= rules["sustained_minutes"],
            pl.format(f"{rules['sustained_severity']} for {{}} min on one sensor", "sustained"),
        ),
        (pl.col("breach"), pl.lit("an operational limit is breached")),
        (pl.col("learned"), pl.lit("the learned model alarms")),
    ]
    return joined.select(
        key,
        pl.any_horizontal(*(held for held, _ in reasons)).alias("has_consensus"),
        pl.concat_str(
            [pl.when(held).then(words) for held, words in reasons], separator="; ", ignore_nulls=True
        ).alias("consensus"),
    )


def severity(evidence: pl.DataFrame, key: str, config: Mapping) -> pl.DataFrame:
    """Per `key` of `evidence_frame` rows: its `severity`, `severity_points`, the lead finding (the
    one of most points: `sensor_id`, `worst_severity`, `worst_explanation`), the `parameters` and
    `methods` with evidence, `kind` (`limit_breach` when an operational limit is breached, else
    `anomaly`) and `severity_reason`, the points in words."""
    points = config["severity"]
    counted = evidence.filter(~pl.col("restates"))
    lead_order = [pl.col("points"), pl.col("rank"), pl.col("score").abs(), pl.col("sensor_id")]
    per_parameter = counted.group_by(key, "parameter").agg(
        pl.col("weight").first(), pl.col("points").max().alias("best")
    )
    agreement = per_parameter.group_by(key).agg(
        (pl.col("weight").sum() - pl.col("weight").sort_by("best", "weight").last()).alias("further_weight"),
        pl.col("parameter")
        .sort_by("best", "parameter", descending=[True, False])
        .str.join(", ")
        .alias("parameters"),
    )
    spans = sorted((int(m), float(p)) for m, p in points["duration"].items())
    strong = pl.col("observed_at").filter(
        ~pl.col("restates"), pl.col("rank") >= SEVERITY_RANK[config["consensus"]["agree_severity"]]
    )
    duration_points = pl.lit(0.0)
    for minutes, value in spans:
        duration_points = pl.when(pl.col("minutes") >= minutes).then(value).otherwise(duration_points)
    grouped = (
        evidence.group_by(key)
        .agg(
            pl.col("sensor_id").sort_by(lead_order).last(),
            pl.col("severity").sort_by(lead_order).last().alias("worst_severity"),
            pl.col("explanation").sort_by(lead_order).last().alias("worst_explanation"),
            pl.col("points").max().clip(lower_bound=0.0).alias("magnitude"),
            pl.col("family").filter(~pl.col("restates")).n_unique().alias("families"),
            pl.col("method").unique().sort().str.join(", ").alias("methods"),
            (strong.max() - strong.min()).dt.total_minutes().fill_null(0).alias("minutes"),
            (pl.col("method") == LIMIT_METHOD).any().alias("breach"),
        )
        .join(agreement, on=key, how="left")
        .with_columns(pl.col("further_weight").fill_null(0.0), pl.col("parameters").fill_null("unknown"))
        .with_columns(
            (
                (points["per_parameter"] * pl.col("further_weight")).clip(upper_bound=points["parameter_cap"])
                + (points["per_family"] * (pl.col("families") - 1)).clip(0.0, points["family_cap"])
            ).alias("agreement"),
            duration_points.alias("duration"),
        )
        .with_columns(
            (pl.col("magnitude") + pl.col("agreement") + pl.col("duration")).alias("severity_points")
        )
    )
    level = pl.lit("LOW")
    for name in SEVERITIES[1:]:
        level = (
            pl.when(pl.col("severity_points") >= points["levels"][name]).then(pl.lit(name)).otherwise(level)
        )

    def number(column: str) -> pl.Expr:
        return pl.col(column).round(1).cast(pl.String)

    reason = pl.format(
        "{} points: worst finding {} ({}), {} for further parameters and methods, {} for {} min",
        number("severity_points"),
        number("magnitude"),
        "worst_severity",
        number("agreement"),
        number("duration"),
        pl.col("minutes"),
    )
    return grouped.select(
        key,
        "sensor_id",
        level.alias("severity"),
        "severity_points",
        "worst_severity",
        "worst_explanation",
        "parameters",
        "methods",
        pl.when("breach").then(pl.lit(LIMIT_METHOD)).otherwise(pl.lit("anomaly")).alias("kind"),
        reason.alias("severity_reason"),
    )


def evidence_order(evidence: pl.DataFrame) -> pl.DataFrame:
    """`evidence_frame` rows in the order that shows what set an incident's severity: first the
    strongest finding of each parameter (`sets_severity`), then the rest; each by points, then
    severity, then |score|, then the latest first."""
    keys = ["points", "rank", "strength", "observed_at"]
    ranked = evidence.with_columns(pl.col("score").abs().alias("strength")).sort(keys, descending=True)
    first = pl.int_range(pl.len()).over(pl.col("parameter"), pl.col("restates")) == 0
    return (
        ranked.with_columns((first & ~pl.col("restates")).alias("sets_severity"))
        .sort(["sets_severity", *keys], descending=True, maintain_order=True)
        .drop("strength")
    )
