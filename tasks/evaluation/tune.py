"""`waterline evaluate`: forward in time first (`forward.py`), week-wise cross-validation as an extra.

The headline and the forward-chaining folds are `forward.py`'s: every setting chosen on rows
before the scored part, a gap of at least a day between, two bare baselines beside the product.

Week-wise cross-validation (`cross_validate`, `--cross-validate`, never the headline): for each
ISO week of the file, the parameters are the grid point with the best point F1 on the
other weeks, and that week is scored with them; the weeks' alarms are then pooled and scored as
one file. The shipped default is scored untuned, and parameters chosen on one labelled file can
be scored on another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from itertools import product
from pathlib import Path

import numpy as np
import polars as pl

from tasks.anomalies.detectors import skip_sentences, skipped_sensors
from tasks.detection.labelled import LabelledReadings, is_covered, iso_week
from tasks.detection.metrics import Scores, f1_from_counts, score_alarms
from tasks.detection.station_alarm import (
    DEFAULT_CONFIG,
    DetectorConfig,
    alarm_expr,
    kth_largest,
    station_alarm,
)
from tasks.evaluation.forward import (
    DEFAULT_FOLDS,
    DEFAULT_GAP,
    DETECTORS,
    cadence_notes,
    detector_rows,
    evaluate_splits,
    forward_folds,
    headline_split,
    verdict,
)
from tasks.evaluation.labelled import LabelSpec, load_source, read_labelled

# Small on purpose: every grid point is computed over the whole file, and a big grid overfits.
GRID: dict[str, tuple] = {
    "window_minutes": (30, 60, 180),
    "statistic": ("mean", "median"),
    "threshold": (3.0, 4.0, 5.0, 6.0, 8.0, 12.0),
    "k": (1, 2, 3),
    "min_run": (1, 3),
    "hold": (0,),  # no hold: an alarm that outlives its evidence ends (issue #15)
}


def grid_configs(grid: Mapping[str, Sequence] = GRID) -> list[DetectorConfig]:
    """Every combination of the grid's values, in a fixed order (ties go to the earliest)."""
    names = list(grid)
    return [DetectorConfig(**dict(zip(names, values, strict=True))) for values in product(*grid.values())]


def alarm_table(
    readings: LabelledReadings, configs: Sequence[DetectorConfig], limits: Mapping | None = None
) -> pl.DataFrame:
    """The scored rows: `observed_at`, `label`, `week` and one bool column `a<i>` per config."""
    base = readings.frame.select(
        "observed_at",
        "label",
        iso_week(pl.col("observed_at")).alias("week"),
        is_covered(readings).alias("scored"),
    )
    columns: dict[int, pl.Series] = {}
    for window, statistic in dict.fromkeys((c.window_minutes, c.statistic) for c in configs):
        chosen = [
            (i, c) for i, c in enumerate(configs) if (c.window_minutes, c.statistic) == (window, statistic)
        ]
        z = kth_largest(readings, window, statistic, {c.k for _, c in chosen}, limits)
        alarms = z.select(
            alarm_expr(pl.col(f"z_{c.k}"), c.threshold, c.min_run, c.hold).alias(f"a{i}") for i, c in chosen
        )
        columns.update({i: alarms[f"a{i}"] for i, _ in chosen})
    table = base.with_columns(columns[i] for i in range(len(configs)))
    return table.filter("scored").drop("scored")


def week_counts(table: pl.DataFrame, n_configs: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Weeks in order and, per config (row) and week (column), true positives, false positives and
    false negatives in minutes."""
    label = pl.col("label")
    counts = (
        table.group_by("week")
        .agg(
            *((pl.col(f"a{i}") & label).sum().alias(f"tp{i}") for i in range(n_configs)),
            *((pl.col(f"a{i}") & ~label).sum().alias(f"fp{i}") for i in range(n_configs)),
            *((~pl.col(f"a{i}") & label).sum().alias(f"fn{i}") for i in range(n_configs)),
        )
        .sort("week")
    )

    def matrix(prefix: str) -> np.ndarray:
        return counts.select(f"{prefix}{i}" for i in range(n_configs)).to_numpy().T.astype(np.int64)

    return counts["week"].to_list(), matrix("tp"), matrix("fp"), matrix("fn")


def f1_matrix(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)


def best_config_index(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> int:
    """The config (row) with the best point F1 over the given counts' weeks pooled."""
    return int(np.argmax(f1_matrix(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))))


