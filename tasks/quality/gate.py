"""The ingest gate: Polars prepares derived columns, Great Expectations judges them, rows split.

A file's rows either pass (and load as readings in the canonical unit) or go to quarantine with
every reason that applies. The suite is `suites/readings_long.json`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from threading import Lock

import polars as pl

from tasks.parameters import catalog
from tasks.quality.expectations import ROW_NUMBER, run_suite
from tasks.quality.reasons import explain_failures
from tasks.quality.units import conversion

SUITE = "readings_long"
# A file's 1-based row number, carried by a chunk of a larger file (a file may have a column of
# any other name); added when absent.
FILE_ROW = "__waterline_row_number__"
REQUIRED_COLUMNS = ("sensor_id", "observed_at", "value", "unit")
SENSOR_SCHEMA = {
    "sensor_id": pl.String,
    "parameter": pl.String,
    "valid_min": pl.Float64,
    "valid_max": pl.Float64,
    "installed_at": pl.Datetime("us", "UTC"),
}
READING_SCHEMA = {
    "sensor_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
}
GX_COLUMNS = (
    ROW_NUMBER,
    "sensor_id",
    "unit",
    "observed_at_us",
    "is_observed_at_readable",
    "is_local_time_existing",
    "is_local_time_unambiguous",
    "is_value_number",
    "is_value_finite",
    "value_canonical",
    "is_known_sensor",
    "is_unit_accepted",
    "valid_min",
    "valid_max",
    "installed_at_us",
)

_CONVERSIONS_LOCK = Lock()


@dataclass(frozen=True)
class GateResult:
    """What the gate decided for one file."""

    readings: pl.DataFrame  # sensor_id, observed_at (UTC), value (canonical unit)
    quarantined: pl.DataFrame  # row_number, raw (JSON text of the original row), reasons
    validation: dict  # GX statistics and per-expectation counts, for ingest_batches.validation
    gx_result: dict = field(default_factory=dict)  # GX's own result without row lists, for Data Docs

    @property
    def rows_total(self) -> int:
        return self.readings.height + self.quarantined.height


def no_validation() -> dict:
    """The validation of a batch no row of which reached the suite."""
    return {
        "suite": SUITE,
        "statistics": {},
        "expectations": [],
        "gx_seconds": 0.0,
        "gate_seconds": 0.0,
        "rows_failed": 0,
    }


# Times written without an offset: ISO-8601 wall-clock times, read in the source's timezone.
NAIVE_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


def unit_conversions() -> pl.DataFrame:
    """The (parameter, unit) -> factor, offset table, built once per process (thread-safe)."""
    with _CONVERSIONS_LOCK:
        return _unit_conversions()


@lru_cache(maxsize=1)
def _unit_conversions() -> pl.DataFrame:
    """Every accepted (parameter, unit spelling) with factor and offset to the canonical unit.

    pint computes each entry once (tasks/quality/units.py); the gate joins this small table and
    converts the whole value column as `value * factor + offset`.
    """
    rows = []
    for p in catalog().values():
        for unit in p.accepted_units:
            converted = conversion(unit, p.unit)
            rows.append(
                {
                    "parameter": p.name,
                    "unit": unit,
                    "factor": converted.factor,
                    "offset": converted.offset,
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "parameter": pl.String,
            "unit": pl.String,
            "factor": pl.Float64,
            "offset": pl.Float64,
        },
    )


@lru_cache(maxsize=1)
def parameter_limits() -> pl.DataFrame:
    """Per parameter: the physical range (fallback for sensors without one) and accepted units."""
    return pl.DataFrame(
        [
            {
                "parameter": p.name,
                "catalog_min": p.min,
                "catalog_max": p.max,
                "accepted_units": ", ".join(p.accepted_units),
            }
            for p in catalog().values()
        ],
        schema={
            "parameter": pl.String,
            "catalog_min": pl.Float64,
            "catalog_max": pl.Float64,
            "accepted_units": pl.String,
        },
    )


def parse_observed_at(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(time with an offset as UTC, wall-clock time written without one); null where not that.

    ISO-8601 text with an offset or Z, and zoned timestamps, are exact instants. Text without an
    offset and naive timestamps are wall-clock times, placed in the source's timezone later.
    """
    col = pl.col(name)
    no_time = pl.lit(None, dtype=pl.Datetime("us"))
    if dtype == pl.String:
        text = col.str.strip_chars()
        exact = text.str.to_datetime(format="%+", time_zone="UTC", time_unit="us", strict=False)
        # Only rows without an offset are read again (null input costs next to nothing).
        rest = pl.when(exact.is_null()).then(text)
        wall = pl.coalesce(
            [
                rest.str.to_datetime(format=fmt, time_unit="us", strict=False)
                for fmt in NAIVE_TIME_FORMATS
            ]
        )
        return exact, wall
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return col.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")), no_time
    if isinstance(dtype, pl.Datetime):
        return pl.lit(None, dtype=pl.Datetime("us", "UTC")), col.cast(pl.Datetime("us"))
    return pl.lit(None, dtype=pl.Datetime("us", "UTC")), no_time


