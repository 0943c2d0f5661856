"""A backstop for the learned alarm: one quality sensor far from its own past day alarms alone.

A model learns the kinds of event it is shown. Where every training event moves two or more
sensors, it learns to want two, and a residual that falls to zero on its own (a kind no other
labelled week has) stays at a probability of 0.03-0.14. The backstop is the statistical detector's
premise instead: a reading at least `floors` noise floors from its sensor's past-day mean (the
largest across the sensors, `dev_mean_day_top1`) is an event, whatever the other sensors do.

`floors` is chosen with the post-processing, on the same out-of-fold predictions
(`learned.choose_backstop`): the lowest of `BACKSTOP_FLOORS` that adds no false-alarm event per day
and costs no worst-week F1 there, so it is as sensitive as the training weeks allow and no more;
none when each one costs.

The backstop lives in the fitted model (`BackstoppedModel`, probability 1 where it fires), so
whatever predicts with a fitted detector (cross-validation, the nightly run, a stored model)
applies it unchanged, and the post-processing's run length applies to it too.
"""

from __future__ import annotations

import numpy as np

from tasks.detection.features import FEATURES

BACKSTOP_FEATURE = "dev_mean_day_top1"
BACKSTOP_COLUMN = FEATURES.index(BACKSTOP_FEATURE)
BACKSTOP_FLOORS = (6.0, 8.0, 10.0, 12.0, 15.0, 20.0)  # tried lowest first


def with_backstop(probability: np.ndarray, departure: np.ndarray, floors: float | None) -> np.ndarray:
    """`probability`, raised to 1 where `departure` (noise floors) reaches `floors`."""
    if floors is None:
        return probability
    return np.where(np.nan_to_num(departure, nan=0.0) >= floors, 1.0, probability)


class BackstoppedModel:
    """A fitted classifier whose event probability is 1 where the backstop fires."""

    def __init__(self, classifier: object, floors: float, column: int = BACKSTOP_COLUMN) -> None:
        self.classifier = classifier
        self.floors = floors
        self.column = column

    @property
    def classes_(self) -> np.ndarray:
        return self.classifier.classes_

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        p = self.classifier.predict_proba(features)[:, 1]
        p = with_backstop(p, features[:, self.column], self.floors)
        return np.column_stack([1 - p, p])
