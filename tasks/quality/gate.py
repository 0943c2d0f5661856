"""The ingest gate: Polars prepares derived columns, Great Expectations judges them, rows split.

A file's rows either pass (and load as readings in the canonical unit) or go to quarantine with
every reason that applies. The suite is `suites/readings_long.json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import polars as pl

from tasks.parameters import catalog
from tasks.quality.expectations import ROW_NUMBER, run_suite
from tasks.quality.reasons import explain_failures

SUITE = "readings_long"
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
    "value",
    "value_canonical",
    "is_known_sensor",
    "is_unit_accepted",
    "valid_min",
    "valid_max",
    "installed_at_us",
)


@dataclass(frozen=True)
class GateResult:
    """What the gate decided for one file."""

    readings: pl.DataFrame  # sensor_id, observed_at (UTC), value (canonical unit)
    quarantined: pl.DataFrame  # row_number, raw (JSON text of the original row), reasons
    validation: dict  # GX statistics and per-expectation counts, for ingest_batches.validation

    @property
    def rows_total(self) -> int:
        return self.readings.height + self.quarantined.height


@lru_cache(maxsize=1)
def unit_conversions() -> pl.DataFrame:
    """Every accepted (parameter, unit) with its factor to the canonical unit.

    The aliases accepted today (FNU=NTU, µS/cm=uS/cm, °C=degC, µg/L=ug/L) are all factor 1;
    real conversions (pint) come later and only change this table.
    """
    rows = [
        {"parameter": p.name, "unit": unit, "factor": 1.0}
        for p in catalog().values()
        for unit in p.accepted_units
    ]
    return pl.DataFrame(
        rows, schema={"parameter": pl.String, "unit": pl.String, "factor": pl.Float64}
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


def parse_observed_at(name: str, dtype: pl.DataType) -> pl.Expr:
    """ISO-8601 text with an offset (or a zoned timestamp) as UTC; anything else becomes null."""
    col = pl.col(name)
    if dtype == pl.String:
        return col.str.strip_chars().str.to_datetime(
            format="%+", time_zone="UTC", time_unit="us", strict=False
        )
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return col.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC"))
    # A naive timestamp says nothing about its zone: refused like text without an offset.
    return pl.lit(None, dtype=pl.Datetime("us", "UTC"))


def parse_value(name: str, dtype: pl.DataType) -> pl.Expr:
    """A finite float, or null for text that is not a number, NaN and infinities."""
    col = pl.col(name)
    if dtype == pl.String:
        col = col.str.strip_chars()
    number = col.cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number).otherwise(None)


def _clean_text(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text).otherwise(None)


def prepare_readings(raw: pl.DataFrame, sensors: pl.DataFrame) -> pl.DataFrame:
    """Parse the four long-format columns and join this municipality's sensors and the catalog.

    `raw` keeps whatever the file held (text for CSV, typed columns for Parquet); the result adds
    `row_number` (1-based, file order) and the derived columns the suite judges. Only sensors in
    `sensors` (this municipality's) are known: another tenant's sensor id is unknown here.
    """
    schema = raw.schema
    parsed = raw.select(
        _clean_text("sensor_id").alias("sensor_id"),
        _clean_text("unit").alias("unit"),
        parse_observed_at("observed_at", schema["observed_at"]).alias("observed_at"),
        parse_value("value", schema["value"]).alias("value"),
        pl.col("observed_at").cast(pl.String).alias("observed_at_text"),
        pl.col("value").cast(pl.String).alias("value_text"),
    )
    parsed = parsed.with_row_index(ROW_NUMBER, offset=1).with_columns(
        pl.col(ROW_NUMBER).cast(pl.Int64)
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
        value_canonical=pl.col("value") * pl.col("factor"),
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


def raw_rows(raw: pl.DataFrame, row_numbers: pl.DataFrame) -> pl.DataFrame:
    """The original rows with these (1-based) row numbers, each as JSON text of its values."""
    index = "__waterline_row_number__"  # a file may have a column of any other name
    numbered = raw.with_row_index(index, offset=1).with_columns(pl.col(index).cast(pl.Int64))
    wanted = row_numbers.select(pl.col(ROW_NUMBER).cast(pl.Int64).alias(index))
    picked = numbered.join(wanted, on=index, how="semi")
    return json_safe(picked).select(
        pl.col(index).cast(pl.Int64).alias(ROW_NUMBER),
        json_text(pl.struct(raw.columns)).alias("raw"),
    )


def check_readings(
    raw: pl.DataFrame,
    sensors: pl.DataFrame,
    *,
    municipality_id: str,
    now: datetime,
    clock_skew_seconds: int,
) -> GateResult:
    """Run the gate on one whole file: readings that pass, rows quarantined with their reasons."""
    prepared = prepare_readings(raw, sensors)
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
        prepared, failures, municipality_id=municipality_id, clock_skew_seconds=clock_skew_seconds
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
        "rows_failed": quarantined.height,
    }
    return GateResult(readings=readings, quarantined=quarantined, validation=validation)
