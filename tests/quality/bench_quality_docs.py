"""Benchmark (not a test): GX Data Docs of one batch of ~1 M validated rows, per batch.

    /work/venv/bin/python tests/quality/bench_quality_docs.py [ROWS] [CHUNKS]

Validates ROWS long-format pH readings (every 200th out of range, one sensor in 50 unknown) with
the gate's suite, in CHUNKS parts by sensor, then prints as JSON lines: the time to keep the
SUMMARY-sized result, its size, and the time and bytes of writing the batch's docs to a local
folder store and to an S3-protocol server (moto's, on loopback), first batch and later ones.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime

import polars as pl

SENSORS = 50
REPEATS = 5


def readings(rows: int) -> pl.DataFrame:
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    i = pl.int_range(0, rows)
    return pl.select(
        sensor_id=pl.format("bench-ph-{}", (i % SENSORS).cast(pl.String).str.zfill(3)),
        observed_at=pl.from_epoch(start + (i // SENSORS) * 60, time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        value=pl.when(i % 200 == 0).then(pl.lit("99")).otherwise(pl.lit("7.1")),
        unit=pl.lit("pH"),
    )


def sensors() -> pl.DataFrame:
    known = [f"bench-ph-{k:03d}" for k in range(SENSORS - 1)]  # the last sensor is unknown
    return pl.DataFrame(
        {
            "sensor_id": known,
            "parameter": ["ph"] * len(known),
            "valid_min": [None] * len(known),
            "valid_max": [None] * len(known),
            "installed_at": [None] * len(known),
        },
        schema={
            "sensor_id": pl.String,
            "parameter": pl.String,
            "valid_min": pl.Float64,
            "valid_max": pl.Float64,
            "installed_at": pl.Datetime("us", "UTC"),
        },
    )


def validate(rows: int, chunks: int) -> list[dict]:
    from tasks.quality import expectations
    from tasks.quality.gate import GX_COLUMNS, SUITE, prepare_readings

    spent = []
    keep = expectations.summary_result

    def timed(result):  # noqa: ANN001
        started = time.perf_counter()
        kept = keep(result)
        spent.append(time.perf_counter() - started)
        return kept

    expectations.summary_result = timed
    prepared = prepare_readings(readings(rows), sensors())
    parts = (
        [prepared]
        if chunks == 1
        else prepared.with_columns(part=pl.col("sensor_id").str.slice(-3).cast(pl.Int64) % chunks)
        .partition_by("part", include_key=False)
    )
    results = []
    for part in parts:
        outcome = expectations.run_suite(
            part.select(GX_COLUMNS), SUITE, {"latest_observed_at_us": 2**62}
        )
        results.append(outcome.gx_result)
        print(json.dumps({"step": "run_suite", "rows": part.height, "gx_seconds": outcome.seconds}))
    expectations.summary_result = keep
    print(
        json.dumps(
            {
                "step": "keep SUMMARY-sized result",
                "seconds_per_chunk": round(statistics.mean(spent), 4),
                "json_bytes_per_chunk": round(statistics.mean(len(json.dumps(r)) for r in results)),
            }
        )
    )
    return results


def measure(store, label: str, results: list[dict]) -> None:  # noqa: ANN001
    from tasks.quality.docs import FAVICON_KEY, docs_key, write_validation_docs

    times = []
    for batch_id in range(1, REPEATS + 2):
        started = time.perf_counter()
        write_validation_docs(store, "bench", batch_id, results, source="s3://inbox/bench/readings.csv")
        times.append(time.perf_counter() - started)
    page = len(store.get_bytes(docs_key("bench", 1)))
    favicon = len(store.get_bytes(FAVICON_KEY))
    print(
        json.dumps(
            {
                "step": f"write_validation_docs, {label}",
                "first_batch_seconds": round(times[0], 4),
                "later_batch_seconds_median": round(statistics.median(times[1:]), 4),
                "page_bytes": page,
                "favicon_bytes_once_per_store": favicon,
                "objects": len(store.list("quality")),
            }
        )
    )


def main(rows: int, chunks: int) -> None:
    from tasks.storage import ObjectStore

    started = time.perf_counter()
    import great_expectations  # noqa: F401

    seconds = round(time.perf_counter() - started, 2)
    print(json.dumps({"step": "import great_expectations", "seconds": seconds}))
    results = validate(rows, chunks)
    with tempfile.TemporaryDirectory() as folder:
        measure(ObjectStore(folder), "local folder", results)
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials).create_bucket(
            Bucket="bench"
        )
        options = {
            "key": "bench",
            "secret": "bench",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        measure(ObjectStore("s3://bench/objects", options), "S3 (moto on loopback)", results)
    finally:
        server.stop()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 1,
    )
