"""Object storage behind one URL: a local folder by default, any S3-compatible store in production."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

from tasks.settings import get_settings


@dataclass(frozen=True)
class StoredObject:
    url: str
    sha256: str
    size_bytes: int


class ObjectStore:
    """Keys are `/`-separated paths below the store's root URL."""

    def __init__(self, root_url: str, storage_options: dict | None = None) -> None:
        self.root_url = root_url.rstrip("/")
        self.fs, self.root = url_to_fs(self.root_url, **(storage_options or {}))
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    def url(self, key: str) -> str:
        """The full URL of `key`: `file:///...` for a folder, `s3://bucket/...` for S3."""
        path = f"{self.root}/{key.lstrip('/')}"
        if self.protocol in ("file", "local"):
            return Path(path).resolve().as_uri()
        return f"{self.protocol}://{path}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}"

    def _parent_made(self, key: str) -> str:
        """The path of `key`, its folder made first on a local store (object stores have none)."""
        path = self._path(key)
        if self.protocol in ("file", "local"):
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return path

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        path = self._parent_made(key)
        self.fs.pipe_file(path, data)
        return StoredObject(self.url(key), hashlib.sha256(data).hexdigest(), len(data))

    def get_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        """Keys below `prefix` (recursive), sorted; empty when the prefix does not exist."""
        base = self._path(prefix).rstrip("/") if prefix else self.root
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        root = self.root.rstrip("/") + "/"
        return sorted(p.removeprefix(root) for p in found)

    def open(self, key: str, mode: str = "rb"):
        return self.fs.open(self._parent_made(key) if "w" in mode else self._path(key), mode)

    def local_path(self, key: str) -> Path | None:
        """Where the object lies on this machine, for a local folder store; None otherwise."""
        return Path(self._path(key)) if self.protocol in ("file", "local") else None

    def size(self, key: str) -> int:
        return self.fs.size(self._path(key))


def open_url(url: str, mode: str = "rb"):
    """Open any object URL written by an `ObjectStore` with the configured credentials."""
    options = get_settings().storage_options() if url.startswith("s3://") else {}
    return fsspec.open(url, mode, **options).open()


def object_store() -> ObjectStore:
    """The store for reports, validation docs and other artifacts."""
    settings = get_settings()
    return ObjectStore(settings.resolved_object_store_url, _options(settings.resolved_object_store_url))


def inbox_store() -> ObjectStore:
    """The store incoming files are dropped into."""
    settings = get_settings()
    return ObjectStore(settings.resolved_inbox_url, _options(settings.resolved_inbox_url))


def _options(url: str) -> dict:
    return get_settings().storage_options() if url.startswith("s3://") else {}
