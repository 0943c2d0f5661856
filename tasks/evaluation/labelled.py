"""Read a labelled file through a source mapping (as ingestion does) into `LabelledReadings`.

The readings are read by the ingestion code itself (`tasks.ingest.files`): a mapping's layout
(long or wide), column names, time format, timezone, CSV dialect and null values all apply, at
any cadence. The labels come either from label columns of the same file (`LabelSpec`: a row is
labelled when any of them reads true, or, with `when="not_empty"`, holds any text) or from a
separate file of labelled intervals (`read_intervals`: `start`, `end`[, `is_event`]).

Which parameter each sensor measures comes from the `registry.yaml` of the mapping's inbox
folder (`<municipality>/sources/<name>.yaml` beside `<municipality>/registry.yaml`). Without a
mapping the GECCO 2018 layout is the built-in default: `Time` in plant time (CET all year),
nine sensor columns named as GECCO names them, `EVENT` true/false, `NA` for missing.

Times are placed in the mapping's timezone and kept as naive UTC, the frame detection reads;
split times and interval times are read in the same timezone. Readings that QC fails
(`tasks.evaluation.qc.drop_failed_readings`) are left out before anything sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from tasks.detection.labelled import LabelledReadings
from tasks.ingest.files import UnreadableFile, file_format, mapped_long, read_table, wide_to_long
from tasks.ingest.mappings import SourceMapping, parse_mapping
from tasks.registry import REGISTRY_FILE, parse_registry

# Column -> canonical parameter (tasks/parameters.yaml) for the GECCO 2018 file.
GECCO_PARAMETERS: dict[str, str] = {
    "Tp": "temperature",
    "Cl": "chlorine_dioxide",
    "pH": "ph",
    "Redox": "redox",
    "Leit": "conductivity",
    "Trueb": "turbidity",
    "Cl_2": "chlorine_dioxide",
    "Fm": "flow",
    "Fm_2": "flow",
}
# The instruments' range ends GECCO's sensors stick at when they fail (its README): QC fails a
# reading there (`gross_range.pinned`); None keeps the configured end.
GECCO_RANGES: dict[str, tuple[float | None, float | None]] = {
    "pH": (4.0, None),
    "Redox": (300.0, None),
    "Leit": (0.0, 2500.0),
    "Trueb": (None, 0.5),
    "Cl_2": (None, 1.0),
}
TRUE_TEXT = ("true", "1", "yes", "t")


def gecco_mapping(columns: Mapping[str, str] = GECCO_PARAMETERS, time_column: str = "Time") -> SourceMapping:
    """The built-in mapping: GECCO's wide export, each column its own sensor (named as the column)."""
    return SourceMapping.model_validate(
        {
            "layout": "wide",
            "time": {"column": time_column, "format": "%Y-%m-%d %H:%M:%S"},
            "timezone": "Etc/GMT-1",
            "csv": {"null_values": ["NA", "NaN", ""]},
            "columns": {c: {"sensor_id": c, "unit": "-"} for c in columns},
        }
    )


@dataclass(frozen=True)
class LabelSpec:
    """Where a row's label is: any of `columns` true (`when="true"`) or holding text (`"not_empty"`)."""

    columns: tuple[str, ...] = ("EVENT",)
    when: Literal["true", "not_empty"] = "true"

    def expr(self) -> pl.Expr:
        texts = [pl.col(c).cast(pl.String).str.strip_chars() for c in self.columns]
        if self.when == "not_empty":
            return pl.any_horizontal((t.is_not_null() & (t != "")) for t in texts).fill_null(False)
        return pl.any_horizontal(t.str.to_lowercase().is_in(TRUE_TEXT) for t in texts).fill_null(False)


@dataclass(frozen=True)
class LabelledSource:
    """How to read one labelled file: its mapping and each sensor's parameter."""

    mapping: SourceMapping
    parameters: dict[str, str]  # sensor_id -> parameter
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # instrument range
    cadences: dict[str, float] = field(default_factory=dict)  # sensor_id -> seconds between readings


