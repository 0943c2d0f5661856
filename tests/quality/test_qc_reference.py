"""Waterline's seven QC tests beside the reference implementation `ioos_qc` (QARTOD), row by row.

Each case runs Waterline's `qc_flags` and the matching `ioos_qc.qartod` test on the same readings,
turns ioos_qc's flags into what Waterline's documented conventions make of them, and asserts every
row agrees. The conventions (also in `tasks/quality/qc.yaml`):

- Missing readings (null, NaN, infinite) get 9 from every test and are invisible to their neighbours:
  the reference runs on the valid readings only, and the missing rows get 9.
- Gap limit: spike, rate of change and flat line never reach across more than
  `max_intervals x expected interval` without a reading: the reference runs them on each stretch of
  readings without such a gap, separately.
- gross_range: the same spans, with units as stored. Waterline's `pinned` rule (at or beyond an end of
  the instrument's range -> 4) is an extension QARTOD does not have: it is compared with `pinned` off,
  and checked on its own.
- climatology: a Waterline period of `months` is ioos_qc's `period="month"` span over each month; no
  fail span; a month no period covers is 2 in both.
- spike: `method` is the same name in both (`differential`, Waterline's default, is ioos_qc's
  `differential`; QARTOD's default is `average`); thresholds in the value's unit; the first and last
  reading of a stretch are 2 in both.
- rate_of_change: Waterline's thresholds are per minute, ioos_qc's per second (divide by 60); the first
  reading of a stretch has nothing to compare with: 2 in Waterline, 1 in ioos_qc.
- flat_line: Waterline's window is [t - minutes, t] in time, ioos_qc's the readings of as many median
  intervals (the same at a steady cadence); Waterline's tolerance is inclusive of 1e-9 of float noise
  (max - min <= tolerance + 1e-9, so 0 means equal and 8.24 - 8.23 is within 0.01), ioos_qc's exclusive
  (< tolerance): the reference gets tolerance + 2e-9.
- gap: ioos_qc's `time_gap_test` fails (4) the reading after more than `fail_span` hours; Waterline
  gives its `flag` (3 by default: a restarting sensor is suspect, 4 as in QARTOD when configured) after
  more than `max_intervals x expected interval`, and 2 to a sensor's first reading (ioos_qc copies the
  second reading's flag).
- attenuated: ioos_qc's `attenuated_signal_test` with `check_type="std"` (ddof 0), `test_period` the
  window in seconds (a pandas time window, (t - w, t]) and `min_obs` Waterline's minimum count,
  ceil(min_coverage x window / interval). Waterline rounds a standard deviation within 1e-5 (relative)
  of a threshold to 6 significant digits, so a window's verdict does not hang on float noise (ioos_qc's
  0.0299999 for a window whose deviation is 0.03): thresholds here are no value a quantized window takes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from ioos_qc import qartod

from tasks.quality.qc import MISSING, NOT_EVALUATED, QcConfig, SensorQc, flag_long_frame, qc_flags

FIXTURE = Path(__file__).with_name("fixtures") / "gecco2018_excerpt.csv"
T0 = datetime(2026, 1, 15, tzinfo=UTC)
TOLERANCE_NUDGE = 2e-9
TESTS = ("gross_range", "climatology", "spike", "rate_of_change", "flat_line", "gap", "attenuated")


def stretches(times: np.ndarray, limit_us: float) -> list[slice]:
    """The runs of readings with no step longer than the gap limit between them."""
    breaks = np.flatnonzero(np.diff(times) > limit_us) + 1
    edges = [0, *breaks.tolist(), len(times)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def reference_flags(times_us: np.ndarray, values: np.ndarray, settings: SensorQc) -> dict[str, np.ndarray]:
    """ioos_qc's flags for one sensor, turned into Waterline's conventions (see the module docstring)."""
    n = len(values)
    valid = np.isfinite(values)
    t, x = times_us[valid], values[valid]
    stamps = (t * 1000).astype("datetime64[ns]")
    interval_us = settings.expected_interval_seconds * 1e6
    limit = settings.gap.max_intervals * interval_us if settings.gap else math.inf
    out: dict[str, np.ndarray] = {}

    def put(flags: np.ndarray | None) -> np.ndarray:
        full = np.full(n, MISSING, dtype=np.int64)
        full[valid] = NOT_EVALUATED if flags is None else np.asarray(flags)
        return full

    def per_stretch(run) -> np.ndarray:  # noqa: ANN001
        flags = np.full(len(x), NOT_EVALUATED, dtype=np.int64)
        for part in stretches(t, limit):
            flags[part] = run(part)
        return flags

    gross = settings.gross_range
    out["gross_range"] = put(
        None
        if gross is None
        else qartod.gross_range_test(x, fail_span=gross.fail_span, suspect_span=gross.suspect_span)
    )
    if settings.climatology:
        config = qartod.ClimatologyConfig()
        for period in settings.climatology:
            for month in period.months:
                config.add(tspan=(month, month), vspan=period.suspect_span, period="month")
        out["climatology"] = put(qartod.climatology_test(config, x, stamps, np.full(len(x), np.nan)))
    else:
        out["climatology"] = put(None)

    if (spike := settings.spike) is not None:

        def run_spike(part: slice) -> np.ndarray:
            if part.stop - part.start < 3:
                return np.full(part.stop - part.start, NOT_EVALUATED)
            return qartod.spike_test(x[part], spike.suspect, spike.fail, method=spike.method)

        out["spike"] = put(per_stretch(run_spike))
    else:
        out["spike"] = put(None)

    if (roc := settings.rate_of_change) is not None:

        def run_rate(part: slice) -> np.ndarray:
            fail = None if roc.fail_per_minute is None else roc.fail_per_minute / 60
            flags = np.asarray(
                qartod.rate_of_change_test(x[part], stamps[part], roc.suspect_per_minute / 60, fail)
            )
            flags[0] = NOT_EVALUATED
            return flags

        out["rate_of_change"] = put(per_stretch(run_rate))
    else:
        out["rate_of_change"] = put(None)

    if (flat := settings.flat_line) is not None:

        def run_flat(part: slice) -> np.ndarray:
            fail = flat.fail_minutes or 1e9
            return qartod.flat_line_test(
                x[part], stamps[part], flat.suspect_minutes * 60, fail * 60, flat.tolerance + TOLERANCE_NUDGE
            )

        out["flat_line"] = put(per_stretch(run_flat))
    else:
        out["flat_line"] = put(None)

    if (gap := settings.gap) is not None:
        flags = np.asarray(qartod.time_gap_test(stamps, fail_span=limit / 3.6e9)).astype(np.int64)
        flags[flags == 4] = gap.flag
        flags[0] = NOT_EVALUATED
        out["gap"] = put(flags)
    else:
        out["gap"] = put(None)

    if (att := settings.attenuated) is not None:
        window_us = att.window_minutes * 60e6
        flags = qartod.attenuated_signal_test(
            x,
            stamps,
            suspect_threshold=att.suspect_below,
            fail_threshold=att.fail_below if att.fail_below is not None else -1.0,
            test_period=att.window_minutes * 60,
            min_obs=max(2, math.ceil(att.min_coverage * window_us / interval_us - 1e-9)),
            check_type="std",
        )
        out["attenuated"] = put(flags)
    else:
        out["attenuated"] = put(None)
    return out


def compare(frame: pl.DataFrame, sensors: pl.DataFrame, config: QcConfig) -> None:
    """Every row of every sensor and test: Waterline's flag equals the reference's."""
    flagged = qc_flags(frame, sensors, config)
    parameters = dict(sensors.select("sensor_id", "parameter").iter_rows())
    for (sensor_id,), rows in flagged.group_by("sensor_id", maintain_order=True):
        settings = config.for_sensor(sensor_id, parameters[sensor_id])
        times = rows["observed_at"].dt.epoch("us").to_numpy().astype(np.float64)
        values = rows["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        expected = reference_flags(times, values, settings)
        for test in TESTS:
            ours = rows[f"qc_{test}"].to_numpy().astype(np.int64)
            differ = np.flatnonzero(ours != expected[test])
            assert differ.size == 0, (
                f"{sensor_id} {test}: rows {differ[:10].tolist()} Waterline "
                f"{ours[differ[:10]].tolist()} vs ioos_qc {expected[test][differ[:10]].tolist()}"
            )


def series(
    values: list[float | None], minutes: list[float] | None = None, sensor_id: str = "s"
) -> pl.DataFrame:
    minutes = list(range(len(values))) if minutes is None else minutes
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [T0 + timedelta(minutes=m) for m in minutes],
            "value": values,
        },
        schema_overrides={"observed_at": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )


def one_sensor(parameter: str, **settings) -> tuple[pl.DataFrame, QcConfig]:  # noqa: ANN003
    config = QcConfig.model_validate(
        {
            "version": "reference",
            "defaults": {"expected_interval_seconds": 60, "gross_range": {}, "gap": {"max_intervals": 5}},
            "parameters": {parameter: settings},
        }
    )
    return pl.DataFrame({"sensor_id": ["s"], "parameter": [parameter]}), config


RNG = np.random.default_rng(15)
NOISE = (7.2 + RNG.normal(0, 0.02, 400)).round(3).tolist()
PH = {
    "gross_range": {"suspect_span": [6.5, 9.5]},
    "climatology": [{"months": [1, 2], "suspect_span": [7.0, 7.4]}, {"months": [7], "suspect_span": [6, 8]}],
    "spike": {"suspect": 0.1, "fail": 0.5},
    "rate_of_change": {"suspect_per_minute": 0.05, "fail_per_minute": 0.5},
    "flat_line": {"tolerance": 0.0, "suspect_minutes": 10, "fail_minutes": 30},
    "gap": {"max_intervals": 5, "flag": 4},
    "attenuated": {"window_minutes": 20, "suspect_below": 0.01, "fail_below": 0.002, "min_coverage": 0.8},
}

CASES = {
    "spike": NOISE[:50] + [7.9] + NOISE[50:80] + [6.0] + NOISE[80:120],
    "spike_after_missing": NOISE[:30] + [None, 8.5, float("nan")] + NOISE[30:60],
    "ramp": [round(7.0 + 0.0005 * i, 6) for i in range(400)],
    "flat_line": NOISE[:40] + [7.25] * 60 + NOISE[40:80],
    "flat_line_within_tolerance": NOISE[:40] + [7.25 + 0.002 * (i % 3) for i in range(60)] + NOISE[40:80],
    "gross_range": [7.2, 6.0, 9.8, 14.5, -0.1, 7.0, 7.1, 7.2],
    "rate_of_change": [7.0, 7.03, 7.1, 7.3, 7.9, 7.8, 7.85, 7.84, 7.86],
    "attenuated": NOISE[:60] + [7.2 + 0.005 * (i % 2) for i in range(40)] + [7.3] * 40 + NOISE[60:100],
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("tolerance", [0.0, 0.01])
@pytest.mark.parametrize("method", ["differential", "average"])
def test_every_test_agrees_with_ioos_qc_on_synthetic_cases(case: str, tolerance: float, method: str):
    settings = {
        **PH,
        "flat_line": {**PH["flat_line"], "tolerance": tolerance},
        "spike": {**PH["spike"], "method": method},
    }
    sensors, config = one_sensor("ph", **settings)
    compare(series(CASES[case]), sensors, config)


def test_gaps_break_neighbourhoods_as_in_the_reference_run_per_stretch():
    values = NOISE[:60]
    minutes = [m + (9 if m >= 20 else 0) + (30 if m >= 40 else 0) for m in range(60)]  # gaps of 10 and 31
    sensors, config = one_sensor("ph", **PH)
    compare(series(values, minutes), sensors, config)
    flagged = qc_flags(series(values, minutes), sensors, config)
    assert flagged["qc_gap"].to_list()[19:22] == [1, 4, 1]  # the shipped default would say 3


def test_the_slow_ramp_is_no_flat_line_in_either_and_a_true_flat_line_is_in_both():
    sensors, config = one_sensor(
        "ph", flat_line={"tolerance": 0.01, "suspect_minutes": 60, "fail_minutes": 240}
    )
    ramp = qc_flags(series(CASES["ramp"]), sensors, config)["qc_flat_line"]
    assert set(ramp) == {1}
    stuck = qc_flags(series([7.2] * 300), sensors, config)["qc_flat_line"].to_list()
    assert stuck == [1] * 60 + [3] * 180 + [4] * 60
    compare(series(CASES["ramp"]), sensors, config)
    compare(series([7.2] * 300), sensors, config)


GECCO = {"Tp": "temperature", "Cl": "chlorine_dioxide", "pH": "ph", "Redox": "redox", "Leit": "conductivity",
         "Trueb": "turbidity", "Cl_2": "chlorine_dioxide", "Fm": "flow"}  # fmt: skip


def gecco_long() -> pl.DataFrame:
    wide = pl.read_csv(FIXTURE, null_values=["NA"], try_parse_dates=True, infer_schema_length=None)
    wide = wide.with_columns(observed_at=pl.col("Time").dt.replace_time_zone("UTC"))
    long = wide.unpivot(index="observed_at", on=list(GECCO), variable_name="sensor_id", value_name="value")
    return long.with_columns(
        pl.col("value").cast(pl.Float64), parameter=pl.col("sensor_id").replace_strict(GECCO)
    )


TIGHT = {  # short windows, so that 480 rows exercise every test
    "temperature": {"spike": {"suspect": 0.15}, "rate_of_change": {"suspect_per_minute": 0.15},
                    "flat_line": {"suspect_minutes": 30, "fail_minutes": 90},
                    "attenuated": {"window_minutes": 30, "suspect_below": 0.035, "fail_below": 0.001}},
    "ph": {"spike": {"suspect": 0.02, "fail": 1.0}, "rate_of_change": {"suspect_per_minute": 0.02},
           "flat_line": {"tolerance": 0.01, "suspect_minutes": 10, "fail_minutes": 30},
           "attenuated": {"window_minutes": 30, "suspect_below": 0.02, "fail_below": 0.001}},
    "conductivity": {"spike": {"suspect": 2.0, "fail": 100.0, "method": "average"},
                     "flat_line": {"tolerance": 1.0, "suspect_minutes": 15, "fail_minutes": 45}},
    "redox": {"flat_line": {"tolerance": 2.0, "suspect_minutes": 10, "fail_minutes": 20}},
}  # fmt: skip


@pytest.mark.parametrize("settings", ["shipped", "tight"])
def test_every_test_agrees_with_ioos_qc_on_a_gecco_excerpt(settings: str):
    """The shipped configuration (without its pinned rule) and one with short windows."""
    from tasks.quality.qc import load_qc_config

    shipped = load_qc_config().model_dump()
    for name, parameter in shipped["parameters"].items():
        if parameter.get("gross_range"):
            parameter["gross_range"] = {**parameter["gross_range"], "pinned": None}
        if settings == "tight" and name in TIGHT:
            shipped["parameters"][name] = {**parameter, **TIGHT[name]}
    shipped["defaults"]["gross_range"] = {}
    config = QcConfig.model_validate(shipped)
    long = gecco_long()
    sensors = pl.DataFrame({"sensor_id": list(GECCO), "parameter": list(GECCO.values())})
    compare(long.select("sensor_id", "observed_at", "value"), sensors, config)
    flagged = qc_flags(long.select("sensor_id", "observed_at", "value"), sensors, config)
    assert set(flagged["qc_flag"]) >= {1, 3, 4, 9}  # the excerpt is no quiet one


def test_pinned_readings_at_the_instrument_limits_fail_where_the_reference_knows_no_such_rule():
    long = gecco_long()
    ranges = {
        "pH": (4.0, None),
        "Redox": (300.0, None),
        "Leit": (0.0, 2500.0),
        "Trueb": (None, 0.5),
        "Cl_2": (None, 1.0),
    }
    flagged = flag_long_frame(long, ranges=ranges)
    at_ends = flagged.filter(
        ((pl.col("sensor_id") == "pH") & (pl.col("value") == 4.0))
        | ((pl.col("sensor_id") == "Leit") & (pl.col("value") == 2500.0))
        | ((pl.col("sensor_id") == "Cl_2") & (pl.col("value") == 1.0))
    )
    assert at_ends.height == 27 + 1 + 1
    assert set(at_ends["qc_gross_range"]) == {4} and set(at_ends["qc_flag"]) == {4}
    reference = qartod.gross_range_test(at_ends["value"].to_numpy(), fail_span=(0, 200000))
    assert set(np.asarray(reference)) == {1}  # QARTOD's gross range alone passes them
    inside = flagged.filter(pl.col("value").is_not_null() & ~pl.col("sensor_id").is_in(["Tp", "Cl", "Fm"]))
    assert inside.filter(pl.col("qc_gross_range") == 4).height == at_ends.height


def test_where_the_conventions_differ_each_is_as_the_module_docstring_says():
    sensors, config = one_sensor("ph", **PH)
    values = [7.2] * 40
    stamps = np.array([np.datetime64("2026-01-15T00:00") + np.timedelta64(m, "m") for m in range(40)])
    ours = qc_flags(series(values), sensors, config)
    # flat line: ioos_qc's tolerance is exclusive, so 0 never flags; Waterline's 0 means equal
    assert set(np.asarray(qartod.flat_line_test(values, stamps, 600, 1800, 0))) == {1}
    assert ours["qc_flat_line"].to_list() == [1] * 10 + [3] * 20 + [4] * 10
    # rate of change: the first reading has nothing to compare with
    assert np.asarray(qartod.rate_of_change_test(values, stamps, 0.05 / 60))[0] == 1
    assert ours["qc_rate_of_change"][0] == NOT_EVALUATED
    # gap: the first reading; and the flag after a gap is configurable (3 by default, 4 here)
    assert np.asarray(qartod.time_gap_test(stamps, fail_span=5 / 60))[0] == 1
    assert ours["qc_gap"][0] == NOT_EVALUATED
    default_gap = QcConfig.model_validate(
        {**config.model_dump(), "parameters": {"ph": {**PH, "gap": {"max_intervals": 5}}}}
    )
    gapped = qc_flags(series([7.2, 7.21, 7.22], [0, 1, 10]), sensors, default_gap)
    assert gapped["qc_gap"].to_list() == [2, 1, 3]
    # missing readings: ioos_qc's neighbours of a hole are 2, Waterline's look past it
    holed = [7.2, 7.21, None, 7.22, 7.2]
    assert np.asarray(qartod.spike_test(np.array(holed, dtype=float), 0.1, 0.5))[[1, 3]].tolist() == [2, 2]
    assert qc_flags(series(holed), sensors, config)["qc_spike"].to_list() == [2, 1, 9, 1, 2]
