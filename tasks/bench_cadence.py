"""Which injected faults the shipped QC and detectors alarm on at each cadence of the sample generator.

`python -m tasks.bench_cadence 60 300 900 [--days 14 --stations 3 --seed 7]` simulates the first
sample municipality at each interval (`tasks.evaluation.synthetic.simulate`), flags it with the
shipped QC (each sensor's cadence from its registry entry, `interval_seconds`), runs
`find_anomalies` with the shipped detectors.yaml and scores both with
`tasks.evaluation.synthetic.score_faults`, per kind of fault.
Beside it, two lines on the same readings: the detectors alone (no QC flag counts) and a bare
baseline, a per-sensor 60-minute rolling z-score (|z| >= 3, no noise floor). Nothing is tuned here.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import polars as pl

from tasks.anomalies.detectors import (
    SEVERITY_RANK,
    find_anomalies,
    rolling_zscore,
    skip_sentences,
    skipped_sensors,
)
from tasks.anomalies.incidents import OPEN_AT
from tasks.evaluation.synthetic import (
    DETECTING_FLAGS,
    SLOW_KINDS,
    health_calls,
    score_faults,
    simulate,
)
from tasks.quality.qc import qc_flags

BASELINE_Z = 3.0


def cadence_figures(interval_seconds: int, days: int = 14, stations: int = 3, seed: int = 7) -> dict:
    """Per kind of short fault, the share found by QC and detectors, by the detectors alone and
    by the bare baseline; the false-alarm events per sensor-day of each; and the skip sentences."""
    sample = simulate(days=days, stations=stations, seed=seed, interval_seconds=interval_seconds)
    flagged = qc_flags(sample.readings, sample.sensors)  # the sensors carry their cadence
    qc = (
        flagged.filter(pl.col("qc_flag").is_in(DETECTING_FLAGS))
        .select("sensor_id", "observed_at", pl.col("qc_tests").cast(pl.String).str.split(",").alias("method"))
        .explode("method")
        .with_columns(pl.format("qc:{}", "method").alias("method"))
    )
    rank = pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8)
    found = find_anomalies(flagged, sample.sensors, sample.start, sample.end)
    found = found.filter(rank >= SEVERITY_RANK[OPEN_AT]).select("sensor_id", "observed_at", "method")
    usable = flagged.filter(~pl.col("qc_flag").is_in([4, 9])).join(
        sample.sensors.select("sensor_id", "parameter", "unit"), on="sensor_id", suffix="_sensor"
    )
    thresholds = (BASELINE_Z,) * 4
    baseline = rolling_zscore(usable.lazy(), timedelta(minutes=60), thresholds).collect()
    baseline = baseline.filter(pl.col("observed_at") < sample.end).select(
        "sensor_id", "observed_at", "method"
    )
    calls = health_calls(sample, flagged)
    scored = {
        "qc_and_detectors": score_faults(sample, pl.concat([qc, found]), calls),
        "detectors_alone": score_faults(sample, found, calls),
        "bare_baseline": score_faults(sample, baseline, calls),
    }
    return {
        "interval_seconds": interval_seconds,
        "readings": sample.readings.height,
        "scored": scored,
        "skipped": skip_sentences(skipped_sensors(flagged, sample.sensors)),
    }


def print_cadence_figures(figures: dict) -> None:
    scored = figures["scored"]
    settings = figures["scored"]["qc_and_detectors"]["settings"]
    print(
        f"\n{figures['interval_seconds']} s cadence, {figures['readings']:,} readings "
        f"({settings['days']} days, {settings['stations']} stations, seed {settings['seed']})"
    )
    print(f"  {'kind':14} {'QC + detectors':>16} {'detectors alone':>16} {'bare 60-min z>=3':>17}")
    for kind in scored["qc_and_detectors"]["kinds"]:
        if kind in SLOW_KINDS:
            continue
        cells = []
        for name in ("qc_and_detectors", "detectors_alone", "bare_baseline"):
            one = scored[name]["kinds"][kind]
            share = f"{one['found_share']:.0%}" if one["found_share"] is not None else "-"
            cells.append(f"{one['found']}/{one['faults']} {share}")
        print(f"  {kind:14} {cells[0]:>16} {cells[1]:>16} {cells[2]:>17}")
    rates = [scored[name]["false_alarm_events_per_sensor_day"] for name in scored]
    print(f"  {'false/sensor-day':14} {rates[0]:>16.2f} {rates[1]:>16.2f} {rates[2]:>17.2f}")
    for sentence in figures["skipped"]:
        print(f"  {sentence}")


def main(argv: list[str]) -> None:
    """`python -m tasks.bench_cadence [INTERVAL ...] [--days N] [--stations N] [--seed N]`."""
    options = {"days": 14, "stations": 3, "seed": 7}
    intervals, args = [], iter(argv)
    for arg in args:
        if arg.startswith("--") and arg[2:] in options:
            options[arg[2:]] = int(next(args))
        else:
            intervals.append(int(arg))
    for interval in intervals or [60, 300, 900]:
        print_cadence_figures(cadence_figures(interval, **options))


if __name__ == "__main__":
    main(sys.argv[1:])
