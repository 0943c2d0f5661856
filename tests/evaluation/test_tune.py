"""Week-wise cross-validation never scores a week with parameters chosen on that week."""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.detection.station_alarm import DetectorConfig
from tasks.evaluation.labelled import read_labelled
from tasks.evaluation.tune import choose_per_week, cross_validate, evaluate, grid_configs, tune

from .conftest import labelled_frame, write_labelled

SMALL_GRID = grid_configs(
    {
        "window_minutes": (60,),
        "statistic": ("mean", "median"),
        "threshold": (3.0, 6.0, 20.0),
        "k": (1, 2),
        "min_run": (1,),
        "hold": (0, 30),
    }
)


def random_counts(seed: int, configs: int = 6, weeks: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 50, size=(configs, weeks)) for _ in range(3))


def test_a_weeks_choice_ignores_that_week_entirely():
    for seed in range(20):
        tp, fp, fn = random_counts(seed)
        chosen = choose_per_week(tp, fp, fn)
        for week in range(tp.shape[1]):
            for config in range(tp.shape[0]):
                # make one config perfect on the held-out week only, and the others hopeless there
                tp2, fp2, fn2 = tp.copy(), fp.copy(), fn.copy()
                tp2[:, week], fp2[:, week], fn2[:, week] = 0, 10_000, 10_000
                tp2[config, week], fp2[config, week], fn2[config, week] = 10_000, 0, 0
                assert choose_per_week(tp2, fp2, fn2)[week] == chosen[week]


def test_a_weeks_choice_follows_the_other_weeks():
    tp, fp, fn = random_counts(1)
    tp[:, 1:], fp[:, 1:], fn[:, 1:] = 0, 100, 100
    tp[4, 1:], fp[4, 1:], fn[4, 1:] = 100, 0, 0
    assert choose_per_week(tp, fp, fn)[0] == 4


def test_relabelling_a_week_does_not_change_the_configuration_it_is_scored_with(tmp_path):
    frame = labelled_frame(days=15)
    readings = read_labelled(write_labelled(tmp_path / "a.csv", frame))
    # every label of the last ISO week turned upside down: a config chosen on it would differ
    week = pl.col("Time").dt.strftime("%G-W%V")
    last = frame.select(week.max()).item()
    flipped = frame.with_columns(pl.when(week == last).then(~pl.col("EVENT")).otherwise(pl.col("EVENT")))
    relabelled = read_labelled(write_labelled(tmp_path / "b.csv", flipped))

    before = {w["week"]: w["config"] for w in cross_validate(readings, SMALL_GRID)["weeks"]}
    after = {w["week"]: w["config"] for w in cross_validate(relabelled, SMALL_GRID)["weeks"]}
    assert list(before) == ["2026-W10", "2026-W11", "2026-W12"]
    assert after[last] == before[last]
    assert tune(relabelled, SMALL_GRID) != tune(readings, SMALL_GRID)


def test_cross_validated_figures_pool_every_weeks_alarms(tmp_path):
    readings = read_labelled(write_labelled(tmp_path / "a.csv", labelled_frame(days=15)))
    result = cross_validate(readings, SMALL_GRID)
    assert result["scores"]["events"] == 15 and result["scores"]["events_detected"] == 15
    assert result["scores"]["f1"] > 0.9 and result["grid_size"] == len(SMALL_GRID)


def test_parameters_tuned_on_one_file_score_another(tmp_path):
    dev = write_labelled(tmp_path / "dev.csv", labelled_frame(days=8, seed=1))
    test = write_labelled(tmp_path / "test.csv", labelled_frame(days=8, seed=2))
    report = evaluate(test, tune_on=dev, configs=SMALL_GRID)
    chosen = tune(read_labelled(dev), SMALL_GRID)
    assert report["tuned_on"]["config"] == chosen.as_dict()
    assert report["tuned_on"]["file"] == str(dev) and report["file"] == str(test)
    assert isinstance(chosen, DetectorConfig)