def load_source(
    mapping_path: str | Path | None, parameters: Mapping[str, str] | None = None
) -> LabelledSource:
    """The mapping at `mapping_path` with the parameters of its inbox's registry, or the GECCO default.

    `parameters` (sensor_id -> parameter) overrides the registry's."""
    if mapping_path is None:
        wanted = dict(GECCO_PARAMETERS if parameters is None else parameters)
        return LabelledSource(gecco_mapping(wanted), wanted, dict(GECCO_RANGES))
    path = Path(mapping_path)
    if not path.is_file():
        raise FileNotFoundError(f"no source mapping at {path}")
    mapping = parse_mapping(path.read_bytes(), str(path))
    if parameters is not None:
        return LabelledSource(mapping, dict(parameters))
    registry = path.parent.parent / REGISTRY_FILE
    if not registry.is_file():
        raise FileNotFoundError(
            f"no {REGISTRY_FILE} at {registry}: a mapping's inbox folder names each sensor's parameter"
        )
    spec = parse_registry(registry.read_bytes())
    sensors = [sensor for station in spec.stations for sensor in station.sensors]
    return LabelledSource(
        mapping,
        {sensor.id: sensor.parameter for sensor in sensors},
        {s.id: (s.valid_min, s.valid_max) for s in sensors if (s.valid_min, s.valid_max) != (None, None)},
        {s.id: float(s.interval_seconds) for s in sensors if s.interval_seconds},
    )


def naive_utc(text: pl.Series, time_format: str | None, timezone: str) -> pl.Series:
    """Times written in `time_format` (None: ISO-8601) as naive UTC: in `timezone` when written
    without an offset, converted when written with one; null where the text is not such a time."""
    parsed = text.cast(pl.String).str.strip_chars().str.to_datetime(time_format, strict=False, time_unit="us")
    dtype = parsed.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    local = parsed.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def long_readings(table: pl.DataFrame, mapping: SourceMapping) -> pl.DataFrame:
    """`sensor_id`, `observed_at` (naive UTC), `value` of the file's table, read as ingestion reads it."""
    if mapping.layout == "wide":
        long, _, _ = wide_to_long(table, mapping)
    else:
        long = mapped_long(table, mapping)
    observed = naive_utc(long["observed_at"], None, mapping.timezone)
    return long.select(
        pl.col("sensor_id").cast(pl.String),
        observed.alias("observed_at"),
        pl.col("value").cast(pl.Float64, strict=False),
    ).drop_nulls()


