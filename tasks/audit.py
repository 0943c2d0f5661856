"""The append-only audit log: who did what to which record, written in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import Connection, insert

from tasks.models import AuditLog, utcnow


def record_audit(
    conn: Connection,
    *,
    municipality_id: str | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | int | None = None,
    details: dict | None = None,
) -> None:
    """Append one audit entry inside the caller's transaction."""
    conn.execute(
        insert(AuditLog).values(
            municipality_id=municipality_id,
            occurred_at=utcnow(),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=None if entity_id is None else str(entity_id),
            details=details or {},
        )
    )
