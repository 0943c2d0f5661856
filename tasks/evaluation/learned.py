"""How well the learned detector (`tasks.detection.learned`) detects: week-wise cross-validated, or
trained on one labelled file and scored on another.

Week-wise cross-validation (`cross_validate_learned`): each ISO week is predicted by a detector
(model and post-processing) fitted on the other weeks only, its alarms computed within the week,
then every week's alarms are pooled and scored with `metrics.score_alarms`, as `tune.cross_validate`.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import polars as pl

from tasks.detection.labelled import LabelledReadings
from tasks.detection.learned import PostProcess, alarms, fit_detector, model_description, scored_table
from tasks.detection.metrics import Scores, score_alarms
from tasks.detection.station_alarm import alarm_expr


def cross_validate_learned(readings: LabelledReadings) -> dict:
    """Week-wise cross-validated figures of the learned detector: each week predicted by a detector
    fitted on the other weeks; the weeks' alarms pooled and scored."""
    table, features = scored_table(readings)
    labels = table["label"].to_numpy()
    week_of_row = table["week"].to_numpy()
    weeks = sorted(set(week_of_row))
    if len(weeks) < 2:
        raise ValueError("week-wise cross-validation needs readings in at least two ISO weeks")
    probability = np.full(len(labels), np.nan)
    chosen: dict[str, PostProcess] = {}
    per_week = []
    for week in weeks:
        inside = week_of_row == week
        detector = fit_detector(features[~inside], labels[~inside], week_of_row[~inside])
        probability[inside] = detector.probability(features[inside])
        chosen[week] = detector.post
        per_week.append(
            {
                "week": week,
                "post_process": asdict(detector.post),
                "described": detector.describe(),
                "f1_on_other_weeks": detector.f1_out_of_fold,
            }
        )
    pooled = table.with_columns(pl.Series("p", probability)).with_columns(
        pl.coalesce(
            pl.when(pl.col("week") == week).then(alarms(pl.col("p"), post, "week"))
            for week, post in chosen.items()
        ).alias("alarm")
    )
    for row in per_week:
        week_rows = pooled.filter(pl.col("week") == row["week"])
        row["f1_on_this_week"] = score_alarms(week_rows).f1
    return {
        "scores": score_alarms(pooled).as_dict(),
        "weeks": per_week,
        **model_description(),
        "probability": probability,
    }


def score_trained_on(train: LabelledReadings, test: LabelledReadings) -> tuple[PostProcess, Scores]:
    """A detector fitted on every scored row of `train`, scored on `test`'s scored rows."""
    if train.sensors != test.sensors:
        raise ValueError("the training and scored files need the same sensor columns")
    train_table, train_features = scored_table(train)
    detector = fit_detector(train_features, train_table["label"].to_numpy(), train_table["week"].to_numpy())
    table, features = scored_table(test)
    scored = table.with_columns(pl.Series("p", detector.probability(features))).with_columns(
        alarm_expr(pl.col("p"), detector.post.threshold, detector.post.min_run, detector.post.hold).alias(
            "alarm"
        )
    )
    return detector.post, score_alarms(scored)


def learned_report(
    readings: LabelledReadings,
    tune_on: LabelledReadings | None = None,
    tune_on_file: str | None = None,
    week_wise: bool = True,
) -> dict:
    """The learned detector's extra lines in `evaluate()`: week-wise cross-validated (with
    `week_wise`), and trained on another file."""
    report: dict = {}
    if week_wise:
        cv = cross_validate_learned(readings)
        cv.pop("probability")
        report["learned"] = cv
    if tune_on is not None:
        post, scores = score_trained_on(tune_on, readings)
        report["learned_tuned_on"] = {
            "file": tune_on_file,
            "post_process": asdict(post),
            "described": post.describe(),
            "scores": scores.as_dict(),
        }
    return report
