"""A learned station alarm: gradient boosting on causal rolling features of every sensor.

Features (`feature_frame`): per sensor and minute, only the current and past readings of the file
(rows are taken to be one per minute, as GECCO's): the value, whether it is missing, its
differences over 1/5/15/60 rows, and against the past 15/60/180 minutes (the current reading left
out) its deviation from the mean, the standard deviation, its distance above the minimum and below
the maximum, its z against the mean and standard deviation, and (60 minutes) its deviation from the
median. No label and no later reading enters a feature row.

Model (`new_model`): scikit-learn's HistGradientBoostingClassifier (missing values handled
natively), fixed random state, no early stopping: the same data give the same model. It is fitted
on every labelled row and every `NEGATIVE_STRIDE`-th unlabelled row (by position), for speed; the
probabilities are then not calibrated, which the threshold chosen out of fold absorbs.

Alarm: the station alarms when the predicted probability reaches `threshold` for `min_run`
consecutive rows, held `hold` rows after (`detect.alarm_expr`, causal). The threshold, run and hold
are chosen on out-of-fold predictions within the training rows only: the training rows are cut into
`INNER_FOLDS` consecutive blocks, each predicted by a model trained on the other blocks. Training
predictions would not do: boosted trees are over-confident on the rows they were fitted on, so a
threshold chosen there does not carry over to unseen weeks.

Week-wise cross-validation (`cross_validate_learned`): each ISO week is predicted by a detector
(model and post-processing) fitted on the other weeks only, its alarms computed within the week,
then every week's alarms are pooled and scored with `scoring.score_alarms`, as `tune.cross_validate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import product

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from tasks.evaluation.detect import alarm_expr
from tasks.evaluation.labelled import LabelledReadings
from tasks.evaluation.scoring import Scores, f1_from_counts, score_alarms
from tasks.evaluation.tune import is_covered, iso_week

LAGS = (1, 5, 15, 60)  # rows (minutes)
WINDOWS = (15, 60, 180)  # minutes of past readings
MEDIAN_WINDOW = 60
MIN_SAMPLES = 5
INNER_FOLDS = 3
# OpenMP threads beside Polars' thread pool spin against each other: one thread is ten times faster
# here than two on two cores.
OPENMP_THREADS = 1
NEGATIVE_STRIDE = 5  # train on every labelled row and every 5th unlabelled row: 5 times faster
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
MIN_RUNS = (1, 3)
HOLDS = (0, 15)
MODEL_SETTINGS: dict = {
    "max_iter": 100,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


def sensor_features(column: str) -> list[pl.Expr]:
    """The causal features of one sensor column, named `<column>__<feature>`."""
    value = pl.col(column)
    past = {"by": "observed_at", "closed": "left", "min_samples": MIN_SAMPLES}
    features = [value.alias("value"), value.is_null().cast(pl.Int8).alias("missing")]
    features += [(value - value.shift(lag)).alias(f"diff_{lag}") for lag in LAGS]
    for minutes in WINDOWS:
        window = f"{minutes}m"
        mean = value.rolling_mean_by(window_size=window, **past)
        std = value.rolling_std_by(window_size=window, **past)
        features += [
            (value - mean).alias(f"dev_mean_{minutes}"),
            std.alias(f"std_{minutes}"),
            (value - value.rolling_min_by(window_size=window, **past)).alias(f"above_min_{minutes}"),
            (value.rolling_max_by(window_size=window, **past) - value).alias(f"below_max_{minutes}"),
            pl.when(std > 0).then((value - mean) / std).alias(f"z_{minutes}"),
        ]
    median = value.rolling_median_by(window_size=f"{MEDIAN_WINDOW}m", **past)
    features.append((value - median).alias(f"dev_median_{MEDIAN_WINDOW}"))
    return [feature.alias(f"{column}__{feature.meta.output_name()}") for feature in features]


def feature_frame(readings: LabelledReadings) -> pl.DataFrame:
    """One row per row of the file: `observed_at` and every sensor's causal features (Float64)."""
    frame = readings.frame.select("observed_at", *readings.sensors)
    features = frame.lazy().select(
        "observed_at", *(f for column in readings.sensors for f in sensor_features(column))
    )
    return features.with_columns(pl.exclude("observed_at").cast(pl.Float64)).collect()


def new_model() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(**MODEL_SETTINGS)


@dataclass(frozen=True)
class PostProcess:
    """Probability to alarm: `threshold` reached for `min_run` rows, held `hold` rows."""

    threshold: float = 0.5
    min_run: int = 1
    hold: int = 0

    def describe(self) -> str:
        return f"probability >= {self.threshold:g} for {self.min_run} min, held {self.hold} min"


POST_PROCESSES = [PostProcess(t, r, h) for r, h, t in product(MIN_RUNS, HOLDS, THRESHOLDS)]


@dataclass(frozen=True)
class LearnedDetector:
    model: HistGradientBoostingClassifier
    post: PostProcess
    f1_out_of_fold: float  # the post-processing's point F1 on the training rows' out-of-fold predictions

    def probability(self, features: np.ndarray) -> np.ndarray:
        return predict(self.model, features)


def predict(model: HistGradientBoostingClassifier | None, features: np.ndarray) -> np.ndarray:
    """The probability of an event per row; 0 everywhere without a model (no event to learn from)."""
    if model is None:
        return np.zeros(len(features))
    with threadpool_limits(OPENMP_THREADS, user_api="openmp"):
        return model.predict_proba(features)[:, 1]


