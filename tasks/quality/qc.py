"""QARTOD quality control of readings: one flag per test, the worst of them, and where it came from.

Flags follow IOOS QARTOD: 1 good, 2 not evaluated, 3 suspect, 4 fail, 9 missing (no finite value).
`qc_flags` runs seven tests (gross range, climatology, spike, rate of change, flat line, gap,
attenuated signal) with the settings of `tasks/quality/qc.yaml`, which documents each test; the
aggregate `qc_flag` is the worst test (4 > 3 > 1; 2 only when no test could run), `qc_tests` names
the tests that gave it and `qc_config_version` the configuration they ran with.

Every test is computed for all sensors at once on readings sorted by (sensor_id, observed_at).
Neighbours come from `.over("sensor_id")`; sensor-dependent thresholds are gathered per row from a
table built once per distinct (parameter, override); Python loops only over slices of whole
sensors (about 2 M readings each, to bound memory), never per sensor or per row.
Time-aware windows use `observed_at`, not row counts: a gap breaks spike, rate-of-change and
flat-line neighbourhoods, and the attenuated-signal window is a stretch of time whose length may
differ between sensors (cumulative sums over a (sensor, time) key, bounded by `search_sorted`).
Missing readings (null, NaN, infinite) get 9 from every test and are invisible to their neighbours.
A flat line with a tolerance above 0 needs the start of each reading's flat stretch (every reading
since within the tolerance of every other): one compiled pass (`flat_starts`), run only when a
sensor of the batch has such a tolerance. Each sensor's expected interval and instrument range
come from its registry entry where `sensors` has them (`interval_seconds`, `valid_min`,
`valid_max`); `flag_long_frame` flags a frame that has no registry.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
import yaml
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.parameters import catalog

CONFIG_PATH = Path(__file__).with_name("qc.yaml")

GOOD, NOT_EVALUATED, SUSPECT, FAIL, MISSING = 1, 2, 3, 4, 9
TESTS = ("gross_range", "climatology", "spike", "rate_of_change", "flat_line", "gap", "attenuated")
FLAG_COLUMNS = tuple(f"qc_{name}" for name in TESTS)
# Every set of tests as `qc_tests` text ("spike,rate_of_change"), indexed by its bit mask.
QC_TESTS = pl.Enum(
    [",".join(n for bit, n in enumerate(TESTS) if mask >> bit & 1) for mask in range(1 << len(TESTS))]
)
US_PER_MINUTE = 60_000_000
PROFILE_BATCH_READINGS = 100_000  # see qc_flags

Span = tuple[float, float]
OpenSpan = tuple[float | None, float | None]
# A reading this close to an instrument end (relative, at least absolute) counts as at the end:
# unit conversion (mS/cm -> uS/cm) may leave a pinned 2.5 as 2500.0000000001.
PIN_CLOSENESS = 1e-9
# Flat-line comparisons allow this much float noise: 8.24 - 8.23 is 0.0100000000000016, no more
# than a tolerance of 0.01, and 0 means equal to within it.
FLAT_SLACK = 1e-9


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_span(span: Span | None, name: str) -> None:
    if span is not None and span[0] > span[1]:
        raise ValueError(f"{name} {list(span)} has its low end above its high end")


def _check_tiers(suspect: float, fail: float | None, fail_is_lower: bool = False) -> None:
    if fail is not None and (fail > suspect if fail_is_lower else fail < suspect):
        side = "above" if fail_is_lower else "below"
        raise ValueError(f"the fail threshold {fail} is {side} the suspect threshold {suspect}")


class Pinned(_Settings):
    """Readings at or beyond an end of the instrument's measuring range fail: a sensor pinned at its
    limit (pH 4, conductivity 0 or 2500) reports its range, not the water."""

    # The instrument's range; a null end (or no span) is the sensor's registry range end
    # (`valid_min` / `valid_max`) where that differs from the catalog's physical limit.
    span: OpenSpan | None = None

    @model_validator(mode="after")
    def _span_ordered(self) -> Pinned:
        if self.span and None not in self.span:
            _check_span(self.span, "pinned span")  # type: ignore[arg-type]
        return self


class GrossRange(_Settings):
    fail_span: Span | None = None  # default: the parameter's physical range from the catalog
    suspect_span: Span | None = None
    pinned: Pinned | None = None

    @model_validator(mode="after")
    def _spans_nest(self) -> GrossRange:
        _check_span(self.fail_span, "fail_span")
        _check_span(self.suspect_span, "suspect_span")
        if (
            self.fail_span
            and self.suspect_span
            and not (self.fail_span[0] <= self.suspect_span[0] and self.suspect_span[1] <= self.fail_span[1])
        ):
            suspect, fail = list(self.suspect_span), list(self.fail_span)
            raise ValueError(f"suspect_span {suspect} is not inside fail_span {fail}")
        return self


class ClimatologyPeriod(_Settings):
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(min_length=1)
    suspect_span: Span

    @model_validator(mode="after")
    def _span_ordered(self) -> ClimatologyPeriod:
        _check_span(self.suspect_span, "suspect_span")
        return self


class Spike(_Settings):
    suspect: float = Field(gt=0)
    fail: float | None = Field(default=None, gt=0)
    # differential: the smaller jump to either neighbour, when both go the same way (a step is not
    # a spike, nor are a spike's neighbours); average: |x - mean(previous, next)| as in QARTOD.
    method: Literal["differential", "average"] = "differential"

    @model_validator(mode="after")
    def _tiers(self) -> Spike:
        _check_tiers(self.suspect, self.fail)
        return self


class RateOfChange(_Settings):
    suspect_per_minute: float = Field(gt=0)
    fail_per_minute: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _tiers(self) -> RateOfChange:
        _check_tiers(self.suspect_per_minute, self.fail_per_minute)
        return self


class FlatLine(_Settings):
    tolerance: float = Field(default=0.0, ge=0)
    suspect_minutes: float = Field(gt=0)
    fail_minutes: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _tiers(self) -> FlatLine:
        _check_tiers(self.suspect_minutes, self.fail_minutes)
        return self


class Gap(_Settings):
    max_intervals: float = Field(ge=1)
    flag: Literal[3, 4] = SUSPECT


class Attenuated(_Settings):
    window_minutes: float = Field(gt=0)
    suspect_below: float = Field(gt=0)
    fail_below: float | None = Field(default=None, gt=0)
    min_coverage: float = Field(default=0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _tiers(self) -> Attenuated:
        _check_tiers(self.suspect_below, self.fail_below, fail_is_lower=True)
        return self


class SensorQc(_Settings):
    """The merged settings one sensor runs with; a test left at None does not run (flag 2)."""

    expected_interval_seconds: float = Field(default=60.0, gt=0)
    gross_range: GrossRange | None = None
    climatology: list[ClimatologyPeriod] | None = None
    spike: Spike | None = None
    rate_of_change: RateOfChange | None = None
    flat_line: FlatLine | None = None
    gap: Gap | None = None
    attenuated: Attenuated | None = None

    @model_validator(mode="after")
    def _months_once(self) -> SensorQc:
        months = [m for period in self.climatology or [] for m in period.months]
        if len(months) != len(set(months)):
            raise ValueError(f"climatology names a month twice: {sorted(months)}")
        return self


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings merge key by key, anything else (lists, null) replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


class QcConfig(_Settings):
    """`tasks/quality/qc.yaml`: a version, defaults, per-parameter and per-sensor settings."""

    version: str = Field(min_length=1)
    defaults: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sensors: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_layer_valid(self) -> QcConfig:
        for name in {*self.parameters, *catalog()}:
            self.for_sensor(None, name)
        known = set(SensorQc.model_fields)
        for sensor_id, override in self.sensors.items():
            if unknown := sorted(set(override) - known):
                raise ValueError(f"sensor {sensor_id!r}: unknown settings {unknown}; known: {sorted(known)}")
        return self

    @property
    def digest(self) -> str:
        """SHA-256 of the configuration's content: tells two files apart that kept one version."""
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()

    def for_sensor(
        self,
        sensor_id: str | None,
        parameter: str,
        interval_seconds: float | None = None,
        valid_range: OpenSpan = (None, None),
    ) -> SensorQc:
        """The settings of one sensor: defaults, then its parameter, then what the registry says of
        the sensor (its cadence `interval_seconds` as the expected interval, its `valid_range` as
        the pinned test's instrument range), then its own overrides in `sensors`."""
        layers = merged(self.defaults, self.parameters.get(parameter, {}))
        if interval_seconds:
            layers["expected_interval_seconds"] = float(interval_seconds)
        layers = merged(layers, self.sensors.get(sensor_id, {}) if sensor_id else {})
        gross = layers.get("gross_range")
        if isinstance(gross, Mapping):
            physical = catalog().get(parameter)
            if gross.get("fail_span") is None and physical is not None:
                gross = {**gross, "fail_span": [physical.min, physical.max]}
            if isinstance(pinned := gross.get("pinned"), Mapping):
                span = list(pinned.get("span") or (None, None))
                limits = (physical.min, physical.max) if physical else (None, None)
                for end in (0, 1):  # a catalog limit filled in by the registry is no instrument's
                    if span[end] is None and valid_range[end] is not None and valid_range[end] != limits[end]:
                        span[end] = valid_range[end]
                gross = {**gross, "pinned": {**pinned, "span": span}}
            layers["gross_range"] = gross
        try:
            return SensorQc.model_validate(layers)
        except ValidationError as exc:
            where = f"sensor {sensor_id!r} ({parameter})" if sensor_id else f"parameter {parameter!r}"
            raise ValueError(f"QC settings of {where} are invalid: {exc}") from None


