"""The monthly compliance report of one municipality as JSON (canonical), CSV (the results table)
and XLSX (a sheet per section, native charts), its e-mail, and the content checks and tables that
every format shares; the PDF is in `tasks/reports/monthly_pdf.py`."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime
from html import escape as html_escape

import polars as pl
import xlsxwriter

from tasks.reports.data import canonical_json
from tasks.reports.monthly_templates import (
    STATUSES,
    amendment_lines,
    email_html,
    email_lines,
    email_subject_and_text,
    monthly_layout,
    status_word,
)
from tasks.reports.render import _naive_utc
from tasks.reports.templates import fill

UTC_TIME = pl.Datetime("us", "UTC")
SCHEMAS: dict[str, dict] = {
    "results": {
        "standard": pl.String,
        "parameter": pl.String,
        "rule_code": pl.String,
        "status": pl.String,
        "statistic": pl.String,
        "statistic_value": pl.Float64,
        "limit": pl.Float64,
        "limit_kind": pl.String,
        "unit": pl.String,
        "deviation_pct": pl.Float64,
        "rule": pl.String,
        "consequence": pl.String,
        "citation": pl.String,
        "confirmed": pl.Boolean,
        "sample_count": pl.Int64,
        "excluded_count": pl.Int64,
    },
    "exceedances": {
        "standard": pl.String,
        "parameter": pl.String,
        "rule_code": pl.String,
        "station": pl.String,
        "sensor_id": pl.String,
        "time": UTC_TIME,
        "value": pl.Float64,
        "limit": pl.Float64,
        "unit": pl.String,
    },
    "coverage": {
        "station": pl.String,
        "sensor_id": pl.String,
        "parameter": pl.String,
        "expected_count": pl.Int64,
        "received_count": pl.Int64,
        "excluded_count": pl.Int64,
        "coverage_pct": pl.Float64,
    },
    "series": {
        "parameter": pl.String,
        "unit": pl.String,
        "day": pl.Date,
        "value_mean": pl.Float64,
        "value_min": pl.Float64,
        "value_max": pl.Float64,
    },
    "limit_lines": {
        "parameter": pl.String,
        "standard": pl.String,
        "limit_kind": pl.String,
        "limit": pl.Float64,
        "unit": pl.String,
        "label": pl.String,
    },
    "plans": {
        "id": pl.String,
        "standard": pl.String,
        "parameter": pl.String,
        "rule_code": pl.String,
        "status": pl.String,
        "owner": pl.String,
        "due_date": pl.Date,
        "steps": pl.List(pl.String),
    },
}
SORT_KEYS = {
    "results": ["standard", "parameter", "rule_code"],
    "exceedances": ["time", "sensor_id", "standard", "rule_code"],
    "coverage": ["station", "sensor_id", "parameter"],
    "series": ["parameter", "day"],
    "limit_lines": ["parameter", "standard", "limit_kind", "limit"],
    "plans": ["due_date", "id"],
}
META_KEYS = ("title", "revision", "is_amended", "content_sha256", "generated_at")


# ---------------------------------------------------------------- the content, checked


def _section(name: str, value) -> pl.DataFrame:  # noqa: ANN001
    """One section as a frame with its schema's columns first (cast, sorted), extra columns kept."""
    schema = SCHEMAS[name]
    if isinstance(value, list):
        value = pl.DataFrame(value, infer_schema_length=None) if value else pl.DataFrame(schema=schema)
    if not isinstance(value, pl.DataFrame):
        raise ValueError(
            f"The report section '{name}' must be a Polars DataFrame, not {type(value).__name__}."
        )
    missing = [c for c in schema if c not in value.columns]
    if missing:
        raise ValueError(f"The report section '{name}' lacks the column(s) {', '.join(missing)}.")
    frame = value.select(*schema, *(c for c in value.columns if c not in schema))
    time = frame.schema.get("time")
    if isinstance(time, pl.Datetime):  # naive times are UTC already; aware ones are converted
        utc = pl.col("time").dt
        frame = frame.with_columns(
            utc.convert_time_zone("UTC") if time.time_zone else utc.replace_time_zone("UTC")
        )
    try:
        frame = frame.cast(schema)
    except (pl.exceptions.PolarsError, TypeError) as exc:
        raise ValueError(f"The report section '{name}' has a column of the wrong type: {exc}") from None
    floats = [c for c, t in schema.items() if t == pl.Float64]
    return frame.with_columns(pl.col(floats).fill_nan(None)).sort(SORT_KEYS[name], nulls_last=True)


