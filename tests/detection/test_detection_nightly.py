"""The learned detector in the nightly anomaly stage: an active station model adds "learned"
anomalies and incidents beside the statistical ones; without one it adds nothing; a model or label
of one municipality is never used for another; a model whose bytes changed is skipped."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from sqlalchemy import select

from tasks.analytics.readings import read_municipality_sensors
from tasks.anomalies import detect_anomalies
from tasks.database import begin
from tasks.detection.nightly import LEARNED_SCHEMA, learned_anomalies
from tasks.detection.training import train_detectors
from tasks.models import Anomaly, DetectorModel, Incident

from .conftest import START, seed_labelled_riverton, seed_station, station_signals

DAY = date(2026, 5, 6)  # the third day: not trained on
DAY_START, DAY_END = START + timedelta(days=2), START + timedelta(days=3)


def _learned(municipality_id: str) -> pl.DataFrame:
    with begin() as conn:
        sensors = read_municipality_sensors(conn, municipality_id)
        return learned_anomalies(conn, municipality_id, sensors, DAY_START, DAY_END)


def _stored(method: str) -> list:
    with begin() as conn:
        return list(
            conn.execute(
                select(Anomaly.municipality_id, Anomaly.station_id, Anomaly.sensor_id, Anomaly.observed_at,
                       Anomaly.score, Anomaly.severity, Anomaly.explanation, Anomaly.incident_id)
                .where(Anomaly.method == method)
                .order_by(Anomaly.observed_at)
            )
        )  # fmt: skip


def test_an_active_model_adds_learned_anomalies_and_incidents_at_night(database, tmp_path):
    station, events = seed_labelled_riverton(tmp_path)
    [trained] = train_detectors("riverton", to_day=date(2026, 5, 5))
    assert trained.status == "active", trained.reason

    result = detect_anomalies.fn("riverton", DAY)

    learned = _stored("learned")
    assert learned, result
    assert {(a.municipality_id, a.station_id) for a in learned} == {("riverton", station)}
    assert all(0 < a.score <= 1 and a.severity in ("MEDIUM", "HIGH", "CRITICAL") for a in learned)
    assert all(
        a.explanation.startswith(f"learned model {trained.model_id}: event probability") for a in learned
    )
    assert all(DAY_START <= a.observed_at < DAY_END for a in learned)
    day_events = events.filter(pl.col("starts_at") >= DAY_START)
    times = pl.DataFrame(
        {"observed_at": [a.observed_at for a in learned]}, schema={"observed_at": pl.Datetime("us", "UTC")}
    )
    hit = day_events.filter(
        pl.struct("starts_at", "ends_at").map_elements(
            lambda e: bool(
                times["observed_at"].is_between(e["starts_at"], e["ends_at"], closed="left").any()
            ),
            return_dtype=pl.Boolean,
        )
    )
    assert hit.height >= 2  # of the day's 3 events, none of them labelled
    inside = times.join_where(
        day_events, pl.col("observed_at") >= pl.col("starts_at"), pl.col("observed_at") < pl.col("ends_at")
    )
    assert inside.height >= 0.8 * times.height
    with begin() as conn:
        holding = conn.execute(
            select(Incident.kind, Incident.station_id).where(
                Incident.id.in_({a.incident_id for a in learned})
            )
        ).all()
    # learned alarms join their sensor's `anomaly` incidents, as every statistical finding does
    assert {a.incident_id is not None for a in learned} == {True}
    assert {(k.kind, k.station_id) for k in holding} == {("anomaly", station)}

    # the same day again: nothing new, and a model whose bytes changed is skipped with an error
    with begin() as conn:
        url = conn.execute(select(DetectorModel.object_url)).scalar_one()
    path = Path(url.removeprefix("file://"))
    path.write_bytes(path.read_bytes()[:-1])
    assert _learned("riverton").is_empty()


def test_a_changed_model_is_skipped_with_an_error_in_the_log(database, tmp_path, caplog):
    seed_labelled_riverton(tmp_path, days=2, labelled_days=1)
    with begin() as conn:
        conn.execute(
            DetectorModel.__table__.insert().values(
                municipality_id="riverton", station_id="riverton-plant", trained_at=START, data_start=START,
                data_end=DAY_START, sensors=[{"sensor_id": "riverton-plant-ph", "parameter": "ph"}],
                features=[], post_process={"threshold": 0.5, "min_run": 1, "hold": 0}, scores={},
                description={}, object_url=(tmp_path / "gone.joblib").as_uri(), sha256="0" * 64, size_bytes=0,
                training_seconds=0.0, active=True, reason="test",
            )
        )  # fmt: skip

    with caplog.at_level(logging.ERROR, logger="waterline.detection"):
        found = _learned("riverton")

    assert found.is_empty() and found.schema == pl.Schema(LEARNED_SCHEMA)
    assert "learned model 1 of station riverton-plant skipped" in caplog.text


def test_without_an_active_model_nothing_learned_is_found(database, tmp_path):
    seed_labelled_riverton(tmp_path)  # labels, but nothing trained

    found = _learned("riverton")
    detect_anomalies.fn("riverton", DAY)

    assert found.is_empty() and found.schema == pl.Schema(LEARNED_SCHEMA)
    assert _stored("learned") == []
    assert _stored("rolling_zscore")  # the statistical detectors ran alone


def test_a_model_and_labels_of_one_municipality_are_never_used_for_another(database, tmp_path):
    seed_labelled_riverton(tmp_path)
    readings, _ = station_signals("lindenfeld-plant", days=3)
    with begin() as conn:
        seed_station(conn, "lindenfeld", readings)
    [riverton] = train_detectors("riverton", to_day=date(2026, 5, 5))

    [lindenfeld] = train_detectors("lindenfeld", to_day=date(2026, 5, 5))
    found = _learned("lindenfeld")
    detect_anomalies.fn("lindenfeld", DAY)

    assert riverton.status == "active"
    assert (lindenfeld.status, lindenfeld.reason) == (
        "skipped",
        "no labelled event in the range: the statistical detectors work alone",
    )
    assert found.is_empty()
    assert _stored("learned") == []
    assert not _learned("riverton").is_empty()
