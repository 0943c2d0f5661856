"""Score a per-minute alarm against per-minute labels: point figures and event figures.

Definitions (the rows scored are the rows given, in time order):
- point precision, recall, F1 and F2 count minutes; precision is 0 when nothing alarms.
- an event is a maximal run of consecutive labelled rows.
- an event is detected when at least one of its own rows alarms (no tolerance after its end).
- the delay of a detected event is the minutes from its first row to its first alarming row;
  the median is over detected events only (missed events have no delay).
- a false-alarm event is a maximal run of consecutive alarming rows that overlaps no labelled row;
  they are counted per day covered, the number of rows times the usual step between rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

import polars as pl


@dataclass(frozen=True)
class Scores:
    """Point and event figures of one alarm against one set of labels."""

    precision: float
    recall: float
    f1: float
    f2: float
    events: int
    events_detected: int
    event_detection_share: float | None
    median_delay_minutes: float | None
    false_alarm_events: int
    days_covered: float
    false_alarm_events_per_day: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def f_beta(precision: float, recall: float, beta: float) -> float:
    """The weighted harmonic mean of precision and recall (0 when both are 0)."""
    weight = beta * beta
    denominator = weight * precision + recall
    return (1 + weight) * precision * recall / denominator if denominator else 0.0


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """Point F1 from true positives, false positives and false negatives (0 when all are 0)."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def run_ids(flag: pl.Expr, cut: pl.Expr | None = None) -> pl.Expr:
    """A number per maximal run of equal values of `flag`, counting from 1 in row order; a row
    where `cut` is true starts a new run whatever its value."""
    starts = (flag != flag.shift(1)).fill_null(True)
    return (starts if cut is None else starts | cut.fill_null(False)).cum_sum()


def score_alarms(
    frame: pl.DataFrame,
    alarm: str = "alarm",
    label: str = "label",
    time: str = "observed_at",
    breaks: str | None = None,
) -> Scores:
    """Point and event figures of the bool column `alarm` against `label`, rows ordered by `time`.
    `breaks`, if given, names a bool column true on rows that follow time left out of the rows:
    no event or alarm run continues across it."""
    cut = pl.col(breaks) if breaks else None
    rows = (
        frame.select(
            time,
            pl.col(alarm).fill_null(False).alias("alarm"),
            pl.col(label).alias("label"),
            (cut if cut is not None else pl.lit(False)).alias("cut"),
        )
        .sort(time)
        .with_columns(
            run_ids(pl.col("label"), pl.col("cut")).alias("label_run"),
            run_ids(pl.col("alarm"), pl.col("cut")).alias("alarm_run"),
        )
    )
    tp = int((rows["alarm"] & rows["label"]).sum())
    alarms = int(rows["alarm"].sum())
    labelled = int(rows["label"].sum())
    precision = tp / alarms if alarms else 0.0
    recall = tp / labelled if labelled else 0.0

    events = (
        rows.filter(pl.col("label"))
        .group_by("label_run")
        .agg(
            pl.col(time).first().alias("start"),
            pl.col(time).filter(pl.col("alarm")).min().alias("first_alarm"),
        )
        .with_columns(((pl.col("first_alarm") - pl.col("start")).dt.total_seconds() / 60).alias("delay"))
    )
    detected = events.filter(pl.col("first_alarm").is_not_null())
    false_alarms = (
        rows.filter(pl.col("alarm"))
        .group_by("alarm_run")
        .agg(pl.col("label").any().alias("overlaps"))
        .filter(~pl.col("overlaps"))
        .height
    )
    days = days_covered(rows[time])
    return Scores(
        precision=precision,
        recall=recall,
        f1=f_beta(precision, recall, 1.0),
        f2=f_beta(precision, recall, 2.0),
        events=events.height,
        events_detected=detected.height,
        event_detection_share=detected.height / events.height if events.height else None,
        median_delay_minutes=float(detected["delay"].median()) if detected.height else None,
        false_alarm_events=false_alarms,
        days_covered=days,
        false_alarm_events_per_day=false_alarms / days if days else None,
    )


def days_covered(times: pl.Series) -> float:
    """Days the rows stand for: their number times the median step between them."""
    if times.len() < 2:
        return 0.0
    step = times.diff().drop_nulls().median()
    if not isinstance(step, timedelta):
        return 0.0
    return times.len() * step / timedelta(days=1)
