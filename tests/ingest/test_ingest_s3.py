"""The inbox and the object store on a real S3-protocol server: the same files load the same
way as from a folder, once, a mapped wide source and a large file read in pieces included."""

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tasks.database import begin
from tasks.ingest import ingest_inbox
from tasks.models import IngestBatch, QuarantinedRow, Reading
from tasks.settings import reset_settings
from tasks.storage import inbox_store, object_store

GECCO = Path(__file__).parents[1] / "fixtures" / "sources" / "gecco2018" / "gecco"
RIVERTON = """
municipality: {id: riverton, name: Riverton}
stations:
  - id: riverton-plant
    name: Plant
    sensors:
      - {id: riverton-ph, parameter: ph}
      - {id: riverton-turbidity, parameter: turbidity}
"""


@pytest.fixture
def s3_inbox(home, monkeypatch, s3_server):
    """Inbox and object store under fresh prefixes of the S3 server's bucket."""
    prefix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("WATERLINE_INBOX_URL", f"s3://waterline/{prefix}/inbox")
    monkeypatch.setenv("WATERLINE_OBJECT_STORE_URL", f"s3://waterline/{prefix}/objects")
    monkeypatch.setenv("WATERLINE_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("WATERLINE_S3_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("WATERLINE_S3_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("WATERLINE_S3_REGION", "us-east-1")
    reset_settings()
    return inbox_store()


def test_an_s3_inbox_loads_long_wide_and_large_files_once(database, s3_inbox, monkeypatch):
    from tasks.ingest import load

    monkeypatch.setenv("WATERLINE_INGEST_IN_MEMORY_ROWS", "50")  # big.csv (120 rows) goes in pieces
    monkeypatch.setattr(load, "SAMPLE_BYTES", 100)
    reset_settings()
    store = s3_inbox
    store.put_bytes("riverton/registry.yaml", RIVERTON.encode())
    small = "sensor_id,observed_at,value,unit\nriverton-ph,2026-11-25T00:00:00Z,7.2,pH\n"
    small += "riverton-ph,2026-11-25T00:01:00Z,15,pH\n"  # pH 15: quarantined
    store.put_bytes("riverton/readings/small.csv", small.encode())
    big = "sensor_id,observed_at,value,unit\n" + "".join(
        f"riverton-turbidity,2026-11-24T{i // 60:02d}:{i % 60:02d}:00Z,0.{i % 9 + 1},NTU\n"
        for i in range(120)
    )
    store.put_bytes("riverton/readings/big.csv", big.encode())
    for path in GECCO.rglob("*"):
        if path.is_file():
            store.put_bytes(f"gecco/{path.relative_to(GECCO).as_posix()}", path.read_bytes())

    first = {f["municipality_id"]: f["details"] for f in ingest_inbox()}
    again = {f["municipality_id"]: f["details"] for f in ingest_inbox()}

    assert (first["riverton"]["files_loaded"], first["riverton"]["rows_loaded"]) == (2, 121)
    assert first["riverton"]["rows_quarantined"] == 1
    assert first["gecco"]["files_loaded"] == 1 and first["gecco"]["rows_loaded"] == 1962  # as from a folder
    assert again["riverton"]["files_already_loaded"] == 2 and again["gecco"]["files_already_loaded"] == 1
    with begin() as conn:
        readings = dict(
            conn.execute(
                select(Reading.municipality_id, func.count()).group_by(Reading.municipality_id)
            ).all()
        )
        quarantined = conn.scalar(select(func.count()).select_from(QuarantinedRow))
        sources = conn.scalars(select(IngestBatch.source).order_by(IngestBatch.source)).all()
        docs = conn.scalars(select(IngestBatch.validation_docs_url)).all()
    assert readings == {"riverton": 121, "gecco": first["gecco"]["rows_loaded"]}
    assert quarantined == 1 + first["gecco"]["rows_quarantined"]
    assert all(s.startswith("s3://waterline/") for s in sources) and len(sources) == 3
    objects = object_store()
    for url in docs:
        assert url.startswith("s3://waterline/")
        key = url.removeprefix(objects.url(""))
        assert objects.get_bytes(key).lstrip().startswith(b"<!DOCTYPE html>")
