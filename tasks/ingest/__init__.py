"""Ingestion: inbox files through the quality gate into readings, each file exactly once."""

from tasks.ingest.tasks import ingest_inbox, ingest_municipality, sync_registries

__all__ = ["ingest_inbox", "ingest_municipality", "sync_registries"]