def _check_values(frames: dict[str, pl.DataFrame]) -> None:
    for name, column, allowed in (
        ("results", "status", STATUSES),
        ("results", "limit_kind", ("max", "min")),
        ("limit_lines", "limit_kind", ("max", "min")),
    ):
        wrong = frames[name].filter(~pl.col(column).is_in(allowed))[column].unique().sort().to_list()
        if wrong:
            raise ValueError(
                f"The report section '{name}' has {column} {', '.join(map(str, wrong))}; "
                f"expected one of {', '.join(allowed)}."
            )


def monthly_frames(content: dict) -> dict[str, pl.DataFrame]:
    """Every tabular section of the content, checked and sorted; a clear ValueError for content
    that is not a monthly report (missing sections or columns, wrong types, unknown statuses)."""
    if not isinstance(content, Mapping):
        raise ValueError("The monthly report content must be a dict of sections.")
    missing = [k for k in ("municipality", "period", "standards", *SCHEMAS) if k not in content]
    if missing:
        raise ValueError(f"The monthly report content lacks the section(s) {', '.join(missing)}.")
    for key, fields in (("municipality", ("id", "name", "timezone")), ("period", ("start", "end", "label"))):
        absent = [f for f in fields if f not in (content[key] or {})]
        if absent:
            raise ValueError(f"The report's {key} lacks {', '.join(absent)}.")
    period = content["period"]
    if not (isinstance(period["start"], date) and isinstance(period["end"], date)):
        raise ValueError("The report period's start and end must be dates.")
    if period["start"] > period["end"]:
        raise ValueError(f"The report period starts ({period['start']}) after it ends ({period['end']}).")
    frames = {name: _section(name, content[name]) for name in SCHEMAS}
    _check_values(frames)
    return frames


def check_meta(meta: dict) -> dict:
    """The meta of a rendering, checked: title, revision (1 or more), amended flag, hash, time."""
    missing = [k for k in META_KEYS if k not in (meta or {})]
    if missing:
        raise ValueError(f"The report meta lacks {', '.join(missing)}.")
    if not isinstance(meta["revision"], int) or meta["revision"] < 1:
        raise ValueError(f"The report revision must be a whole number from 1, not {meta['revision']!r}.")
    if not isinstance(meta["generated_at"], datetime):
        raise ValueError("The report meta's generated_at must be a datetime (UTC).")
    return meta


# ---------------------------------------------------------------- tables every format shares


def number_text(column: str | pl.Expr, digits: int | None = None) -> pl.Expr:
    """Numbers as text with `digits` significant digits (no float noise, no trailing .0); '-' for none."""
    digits = digits or monthly_layout()["pdf"]["significant_digits"]
    expr = pl.col(column) if isinstance(column, str) else column
    return (
        expr.cast(pl.Float64)
        .fill_nan(None)
        .round_sig_figs(digits)
        .cast(pl.String)
        .str.replace(r"\.0$", "")
        .str.replace(r"^-0$", "0")
        .fill_null("-")
    )


def limit_text(kind: str = "limit_kind", limit: str = "limit", unit: str = "unit") -> pl.Expr:
    """'max 0.3 NTU' in the words of the template."""
    kinds = monthly_layout()["limit_kinds"]
    return pl.concat_str(
        pl.col(kind).replace_strict(kinds, default=pl.col(kind)),
        pl.lit(" "),
        number_text(limit),
        pl.lit(" "),
        pl.col(unit),
    )


def unconfirmed_mark() -> pl.Expr:
    """The template's mark on a value not confirmed from a primary text, else ''."""
    return (
        pl.when(pl.col("confirmed")).then(pl.lit("")).otherwise(pl.lit(monthly_layout()["unconfirmed_mark"]))
    )


def status_counts(results: pl.DataFrame) -> list[tuple[str, int]]:
    """(status, number of results) for every status, worst first, zeros included."""
    counts = dict(results.group_by("status").len().iter_rows())
    return [(status, counts.get(status, 0)) for status in STATUSES]


def unconfirmed_note(results: pl.DataFrame) -> str:
    """The note on values not confirmed from a primary text, with how many results it concerns."""
    layout = monthly_layout()
    count = results.filter(~pl.col("confirmed")).height
    if not count:
        return layout["unconfirmed_none"]
    return fill(layout["unconfirmed_note"], count=count, total=results.height)


