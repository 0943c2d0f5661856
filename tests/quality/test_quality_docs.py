"""GX Data Docs of a batch: rendered by GX from the kept result, stored on a folder and on a real
S3-protocol server (moto's, on loopback), recorded on the batch row and linked from the Prefect run."""

import json
import logging
from datetime import UTC, datetime

import polars as pl
import pytest
from sqlalchemy import insert, select

from tasks.database import begin
from tasks.models import IngestBatch, Municipality
from tasks.quality.docs import (
    FAVICON_KEY,
    artifact_key,
    docs_key,
    merge_results,
    publish_docs_link,
    publish_validation_docs,
    write_validation_docs,
)
from tasks.quality.expectations import FULL_LISTS, run_suite
from tasks.quality.gate import GX_COLUMNS, SUITE, prepare_readings
from tasks.storage import ObjectStore

SECRET = "waterline-test-secret-7c1f9e"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SENSORS = pl.DataFrame(
    {
        "sensor_id": ["m1-ph", "m1-turbidity"],
        "parameter": ["ph", "turbidity"],
        "valid_min": [0.0, 0.0],
        "valid_max": [14.0, 50.0],
        "installed_at": [None, None],
    },
    schema_overrides={"installed_at": pl.Datetime("us", "UTC")},
)


def _validate(rows: list[tuple]):
    raw = pl.DataFrame(rows, schema=["sensor_id", "observed_at", "value", "unit"], orient="row")
    prepared = prepare_readings(raw.cast(pl.String), SENSORS)
    latest = int(NOW.timestamp() * 1_000_000)
    return run_suite(prepared.select(GX_COLUMNS), SUITE, {"latest_observed_at_us": latest})


def _minute(i: int) -> str:
    return f"2026-11-25T{i // 60:02d}:{i % 60:02d}:00Z"


# Two readings from an unknown sensor, one above the pH range, one that is no number.
ROWS = [
    ("m1-ph", _minute(0), "7.1", "pH"),
    ("m1-ph", _minute(1), "17.2", "pH"),
    ("other-ph", _minute(2), "7", "pH"),
    ("other-ph", _minute(3), "7", "pH"),
    ("m1-turbidity", _minute(4), "abc", "NTU"),
    ("m1-turbidity", _minute(5), "0.4", "NTU"),
]


@pytest.fixture(scope="module")
def outcome():
    return _validate(ROWS)