@lru_cache(maxsize=8)
def load_qc_config(path: Path | None = None) -> QcConfig:
    """The validated QC configuration, from `tasks/quality/qc.yaml` unless `path` is given."""
    raw = yaml.safe_load(Path(path or CONFIG_PATH).read_text()) or {}
    raw["sensors"] = {str(k): v or {} for k, v in (raw.get("sensors") or {}).items()}
    raw["parameters"] = {str(k): v or {} for k, v in (raw.get("parameters") or {}).items()}
    raw["defaults"] = raw.get("defaults") or {}
    return QcConfig.model_validate(raw)


# One row per sensor of the thresholds it runs with; null where a test is off.
THRESHOLD_SCHEMA = {
    "fail_lo": pl.Float64, "fail_hi": pl.Float64, "suspect_lo": pl.Float64, "suspect_hi": pl.Float64,
    "pin_lo": pl.Float64, "pin_hi": pl.Float64,
    "clim_lo": pl.List(pl.Float64), "clim_hi": pl.List(pl.Float64),
    "spike_suspect": pl.Float64, "spike_fail": pl.Float64, "spike_average": pl.Boolean,
    "roc_suspect": pl.Float64, "roc_fail": pl.Float64,
    "flat_tolerance": pl.Float64, "flat_suspect_us": pl.Float64, "flat_fail_us": pl.Float64,
    "gap_us": pl.Float64, "gap_flag": pl.Int8,
    "att_window_us": pl.Int64, "att_suspect": pl.Float64, "att_fail": pl.Float64, "att_min_count": pl.Int64,
}  # fmt: skip


