"""What `waterline evaluate` prints: the forward split, the forward-chaining folds, notes on
detectors that could not run, then the extra lines asked for (week-wise cross-validation,
--tune-on, generated faults)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasks.detection.station_alarm import DEFAULT_CONFIG

RUNS = {
    "default": "statistical default, whole file",
    "cross_validated": "statistical, week-wise cross-validated",
    "tuned_on": "tuned on {file}",
    "learned": "learned, week-wise cross-validated",
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


def local_text(moment: str, timezone: str) -> str:
    """An ISO naive-UTC time as the file's own wall-clock time, to the minute."""
    from tasks.evaluation.forward import to_local

    return to_local(datetime.fromisoformat(moment), timezone).strftime("%Y-%m-%d %H:%M")


def f1_text(scores: dict) -> str:
    return f"{scores['f1']:.3f} ({scores['precision']:.2f}/{scores['recall']:.2f})"


def detector_cells(scores: dict) -> list[str]:
    """Point F1 (P/R), events alarmed, median minutes to first alarm, false-alarm events per day."""
    return [
        f1_text(scores),
        f"{scores['events_detected']} of {scores['events']}",
        figure_text("median_delay_minutes", scores["median_delay_minutes"]),
        figure_text("false_alarm_events_per_day", scores["false_alarm_events_per_day"]),
    ]


def chosen_text(name: str, chosen: dict) -> str:
    """What each detector is and what was chosen for it on the fit part."""
    if name == "statistical_default":
        return f"the shipped settings ({DEFAULT_CONFIG.describe()}), nothing chosen"
    if name == "hgb_baseline" and name not in chosen:
        return (
            "plain HistGradientBoostingClassifier (defaults, random_state=0) on value, first difference, "
            "5/15/60/240-min deviation from trailing mean and trailing std of every column; p > 0.5"
        )
    if name == "zscore_baseline" and "threshold" in chosen.get(name, {}):
        threshold = chosen["zscore_baseline"]["threshold"]
        return f"per-sensor z over the trailing 60 min, 2nd-largest |z| >= {threshold:g} (chosen on fit)"
    return chosen.get(name, {}).get("described", "-")


def verdict_text(verdict: dict, detectors: dict) -> str:
    if not verdict:
        return "no comparison: a baseline could not be fitted"
    parts = []
    for name, result in verdict.items():
        f1, events = result["beats_baselines_on_f1"], result["beats_baselines_on_events"]
        both = "beats both baselines" if f1 and events else "does NOT beat both baselines"
        detail = f"F1 {'yes' if f1 else 'no'}, events alarmed {'yes' if events else 'no'}"
        parts.append(f"{detectors[name]}: {both} ({detail})")
    return "; ".join(parts)


def print_forward(console: Console, report: dict) -> None:
    """The headline: one forward split, every detector beside the two baselines."""
    forward, timezone, detectors = report["forward"], report["timezone"], report["detectors"]
    any_scores = next(iter(forward["scores"].values()))
    gap = datetime.fromisoformat(forward["score_start"]) - datetime.fromisoformat(forward["fit_end"])
    gap_days = gap.total_seconds() / 86400
    table = Table(
        "detector",
        "point F1 (P/R)",
        "events alarmed",
        "median min to first alarm",
        "false-alarm events/day",
        title=f"{Path(report['file']).name}, forward: fit on rows before "
        f"{local_text(forward['fit_end'], timezone)} ({forward['chosen']['fit_rows']:,} rows, "
        f"{forward['chosen']['fit_events']} events), gap {gap_days:g} day(s), scored from "
        f"{local_text(forward['score_start'], timezone)} ({forward['rows_scored']:,} rows, "
        f"{any_scores['days_covered']:.1f} days, {any_scores['events']} events); times in {timezone}",
    )
    for name, title in detectors.items():
        cells = detector_cells(forward["scores"][name]) if name in forward["scores"] else ["not run"] * 4
        table.add_row(title, *cells)
    console.print(table)
    for name, title in detectors.items():
        console.print(f"  {title}: {chosen_text(name, forward['chosen'])}", soft_wrap=True)
    console.print(f"forward split: {verdict_text(forward['verdict'], detectors)}.", soft_wrap=True)


