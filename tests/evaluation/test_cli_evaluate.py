"""`waterline evaluate` on a small labelled file: the table, the JSON and plain errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from flows.cli import app
from tasks.detection.station_alarm import DEFAULT_CONFIG

from .conftest import labelled_frame, write_labelled

runner = CliRunner()
FIGURES = {
    "precision",
    "recall",
    "f1",
    "f2",
    "events",
    "events_detected",
    "event_detection_share",
    "median_delay_minutes",
    "false_alarm_events",
    "days_covered",
    "false_alarm_events_per_day",
}


def test_evaluate_explains_itself():
    result = runner.invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0, result.output
    assert "--tune-on" in result.output and "--json" in result.output


def test_evaluate_prints_default_and_cross_validated_figures(labelled_file):
    result = runner.invoke(app, ["evaluate", str(labelled_file), "--synthetic-days", "3"])
    assert result.exit_code == 0, result.output
    for text in (
        "generated faults: 3 days",
        "contamination",
        "false alarms:",
        "default (untuned)",
        "cross-validated",
        "point F1",
        "events with an alarm",
        "median minutes to first",
        "false-alarm events per day",
        "configurations used",
        "2026-W12",
        "learned (cross-validated)",
    ):
        assert text in result.output
    # 15 days of minutes less a 3-hour outage; 15 labelled steps, all caught by the default
    assert "21,420 minutes with readings" in result.output
    assert "15 labelled events" in result.output and "15 / " in result.output


def test_evaluate_json_has_every_figure_and_the_configurations(tmp_path, labelled_file):
    dev = write_labelled(tmp_path / "dev.csv", labelled_frame(days=8, seed=9))
    arguments = ["evaluate", str(labelled_file), "--json", "--tune-on", str(dev), "--no-synthetic"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {
        "file",
        "rows",
        "rows_scored",
        "sensors",
        "default",
        "cross_validated",
        "tuned_on",
        "learned",
        "learned_tuned_on",
    }
    assert (report["rows"], report["rows_scored"]) == (21_600, 21_420)
    for run in ("default", "cross_validated", "tuned_on", "learned", "learned_tuned_on"):
        assert set(report[run]["scores"]) == FIGURES
    assert report["default"]["config"] == DEFAULT_CONFIG.as_dict()
    assert [w["week"] for w in report["cross_validated"]["weeks"]] == ["2026-W10", "2026-W11", "2026-W12"]
    assert report["default"]["scores"]["events_detected"] == 15
    assert report["tuned_on"]["file"] == str(dev)


def test_a_missing_file_is_one_sentence(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1
    assert result.output.startswith("error: no labelled file at") and "Traceback" not in result.output


def test_a_file_without_labels_is_one_sentence(tmp_path):
    path = tmp_path / "unlabelled.csv"
    labelled_frame(days=1).drop("EVENT").write_csv(path)
    result = runner.invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 1
    assert (
        result.output.startswith("error: unlabelled.csv has no EVENT column")
        and "Traceback" not in result.output
    )
