"""Inbox files: which ones a municipality has, and reading one into a long frame (or a plain refusal).

Formats: CSV and JSON Lines (each optionally gzip), Parquet, and the JSON page bodies of HTTP
sources. Layouts: long, or wide through a source mapping (tasks/ingest/mappings.py).

A CSV or JSON Lines file that Polars cannot read because of some broken lines (not UTF-8, a
line with more fields than the header, a quote never closed, a line that is not a JSON object)
is salvaged: its good lines are read one by one and each broken line is refused with a plain
reason, to be quarantined with the batch (`read_inbox_file`, `with_refused_lines`). A file with
no readable header or no good line still fails as a whole.
"""

from __future__ import annotations

import csv as csv_module
import gzip
import io
import json
import zlib
from array import array
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import polars as pl

from tasks.ingest.mappings import (
    BadMapping,
    CsvSpec,
    SourceMapping,
    read_mapping,
    source_names,
    source_of_key,
)
from tasks.quality.gate import (
    FILE_ROW,
    READING_SCHEMA,
    REQUIRED_COLUMNS,
    GateResult,
    json_text,
    no_validation,
)
from tasks.quality.wide import judge_wide_rows
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
# Lines refused before the gate, shaped like `GateResult.quarantined`: raw is {"line": text}.
REFUSED_SCHEMA = {"row_number": pl.Int64, "raw": pl.String, "reasons": pl.List(pl.String)}
NOT_AN_OBJECT = (
    "is not a JSON object; each line must be one reading like "
    '{"sensor_id": ..., "observed_at": ..., "value": ..., "unit": ...}'
)


class Table(NamedTuple):
    """A file's rows as written, and the broken lines refused before the gate (usually none).

    When lines were refused, `frame` carries each row's number in the file in FILE_ROW (the gate
    keeps it), so the rows after a refused line keep their numbers.
    """

    frame: pl.DataFrame
    refused: pl.DataFrame  # REFUSED_SCHEMA
    validations: tuple[dict, ...] = ()  # of suites that judged the file before its readings


class InboxFile(NamedTuple):
    """One inbox file as read: the rows the gate judges, the timezone of times written without
    an offset, and the broken lines refused before the gate (see `with_refused_lines`)."""

    frame: pl.DataFrame
    timezone: str
    refused: pl.DataFrame  # REFUSED_SCHEMA
    validations: tuple[dict, ...] = ()  # of suites that judged the file before its readings


def no_refused() -> pl.DataFrame:
    return pl.DataFrame(schema=REFUSED_SCHEMA)


def refused_lines(lines: list[tuple[int, str, str]]) -> pl.DataFrame:
    """(row number, the line's text, reason) as rows to quarantine: raw is {"line": text}.

    The text keeps what the file holds (bytes that are not UTF-8 already shown as U+FFFD); NUL,
    which PostgreSQL cannot store, becomes U+FFFD too.
    """
    return pl.DataFrame(
        {
            "row_number": [row for row, _, _ in lines],
            "raw": [
                json.dumps({"line": text.replace("\x00", "\ufffd")}, ensure_ascii=False)
                for _, text, _ in lines
            ],
            "reasons": [[reason] for _, _, reason in lines],
        },
        schema=REFUSED_SCHEMA,
    )


def with_refused_lines(gates: Iterable[GateResult], refused: pl.DataFrame) -> Iterator[GateResult]:
    """The gate's verdicts on a file's chunks, with the lines refused before the gate added to the
    first chunk's quarantined rows: the batch stores and counts them like the gate's own.

    The GX validation stays the gate's (those lines never reached it).
    """
    gates = iter(gates)
    if refused.height == 0:
        yield from gates
        return
    first = next(gates, None)
    if first is None:  # no row reached the gate (a salvaged file always has one)
        yield GateResult(pl.DataFrame(schema=READING_SCHEMA), refused, no_validation())
        return
    quarantined = pl.concat(
        [first.quarantined, refused.select(first.quarantined.columns)], how="vertical_relaxed"
    ).sort("row_number")
    yield GateResult(first.readings, quarantined, first.validation, first.gx_result)
    yield from gates


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
) -> InboxFile:
    """(long frame, timezone of naive times, refused lines) for one file, through its source's
    mapping if any. A file with some broken lines is salvaged: its good rows are read and each
    broken line is refused with a reason, to be quarantined with the batch.

    Raises `UnreadableFile` for a bad file or a bad mapping (the message names the mapping).
    """
    name = source_of_key(store, municipality_id, key)
    if name is None:
        frame, refused, _ = read_long_table(data, fmt)
        return InboxFile(frame, "UTC", refused)  # a long file: no suite before the readings
    try:
        mapping = read_mapping(store, municipality_id, name)
    except BadMapping as exc:
        raise UnreadableFile(str(exc)) from None
    table = read_mapped_table(data, fmt, mapping)
    return InboxFile(table.frame, mapping.timezone, table.refused, table.validations)


