"""Score forward in time: everything chosen on the rows before a cut, scored on the rows after it.

A split has a fit part (covered rows before `fit_end`) and a scored part (covered rows from
`score_start` up to `score_end`); `score_start - fit_end` is the gap, at least a day, so a
trailing window or a run that straddles the cut cannot carry the scored part's events into the
fit. Features and z-scores are causal and are computed over the whole file once: a scored row's
features use earlier readings (of the gap and fit part too), never labels. What is chosen on
labels (the statistical grid point, the learned detector and its post-processing, the baseline
threshold and model) is chosen on the fit rows' labels only.

`headline_split`: the cut at `split_at` (default: the time at `DEFAULT_FIT_SHARE` of the covered
rows, rounded to the nearest midnight of the file's timezone), the gap taken out of the fit
part, scored from the cut to the end. `forward_folds`: the covered rows cut into `folds + 1`
blocks of equal size (cuts rounded to midnight); fold k scores block k and fits on every row
before it less the gap.

Per detector and split (`DetectorRows`): the product's statistical shipped default (untuned),
the statistical grid point with the best point F1 on the fit rows, the learned detector fitted
on the fit rows, and the two baselines of `baselines.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from tasks.detection.labelled import LabelledReadings, is_covered, iso_week
from tasks.detection.learned import fit_detector, scored_table
from tasks.detection.metrics import Scores, score_alarms
from tasks.detection.station_alarm import (
    DEFAULT_CONFIG,
    DetectorConfig,
    alarm_expr,
    kth_largest,
    quality_sensors,
    window_samples,
)
from tasks.evaluation import baselines

DEFAULT_FIT_SHARE = 0.7
DEFAULT_GAP = timedelta(days=1)
DEFAULT_FOLDS = 3
DETECTORS = {  # short names: the tables print them
    "zscore_baseline": "baseline z-score",
    "hgb_baseline": "baseline HGB",
    "statistical_default": "stat. default",
    "statistical_tuned": "stat. tuned on fit",
    "learned": "learned on fit",
}
BASELINES = ("zscore_baseline", "hgb_baseline")
PRODUCT = ("statistical_default", "statistical_tuned", "learned")


@dataclass(frozen=True)
class Split:
    """Fit on covered rows before `fit_end`; score covered rows in [`score_start`, `score_end`)."""

    name: str
    fit_end: datetime
    score_start: datetime
    score_end: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "fit_end": self.fit_end.isoformat(),
            "score_start": self.score_start.isoformat(),
            "score_end": None if self.score_end is None else self.score_end.isoformat(),
        }


def duration(text: str) -> timedelta:
    """`1d`, `36h`, `90m` as a timedelta; ValueError with a sentence otherwise."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        return timedelta(**{units[unit]: float(number)})
    except (KeyError, ValueError):
        raise ValueError(f"{text!r} is not a duration: write it as 1d, 36h or 90m") from None


def to_utc(moment: datetime, timezone: str) -> datetime:
    """A naive wall-clock time of `timezone` as naive UTC."""
    frame = pl.DataFrame({"t": [moment]}).select(
        pl.col("t").dt.replace_time_zone(timezone, ambiguous="earliest").dt.convert_time_zone("UTC")
    )
    return frame["t"][0].replace(tzinfo=None)


def to_local(moment: datetime, timezone: str) -> datetime:
    frame = pl.DataFrame({"t": [moment]}).select(
        pl.col("t").dt.replace_time_zone("UTC").dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    )
    return frame["t"][0]


def cut_at_share(times: pl.Series, share: float, timezone: str) -> datetime:
    """The time at `share` of the (sorted, naive UTC) covered times, rounded to the nearest local
    midnight, as naive UTC."""
    at = to_local(times[min(len(times) - 1, int(share * len(times)))], timezone)
    midnight = datetime(at.year, at.month, at.day)
    if at - midnight >= timedelta(hours=12):
        midnight += timedelta(days=1)
    return to_utc(midnight, timezone)


def headline_split(times: pl.Series, timezone: str, split_at: datetime | None, gap: timedelta) -> Split:
    """Fit before `split_at - gap`, score from `split_at` (local time; default: 70 % of the rows)."""
    cut = cut_at_share(times, DEFAULT_FIT_SHARE, timezone) if split_at is None else to_utc(split_at, timezone)
    return Split("forward", cut - gap, cut)


def forward_folds(times: pl.Series, timezone: str, folds: int, gap: timedelta) -> list[Split]:
    """`folds` forward-chaining folds: fold k scores the k-th of `folds + 1` equal blocks of rows
    (after the first), fitting on everything before it less the gap."""
    cuts = sorted({cut_at_share(times, k / (folds + 1), timezone) for k in range(1, folds + 1)})
    ends = [*cuts[1:], None]
    return [
        Split(f"fold {k + 1}", cut - gap, cut, end)
        for k, (cut, end) in enumerate(zip(cuts, ends, strict=True))
    ]


