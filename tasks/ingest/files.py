"""Inbox files: which ones a municipality has, and reading one into a long frame (or a plain refusal).

Formats: CSV and JSON Lines (each optionally gzip), Parquet, and the JSON page bodies of HTTP
sources. Layouts: long, or wide through a source mapping (tasks/ingest/mappings.py).
"""

from __future__ import annotations

import gzip
import io
import json
import zlib

import polars as pl

from tasks.ingest.mappings import (
    BadMapping,
    CsvSpec,
    SourceMapping,
    read_mapping,
    source_names,
    source_of_key,
)
from tasks.quality.gate import REQUIRED_COLUMNS
from tasks.storage import ObjectStore

READINGS_FOLDERS = ("readings", "lab")
FORMATS = (
    (".csv.gz", "csv.gz"),
    (".csv", "csv"),
    (".parquet", "parquet"),
    (".jsonl.gz", "jsonl.gz"),
    (".jsonl", "jsonl"),
    (".ndjson.gz", "jsonl.gz"),
    (".ndjson", "jsonl"),
    (".json", "json"),  # a pulled HTTP page; never picked up from a folder
)
FOLDER_FORMATS = ("csv.gz", "csv", "parquet", "jsonl.gz", "jsonl")


class UnreadableFile(ValueError):
    """A file that cannot be parsed at all; the message is plain language, safe to show."""


def file_format(key: str) -> str | None:
    """`csv`, `csv.gz`, `parquet`, `jsonl`, `jsonl.gz` or `json` from the file name, else None."""
    name = key.rsplit("/", 1)[-1].lower()
    return next((fmt for suffix, fmt in FORMATS if name.endswith(suffix)), None)


def inbox_files(store: ObjectStore, municipality_id: str) -> tuple[list[str], list[str]]:
    """(files to load, ignored files): `readings/`, `lab/`, then each declared source's folder."""
    wanted: list[str] = []
    ignored: list[str] = []
    folders = dict.fromkeys([*READINGS_FOLDERS, *source_names(store, municipality_id)])
    for folder in folders:
        for key in store.list(f"{municipality_id}/{folder}"):
            (wanted if file_format(key) in FOLDER_FORMATS else ignored).append(key)
    return wanted, ignored


def municipality_folders(store: ObjectStore) -> list[str]:
    """The top-level folder names of the inbox, one per municipality, sorted."""
    if not store.fs.exists(store.root):
        return []
    entries = store.fs.ls(store.root, detail=True)
    return sorted(
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in entries
        if entry.get("type") == "directory"
    )


def read_inbox_file(
    store: ObjectStore, municipality_id: str, key: str, data: bytes, fmt: str
) -> tuple[pl.DataFrame, str]:
    """(long frame, timezone of naive times) for one file, through its source's mapping if any.

    Raises `UnreadableFile` for a bad file or a bad mapping (the message names the mapping).
    """
    name = source_of_key(store, municipality_id, key)
    if name is None:
        return read_long_file(data, fmt), "UTC"
    try:
        mapping = read_mapping(store, municipality_id, name)
    except BadMapping as exc:
        raise UnreadableFile(str(exc)) from None
    return read_mapped_file(data, fmt, mapping), mapping.timezone


def read_long_file(data: bytes, fmt: str) -> pl.DataFrame:
    """A long-format file (sensor_id, observed_at, value, unit) as a frame of its original values.

    CSV columns stay text (the gate parses them, and quarantine keeps the original strings);
    Parquet and JSON Lines columns keep their types. Column names are matched without case or
    spaces. Raises `UnreadableFile` for an empty, corrupt or incomplete file.
    """
    frame = read_table(data, fmt, CsvSpec())
    frame = frame.rename({name: name.strip().lower() for name in frame.columns})
    return _require_long(frame)


def read_mapped_file(data: bytes, fmt: str, mapping: SourceMapping) -> pl.DataFrame:
    """A file of a mapped source as a long frame the gate reads (extra columns trace the origin)."""
    frame = read_table(data, fmt, mapping.csv, mapping.records)
    if frame.height == 0:
        raise UnreadableFile("the file has a header but no rows")
    if mapping.layout == "wide":
        return wide_to_long(frame, mapping)
    return _require_long(mapped_long(frame, mapping))


def read_table(data: bytes, fmt: str, csv: CsvSpec, records: str = "readings") -> pl.DataFrame:
    """The file's table as written, in any supported format; `UnreadableFile` if it is none."""
    if not data:
        raise UnreadableFile("the file is empty")
    if fmt.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            raise UnreadableFile("the file is not valid gzip (it may be truncated)") from None
        fmt = fmt.removesuffix(".gz")
        if not data.strip():
            raise UnreadableFile("the file is empty")
    if fmt == "csv":
        return _read_csv(data, csv)
    if fmt == "parquet":
        return _read_parquet(data)
    if fmt == "jsonl":
        return _read_jsonl(data)
    if fmt == "json":
        return _read_json_page(data, records)
    raise UnreadableFile(f"files of format {fmt!r} are not read")


