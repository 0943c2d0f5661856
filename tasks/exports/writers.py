"""File writers that take an export a chunk at a time, so no file is ever held whole in memory.

CSV, JSON (one array, streamed), JSON Lines, Parquet (one row group per chunk) and XLSX
(xlsxwriter's constant-memory mode, a new sheet every 1,048,575 data rows). In CSV and XLSX a
text that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return) is written with a leading apostrophe.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow.parquet as pq

EXCEL_MAX_ROWS = 1_048_576  # rows of a worksheet, the header row included
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell that a spreadsheet would evaluate, prefixed with an apostrophe."""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in texts
    )


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The frame in the export's column order and types (every chunk alike, empty ones too)."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


class ChunkWriter:
    """Appends chunks of one table to one file; `close()` returns the rows written."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType], title: str) -> None:
        self.path = path
        self.schema = schema
        self.title = title
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        frame = conform(frame, self.schema)
        if frame.height:
            self._write(frame)
            self.rows += frame.height

    def _write(self, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def close(self) -> int:
        return self.rows


class CsvWriter(ChunkWriter):
    def __init__(self, path: Path, schema: dict[str, pl.DataType], title: str) -> None:
        super().__init__(path, schema, title)
        self.file: BinaryIO = path.open("wb")
        pl.DataFrame(schema=schema).write_csv(self.file)

    def _write(self, frame: pl.DataFrame) -> None:
        neutralise_formulas(frame).write_csv(self.file, include_header=False, datetime_format=DATETIME_FORMAT)

    def close(self) -> int:
        self.file.close()
        return self.rows


class JsonLinesWriter(ChunkWriter):
    def __init__(self, path: Path, schema: dict[str, pl.DataType], title: str) -> None:
        super().__init__(path, schema, title)
        self.file: BinaryIO = path.open("wb")

    def _write(self, frame: pl.DataFrame) -> None:
        frame.write_ndjson(self.file)

    def close(self) -> int:
        self.file.close()
        return self.rows


class JsonWriter(JsonLinesWriter):
    """One JSON array of row objects, written a chunk of lines at a time."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType], title: str) -> None:
        super().__init__(path, schema, title)
        self.file.write(b"[")

    def _write(self, frame: pl.DataFrame) -> None:
        lines = frame.write_ndjson().rstrip("\n").replace("\n", ",\n")
        self.file.write(((",\n" if self.rows else "\n") + lines).encode("utf-8"))

    def close(self) -> int:
        self.file.write(b"\n]\n" if self.rows else b"]\n")
        return super().close()


class ParquetWriter(ChunkWriter):
    def __init__(self, path: Path, schema: dict[str, pl.DataType], title: str) -> None:
        super().__init__(path, schema, title)
        arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        self.writer = pq.ParquetWriter(str(path), arrow_schema, compression="zstd")

    def _write(self, frame: pl.DataFrame) -> None:
        self.writer.write_table(frame.to_arrow())

    def close(self) -> int:
        self.writer.close()
        return self.rows


class XlsxWriter(ChunkWriter):
    """Sheets `<title>`, `<title> 2`, ... of at most `max_rows` rows each (header included)."""

    def __init__(
        self, path: Path, schema: dict[str, pl.DataType], title: str, max_rows: int = EXCEL_MAX_ROWS
    ) -> None:
        import xlsxwriter

        super().__init__(path, schema, title)
        self.max_rows = max_rows
        self.workbook = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "nan_inf_to_errors": True,
                "default_date_format": "yyyy-mm-dd hh:mm:ss",
            },
        )
        self.bold = self.workbook.add_format({"bold": True})
        self.sheet = None
        self.row = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        number = len(self.workbook.worksheets()) + 1
        name = self.title[:31] if number == 1 else f"{self.title[:26]} {number}"
        self.sheet = self.workbook.add_worksheet(name)
        self.sheet.write_row(0, 0, list(self.schema), self.bold)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def _write(self, frame: pl.DataFrame) -> None:
        frame = neutralise_formulas(_naive_utc(frame))
        at = 0
        while at < frame.height:
            if self.row >= self.max_rows:
                self._new_sheet()
            part = frame.slice(at, self.max_rows - self.row)
            # xlsxwriter takes cells one row at a time; constant-memory mode needs them in order.
            for values in part.iter_rows():
                self.sheet.write_row(self.row, 0, values)
                self.row += 1
            at += part.height

    def close(self) -> int:
        self.workbook.close()
        return self.rows


def _naive_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Excel has no time zones: timestamps become naive UTC (the column is called `..._at`, UTC)."""
    return frame.with_columns(
        pl.col(name).dt.replace_time_zone(None)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


WRITERS: dict[str, type[ChunkWriter]] = {
    "csv": CsvWriter,
    "json": JsonWriter,
    "jsonl": JsonLinesWriter,
    "parquet": ParquetWriter,
    "xlsx": XlsxWriter,
}


def open_writer(fmt: str, path: Path, schema: dict[str, pl.DataType], title: str) -> ChunkWriter:
    """The chunk writer of a format (not PDF: see tasks.exports.pdf)."""
    return WRITERS[fmt](path, schema, title)
