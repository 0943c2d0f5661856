"""The monthly compliance report as a PDF (reportlab platypus): cover with the AMENDED banner,
the results, a chart per parameter against its limit lines, the insights of the month,
exceedances, data coverage and QC exclusions, action plans, and the rules and citations used."""

from __future__ import annotations

import io
from datetime import date, timedelta
from xml.sax.saxutils import escape

import polars as pl
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Line, Polygon, String
from reportlab.lib import colors, pagesizes
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

from tasks.reports.monthly_render import (
    check_meta,
    citation_table,
    coverage_note,
    exceedances_per_rule,
    exclusion_note,
    heading_lines,
    largest_exceedances,
    limit_text,
    monthly_frames,
    number_text,
    status_counts,
    unconfirmed_mark,
    unconfirmed_note,
)
from tasks.reports.monthly_templates import STATUSES, amendment_lines, monthly_layout, status_word
from tasks.reports.pdf import _styles, _table
from tasks.reports.templates import fill

TIME_TEXT = "%Y-%m-%d %H:%M"


def _cells(frame: pl.DataFrame, style, wrap: tuple[str, ...] = ()) -> list[list]:  # noqa: ANN001
    """Table rows from a frame of display text; the `wrap` columns as paragraphs that wrap."""
    positions = [frame.columns.index(c) for c in wrap]
    rows = [list(row) for row in frame.iter_rows()]
    for row in rows:
        for j in positions:
            row[j] = Paragraph(escape(row[j] or ""), style)
    return rows


def _status_styles(statuses: pl.Series, column: int, pdf: dict, layout: dict) -> list[tuple]:
    """Text colour and bold type of each status cell (rows counted after the header)."""
    looks = layout["statuses"]
    return [
        command
        for row, status in enumerate(statuses.to_list(), start=1)
        for command in (
            ("TEXTCOLOR", (column, row), (column, row), colors.HexColor(looks[status]["colour"])),
            ("FONT", (column, row), (column, row), pdf["font_bold"], pdf["body_size"]),
        )
    ]


def _cover(content: dict, meta: dict, frames: dict, layout: dict, styles: dict) -> list:
    pdf, results = layout["pdf"], frames["results"]
    story: list = [Paragraph(escape(meta["title"]), styles["title"])]
    banner = amendment_lines(meta)
    if banner:
        lines = [
            Paragraph(escape(banner[0]), styles["amended"]),
            Paragraph(escape(banner[1]), styles["body"]),
        ]
        lines += [Paragraph(f"&bull; {escape(change)}", styles["body"]) for change in banner[2:]]
        box = Table([[line] for line in lines], colWidths=[180 * mm], hAlign="LEFT")
        box.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(pdf["colours"]["amended_background"])),
                    ("BOX", (0, 0), (-1, -1), 1.5, colors.HexColor(pdf["colours"]["amended"])),
                ]
            )
        )
        story.append(box)
    story += [Paragraph(escape(line), styles["body"]) for line in heading_lines(content, meta)]
    story.append(Paragraph(escape(layout["times_note"]), styles["small"]))
    story.append(Paragraph(escape(layout["sections"]["cover"]), styles["heading"]))
    story.append(
        Paragraph(
            escape(
                fill(
                    layout["results_line"],
                    total=results.height,
                    parameters=results["parameter"].n_unique(),
                    standards_count=len(content["standards"]),
                )
            ),
            styles["body"],
        )
    )
    counts = status_counts(results)
    story.append(
        _table(
            ["Status", "Results"],
            [[status_word(status), str(count)] for status, count in counts],
            pdf,
            [50 * mm, 25 * mm],
            _status_styles(pl.Series([s for s, _ in counts]), 0, pdf, layout),
        )
    )
    failing = results.filter(pl.col("status") == "NON_COMPLIANT")
    if failing.height:
        story.append(Paragraph(escape(layout["sections"]["noncompliant"]), styles["heading"]))
        story += _summary(failing, layout, styles)
    else:
        story.append(Paragraph(escape(unconfirmed_note(results)), styles["body"]))
    return [*story, PageBreak()]


