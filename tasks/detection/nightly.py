"""The learned detector in the nightly anomaly stage: each active station model over the day.

A station's alarm (the model's probability through its post-processing, computed over the day
and the `LOOKBACK` before it, on minutes with a reading, as in training) becomes one anomaly per
alarming minute, `method` "learned", on the station's sensor that deviates most over that run of
alarm minutes (the largest |z| of the shipped rolling z-score, 60-minute window): one sensor per
run, so a run becomes one incident. The score is the probability. An alarm is at least HIGH, so
it opens an incident as a statistical alarm (|z| >= 3) does: CRITICAL from a probability of
`CRITICAL_PROBABILITY` (or the threshold, if higher), HIGH from the threshold, MEDIUM while the
alarm is only held on after the probability fell below it.

Without an active model this costs one small query; scikit-learn is loaded only when one exists.
A model that cannot be used (its bytes fail their SHA-256 check, its features no longer match,
it does not load) is skipped with an error in the log: the statistical detectors still run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import Connection, Row

from tasks.analytics.readings import read_sensor_readings
from tasks.anomalies.detectors import ANOMALY_SCHEMA, number_text
from tasks.detection.frames import floor_minute, station_readings, utc_times, wide_minutes
from tasks.detection.labelled import LabelledReadings
from tasks.detection.model_store import active_models, load_model
from tasks.settings import redact

METHOD = "learned"
LOOKBACK = timedelta(days=1)  # covers the features' longest window and the alarm's run and hold
CRITICAL_PROBABILITY = 0.9
DEVIATION_WINDOW_MINUTES = 60
LEARNED_SCHEMA = {**ANOMALY_SCHEMA, "station_id": pl.String}


class IncompatibleModel(ValueError):
    """A stored model whose features are not the ones computed today."""


def _log() -> logging.Logger | logging.LoggerAdapter:
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("waterline.detection")


def learned_anomalies(
    conn: Connection, municipality_id: str, sensors: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """The anomalies of [start, end) from every active learned model of the municipality, as
    `ANOMALY_SCHEMA` with `station_id`; empty without an active model."""
    models = active_models(conn, municipality_id)
    found = [pl.DataFrame(schema=LEARNED_SCHEMA)]
    for model in models:
        try:
            found.append(station_anomalies(conn, municipality_id, model, sensors, start, end))
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the statistical detectors
            _log().error(
                "learned model %s of station %s skipped: %s: %s",
                model.id,
                model.station_id,
                type(exc).__name__,
                redact(str(exc)),
            )
    return pl.concat(found).sort("sensor_id", "observed_at", "method")


def alarm_table(wide: pl.DataFrame, readings: LabelledReadings, model: Row, fitted: object) -> pl.DataFrame:
    """The minutes with a reading: `observed_at`, probability `p`, `alarm` and alarm `run`."""
    from tasks.detection.learned import PostProcess, alarms, feature_frame, predict

    features = feature_frame(readings)
    names = features.columns[1:]
    if names != list(model.features):
        raise IncompatibleModel(
            f"it was trained on {len(model.features)} features, today's readings give {len(names)} "
            "others: train it again"
        )
    keep = wide.select(pl.any_horizontal(pl.exclude("observed_at").is_not_null())).to_series()
    matrix = features.filter(keep).drop("observed_at").to_numpy()
    post = PostProcess(**model.post_process)
    alarm = alarms(pl.col("p"), post, "station")
    return (
        wide.filter(keep)
        .select("observed_at", pl.Series("p", predict(fitted, matrix)), pl.lit(0).alias("station"))
        .with_columns(alarm.alias("alarm"))
        .with_columns((pl.col("alarm") != pl.col("alarm").shift(1)).fill_null(True).cum_sum().alias("run"))
        .drop("station")
    )


def station_anomalies(
    conn: Connection, municipality_id: str, model: Row, sensors: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """One station's learned anomalies of [start, end)."""
    from tasks.detection.station_alarm import sensor_zscores

    model_sensors = pl.DataFrame(model.sensors, schema={"sensor_id": pl.String, "parameter": pl.String})
    ids = model_sensors["sensor_id"].to_list()
    own = sensors.filter(pl.col("sensor_id").is_in(ids))  # this municipality's sensors only
    if own.is_empty():
        return pl.DataFrame(schema=LEARNED_SCHEMA)
    first = floor_minute(start - LOOKBACK)
    raw = read_sensor_readings(conn, municipality_id, own["sensor_id"].to_list(), first, end)
    wide = wide_minutes(raw, ids, first, end)
    readings = station_readings(wide, model_sensors)
    table = alarm_table(wide, readings, model, load_model(model.object_url, model.sha256))
    day_start = floor_minute(start).replace(tzinfo=None)
    alarming = table.filter(pl.col("alarm"), pl.col("observed_at") >= day_start)
    if alarming.is_empty():
        return pl.DataFrame(schema=LEARNED_SCHEMA)

    deviation = sensor_zscores(readings, DEVIATION_WINDOW_MINUTES, "mean").select(
        "sensor_id", "observed_at", pl.col("score").alias("z")
    )
    values = (
        wide.join(alarming, on="observed_at", how="semi")
        .unpivot(index="observed_at", on=ids, variable_name="sensor_id", value_name="value")
        .drop_nulls("value")
        .join(alarming.select("observed_at", "p", "run"), on="observed_at")
        .join(deviation.collect(), on=["sensor_id", "observed_at"], how="left")
    )
    chosen = values.group_by("run").agg(
        pl.col("sensor_id")
        .sort_by(pl.col("z").fill_null(-1.0), "sensor_id", descending=[True, False])
        .first()
    )
    threshold = float(model.post_process["threshold"])
    critical = max(CRITICAL_PROBABILITY, threshold)
    severity = (
        pl.when(pl.col("p") >= critical)
        .then(pl.lit("CRITICAL"))
        .when(pl.col("p") >= threshold)
        .then(pl.lit("HIGH"))
        .otherwise(pl.lit("MEDIUM"))
    )
    explanation = pl.format(
        "learned model {}: event probability {} (alarm from {}); {} {} {} deviates most of the "
        "station's {} sensors ({})",
        pl.lit(model.id),
        pl.col("p").round(2).cast(pl.String),
        pl.lit(f"{threshold:g}"),
        "parameter",
        number_text(pl.col("value")),
        "unit",
        pl.lit(len(ids)),
        pl.when(pl.col("z").is_not_null())
        .then(pl.format("|z| {} against the previous hour", pl.col("z").round(1).cast(pl.String)))
        .otherwise(pl.lit("no z-score")),
    )
    return (
        values.join(chosen, on=["run", "sensor_id"], how="semi")
        .join(own.select("sensor_id", "station_id", "parameter", "unit"), on="sensor_id")
        .select(
            "sensor_id",
            utc_times(pl.col("observed_at")).alias("observed_at"),
            pl.lit(METHOD).alias("method"),
            "value",
            pl.col("p").alias("score"),
            severity.alias("severity"),
            pl.lit(f"model {model.id}").alias("window"),
            explanation.alias("explanation"),
            "station_id",
        )
        .cast(LEARNED_SCHEMA)
        .select(list(LEARNED_SCHEMA))
    )