def citation_table(results: pl.DataFrame) -> pl.DataFrame:
    """Each citation once per standard, with the rules that use it and whether all its values are
    confirmed from a primary text."""
    return (
        results.group_by("standard", "citation")
        .agg(
            rule_codes=pl.col("rule_code").unique().sort().str.join(", "),
            parameters=pl.col("parameter").unique().sort().str.join(", "),
            confirmed=pl.col("confirmed").all(),
        )
        .sort("standard", "citation")
    )


def largest_exceedances(exceedances: pl.DataFrame, most: int) -> tuple[pl.DataFrame, int]:
    """The `most` exceedances furthest beyond their limit (relative), and how many are left out."""
    ranked = exceedances.with_columns(
        relative=(pl.col("value") - pl.col("limit")).abs() / pl.col("limit").abs()
    ).sort(["relative", "time", "sensor_id"], descending=[True, False, False], nulls_last=True)
    return ranked.head(most).drop("relative"), max(exceedances.height - most, 0)


def exceedances_per_rule(exceedances: pl.DataFrame) -> pl.DataFrame:
    """Per standard, parameter and rule: how many exceedances, at how many sensors, first and last."""
    return (
        exceedances.group_by("standard", "parameter", "rule_code")
        .agg(
            exceedances=pl.len(),
            sensors=pl.col("sensor_id").n_unique(),
            first=pl.col("time").min(),
            last=pl.col("time").max(),
        )
        .sort("standard", "parameter", "rule_code")
    )


def coverage_note(coverage: pl.DataFrame) -> str:
    """How many sensors received less than the threshold share of their expected readings."""
    layout = monthly_layout()
    threshold = layout["coverage_threshold_pct"]
    low = coverage.filter(pl.col("coverage_pct") < threshold).height
    template = layout["coverage_low"] if low else layout["coverage_none_low"]
    return fill(template, low=low, total=coverage.height, threshold=threshold)


def exclusion_note(coverage: pl.DataFrame) -> str:
    """How many received readings QC kept out of every statistic, and from which sensors, most first."""
    layout = monthly_layout()
    received, excluded = coverage["received_count"].sum(), coverage["excluded_count"].sum()
    if not excluded:
        return fill(layout["qc_excluded_none"], received=f"{received:,}")
    most = layout["qc_most_sensors"]
    worst = coverage.filter(pl.col("excluded_count") > 0).sort(
        ["excluded_count", "sensor_id"], descending=[True, False]
    )
    listed = (
        worst.head(most)
        .select(pl.format("{} ({}): {}", "sensor_id", "parameter", "excluded_count"))
        .to_series()
        .to_list()
    )
    if worst.height > most:
        listed.append(fill(layout["qc_more_sensors"], more=worst.height - most))
    return fill(
        layout["qc_excluded"], excluded=f"{excluded:,}", received=f"{received:,}", by_sensor="; ".join(listed)
    )


def heading_lines(content: dict, meta: dict) -> list[str]:
    """Municipality, period, standards, revision, generation time and hash, as plain lines."""
    layout, town, period = monthly_layout(), content["municipality"], content["period"]
    return [
        fill(layout["municipality_line"], municipality_name=town["name"], municipality_id=town["id"]),
        fill(
            layout["period_line"],
            period_label=period["label"],
            start=period["start"].isoformat(),
            end=period["end"].isoformat(),
            timezone=town["timezone"],
        ),
        fill(layout["standards_line"], standards=", ".join(content["standards"])),
        fill(layout["revision_line"], revision=meta["revision"]),
        fill(layout["generated_line"], generated_at=meta["generated_at"].strftime("%Y-%m-%d %H:%M:%S")),
        fill(layout["content_line"], content_sha256=meta["content_sha256"]),
    ]