@dataclass
class DetectorRows:
    """What every split needs, computed once per file over the covered rows (in time order)."""

    table: pl.DataFrame  # observed_at, label, week
    default_z: np.ndarray  # the shipped default's station score (NaN: no score)
    grid: list[DetectorConfig]
    grid_alarms: pl.DataFrame  # a<i> per grid point
    zscore: np.ndarray
    hgb: np.ndarray
    learned: np.ndarray | None
    step: timedelta | None  # the usual time between rows


def detector_rows(
    readings: LabelledReadings, grid: list[DetectorConfig], learned: bool = True
) -> DetectorRows:
    """Scores, alarms and features of every detector for every covered row of the file."""
    from tasks.evaluation.tune import alarm_table

    covered = readings.frame.select(is_covered(readings)).to_series()
    frame = readings.frame.filter(covered)
    table = frame.select("observed_at", "label", iso_week(pl.col("observed_at")).alias("week"))
    z = kth_largest(readings, DEFAULT_CONFIG.window_minutes, DEFAULT_CONFIG.statistic, [DEFAULT_CONFIG.k])
    default_z = z.filter(covered)[f"z_{DEFAULT_CONFIG.k}"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    grid_alarms = alarm_table(readings, grid).drop("observed_at", "label", "week")
    sensors = quality_sensors(readings.parameters)
    learned_features = scored_table(readings)[1] if learned else None
    step = frame["observed_at"].diff().drop_nulls().median() if frame.height > 1 else None
    return DetectorRows(
        table=table,
        default_z=default_z,
        grid=grid,
        grid_alarms=grid_alarms,
        zscore=baselines.zscore_scores(frame, sensors),
        hgb=baselines.hgb_features(frame, readings.sensors),
        learned=learned_features,
        step=step if isinstance(step, timedelta) else None,
    )


def masks(rows: DetectorRows, split: Split) -> tuple[np.ndarray, np.ndarray]:
    time = pl.col("observed_at")
    scored = time >= split.score_start
    if split.score_end is not None:
        scored = scored & (time < split.score_end)
    both = rows.table.select((time < split.fit_end).alias("fit"), scored.alias("score"))
    return both["fit"].to_numpy(), both["score"].to_numpy()


def causal_alarm(score: np.ndarray, threshold: float, min_run: int = 1, hold: int = 0) -> np.ndarray:
    frame = pl.DataFrame({"s": score}).select(
        alarm_expr(pl.col("s").fill_nan(None), threshold, min_run, hold)
    )
    return frame.to_series().to_numpy()


def split_alarms(rows: DetectorRows, split: Split) -> tuple[dict[str, np.ndarray | None], dict, np.ndarray]:
    """Per detector, its alarm on the split's scored rows (None: it could not be fitted), what was
    chosen on the fit rows, and the scored-row mask."""
    fit, score = masks(rows, split)
    labels = rows.table["label"].to_numpy()
    alarms: dict[str, np.ndarray | None] = {}
    chosen: dict = {"fit_rows": int(fit.sum()), "fit_events": event_count(labels[fit])}

    alarms["statistical_default"] = causal_alarm(rows.default_z, DEFAULT_CONFIG.threshold)[score]
    if not labels[fit].any() or labels[fit].all():
        unfitted = "not fitted: the fit part needs labelled and unlabelled rows"
        for name in ("statistical_tuned", "learned", "zscore_baseline", "hgb_baseline"):
            alarms[name] = None
            chosen[name] = {"described": unfitted}
        return alarms, chosen, score

    fit_part = rows.grid_alarms.filter(pl.Series(fit))
    label = pl.Series(labels[fit])
    f1 = fit_part.select(
        (2 * (pl.col(c) & label).sum() / (pl.col(c).sum() + label.sum())).alias(c) for c in fit_part.columns
    ).row(0)
    best = int(np.argmax(np.nan_to_num(np.asarray(f1, dtype=float))))
    chosen["statistical_tuned"] = {
        "config": rows.grid[best].as_dict(),
        "described": rows.grid[best].describe(),
    }
    alarms["statistical_tuned"] = rows.grid_alarms[f"a{best}"].to_numpy()[score]

    alarms["learned"] = None
    if rows.learned is not None:
        weeks = rows.table["week"].to_numpy()
        detector = fit_detector(rows.learned[fit], labels[fit], weeks[fit])
        p = detector.probability(rows.learned[score])
        post = detector.post
        alarms["learned"] = causal_alarm(p, post.threshold, post.min_run, post.hold)
        chosen["learned"] = {"described": detector.describe(), "f1_out_of_fold": detector.f1_out_of_fold}

    threshold = baselines.choose_threshold(rows.zscore[fit], labels[fit])
    alarms["zscore_baseline"] = (np.nan_to_num(rows.zscore, nan=-np.inf) >= threshold)[score]
    chosen["zscore_baseline"] = {"threshold": threshold}
    p = baselines.hgb_probability(rows.hgb, labels, fit, score)
    alarms["hgb_baseline"] = None if p is None else p > baselines.HGB_ALARM_AT
    return alarms, chosen, score


def event_count(labels: np.ndarray) -> int:
    starts = labels & ~np.concatenate([[False], labels[:-1]])
    return int(starts.sum())


def scores_of(table: pl.DataFrame, alarm: np.ndarray) -> Scores:
    return score_alarms(table.with_columns(pl.Series("alarm", alarm, dtype=pl.Boolean)))


def evaluate_splits(rows: DetectorRows, splits: list[Split]) -> dict:
    """Each split's figures per detector, and the figures of every split's alarms pooled."""
    per_split = []
    pooled_alarms: dict[str, list[np.ndarray]] = {name: [] for name in DETECTORS}
    pooled_tables = []
    for split in splits:
        alarms, chosen, score = split_alarms(rows, split)
        table = rows.table.filter(pl.Series(score)).select("observed_at", "label")
        pooled_tables.append(table)
        figures = {}
        for name in DETECTORS:
            alarm = alarms[name]
            if alarm is None:
                pooled_alarms[name].append(np.zeros(table.height, dtype=bool))
                continue
            pooled_alarms[name].append(alarm)
            figures[name] = scores_of(table, alarm).as_dict()
        per_split.append(
            {**split.as_dict(), "rows_scored": table.height, "chosen": chosen, "scores": figures}
        )
    table = pl.concat(pooled_tables)
    fitted = {name for name in DETECTORS if all(name in s["scores"] for s in per_split)}
    pooled = {
        name: scores_of(table, np.concatenate(a)).as_dict()
        for name, a in pooled_alarms.items()
        if name in fitted
    }
    return {"splits": per_split, "pooled": pooled}


def verdict(scores: dict) -> dict:
    """Per product detector: does it beat both baselines on point F1, and on events alarmed?"""
    result: dict = {}
    if any(b not in scores for b in BASELINES):
        return result  # a baseline not fitted: nothing to compare with
    for name in PRODUCT:
        if name not in scores:
            continue
        mine = scores[name]
        others = [scores[b] for b in BASELINES if b in scores]
        result[name] = {
            "beats_baselines_on_f1": all(mine["f1"] > o["f1"] for o in others),
            "beats_baselines_on_events": all(mine["events_detected"] > o["events_detected"] for o in others),
        }
    return result


def cadence_notes(rows: DetectorRows, score: np.ndarray | None = None) -> list[str]:
    """A sentence for each detector that cannot score (most of) the rows for lack of readings."""
    notes = []
    step = rows.step
    if step is None:
        return notes
    minutes = step.total_seconds() / 60
    window = timedelta(minutes=DEFAULT_CONFIG.window_minutes)
    needed = window_samples(window, step)
    holds = window / step
    share = float(np.mean(~np.isnan(rows.default_z))) if len(rows.default_z) else 0.0
    if share < 0.5:
        ran = "could not run" if share == 0 else f"scored only {share:.0%} of the rows"
        notes.append(
            f"statistical, shipped default {ran}: its {DEFAULT_CONFIG.window_minutes}-minute window holds "
            f"{holds:g} readings at this file's {minutes:g}-minute cadence and needs {needed}."
        )
    zshare = float(np.mean(~np.isnan(rows.zscore))) if len(rows.zscore) else 0.0
    if zshare < 0.5:
        ran = "could not run" if zshare == 0 else f"scored only {zshare:.0%} of the rows"
        notes.append(
            f"baseline rolling z-score {ran}: its 60-minute window holds {timedelta(minutes=60) / step:g} "
            f"readings at this file's {minutes:g}-minute cadence and needs {baselines.ZSCORE_MIN_READINGS} "
            "on two sensors."
        )
    if rows.learned is not None and len(rows.learned):
        lshare = float(np.mean(~np.isnan(rows.learned).all(axis=1)))
        if lshare < 0.5:
            notes.append(
                f"learned: only {lshare:.0%} of the rows have any feature at this file's "
                f"{minutes:g}-minute cadence."
            )
    return notes
