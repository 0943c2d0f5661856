"""A large file read in pieces, so that a file of any size is read with bounded memory: CSV and
JSON Lines (optionally gzip) as pieces of whole lines, Parquet as slices of rows.

Each CSV piece starts with the file's header line, so every piece reads like a small file of its
own; a cut never falls inside a quoted field (the quotes before it are balanced). The pieces'
rows are then spooled to disk by chunk (`chunks_of_pieces`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NamedTuple

import polars as pl

from tasks.ingest.files import InboxFile, UnreadableFile
from tasks.quality.gate import CHUNK_KEY, FILE_ROW, SENSOR_KEY, chunk_plan, numbered, sensor_key, with_chunk
from tasks.storage import ObjectStore

PIECE_BYTES = 64 * 2**20
PIECEWISE_FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz", "parquet")
PARQUET_PIECE_ROWS = 1_000_000


@contextmanager
def local_copy(store: ObjectStore, key: str) -> Iterator[Path]:
    """A path on this machine holding the object: the store's own file, or a temporary download."""
    local = store.local_path(key)
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="waterline-ingest-") as folder:
        path = Path(folder) / Path(key).name
        with store.open(key) as source, path.open("wb") as target:
            shutil.copyfileobj(source, target, 8 * 2**20)
        yield path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * 2**20):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def open_text(path: Path, compressed: bool) -> Iterator[BinaryIO]:
    """The file's bytes as written (gzip unpacked as it streams)."""
    with path.open("rb") as raw:
        if compressed:
            with gzip.GzipFile(fileobj=raw) as unpacked:
                yield unpacked
        else:
            yield raw


def text_pieces(
    stream: BinaryIO, piece_bytes: int | None = None, *, header: bool, quoted: bool
) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) of pieces of about `piece_bytes` whole lines.

    With `header`, each piece starts with the file's first line and line numbers count from the
    header as line 1. With `quoted` (CSV), a cut moves back until the double quotes before it are
    balanced, so no quoted field is split.
    """
    piece_bytes = piece_bytes or PIECE_BYTES
    head = stream.readline() if header else b""
    line = 2 if header else 1
    rest = b""
    while True:
        block = stream.read(piece_bytes)
        data = rest + block
        if not block:
            if data.strip():
                yield line, head + data
            return
        cut = data.rfind(b"\n") + 1
        while quoted and cut and data.count(b'"', 0, cut) % 2:
            cut = data.rfind(b"\n", 0, cut - 1) + 1
        if cut == 0:  # no whole line yet (a very long line): read on
            rest = data
            continue
        yield line, head + data[:cut]
        line += data.count(b"\n", 0, cut)
        rest = data[cut:]


class InboxChunks(NamedTuple):
    """A file ready for the readings gate: its chunks, the timezone of its naive times, the lines
    refused before the gate, and the figures of suites that judged it before its readings."""

    chunks: Iterator[pl.DataFrame]
    timezone: str
    refused: pl.DataFrame
    validations: tuple[dict, ...]


class Piece(NamedTuple):
    """One piece of a large file, read: rows numbered in the whole file, refused lines likewise."""

    frame: pl.DataFrame
    timezone: str
    refused: pl.DataFrame
    validations: tuple[dict, ...]


def read_pieces(path: Path, fmt: str, read: Callable[[bytes, str], InboxFile]) -> Iterator[Piece]:
    """Each piece of a CSV, JSON Lines or Parquet file read by `read(piece bytes, plain format)`.

    Row numbers continue from piece to piece, as if the file had been read whole. A refusal of a
    piece names where that piece starts.
    """
    plain = fmt.removesuffix(".gz")
    offset = 0
    for where, data in _raw_pieces(path, fmt):
        try:
            frame, timezone, refused, validations = read(data, plain)
        except UnreadableFile as exc:
            raise UnreadableFile(f"{exc} (in the part of the file from {where} on)") from None
        frame = numbered(frame).with_columns(pl.col(FILE_ROW) + offset)
        refused = refused.with_columns(pl.col("row_number") + offset)
        offset += frame.height + refused.height
        yield Piece(frame, timezone, refused, validations)


def _raw_pieces(path: Path, fmt: str, piece_bytes: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(where the piece starts, bytes readable as a file of the same format) of a large file."""
    if fmt == "parquet":
        rows = piece_bytes // 64 if piece_bytes else PARQUET_PIECE_ROWS
        try:
            total = pl.scan_parquet(path).select(pl.len()).collect().item()
        except (pl.exceptions.PolarsError, OSError):
            raise UnreadableFile("the file is not a readable Parquet file") from None
        for first in range(0, total, rows):
            buffer = io.BytesIO()
            pl.scan_parquet(path).slice(first, rows).collect().write_parquet(buffer)
            yield f"row {first + 1}", buffer.getvalue()
        return
    csv = fmt.removesuffix(".gz") == "csv"
    try:
        with open_text(path, compressed=fmt.endswith(".gz")) as stream:
            for first_line, data in text_pieces(stream, piece_bytes, header=csv, quoted=csv):
                yield f"line {first_line}", data
    except (OSError, EOFError, zlib.error):
        raise UnreadableFile("the file is not valid gzip (it may be truncated)") from None


