"""The daily summary as JSON (canonical), CSV (the per-parameter table) and XLSX (a sheet per
section); the PDF is in `tasks/reports/pdf.py`."""

from __future__ import annotations

import io
from datetime import datetime

import polars as pl
import xlsxwriter

from tasks.reports.data import (
    ANOMALY_SCHEMA,
    COMPLIANCE_SCHEMA,
    INCIDENT_SCHEMA,
    INSIGHT_SCHEMA,
    MAINTENANCE_SCHEMA,
    canonical_json,
)
from tasks.reports.summary import SENSOR_SCHEMA, STAT_COLUMNS
from tasks.reports.templates import amendment_note, daily_layout, fill

PARAMETER_SCHEMA = {
    "parameter": pl.String,
    "unit": pl.String,
    "sensors": pl.Int64,
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
    "value_min": pl.Float64,
    "value_mean": pl.Float64,
    "value_max": pl.Float64,
    "compliance_status": pl.String,
}
SENSOR_ROW_SCHEMA = {
    **{k: v for k, v in SENSOR_SCHEMA.items() if k not in ("interval_seconds", "is_active")},
    **{c: (pl.Int64 if c.startswith("count") else pl.Float64) for c in STAT_COLUMNS},
    "count_received": pl.Int64,
    "count_expected": pl.Int64,
    "coverage_pct": pl.Float64,
    "source": pl.String,
}
INCIDENT_ROW_SCHEMA = {
    **INCIDENT_SCHEMA,
    "is_opened_that_day": pl.Boolean,
    "is_open_at_end": pl.Boolean,
}
CHART_SCHEMA = {"hours_from_start": pl.Float64, "local_time": pl.String, "value": pl.Float64}


def report_meta(content: dict, revision: int, content_hash: str, generated_at: datetime) -> dict:
    """What a rendering adds to the data: title, revision, amendment note, hash, generation time."""
    return {
        "title": daily_layout()["title"],
        "revision": revision,
        "is_amended": revision > 1,
        "amendment": amendment_note(revision),
        "content_sha256": content_hash,
        "generated_at": generated_at,
    }


def section_frames(content: dict) -> dict[str, pl.DataFrame]:
    """Each tabular section of the content as a frame with a fixed schema (also when empty)."""
    chart = content.get("chart") or {}
    return {
        "parameters": pl.DataFrame(content["parameters"], schema=PARAMETER_SCHEMA),
        "sensors": pl.DataFrame(content["sensors"], schema=SENSOR_ROW_SCHEMA),
        "compliance": pl.DataFrame(content["compliance"], schema=COMPLIANCE_SCHEMA),
        "incidents": pl.DataFrame(content["incidents"], schema=INCIDENT_ROW_SCHEMA),
        "anomalies": pl.DataFrame(content["anomalies"], schema=ANOMALY_SCHEMA),
        "maintenance": pl.DataFrame(content["maintenance"], schema=MAINTENANCE_SCHEMA),
        "insights": pl.DataFrame(content.get("insights", []), schema=INSIGHT_SCHEMA),
        "chart": pl.DataFrame(chart.get("points", []), schema=CHART_SCHEMA),
    }


def heading_lines(content: dict, meta: dict) -> list[str]:
    """Title, period, revision and (when amended) the amendment sentence, as plain lines."""
    town = content["municipality"]
    lines = [
        f"{meta['title']}: {town['name']} ({town['id']}), {content['period']['day'].isoformat()} "
        f"(local day, {town['timezone']})",
        f"Revision {meta['revision']}",
    ]
    if meta["amendment"]:
        lines.append(meta["amendment"])
    lines.append(f"Content SHA-256: {meta['content_sha256']}")
    lines.append(f"Generated at: {meta['generated_at'].isoformat()}")
    return lines


def exclusion_note(content: dict, most: int = 12) -> str:
    """One plain sentence: how many of the day's readings QC excluded (flag 4 or 9), and from which
    sensors, most first (the first `most` of them, then how many more)."""
    layout, figures = daily_layout(), content["figures"]
    readings, excluded = figures["readings_observed"], figures["readings_excluded"]
    if not excluded:
        return fill(layout["qc_excluded_none"], readings=f"{readings:,}")
    sensors = sorted(
        (s for s in content["sensors"] if s["count_excluded"]),
        key=lambda s: (-s["count_excluded"], s["sensor_id"]),
    )
    listed = [f"{s['sensor_id']} ({s['parameter']}): {s['count_excluded']:,}" for s in sensors[:most]]
    if len(sensors) > most:
        more = len(sensors) - most
        listed.append(f"and {more} more sensor{'s' if more > 1 else ''}")
    return fill(
        layout["qc_excluded"], excluded=f"{excluded:,}", readings=f"{readings:,}", by_sensor="; ".join(listed)
    )


def render_json(content: dict, meta: dict) -> bytes:
    """The whole report as canonical JSON (sorted keys, ISO dates), the data plus `report` meta."""
    return (canonical_json({**content, "report": meta}, indent=2) + "\n").encode("utf-8")


def render_csv(content: dict, meta: dict) -> bytes:
    """The per-parameter table, after `#` comment lines with title, revision and amendment."""
    header = "".join(f"# {line}\n" for line in [*heading_lines(content, meta), exclusion_note(content)])
    table = section_frames(content)["parameters"].write_csv()
    return (header + table).encode("utf-8")


def _naive_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Excel has no time zones: aware timestamps become naive UTC (the sheet says so)."""
    return frame.with_columns(
        pl.col(name).dt.replace_time_zone(None)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


def render_xlsx(content: dict, meta: dict) -> bytes:
    """A workbook with a summary sheet and one sheet per section: formatted header row, frozen,
    numbers stored as numbers."""
    layout = daily_layout()["xlsx"]
    sheets = layout["sheets"]
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    summary = workbook.add_worksheet(sheets["summary"])
    title_format = workbook.add_format(layout["title_format"])
    amended_format = workbook.add_format(layout["amended_format"])
    lines = heading_lines(content, meta)
    for row, line in enumerate(lines):
        summary.write_string(
            row,
            0,
            line,
            amended_format if line == meta["amendment"] else (title_format if row == 0 else None),
        )
    summary.write_string(len(lines), 0, "Times are in UTC.")
    summary.write_string(len(lines) + 1, 0, exclusion_note(content))
    figures = pl.DataFrame(
        {"figure": list(content["figures"]), "value": list(content["figures"].values())},
        schema={"figure": pl.String, "value": pl.Float64},
    )
    table_row = len(lines) + 3
    figures.write_excel(
        workbook,
        summary,
        position=(table_row, 0),
        header_format=layout["header_format"],
        table_style=layout["table_style"],
        autofit=True,
        freeze_panes=(table_row + 1, 0),
        float_precision=2,
    )
    for section, frame in section_frames(content).items():
        _naive_utc(frame).write_excel(
            workbook,
            sheets[section],
            header_format=layout["header_format"],
            table_style=layout["table_style"],
            autofit=True,
            freeze_panes=(1, 0),
            float_precision=4,
        )
    workbook.close()
    return buffer.getvalue()
