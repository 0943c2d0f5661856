"""Score a station's learned detector against the statistical one on the same held-out minutes.

Out of fold: the station's time is cut into ISO weeks when it spans at least two, else into
`BLOCKS` consecutive blocks; each fold is predicted by a detector (model and post-processing)
fitted on the other folds only, its alarm computed within the fold, and the folds' alarms pooled.
A fold whose other folds hold no event (or nothing else) is predicted by no model: it never
alarms. The statistical detector is the one the pipeline ships (`DEFAULT_CONFIG`: the rolling
z-score of every quality sensor); it learns nothing, so its alarm on the same minutes is held-out.
Both are scored on the minutes with at least one reading (`scoring.score_alarms`) that the training
uses (`use`: the labelled minutes, or every minute when unlabelled time counts as normal); the
minutes left out still feed the rolling features and the statistical detector's windows.

The learned detector is activated only when its point F1 is higher than the statistical one's,
with at least `MIN_EVENTS` labelled events among the scored minutes to tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tasks.detection.labelled import LabelledReadings
from tasks.detection.learned import PostProcess, alarms, feature_frame, fit_detector, predict
from tasks.detection.metrics import Scores, score_alarms
from tasks.detection.station_alarm import DEFAULT_CONFIG, station_alarm

BLOCKS = 3
MIN_EVENTS = 2


@dataclass(frozen=True)
class HeldOut:
    """Learned and statistical figures on the same held-out minutes, and how they were held out."""

    scheme: str  # "week" or "block"
    folds: int
    rows: int
    learned: Scores
    statistical: Scores

    def as_dict(self) -> dict:
        return {
            "scheme": self.scheme,
            "folds": self.folds,
            "rows": self.rows,
            "learned": self.learned.as_dict(),
            "statistical": self.statistical.as_dict(),
            "statistical_config": DEFAULT_CONFIG.as_dict(),
        }


def covered(readings: LabelledReadings) -> pl.Series:
    """Minutes with at least one reading: the ones scored, trained on and predicted."""
    return readings.frame.select(pl.any_horizontal(pl.col(readings.sensors).is_not_null())).to_series()


def used(readings: LabelledReadings, use: pl.Series | None = None) -> pl.Series:
    """Minutes with at least one reading that are in `use` (every minute without it)."""
    keep = covered(readings)
    return keep if use is None else keep & use


def after_left_out(readings: LabelledReadings, use: pl.Series | None = None) -> pl.Series:
    """Per minute, whether minutes with readings that are not used lie between it and the used
    minute before it (`break`): an event or alarm never runs across unlabelled time left out."""
    if use is None:
        return pl.Series("break", [False] * readings.frame.height, dtype=pl.Boolean)
    kept = pl.col("kept")
    flags = (
        pl.DataFrame({"covered": covered(readings), "kept": used(readings, use)})
        .with_columns(pl.when(pl.col("covered")).then(kept).forward_fill().shift(1).alias("before"))
        .select((kept & pl.col("before").not_()).fill_null(False).alias("break"))
    )
    return flags.to_series()


def training_matrix(
    readings: LabelledReadings, use: pl.Series | None = None
) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    """The used minutes (`observed_at`, `label`, `break`: see `after_left_out`), their feature
    matrix and the feature names; features are computed on every minute, so a used minute's past
    is whole."""
    features = feature_frame(readings)
    keep = used(readings, use)
    table = readings.frame.select("observed_at", "label", after_left_out(readings, use)).filter(keep)
    chosen = features.filter(keep).drop("observed_at")
    return table, chosen.to_numpy().astype(np.float64), chosen.columns


def fold_groups(times: pl.Series, blocks: int = BLOCKS) -> tuple[np.ndarray, str]:
    """A fold name per row (rows in time order): its ISO week when the rows span two weeks or more,
    else one of `blocks` consecutive blocks."""
    weeks = times.dt.strftime("%G-W%V")
    if weeks.n_unique() >= 2:
        return weeks.to_numpy(), "week"
    sizes = [len(part) for part in np.array_split(np.arange(times.len()), blocks)]
    return np.repeat([f"block-{i + 1}" for i in range(blocks)], sizes), "block"


def out_of_fold_alarm(table: pl.DataFrame, features: np.ndarray, groups: np.ndarray) -> pl.Series:
    """Each fold's alarm from a detector fitted on the other folds, computed within each unbroken
    stretch of the fold (`break`)."""
    labels = table["label"].to_numpy()
    probability = np.zeros(len(labels))
    chosen: dict[str, PostProcess | None] = {}
    for group in dict.fromkeys(groups.tolist()):
        inside = groups == group
        others = labels[~inside]
        if not others.any() or others.all():
            chosen[group] = None
            continue
        detector = fit_detector(features[~inside], others, groups[~inside])
        probability[inside] = predict(detector.model, features[inside])
        chosen[group] = detector.post
    frame = table.select(
        pl.Series("p", probability), pl.Series("group", groups), pl.col("break").cum_sum().alias("stretch")
    ).with_columns(pl.format("{}/{}", "group", "stretch").alias("stretch"))  # a fold's unbroken stretch
    alarm = pl.coalesce(
        *(
            pl.when(pl.col("group") == group).then(
                alarms(pl.col("p"), post, "stretch") if post is not None else pl.lit(False)
            )
            for group, post in chosen.items()
        ),
        pl.lit(False),
    )
    return frame.select(alarm.alias("alarm")).to_series()


def held_out_scores(
    readings: LabelledReadings, use: pl.Series | None = None
) -> tuple[HeldOut, pl.DataFrame, np.ndarray, list[str]]:
    """Learned (out of fold) and statistical figures on the used minutes (see `used`); with the
    training table, matrix and feature names, so the final model is fitted on the same rows."""
    table, features, names = training_matrix(readings, use)
    groups, scheme = fold_groups(table["observed_at"])
    learned = score_alarms(table.with_columns(out_of_fold_alarm(table, features, groups)), breaks="break")
    statistical_alarm = station_alarm(readings, DEFAULT_CONFIG).with_columns(after_left_out(readings, use))
    statistical = score_alarms(statistical_alarm.filter(used(readings, use)), breaks="break")
    held = HeldOut(scheme, len(set(groups.tolist())), table.height, learned, statistical)
    return held, table, features, names


def activation(held: HeldOut, min_events: int = MIN_EVENTS) -> tuple[bool, str]:
    """Whether the learned detector should run, and why (or why not), in one sentence."""
    learned, statistical = held.learned, held.statistical
    where = f"on the same held-out minutes ({held.folds} {held.scheme}s, out of fold)"
    if learned.events < min_events:
        return False, (
            f"only {learned.events} labelled event(s) among the scored minutes; {min_events} are "
            "needed to tell the detectors apart"
        )
    if learned.f1 <= statistical.f1:
        return False, (
            f"learned F1 {learned.f1:.3f} does not beat statistical F1 {statistical.f1:.3f} {where}"
        )
    return True, f"learned F1 {learned.f1:.3f} beats statistical F1 {statistical.f1:.3f} {where}"
