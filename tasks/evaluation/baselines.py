"""Two bare baselines that every evaluation prints beside the product (no product code in them).

- `zscore_scores`: per sensor, the z-score of a reading against the mean and standard deviation
  of the trailing 60 minutes of that sensor (the reading itself left out, at least
  `ZSCORE_MIN_READINGS` readings); the station's score per row is the 2nd-largest |z| across the
  quality sensors, as GECCO 2018's README describes. Its threshold is chosen on the fit rows only,
  for the best point F1 (`choose_threshold`).
- `hgb_features` and `hgb_probability`: a plain scikit-learn HistGradientBoostingClassifier (default
  settings, random_state=0) on causal rolling features of every column (flow included): for 5, 15,
  60 and 240 minutes the deviation from the trailing mean and the trailing standard deviation, plus
  the value and its first difference. It alarms where p > 0.5.

Both read the same QC-checked frame as the product, so failed readings are missing here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier

ZSCORE_WINDOW = "60m"
ZSCORE_MIN_READINGS = 3
ZSCORE_RANK = 2  # the 2nd-largest |z| across the sensors
THRESHOLDS = tuple(np.round(np.arange(0.5, 40.0, 0.1), 2))
HGB_WINDOWS = (5, 15, 60, 240)  # minutes
HGB_ALARM_AT = 0.5


def zscore_scores(frame: pl.DataFrame, sensors: Sequence[str]) -> np.ndarray:
    """Per row of `frame` (`observed_at` in order, one column per sensor), the 2nd-largest |z|
    across `sensors` (NaN where fewer than two have one)."""
    past = {
        "by": "observed_at",
        "window_size": ZSCORE_WINDOW,
        "closed": "left",
        "min_samples": ZSCORE_MIN_READINGS,
    }
    z = [
        ((pl.col(s) - pl.col(s).rolling_mean_by(**past)) / pl.col(s).rolling_std_by(**past)).abs()
        for s in sensors
    ]
    ranked = (
        pl.concat_list([pl.when(e.is_finite()).then(e) for e in z])
        .list.drop_nulls()
        .list.sort(descending=True)
    )
    score = frame.select(ranked.list.get(ZSCORE_RANK - 1, null_on_oob=True).alias("z"))["z"]
    return score.cast(pl.Float64).fill_null(np.nan).to_numpy()


def choose_threshold(
    score: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] = THRESHOLDS
) -> float:
    """The threshold of `thresholds` with the best point F1 of `score >= threshold` on these rows
    (the lowest of equals)."""
    value = np.nan_to_num(score, nan=-np.inf)
    positive = np.sort(value[labels])
    negative = np.sort(value[~labels])
    cut = np.asarray(thresholds)
    tp = len(positive) - np.searchsorted(positive, cut, side="left")
    fp = len(negative) - np.searchsorted(negative, cut, side="left")
    fn = len(positive) - tp
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(cut)), where=denominator > 0)
    return float(cut[int(np.argmax(f1))])


def hgb_features(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Per row, for every column: value, first difference and, per window of `HGB_WINDOWS`, the
    deviation from the trailing mean and the trailing standard deviation (current reading included,
    no later one)."""
    expressions = []
    for c in columns:
        value = pl.col(c)
        expressions += [value, value - value.shift(1)]
        for minutes in HGB_WINDOWS:
            window = {"by": "observed_at", "window_size": f"{minutes}m", "min_samples": 1}
            expressions += [value - value.rolling_mean_by(**window), value.rolling_std_by(**window)]
    matrix = frame.select(e.cast(pl.Float64).alias(f"f{i}") for i, e in enumerate(expressions))
    return matrix.fill_null(np.nan).to_numpy()


def hgb_probability(
    features: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray
) -> np.ndarray | None:
    """The plain model fitted on the `fit` rows, its event probability on the `score` rows; None
    when the fit rows hold no labelled (or no unlabelled) row."""
    if labels[fit].all() or not labels[fit].any():
        return None
    # a feature no fit row has (a 5-minute std at a 15-minute cadence) cannot be binned: left out
    known = ~np.isnan(features[fit]).all(axis=0)
    model = HistGradientBoostingClassifier(random_state=0).fit(features[fit][:, known], labels[fit])
    return model.predict_proba(features[score][:, known])[:, 1]