def place_local_time(wall: pl.Expr, timezone: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(UTC instant, exists?, unambiguous?) of a wall-clock time in `timezone`, columnar.

    A time in the spring-forward gap does not exist and one in the fall-back fold exists twice:
    neither gets an instant (no silent shift); the two flags say which, and are null where they
    do not apply (no wall-clock time, or a time already found not to exist).
    """
    earliest = wall.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    single = wall.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
    instant = single.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC"))
    exists = pl.when(wall.is_not_null()).then(earliest.is_not_null())
    unambiguous = pl.when(earliest.is_not_null()).then(single.is_not_null())
    return instant, exists, unambiguous


def parse_number(name: str, dtype: pl.DataType) -> pl.Expr:
    """The value as a float (NaN and infinities included), or null for text that is no number.

    Only numbers and text are read: a boolean, time or category is no measurement (null).
    """
    col = pl.col(name)
    if dtype == pl.String:
        col = col.str.strip_chars()
    elif not dtype.is_numeric():
        return pl.lit(None, dtype=pl.Float64)
    return col.cast(pl.Float64, strict=False)


def _clean_text(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text).otherwise(None)


def prepare_readings(
    raw: pl.DataFrame, sensors: pl.DataFrame, *, timezone: str = "UTC"
) -> pl.DataFrame:
    """Parse the four long-format columns and join this municipality's sensors and the catalog.

    `raw` keeps whatever the file held (text for CSV, typed columns for Parquet); the result adds
    `row_number` (1-based, file order) and the derived columns the suite judges. Only sensors in
    `sensors` (this municipality's) are known: another tenant's sensor id is unknown here.
    Times written without an offset are wall-clock times in `timezone` (the source's zone).
    """
    raw = numbered(raw)
    schema = raw.schema
    missing = [name for name in REQUIRED_COLUMNS if name not in schema]
    if missing:
        raise ValueError(f"missing required column(s): {', '.join(missing)}")
    exact, wall = parse_observed_at("observed_at", schema["observed_at"])
    number = parse_number("value", schema["value"])
    parsed = raw.select(
        pl.col(FILE_ROW).alias(ROW_NUMBER),
        _clean_text("sensor_id").alias("sensor_id"),
        _clean_text("unit").alias("unit"),
        exact.alias("observed_at_exact"),
        wall.alias("observed_at_local"),
        number.alias("value_number"),
        pl.col("observed_at").cast(pl.String).alias("observed_at_text"),
        pl.col("value").cast(pl.String).alias("value_text"),
    )
    local_instant, local_exists, local_unambiguous = place_local_time(
        pl.col("observed_at_local"), timezone
    )
    number = pl.col("value_number")
    parsed = parsed.with_columns(
        observed_at=pl.coalesce("observed_at_exact", local_instant),
        is_observed_at_readable=pl.col("observed_at_exact").is_not_null()
        | pl.col("observed_at_local").is_not_null(),
        is_local_time_existing=local_exists,
        is_local_time_unambiguous=local_unambiguous,
        is_value_number=number.is_not_null(),
        is_value_finite=pl.when(number.is_not_null()).then(number.is_finite()),
        value=pl.when(number.is_finite()).then(number),
    )
    known = (
        sensors.select(list(SENSOR_SCHEMA))
        .cast(SENSOR_SCHEMA)
        .with_columns(is_known_sensor=pl.lit(True))
    )
    joined = (
        parsed.join(known, on="sensor_id", how="left", maintain_order="left")
        .join(parameter_limits(), on="parameter", how="left", maintain_order="left")
        .join(unit_conversions(), on=["parameter", "unit"], how="left", maintain_order="left")
    )
    is_known = (
        pl.when(pl.col("sensor_id").is_null())
        .then(None)
        .otherwise(pl.col("is_known_sensor").fill_null(False))
    )
    return joined.with_columns(
        is_known_sensor=is_known,
        is_unit_accepted=pl.when(is_known & pl.col("unit").is_not_null()).then(
            pl.col("factor").is_not_null()
        ),
        value_canonical=pl.col("value") * pl.col("factor") + pl.col("offset"),
        valid_min=pl.coalesce("valid_min", "catalog_min"),
        valid_max=pl.coalesce("valid_max", "catalog_max"),
        observed_at_us=pl.col("observed_at").dt.epoch("us"),
        installed_at_us=pl.col("installed_at").dt.epoch("us"),
        # Keep-first policy for duplicates: GX flags every member of a (sensor, time) group;
        # only the later copies are quarantined, the first one in file order loads.
        is_later_copy=pl.struct("sensor_id", "observed_at").is_first_distinct().not_(),
    ).sort(ROW_NUMBER)


def json_safe(raw: pl.DataFrame) -> pl.DataFrame:
    """The original columns as JSON-friendly types: times as ISO text, odd types as text."""
    casts = []
    for name, dtype in raw.schema.items():
        if isinstance(dtype, pl.Datetime):
            zone = "%:z" if dtype.time_zone else ""
            casts.append(pl.col(name).dt.strftime(f"%Y-%m-%dT%H:%M:%S%.f{zone}"))
        elif dtype.is_temporal():
            casts.append(pl.col(name).cast(pl.String))
        elif not (dtype.is_numeric() or dtype in (pl.String, pl.Boolean, pl.Null)):
            casts.append(pl.col(name).cast(pl.String, strict=False))
    return raw.with_columns(casts) if casts else raw


def json_text(expr: pl.Expr) -> pl.Expr:
    """Any expression as JSON text (Polars encodes structs; wrap, encode, unwrap)."""
    encoded = pl.struct(expr.alias("v")).struct.json_encode()
    return encoded.str.strip_prefix('{"v":').str.strip_suffix("}")


def numbered(raw: pl.DataFrame) -> pl.DataFrame:
    """`raw` with its file row numbers in FILE_ROW (1-based, file order unless already there)."""
    if FILE_ROW in raw.columns:
        return raw
    return raw.with_row_index(FILE_ROW, offset=1).with_columns(pl.col(FILE_ROW).cast(pl.Int64))


SENSOR_KEY = "__sensor__"
CHUNK_KEY = "__chunk__"


def sensor_key() -> pl.Expr:
    """The sensor id as the gate reads it (text, trimmed): what chunks are cut by."""
    return pl.col("sensor_id").cast(pl.String).str.strip_chars().alias(SENSOR_KEY)


def chunk_plan(sizes: pl.DataFrame, rows: int) -> pl.DataFrame:
    """Sensor -> chunk number from each sensor's row count: runs of whole sensors in sensor-id
    order, a new chunk once `rows` rows are reached (a sensor with more stays whole)."""
    return (
        sizes.group_by(SENSOR_KEY)
        .agg(pl.col("len").sum())
        .sort(SENSOR_KEY, nulls_last=True)
        .select(SENSOR_KEY, ((pl.col("len").cum_sum() - pl.col("len")) // rows).alias(CHUNK_KEY))
    )


def with_chunk(frame: pl.DataFrame, plan: pl.DataFrame) -> pl.DataFrame:
    """`frame` with each row's chunk number by its sensor (a sensor absent from the plan: 0)."""
    chunk = sensor_key().replace_strict(plan[SENSOR_KEY], plan[CHUNK_KEY], default=0)
    return frame.with_columns(chunk.alias(CHUNK_KEY))


def sensor_chunks(raw: pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    """A file in chunks of about `rows` rows, each a run of whole sensors in sensor-id order, each
    row keeping its file row number.

    Every (sensor, time) pair falls in one chunk, so the suite's uniqueness check inside a chunk
    holds for the whole file. Sensor-id order lets the readings go into the (sensor_id,
    observed_at) key in order, chunk after chunk. Chunks are cut one at a time.
    """
    raw = numbered(raw)
    if raw.height <= rows:
        yield raw
        return
    if "sensor_id" not in raw.columns:
        yield from raw.iter_slices(rows)
        return
    plan = chunk_plan(raw.select(sensor_key()).group_by(SENSOR_KEY).len(), rows)
    keyed = with_chunk(raw, plan)
    del raw
    for i in range(plan[CHUNK_KEY].max() + 1):
        chunk = keyed.filter(pl.col(CHUNK_KEY) == i).drop(CHUNK_KEY)
        if chunk.height:
            yield chunk


def raw_rows(raw: pl.DataFrame, row_numbers: pl.DataFrame) -> pl.DataFrame:
    """The original rows with these (1-based) row numbers, each as JSON text of its values."""
    raw = numbered(raw)
    wanted = row_numbers.select(pl.col(ROW_NUMBER).cast(pl.Int64).alias(FILE_ROW))
    picked = raw.join(wanted, on=FILE_ROW, how="semi")
    columns = [name for name in raw.columns if name != FILE_ROW]
    return json_safe(picked).select(
        pl.col(FILE_ROW).alias(ROW_NUMBER),
        json_text(pl.struct(columns)).alias("raw"),
    )


def check_readings(
    raw: pl.DataFrame,
    sensors: pl.DataFrame,
    *,
    municipality_id: str,
    now: datetime,
    clock_skew_seconds: int,
    timezone: str = "UTC",
) -> GateResult:
    """Run the gate on a file or a chunk of one: readings that pass, rows quarantined with reasons.

    `timezone` is the source's zone, used for times written without an offset. A chunk from
    `sensor_chunks` keeps its rows' numbers in the file.
    """
    started = time.perf_counter()
    raw = numbered(raw)
    prepared = prepare_readings(raw, sensors, timezone=timezone)
    latest = now + timedelta(seconds=clock_skew_seconds)
    outcome = run_suite(
        prepared.select(GX_COLUMNS),
        SUITE,
        {"latest_observed_at_us": int(latest.timestamp() * 1_000_000)},
    )
    failures = outcome.failures.join(
        prepared.select(ROW_NUMBER, "is_later_copy"), on=ROW_NUMBER, how="left"
    ).filter((pl.col("check") != "duplicate") | pl.col("is_later_copy"))
    reasons = explain_failures(
        prepared,
        failures,
        municipality_id=municipality_id,
        clock_skew_seconds=clock_skew_seconds,
        timezone=timezone,
    )
    quarantined = reasons.join(raw_rows(raw, reasons.select(ROW_NUMBER)), on=ROW_NUMBER).select(
        ROW_NUMBER, "raw", "reasons"
    )
    readings = (
        prepared.join(reasons.select(ROW_NUMBER), on=ROW_NUMBER, how="anti", maintain_order="left")
        .select("sensor_id", "observed_at", pl.col("value_canonical").alias("value"))
        .cast(READING_SCHEMA)
    )
    validation = {
        "suite": SUITE,
        "statistics": outcome.statistics,
        "expectations": outcome.expectations,
        "gx_seconds": outcome.seconds,
        "gate_seconds": round(time.perf_counter() - started, 4),
        "rows_failed": quarantined.height,
    }
    return GateResult(
        readings=readings, quarantined=quarantined, validation=validation, gx_result=outcome.gx_result
    )
