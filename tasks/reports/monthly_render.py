"""The monthly compliance report of one municipality: the content checks and tables that every
format shares, and the JSON (canonical) and CSV (the results table) renderings. The XLSX is in
`monthly_xlsx.py`, the PDF in `monthly_pdf.py`, the e-mail in `monthly_email.py`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import polars as pl

from tasks.reports.data import canonical_json
from tasks.reports.monthly_templates import (
    STATUSES,
    monthly_layout,
)
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
    "insights": {  # the month's and the weeks ending in it, local days, first and last included
        "kind": pl.String,
        "period_start": pl.Date,
        "period_last_day": pl.Date,
        "station": pl.String,
        "sensor_id": pl.String,
        "parameter": pl.String,
        "change_pct": pl.Float64,
        "is_significant": pl.Boolean,
        "sentence": pl.String,
    },
}
SORT_KEYS = {
    "results": ["standard", "parameter", "rule_code"],
    "exceedances": ["time", "sensor_id", "standard", "rule_code"],
    "coverage": ["station", "sensor_id", "parameter"],
    "series": ["parameter", "day"],
    "limit_lines": ["parameter", "standard", "limit_kind", "limit"],
    "plans": ["due_date", "id"],
    "insights": ["period_last_day", "period_start", "kind", "sensor_id"],
}
INSIGHT_KINDS = ("week_on_week", "month_on_month", "year_on_year")
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
        ("insights", "kind", INSIGHT_KINDS),
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
