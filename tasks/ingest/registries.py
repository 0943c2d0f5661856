"""The `registry.yaml` in each municipality's inbox folder, applied before its files load."""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from tasks.database import begin, run_sql
from tasks.ingest.files import municipality_folders
from tasks.registry import REGISTRY_FILE, apply_registry, parse_registry
from tasks.storage import ObjectStore

log = logging.getLogger("waterline.ingest")


class UnknownMunicipality(ValueError):
    """Files arrived for a municipality that has no registry (in the inbox or the database)."""


def registered_municipalities(conn: Connection, municipality_ids: list[str]) -> list[str]:
    """Which of `municipality_ids` exist in the database, sorted."""
    if not municipality_ids:
        return []
    rows = run_sql(conn, "read_registered_municipalities", {"municipality_ids": municipality_ids})
    return [row.id for row in rows]


def apply_folder_registry(store: ObjectStore, municipality_id: str) -> tuple[str, str | None]:
    """Apply `<inbox>/<m>/registry.yaml` if present: ("applied" | "absent" | "rejected", error).

    A registry that does not parse, names another municipality, or claims another
    municipality's station or sensor ids is rejected and logged; the registry already in the
    database, if any, stays in force.
    """
    key = f"{municipality_id}/{REGISTRY_FILE}"
    if not store.exists(key):
        return "absent", None
    try:
        spec = parse_registry(store.get_bytes(key))
        if spec.municipality.id != municipality_id:
            raise ValueError(
                f"registry in folder {municipality_id!r} declares municipality "
                f"{spec.municipality.id!r}; the folder name must be the municipality id"
            )
        with begin() as conn:
            apply_registry(conn, spec, actor="ingest")
    except ValueError as exc:
        log.error("registry %s rejected: %s", key, exc)
        return "rejected", str(exc)
    return "applied", None


def apply_registries(store: ObjectStore) -> list[str]:
    """Apply every registry in the inbox; return the registered municipalities found there."""
    folders = municipality_folders(store)
    for municipality_id in folders:
        apply_folder_registry(store, municipality_id)
    with begin() as conn:
        registered = registered_municipalities(conn, folders)
    for folder in sorted(set(folders) - set(registered)):
        log.warning("inbox folder %r is not a registered municipality: put a valid %s in it; "
                    "its files wait until then", folder, REGISTRY_FILE)
    return registered


def require_municipality(municipality_id: str) -> None:
    """Raise `UnknownMunicipality` unless the municipality is registered."""
    with begin() as conn:
        if not registered_municipalities(conn, [municipality_id]):
            raise UnknownMunicipality(
                f"municipality {municipality_id!r} is not registered: put a valid "
                f"{REGISTRY_FILE} in its inbox folder"
            )
