"""Point and event figures on hand-made vectors whose answers are worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from tasks.detection.metrics import Scores, f_beta, score_alarms


def vectors(alarm: str, label: str, step_minutes: int = 1) -> pl.DataFrame:
    start = datetime(2016, 2, 15)
    return pl.DataFrame(
        {
            "observed_at": [start + timedelta(minutes=step_minutes * i) for i in range(len(alarm))],
            "alarm": [c == "1" for c in alarm],
            "label": [c == "1" for c in label],
        }
    )


def test_point_and_event_figures_of_a_hand_made_case():
    #                      0123456789
    scores = score_alarms(vectors("1011000001", "0111001100"))
    # 2 alarmed labelled minutes of 4 alarms and 5 labels; events at 1-3 (first alarm at 2) and 6-7
    # (missed); alarm runs at 0 and 9 overlap no event, the run at 2-3 does.
    assert scores == Scores(
        precision=0.5,
        recall=0.4,
        f1=pytest.approx(4 / 9),
        f2=pytest.approx(5 * 0.5 * 0.4 / (4 * 0.5 + 0.4)),
        events=2,
        events_detected=1,
        event_detection_share=0.5,
        median_delay_minutes=1.0,
        false_alarm_events=2,
        days_covered=pytest.approx(10 / 1440),
        false_alarm_events_per_day=pytest.approx(2 / (10 / 1440)),
    )


def test_delays_and_days_are_in_minutes_whatever_the_step_between_rows():
    scores = score_alarms(vectors("0011000001", "0111001111", step_minutes=2))
    # events at rows 1-3 (first alarm at row 2: 2 minutes) and 6-9 (alarm at row 9: 6 minutes)
    assert scores.median_delay_minutes == 4.0
    assert scores.events_detected == 2 and scores.false_alarm_events == 0
    assert scores.days_covered == pytest.approx(20 / 1440)


def test_an_alarm_run_that_starts_before_an_event_is_not_a_false_alarm():
    scores = score_alarms(vectors("0111100000", "0001110000"))
    assert (scores.false_alarm_events, scores.events_detected, scores.median_delay_minutes) == (0, 1, 0.0)


def test_no_alarm_at_all_scores_zero_and_has_no_delay():
    scores = score_alarms(vectors("0000000000", "0011000110"))
    assert (scores.precision, scores.recall, scores.f1, scores.f2) == (0.0, 0.0, 0.0, 0.0)
    assert (scores.events, scores.events_detected, scores.event_detection_share) == (2, 0, 0.0)
    assert scores.median_delay_minutes is None and scores.false_alarm_events_per_day == 0.0


def test_rows_are_scored_in_time_order():
    frame = vectors("1011000001", "0111001100")
    assert score_alarms(frame.reverse()) == score_alarms(frame)


def test_f_beta_weighs_recall_beta_times_as_much_as_precision():
    assert f_beta(1.0, 0.5, 1.0) == pytest.approx(2 / 3)
    assert f_beta(1.0, 0.5, 2.0) == pytest.approx(5 * 0.5 / (4 + 0.5))
    assert f_beta(0.0, 0.0, 2.0) == 0.0
