"""`waterline detect train`: fit, score and store each station's learned detector.

Per station: its online sensors' readings become a minute frame, labelled from its labels (see
`labels`). Only labelled minutes are trained on and scored (events, and stretches someone called
normal: a labelled file's normal rows, incidents dismissed as false alarms); minutes no label covers
are left out, unless `unlabelled_as_normal` says to count them as normal. They still feed the
rolling features of the minutes after them. Without a labelled event in the range nothing is
trained and the statistical detectors work alone; with events but nothing normal the training is
refused, naming the option. Otherwise the learned detector is scored out of fold beside the
statistical one (`scoring`), fitted on every used minute, stored with what it used
(`LabelCoverage`), and made the station's active detector only if it beat the statistical one; a
model that did not is kept with the reason, and the station's earlier active model (if any) stays
active.

The range is given in the municipality's local days, or defaults to the station's readings, the
last `MAX_TRAINING_DAYS` of them. Reading and writing happen in two short transactions; the
fitting in between holds none.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection, func, select

from tasks.analytics.readings import lock_municipality, municipality_timezone, read_municipality_sensors
from tasks.calendar import local_day_bounds
from tasks.database import begin
from tasks.detection.frames import (
    MINUTE,
    floor_minute,
    read_station_minutes,
    station_readings,
    station_sensors,
)
from tasks.detection.labelled import LabelledReadings
from tasks.detection.labels import label_counts, labelled_minutes, read_labels, station_of
from tasks.detection.model_store import activate_model, insert_model, model_bytes, store_model
from tasks.detection.scoring import activation, covered, fold_groups, held_out_scores
from tasks.models import Reading, utcnow
from tasks.storage import object_store

MAX_TRAINING_DAYS = 60


UNLABELLED_OPTION = "--unlabelled-as-normal"


@dataclass(frozen=True)
class LabelCoverage:
    """Which minutes with readings a training used: labelled events, labelled normal, unlabelled."""

    first_labelled: datetime | None  # the first labelled minute with readings (UTC)
    last_labelled: datetime | None  # the end of the last one (exclusive)
    event_minutes: int
    normal_minutes: int  # labelled normal
    unlabelled_minutes: int
    unlabelled_as_normal: bool  # whether the unlabelled minutes were used, as normal

    def as_dict(self) -> dict:
        row = asdict(self)
        for name in ("first_labelled", "last_labelled"):
            row[name] = row[name].isoformat() if row[name] else None
        return row


def label_coverage(
    readings: LabelledReadings, labelled: pl.Series, unlabelled_as_normal: bool
) -> LabelCoverage:
    """Count a station's minutes with readings by label: events, labelled normal, unlabelled."""
    frame = readings.frame.select("observed_at", "label", labelled.alias("labelled")).filter(
        covered(readings)
    )
    inside = frame.filter("labelled")
    counts = frame.select(
        (pl.col("labelled") & pl.col("label")).sum().alias("events"),
        (pl.col("labelled") & ~pl.col("label")).sum().alias("normal"),
        (~pl.col("labelled")).sum().alias("unlabelled"),
    ).row(0)
    first = inside["observed_at"].min() if inside.height else None
    last = inside["observed_at"].max() if inside.height else None
    return LabelCoverage(
        first_labelled=first.replace(tzinfo=UTC) if first else None,
        last_labelled=(last + MINUTE).replace(tzinfo=UTC) if last else None,
        event_minutes=int(counts[0]),
        normal_minutes=int(counts[1]),
        unlabelled_minutes=int(counts[2]),
        unlabelled_as_normal=unlabelled_as_normal,
    )


def refusal(coverage: LabelCoverage) -> tuple[str, str] | None:
    """(status, reason) when the labels leave nothing to learn from; None when training can go on."""
    if coverage.event_minutes == 0:
        return "skipped", "no labelled event in the range: the statistical detectors work alone"
    if coverage.normal_minutes == 0 and not coverage.unlabelled_as_normal:
        return "refused", (
            f"only events are labelled in the range ({coverage.event_minutes:,} minutes) and no stretch is "
            f"labelled normal, so there is nothing normal to learn from: import a file with normal rows, "
            f"dismiss false alarms, or pass {UNLABELLED_OPTION} to count the "
            f"{coverage.unlabelled_minutes:,} unlabelled minutes as normal"
        )
    if coverage.normal_minutes + coverage.unlabelled_minutes == 0:
        return "skipped", "every minute with readings is labelled an event: nothing normal to learn from"
    return None


@dataclass
class StationTraining:
    """What one station's training came to."""

    station_id: str
    status: str  # active | inactive | skipped
    reason: str
    data_start: datetime | None = None
    data_end: datetime | None = None
    rows: int = 0
    event_minutes: int = 0
    model_id: int | None = None
    seconds: float = 0.0
    held_out: dict = field(default_factory=dict)
    coverage: LabelCoverage | None = None

    def as_dict(self) -> dict:
        row = asdict(self)
        for name in ("data_start", "data_end"):
            row[name] = row[name].isoformat() if row[name] else None
        row["coverage"] = self.coverage.as_dict() if self.coverage else None
        return row