def _summary(results: pl.DataFrame, layout: dict, styles: dict) -> list:
    """The results table (status in its colour, unconfirmed limits marked) and the note on them."""
    pdf = layout["pdf"]
    deviation = number_text("deviation_pct", 3)
    shown = results.select(
        "standard",
        "parameter",
        "rule_code",
        "statistic",
        value=number_text("statistic_value"),
        limit=pl.concat_str(limit_text(), unconfirmed_mark()),
        deviation=pl.when(pl.col("deviation_pct") > 0).then(pl.lit("+") + deviation).otherwise(deviation),
        samples=pl.col("sample_count").cast(pl.String),
        status=pl.col("status").replace_strict({s: status_word(s) for s in STATUSES}),
    )
    rows = _cells(shown, styles["small"], wrap=("parameter", "rule_code", "statistic", "limit"))
    widths = [x * mm for x in (16, 22, 26, 17, 13, 32, 13, 15, 26)]
    extra = _status_styles(results["status"], 8, pdf, layout)
    return [
        _table(layout["columns"]["summary"], rows, pdf, widths, extra),
        Paragraph(escape(unconfirmed_note(results)), styles["small"]),
    ]


def _chart(parameter: str, points: pl.DataFrame, limits: pl.DataFrame, start: date, days: int, layout: dict):  # noqa: ANN202
    """Daily mean as a line over a min-max band, and a dashed, labelled line per limit value."""
    pdf = layout["pdf"]
    size, palette, by_standard = pdf["chart"], pdf["colours"], pdf["standard_colours"]
    width, height = size["width_mm"] * mm, size["height_mm"] * mm
    drawing = Drawing(width, height + 12)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 36, 18, width - 44, height - 22
    points = points.drop_nulls(["value_mean", "value_min", "value_max"])
    x = ((pl.col("day") - pl.lit(start)).dt.total_days() + 1).cast(pl.Float64)
    xy = points.select(x.alias("x"), "value_mean", "value_min", "value_max")
    values = [*xy["value_min"].to_list(), *xy["value_max"].to_list(), *limits["limit"].to_list()]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    left, right = 1.0, float(max(days, 2))

    def at(px: float, value: float) -> tuple[float, float]:
        return (
            plot.x + (px - left) / (right - left) * plot.width,
            plot.y + (value - low) / (high - low) * plot.height,
        )

    if xy.height:
        edge = [
            *(at(px, v) for px, v in zip(xy["x"], xy["value_max"], strict=True)),
            *(at(px, v) for px, v in zip(xy["x"].reverse(), xy["value_min"].reverse(), strict=True)),
        ]
        band = colors.HexColor(palette["band"])
        drawing.add(Polygon([c for point in edge for c in point], fillColor=band, strokeColor=None))
    plot.data = [list(zip(xy["x"], xy["value_mean"], strict=True)) or [(left, low)]]
    plot.lines[0].strokeColor = colors.HexColor(palette["series"])
    plot.lines[0].strokeWidth = 1.4
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = left, right
    plot.xValueAxis.valueSteps = list(range(1, int(right) + 1, 7))
    plot.xValueAxis.labelTextFormat = lambda v: (start + timedelta(days=int(v) - 1)).strftime("%d %b")
    plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = low, high
    plot.yValueAxis.labelTextFormat = lambda v: f"{v:.4g}"
    for axis in (plot.xValueAxis, plot.yValueAxis):
        axis.labels.fontName, axis.labels.fontSize = pdf["font"], pdf["small_size"]
    drawing.add(plot)
    for limit, names, standard in (
        limits.group_by("limit")
        .agg(pl.col("label").str.join(" / "), pl.col("standard").first())
        .sort("limit")
        .iter_rows()
    ):
        colour = colors.HexColor(by_standard.get(standard, by_standard["other"]))
        x0, y = at(left, limit)
        x1, _ = at(right, limit)
        drawing.add(Line(x0, y, x1, y, strokeColor=colour, strokeWidth=1, strokeDashArray=(4, 2)))
        drawing.add(
            String(
                x1 - 2,
                y + 2,
                names,
                fontName=pdf["font"],
                fontSize=pdf["small_size"],
                fillColor=colour,
                textAnchor="end",
            )
        )
    unit = points["unit"][0] if points.height else ""
    caption = fill(layout["chart_caption"], parameter=parameter, unit=unit)
    drawing.add(
        String(plot.x, height + 2, caption, fontName=pdf["font_bold"], fontSize=pdf["small_size"] + 1)
    )
    return drawing


