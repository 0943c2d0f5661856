"""Object storage on a local folder and on a real S3-protocol server (moto's, on loopback)."""

import hashlib

from tasks.settings import reset_settings
from tasks.storage import ObjectStore, object_store, open_url


def _roundtrip(store: ObjectStore) -> None:
    stored = store.put_bytes("reports/m1/day/summary.json", b'{"ok": true}')
    assert stored.sha256 == hashlib.sha256(b'{"ok": true}').hexdigest()
    assert stored.size_bytes == 12
    assert store.get_bytes("reports/m1/day/summary.json") == b'{"ok": true}'
    assert store.exists("reports/m1/day/summary.json")
    assert not store.exists("reports/m2/day/summary.json")
    store.put_bytes("reports/m1/other.csv", b"a,b\n")
    assert store.list("reports/m1") == ["reports/m1/day/summary.json", "reports/m1/other.csv"]
    assert store.list("nothing-here") == []
    with open_url(stored.url) as handle:
        assert handle.read() == b'{"ok": true}'


def test_local_folder_store(home):
    store = object_store()
    _roundtrip(store)
    assert store.url("x/y.pdf").startswith("file://")


def test_s3_store(home, monkeypatch, s3_server):
    monkeypatch.setenv("WATERLINE_OBJECT_STORE_URL", "s3://waterline/objects")
    monkeypatch.setenv("WATERLINE_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("WATERLINE_S3_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("WATERLINE_S3_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("WATERLINE_S3_REGION", "us-east-1")
    reset_settings()
    store = object_store()
    _roundtrip(store)
    assert store.url("x/y.pdf") == "s3://waterline/objects/x/y.pdf"