def readings_range(conn: Connection, municipality_id: str, sensor_ids: list[str]) -> tuple | None:
    """(first, last) reading time of some sensors of one municipality; None without readings."""
    first, last = conn.execute(
        select(func.min(Reading.observed_at), func.max(Reading.observed_at)).where(
            Reading.municipality_id == municipality_id, Reading.sensor_id.in_(sensor_ids)
        )
    ).one()
    return None if first is None else (first, last)


def training_range(
    conn: Connection,
    municipality_id: str,
    sensor_ids: list[str],
    from_day: date | None,
    to_day: date | None,
) -> tuple[datetime, datetime] | None:
    """[start, end) to train on: the given local days, else the station's readings capped to the
    last `MAX_TRAINING_DAYS`; None when the station has no readings."""
    tz = municipality_timezone(conn, municipality_id)
    found = readings_range(conn, municipality_id, sensor_ids)
    if found is None:
        return None
    end = local_day_bounds(to_day, tz)[1] if to_day else floor_minute(found[1]) + timedelta(minutes=1)
    if from_day:
        start = local_day_bounds(from_day, tz)[0]
    else:
        start = max(floor_minute(found[0]), end - timedelta(days=MAX_TRAINING_DAYS))
    if start >= end:
        raise ValueError(f"the training range starts ({start:%Y-%m-%d}) after it ends ({end:%Y-%m-%d})")
    return start, end


def train_station(
    municipality_id: str,
    station_id: str,
    from_day: date | None = None,
    to_day: date | None = None,
    now: datetime | None = None,
    unlabelled_as_normal: bool = False,
) -> StationTraining:
    """Train, score, store and perhaps activate one station's learned detector on its labelled
    minutes (and its unlabelled ones as normal, when `unlabelled_as_normal`)."""
    import sklearn

    from tasks.detection.learned import fit_detector, model_description  # scikit-learn: only here

    with begin() as conn:
        station_of(conn, municipality_id, station_id)
        sensors = station_sensors(read_municipality_sensors(conn, municipality_id), station_id)
        if sensors.is_empty():
            return StationTraining(station_id, "skipped", "the station has no online sensor")
        span = training_range(conn, municipality_id, sensors["sensor_id"].to_list(), from_day, to_day)
        if span is None:
            return StationTraining(station_id, "skipped", "the station has no readings")
        start, end = span
        wide = read_station_minutes(conn, municipality_id, sensors, start, end)
        labels = read_labels(conn, municipality_id, station_id, start, end)
    readings = station_readings(wide, sensors, labels)
    labelled = labelled_minutes(wide["observed_at"], labels)
    coverage = label_coverage(readings, labelled, unlabelled_as_normal)
    result = StationTraining(station_id, "skipped", "", start, end, coverage=coverage)
    result.event_minutes = coverage.event_minutes
    refused = refusal(coverage)
    if refused:
        result.status, result.reason = refused
        return result

    started = time.perf_counter()
    held, table, features, names = held_out_scores(readings, None if unlabelled_as_normal else labelled)
    labels_array = table["label"].to_numpy()
    result.rows, result.held_out = held.rows, held.as_dict()
    detector = fit_detector(features, labels_array, fold_groups(table["observed_at"])[0])
    result.seconds = round(time.perf_counter() - started, 3)
    active, reason = activation(held)

    trained_at = now or utcnow()
    data = model_bytes(detector.model)
    stored = store_model(object_store(), municipality_id, station_id, trained_at, data)
    values = {
        "municipality_id": municipality_id,
        "station_id": station_id,
        "trained_at": trained_at,
        "data_start": start,
        "data_end": end,
        "sensors": sensors.select("sensor_id", "parameter").to_dicts(),
        "features": names,
        "post_process": asdict(detector.post),
        "scores": held.as_dict(),
        "description": {
            **model_description(),
            "sklearn_version": sklearn.__version__,
            "labels": label_counts(labels),
            "event_minutes": result.event_minutes,
            "minutes_used": coverage.as_dict(),
            "f1_out_of_fold_inner": detector.f1_out_of_fold,
        },
        "object_url": stored.url,
        "sha256": stored.sha256,
        "size_bytes": stored.size_bytes,
        "training_seconds": result.seconds,
        "active": False,
        "reason": reason,
    }
    with begin() as conn:
        lock_municipality(conn, municipality_id)
        result.model_id = insert_model(conn, values)
        if active:
            reason = activate_model(conn, municipality_id, station_id, result.model_id, reason)
    result.status = "active" if active else "inactive"
    result.reason = reason
    return result


def municipality_stations(municipality_id: str) -> list[str]:
    """The stations of a municipality that have an online sensor, sorted."""
    with begin() as conn:
        municipality_timezone(conn, municipality_id)  # ValueError for an unknown municipality
        sensors = read_municipality_sensors(conn, municipality_id)
    return sorted(sensors.filter(pl.col("kind") == "online")["station_id"].unique().to_list())


def train_detectors(
    municipality_id: str,
    station_id: str | None = None,
    from_day: date | None = None,
    to_day: date | None = None,
    unlabelled_as_normal: bool = False,
) -> list[StationTraining]:
    """Train one station's learned detector, or every station's of the municipality."""
    stations = [station_id] if station_id else municipality_stations(municipality_id)
    return [
        train_station(municipality_id, s, from_day, to_day, unlabelled_as_normal=unlabelled_as_normal)
        for s in stations
    ]