def _charts(frames: dict, content: dict, layout: dict, styles: dict) -> list:
    series, lines = frames["series"], frames["limit_lines"]
    if series.is_empty():
        return [Paragraph(escape(layout["empty"]["charts"]), styles["body"])]
    period = content["period"]
    days = (period["end"] - period["start"]).days + 1
    story = []
    for parameter in series["parameter"].unique(maintain_order=True).to_list():
        limits = lines.filter(pl.col("parameter") == parameter)
        labels = limits["label"].to_list()
        note = fill(layout["chart_limits"], labels="; ".join(labels)) if labels else layout["chart_no_limits"]
        drawing = _chart(
            parameter, series.filter(pl.col("parameter") == parameter), limits, period["start"], days, layout
        )
        story.append(KeepTogether([drawing, Paragraph(escape(note), styles["small"])]))
    return story


def _exceedances(exceedances: pl.DataFrame, layout: dict, styles: dict) -> list:
    pdf, sections, columns = layout["pdf"], layout["sections"], layout["columns"]
    if exceedances.is_empty():
        return [Paragraph(escape(layout["empty"]["exceedances"]), styles["body"])]
    per_rule = exceedances_per_rule(exceedances).select(
        "standard",
        "parameter",
        "rule_code",
        pl.col("exceedances", "sensors").cast(pl.String),
        pl.col("first", "last").dt.strftime(TIME_TEXT),
    )
    shown, more = largest_exceedances(exceedances, layout["pdf_exceedance_rows"])
    listed = shown.select(
        pl.col("time").dt.strftime(TIME_TEXT),
        "station",
        "sensor_id",
        "parameter",
        "standard",
        "rule_code",
        number_text("value"),
        pl.concat_str(number_text("limit"), pl.lit(" "), "unit"),
    )
    story = [
        Paragraph(escape(sections["exceedance_rules"]), styles["subheading"]),
        _table(columns["exceedance_rules"], per_rule.rows(), pdf),
        Paragraph(escape(sections["exceedances_largest"]), styles["subheading"]),
        _table(columns["exceedances"], listed.rows(), pdf),
    ]
    if more:
        text = fill(layout["exceedances_more"], more=f"{more:,}", total=f"{exceedances.height:,}")
        story.append(Paragraph(escape(text), styles["body"]))
    return story


def _coverage(coverage: pl.DataFrame, layout: dict, styles: dict) -> list:
    pdf = layout["pdf"]
    if coverage.is_empty():
        return [Paragraph(escape(layout["empty"]["coverage"]), styles["body"])]
    story = [
        Paragraph(escape(coverage_note(coverage)), styles["body"]),
        Paragraph(escape(exclusion_note(coverage)), styles["body"]),
    ]
    rows = coverage.select(
        "station",
        "sensor_id",
        "parameter",
        pl.col("expected_count", "received_count", "excluded_count").cast(pl.String),
        number_text("coverage_pct", 3),
    ).rows()
    low = coverage.with_row_index("row", offset=1).filter(
        pl.col("coverage_pct") < layout["coverage_threshold_pct"]
    )
    fill_colour = colors.HexColor(pdf["colours"]["low_coverage"])
    extra = [
        command
        for row in low["row"].to_list()
        for command in (
            ("BACKGROUND", (0, row), (-1, row), fill_colour),
            ("FONT", (6, row), (6, row), pdf["font_bold"], pdf["body_size"]),
        )
    ]
    return [*story, _table(layout["columns"]["coverage"], rows, pdf, extra=extra)]


def _insights(insights: pl.DataFrame, layout: dict, styles: dict) -> list:
    """What the insights are, then each one's period and sentence; a sentence when there are none."""
    if insights.is_empty():
        return [Paragraph(escape(layout["empty"]["insights"]), styles["body"])]
    shown = insights.select(
        period=pl.format("{} to {}", "period_start", "period_last_day"),
        sentence=pl.concat_str("sentence", pl.lit(".")),
    )
    rows = _cells(shown, styles["small"], wrap=("sentence",))
    return [
        Paragraph(escape(layout["insights_note"]), styles["body"]),
        _table(layout["columns"]["insights"], rows, layout["pdf"], [40 * mm, 140 * mm]),
    ]


