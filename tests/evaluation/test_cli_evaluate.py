"""`waterline evaluate` on a small labelled file: the forward table beside both baselines, the JSON and
plain errors."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
from typer.testing import CliRunner

from flows.cli import app

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
DETECTORS = {"zscore_baseline", "hgb_baseline", "statistical_default", "statistical_tuned", "learned"}
FAST = ["--no-synthetic", "--no-learned"]


def test_evaluate_explains_itself():
    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in (
        "--split-at",
        "--gap",
        "--folds",
        "--cross-validate",
        "--mapping",
        "--intervals",
        "--json",
    ):
        assert option in result.output


def test_evaluate_prints_the_forward_split_beside_both_baselines(labelled_file):
    arguments = ["evaluate", str(labelled_file), "--split-at", "2026-03-17", *FAST]
    result = runner.invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # table titles wrap
    for text in (
        "forward: fit on rows before 2026-03-16 00:00",
        "gap 1 day(s), scored from 2026-03-17 00:00",
        "baseline z-score",
        "baseline HGB",
        "stat. default",
        "stat. tuned on fit",
        "point F1 (P/R)",
        "forward split: stat. default:",
        "forward-chaining folds",
        "F1 per fold",
    ):
        assert text in output, text
    # the days from 2026-03-17 to the end of the 15-day file: 5 labelled steps
    assert "5 events)" in output and "of 5" in output
    assert "week-wise" not in output  # only with --cross-validate, never the headline
    assert "could not run" not in output and "nightly detectors:" not in output  # 1-minute: all run


def test_week_wise_cross_validation_is_an_extra_line_only_when_asked(labelled_file):
    arguments = ["evaluate", str(labelled_file), "--cross-validate", "--folds", "0", *FAST]
    result = runner.invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.index("forward: fit on") < result.output.index("week-wise interleaved")
    assert "2026-W12" in result.output


def test_evaluate_json_has_every_figure_of_every_detector_and_split(tmp_path, labelled_file):
    arguments = ["evaluate", str(labelled_file), "--json", "--no-synthetic", "--folds", "2"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"forward", "folds", "notes", "timezone", "cadence_minutes"} <= set(report)
    assert (report["rows"], report["rows_scored"]) == (21_600, 21_420)
    assert set(report["forward"]["scores"]) == DETECTORS
    for scores in report["forward"]["scores"].values():
        assert set(scores) == FIGURES
    assert set(report["folds"]["pooled"]) == DETECTORS and len(report["folds"]["splits"]) == 2
    for split in report["folds"]["splits"]:
        assert set(split["scores"]) == DETECTORS
    verdict = report["forward"]["verdict"]
    assert set(verdict) == {"statistical_default", "statistical_tuned", "learned"}
    assert report["cadence_minutes"] == 1.0


def test_a_gap_under_a_day_is_refused_in_a_sentence(labelled_file):
    result = runner.invoke(app, ["evaluate", str(labelled_file), "--gap", "12h", *FAST])
    assert result.exit_code == 1
    assert result.output.startswith("error: the gap between the fit and the scored part must be at least")


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


def test_a_fit_part_without_an_event_is_a_sentence(tmp_path):
    frame = labelled_frame(days=6)
    quiet_start = frame.with_columns(
        pl.when(pl.col("Time") < pl.col("Time").min() + timedelta(days=3))
        .then(False)
        .otherwise(pl.col("EVENT"))
        .alias("EVENT")
    )
    path = write_labelled(tmp_path / "late.csv", quiet_start)
    result = runner.invoke(app, ["evaluate", str(path), "--split-at", "2026-03-11", *FAST])
    assert result.exit_code == 1
    assert result.output.startswith("error: the fit part holds no labelled event: choose a later --split-at")


def test_the_generated_faults_run_at_the_cadence_asked_and_their_incidents_are_printed(labelled_file):
    arguments = ["evaluate", str(labelled_file), "--split-at", "2026-03-17", "--no-learned", "--folds", "0"]
    arguments += ["--synthetic-days", "3", "--synthetic-interval", "900"]
    result = runner.invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "readings every 15 min, shipped configuration" in output
    assert "incidents on the generated faults" in output
    assert "contamination" in output and "stuck" in output