def series_with_limits(series: pl.DataFrame, limit_lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The daily series with one column per limit line of its parameter (`limit_1`, `limit_2`, ...),
    and the limit lines with the column that holds each (for charts that draw them as series)."""
    lines = limit_lines.with_columns(
        column=pl.format("limit_{}", pl.int_range(1, pl.len() + 1).over("parameter"))
    )
    width = lines.group_by("parameter").len()["len"].max() or 0
    columns = [f"limit_{i}" for i in range(1, width + 1)]
    if not columns:
        return series, lines
    wide = lines.pivot(on="column", index="parameter", values="limit")
    wide = wide.with_columns(pl.lit(None, pl.Float64).alias(c) for c in columns if c not in wide.columns)
    return series.join(wide.select("parameter", *columns), on="parameter", how="left"), lines


# ---------------------------------------------------------------- JSON and CSV


def render_monthly_json(content: dict, meta: dict) -> bytes:
    """The whole report as canonical JSON (sorted keys, ISO dates): the data plus `report` meta."""
    frames = monthly_frames(content)
    data = {
        **content,
        **{name: frame.to_dicts() for name, frame in frames.items()},
        "report": check_meta(meta),
    }
    return (canonical_json(data, indent=2) + "\n").encode("utf-8")


def render_monthly_csv(content: dict, meta: dict) -> bytes:
    """The results table, one row per result, each row naming municipality, period, revision and
    whether this revision is an amendment (so a row read alone says which report it is from)."""
    frames, meta = monthly_frames(content), check_meta(meta)
    town, period = content["municipality"], content["period"]
    table = frames["results"].select(
        pl.lit(town["id"]).alias("municipality_id"),
        pl.lit(period["start"]).alias("period_start"),
        pl.lit(period["end"]).alias("period_end"),
        pl.lit(meta["revision"]).alias("revision"),
        pl.lit(bool(meta["is_amended"])).alias("is_amended"),
        *SCHEMAS["results"],
    )
    return table.write_csv().encode("utf-8")


# ---------------------------------------------------------------- XLSX


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


# ---------------------------------------------------------------- e-mail


def monthly_email(content: dict, meta: dict, links: Mapping[str, str] | None) -> tuple[str, str, str]:
    """Subject, plain-text and HTML body of the e-mail announcing the report: AMENDED in the
    subject when amended, the counts per status, the non-compliant results and the links
    (`links` maps a name such as 'PDF' to its URL)."""
    frames, meta = monthly_frames(content), check_meta(meta)
    layout, town, period = monthly_layout(), content["municipality"], content["period"]
    email, results = layout["email"], frames["results"]
    counts = [
        {"word": status_word(s), "count": n, "colour": layout["statuses"][s]["colour"]}
        for s, n in status_counts(results)
    ]
    failing = (
        results.filter(pl.col("status") == "NON_COMPLIANT")
        .select(
            "standard",
            "parameter",
            "rule_code",
            "statistic",
            "unit",
            value=number_text("statistic_value"),
            kind=pl.col("limit_kind").replace_strict(layout["limit_kinds"], default=pl.col("limit_kind")),
            limit=number_text("limit"),
            mark=unconfirmed_mark(),
        )
        .to_dicts()
    )
    link_rows = [{"name": name, "url": url} for name, url in (links or {}).items()]
    amendment = meta.get("amendment") or {}
    changes = [{"change": c} for c in amendment.get("changes") or [layout["amended_no_changes"]]]
    previous = amendment.get("previous_revision", meta["revision"] - 1)
    plain = {
        "publisher": layout["publisher"],
        "municipality_name": town["name"],
        "municipality_id": town["id"],
        "period_label": period["label"],
        "start": period["start"].isoformat(),
        "end": period["end"].isoformat(),
        "timezone": town["timezone"],
        "revision": meta["revision"],
        "total": results.height,
        "standards": ", ".join(content["standards"]),
        "content_sha256": meta["content_sha256"],
        "amended_prefix": email["amended_subject_prefix"] if meta["is_amended"] else "",
    }
    subject, text = email_subject_and_text(
        **plain,
        amendment=(
            "\n"
            + fill(
                email["amendment_text"],
                revision=meta["revision"],
                previous=previous,
                changes=email_lines("change_line", changes),
            )
            if meta["is_amended"]
            else ""
        ),
        status_counts=email_lines("status_line", counts),
        noncompliances=email_lines("noncompliance_line", failing) if failing else email["noncompliance_none"],
        unconfirmed="\n" + unconfirmed_note(results) + "\n",
        links=email_lines("link_line", link_rows) if link_rows else email["links_none"],
    )
    html = email_html(
        **{k: html_escape(str(v)) for k, v in plain.items()},
        subject=html_escape(subject),
        amendment=(
            fill(
                email["html_amendment"],
                revision=meta["revision"],
                previous=previous,
                changes=email_lines("change_line", changes, html=True),
            )
            if meta["is_amended"]
            else ""
        ),
        status_counts=email_lines("status_line", counts, html=True),
        noncompliances=(
            email_lines("noncompliance_line", failing, html=True)
            if failing
            else email["html_noncompliance_none"]
        ),
        unconfirmed=html_escape(unconfirmed_note(results)),
        links=email_lines("link_line", link_rows, html=True) if link_rows else email["html_links_none"],
    )
    return subject, text, html