def fit_model(
    features: np.ndarray, labels: np.ndarray, required: bool = True
) -> HistGradientBoostingClassifier | None:
    """A model of the rows; None when they are all labelled or all unlabelled and not `required`."""
    if labels.all() or not labels.any():
        if not required:
            return None
        raise ValueError("the training rows need both labelled and unlabelled minutes")
    keep = labels | (np.arange(len(labels)) % NEGATIVE_STRIDE == 0)
    with threadpool_limits(OPENMP_THREADS, user_api="openmp"):
        return new_model().fit(features[keep], labels[keep])


def alarms(probability: pl.Expr, post: PostProcess, group: str) -> pl.Expr:
    """The alarm of `post` computed within each `group` (rows in time order)."""
    return alarm_expr(probability, post.threshold, post.min_run, post.hold).over(group)


def choose_post_process(
    probability: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[PostProcess, float]:
    """The post-processing with the best pooled point F1 (ties to the earliest), alarms computed
    within each group."""
    frame = pl.DataFrame({"p": probability, "label": labels, "group": groups})
    columns = frame.select(
        alarms(pl.col("p"), post, "group").alias(f"a{i}") for i, post in enumerate(POST_PROCESSES)
    )
    label = frame["label"]
    counts = columns.select(
        *((pl.col(c) & label).sum().alias(f"tp{i}") for i, c in enumerate(columns.columns)),
        *((pl.col(c) & ~label).sum().alias(f"fp{i}") for i, c in enumerate(columns.columns)),
        *((~pl.col(c) & label).sum().alias(f"fn{i}") for i, c in enumerate(columns.columns)),
    ).row(0, named=True)
    f1 = [
        f1_from_counts(counts[f"tp{i}"], counts[f"fp{i}"], counts[f"fn{i}"])
        for i in range(len(POST_PROCESSES))
    ]
    best = int(np.argmax(f1))
    return POST_PROCESSES[best], f1[best]


def inner_blocks(n: int, folds: int = INNER_FOLDS) -> np.ndarray:
    """A block number per training row: `folds` consecutive blocks of nearly equal size."""
    return np.repeat(np.arange(folds), [len(part) for part in np.array_split(np.arange(n), folds)])


def fit_detector(features: np.ndarray, labels: np.ndarray) -> LearnedDetector:
    """A model on all the given rows (in time order) and the post-processing chosen on out-of-fold
    predictions of `INNER_FOLDS` consecutive blocks of them."""
    blocks = inner_blocks(len(labels))
    out_of_fold = np.full(len(labels), np.nan)
    for block in np.unique(blocks):
        inside = blocks == block
        model = fit_model(features[~inside], labels[~inside], required=False)
        out_of_fold[inside] = predict(model, features[inside])
    post, f1 = choose_post_process(out_of_fold, labels, blocks)
    return LearnedDetector(fit_model(features, labels), post, f1)


def scored_table(readings: LabelledReadings) -> tuple[pl.DataFrame, np.ndarray]:
    """The scored rows (at least one reading): `observed_at`, `label`, `week`; and their features."""
    features = feature_frame(readings)
    covered = readings.frame.select(is_covered(readings)).to_series()
    table = readings.frame.select(
        "observed_at", "label", iso_week(pl.col("observed_at")).alias("week")
    ).filter(covered)
    matrix = features.filter(covered).drop("observed_at").to_numpy().astype(np.float64)
    return table, matrix


def model_description() -> dict:
    return {
        "model": "sklearn.ensemble.HistGradientBoostingClassifier",
        "settings": dict(MODEL_SETTINGS),
        "features_per_sensor": len(sensor_features("x")),
        "inner_folds": INNER_FOLDS,
        "negative_stride": NEGATIVE_STRIDE,
    }


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
        detector = fit_detector(features[~inside], labels[~inside])
        probability[inside] = detector.probability(features[inside])
        chosen[week] = detector.post
        per_week.append(
            {
                "week": week,
                "post_process": asdict(detector.post),
                "described": detector.post.describe(),
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
    detector = fit_detector(train_features, train_table["label"].to_numpy())
    table, features = scored_table(test)
    scored = table.with_columns(pl.Series("p", detector.probability(features))).with_columns(
        alarm_expr(pl.col("p"), detector.post.threshold, detector.post.min_run, detector.post.hold).alias(
            "alarm"
        )
    )
    return detector.post, score_alarms(scored)


def learned_report(
    readings: LabelledReadings, tune_on: LabelledReadings | None = None, tune_on_file: str | None = None
) -> dict:
    """The learned detector's part of `evaluate()`: cross-validated, and trained on another file."""
    cv = cross_validate_learned(readings)
    cv.pop("probability")
    report = {"learned": cv}
    if tune_on is not None:
        post, scores = score_trained_on(tune_on, readings)
        report["learned_tuned_on"] = {
            "file": tune_on_file,
            "post_process": asdict(post),
            "described": post.describe(),
            "scores": scores.as_dict(),
        }
    return report


__all__: Sequence[str] = (
    "cross_validate_learned",
    "feature_frame",
    "fit_detector",
    "learned_report",
    "score_trained_on",
)