def thresholds(settings: SensorQc | None) -> dict[str, Any]:
    """The settings as one row of THRESHOLD_SCHEMA (all null: no test runs)."""
    row: dict[str, Any] = dict.fromkeys(THRESHOLD_SCHEMA)
    row["clim_lo"], row["clim_hi"] = [None] * 12, [None] * 12
    if settings is None:
        return row
    interval_us = settings.expected_interval_seconds * 1e6
    if (gross := settings.gross_range) is not None:
        row["fail_lo"], row["fail_hi"] = gross.fail_span or (None, None)
        row["suspect_lo"], row["suspect_hi"] = gross.suspect_span or (None, None)
        low, high = gross.pinned.span or (None, None) if gross.pinned else (None, None)
        # at or beyond an end, within PIN_CLOSENESS of it
        row["pin_lo"] = None if low is None else low + PIN_CLOSENESS * max(1.0, abs(low))
        row["pin_hi"] = None if high is None else high - PIN_CLOSENESS * max(1.0, abs(high))
    for period in settings.climatology or []:
        for month in period.months:
            row["clim_lo"][month - 1], row["clim_hi"][month - 1] = period.suspect_span
    if (spike := settings.spike) is not None:
        row["spike_suspect"], row["spike_fail"] = spike.suspect, spike.fail
        row["spike_average"] = spike.method == "average"
    if (roc := settings.rate_of_change) is not None:
        row["roc_suspect"], row["roc_fail"] = roc.suspect_per_minute, roc.fail_per_minute
    if (flat := settings.flat_line) is not None:
        row["flat_tolerance"] = flat.tolerance
        row["flat_suspect_us"] = flat.suspect_minutes * US_PER_MINUTE
        row["flat_fail_us"] = flat.fail_minutes * US_PER_MINUTE if flat.fail_minutes else None
    if (gap := settings.gap) is not None:
        row["gap_us"], row["gap_flag"] = gap.max_intervals * interval_us, gap.flag
    if (att := settings.attenuated) is not None:
        window_us = att.window_minutes * US_PER_MINUTE
        row["att_window_us"] = round(window_us)
        row["att_suspect"], row["att_fail"] = att.suspect_below, att.fail_below
        row["att_min_count"] = max(2, math.ceil(att.min_coverage * window_us / interval_us - 1e-9))
    return row


