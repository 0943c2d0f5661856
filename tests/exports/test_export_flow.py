"""The export flow, as a deployment runs it: parameters in, the file and its link artifact out."""

from __future__ import annotations

import polars as pl
import pytest


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_export_flow_writes_to_object_storage_and_links_it(prefect_server, towns):
    from prefect.artifacts import Artifact

    from flows.export_data import export_data

    result = export_data(
        kind="incidents", municipality="a", from_day="2026-04-02", format="csv", severity=["HIGH"]
    )
    assert result["rows"] == 1
    frame = pl.read_csv(result["location"].removeprefix("file://"))
    assert frame["sensor_id"].to_list() == ["a-ph"]
    artifact = Artifact.get("export-a-incidents")
    # Prefect keeps a link artifact as the markdown link `[text](url)`.
    assert artifact.data == f"[a_incidents_2026-04-02_2026-04-02.csv]({result['location']})"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_export_flow_fails_on_a_bad_request_with_the_reason(prefect_server, towns):
    from flows.export_data import export_data

    with pytest.raises(ValueError, match="the filter severity does not apply to audit_log"):
        export_data(kind="audit_log", municipality="a", from_day="2026-04-02", severity=["HIGH"])
