"""Municipalities, stations and sensors, declared in a `registry.yaml` per municipality."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml
from pydantic import BaseModel, EmailStr, Field, field_validator
from sqlalchemy import Connection, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from tasks.audit import record_audit
from tasks.models import Municipality, Sensor, Station
from tasks.parameters import parameter
from tasks.settings import get_settings
from tasks.timezones import TimeZoneName

REGISTRY_FILE = "registry.yaml"


class SensorSpec(BaseModel):
    id: str
    parameter: str
    unit: str | None = None
    kind: str = "online"
    valid_min: float | None = None
    valid_max: float | None = None
    interval_seconds: int | None = None
    installed_at: datetime | None = None
    last_calibrated_at: datetime | None = None
    active: bool = True

    @field_validator("parameter")
    @classmethod
    def _known_parameter(cls, value: str) -> str:
        parameter(value)
        return value

    @field_validator("installed_at", "last_calibrated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class StationSpec(BaseModel):
    id: str
    name: str
    latitude: float | None = None
    longitude: float | None = None
    sensors: list[SensorSpec] = Field(default_factory=list)


class MunicipalitySpec(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str
    timezone: TimeZoneName = Field(default_factory=lambda: get_settings().default_timezone)
    standards: list[str] = Field(default_factory=lambda: ["WHO"])
    regulator_emails: list[EmailStr] = Field(default_factory=list)


class RegistrySpec(BaseModel):
    municipality: MunicipalitySpec
    stations: list[StationSpec] = Field(default_factory=list)


def parse_registry(text: str | bytes) -> RegistrySpec:
    """Parse and check a registry document; raises ValueError with a readable message."""
    try:
        return RegistrySpec.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ValueError(f"registry is not valid YAML: {exc}") from None
    except Exception as exc:  # pydantic.ValidationError
        raise ValueError(f"registry is not valid: {exc}") from None


def apply_registry(conn: Connection, spec: RegistrySpec, actor: str = "registry") -> str:
    """Create or update the municipality, its stations and sensors; returns the municipality id.

    A station or sensor id that already belongs to another municipality is refused.
    """
    m = spec.municipality
    _refuse_foreign_ids(conn, spec)
    changed = {"municipality": 0, "stations": 0, "sensors": 0}
    municipality = {"name": m.name, "timezone": m.timezone, "standards": m.standards,
                    "regulator_emails": list(m.regulator_emails)}
    changed["municipality"] += _upsert(conn, Municipality, m.id, municipality,
                                       created_at=datetime.now(UTC))
    for st in spec.stations:
        station = {"municipality_id": m.id, "name": st.name, "latitude": st.latitude,
                   "longitude": st.longitude}
        changed["stations"] += _upsert(conn, Station, st.id, station)
        for se in st.sensors:
            catalog_entry = parameter(se.parameter)
            sensor = {
                "municipality_id": m.id,
                "station_id": st.id,
                "parameter": se.parameter,
                "unit": catalog_entry.unit,
                "kind": se.kind,
                "valid_min": catalog_entry.min if se.valid_min is None else se.valid_min,
                "valid_max": catalog_entry.max if se.valid_max is None else se.valid_max,
                "interval_seconds": se.interval_seconds,
                "installed_at": se.installed_at,
                "last_calibrated_at": se.last_calibrated_at,
                "active": se.active,
            }
            changed["sensors"] += _upsert(conn, Sensor, se.id, sensor)
    if any(changed.values()):  # re-applying an unchanged registry (every hourly run) leaves no trace
        record_audit(conn, municipality_id=m.id, actor=actor, action="registry.applied",
                     entity_type="municipality", entity_id=m.id,
                     details={"stations": len(spec.stations),
                              "sensors": sum(len(s.sensors) for s in spec.stations),
                              "changed": changed})
    return m.id


def _upsert(conn: Connection, model, id_: str, values: dict, **on_insert) -> int:  # noqa: ANN001
    """Insert a row or update it where a value differs; 1 if anything was written, else 0."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(model).values(id=id_, **values, **on_insert)
    table = model.__table__
    differs = or_(*(table.c[k].is_distinct_from(statement.excluded[k]) for k in values))
    statement = statement.on_conflict_do_update(
        index_elements=["id"], set_=values, where=differs
    ).returning(table.c.id)
    return len(conn.execute(statement).all())


def _refuse_foreign_ids(conn: Connection, spec: RegistrySpec) -> None:
    m = spec.municipality.id
    station_ids = [s.id for s in spec.stations]
    sensor_ids = [se.id for s in spec.stations for se in s.sensors]
    clashes = conn.execute(
        select(Station.id).where(Station.id.in_(station_ids), Station.municipality_id != m)
    ).scalars().all() + conn.execute(
        select(Sensor.id).where(Sensor.id.in_(sensor_ids), Sensor.municipality_id != m)
    ).scalars().all()
    if clashes:
        raise ValueError(
            f"registry of {m!r} names ids that belong to another municipality: {sorted(clashes)}"
        )
