"""The Prefect task of an export: write it, deliver it, and link it from the run."""

from __future__ import annotations

import re

from prefect import task

from tasks.exports.export import run_export
from tasks.exports.request import ExportRequest
from tasks.stages import in_prefect_run


def _create_link_artifact(result: dict) -> None:
    """A Prefect link artifact to the export, only inside a flow or task run."""
    from prefect.artifacts import create_link_artifact

    if not in_prefect_run():
        return
    slug = re.sub(r"[^a-z0-9-]+", "-", f"export-{result['municipality_id']}-{result['kind']}".lower())
    location = result["location"]
    create_link_artifact(
        key=slug,
        link=location if "://" in location else f"file://{location}",
        link_text=location.rsplit("/", 1)[-1],
        description=f"{result['kind']} of {result['municipality_id']}, {result['from_day']} to "
        f"{result['to_day']}: {result['rows']:,} rows, {result['size_bytes']:,} bytes, "
        f"sha256 {result['sha256']}",
    )


@task(name="write_export", task_run_name="write-export-{request.kind}")
def write_export(request: ExportRequest, destination: str | None = None) -> dict:
    """Write one export in bounded memory and deliver it to object storage or a path."""
    result = run_export(request, destination)
    _create_link_artifact(result)
    return result