def read_long_file(data: bytes, fmt: str) -> pl.DataFrame:
    """A long-format file (sensor_id, observed_at, value, unit) as a frame of its original values.

    CSV columns stay text (the gate parses them, and quarantine keeps the original strings);
    Parquet and JSON Lines columns keep their types. Column names are matched without case or
    spaces. Raises `UnreadableFile` for an empty, corrupt or incomplete file, and for one with a
    broken line (naming it; `read_inbox_file` salvages such files instead).
    """
    return _whole(read_long_table(data, fmt))


def read_long_table(data: bytes, fmt: str) -> Table:
    """`read_long_file`, salvaging a file with broken lines: its good rows, and the refused lines."""
    frame, refused, _ = read_table(data, fmt, CsvSpec())
    names = {name: name.strip().lower() for name in frame.columns}
    _refuse_repeated_columns(list(names.values()))
    frame = frame.rename(names)
    return Table(_require_long(frame), refused)


def _whole(table: Table) -> pl.DataFrame:
    """The frame of a file read without salvage: its first broken line refuses the file."""
    if table.refused.height:
        raise UnreadableFile(table.refused["reasons"][0][0])
    return table.frame


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
    """A file of a mapped source as a long frame the gate reads (extra columns trace the origin).

    Raises `UnreadableFile` for a file with a broken line too (`read_inbox_file` salvages it).
    """
    return _whole(read_mapped_table(data, fmt, mapping))


def read_mapped_table(data: bytes, fmt: str, mapping: SourceMapping) -> Table:
    """`read_mapped_file`, salvaging a file with broken lines: its good rows, and the refused lines."""
    frame, refused, _ = read_table(data, fmt, mapping.csv, mapping.records)
    if frame.height == 0:
        raise UnreadableFile("the file has a header but no rows")
    if mapping.layout == "wide":
        long, judged, validation = wide_to_long(frame, mapping)
        return Table(long, pl.concat([refused, judged]) if judged.height else refused, (validation,))
    return Table(_require_long(mapped_long(frame, mapping)), refused)


def read_table(data: bytes, fmt: str, csv: CsvSpec, records: str = "readings") -> Table:
    """The file's table as written, in any supported format; `UnreadableFile` if it is none.

    A CSV or JSON Lines file with broken lines comes back salvaged (see `Table`).
    """
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
        frame, refused, _ = _read_csv(data, csv)
        return Table(plain_columns(frame), refused)
    if fmt == "parquet":
        return Table(plain_columns(_read_parquet(data)), no_refused())
    if fmt == "jsonl":
        frame, refused, _ = _read_jsonl(data)
        return Table(plain_columns(frame), refused)
    if fmt == "json":
        return Table(plain_columns(_read_json_page(data, records)), no_refused())
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


def wide_to_long(frame: pl.DataFrame, mapping: SourceMapping) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """One row per time and one column per sensor, unpivoted to one row per (sensor, time),
    the rows the wide gate refused (no readable time, or an earlier row's time), and its figures.

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
    if FILE_ROW not in frame.columns:  # a salvaged file's rows already keep their numbers
        frame = frame.with_row_index(FILE_ROW, offset=1)
    source_row = pl.col(FILE_ROW).cast(pl.Int64)
    frame, judged, validation = judge_wide_rows(
        frame,
        time_column,
        _observed_at(frame.schema[time_column], mapping),
        mapping.time.format,
        source_row,
    )
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
            source_row.alias("source_row"),
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
    if long.height == 0 and judged.height == 0:
        raise UnreadableFile("the file has rows but every declared value cell is empty")
    return long, judged, validation


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
        found = _quoted(", ".join(c for c in frame.columns if c != FILE_ROW)) or "none"
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


def _read_csv(data: bytes, csv: CsvSpec) -> Table:
    """The CSV as Polars reads it; salvaged line by line when some lines break that read."""
    if not data.strip():
        raise UnreadableFile("the file is empty")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("the file is UTF-16 text; save it as UTF-8")
    try:
        frame = pl.read_csv(
            io.BytesIO(data),
            infer_schema=False,
            encoding="utf8",
            separator=csv.delimiter,
            null_values=csv.null_values or None,
        )
    except pl.exceptions.NoDataError:
        raise UnreadableFile("the file is empty") from None
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        salvaged = _salvage_csv(data, csv)
        if salvaged is not None:
            return salvaged
        problem = _not_utf8(data) or _csv_problem(data, csv.delimiter)
        if problem is None:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problem = f"the CSV could not be read: {problem}"
        raise UnreadableFile(problem) from None
    return Table(frame, no_refused())


def _lines_word(start: int, end: int) -> str:
    """'line 3', or 'lines 3-4' for a record over several lines (0-based, end exclusive)."""
    return f"line {start + 1}" if end - start <= 1 else f"lines {start + 1}-{end}"


def _not_utf8_reason(where: str, problem: str) -> str:
    return f"{where} is not UTF-8 text ({problem}); save the file as UTF-8"


def _csv_error(exc: csv_module.Error) -> str:
    """What Python's CSV reader says of a record, in words (after 'line N ')."""
    message = str(exc)
    if "unexpected end of data" in message:
        return "opens a quoted field that is never closed"
    if "expected after" in message:
        return 'has text after the closing quote of a field; write a quote inside a quoted field as ""'
    if "new-line character" in message:
        return "has a carriage return inside an unquoted field"
    return f"is not valid CSV ({message})"


