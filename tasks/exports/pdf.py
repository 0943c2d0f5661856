"""The human-facing exports as PDF (reportlab): system health and incidents, a title block, the
filters, and the table. A PDF is read by a person: it holds at most `PDF_MAX_ROWS` rows and says
so when there are more (CSV, XLSX or Parquet carry every row)."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

import polars as pl
from reportlab.lib import colors, pagesizes
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from tasks.exports.request import ExportRequest

PDF_MAX_ROWS = 2_000
COLUMNS = {
    "system_health": [
        "day",
        "batches",
        "batches_failed",
        "rows_loaded",
        "rows_quarantined",
        "qc_runs",
        "readings_failed",
        "sensors_reporting",
        "sensor_uptime_pct",
        "webhook_deliveries",
        "delivery_success_pct",
    ],
    "incidents": [
        "incident_id",
        "station_id",
        "sensor_id",
        "severity",
        "status",
        "first_observed_at",
        "last_observed_at",
        "anomaly_count",
        "summary",
    ],
}
TITLES = {"system_health": "System health", "incidents": "Incidents"}


def _cell(value: object, style) -> Paragraph:  # noqa: ANN001
    text = "-" if value is None else (f"{value:,.2f}" if isinstance(value, float) else str(value))
    return Paragraph(escape(text), style)


def render_export_pdf(
    request: ExportRequest, frame: pl.DataFrame, total_rows: int, extra: pl.DataFrame | None
) -> bytes:
    """The PDF of `frame` (the first rows of the export) with `total_rows` counted in all; `extra`
    is the per-sensor uptime table of a system-health export."""
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    story = [
        Paragraph(escape(f"{TITLES[request.kind]} of {request.municipality_id}"), styles["Title"]),
        Paragraph(
            escape(f"Local days {request.from_day} to {request.to_day}; times in UTC."), styles["BodyText"]
        ),
    ]
    filters = "; ".join(f"{k}: {', '.join(v)}" for k, v in request.filters().items())
    if filters:
        story.append(Paragraph(escape(f"Filters: {filters}"), styles["BodyText"]))
    if total_rows > frame.height:
        story.append(
            Paragraph(
                escape(
                    f"Showing the first {frame.height:,} of {total_rows:,} rows; export CSV, XLSX or "
                    "Parquet for all of them."
                ),
                styles["BodyText"],
            )
        )
    story.append(Spacer(1, 4 * mm))
    story.append(_table(frame.select(COLUMNS[request.kind]), small))
    if extra is not None and extra.height:
        story += [
            Spacer(1, 6 * mm),
            Paragraph("Sensor uptime over the period", styles["Heading2"]),
            _table(extra, small),
        ]
    if not frame.height:
        story.append(Paragraph("Nothing to show for this period and these filters.", styles["BodyText"]))
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=pagesizes.landscape(pagesizes.A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"{TITLES[request.kind]} of {request.municipality_id}",
    )
    doc.build(story)
    return buffer.getvalue()


def _table(frame: pl.DataFrame, style) -> Table:  # noqa: ANN001
    header = [Paragraph(f"<b>{escape(name.replace('_', ' '))}</b>", style) for name in frame.columns]
    rows = [[_cell(v, style) for v in row] for row in frame.iter_rows()]  # at most PDF_MAX_ROWS rows
    table = Table([header, *rows], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f0")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table