def chunks_of_pieces(pieces: Iterator[Piece], rows: int, folder: Path) -> InboxChunks:
    """A large file's chunks, timezone, refused lines and early suites' figures, never holding
    more than a piece and a chunk.

    One pass over the pieces counts each sensor's rows (keeping the refused lines) and spools
    each piece to an Arrow file under `folder`; a second, over those files, sorts the rows into
    one Arrow file per chunk and piece. The
    chunks are then read back one at a time: whole sensors in sensor-id order, as `sensor_chunks`
    cuts a file read whole.
    """
    sizes, refused, timezone, spooled, validations = [], [], "UTC", [], []
    for number, piece in enumerate(pieces):
        sizes.append(piece.frame.select(sensor_key()).group_by(SENSOR_KEY).len())
        refused.append(piece.refused)
        validations.extend(piece.validations)
        timezone = piece.timezone
        spooled.append(folder / f"piece-{number:06d}.arrow")
        piece.frame.write_ipc(spooled[-1])
    if not sizes:
        raise UnreadableFile("the file has a header but no rows")
    plan = chunk_plan(pl.concat(sizes), rows)
    for number, path in enumerate(spooled):
        keyed = with_chunk(pl.read_ipc(path), plan)
        for (chunk,), part in keyed.partition_by(CHUNK_KEY, as_dict=True, include_key=False).items():
            part.write_ipc(folder / f"{chunk:06d}-{number:06d}.arrow")
        path.unlink()

    def chunks() -> Iterator[pl.DataFrame]:
        for chunk in range(plan[CHUNK_KEY].max() + 1):
            files = sorted(folder.glob(f"{chunk:06d}-*.arrow"))
            if files:
                yield pl.concat([pl.read_ipc(f) for f in files], how="vertical_relaxed")
                for f in files:
                    f.unlink()

    return InboxChunks(chunks(), timezone, pl.concat(refused), tuple(validations))


SAMPLE_BYTES = 4 * 2**20


def estimated_rows(path: Path, fmt: str, read: Callable[[bytes, str], InboxFile]) -> int:
    """About how many rows (readings, for a wide layout) the file holds, from a sample of it.

    A file too broken to read a sample of counts as small: reading it whole gives its reason.
    """
    plain = fmt.removesuffix(".gz")
    try:
        if plain == "parquet":
            total = pl.scan_parquet(path).select(pl.len()).collect().item()
            sample_rows = SAMPLE_BYTES // 64
            _, data = next(_raw_pieces(path, fmt, SAMPLE_BYTES), ("", b""))
            sample = read(data, plain)
            rows = sample.frame.height + sample.refused.height
            return int(rows * total / max(1, min(total, sample_rows)))
        csv = plain == "csv"
        with path.open("rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if fmt.endswith(".gz") else raw
            first = next(text_pieces(stream, SAMPLE_BYTES, header=csv, quoted=csv), None)
            consumed = raw.tell()  # bytes of the file (compressed, for gzip) the sample took
        if first is None:
            return 0
        sample = read(first[1], plain)
    except (UnreadableFile, pl.exceptions.PolarsError, OSError, EOFError, zlib.error):
        return 0
    return int((sample.frame.height + sample.refused.height) * path.stat().st_size / max(consumed, 1))
