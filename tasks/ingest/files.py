"""Inbox files: which ones a municipality has, and reading one into a long frame (or a plain refusal).

Formats: CSV and JSON Lines (each optionally gzip), Parquet, and the JSON page bodies of HTTP
sources. Layouts: long, or wide through a source mapping (tasks/ingest/mappings.py).
"""

from __future__ import annotations

import csv as csv_module
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
from tasks.quality.gate import REQUIRED_COLUMNS, json_text
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
# How much of a file's own text a refusal quotes (a header may be one 10 MB line).
QUOTED_CHARS = 200


class UnreadableFile(ValueError):
    """A file that cannot be parsed at all; the message is plain language, safe to show.

    NUL characters (which PostgreSQL text cannot hold) are replaced and the length is capped.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_quoted(message.replace("\x00", "\ufffd"), 4 * QUOTED_CHARS))


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
    names = {name: name.strip().lower() for name in frame.columns}
    _refuse_repeated_columns(list(names.values()))
    frame = frame.rename(names)
    return _require_long(frame)


def _refuse_repeated_columns(names: list[str]) -> None:
    """`UnreadableFile` when the header names a column twice (Polars renames the second copy)."""
    seen: set[str] = set()
    repeated = []
    for name in names:
        base = name.rsplit("_duplicated_", 1)[0]
        if name in seen or (base != name and base in seen):
            repeated.append(base)
        seen.add(name)
    if repeated:
        first = repeated[0]
        raise UnreadableFile(
            f"the header names column {_quoted(first)!r} more than once; keep one column of each name"
        )


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
        if data.startswith(b"PK\x03\x04"):
            raise UnreadableFile("the file is a zip archive, not gzip; unzip it, or compress it with gzip")
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            raise UnreadableFile("the file is not valid gzip (it may be truncated)") from None
        fmt = fmt.removesuffix(".gz")
        if not data.strip():
            raise UnreadableFile("the file is empty")
    if fmt == "csv":
        return plain_columns(_read_csv(data, csv))
    if fmt == "parquet":
        return plain_columns(_read_parquet(data))
    if fmt == "jsonl":
        return plain_columns(_read_jsonl(data))
    if fmt == "json":
        return plain_columns(_read_json_page(data, records))
    raise UnreadableFile(f"files of format {fmt!r} are not read")


def plain_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The file's columns as types the gate reads and quarantine stores as JSON text.

    Lists and structs become their JSON text, binary becomes text, durations ISO-8601 text,
    and NUL characters (PostgreSQL text cannot hold them) become U+FFFD.
    """
    changes = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if dtype.is_nested():
            changes.append(json_text(column).alias(name))
        elif dtype == pl.Binary:
            changes.append(_binary_text(frame[name]))
        elif isinstance(dtype, pl.Duration):
            changes.append(column.dt.to_string())
        elif isinstance(dtype, (pl.Categorical, pl.Enum)):
            changes.append(column.cast(pl.String))
    frame = frame.with_columns(changes) if changes else frame
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if texts:
        has_nul = frame.select(pl.any_horizontal(pl.col(texts).str.contains("\x00", literal=True).any()))
        if has_nul.item():
            frame = frame.with_columns(pl.col(texts).str.replace_all("\x00", "\ufffd", literal=True))
    return frame


def _binary_text(values: pl.Series) -> pl.Series:
    try:
        return values.cast(pl.String)
    except pl.exceptions.PolarsError:  # not UTF-8: keep what decodes, mark the rest
        return values.map_elements(lambda v: v.decode("utf-8", "replace"), return_dtype=pl.String)


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
        found = _quoted(", ".join(frame.columns)) or "none"
        hint = next(
            (
                f"; the header looks separated by {label}, not commas"
                for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"))
                if len(frame.columns) == 1 and sep in frame.columns[0]
            ),
            "",
        )
        raise UnreadableFile(
            f"missing required column(s): {', '.join(missing)} (found: {found}); "
            f"a readings file needs {', '.join(REQUIRED_COLUMNS)}{hint}"
        )
    if frame.height == 0:
        raise UnreadableFile("the file has a header but no rows")
    return frame


def _read_csv(data: bytes, csv: CsvSpec) -> pl.DataFrame:
    if not data.strip():
        raise UnreadableFile("the file is empty")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("the file is UTF-16 text; save it as UTF-8")
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
        problem = _not_utf8(data) or _csv_problem(data, csv.delimiter)
        if problem is None:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problem = f"the CSV could not be read: {problem}"
        raise UnreadableFile(problem) from None


def _not_utf8(data: bytes) -> str | None:
    """Where a file stops being UTF-8 text, in words; None when it is UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, "
            f"line {line}); save it as UTF-8"
        )
    return None


def _csv_problem(data: bytes, delimiter: str) -> str | None:
    """The first line a CSV reader stumbles on, in words (None if Python's reader finds none)."""
    reader = csv_module.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    last_line = 0  # where the last good record ended
    try:
        for fields in reader:
            if header is None:
                header = fields
            elif fields and len(fields) != len(header):
                return (
                    f"line {reader.line_num} has {len(fields)} fields but the header has "
                    f"{len(header)}; quote fields that contain {delimiter!r}"
                )
            last_line = reader.line_num
    except csv_module.Error as exc:
        if "unexpected end of data" in str(exc):
            return f"line {last_line + 1} opens a quoted field that is never closed"
        return f"line {last_line + 1} is not valid CSV ({exc})"
    return None


def _quoted(text: str, limit: int = QUOTED_CHARS) -> str:
    """Text from a file as a message quotes it: cut at `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


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
    except Exception:  # noqa: BLE001 (Polars raises several kinds for bad JSON)
        return _read_jsonl_as_text(data)


def _read_jsonl_as_text(data: bytes) -> pl.DataFrame:
    """JSON Lines that Polars cannot type (a field holds numbers and objects), read line by line.

    Every field becomes text (objects and lists as their JSON), so the gate judges each row.
    `UnreadableFile` names the first line that is not JSON, or not a JSON object.
    """
    problem = _not_utf8(data)
    if problem is not None:
        raise UnreadableFile(problem)
    rows = []
    for number, line in enumerate(data.decode("utf-8-sig").split("\n"), start=1):  # JSON may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"line {number} is not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
            raise UnreadableFile(problem) from None
        if not isinstance(row, dict):
            raise UnreadableFile(
                f"line {number} is not a JSON object; each line must be one reading like "
                '{"sensor_id": ..., "observed_at": ..., "value": ..., "unit": ...}'
            )
        rows.append({str(k): v if v is None or isinstance(v, str) else json.dumps(v) for k, v in row.items()})
    names = list(dict.fromkeys(k for row in rows for k in row))
    return pl.DataFrame(rows, schema=dict.fromkeys(names, pl.String))


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
