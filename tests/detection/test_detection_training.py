"""`waterline detect train`: a station's learned detector is scored out of fold beside the
statistical one, stored with its data range, features and scores, its bytes checked on load, and
made active only when it beats the statistical detector."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.cli import app
from tasks.database import begin
from tasks.detection.features import FEATURES
from tasks.detection.labelled import LabelledReadings
from tasks.detection.labels import import_labels
from tasks.detection.metrics import Scores, score_alarms
from tasks.detection.model_store import ModelIntegrityError, load_model, model_bytes, store_model
from tasks.detection.scoring import HeldOut, activation, after_left_out, used
from tasks.detection.training import train_detectors
from tasks.models import DetectorModel
from tasks.settings import reset_settings
from tasks.storage import ObjectStore, object_store

from .conftest import START, labelled_csv, seed_labelled_riverton, seed_station, station_signals

runner = CliRunner()


def _models() -> list:
    with begin() as conn:
        return list(conn.execute(select(*DetectorModel.__table__.columns).order_by(DetectorModel.id)))


def _scores(f1: float, events: int = 5) -> Scores:
    return Scores(f1, f1, f1, f1, events, events, 1.0, 0.0, 0, 7.0, 0.0)


@pytest.mark.parametrize(
    ("learned", "statistical", "events", "active", "reason"),
    [
        (
            0.8,
            0.5,
            5,
            True,
            "learned F1 0.800 beats statistical F1 0.500 on the same held-out minutes (2 weeks",
        ),
        (0.5, 0.5, 5, False, "learned F1 0.500 does not beat statistical F1 0.500"),
        (0.4, 0.6, 5, False, "learned F1 0.400 does not beat statistical F1 0.600"),
        (0.9, 0.1, 1, False, "only 1 labelled event(s) among the scored minutes; 2 are needed"),
    ],
)
def test_the_learned_detector_is_activated_only_when_it_beats_the_statistical_one(
    learned, statistical, events, active, reason
):
    held = HeldOut("week", 2, 20160, _scores(learned, events), _scores(statistical, events))
    decided, why = activation(held)
    assert decided is active
    assert why.startswith(reason)


def test_a_station_trained_on_its_labels_is_stored_scored_and_activated(database, tmp_path):
    readings, events = station_signals("riverton-plant", days=3)
    path = labelled_csv(tmp_path / "plant.csv", readings, events)
    with begin() as conn:
        station = seed_station(conn, "riverton", readings)
    assert (
        runner.invoke(app, ["detect", "import-labels", str(path), "-m", "riverton", "-s", station]).exit_code
        == 0
    )

    trained = runner.invoke(app, ["detect", "train", "-m", "riverton", "--to", "2026-05-05"])
    listed = runner.invoke(app, ["detect", "models", "-m", "riverton"])

    assert trained.exit_code == 0, trained.output
    assert "riverton-plant: active: learned F1" in trained.output
    assert "beats statistical F1" in trained.output
    assert listed.exit_code == 0, listed.output
    assert "1 learned model(s)" in listed.output
    [model] = _models()
    assert (model.municipality_id, model.station_id, model.active) == ("riverton", station, True)
    assert (model.data_start, model.data_end) == (START, START + timedelta(days=2))
    assert [s["sensor_id"] for s in model.sensors] == sorted(f"{station}-{p}" for p in ("conductivity",
        "free_chlorine", "ph", "turbidity"))  # fmt: skip
    assert model.features == list(FEATURES)  # station-wide features: the same whatever the sensors
    assert set(model.post_process) == {"threshold", "min_run", "hold"}
    held = model.scores
    assert (held["scheme"], held["folds"], held["rows"]) == ("block", 3, 2 * 1440)
    assert held["learned"]["events"] == held["statistical"]["events"] == 6
    assert held["learned"]["f1"] > held["statistical"]["f1"]
    assert model.description["labels"] == {"file_events": 6, "file_normal": 7}
    stored = Path(model.object_url.removeprefix("file://"))
    assert stored.is_relative_to(object_store().local_path("detector-models/riverton/riverton-plant"))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == model.sha256
    assert stored.stat().st_size == model.size_bytes
    fitted = load_model(model.object_url, model.sha256)
    assert fitted.predict_proba([[0.0] * len(model.features)]).shape == (1, 2)


def test_a_model_that_does_not_beat_the_statistical_one_is_kept_inactive_beside_the_active_one(
    database, tmp_path
):
    station, events = seed_labelled_riverton(tmp_path)
    [first] = train_detectors("riverton", to_day=date(2026, 5, 5))
    one_event = events.filter(pl.col("starts_at") >= START + timedelta(days=2)).head(1)
    readings, _ = station_signals("riverton-plant", days=3)
    day3 = labelled_csv(
        tmp_path / "day3.csv", readings.filter(pl.col("observed_at") >= START + timedelta(days=2)), one_event
    )
    with begin() as conn:
        import_labels(conn, "riverton", station, day3)

    [second] = train_detectors("riverton", station, from_day=date(2026, 5, 6), to_day=date(2026, 5, 6))

    assert (first.status, second.status) == ("active", "inactive")
    assert second.reason.startswith("only 1 labelled event(s) among the scored minutes")
    models = _models()
    assert [(m.id, m.active) for m in models] == [(first.model_id, True), (second.model_id, False)]
    assert models[1].reason == second.reason


def test_without_labelled_events_nothing_is_trained_and_the_statistical_detectors_work_alone(database):
    readings, _ = station_signals("riverton-plant", days=1)
    with begin() as conn:
        seed_station(conn, "riverton", readings)

    result = runner.invoke(app, ["detect", "train", "-m", "riverton", "--json"])

    assert result.exit_code == 0, result.output
    assert '"reason": "no labelled event in the range: the statistical detectors work alone"' in result.output
    assert '"status": "skipped"' in result.output
    assert _models() == []


def test_a_model_whose_bytes_changed_is_refused_before_unpickling(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    at = START + timedelta(days=3)
    stored = store_model(store, "riverton", "riverton-plant", at, model_bytes({"trees": [1, 2, 3]}))
    assert stored.url.endswith(
        f"detector-models/riverton/riverton-plant/20260507T000000000000Z-{stored.sha256[:12]}.joblib"
    )
    assert load_model(stored.url, stored.sha256) == {"trees": [1, 2, 3]}

    path = Path(stored.url.removeprefix("file://"))
    path.write_bytes(path.read_bytes() + b"\x00")

    with pytest.raises(ModelIntegrityError, match="not the recorded"):
        load_model(stored.url, stored.sha256)


def test_models_are_stored_and_checked_on_an_s3_server(home, monkeypatch, s3_server):
    monkeypatch.setenv("WATERLINE_OBJECT_STORE_URL", f"s3://waterline/{uuid.uuid4().hex[:8]}/objects")
    monkeypatch.setenv("WATERLINE_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("WATERLINE_S3_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("WATERLINE_S3_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("WATERLINE_S3_REGION", "us-east-1")
    reset_settings()

    stored = store_model(object_store(), "riverton", "riverton-plant", START, model_bytes([0.5, 0.25]))

    assert stored.url.startswith("s3://waterline/")
    assert load_model(stored.url, stored.sha256) == [0.5, 0.25]
    with pytest.raises(ModelIntegrityError):
        load_model(stored.url, "0" * 64)


def test_incidents_operators_confirmed_or_dismissed_are_the_next_trainings_labels(database):
    from sqlalchemy import insert

    from tasks.anomalies.incident_actions import acknowledge, resolve
    from tasks.models import Incident

    readings, events = station_signals("riverton-plant", days=2)
    with begin() as conn:
        station = seed_station(conn, "riverton", readings)

        def incident(first, last) -> int:  # noqa: ANN001
            return conn.execute(
                insert(Incident).values(
                    municipality_id="riverton", station_id=station, sensor_id=f"{station}-turbidity",
                    kind="rolling_zscore", severity="HIGH", status="open", summary="turbidity jump",
                    first_observed_at=first, last_observed_at=last, anomaly_count=3,
                )
            ).inserted_primary_key[0]  # fmt: skip

        for n, (start, end) in enumerate(events.iter_rows()):
            found = incident(start, end - timedelta(minutes=1))  # the last anomaly in the event's last minute
            if n % 2:
                acknowledge(conn, found, "ops:ana")
            else:
                resolve(conn, found, "ops:ana")  # resolved, not dismissed: confirmed
        false_alarm = incident(START + timedelta(minutes=30), START + timedelta(minutes=50))
        resolve(conn, false_alarm, "ops:ben", dismiss=True, note="a valve test")

    [trained] = train_detectors("riverton")

    event_minutes = int(
        events.select((pl.col("ends_at") - pl.col("starts_at")).dt.total_minutes().sum()).item()
    )
    assert trained.model_id is not None, trained.reason
    assert trained.event_minutes == event_minutes
    [model] = _models()
    assert model.description["labels"] == {"incident_events": events.height, "incident_normal": 1}
    assert model.description["event_minutes"] == event_minutes
    # only the incidents' minutes are used; the unlabelled time between them keeps them separate events
    assert model.scores["rows"] == event_minutes + 21  # the false alarm: 30th to 50th minute, included
    assert model.scores["learned"]["events"] == model.scores["statistical"]["events"] == events.height


def test_labelled_stretches_stay_apart_where_unlabelled_time_was_left_out():
    times = pl.datetime_range(START, START + timedelta(minutes=9), "1m", eager=True).dt.replace_time_zone(
        None
    )
    frame = pl.DataFrame({"observed_at": times, "s": [1.0] * 4 + [None] + [1.0] * 5, "label": [False] * 10})
    readings = LabelledReadings(frame, {"s": "ph"})
    use = pl.Series([True, True, False, False, True, True, True, False, True, True])

    # rows 2-3 have readings and are left out, row 7 too; row 4 has none: it breaks nothing
    assert after_left_out(readings, use).to_list() == [False] * 5 + [True, False, False, True, False]
    assert after_left_out(readings, None).to_list() == [False] * 10  # nothing left out: nothing breaks
    # rows 0-1 and 5-6 are labelled events: two events, not one run across the rows left out
    table = pl.DataFrame(
        {
            "observed_at": times,
            "label": [True, True, False, False, False, True, True, False, False, False],
            "alarm": [False] * 10,
            "break": after_left_out(readings, use),
        }
    ).filter(used(readings, use))
    assert score_alarms(table, breaks="break").events == 2
    assert score_alarms(table).events == 1  # what it was before the break


@pytest.mark.parametrize("command", [["import-labels"], ["train"], ["models"]], ids=" ".join)
def test_every_detect_command_explains_itself(command):
    result = runner.invoke(app, ["detect", *command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and f"detect {command[0]}" in result.output


def test_without_the_option_only_labelled_minutes_are_trained_on_and_the_range_is_said(database, tmp_path):
    station, events = seed_labelled_riverton(tmp_path, days=3, labelled_days=2)  # day 3 unlabelled
    labelled_events = events.filter(pl.col("starts_at") < START + timedelta(days=2))
    event_minutes = int(
        labelled_events.select((pl.col("ends_at") - pl.col("starts_at")).dt.total_minutes().sum()).item()
    )

    result = runner.invoke(app, ["detect", "train", "-m", "riverton"])  # the range: all three days

    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (
        f"labelled 2026-05-04 00:00..2026-05-06 00:00 UTC: {event_minutes:,} event and "
        f"{2 * 1440 - event_minutes:,} normal minutes, 1,440 unlabelled minutes left out; 2,880 minutes used"
    ) in said
    [model] = _models()
    assert (model.data_start, model.data_end) == (START, START + timedelta(days=3))
    assert model.scores["rows"] == 2 * 1440
    assert model.description["minutes_used"] == {
        "first_labelled": START.isoformat(),
        "last_labelled": (START + timedelta(days=2)).isoformat(),
        "event_minutes": event_minutes,
        "normal_minutes": 2 * 1440 - event_minutes,
        "unlabelled_minutes": 1440,
        "unlabelled_as_normal": False,
    }
    listed = runner.invoke(app, ["detect", "models", "-m", "riverton"])
    assert "1,440 unlabelled minutes left out" in " ".join(listed.output.split())

    [with_option] = train_detectors("riverton", unlabelled_as_normal=True)

    assert with_option.rows == 3 * 1440
    assert with_option.coverage.unlabelled_as_normal is True
    assert _models()[1].description["minutes_used"]["unlabelled_as_normal"] is True


def test_with_only_events_labelled_training_is_refused_unless_unlabelled_time_is_called_normal(
    database, tmp_path
):
    readings, events = station_signals("riverton-plant", days=2)
    only_events = pl.concat(
        readings.filter(pl.col("observed_at").is_between(start, end, closed="left"))
        for start, end in events.iter_rows()
    )
    path = labelled_csv(tmp_path / "events-only.csv", only_events, events)
    with begin() as conn:
        station = seed_station(conn, "riverton", readings)
        import_labels(conn, "riverton", station, path)
    event_minutes = only_events["observed_at"].n_unique()

    refused = runner.invoke(app, ["detect", "train", "-m", "riverton"])

    assert refused.exit_code == 1
    assert (
        f"riverton-plant: refused: only events are labelled in the range ({event_minutes:,} minutes) and no "
        "stretch is labelled normal, so there is nothing normal to learn from: import a file with normal "
        "rows, dismiss false alarms, or pass --unlabelled-as-normal to count the "
        f"{2 * 1440 - event_minutes:,} unlabelled minutes as normal"
    ) in " ".join(refused.output.split())
    assert _models() == []

    allowed = runner.invoke(app, ["detect", "train", "-m", "riverton", "--unlabelled-as-normal"])

    assert allowed.exit_code == 0, allowed.output
    assert f"{2 * 1440 - event_minutes:,} unlabelled minutes used as normal" in " ".join(
        allowed.output.split()
    )
    [model] = _models()
    assert model.scores["rows"] == 2 * 1440
