"""Read back what the sample generator wrote: readings files, labelled events and bad rows."""

from __future__ import annotations

import gzip
import io

import polars as pl

from tasks.storage import ObjectStore

READING_COLUMNS = {
    "sensor_id": pl.String,
    "observed_at": pl.String,
    "value": pl.Float64,
    "unit": pl.String,
}
UTC_US = pl.Datetime("us", "UTC")


def _utc(column: str) -> pl.Expr:
    return pl.col(column).str.to_datetime("%Y-%m-%dT%H:%M:%S%#z", time_zone="UTC", time_unit="us")


def read_readings_file(inbox: ObjectStore, key: str) -> pl.DataFrame:
    """One readings or lab file as sensor_id, observed_at (UTC), value, unit, in file order."""
    data = inbox.get_bytes(key)
    if key.endswith(".parquet"):
        return pl.read_parquet(io.BytesIO(data))
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    frame = pl.read_csv(io.BytesIO(data), schema=READING_COLUMNS)
    return frame.with_columns(observed_at=_utc("observed_at"))


def read_events(inbox: ObjectStore, municipality_id: str) -> pl.DataFrame:
    """`labels/events.csv` with start and end as UTC datetimes and sensor_ids as a list."""
    frame = pl.read_csv(
        io.BytesIO(inbox.get_bytes(f"{municipality_id}/labels/events.csv")), infer_schema=False
    )
    return frame.with_columns(_utc("start"), _utc("end"), sensor_ids=pl.col("sensor_ids").str.split(";"))


def read_bad_rows(inbox: ObjectStore, municipality_id: str) -> pl.DataFrame:
    """`labels/bad_rows.csv`: file, row (0-based data row), sensor_id, observed_at (UTC), kind."""
    frame = pl.read_csv(
        io.BytesIO(inbox.get_bytes(f"{municipality_id}/labels/bad_rows.csv")),
        schema={
            "file": pl.String,
            "row": pl.UInt32,
            "sensor_id": pl.String,
            "observed_at": pl.String,
            "kind": pl.String,
        },
    )
    return frame.with_columns(observed_at=_utc("observed_at"))
