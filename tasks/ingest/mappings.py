"""Source mappings: how the files (or HTTP pages) of one source become long readings.

Where they live: one YAML file per source, `<inbox>/<municipality>/sources/<name>.yaml`.
- `kind: file` (the default): the source's files are every readable file below
  `<inbox>/<municipality>/<name>/` (any depth). A mapping named `readings` or `lab` applies to
  those folders. Files in `readings/` and `lab/` without a mapping keep the long layout
  (sensor_id, observed_at, value, unit) with ISO-8601 times carrying an offset.
- `kind: http`: readings are pulled from a JSON API (tasks/ingest/http_source.py); each page
  body is kept at `<inbox>/<municipality>/pulled/<name>/<sha256>.json` and loaded as one batch.

A mapping names its layout and where the time is; everything else has a default:

    layout: wide                 # long (default) | wide: one column per sensor, one row per time
    time: {column: Time, format: "%Y-%m-%d %H:%M:%S"}   # format: strftime; absent = ISO-8601
    timezone: Etc/GMT-1          # the zone of times written without an offset (default UTC)
    csv: {delimiter: ",", decimal: ".", null_values: [NA]}
    columns:                     # wide only: value column -> sensor and unit; others are ignored
      Tp: {sensor_id: plant-temperature, unit: degC}
    rename: {station_sensor: sensor_id}   # long only: file column -> sensor_id | value | unit

A mapping that does not parse raises `BadMapping` naming the file and each bad field; the
loader records it as the failed batch of every file of that source.
"""

from __future__ import annotations

import re
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.storage import ObjectStore
from tasks.timezones import TimeZoneName

SOURCES_FOLDER = "sources"
PULLED_FOLDER = "pulled"
MAPPING_SUFFIX = ".yaml"
SOURCE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RESERVED_NAMES = (SOURCES_FOLDER, PULLED_FOLDER)
LONG_COLUMNS = ("sensor_id", "value", "unit")  # observed_at comes from `time.column`


class BadMapping(ValueError):
    """A source mapping that cannot be used; the message names the file and the fields."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeSpec(Strict):
    column: str = "observed_at"
    format: str | None = None  # strftime of the written time; None: ISO-8601 text


class CsvSpec(Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    null_values: list[str] = Field(default_factory=list)


class WideColumn(Strict):
    sensor_id: str = Field(min_length=1)
    unit: str = Field(min_length=1)


class PagingSpec(Strict):
    style: Literal["cursor", "since"]
    param: str = Field(default="cursor", min_length=1)  # query parameter carrying the cursor
    next_field: str = "next_cursor"  # cursor style: where the body names the next page


class AuthSpec(Strict):
    env: str = Field(min_length=1)  # environment variable holding the secret, never the secret
    header: str = "Authorization"
    scheme: str | None = "Bearer"


class SourceMapping(Strict):
    kind: Literal["file", "http"] = "file"
    layout: Literal["long", "wide"] = "long"
    time: TimeSpec = Field(default_factory=TimeSpec)
    timezone: TimeZoneName = "UTC"
    csv: CsvSpec = Field(default_factory=CsvSpec)
    columns: dict[str, WideColumn] = Field(default_factory=dict)
    rename: dict[str, Literal["sensor_id", "value", "unit"]] = Field(default_factory=dict)
    # kind: http
    url: str | None = Field(default=None, pattern=r"^https?://")
    records: str = "readings"  # the field of a page body holding its list of records
    paging: PagingSpec | None = None
    auth: AuthSpec | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    retries: int = Field(default=4, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0)
    max_wait_seconds: float = Field(default=60.0, ge=0)  # cap on one wait (Retry-After included)
    max_pages: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> SourceMapping:
        if self.layout == "wide" and not self.columns:
            raise ValueError("a wide layout needs `columns` (value column -> sensor_id and unit)")
        if self.layout == "long" and self.columns:
            raise ValueError("`columns` is for wide layouts; a long file names its sensors")
        if self.layout == "wide" and self.rename:
            raise ValueError("`rename` is for long layouts; a wide layout declares `columns`")
        if self.time.column in self.columns:
            raise ValueError(f"the time column {self.time.column!r} is also a value column")
        if self.kind == "http" and (self.url is None or self.paging is None):
            raise ValueError("an http source needs `url` and `paging`")
        if self.kind == "file" and (self.url or self.paging or self.auth):
            raise ValueError("`url`, `paging` and `auth` are for `kind: http` sources")
        return self


def mapping_key(municipality_id: str, name: str) -> str:
    return f"{municipality_id}/{SOURCES_FOLDER}/{name}{MAPPING_SUFFIX}"


def parse_mapping(text: str | bytes, where: str) -> SourceMapping:
    """Parse one mapping document; `BadMapping` names `where` and every bad field."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = str(exc).splitlines()[0]
        raise BadMapping(f"source mapping {where} is not valid YAML: {detail}") from None
    if not isinstance(document, dict):
        raise BadMapping(f"source mapping {where} must be a YAML mapping of fields")
    try:
        return SourceMapping.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'mapping'}: {error['msg']}"
            for error in exc.errors()
        )
        raise BadMapping(f"source mapping {where} is not valid: {problems}") from None


def declared_kind(text: str | bytes) -> str | None:
    """The `kind` a mapping document declares (`file` by default), even if the rest is bad."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return document.get("kind", "file") if isinstance(document, dict) else None


def source_names(store: ObjectStore, municipality_id: str) -> list[str]:
    """The names of the sources declared under `<municipality>/sources/`, sorted."""
    prefix = f"{municipality_id}/{SOURCES_FOLDER}/"
    names = []
    for key in store.list(prefix):
        name = key.removeprefix(prefix)
        if "/" in name or not name.endswith(MAPPING_SUFFIX):
            continue
        names.append(name.removesuffix(MAPPING_SUFFIX))
    return sorted(names)


def read_mapping(store: ObjectStore, municipality_id: str, name: str) -> SourceMapping:
    """The parsed mapping of one source; `BadMapping` for a bad name or document."""
    key = mapping_key(municipality_id, name)
    if not re.match(SOURCE_NAME, name) or name in RESERVED_NAMES:
        raise BadMapping(
            f"source mapping {key}: the name {name!r} must be lower-case letters, digits, - or _ "
            f"and not one of {', '.join(RESERVED_NAMES)}"
        )
    return parse_mapping(store.get_bytes(key), key)


def source_of_key(store: ObjectStore, municipality_id: str, key: str) -> str | None:
    """The source a file belongs to (by its folder), or None for a file without a mapping."""
    parts = key.removeprefix(f"{municipality_id}/").split("/")
    if len(parts) < 2:
        return None
    name = parts[1] if parts[0] == PULLED_FOLDER and len(parts) > 2 else parts[0]
    return name if store.exists(mapping_key(municipality_id, name)) else None
