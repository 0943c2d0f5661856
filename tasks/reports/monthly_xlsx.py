"""The monthly compliance report as an XLSX workbook: a sheet per section, frozen headers,
autofilters, conditional formats and a native chart per parameter with its limit lines."""

from __future__ import annotations

import io

import polars as pl
import xlsxwriter

from tasks.reports.monthly_render import (
    check_meta,
    citation_table,
    heading_lines,
    monthly_frames,
    series_with_limits,
    status_counts,
    unconfirmed_note,
)
from tasks.reports.monthly_templates import (
    STATUSES,
    amendment_lines,
    monthly_layout,
    status_word,
)
from tasks.reports.render import _naive_utc
from tasks.reports.templates import fill


def _formats(workbook: xlsxwriter.Workbook, xlsx: dict) -> dict:
    return {
        "header": workbook.add_format(xlsx["header_format"]),
        "title": workbook.add_format(xlsx["title_format"]),
        "amended": workbook.add_format(xlsx["amended_format"]),
        "date": workbook.add_format({"num_format": xlsx["date_format"]}),
        "datetime": workbook.add_format({"num_format": xlsx["datetime_format"]}),
        "number": workbook.add_format({"num_format": xlsx["number_format"]}),
        "percent": workbook.add_format({"num_format": xlsx["percent_format"]}),
        "wrap": workbook.add_format({"text_wrap": True, "valign": "top"}),
    }


def _column_format(name: str, dtype: pl.DataType, formats: dict):  # noqa: ANN202
    if dtype == pl.Date:
        return formats["date"]
    if isinstance(dtype, pl.Datetime):
        return formats["datetime"]
    if dtype == pl.Float64:
        return formats["percent"] if name.endswith("_pct") else formats["number"]
    return formats["wrap"] if isinstance(dtype, pl.List) else None


def _write_table(sheet, frame: pl.DataFrame, formats: dict) -> None:  # noqa: ANN001
    """A table from A1: formatted header row, frozen, with an autofilter; dates as Excel dates,
    numbers as numbers and every text as text (never a formula)."""
    frame = _naive_utc(frame)
    for j, (name, dtype) in enumerate(frame.schema.items()):
        column = frame[name].list.join("\n") if isinstance(dtype, pl.List) else frame[name]
        sheet.write_string(0, j, name, formats["header"])
        sheet.write_column(1, j, column.to_list(), _column_format(name, dtype, formats))
        longest = column.cast(pl.String).str.len_chars().max() if dtype in (pl.String, pl.List) else 10
        sheet.set_column(j, j, min(max(len(name), longest or 0, 8) + 2, 60))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(frame.height, 1), max(frame.width - 1, 0))


def _status_formats(workbook, sheet, column: int, rows: int) -> None:  # noqa: ANN001
    for status, look in monthly_layout()["statuses"].items():
        style = workbook.add_format({"font_color": look["colour"], "bg_color": look["fill"], "bold": True})
        word = status_word(status).replace('"', '""')
        sheet.conditional_format(
            1,
            column,
            max(rows, 1),
            column,
            {"type": "cell", "criteria": "==", "value": f'"{word}"', "format": style},
        )


def _highlight(workbook, sheet, column: int, rows: int, criteria: str, value, colour: str) -> None:  # noqa: ANN001
    style = workbook.add_format({"bg_color": colour})
    sheet.conditional_format(
        1,
        column,
        max(rows, 1),
        column,
        {"type": "cell", "criteria": criteria, "value": value, "format": style},
    )


def _charts(
    workbook, sheet_names: dict, wide: pl.DataFrame, lines: pl.DataFrame, xlsx: dict, pdf: dict
) -> None:  # noqa: ANN001
    """A native line chart per parameter on the Charts sheet, from the Series sheet: daily mean,
    minimum and maximum, and a dashed series per limit line."""
    sheet = workbook.add_worksheet(sheet_names["charts"])
    if wide.is_empty():
        sheet.write_string(0, 0, xlsx["charts_none"])
        return
    series_sheet, size = sheet_names["series"], xlsx["chart"]
    col = {name: j for j, name in enumerate(wide.columns)}
    blocks = (
        wide.with_row_index("row")
        .group_by("parameter", maintain_order=True)
        .agg(first=pl.col("row").min() + 1, last=pl.col("row").max() + 1, unit=pl.col("unit").first())
    )
    colours = pdf["standard_colours"]
    looks = {
        "value_mean": {"color": pdf["colours"]["series"], "width": 2},
        "value_min": {"color": pdf["colours"]["band"], "width": 1, "dash_type": "round_dot"},
        "value_max": {"color": pdf["colours"]["band"], "width": 1, "dash_type": "round_dot"},
    }
    for k, (parameter, first, last, unit) in enumerate(blocks.iter_rows()):
        chart = workbook.add_chart({"type": "line"})
        days = [series_sheet, first, col["day"], last, col["day"]]
        for name, look in looks.items():
            chart.add_series(
                {
                    "name": xlsx["series_names"][name],
                    "categories": days,
                    "values": [series_sheet, first, col[name], last, col[name]],
                    "line": look,
                }
            )
        for standard, label, column in (
            lines.filter(pl.col("parameter") == parameter).select("standard", "label", "column").iter_rows()
        ):
            chart.add_series(
                {
                    "name": label,
                    "categories": days,
                    "values": [series_sheet, first, col[column], last, col[column]],
                    "line": {
                        "color": colours.get(standard, colours["other"]),
                        "width": 1.5,
                        "dash_type": "dash",
                    },
                }
            )
        chart.set_title({"name": f"{parameter} ({unit})"})
        chart.set_x_axis({"date_axis": True, "num_format": "d mmm", "major_unit": 7})
        chart.set_y_axis({"name": unit})
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": size["width"], "height": size["height"]})
        sheet.insert_chart(k * size["rows_apart"], 0, chart)