def _plans(plans: pl.DataFrame, layout: dict, styles: dict) -> list:
    if plans.is_empty():
        return [Paragraph(escape(layout["empty"]["plans"]), styles["body"])]
    shown = plans.select(
        "id",
        "standard",
        "parameter",
        "rule_code",
        "status",
        "owner",
        pl.col("due_date").cast(pl.String),
        "steps",
    )
    rows = _cells(shown.drop("steps"), styles["small"], wrap=("id", "parameter", "rule_code", "owner"))
    rows = [
        [
            *row,
            Paragraph(
                "<br/>".join(f"{i}. {escape(s)}" for i, s in enumerate(steps or [], 1)), styles["small"]
            ),
        ]
        for row, steps in zip(rows, shown["steps"].to_list(), strict=True)
    ]
    widths = [x * mm for x in (24, 16, 20, 22, 12, 18, 18, 50)]
    return [_table(layout["columns"]["plans"], rows, layout["pdf"], widths)]


def _rules(results: pl.DataFrame, layout: dict, styles: dict) -> list:
    consequences = layout["consequences"]
    shown = results.select(
        "rule_code",
        "standard",
        "parameter",
        "rule",
        pl.col("consequence").replace_strict(consequences, default=pl.col("consequence")),
    )
    rows = _cells(shown, styles["small"], wrap=("rule_code", "parameter", "rule", "consequence"))
    widths = [x * mm for x in (26, 16, 22, 86, 30)]
    return [_table(layout["columns"]["rules"], rows, layout["pdf"], widths)]


def _citations(results: pl.DataFrame, layout: dict, styles: dict) -> list:
    """Each citation once, marked when one of its values is not confirmed from a primary text."""
    cited = citation_table(results).with_columns(
        text=pl.concat_str(
            "citation",
            pl.when(pl.col("confirmed")).then(pl.lit("")).otherwise(pl.lit(" " + layout["unconfirmed_mark"])),
        )
    )
    rows = [
        [
            standard,
            Paragraph(
                f"{escape(text)}<br/><i>{escape(fill(layout['citation_rules'], rule_codes=codes))}</i>",
                styles["small"],
            ),
        ]
        for standard, text, codes in cited.select("standard", "text", "rule_codes").iter_rows()
    ]
    return [
        _table(layout["columns"]["citations"], rows, layout["pdf"], [18 * mm, 162 * mm]),
        Paragraph(escape(unconfirmed_note(results)), styles["body"]),
    ]


def render_monthly_pdf(content: dict, meta: dict) -> bytes:
    """The report as a PDF; the same inputs give the same bytes (reportlab invariant mode)."""
    frames, meta = monthly_frames(content), check_meta(meta)
    layout = monthly_layout()
    pdf, sections, empty = layout["pdf"], layout["sections"], layout["empty"]
    styles = _styles(pdf)
    styles["subheading"] = ParagraphStyle(
        "subheading", parent=styles["heading"], fontSize=pdf["body_size"] + 1, spaceBefore=6
    )
    town, period, results = content["municipality"], content["period"], frames["results"]

    def section(key: str, parts: list) -> list:
        return [Paragraph(escape(sections[key]), styles["heading"]), *parts]

    story = _cover(content, meta, frames, layout, styles)
    story += section(
        "summary",
        _summary(results, layout, styles)
        if results.height
        else [Paragraph(escape(empty["summary"]), styles["body"])],
    )
    story += section("charts", _charts(frames, content, layout, styles))
    story += section("insights", _insights(frames["insights"], layout, styles))
    story += section("exceedances", _exceedances(frames["exceedances"], layout, styles))
    story += section("coverage", _coverage(frames["coverage"], layout, styles))
    story += section("plans", _plans(frames["plans"], layout, styles))
    if results.height:
        story += section("rules", _rules(results, layout, styles))
        story += section("citations", _citations(results, layout, styles))
    else:
        story += section("citations", [Paragraph(escape(empty["citations"]), styles["body"])])

    amended = layout["footer_amended_suffix"] if meta["is_amended"] else ""

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
                period_label=period["label"],
                revision=meta["revision"],
                amended_suffix=amended,
                page=doc.page,
            ),
        )
        canvas.restoreState()

    buffer = io.BytesIO()
    margin = pdf["margin_mm"] * mm
    banner = amendment_lines(meta)
    document = SimpleDocTemplate(
        buffer,
        pagesize=getattr(pagesizes, pdf["page_size"]),
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=margin + 5 * mm,
        title=f"{meta['title']} - {town['name']} - {period['label']}",
        author=layout["publisher"],
        subject=banner[0] if banner else fill(layout["revision_line"], revision=meta["revision"]),
        invariant=1,
    )
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