def wide_to_long(frame: pl.DataFrame, mapping: SourceMapping) -> pl.DataFrame:
    """One row per time and one column per sensor, unpivoted to one row per (sensor, time).

    Empty cells are no reading and are dropped; every other cell goes to the gate. The result
    keeps `source_row` (1-based data row) and `source_column` so quarantined rows can be traced.
    """
    time_column = mapping.time.column
    value_columns = list(mapping.columns)
    missing = [c for c in [time_column, *value_columns] if c not in frame.columns]
    if missing:
        raise UnreadableFile(
            f"missing column(s) declared by the source mapping: {', '.join(missing)} "
            f"(found: {', '.join(frame.columns)})"
        )
    values = frame.select(value_columns)
    numeric = all(dtype.is_numeric() for dtype in values.schema.values())
    value_type = pl.Float64 if numeric else pl.String
    sensors = pl.DataFrame(
        {
            "source_column": value_columns,
            "sensor_id": [c.sensor_id for c in mapping.columns.values()],
            "unit": [c.unit for c in mapping.columns.values()],
        }
    )
    long = (
        frame.lazy()
        .select(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row"),
            pl.col(time_column).cast(pl.String).alias("time_as_written"),
            _observed_at(frame.schema[time_column], mapping).alias("observed_at"),
            *[_value(name, mapping).cast(value_type) for name in value_columns],
        )
        .unpivot(
            on=value_columns,
            index=["source_row", "time_as_written", "observed_at"],
            variable_name="source_column",
            value_name="value",
        )
        .drop_nulls("value")
        .join(sensors.lazy(), on="source_column", how="left", maintain_order="left")
        .select("sensor_id", "observed_at", "value", "unit", "source_row", "source_column",
                "time_as_written")
        .collect()
    )
    if long.height == 0:
        raise UnreadableFile("the file has rows but every declared value cell is empty")
    return long


def mapped_long(frame: pl.DataFrame, mapping: SourceMapping) -> pl.DataFrame:
    """A long file with the mapping's renames, decimal and time format applied."""
    renames = {**mapping.rename, mapping.time.column: "observed_at"}
    missing = [name for name in renames if name not in frame.columns]
    if missing:
        raise UnreadableFile(
            f"missing column(s) declared by the source mapping: {', '.join(missing)} "
            f"(found: {', '.join(frame.columns)})"
        )
    frame = frame.rename(renames)
    changes = [_observed_at(frame.schema["observed_at"], mapping, "observed_at").alias("observed_at")]
    if "value" in frame.columns:
        changes.append(_value("value", mapping).alias("value"))
    return frame.with_columns(changes)


def _observed_at(dtype: pl.DataType, mapping: SourceMapping, name: str | None = None) -> pl.Expr:
    """The time as the gate reads it: text in the mapping's `time.format` becomes ISO-8601.

    Times without an offset stay wall-clock times: the gate places them in the mapping's
    timezone (`check_readings(timezone=...)`), refusing those that do not exist or exist twice.
    Text that does not match the format is kept as written, so quarantine shows it.
    """
    column = pl.col(name or mapping.time.column)
    if isinstance(dtype, pl.Datetime):
        return column
    text = column.cast(pl.String).str.strip_chars()
    if mapping.time.format is None:
        return text
    parsed = text.str.to_datetime(mapping.time.format, strict=False, time_unit="us")
    return pl.coalesce(parsed.dt.strftime("%Y-%m-%dT%H:%M:%S%.f"), text)


def _value(name: str, mapping: SourceMapping) -> pl.Expr:
    column = pl.col(name)
    if mapping.csv.decimal == ",":
        return column.cast(pl.String).str.replace(",", ".", literal=True)
    return column


def _require_long(frame: pl.DataFrame) -> pl.DataFrame:
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        found = ", ".join(frame.columns) or "none"
        raise UnreadableFile(
            f"missing required column(s): {', '.join(missing)} (found: {found}); "
            f"a readings file needs {', '.join(REQUIRED_COLUMNS)}"
        )
    if frame.height == 0:
        raise UnreadableFile("the file has a header but no rows")
    return frame


def _read_csv(data: bytes, csv: CsvSpec) -> pl.DataFrame:
    if not data.strip():
        raise UnreadableFile("the file is empty")
    try:
        return pl.read_csv(
            io.BytesIO(data),
            infer_schema=False,
            encoding="utf8",
            separator=csv.delimiter,
            null_values=csv.null_values or None,
        )
    except pl.exceptions.NoDataError:
        raise UnreadableFile("the file is empty") from None
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableFile(f"the CSV could not be read: {first_line}") from None


def _read_parquet(data: bytes) -> pl.DataFrame:
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception:  # noqa: BLE001 (Polars raises several kinds for a damaged file)
        raise UnreadableFile(
            "the file is not a readable Parquet file (corrupt or truncated)"
        ) from None


def _read_jsonl(data: bytes) -> pl.DataFrame:
    if not data.strip():
        raise UnreadableFile("the file is empty")
    try:
        return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except Exception as exc:  # noqa: BLE001 (Polars raises several kinds for bad JSON)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableFile(f"the JSON Lines file could not be read: {first_line}") from None


def _read_json_page(data: bytes, records: str) -> pl.DataFrame:
    """The list of records in one JSON document (an HTTP page) under the field `records`."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"the page is not valid JSON: {exc}") from None
    rows = document.get(records) if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise UnreadableFile(f"the page has no list of records under {records!r}")
    if not rows:
        raise UnreadableFile("the page has no records")
    lines = "\n".join(json.dumps(row) for row in rows).encode()
    return _read_jsonl(lines)
