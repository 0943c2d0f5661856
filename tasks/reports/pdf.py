"""The daily summary as a PDF (reportlab platypus): title block, key figures, compliance with
citations, parameters, incidents, anomalies, maintenance and one chart against its limit."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors, pagesizes
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

from tasks.reports.render import exclusion_note, heading_lines
from tasks.reports.templates import daily_layout, fill


def _styles(pdf: dict) -> dict[str, ParagraphStyle]:
    colour = colors.HexColor
    base = ParagraphStyle(
        "body", fontName=pdf["font"], fontSize=pdf["body_size"], leading=pdf["body_size"] * 1.3
    )
    return {
        "body": base,
        "small": ParagraphStyle(
            "small", parent=base, fontSize=pdf["small_size"], leading=pdf["small_size"] * 1.3
        ),
        "title": ParagraphStyle(
            "title",
            parent=base,
            fontName=pdf["font_bold"],
            fontSize=pdf["title_size"],
            leading=pdf["title_size"] * 1.3,
            textColor=colour(pdf["colours"]["title"]),
        ),
        "heading": ParagraphStyle(
            "heading",
            parent=base,
            fontName=pdf["font_bold"],
            fontSize=pdf["body_size"] + 3,
            spaceBefore=10,
            spaceAfter=4,
            textColor=colour(pdf["colours"]["title"]),
        ),
        "amended": ParagraphStyle(
            "amended",
            parent=base,
            fontName=pdf["font_bold"],
            fontSize=pdf["body_size"] + 2,
            leading=(pdf["body_size"] + 2) * 1.4,
            spaceBefore=2,
            spaceAfter=2,
            textColor=colour(pdf["colours"]["amended"]),
        ),
    }


def _text(value) -> str:  # noqa: ANN001
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list], pdf: dict, widths=None, extra=()) -> Table:  # noqa: ANN001
    colours = pdf["colours"]
    table = Table([header, *rows], colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), pdf["font_bold"], pdf["body_size"]),
                ("FONT", (0, 1), (-1, -1), pdf["font"], pdf["body_size"]),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(colours["header_background"])),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.HexColor(colours["header_text"])),
                (
                    "ROWBACKGROUNDS",
                    (0, 1),
                    (-1, -1),
                    [colors.white, colors.HexColor(colours["stripe"])],
                ),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor(colours["grid"])),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                *extra,
            ]
        )
    )
    return table


def _compliance(content: dict, pdf: dict, styles: dict) -> list:
    header = ["Standard", "Parameter", "Status", "Statistic", "Value", "Limit", "Unit", "Dev. %"]
    rows, extra = [], []
    for i, result in enumerate(content["compliance"]):
        rows.append(
            [
                result["standard"],
                result["parameter"],
                result["status"],
                result["statistic"],
                _text(result["statistic_value"]),
                f"{result['limit_kind']} {_text(result['limit_value'])}",
                result["unit"],
                _text(result["deviation_pct"]),
            ]
        )
        rows.append(
            [
                Paragraph(
                    f"<b>Rule:</b> {escape(result['rule'])}<br/>"
                    f"<b>Citation:</b> {escape(result['citation'])}",
                    styles["small"],
                )
            ]
        )
        first = 1 + 2 * i
        colour = pdf["status_colours"].get(result["status"], "#000000")
        extra += [
            ("SPAN", (0, first + 1), (-1, first + 1)),
            ("TEXTCOLOR", (2, first), (2, first), colors.HexColor(colour)),
            ("FONT", (2, first), (2, first), pdf["font_bold"], pdf["body_size"]),
        ]
    widths = [x * mm for x in (16, 26, 38, 16, 18, 22, 24, 14)]
    return [_table(header, rows, pdf, widths, extra)]


def _chart(content: dict, pdf: dict) -> Drawing | None:
    chart = content.get("chart")
    if not chart or not chart["points"]:
        return None
    size = pdf["chart"]
    width, height = size["width_mm"] * mm, size["height_mm"] * mm
    drawing = Drawing(width, height + 14)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 30, 20, width - 45, height - 25
    series = [(p["hours_from_start"], p["value"]) for p in chart["points"]]
    lines = [series]
    span = max(24.0, series[-1][0] + 1)
    if chart["limit"] is not None:
        lines.append([(0.0, chart["limit"]), (span, chart["limit"])])
    plot.data = lines
    plot.lines[0].strokeColor = colors.HexColor(pdf["colours"]["series"])
    plot.lines[0].strokeWidth = 1.2
    if len(lines) > 1:
        plot.lines[1].strokeColor = colors.HexColor(pdf["colours"]["limit"])
        plot.lines[1].strokeDashArray = (4, 2)
    values = [v for _, v in series] + ([chart["limit"]] if chart["limit"] is not None else [])
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = low - pad, high + pad
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = 0, span
    plot.xValueAxis.valueSteps = list(range(0, int(span) + 1, 3))
    for axis in (plot.xValueAxis, plot.yValueAxis):
        axis.labels.fontName, axis.labels.fontSize = pdf["font"], pdf["small_size"]
    drawing.add(plot)
    limit = (
        f"; dashed: {chart['limit_standard']} {chart['limit_kind']} limit "
        f"{_text(chart['limit'])} {chart['unit']}"
        if chart["limit"] is not None
        else ""
    )
    drawing.add(
        String(
            30,
            height + 2,
            f"{chart['parameter']} ({chart['unit']}) at "
            f"{chart['sensor_id']}, hourly mean by hour of the day{limit}",
            fontName=pdf["font"],
            fontSize=pdf["small_size"] + 1,
        )
    )
    return drawing


def render_pdf(content: dict, meta: dict) -> bytes:
    """The report as a PDF; the same inputs give the same bytes (reportlab invariant mode)."""
    layout = daily_layout()
    pdf = layout["pdf"]
    styles = _styles(pdf)
    town, day = content["municipality"], content["period"]["day"].isoformat()
    sections, empty = layout["sections"], layout["empty"]
    lines = heading_lines(content, meta)
    story: list = [
        Paragraph(escape(meta["title"]), styles["title"]),
        Paragraph(escape(lines[0].split(": ", 1)[1]), styles["body"]),
        Paragraph(escape(fill(layout["revision_note"], revision=meta["revision"])), styles["body"]),
    ]
    if meta["amendment"]:
        story.append(Paragraph(escape(meta["amendment"]), styles["amended"]))
    story += [Paragraph(escape(line), styles["small"]) for line in lines[-2:]]

    story.append(Paragraph(sections["summary"], styles["heading"]))
    figures = [[name.replace("_", " "), _text(value)] for name, value in content["figures"].items()]
    story.append(_table(["Figure", "Value"], figures, pdf, [70 * mm, 40 * mm]))

    story.append(Paragraph(sections["compliance"], styles["heading"]))
    story += (
        _compliance(content, pdf, styles)
        if content["compliance"]
        else [Paragraph(empty["compliance"], styles["body"])]
    )

    story.append(Paragraph(sections["chart"], styles["heading"]))
    chart = _chart(content, pdf)
    story.append(chart if chart is not None else Paragraph(empty["chart"], styles["body"]))

    story.append(Paragraph(sections["parameters"], styles["heading"]))
    story.append(
        _table(
            [
                "Parameter",
                "Unit",
                "Sensors",
                "Readings",
                "Excluded",
                "Min",
                "Mean",
                "Max",
                "Status",
            ],
            [
                [
                    p["parameter"],
                    p["unit"],
                    p["sensors"],
                    p["count_readings"],
                    p["count_excluded"],
                    _text(p["value_min"]),
                    _text(p["value_mean"]),
                    _text(p["value_max"]),
                    p["compliance_status"],
                ]
                for p in content["parameters"]
            ],
            pdf,
        )
    )
    story.append(Paragraph(escape(exclusion_note(content)), styles["body"]))

    story.append(Paragraph(sections["incidents"], styles["heading"]))
    if content["incidents"]:
        story.append(
            _table(
                ["Id", "Severity", "Sensor", "Opened (UTC)", "Open at end", "Summary"],
                [
                    [
                        i["incident_id"],
                        i["severity"],
                        i["sensor_id"] or i["station_id"],
                        i["opened_at"].strftime("%Y-%m-%d %H:%M"),
                        "yes" if i["is_open_at_end"] else "no",
                        Paragraph(escape(i["summary"]), styles["small"]),
                    ]
                    for i in content["incidents"]
                ],
                pdf,
                [12 * mm, 18 * mm, 32 * mm, 28 * mm, 22 * mm, 62 * mm],
            )
        )
    else:
        story.append(Paragraph(empty["incidents"], styles["body"]))

    story.append(Paragraph(sections["anomalies"], styles["heading"]))
    story.append(
        _table(
            ["Severity", "Anomalies"],
            [[a["severity"], a["anomaly_count"]] for a in content["anomalies"]],
            pdf,
        )
        if content["anomalies"]
        else Paragraph(empty["anomalies"], styles["body"])
    )

    story.append(Paragraph(sections["maintenance"], styles["heading"]))
    if content["maintenance"]:
        story.append(
            _table(
                ["Sensor", "Health", "Risk", "Calibration due", "Recommendation"],
                [
                    [
                        m["sensor_id"],
                        _text(m["health_score"]),
                        m["risk_level"],
                        _text(m["calibration_due_date"]),
                        Paragraph(escape(m["recommendation"]), styles["small"]),
                    ]
                    for m in content["maintenance"]
                ],
                pdf,
                [35 * mm, 16 * mm, 18 * mm, 26 * mm, 80 * mm],
            )
        )
    else:
        story.append(Paragraph(empty["maintenance"], styles["body"]))

    story.append(Paragraph(sections["insights"], styles["heading"]))
    insights = content.get("insights") or []
    for insight in insights:
        story.append(Paragraph(escape(insight["sentence"]), styles["body"]))
    if not insights:
        story.append(Paragraph(empty["insights"], styles["body"]))

    def footer(canvas, doc) -> None:  # noqa: ANN001
        canvas.saveState()
        canvas.setFont(pdf["font"], pdf["small_size"])
        canvas.drawString(
            pdf["margin_mm"] * mm,
            8 * mm,
            fill(
                layout["footer"],
                publisher=layout["publisher"],
                municipality_name=town["name"],
                day=day,
                revision=meta["revision"],
                page=doc.page,
            ),
        )
        canvas.restoreState()

    buffer = io.BytesIO()
    margin = pdf["margin_mm"] * mm
    document = SimpleDocTemplate(
        buffer,
        pagesize=getattr(pagesizes, pdf["page_size"]),
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=margin + 5 * mm,
        title=f"{meta['title']} - {town['name']} - {day}",
        author=layout["publisher"],
        subject=meta["amendment"] or f"Revision {meta['revision']}",
        invariant=1,
    )
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