def choose_per_week(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> list[int]:
    """For each week (column), the config chosen on every other week: that week's counts never count."""
    chosen = []
    for week in range(tp.shape[1]):
        others = np.arange(tp.shape[1]) != week
        chosen.append(best_config_index(tp[:, others], fp[:, others], fn[:, others]))
    return chosen


def cross_validate(
    readings: LabelledReadings, configs: Sequence[DetectorConfig] | None = None, limits: Mapping | None = None
) -> dict:
    """Week-wise cross-validated figures: the pooled scores and, per week, the config used on it."""
    configs = grid_configs() if configs is None else list(configs)
    table = alarm_table(readings, configs, limits)
    weeks, tp, fp, fn = week_counts(table, len(configs))
    if len(weeks) < 2:
        raise ValueError("week-wise cross-validation needs readings in at least two ISO weeks")
    chosen = choose_per_week(tp, fp, fn)
    pooled = pl.coalesce(
        pl.when(pl.col("week") == week).then(pl.col(f"a{index}"))
        for week, index in zip(weeks, chosen, strict=True)
    )
    scores = score_alarms(table.with_columns(pooled.alias("alarm")))
    per_week = [
        {
            "week": week,
            "config": configs[index].as_dict(),
            "described": configs[index].describe(),
            "f1_on_other_weeks": f1_from_counts(
                int(tp[index].sum() - tp[index, w]),
                int(fp[index].sum() - fp[index, w]),
                int(fn[index].sum() - fn[index, w]),
            ),
            "f1_on_this_week": f1_from_counts(int(tp[index, w]), int(fp[index, w]), int(fn[index, w])),
        }
        for w, (week, index) in enumerate(zip(weeks, chosen, strict=True))
    ]
    return {"scores": scores.as_dict(), "weeks": per_week, "grid_size": len(configs)}


def tune(
    readings: LabelledReadings, configs: Sequence[DetectorConfig] | None = None, limits: Mapping | None = None
) -> DetectorConfig:
    """The grid point with the best point F1 over the whole file."""
    configs = grid_configs() if configs is None else list(configs)
    _, tp, fp, fn = week_counts(alarm_table(readings, configs, limits), len(configs))
    return configs[best_config_index(tp, fp, fn)]


def score_config(readings: LabelledReadings, config: DetectorConfig, limits: Mapping | None = None) -> Scores:
    """The figures of one config on the file's covered rows."""
    alarms = station_alarm(readings, config, limits).filter(
        readings.frame.select(is_covered(readings)).to_series()
    )
    return score_alarms(alarms)


def nightly_skips(readings: LabelledReadings) -> list[str]:
    """What the nightly detectors (detectors.yaml) could not run on in this file, in sentences:
    `nightly detectors: trend skipped 4 sensors (15-minute cadence: ...)`."""
    long = (
        readings.frame.unpivot(index="observed_at", on=readings.sensors, variable_name="sensor_id")
        .drop_nulls("value")
        .with_columns(pl.col("observed_at").dt.replace_time_zone("UTC"))
    )
    sensors = pl.DataFrame(
        {"sensor_id": readings.sensors, "parameter": [readings.parameters[s] for s in readings.sensors]}
    ).with_columns(pl.lit("").alias("unit"))
    return [f"nightly detectors: {sentence}." for sentence in skip_sentences(skipped_sensors(long, sensors))]


def evaluate(
    path: str | Path,
    tune_on: str | Path | None = None,
    parameters: Mapping[str, str] | None = None,
    configs: Sequence[DetectorConfig] | None = None,
    learned: bool = True,
    synthetic: int | bool = True,
    synthetic_interval: int = 60,
    mapping: str | Path | None = None,
    labels: LabelSpec | None = None,
    intervals: str | Path | None = None,
    split_at: datetime | None = None,
    gap: timedelta = DEFAULT_GAP,
    folds: int = DEFAULT_FOLDS,
    week_wise: bool = False,
) -> dict:
    """The figures `waterline evaluate` prints. Headline: forward in time (`forward.headline_split`,
    fit before `split_at - gap`, score from `split_at`); second line: `folds` forward-chaining
    folds pooled; each with the two bare baselines and the product's statistical default, tuned
    and learned detectors. With `week_wise`, the old week-wise cross-validation as an extra line;
    with `tune_on`, settings chosen on that file scored on this one; with `synthetic`, the shipped
    QC and detectors on the sample generator's faults, per kind (over `synthetic` days if a number,
    readings every `synthetic_interval` seconds)."""
    if gap < DEFAULT_GAP:
        raise ValueError("the gap between the fit and the scored part must be at least one day")
    labels = LabelSpec() if labels is None else labels
    readings = read_labelled(path, parameters, mapping=mapping, labels=labels, intervals=intervals)
    timezone = load_source(mapping, parameters).mapping.timezone
    configs = grid_configs() if configs is None else list(configs)
    rows = detector_rows(readings, configs, learned=learned)
    times = rows.table["observed_at"]
    if times.len() < 2:
        raise ValueError(f"{Path(path).name} has fewer than two rows with a reading")
    headline = headline_split(times, timezone, split_at, gap)
    if not (times.min() < headline.fit_end and headline.score_start <= times.max()):
        raise ValueError("the split leaves no rows to fit on or none to score: choose another --split-at")
    forward = evaluate_splits(rows, [headline])
    if forward["splits"][0]["chosen"]["fit_events"] == 0:
        raise ValueError("the fit part holds no labelled event: choose a later --split-at")
    report: dict = {
        "file": str(path),
        "timezone": timezone,
        "rows": readings.frame.height,
        "rows_scored": times.len(),
        "sensors": readings.parameters,
        "cadence_minutes": None if rows.step is None else rows.step.total_seconds() / 60,
        "notes": cadence_notes(rows) + nightly_skips(readings),
        "detectors": dict(DETECTORS),
        "forward": {**forward["splits"][0], "verdict": verdict(forward["splits"][0]["scores"])},
    }
    if folds:
        chained = evaluate_splits(rows, forward_folds(times, timezone, folds, gap))
        report["folds"] = {**chained, "verdict": verdict(chained["pooled"])}
    if week_wise:
        report["default"] = {
            "config": DEFAULT_CONFIG.as_dict(),
            "described": DEFAULT_CONFIG.describe(),
            "scores": score_config(readings, DEFAULT_CONFIG).as_dict(),
        }
        report["cross_validated"] = cross_validate(readings, configs)
    dev = read_labelled(tune_on, parameters, mapping=mapping, labels=labels) if tune_on is not None else None
    if dev is not None:
        config = tune(dev, configs)
        report["tuned_on"] = {
            "file": str(tune_on),
            "config": config.as_dict(),
            "described": config.describe(),
            "scores": score_config(readings, config).as_dict(),
        }
    if learned and (week_wise or dev is not None):
        from tasks.evaluation.learned import learned_report

        part = learned_report(readings, dev, None if tune_on is None else str(tune_on), week_wise=week_wise)
        report.update(part)
    if synthetic:
        from tasks.evaluation.synthetic import synthetic_report

        days = 14 if synthetic is True else int(synthetic)
        report["synthetic"] = synthetic_report(days=days, interval_seconds=synthetic_interval)
    return report
