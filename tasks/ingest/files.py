"""Inbox files: which ones a municipality has, and reading one into a frame (or a plain refusal)."""

from __future__ import annotations

import gzip
import io
import zlib

import polars as pl

from tasks.quality.gate import REQUIRED_COLUMNS
from tasks.storage import ObjectStore

READINGS_FOLDERS = ("readings", "lab")
FORMATS = ((".csv.gz", "csv.gz"), (".csv", "csv"), (".parquet", "parquet"))


class UnreadableFile(ValueError):
    """A file that cannot be parsed at all; the message is plain language, safe to show."""


def file_format(key: str) -> str | None:
    """`csv`, `csv.gz` or `parquet` from the file name, or None for files the inbox ignores."""
    name = key.rsplit("/", 1)[-1].lower()
    return next((fmt for suffix, fmt in FORMATS if name.endswith(suffix)), None)


def inbox_files(store: ObjectStore, municipality_id: str) -> tuple[list[str], list[str]]:
    """(files to load, ignored files): `readings/` then `lab/`, each in name order."""
    wanted: list[str] = []
    ignored: list[str] = []
    for folder in READINGS_FOLDERS:
        for key in store.list(f"{municipality_id}/{folder}"):
            (wanted if file_format(key) else ignored).append(key)
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


def read_long_file(data: bytes, fmt: str) -> pl.DataFrame:
    """A long-format file (sensor_id, observed_at, value, unit) as a frame of its original values.

    CSV columns stay text (the gate parses them, and quarantine keeps the original strings);
    Parquet columns keep their types. Column names are matched without case or spaces.
    Raises `UnreadableFile` for an empty, corrupt or incomplete file.
    """
    if not data:
        raise UnreadableFile("the file is empty")
    if fmt == "csv.gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            raise UnreadableFile("the file is not valid gzip (it may be truncated)") from None
        fmt = "csv"
        if not data.strip():
            raise UnreadableFile("the file is empty")
    if fmt == "csv":
        frame = _read_csv(data)
    elif fmt == "parquet":
        frame = _read_parquet(data)
    else:
        raise UnreadableFile(f"files of format {fmt!r} are not read")
    frame = frame.rename({name: name.strip().lower() for name in frame.columns})
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


def _read_csv(data: bytes) -> pl.DataFrame:
    if not data.strip():
        raise UnreadableFile("the file is empty")
    try:
        return pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8")
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