def _s3_store(endpoint: str) -> ObjectStore:
    options = {
        "key": "test",
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    return ObjectStore("s3://waterline/objects", options)


def _assert_page_of_failed_batch(html: str) -> None:
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "Expectation Suite:" in html and SUITE in html
    assert "Failed" in html
    assert "m1 batch 42" in html  # the run name on the page
    # The failed expectations, by column, with their counts.
    assert "is_known_sensor" in html and "2 unexpected values found" in html
    assert "is_value_number" in html
    assert "valid_max" in html  # the pair check value_canonical <= valid_max
    assert html.count("1 unexpected values found") == 2  # the non-number and the pH of 17.2
    assert "Unsuccessful Expectations" in html
    assert SECRET not in html


def test_the_kept_result_counts_failures_without_listing_every_failing_row(outcome):
    result = outcome.gx_result
    json.dumps(result)  # plain JSON, ready to keep or pass on
    assert result["suite_name"] == SUITE
    assert result["statistics"]["unsuccessful_expectations"] == 3
    counts = {
        (r["expectation_config"]["kwargs"].get("column"), r["result"].get("unexpected_count"))
        for r in result["results"]
        if not r["success"]
    }
    assert counts == {("is_known_sensor", 2), ("is_value_number", 1), (None, 1)}
    for item in result["results"]:
        assert not set(FULL_LISTS) & set(item["result"])


def test_a_large_failing_file_keeps_only_partial_lists(tmp_path):
    rows = [("other-ph", _minute(i), "7", "pH") for i in range(300)]
    result = _validate(rows).gx_result
    unknown = next(
        r for r in result["results"] if r["expectation_config"]["kwargs"].get("column") == "is_known_sensor"
    )
    assert unknown["result"]["unexpected_count"] == 300
    assert len(unknown["result"]["partial_unexpected_index_list"]) == 20
    assert len(json.dumps(result)) < 30_000
    store = ObjectStore(str(tmp_path / "objects"))
    write_validation_docs(store, "m1", 1, result)
    assert len(store.get_bytes(docs_key("m1", 1))) < 120_000


def test_docs_of_a_batch_are_written_to_a_folder_store(tmp_path, outcome):
    store = ObjectStore(str(tmp_path / "objects"))
    url = write_validation_docs(store, "m1", 42, outcome.gx_result, source="s3://in/m1/readings.csv")
    assert url == (tmp_path / "objects/quality/m1/batches/42/index.html").as_uri()
    assert store.exists("quality/m1/batches/42/index.html")
    html = store.get_bytes(docs_key("m1", 42)).decode()
    _assert_page_of_failed_batch(html)
    assert "s3://in/m1/readings.csv" in html
    # The page links the favicon relatively; it resolves to the one copy for the whole store.
    assert 'href="../../../static/images/favicon.ico"' in html
    assert store.exists(FAVICON_KEY)
    write_validation_docs(store, "m2", 43, outcome.gx_result)
    assert store.list() == [
        "quality/m1/batches/42/index.html",
        "quality/m2/batches/43/index.html",
        FAVICON_KEY,
    ]


def test_docs_of_a_batch_are_written_to_an_s3_store(s3_server, outcome):
    import boto3

    store = _s3_store(s3_server)
    source = "https://user:pw@example.org/export.csv?token=abc"
    url = write_validation_docs(store, "m1", 42, outcome.gx_result, source=source)
    assert url == "s3://waterline/objects/quality/m1/batches/42/index.html"
    assert store.exists("quality/m1/batches/42/index.html")
    html = store.get_bytes(docs_key("m1", 42)).decode()
    _assert_page_of_failed_batch(html)
    assert "https://example.org/export.csv" in html
    assert "token" not in html and "pw@" not in html
    assert store.exists(FAVICON_KEY)
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="test",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    head = s3.head_object(Bucket="waterline", Key="objects/quality/m1/batches/42/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"


def test_chunks_of_a_file_merge_into_the_result_of_the_whole_file(tmp_path):
    whole = _validate(ROWS).gx_result
    chunks = [
        _validate([r for r in ROWS if r[0] == "m1-ph"]).gx_result,
        _validate([r for r in ROWS if r[0] != "m1-ph"]).gx_result,
    ]
    merged = merge_results(chunks)

    def figures(result: dict) -> list:
        return sorted(
            (
                r["expectation_config"]["type"],
                json.dumps(r["expectation_config"]["kwargs"], sort_keys=True),
                r["success"],
                r["result"].get("element_count"),
                r["result"].get("unexpected_count"),
                r["result"].get("missing_count"),
                round(r["result"].get("unexpected_percent") or 0, 9),
            )
            for r in result["results"]
        )

    assert figures(merged) == figures(whole)
    assert merged["statistics"] == whole["statistics"]
    assert merged["success"] is False
    store = ObjectStore(str(tmp_path / "objects"))
    write_validation_docs(store, "m1", 42, chunks)  # a list is merged first
    _assert_page_of_failed_batch(store.get_bytes(docs_key("m1", 42)).decode())


def test_artifact_keys_are_lowercase_letters_digits_and_dashes():
    assert artifact_key("Nord_Stadt.1") == "validation-docs-nord-stadt-1"
    assert artifact_key("m1") == "validation-docs-m1"


def test_the_docs_link_is_not_published_outside_a_prefect_run():
    assert publish_docs_link("file:///x/index.html", "m1", 42) is None


def test_the_docs_link_is_published_as_an_artifact_of_the_flow_run(prefect_server):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.context import get_run_context

    url = "s3://waterline/objects/quality/m-link/batches/42/index.html"

    @flow
    def ingest_with_docs() -> str:
        publish_docs_link(url, "M-Link", 42, description="Batch 42: 3 of 17 expectations failed")
        return str(get_run_context().flow_run.id)

    flow_run_id = ingest_with_docs()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["validation-docs-m-link"]))
        )
    assert len(artifacts) == 1
    artifact = artifacts[0]
    assert artifact.type == "markdown"
    assert url in artifact.data
    assert artifact.description == "Batch 42: 3 of 17 expectations failed"
    assert str(artifact.flow_run_id) == flow_run_id


def _batch(municipality_id: str = "m1") -> int:
    with begin() as conn:
        conn.execute(insert(Municipality).values(id=municipality_id, name="M1"))
        return conn.execute(
            insert(IngestBatch).values(
                municipality_id=municipality_id,
                source="file:///inbox/m1/readings.csv",
                checksum_sha256="0" * 64,
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]


def _docs_url(batch_id: int) -> str | None:
    with begin() as conn:
        return conn.execute(
            select(IngestBatch.validation_docs_url).where(IngestBatch.id == batch_id)
        ).scalar_one()


def test_published_docs_are_recorded_on_the_batch(database, tmp_path, outcome):
    batch_id = _batch()
    store = ObjectStore(str(tmp_path / "objects"))
    url = publish_validation_docs(store, "m1", batch_id, [outcome.gx_result])
    assert url == store.url(docs_key("m1", batch_id))
    assert _docs_url(batch_id) == url
    assert store.exists(docs_key("m1", batch_id))


def test_a_batch_without_validated_chunks_gets_no_docs(database, tmp_path):
    batch_id = _batch()
    store = ObjectStore(str(tmp_path / "objects"))
    assert publish_validation_docs(store, "m1", batch_id, []) is None
    assert _docs_url(batch_id) is None
    assert store.list() == []


def test_docs_that_cannot_be_written_leave_the_loaded_batch_alone(database, tmp_path, outcome, caplog):
    batch_id = _batch()
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    store = ObjectStore(str(tmp_path / "not-a-folder"))
    with caplog.at_level(logging.WARNING, logger="waterline.quality"):
        assert publish_validation_docs(store, "m1", batch_id, outcome.gx_result) is None
    assert _docs_url(batch_id) is None
    assert f"validation docs of batch {batch_id} not written" in caplog.text
