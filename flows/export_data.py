"""The export flow: one slice of one municipality's data as a file, from a deployment with parameters."""

from __future__ import annotations

from datetime import date

from prefect import flow, task

from tasks.exports.request import ExportRequest, make_request
from tasks.exports.tasks import write_export


@task(name="check_export_request")
def check_export_request(
    kind: str,
    municipality: str,
    from_day: date | str | None,
    to_day: date | str | None,
    format: str,
    filters: dict,
) -> ExportRequest:
    """Check the parameters and make them one export request (a bad one fails here, in one sentence)."""
    return make_request(kind, municipality, from_day, to_day, format, **filters)


@flow(name="export_data")
def export_data(
    kind: str,
    municipality: str,
    from_day: date,
    to_day: date | None = None,
    format: str = "csv",
    station: list[str] | None = None,
    sensor: list[str] | None = None,
    parameter: list[str] | None = None,
    severity: list[str] | None = None,
    status: list[str] | None = None,
    resolution: str | None = None,
    window: int | None = None,
    destination: str | None = None,
) -> dict:
    """Export one kind of a municipality's data (or `bulk`: all of them, zipped) for local days
    [from_day, to_day] in one format, to object storage (a link artifact) or to `destination`.
    `resolution` and `window` shape the aggregates (default: days, a 10-point moving average)."""
    filters = {
        "station": station,
        "sensor": sensor,
        "parameter": parameter,
        "severity": severity,
        "status": status,
        "resolution": resolution,
        "window": window,
    }
    request = check_export_request(kind, municipality, from_day, to_day, format, filters)
    return write_export(request, destination)