def _about(sheet, content: dict, meta: dict, frames: dict, notes: list[str], formats: dict) -> None:  # noqa: ANN001
    layout = monthly_layout()
    results = frames["results"]
    rows = [(meta["title"], formats["title"])]
    rows += [(line, formats["amended"]) for line in amendment_lines(meta)]
    rows += [(line, None) for line in heading_lines(content, meta)]
    rows += [(layout["times_note"], None), ("", None)]
    rows += [
        (fill(layout["status_count"], word=status_word(status), count=count), None)
        for status, count in status_counts(results)
    ]
    rows += [(unconfirmed_note(results), None), *((note, None) for note in notes)]
    sheet.set_column(0, 0, 120)
    for row, (text, style) in enumerate(rows):
        sheet.write_string(row, 0, text, style)


def render_monthly_xlsx(content: dict, meta: dict, *, max_exceedance_rows: int | None = None) -> bytes:
    """A workbook: About (revision, amendment), then one sheet per section with a frozen header,
    autofilter, status and coverage colours, Excel dates, and a native chart per parameter."""
    frames, meta = monthly_frames(content), check_meta(meta)
    layout = monthly_layout()
    xlsx, names = layout["xlsx"], layout["xlsx"]["sheets"]
    most = max_exceedance_rows or xlsx["max_exceedance_rows"]
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    formats = _formats(workbook, xlsx)
    about = workbook.add_worksheet(names["about"])

    words = {s: status_word(s) for s in STATUSES}
    summary = frames["results"].with_columns(pl.col("status").replace_strict(words))
    sheet = workbook.add_worksheet(names["summary"])
    _write_table(sheet, summary, formats)
    _status_formats(workbook, sheet, summary.columns.index("status"), summary.height)
    _highlight(
        workbook,
        sheet,
        summary.columns.index("confirmed"),
        summary.height,
        "==",
        "FALSE",
        layout["statuses"]["WARNING"]["fill"],
    )

    exceedances, notes = frames["exceedances"], []
    if exceedances.height > most:
        notes.append(fill(xlsx["exceedances_capped"], shown=f"{most:,}", total=f"{exceedances.height:,}"))
    sheet = workbook.add_worksheet(names["exceedances"])
    _write_table(sheet, exceedances.head(most).rename({"time": "time_utc"}), formats)
    if notes:
        sheet.write_string(min(exceedances.height, most) + 2, 0, notes[0])

    sheet = workbook.add_worksheet(names["coverage"])
    _write_table(sheet, frames["coverage"], formats)
    _highlight(
        workbook,
        sheet,
        frames["coverage"].columns.index("coverage_pct"),
        frames["coverage"].height,
        "<",
        layout["coverage_threshold_pct"],
        layout["pdf"]["colours"]["low_coverage"],
    )

    wide, lines = series_with_limits(frames["series"], frames["limit_lines"])
    _write_table(workbook.add_worksheet(names["series"]), wide, formats)
    _write_table(workbook.add_worksheet(names["limits"]), lines, formats)
    _charts(workbook, names, wide, lines, xlsx, layout["pdf"])
    sheet = workbook.add_worksheet(names["insights"])
    _write_table(sheet, frames["insights"], formats)
    if frames["insights"].is_empty():
        sheet.write_string(2, 0, layout["empty"]["insights"])
    _write_table(workbook.add_worksheet(names["plans"]), frames["plans"], formats)

    citations = citation_table(frames["results"])
    sheet = workbook.add_worksheet(names["citations"])
    _write_table(sheet, citations, formats)
    _highlight(
        workbook,
        sheet,
        citations.columns.index("confirmed"),
        citations.height,
        "==",
        "FALSE",
        layout["statuses"]["WARNING"]["fill"],
    )
    sheet.write_string(citations.height + 2, 0, unconfirmed_note(frames["results"]))

    _about(about, content, meta, frames, notes, formats)
    workbook.close()
    return buffer.getvalue()


