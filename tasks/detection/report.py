"""What `waterline detect` prints: tables of trainings and stored models (L: learned, S: statistical)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from rich.table import Column, Table
from sqlalchemy import Row

from tasks.detection.training import StationTraining


def _pair(held: dict, figure) -> str:  # noqa: ANN001
    if not held:
        return "-"
    return f"{figure(held['learned'])} / {figure(held['statistical'])}"


def _f1(scores: dict) -> str:
    return f"{scores['f1']:.3f}"


def _events(scores: dict) -> str:
    return f"{scores['events_detected']}/{scores['events']}"


def _days(start: datetime | None, end: datetime | None) -> str:
    """The UTC days of [start, end)."""
    if start is None or end is None:
        return "-"
    last = end - timedelta(microseconds=1)
    return f"{start:%Y-%m-%d}..{last:%m-%d}" if last.year == start.year else f"{start:%Y-%m-%d}..{last:%F}"


def training_table(results: Sequence[StationTraining], municipality_id: str) -> Table:
    table = Table(
        Column("station", no_wrap=True),
        Column("days (UTC)", no_wrap=True),
        Column("F1 L / S", no_wrap=True),
        Column("events L / S", no_wrap=True),
        "model",
        "status",
        title=f"learned detectors of {municipality_id} (L: learned, S: statistical, same held-out minutes)",
    )
    for r in results:
        table.add_row(
            r.station_id,
            _days(r.data_start, r.data_end),
            _pair(r.held_out, _f1),
            _pair(r.held_out, _events),
            str(r.model_id) if r.model_id else "-",
            r.status,
        )
    return table


def coverage_text(coverage: dict | None) -> str:
    """Which minutes a training used, in words: the labelled range and the minutes of each kind."""
    if not coverage:
        return "no record of the minutes used"
    if coverage["first_labelled"] is None:
        labelled = "no labelled minute with readings"
    else:
        first = datetime.fromisoformat(coverage["first_labelled"])
        last = datetime.fromisoformat(coverage["last_labelled"])
        labelled = f"labelled {first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M} UTC"
    unlabelled = "used as normal" if coverage["unlabelled_as_normal"] else "left out"
    return (
        f"{labelled}: {coverage['event_minutes']:,} event and {coverage['normal_minutes']:,} normal minutes, "
        f"{coverage['unlabelled_minutes']:,} unlabelled minutes {unlabelled}"
    )


def training_line(r: StationTraining) -> str:
    """The reason for a station's status, and what it was trained on."""
    held = r.held_out
    figures = (
        f"; {r.rows:,} minutes used, held out by {held['folds']} {held['scheme']}s, {r.seconds:.1f} s"
        if held
        else ""
    )
    used = f"; {coverage_text(r.coverage.as_dict())}" if r.coverage else ""
    return f"{r.station_id}: {r.status}: {r.reason}{used}{figures}"


def models_table(models: Sequence[Row], municipality_id: str | None = None) -> Table:
    of = f" of {municipality_id}" if municipality_id else ""
    table = Table(
        "id",
        Column("station", no_wrap=True),
        "trained at (UTC)",
        Column("days (UTC)", no_wrap=True),
        Column("F1 L / S", no_wrap=True),
        "threshold",
        "active",
        title=f"{len(models)} learned model(s){of} (L: learned, S: statistical, same held-out minutes)",
    )
    for m in models:
        table.add_row(
            str(m.id),
            m.station_id,
            f"{m.trained_at:%Y-%m-%d %H:%M}",
            _days(m.data_start, m.data_end),
            _pair(m.scores, _f1),
            f"{m.post_process['threshold']:g}",
            "yes" if m.active else "no",
        )
    return table