def read_intervals(path: str | Path, mapping: SourceMapping) -> pl.DataFrame:
    """A file of labelled intervals (`start`, `end`, optional `is_event`), as naive UTC `start`, `end`
    of the events only; times in the mapping's time format (or ISO-8601) and timezone."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no interval file at {path}")
    raw = pl.read_csv(path, infer_schema=False)
    missing = [c for c in ("start", "end") if c not in raw.columns]
    if missing:
        raise ValueError(f"{path.name} has no {' or '.join(missing)} column: it is not a file of intervals")
    keep = (
        pl.col("is_event").str.strip_chars().str.to_lowercase().is_in(TRUE_TEXT)
        if "is_event" in raw
        else True
    )
    events = raw.filter(keep)
    frame = events.select(naive_utc(events[c], None, mapping.timezone).alias(c) for c in ("start", "end"))
    if frame.null_count().sum_horizontal().item():
        formatted = events.select(
            naive_utc(events[c], mapping.time.format, mapping.timezone).alias(c) for c in ("start", "end")
        )
        if formatted.null_count().sum_horizontal().item():
            raise ValueError(
                f"{path.name} has a start or end that is not a time (ISO-8601 or the mapping's format)"
            )
        frame = formatted
    return frame.sort("start")


def label_from_intervals(times: pl.Series, intervals: pl.DataFrame) -> pl.Series:
    """True for each time inside an interval, both ends included."""
    merged = intervals.with_columns(pl.col("end").cum_max())  # an interval inside an earlier one
    rows = times.to_frame("observed_at").with_row_index("row").sort("observed_at")
    joined = rows.join_asof(merged, left_on="observed_at", right_on="start", strategy="backward")
    inside = joined.sort("row").select((pl.col("observed_at") <= pl.col("end")).fill_null(False))
    return inside.to_series().alias("label")


def read_labelled(
    path: str | Path,
    parameters: Mapping[str, str] | None = None,
    mapping: str | Path | None = None,
    labels: LabelSpec | None = None,
    intervals: str | Path | None = None,
    qc: bool = True,
) -> LabelledReadings:
    """The labelled file at `path` as one row per time (naive UTC), one column per sensor with a
    parameter, and `label`; QC-failed readings left out when `qc`. Raises FileNotFoundError or
    ValueError with a readable sentence."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labelled file at {path}")
    labels = LabelSpec() if labels is None else labels
    source = load_source(mapping, parameters)
    fmt = file_format(path.name) or "csv"
    try:
        table, _, _ = read_table(path.read_bytes(), fmt, source.mapping.csv)
    except UnreadableFile as exc:
        raise ValueError(f"{path.name} cannot be read: {exc}") from None
    if mapping is None:  # the built-in GECCO layout: the sensor columns the file has
        present = {c: p for c, p in source.parameters.items() if c in table.columns}
        if not present:
            raise ValueError(f"{path.name} has none of the sensor columns {', '.join(source.parameters)}")
        source = LabelledSource(gecco_mapping(present), present, source.ranges, source.cadences)
    time_column = source.mapping.time.column
    needed = [time_column] if intervals is not None else [time_column, *labels.columns]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{path.name} has no {' or '.join(missing)} column: it is not a labelled file")
    try:
        long = long_readings(table, source.mapping)
    except UnreadableFile as exc:
        raise ValueError(f"{path.name} cannot be read with its mapping: {exc}") from None
    long = long.filter(pl.col("sensor_id").is_in(list(source.parameters)))
    if long.is_empty():
        raise ValueError(f"{path.name} has none of the sensors {', '.join(source.parameters)}")
    if qc:
        from tasks.evaluation.qc import drop_failed_readings

        long = drop_failed_readings(long, source.parameters, source.ranges, source.cadences)
    present = [s for s in source.parameters if s in set(long["sensor_id"].unique())]
    times = naive_utc(table[time_column], source.mapping.time.format, source.mapping.timezone)
    times = times.alias("observed_at").to_frame()
    if times["observed_at"].is_null().all():
        raise ValueError(f"{path.name}: no value of {time_column} reads as a time in the mapping's format")
    if intervals is None:
        labelled = table.select(times.to_series(), labels.expr().alias("label"))
        labelled = labelled.drop_nulls("observed_at").group_by("observed_at").agg(pl.col("label").any())
    else:
        every = pl.concat([times.to_series(), long["observed_at"]]).drop_nulls().unique().sort()
        labelled = every.to_frame().with_columns(
            label_from_intervals(every, read_intervals(intervals, source.mapping))
        )
    if source.mapping.layout == "wide" and times.to_series().drop_nulls().is_duplicated().any():
        raise ValueError(f"{path.name} has more than one row for the same time")
    wide = long.pivot(on="sensor_id", index="observed_at", values="value", aggregate_function="first")
    frame = (
        labelled.join(wide, on="observed_at", how="left")
        .select(
            "observed_at",
            *(pl.col(s) if s in wide.columns else pl.lit(None, pl.Float64).alias(s) for s in present),
            "label",
        )
        .sort("observed_at")
    )
    return LabelledReadings(frame, {s: source.parameters[s] for s in present})