REGISTRY_COLUMNS = {"interval_seconds": pl.Float64, "valid_min": pl.Float64, "valid_max": pl.Float64}
PROFILE_KEY = ["parameter", "override", *REGISTRY_COLUMNS]


def sensor_thresholds(sensor_ids: pl.Series, sensors: pl.DataFrame, config: QcConfig) -> pl.DataFrame:
    """THRESHOLD_SCHEMA for each of `sensor_ids`, in order; a sensor not in `sensors` runs no test.

    `sensors` has `sensor_id` and `parameter`, and may have the registry's `interval_seconds`,
    `valid_min` and `valid_max` (see `QcConfig.for_sensor`). Settings are merged once per distinct
    (parameter, overridden sensor, registry values), not once per sensor.
    """
    registry = [
        (pl.col(c) if c in sensors.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in REGISTRY_COLUMNS.items()
    ]
    known = sensors.lazy().select("sensor_id", "parameter", *registry).unique("sensor_id").collect()
    keyed = (
        sensor_ids.cast(pl.String)
        .to_frame("sensor_id")
        .join(known, on="sensor_id", how="left", maintain_order="left")
        .with_columns(
            override=pl.when(pl.col("sensor_id").is_in(list(config.sensors))).then(pl.col("sensor_id"))
        )
    )
    profiles = keyed.select(PROFILE_KEY).unique()
    rows = [
        thresholds(
            None if parameter is None else config.for_sensor(override, parameter, interval, (low, high))
        )
        for parameter, override, interval, low, high in profiles.iter_rows()
    ]
    table = pl.concat([profiles, pl.DataFrame(rows, schema=THRESHOLD_SCHEMA)], how="horizontal")
    joined = keyed.join(table, on=PROFILE_KEY, how="left", nulls_equal=True, maintain_order="left")
    return joined.drop(*REGISTRY_COLUMNS)


def _flag(missing: pl.Expr, runs: pl.Expr, fail: pl.Expr, suspect: pl.Expr) -> pl.Expr:
    """9 when missing, 2 when the test cannot run, else 4, 3 or 1 by the first condition met."""
    return (
        pl.when(missing).then(MISSING)
        .when(~runs.fill_null(False)).then(NOT_EVALUATED)
        .when(fail.fill_null(False)).then(FAIL)
        .when(suspect.fill_null(False)).then(SUSPECT)
        .otherwise(GOOD)
        .cast(pl.Int8)
    )  # fmt: skip


def sorted_readings(readings: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """`readings` sorted by (sensor_id, observed_at); a frame already in that order is not re-sorted."""
    frame = readings.lazy().collect(engine="in-memory") if isinstance(readings, pl.LazyFrame) else readings
    sensor, time = pl.col("sensor_id"), pl.col("observed_at")
    in_order = (sensor > sensor.shift(1)) | ((sensor == sensor.shift(1)) & (time >= time.shift(1)))
    if frame.select(in_order.fill_null(True).all()).item():
        return frame
    return frame.sort("sensor_id", "observed_at")


def qc_flags(
    readings: pl.LazyFrame | pl.DataFrame,
    sensors: pl.DataFrame,
    config: QcConfig | None = None,
    batch_readings: int = 2_000_000,
    profile_batch_readings: int = PROFILE_BATCH_READINGS,
) -> pl.DataFrame:
    """Every reading with its seven test flags, the worst-wins `qc_flag` and its provenance.

    `readings` has `sensor_id`, `observed_at` (UTC) and `value` (a `qc_flag` already there is
    replaced; other columns are kept); `sensors` maps `sensor_id` to `parameter`. The result is
    sorted by (sensor_id, observed_at). Spike needs the next reading, flat line and attenuated
    signal their trailing window: give the batch that much lookback (and lookahead) around the
    period whose flags are stored.

    Whole sensors are flagged together in batches of at most about `batch_readings` readings,
    which bounds the memory the intermediate columns take. A batch also ends where the next
    sensor's settings differ from the batch's once it holds `profile_batch_readings`: a batch of
    one settings profile compares with constants instead of per-row thresholds, which costs a
    quarter less, and past that size it outweighs the ~10 ms a query costs.
    """
    config = config or load_qc_config()
    frame = sorted_readings(readings).drop("qc_flag", strict=False)
    first = (pl.col("sensor_id") != pl.col("sensor_id").shift(1)).fill_null(True)
    starts = frame.with_row_index("offset").filter(first).select("sensor_id", "offset")
    table = sensor_thresholds(starts["sensor_id"], sensors, config)
    rows = starts["offset"].shift(-1, fill_value=frame.height) - starts["offset"]
    scalars = [name for name, dtype in THRESHOLD_SCHEMA.items() if not isinstance(dtype, pl.List)]
    profiles = table.select(pl.struct("parameter", "override", *scalars).rank("dense"))[:, 0]
    parts, sensor, batch_rows = [], 0, 0  # a loop over whole sensors: each batch is a slice
    for k, (count, profile) in enumerate(zip(rows, profiles, strict=True)):
        full = batch_rows + count > batch_readings
        switch = profile != profiles[sensor] and batch_rows >= profile_batch_readings
        if batch_rows and (full or switch):
            parts.append(_flag_slice(frame, starts, table, sensor, k, config.version))
            sensor, batch_rows = k, 0
        batch_rows += count
    if table.height:
        parts.append(_flag_slice(frame, starts, table, sensor, table.height, config.version))
    return pl.concat(parts) if parts else flag_sorted(frame, table, config.version)


def _flag_slice(
    frame: pl.DataFrame, starts: pl.DataFrame, table: pl.DataFrame, first: int, end: int, version: str
) -> pl.DataFrame:
    """`flag_sorted` of the readings of sensors `first` to `end` (exclusive)."""
    offset = starts["offset"][first]
    stop = starts["offset"][end] if end < starts.height else frame.height
    return flag_sorted(frame.slice(offset, stop - offset), table.slice(first, end - first), version)


def flag_sorted(frame: pl.DataFrame, table: pl.DataFrame, version: str) -> pl.DataFrame:
    """`qc_flags` of readings already sorted by (sensor_id, observed_at), whose sensors' thresholds
    are the rows of `table` in the same order."""
    first = (pl.col("sensor_id") != pl.col("sensor_id").shift(1)).fill_null(True)
    frame = frame.with_columns(_r=(first.cum_sum() - 1).cast(pl.Int64), _first=first)

    # Each sensor's thresholds on each of its rows, gathered eagerly: literal Series in the lazy
    # plan trip Polars 2.1's common-subexpression elimination when two are all null.
    # A threshold the same for every sensor of the batch (or off for all) stays one typed scalar.
    scalars = [name for name, dtype in THRESHOLD_SCHEMA.items() if not isinstance(dtype, pl.List)]
    constant = {name: table[name][0] for name in scalars if table.height and table[name].n_unique() == 1}
    frame = frame.with_columns(
        table[name].gather(frame["_r"]).alias(f"_{name}") for name in scalars if name not in constant
    )

    def per_row(name: str) -> pl.Expr:
        if name in constant:
            return pl.lit(constant[name], THRESHOLD_SCHEMA[name])
        return pl.col(f"_{name}")

    # A (sensor, time) key that increases through the frame, for time windows across all sensors.
    times = frame["observed_at"].dt.epoch("us")
    t_min, t_max = (times.min(), times.max()) if frame.height else (0, 0)
    stride = t_max - t_min + int(table["att_window_us"].max() or 0) + 1
    if table.height * stride >= 2**62:
        raise ValueError("readings span too long a time for one batch; split them by time or sensor")

    x, t, r = pl.col("_x"), pl.col("_t"), pl.col("_r")
    missing = x.is_null()
    valued_sensor = pl.when(x.is_not_null()).then(r)
    steps = (
        frame.lazy()
        .with_columns(
            _x=pl.when(pl.col("value").cast(pl.Float64).is_finite()).then(pl.col("value").cast(pl.Float64)),
            _t=pl.col("observed_at").dt.epoch("us"),
        )
        .with_columns(
            _tv=pl.when(x.is_not_null()).then(t),
            _key=r * stride + (t - t_min),
            # the sensors of the previous and next readings that have a value
            _pr=valued_sensor.shift(1).forward_fill(),
            _nr=valued_sensor.shift(-1).backward_fill(),
        )
        .with_columns(
            # the previous and next readings that have a value, within the same sensor: filled
            # over the whole column, kept where that reading is of the same sensor
            _px=pl.when(pl.col("_pr") == r).then(x.shift(1).forward_fill()),
            _pt=pl.when(pl.col("_pr") == r).then(pl.col("_tv").shift(1).forward_fill()),
            _nx=pl.when(pl.col("_nr") == r).then(x.shift(-1).backward_fill()),
            _nt=pl.when(pl.col("_nr") == r).then(pl.col("_tv").shift(-1).backward_fill()),
            _limit=per_row("gap_us").fill_null(float("inf")),
            _ref=pl.when("_first").then(x.fill_null(0.0)).forward_fill(),
        )
        .with_columns(_dtp=t - pl.col("_pt"), _dtn=pl.col("_nt") - t)
        .with_columns(
            _near_prev=pl.col("_dtp") <= pl.col("_limit"),
            # a stretch begins at each sensor's first valid reading, after a gap, and at a step
            # larger than the tolerance (no window that holds it is flat)
            _breaks=pl.col("_pt").is_null()
            | (pl.col("_dtp") > pl.col("_limit"))
            | ((x - pl.col("_px")).abs() > per_row("flat_tolerance") + FLAT_SLACK),
        )
    )
    if (table["flat_tolerance"].fill_null(0.0) > 0).any():
        steps = steps.with_columns(_flat_start=_flat_starts_within_tolerance(per_row("flat_tolerance")))
    else:  # tolerance 0: the stretch is flat from its first reading on
        steps = steps.with_columns(_flat_start=pl.when("_breaks").then(t).forward_fill())
    steps = _with_attenuation(steps, per_row)

    month_index = r * 12 + pl.col("observed_at").dt.month().cast(pl.Int64) - 1
    clim_lo = pl.lit(table["clim_lo"].explode()).gather(month_index)
    clim_hi = pl.lit(table["clim_hi"].explode()).gather(month_index)
    has_climatology = table["clim_lo"].explode().is_not_null().any()
    rise, fall = x - pl.col("_px"), x - pl.col("_nx")
    spike = (
        pl.when(per_row("spike_average"))
        .then((x - (pl.col("_px") + pl.col("_nx")) / 2).abs())
        .when(rise * fall > 0)
        .then(pl.min_horizontal(rise.abs(), fall.abs()))
        .otherwise(0.0)
    )
    rate = (x - pl.col("_px")).abs() * US_PER_MINUTE / pl.col("_dtp")
    flat_for = t - pl.col("_flat_start")
    gap_for = pl.col("_dtp") > pl.col("_limit")
    std = pl.col("_std")
    pinned = (
        pl.lit(False)
        if table["pin_lo"].is_null().all() and table["pin_hi"].is_null().all()
        else (x <= per_row("pin_lo")).fill_null(False) | (x >= per_row("pin_hi")).fill_null(False)
    )
    tests = {
        "qc_gross_range": _flag(
            missing,
            pl.any_horizontal(
                [per_row(e).is_not_null() for e in ("fail_lo", "suspect_lo", "pin_lo", "pin_hi")]
            ),
            (x < per_row("fail_lo")) | (x > per_row("fail_hi")) | pinned,
            (x < per_row("suspect_lo")) | (x > per_row("suspect_hi")),
        ),
        "qc_climatology": _flag(missing, clim_lo.is_not_null(), pl.lit(False), (x < clim_lo) | (x > clim_hi))
        if has_climatology
        else _flag(missing, pl.lit(False), pl.lit(False), pl.lit(False)),
        "qc_spike": _flag(
            missing,
            per_row("spike_suspect").is_not_null()
            & pl.col("_near_prev")
            & (pl.col("_dtn") <= pl.col("_limit")),
            spike > per_row("spike_fail"),
            spike > per_row("spike_suspect"),
        ),
        "qc_rate_of_change": _flag(
            missing,
            per_row("roc_suspect").is_not_null() & pl.col("_near_prev") & (pl.col("_dtp") > 0),
            rate > per_row("roc_fail"),
            rate > per_row("roc_suspect"),
        ),
        "qc_flat_line": _flag(
            missing,
            per_row("flat_suspect_us").is_not_null(),
            flat_for >= per_row("flat_fail_us"),
            flat_for >= per_row("flat_suspect_us"),
        ),
        "qc_gap": _flag(
            missing,
            per_row("gap_us").is_not_null() & pl.col("_pt").is_not_null(),
            gap_for & (per_row("gap_flag") == FAIL),
            gap_for,
        ),
        "qc_attenuated": _flag(
            missing,
            per_row("att_suspect").is_not_null() & (pl.col("_n") >= per_row("att_min_count")),
            std < per_row("att_fail"),
            std < per_row("att_suspect"),
        ),
    }
    flags = [pl.col(name) for name in FLAG_COLUMNS]
    worst = pl.max_horizontal([pl.when(f == NOT_EVALUATED).then(0).otherwise(f) for f in flags])
    qc_flag = pl.when(missing).then(MISSING).when(worst == 0).then(NOT_EVALUATED).otherwise(worst)
    gave_it = [(f == pl.col("qc_flag")).cast(pl.UInt8) * (1 << bit) for bit, f in enumerate(flags)]
    mask = pl.sum_horizontal(gave_it)
    kept = [c for c in frame.columns if not c.startswith("_")]
    return (
        steps.with_columns(**tests)
        .with_columns(qc_flag=qc_flag.cast(pl.Int16))
        .select(
            *kept,
            *FLAG_COLUMNS,
            "qc_flag",
            qc_tests=pl.lit(pl.Series(QC_TESTS.categories, dtype=QC_TESTS)).gather(mask),
            qc_config_version=pl.lit(version),
        )
        .collect(engine="in-memory")  # twice as fast here as the streaming engine
    )


def _flat_starts_within_tolerance(tolerance: pl.Expr) -> pl.Expr:
    """`_flat_start` where a tolerance is above 0: the time of the earliest reading from which on
    every valid reading up to this one lies within the tolerance of every other (max - min), in the
    stretch `_breaks` began. With tolerance 0 that is the stretch's first reading."""

    def run(columns: pl.Series) -> pl.Series:
        parts = columns.struct.unnest()
        starts = flat_starts(
            parts["_x"].fill_null(np.nan).to_numpy(),
            parts["_t"].to_numpy(),
            parts["_breaks"].fill_null(False).to_numpy(),
            parts["_tol"].fill_null(0.0).to_numpy() + FLAT_SLACK,
        )
        return pl.Series(starts)

    columns = pl.struct("_x", "_t", "_breaks", _tol=tolerance)
    return columns.map_batches(run, return_dtype=pl.Int64)


@njit(nogil=True, cache=True)
def flat_starts(x, t, breaks, tolerance):  # noqa: ANN001, ANN201
    """Per row, the time of the earliest reading j of its stretch such that max - min of the valid
    readings j..i is at most `tolerance[i]` (NaN values are missing and skipped; a row with
    `breaks` starts a new stretch). Two pointers with monotonic queues of the window's maximum and
    minimum: each reading enters and leaves each queue once, so O(n) whatever the windows."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.int64)
    high = np.empty(n, dtype=np.int64)  # indices of decreasing values: the window's maximum first
    low = np.empty(n, dtype=np.int64)  # indices of increasing values: the window's minimum first
    h0 = h1 = l0 = l1 = 0
    first = 0  # the window's first row
    for i in range(n):
        if np.isnan(x[i]):
            out[i] = t[first] if i > 0 else t[i]
            continue
        if breaks[i]:
            h0 = h1 = l0 = l1 = 0
            first = i
        while h1 > h0 and x[high[h1 - 1]] <= x[i]:
            h1 -= 1
        high[h1] = i
        h1 += 1
        while l1 > l0 and x[low[l1 - 1]] >= x[i]:
            l1 -= 1
        low[l1] = i
        l1 += 1
        while x[high[h0]] - x[low[l0]] > tolerance[i]:
            first += 1  # the window gives up its first row until what is left is flat
            while high[h0] < first:
                h0 += 1
            while low[l0] < first:
                l0 += 1
        while np.isnan(x[first]):
            first += 1
        out[i] = t[first]
    return out


def _with_attenuation(steps: pl.LazyFrame, per_row: Any) -> pl.LazyFrame:
    """`_n` and `_std` (ddof 0) of the valid readings in each row's trailing window (t - w, t].

    The window length is per sensor, so instead of a fixed-size rolling window: cumulative sums of
    the values per sensor (centred on the sensor's first value, for precision), and the window's
    first row found with `search_sorted` on the (sensor, time) key, which never reaches into another
    sensor.
    """
    x = pl.col("_x")
    centred = (x - pl.col("_ref")).fill_null(0.0)
    window = per_row("att_window_us").fill_null(1)

    def before_window(per_sensor_total: str) -> pl.Expr:  # the total just before each window starts
        exclusive = pl.when(pl.col("_first")).then(0).otherwise(pl.col(per_sensor_total).shift(1))
        return exclusive.gather(pl.col("_start"))

    return (
        steps.with_columns(
            _s1=centred.cum_sum().over("sensor_id"),
            _s2=(centred * centred).cum_sum().over("sensor_id"),
            _c=x.is_not_null().cast(pl.Int64).cum_sum().over("sensor_id"),
            _start=pl.col("_key").search_sorted(pl.col("_key") - window, side="right"),
        )
        .with_columns(
            _n=pl.col("_c") - before_window("_c"),
            _sum1=pl.col("_s1") - before_window("_s1"),
            _sum2=pl.col("_s2") - before_window("_s2"),
        )
        .with_columns(
            _std=(pl.col("_sum2") / pl.col("_n") - (pl.col("_sum1") / pl.col("_n")) ** 2).clip(0.0).sqrt()
        )
        .with_columns(_std=_rounded_near(pl.col("_std"), [per_row("att_fail"), per_row("att_suspect")]))
    )


def _rounded_near(std: pl.Expr, thresholds: list[pl.Expr]) -> pl.Expr:
    """`std` to 6 significant digits (the same window gives the same verdict whatever came before
    it) where that can change how it compares with a threshold: within 1e-5 of it relatively, more
    than rounding moves a value. Elsewhere the value as it is, so only those few rows are rounded."""
    near = pl.any_horizontal([(std - limit).abs() <= std * 1e-5 for limit in thresholds]).fill_null(False)
    rows = near.cum_sum().cast(pl.Int64) - 1
    rounded = std.filter(near).round_sig_figs(6).append(pl.lit(0.0)).gather(rows.clip(0))
    return pl.when(near).then(rounded).otherwise(std)


def flag_long_frame(
    readings: pl.LazyFrame | pl.DataFrame,
    ranges: Mapping[str, OpenSpan] | None = None,
    interval_seconds: Mapping[str, float] | None = None,
    config: QcConfig | None = None,
) -> pl.DataFrame:
    """`qc_flags` of a long frame that names each reading's parameter itself, with no registry.

    `readings` has `sensor_id`, `observed_at` (UTC), `value` and `parameter`. `ranges` gives per
    sensor id its instrument's range `(low, high)`: a reading at or beyond an end fails (gross range,
    pinned); an end given as None keeps the configuration's (conductivity's 0, for instance).
    `interval_seconds` gives per sensor id its cadence; a sensor without one is taken to report at
    the median step between its readings. Returns the readings with `FLAG_COLUMNS`, `qc_flag`,
    `qc_tests` and `qc_config_version`, sorted by (sensor_id, observed_at).
    """
    config = config or load_qc_config()
    frame = readings.lazy().collect() if isinstance(readings, pl.LazyFrame) else readings
    given = pl.DataFrame(
        {"sensor_id": list(interval_seconds or {}), "given": list((interval_seconds or {}).values())},
        schema={"sensor_id": pl.String, "given": pl.Float64},
    )
    sensors = (
        frame.lazy()
        .group_by("sensor_id")
        .agg(
            pl.col("parameter").first(),
            median=pl.col("observed_at").sort().diff().median().dt.total_microseconds() / 1e6,
        )
        .join(given.lazy(), on="sensor_id", how="left")
        .select("sensor_id", "parameter", interval_seconds=pl.coalesce("given", "median"))
        .collect()
    )
    if ranges:
        parameters = dict(sensors.select("sensor_id", "parameter").iter_rows())
        overrides = dict(config.sensors)
        for sensor_id, span in ranges.items():
            if sensor_id not in parameters:
                continue
            gross = config.for_sensor(sensor_id, parameters[sensor_id]).gross_range
            configured = gross.pinned.span if gross and gross.pinned and gross.pinned.span else (None, None)
            ends = [given if given is not None else end for given, end in zip(span, configured, strict=True)]
            overrides[sensor_id] = merged(
                overrides.get(sensor_id, {}), {"gross_range": {"pinned": {"span": ends}}}
            )
        config = QcConfig.model_validate({**config.model_dump(), "sensors": overrides})
    return qc_flags(frame, sensors, config)