def print_folds(console: Console, report: dict) -> None:
    """The second line: forward-chaining folds, pooled, with each fold's F1."""
    folds, timezone, detectors = report["folds"], report["timezone"], report["detectors"]
    described = ", ".join(
        f"{s['name']} scores {local_text(s['score_start'], timezone)}"
        + (f" to {local_text(s['score_end'], timezone)}" if s["score_end"] else " to the end")
        + f" ({s['chosen']['fit_events']} events to fit on)"
        for s in folds["splits"]
    )
    table = Table(
        "detector",
        "point F1 (P/R), pooled",
        "events alarmed",
        "median min to first alarm",
        "false-alarm events/day",
        "F1 per fold",
        title=f"forward-chaining folds, each fitted on every row before it less the gap: {described}",
    )
    for name, title in detectors.items():
        per_fold = " / ".join(
            f"{s['scores'][name]['f1']:.3f}" if name in s["scores"] else "-" for s in folds["splits"]
        )
        if name in folds["pooled"]:
            table.add_row(title, *detector_cells(folds["pooled"][name]), per_fold)
        else:
            table.add_row(title, "-", "-", "-", "-", per_fold + " (not fitted on every fold)")
    console.print(table)
    console.print(f"folds pooled: {verdict_text(folds['verdict'], detectors)}.", soft_wrap=True)


def print_evaluation(console: Console, report: dict) -> None:
    """The evaluation report: forward headline, folds, notes, then the extra lines asked for."""
    print_forward(console, report)
    if "folds" in report:
        print_folds(console, report)
    for note in report["notes"]:
        console.print(f"note: {note}", soft_wrap=True)
    if "cross_validated" in report or "tuned_on" in report or "learned_tuned_on" in report:
        print_extra(console, report)
    if "synthetic" in report:
        print_synthetic(console, report["synthetic"])
        print_incidents(console, report["synthetic"])


def print_extra(console: Console, report: dict) -> None:
    """The extra lines: week-wise cross-validation (never the headline) and --tune-on."""
    present = [key for key in RUNS if key in report]
    runs = [(key, RUNS[key].format(file=Path(report[key].get("file", "")).name)) for key in present]
    figures = Table(
        "extra line (not forward in time)",
        "point F1 (P/R)",
        "events alarmed",
        "median min to first alarm",
        "false-alarm events/day",
        title="week-wise interleaved cross-validation and --tune-on: each week scored with settings "
        "chosen on the other weeks, later ones included (optimistic; not the headline)",
    )
    for key, title in runs:
        figures.add_row(title, *detector_cells(report[key]["scores"]))
    console.print(figures)
    if "cross_validated" not in report:
        return
    cv = report["cross_validated"]
    configs = Table(
        "run",
        "week",
        "configuration",
        "F1 other weeks",
        "F1 this week",
        title="week-wise configurations used",
    )
    for week in cv["weeks"]:
        configs.add_row(
            RUNS["cross_validated"],
            week["week"],
            week["described"],
            f"{week['f1_on_other_weeks']:.3f}",
            f"{week['f1_on_this_week']:.3f}",
        )
    for week in report.get("learned", {}).get("weeks", []):
        configs.add_row(
            RUNS["learned"],
            week["week"],
            week["described"],
            f"{week['f1_on_other_weeks']:.3f}",
            f"{week['f1_on_this_week']:.3f}",
        )
    console.print(configs)


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
        f"{synthetic['readings']:,} readings every {settings['interval_seconds'] / 60:g} min, shipped "
        "configuration",
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


def print_incidents(console: Console, synthetic: dict) -> None:
    """The incidents the generated faults opened, beside a bare rule (one per sensor run reaching HIGH)."""
    table = Table(
        "incidents",
        "opened",
        "precision",
        "recall (contamination)",
        "per injected fault",
        "CRITICAL",
        "weakest contamination",
        title="incidents on the generated faults: consensus (shipped) beside one per sensor run at HIGH"
        " (bare)",
    )
    for name, key in (("shipped", "incidents"), ("bare", "incidents_baseline")):
        figures = synthetic.get(key)
        if not figures:
            continue
        table.add_row(
            name,
            f"{figures['incidents']:,}",
            share_text(figures["precision"]),
            share_text(figures["recall"]),
            "-" if figures["incidents_per_fault"] is None else f"{figures['incidents_per_fault']:.2f}",
            share_text(figures["critical_share"]),
            str(figures["contamination_lowest_severity"]),
        )
    console.print(table)
