"""What `waterline evaluate` prints: the figures per run side by side, then the configurations."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

RUNS = {
    "default": "default (untuned)",
    "cross_validated": "cross-validated",
    "tuned_on": "tuned on {file}",
    "learned": "learned (cross-validated)",
    "learned_tuned_on": "learned, trained on {file}",
}
FIGURES = (
    ("precision", "point precision"),
    ("recall", "point recall"),
    ("f1", "point F1"),
    ("f2", "point F2"),
    ("event_detection_share", "events with an alarm"),
    ("median_delay_minutes", "median minutes to first alarm"),
    ("false_alarm_events_per_day", "false-alarm events per day"),
)


def figure_text(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "event_detection_share":
        return f"{value:.0%}"
    if name == "median_delay_minutes":
        return f"{value:g}"
    return f"{value:.2f}" if name == "false_alarm_events_per_day" else f"{value:.3f}"


def print_evaluation(console: Console, report: dict) -> None:
    """The evaluation report as two Rich tables."""
    present = [key for key in RUNS if key in report]
    runs = [(key, RUNS[key].format(file=Path(report[key].get("file", "")).name)) for key in present]
    cv = report["cross_validated"]
    any_scores = report["default"]["scores"]
    figures = Table(
        "figure",
        *(title for _, title in runs),
        title=f"{Path(report['file']).name}: {report['rows_scored']:,} minutes with readings, "
        f"{any_scores['days_covered']:.1f} days, {any_scores['events']} labelled events",
    )
    for name, label in FIGURES:
        figures.add_row(label, *(figure_text(name, report[key]["scores"][name]) for key, _ in runs))
    figures.add_row(
        "events detected / false-alarm events",
        *(
            f"{report[key]['scores']['events_detected']} / {report[key]['scores']['false_alarm_events']}"
            for key, _ in runs
        ),
    )
    console.print(figures)

    configs = Table(
        "run", "week", "configuration", "F1 other weeks", "F1 this week", title="configurations used"
    )
    configs.add_row(RUNS["default"], "all", report["default"]["described"], "", "")
    for week in cv["weeks"]:
        configs.add_row(
            RUNS["cross_validated"],
            week["week"],
            week["described"],
            f"{week['f1_on_other_weeks']:.3f}",
            f"{week['f1_on_this_week']:.3f}",
        )
    titles = dict(runs)
    if "tuned_on" in report:
        configs.add_row(titles["tuned_on"], "all", report["tuned_on"]["described"], "", "")
    for week in report.get("learned", {}).get("weeks", []):
        configs.add_row(
            RUNS["learned"],
            week["week"],
            week["described"],
            f"{week['f1_on_other_weeks']:.3f}",
            f"{week['f1_on_this_week']:.3f}",
        )
    if "learned_tuned_on" in report:
        configs.add_row(titles["learned_tuned_on"], "all", report["learned_tuned_on"]["described"], "", "")
    console.print(configs)
    console.print(
        f"cross-validation: {cv['grid_size']} grid points; each week scored with the best point F1 on the "
        "other weeks, then every week's alarms pooled and scored.",
        soft_wrap=True,
    )
    if "learned" in report:
        learned = report["learned"]
        console.print(
            f"learned: {learned['model']} on {learned['features_per_sensor']} causal features per sensor, "
            "each taken as the 1st, 2nd and 3rd largest across the station's sensors "
            f"({len(learned['features'])} in all), trained on the other weeks; threshold and run chosen "
            "on out-of-fold predictions of each of those weeks by a model of the rest, for the best "
            "worst-week F1 (F1 other weeks is that out-of-fold F1).",
            soft_wrap=True,
        )
    if "synthetic" in report:
        print_synthetic(console, report["synthetic"])


def share_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_synthetic(console: Console, synthetic: dict) -> None:
    """The generated faults per kind: found, how soon, point recall and by which methods."""
    settings = synthetic["settings"]
    table = Table(
        "fault",
        "found",
        "median time to detection",
        "point recall",
        "found by",
        title=f"generated faults: {settings['days']} days of {settings['sensors']} sensors at "
        f"{settings['stations']} stations of {settings['municipality']} (seed {settings['seed']}), "
        f"{synthetic['readings']:,} readings, shipped configuration",
    )
    for kind, figures in synthetic["kinds"].items():
        if "median_days_to_detection" in figures:
            delay = figures["median_days_to_detection"]
            delay_text = "-" if delay is None else f"{delay:g} days"
        else:
            delay = figures["median_minutes_to_detection"]
            delay_text = "-" if delay is None else f"{delay:g} min"
        table.add_row(
            kind,
            f"{figures['found']} of {figures['faults']} ({share_text(figures['found_share'])})",
            delay_text,
            share_text(figures.get("point_recall")),
            ", ".join(f"{method} {n}" for method, n in figures["methods"].items()),
        )
    console.print(table)
    drift = synthetic["kinds"]["drift"]
    console.print(
        f"false alarms: {synthetic['false_alarm_events']} events "
        f"({synthetic['false_alarm_events_per_sensor_day']:.2f} per sensor-day; "
        + ", ".join(f"{method} {n}" for method, n in synthetic["false_alarm_methods"].items())
        + f"); point precision {share_text(synthetic['point_precision'])}; maintenance called on "
        f"{drift['false_maintenance_calls']} of {drift['healthy_sensor_days']} healthy sensor-days. "
        f"A detection is a QC flag 3, 4 or 9 or an anomaly of incident severity, within "
        f"{synthetic['tolerance_minutes']} minutes of a fault; drift and fouling are the health "
        "score's to find.",
        soft_wrap=True,
    )
