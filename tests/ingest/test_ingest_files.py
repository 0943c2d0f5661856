"""Reading one inbox file, and the plain refusals for files that cannot be read at all."""

import gzip
import io

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.ingest.files import UnreadableFile, file_format, read_long_file

CSV = b"Sensor_ID,observed_at,value,unit,note\nm1-ph,2026-11-25T00:00:00Z,7.1,pH,\n"


def test_csv_gzip_and_parquet_read_the_same_rows():
    expected = pl.DataFrame(
        {
            "sensor_id": ["m1-ph"],
            "observed_at": ["2026-11-25T00:00:00Z"],
            "value": ["7.1"],
            "unit": ["pH"],
            "note": [None],
        },
        schema={
            "sensor_id": pl.String,
            "observed_at": pl.String,
            "value": pl.String,
            "unit": pl.String,
            "note": pl.String,
        },
    )
    assert_frame_equal(read_long_file(CSV, "csv"), expected)
    assert_frame_equal(read_long_file(gzip.compress(CSV), "csv.gz"), expected)
    buffer = io.BytesIO()
    expected.write_parquet(buffer)
    assert_frame_equal(read_long_file(buffer.getvalue(), "parquet"), expected)


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"", "csv", "the file is empty"),
        (b"\n\n", "csv", "the file is empty"),
        (b"sensor_id,observed_at,value,unit\n", "csv", "the file has a header but no rows"),
        (
            b"sensor_id,when,value\nx,y,1\n",
            "csv",
            "missing required column(s): observed_at, unit (found: sensor_id, when, value); "
            "a readings file needs sensor_id, observed_at, value, unit",
        ),
        (
            b"PAR1 this is not parquet",
            "parquet",
            "the file is not a readable Parquet file (corrupt or truncated)",
        ),
        (gzip.compress(CSV, mtime=0)[:20], "csv.gz", "the file is not valid gzip (it may be truncated)"),
    ],
    ids=["empty", "blank-lines", "header-only", "missing-columns", "not-parquet", "truncated-gzip"],
)
def test_unreadable_files_are_refused_in_plain_words(data, fmt, message):
    with pytest.raises(UnreadableFile) as refused:
        read_long_file(data, fmt)
    assert str(refused.value) == message


def test_formats_come_from_the_file_name():
    assert [file_format(k) for k in ("a/b.csv", "a/b.CSV.gz", "a/b.parquet", "a/notes.txt")] == [
        "csv",
        "csv.gz",
        "parquet",
        None,
    ]
