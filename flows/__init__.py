"""Waterline's Prefect flows, one per file, and the `waterline` command line."""