class _Lines:
    """A file's lines, split at \\n only and decoded as UTF-8 (a byte-order mark dropped), read one
    at a time so a large broken file is never held as a list of lines.

    Python's CSV reader pulls them through iteration; `next` is the next line's 0-based index and
    may be set back to a line already read. A line that is not UTF-8 reads with U+FFFD for its bad
    bytes and is recorded in `not_utf8` (index -> "byte 0xb5 at offset 104", in the file).
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.starts = array("q", [3 if data.startswith(b"\xef\xbb\xbf") else 0])  # of lines read
        self.next = 0
        self.not_utf8: dict[int, str] = {}

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.line(self.next)
        if line is None:
            raise StopIteration
        self.next += 1
        return line + "\n"

    def line(self, index: int) -> str | None:
        """Line `index` (one read already, or the next one), without its newline; None past the end."""
        start = self.starts[index]
        if start >= len(self.data):
            return None
        end = self.data.find(b"\n", start)
        end = len(self.data) if end == -1 else end
        if index + 1 == len(self.starts):
            self.starts.append(end + 1)
        chunk = self.data[start:end]
        try:
            return chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.not_utf8[index] = f"byte 0x{chunk[exc.start]:02x} at offset {start + exc.start}"
            return chunk.decode("utf-8", "replace")

    def text(self, start: int, end: int) -> str:
        """Lines `start` to `end` (exclusive, read already) as the file has them."""
        return "\n".join(self.line(i) or "" for i in range(start, end))

    def problem(self, start: int, end: int) -> str | None:
        """Where the first of these lines that is not UTF-8 stops being UTF-8; None if all are."""
        if not self.not_utf8:
            return None
        return next((self.not_utf8[i] for i in range(start, end) if i in self.not_utf8), None)


# Rows a salvaged file gathers as Python values before they become a frame.
SALVAGE_BLOCK_ROWS = 50_000


def _salvage_csv(data: bytes, csv: CsvSpec) -> Table | None:
    """A CSV that Polars could not read, record by record: the good rows, and a refusal for each
    broken record; None when the header is unreadable or no record is good (the file fails).

    Only for files already found broken (Python's CSV reader is slower than Polars). A record is
    refused when it is not UTF-8 or has more fields than the header; a record whose quoting is
    broken refuses its first line, and reading resumes on the next line. As Polars reads them, a
    shorter record is padded with nulls, a blank line is a row of nulls and an empty field is
    null (the gate says what is missing). Rows are numbered as Polars would: data records from 1.
    """
    _allow_long_fields(len(data))
    feed = _Lines(data)

    def reader():  # noqa: ANN202
        return csv_module.reader(feed, delimiter=csv.delimiter, strict=True)

    records = reader()
    header: list[str] | None = None
    nulls = {"", *csv.null_values}
    block: list[list[str | None]] = []
    block_rows: list[int] = []
    frames: list[pl.DataFrame] = []
    has_good = False
    refused: list[tuple[int, str, str]] = []
    row = 0
    while True:
        start = feed.next
        try:
            fields = next(records)
        except StopIteration:
            break
        except csv_module.Error as exc:
            if header is None:
                return None
            row += 1
            where = _lines_word(start, start + 1)
            bad = feed.problem(start, start + 1)
            reason = f"{where} {_csv_error(exc)}" if bad is None else _not_utf8_reason(where, bad)
            refused.append((row, feed.text(start, start + 1), reason))
            feed.next = start + 1
            records = reader()
            continue
        end = feed.next
        bad = feed.problem(start, end)
        if header is None:
            if not fields:  # blank lines before the header
                continue
            if bad is not None:
                return None
            header = fields
            names = _column_names(header)
            continue
        row += 1
        where = _lines_word(start, end)
        if bad is not None:
            refused.append((row, feed.text(start, end), _not_utf8_reason(where, bad)))
        elif len(fields) > len(header):
            reason = (
                f"{where} has {len(fields)} fields but the header has {len(header)}; "
                f"quote fields that contain {csv.delimiter!r}"
            )
            refused.append((row, feed.text(start, end), reason))
        else:
            has_good = has_good or bool(fields)
            block.append([None if v in nulls else v for v in fields] + [None] * (len(names) - len(fields)))
            block_rows.append(row)
            if len(block) == SALVAGE_BLOCK_ROWS:
                frames.append(_block_frame(block, block_rows, names))
    if header is None or not has_good:
        return None
    frames.append(_block_frame(block, block_rows, names))
    frame = pl.concat(frames)
    return Table(frame if refused else frame.drop(FILE_ROW), refused_lines(refused))


def _block_frame(block: list[list[str | None]], rows: list[int], names: list[str]) -> pl.DataFrame:
    """A block of salvaged rows as a frame of text with their row numbers (the lists are emptied)."""
    frame = pl.DataFrame(block, schema=dict.fromkeys(names, pl.String), orient="row").with_columns(
        pl.Series(FILE_ROW, rows, dtype=pl.Int64)
    )
    block.clear()
    rows.clear()
    return frame


def _allow_long_fields(size: int) -> None:
    """Let Python's CSV reader read a field as long as the file (its limit is 128 KiB by default;
    the setting is the process's, and only ever raised here)."""
    if csv_module.field_size_limit() < size + 1:
        csv_module.field_size_limit(size + 1)


def _column_names(header: list[str]) -> list[str]:
    """The header's names, a repeated one renamed `<name>_duplicated_<n>` as Polars does."""
    names: list[str] = []
    repeats = 0
    for name in header:
        if name in names:
            name = f"{name}_duplicated_{repeats}"
            repeats += 1
        names.append(name)
    return names


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
    _allow_long_fields(len(data))
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


def _read_jsonl(data: bytes) -> Table:
    if not data.strip():
        raise UnreadableFile("the file is empty")
    try:
        return Table(pl.read_ndjson(io.BytesIO(data), infer_schema_length=None), no_refused())
    except Exception:  # noqa: BLE001 (Polars raises several kinds for bad JSON)
        return _read_jsonl_as_text(data)


def _read_jsonl_as_text(data: bytes) -> Table:
    """JSON Lines that Polars cannot read (a field holds numbers and objects, or a line is broken),
    read line by line.

    Every field becomes text (objects and lists as their JSON), so the gate judges each row. A
    line that is not UTF-8, not JSON or not a JSON object is refused with a reason; rows are
    numbered by non-blank line, as Polars reads them. `UnreadableFile` when no line is good (it
    names the first broken one).
    """
    feed = _Lines(data)  # split at \n only: JSON may hold U+2028
    block: list[dict] = []
    block_rows: list[int] = []
    frames: list[pl.DataFrame] = []
    refused: list[tuple[int, str, str]] = []
    row = 0
    for index, line in enumerate(feed):
        if not line.strip():
            continue
        line = line.removesuffix("\n")
        row += 1
        where = _lines_word(index, index + 1)
        if index in feed.not_utf8:
            refused.append((row, line, _not_utf8_reason(where, feed.not_utf8[index])))
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"{where} is not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
            refused.append((row, line, reason))
            continue
        if not isinstance(value, dict):
            refused.append((row, line, f"{where} {NOT_AN_OBJECT}"))
            continue
        block.append({str(k): _text(v) for k, v in value.items()})
        block_rows.append(row)
        if len(block) == SALVAGE_BLOCK_ROWS:
            frames.append(_json_block_frame(block, block_rows))
    if block:
        frames.append(_json_block_frame(block, block_rows))
    if not frames:
        problem = _not_utf8(data) or (refused[0][2] if refused else "the file is empty")
        raise UnreadableFile(problem)
    frame = pl.concat(frames, how="diagonal")
    return Table(frame if refused else frame.drop(FILE_ROW), refused_lines(refused))


def _json_block_frame(block: list[dict], rows: list[int]) -> pl.DataFrame:
    """A block of JSON rows as a frame of text with their row numbers (the lists are emptied)."""
    names = list(dict.fromkeys(k for row in block for k in row))
    frame = pl.DataFrame(block, schema=dict.fromkeys(names, pl.String)).with_columns(
        pl.Series(FILE_ROW, rows, dtype=pl.Int64)
    )
    block.clear()
    rows.clear()
    return frame


def _text(value: object) -> str | None:
    """A JSON value as the text a row holds: strings as they are, anything else as its JSON."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


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
    return _read_jsonl(lines).frame  # every line is an object: none is refused
