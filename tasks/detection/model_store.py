"""Where learned detectors live: their bytes in object storage, their record in `detector_models`.

The bytes are the fitted scikit-learn model, written with joblib, under
`detector-models/<municipality>/<station>/<trained at>-<first 12 of its SHA-256>.joblib`. Loading
reads the bytes, checks their SHA-256 against the record before unpickling anything (a pickle runs
code), and refuses a mismatch with `ModelIntegrityError`.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime

from sqlalchemy import Connection, Row, insert, select, update

from tasks.models import DetectorModel
from tasks.storage import ObjectStore, StoredObject, open_url

KEY_PREFIX = "detector-models"


class ModelIntegrityError(ValueError):
    """The stored bytes of a model are not the ones recorded."""


def model_bytes(model: object) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def model_key(municipality_id: str, station_id: str, trained_at: datetime, sha256: str) -> str:
    return f"{KEY_PREFIX}/{municipality_id}/{station_id}/{trained_at:%Y%m%dT%H%M%S%fZ}-{sha256[:12]}.joblib"


def store_model(
    store: ObjectStore, municipality_id: str, station_id: str, trained_at: datetime, data: bytes
) -> StoredObject:
    key = model_key(municipality_id, station_id, trained_at, hashlib.sha256(data).hexdigest())
    return store.put_bytes(key, data)


def load_model(object_url: str, sha256: str) -> object:
    """The model at `object_url`, once its bytes are proven to be the recorded ones."""
    import joblib

    with open_url(object_url) as handle:
        data = handle.read()
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ModelIntegrityError(
            f"the model at {object_url} has SHA-256 {found[:12]}..., not the recorded {sha256[:12]}...: "
            "it was not loaded"
        )
    return joblib.load(io.BytesIO(data))


def insert_model(conn: Connection, values: dict) -> int:
    return conn.execute(insert(DetectorModel).values(**values)).inserted_primary_key[0]


def activate_model(
    conn: Connection, municipality_id: str, station_id: str, model_id: int, reason: str
) -> str:
    """Make `model_id` the station's only active model, for `reason`; returns the reason recorded
    (naming the models it replaced)."""
    replaced = (
        conn.execute(
            select(DetectorModel.id).where(
                DetectorModel.municipality_id == municipality_id,
                DetectorModel.station_id == station_id,
                DetectorModel.active.is_(True),
                DetectorModel.id != model_id,
            )
        )
        .scalars()
        .all()
    )
    if replaced:
        conn.execute(
            update(DetectorModel)
            .where(DetectorModel.id.in_(replaced))
            .values(active=False, reason=f"replaced by model {model_id}")
        )
    if replaced:
        reason += f"; replaces model {', '.join(str(i) for i in replaced)}"
    conn.execute(update(DetectorModel).where(DetectorModel.id == model_id).values(active=True, reason=reason))
    return reason


def active_models(conn: Connection, municipality_id: str) -> list[Row]:
    """The municipality's active models, one per station at most, by station."""
    return list(
        conn.execute(
            select(*DetectorModel.__table__.columns)
            .where(DetectorModel.municipality_id == municipality_id, DetectorModel.active.is_(True))
            .order_by(DetectorModel.station_id)
        )
    )


def list_models(
    conn: Connection, municipality_id: str | None = None, station_id: str | None = None
) -> list[Row]:
    """Models, the latest first."""
    query = select(*DetectorModel.__table__.columns)
    if municipality_id is not None:
        query = query.where(DetectorModel.municipality_id == municipality_id)
    if station_id is not None:
        query = query.where(DetectorModel.station_id == station_id)
    return list(conn.execute(query.order_by(DetectorModel.id.desc())))
