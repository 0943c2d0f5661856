"""The monthly compliance report rendered from a content dict, read back the way a person or a
program reads it: PDF text with pypdf, the XLSX package's XML, JSON and CSV parsed."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import date

import polars as pl
import pypdf
import pytest
from monthly_content import (
    INSIGHTS,
    LOW_RECEIVED,
    LOW_SENSOR,
    TURBIDITY_CITATION,
    WEEK_INSIGHT,
    WHO_PH_CITATION,
    monthly_content,
    monthly_meta,
    sheet_strings,
    sheet_xml,
    xlsx_parts,
)
from polars.testing import assert_frame_equal

from tasks.reports.data import canonical_json
from tasks.reports.monthly_email import monthly_email
from tasks.reports.monthly_pdf import render_monthly_pdf
from tasks.reports.monthly_render import (
    SCHEMAS,
    SORT_KEYS,
    citation_table,
    largest_exceedances,
    number_text,
    render_monthly_csv,
    render_monthly_json,
    series_with_limits,
    status_counts,
)
from tasks.reports.monthly_templates import monthly_layout, status_word
from tasks.reports.monthly_xlsx import render_monthly_xlsx

CHANGE = "Late turbidity readings of 29 October raised the EPA p95 from 0.28 to 0.42 NTU."


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page, whitespace collapsed (wrapped lines read as one)."""
    return [" ".join(page.extract_text().split()) for page in pypdf.PdfReader(io.BytesIO(data)).pages]


@pytest.fixture(scope="module")
def content() -> dict:
    return monthly_content()


# ---------------------------------------------------------------- pure tables


def test_number_text_keeps_significant_digits_without_float_noise():
    frame = pl.DataFrame({"x": [0.1 + 0.2, 1234567.0, None, -0.0, 12.0, 0.000123456, float("nan")]})
    shown = frame.select(number_text("x", 4))["x"].to_list()
    assert shown == ["0.3", "1235000", "-", "0", "12", "0.0001235", "-"]


def test_status_counts_lists_every_status_worst_first_with_zeros():
    results = pl.DataFrame({"status": ["COMPLIANT", "NON_COMPLIANT", "COMPLIANT"]})
    assert status_counts(results) == [
        ("NON_COMPLIANT", 1),
        ("WARNING", 0),
        ("INSUFFICIENT_DATA", 0),
        ("COMPLIANT", 2),
    ]


def test_citation_table_lists_each_citation_once_and_marks_it_unconfirmed_if_any_value_is(content):
    cited = citation_table(content["results"])
    assert cited.select("standard", "citation").is_duplicated().sum() == 0
    who_ph = cited.filter(pl.col("citation") == WHO_PH_CITATION).row(0, named=True)
    assert who_ph["rule_codes"] == "WHO-PH-MAX, WHO-PH-MIN"
    assert who_ph["confirmed"] is False
    assert cited.filter(pl.col("citation") == TURBIDITY_CITATION)["confirmed"].to_list() == [True]


def test_largest_exceedances_ranks_by_relative_distance_beyond_the_limit():
    frame = pl.DataFrame(
        {
            "sensor_id": ["a", "b", "c"],
            "time": [1, 2, 3],
            "value": [0.45, 30.0, 5.2],  # +50 % of 0.3, +100 % of 15, -20 % of 6.5
            "limit": [0.3, 15.0, 6.5],
        }
    )
    top, more = largest_exceedances(frame, 2)
    assert top["sensor_id"].to_list() == ["b", "a"]
    assert more == 1


def test_series_with_limits_puts_each_limit_line_of_a_parameter_in_its_own_column():
    series = pl.DataFrame({"parameter": ["ph", "ph", "lead"], "day": [1, 2, 1]})
    lines = pl.DataFrame(
        {"parameter": ["ph", "ph", "lead"], "limit": [6.5, 8.5, 10.0], "label": ["min", "max", "max"]}
    )
    wide, placed = series_with_limits(series, lines)
    assert wide.sort("parameter", "day").rows() == [
        ("lead", 1, 10.0, None),
        ("ph", 1, 6.5, 8.5),
        ("ph", 2, 6.5, 8.5),
    ]
    assert placed["column"].to_list() == ["limit_1", "limit_2", "limit_1"]


# ---------------------------------------------------------------- PDF


def test_pdf_shows_limits_values_statuses_and_citations(content):
    pages = pdf_pages(render_monthly_pdf(content, monthly_meta()))
    text = " ".join(pages)
    # EPA turbidity p95 0.42 against max 0.3 NTU, 40 % beyond: on the cover and in the table
    assert "EPA turbidity EPA-TURB-P95 p95 0.42 max 0.3 NTU +40" in text
    assert "EPA lead EPA-PB-AL p90 13.8 max 15 ug/L -8" in text
    for status in ("NON_COMPLIANT", "WARNING", "INSUFFICIENT_DATA", "COMPLIANT"):
        assert status_word(status) in text
    assert "Non-compliant: 4" not in text  # counts are a table: word, then number
    assert f"{status_word('NON_COMPLIANT')} 4" in pages[0]
    assert TURBIDITY_CITATION in text
    assert text.count(TURBIDITY_CITATION) == 1


def test_pdf_marks_unconfirmed_limits_and_says_what_the_mark_means(content):
    text = " ".join(pdf_pages(render_monthly_pdf(content, monthly_meta())))
    mark = monthly_layout()["unconfirmed_mark"]
    assert f"min 6.5 pH{mark}" in text  # WHO pH, not confirmed
    assert f"max 4 NTU{mark}" in text  # WHO turbidity, not confirmed
    assert f"max 0.3 NTU{mark}" not in text  # EPA turbidity, confirmed
    assert "Value not confirmed from a primary text" in text
    assert f"{WHO_PH_CITATION} {mark}" in text


def test_pdf_cover_of_an_amended_report_has_the_banner_and_what_changed(content):
    first = pdf_pages(render_monthly_pdf(content, monthly_meta(2, [CHANGE])))[0]
    assert "AMENDED: revision 2 supersedes revision 1" in first
    assert CHANGE in first
    assert "Revision 2" in first
    original = " ".join(pdf_pages(render_monthly_pdf(content, monthly_meta())))
    assert "AMENDED" not in original


def test_pdf_has_a_chart_per_parameter_with_its_limit_lines_labelled(content):
    text = " ".join(pdf_pages(render_monthly_pdf(content, monthly_meta())))
    for parameter, unit in content["series"].select("parameter", "unit").unique().rows():
        assert f"{parameter} ({unit}): daily mean" in text
    assert "EPA max 0.3 NTU" in text
    assert "EU max 10 ug/L / WHO max 10 ug/L" in text  # two limits at one value share a line


def test_pdf_lists_the_largest_exceedances_then_how_many_more(content):
    exceedances = content["exceedances"]
    pages = pdf_pages(render_monthly_pdf(content, monthly_meta()))
    text = " ".join(pages)
    shown = monthly_layout()["pdf_exceedance_rows"]
    assert f"and {exceedances.height - shown} more exceedances" in text
    worst = (
        exceedances.with_columns(relative=((pl.col("value") - pl.col("limit")) / pl.col("limit")).abs())
        .sort("relative", descending=True)
        .row(0, named=True)
    )
    assert f"{worst['time']:%Y-%m-%d %H:%M} {worst['station']} {worst['sensor_id']}" in text


def test_pdf_highlights_low_coverage_and_states_qc_exclusions(content):
    text = " ".join(pdf_pages(render_monthly_pdf(content, monthly_meta())))
    # 450 of 744 readings is 60.48 %, shown with three significant digits
    assert f"{LOW_SENSOR} free_chlorine 744 {LOW_RECEIVED}" in text
    assert "60.5" in text
    assert "1 of 24 sensors received less than 90 % of their expected readings" in text
    excluded = content["coverage"]["excluded_count"].sum()
    received = content["coverage"]["received_count"].sum()
    assert f"excluded {excluded:,} of the {received:,} readings received this month" in text


def test_pdf_splits_a_long_coverage_table_across_pages_with_its_header_repeated():
    content = monthly_content(sensors=500, parameters=30, exceedances=2_000)
    pages = pdf_pages(render_monthly_pdf(content, monthly_meta()))
    with_rows = [i for i, page in enumerate(pages) if re.search(r"riverton-s\d{3} \w+ 744", page)]
    assert len(with_rows) >= 5
    assert all("Coverage %" in pages[i] for i in with_rows)
    assert "riverton-s001" in pages[with_rows[0]] and "riverton-s500" in pages[with_rows[-1]]


def test_pdf_shows_no_float_noise(content):
    noisy = {**content, "results": content["results"].with_columns(statistic_value=pl.lit(0.1 + 0.2))}
    text = " ".join(pdf_pages(render_monthly_pdf(noisy, monthly_meta())))
    assert "0.30000000000000004" not in text
    assert "p95 0.3 max 0.3 NTU" in text


def test_a_month_with_empty_sections_renders_and_says_so(content):
    empty = {**content, **{name: pl.DataFrame(schema=schema) for name, schema in SCHEMAS.items()}}
    for render in (render_monthly_json, render_monthly_csv, render_monthly_xlsx):
        assert render(empty, monthly_meta())
    text = " ".join(pdf_pages(render_monthly_pdf(empty, monthly_meta())))
    for section in ("summary", "charts", "insights", "exceedances", "coverage", "plans", "citations"):
        assert monthly_layout()["empty"][section] in text, section
    assert pl.read_csv(io.BytesIO(render_monthly_csv(empty, monthly_meta()))).height == 0
    insights = sheet_strings(xlsx_parts(render_monthly_xlsx(empty, monthly_meta())), "Insights")
    assert insights[-1] == monthly_layout()["empty"]["insights"]


def test_pdf_lists_each_insight_with_its_period_in_order(content):
    pages = pdf_pages(render_monthly_pdf(content, monthly_meta()))
    text = " ".join(pages)
    assert f"{monthly_layout()['sections']['insights']} Changes in the readings worth a sentence" in text
    listed = [f"{start} to {last} {sentence}." for _, start, last, *_, sentence in INSIGHTS]
    at = [text.index(line) for line in listed]  # each one, with its period: 2026-09-28 to 2026-10-04 ...
    assert at == sorted(at)
    assert text.count(WEEK_INSIGHT) == 1
    assert monthly_layout()["empty"]["insights"] not in text


def test_pdf_is_the_same_bytes_for_the_same_input(content):
    assert render_monthly_pdf(content, monthly_meta()) == render_monthly_pdf(content, monthly_meta())


# ---------------------------------------------------------------- XLSX


def test_xlsx_has_a_sheet_per_section_with_frozen_headers_and_autofilters(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta()))
    sheets = re.findall(r'<sheet name="([^"]+)"', parts["xl/workbook.xml"])
    names = monthly_layout()["xlsx"]["sheets"]
    order = (
        "about",
        "summary",
        "exceedances",
        "coverage",
        "series",
        "limits",
        "charts",
        "insights",
        "plans",
        "citations",
    )
    assert sheets == [names[key] for key in order]
    for key in ("summary", "exceedances", "coverage", "series", "limits", "insights", "plans", "citations"):
        xml = sheet_xml(parts, names[key])
        assert '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>' in xml, key
        assert "<autoFilter " in xml, key


def test_xlsx_has_a_native_line_chart_per_parameter_with_limit_series(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta()))
    charts = [xml for name, xml in parts.items() if name.startswith("xl/charts/chart")]
    assert len(charts) == content["series"]["parameter"].n_unique()
    assert all("<c:lineChart>" in xml for xml in charts)
    turbidity = next(xml for xml in charts if "turbidity (NTU)" in xml)
    assert "EPA max 0.3 NTU" in turbidity and "WHO max 4 NTU" in turbidity
    assert "Series!$" in turbidity


def test_xlsx_colours_statuses_and_low_coverage(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta()))
    names = monthly_layout()["xlsx"]["sheets"]
    summary = sheet_xml(parts, names["summary"])
    for status in ("NON_COMPLIANT", "WARNING", "INSUFFICIENT_DATA", "COMPLIANT"):
        assert f'<formula>"{status_word(status)}"</formula>' in summary
    coverage = sheet_xml(parts, names["coverage"])
    threshold = monthly_layout()["coverage_threshold_pct"]
    assert 'operator="lessThan"' in coverage and f"<formula>{threshold}</formula>" in coverage


def test_xlsx_insights_sheet_has_a_row_per_insight_with_its_figures(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta()))
    strings = sheet_strings(parts, monthly_layout()["xlsx"]["sheets"]["insights"])
    header = ["kind", "period_start", "period_last_day", "station", "sensor_id", "parameter"]
    header += ["change_pct", "is_significant", "sentence"]
    texts = [
        [kind, station, sensor, parameter, sentence]
        for kind, _, _, station, sensor, parameter, *_, sentence in INSIGHTS
    ]
    assert strings == header + [text for row in texts for text in row]
    xml = sheet_xml(parts, "Insights")
    serial = (date(2026, 9, 28) - date(1899, 12, 30)).days  # the first week's first day, an Excel date
    assert re.search(rf'<c r="B2" s="\d+"><v>{serial}</v></c>', xml)
    assert re.search(r'<c r="G2" s="\d+"><v>38.2</v></c>', xml)  # change_pct, a number
    assert re.search(r'<c r="H4"[^>]* t="b"><v>0</v></c>', xml)  # the month's trend: not significant


def test_xlsx_writes_dates_as_excel_dates(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta()))
    series = sheet_xml(parts, monthly_layout()["xlsx"]["sheets"]["series"])
    serial = (date(2026, 10, 1) - date(1899, 12, 30)).days  # Excel's day number of 1 October 2026
    assert re.search(rf'<c r="C2" s="\d+"><v>{serial}</v></c>', series)


def test_xlsx_keeps_formula_like_text_as_text(content):
    risky = ["=SUM(A1:A9)", "+1+2", "-2+3", "@cmd"]
    plans = content["plans"].with_columns(
        owner=pl.lit(risky[0]), steps=pl.lit(risky[1:], dtype=pl.List(pl.String))
    )
    parts = xlsx_parts(render_monthly_xlsx({**content, "plans": plans}, monthly_meta()))
    strings = parts["xl/sharedStrings.xml"]
    assert "<t>=SUM(A1:A9)</t>" in strings
    assert "+1+2\n-2+3\n@cmd</t>" in strings  # the steps of a plan, one a line
    assert not any("<f>" in xml for name, xml in parts.items() if name.startswith("xl/worksheets/"))


def test_xlsx_about_sheet_carries_revision_and_amendment(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta(3, [CHANGE])))
    strings = parts["xl/sharedStrings.xml"]
    assert "AMENDED: revision 3 supersedes revision 2" in strings
    assert CHANGE in strings and "Revision 3" in strings


def test_xlsx_caps_exceedances_at_the_row_limit_and_says_so(content):
    parts = xlsx_parts(render_monthly_xlsx(content, monthly_meta(), max_exceedance_rows=50))
    sheet = sheet_xml(parts, monthly_layout()["xlsx"]["sheets"]["exceedances"])
    assert len(re.findall(r"<row ", sheet)) == 1 + 50 + 1  # header, 50 rows, the note
    assert f"first 50 of {content['exceedances'].height}" in parts["xl/sharedStrings.xml"]


# ---------------------------------------------------------------- JSON and CSV


def test_json_is_canonical_and_round_trips(content):
    meta = monthly_meta(2, [CHANGE])
    data = json.loads(render_monthly_json(content, meta))
    assert (canonical_json(data, indent=2) + "\n").encode() == render_monthly_json(content, meta)
    assert data["report"]["revision"] == 2 and data["report"]["amendment"]["changes"] == [CHANGE]
    assert data["period"] == {
        "kind": "month",
        "start": "2026-10-01",
        "end": "2026-10-31",
        "label": "October 2026",
    }
    for name, schema in SCHEMAS.items():
        dated = [c for c, t in schema.items() if t == pl.Date or isinstance(t, pl.Datetime)]
        parsed = pl.DataFrame(
            data[name], schema={c: pl.String if c in dated else t for c, t in schema.items()}
        )
        parsed = parsed.with_columns(
            pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%S%z", time_unit="us").dt.convert_time_zone("UTC")
            if c == "time"
            else pl.col(c).str.to_date()
            for c in dated
        )
        expected = content[name].select(list(schema)).cast(schema).sort(SORT_KEYS[name], nulls_last=True)
        assert_frame_equal(parsed, expected), name


def test_json_lists_the_insights_in_report_order(content):
    data = json.loads(render_monthly_json(content, monthly_meta()))
    assert [
        (i["kind"], i["period_start"], i["period_last_day"], i["sensor_id"], i["sentence"])
        for i in data["insights"]
    ] == [
        (kind, str(start), str(last), sensor, sentence)
        for kind, start, last, _, sensor, *_, sentence in INSIGHTS
    ]


def test_csv_has_one_row_per_result_with_revision_and_amendment_columns(content):
    table = pl.read_csv(io.BytesIO(render_monthly_csv(content, monthly_meta(2, [CHANGE]))))
    assert table.height == content["results"].height
    assert table.columns[:5] == ["municipality_id", "period_start", "period_end", "revision", "is_amended"]
    assert set(table["revision"]) == {2} and set(table["is_amended"]) == {True}
    row = table.filter(pl.col("rule_code") == "EPA-TURB-P95").row(0, named=True)
    assert (row["status"], row["statistic_value"], row["limit"], row["unit"]) == (
        "NON_COMPLIANT",
        0.42,
        0.3,
        "NTU",
    )


# ---------------------------------------------------------------- e-mail


def test_email_of_an_amendment_says_amended_and_lists_counts_failures_and_links(content):
    links = {"PDF": "https://reports.example/riverton/2026-10/r2.pdf"}
    subject, text, html = monthly_email(content, monthly_meta(2, [CHANGE]), links)
    assert subject.startswith("AMENDED") and "Riverton" in subject and "October 2026" in subject
    assert f"{status_word('NON_COMPLIANT')}: 4" in text and f"{status_word('WARNING')}: 1" in text
    assert "EPA turbidity, rule EPA-TURB-P95: p95 0.42 NTU against the max limit 0.3 NTU" in text
    assert CHANGE in text and links["PDF"] in text
    assert f'<a href="{links["PDF"]}">PDF</a>' in html and CHANGE in html
    original, _, _ = monthly_email(content, monthly_meta(), links)
    assert "AMENDED" not in original


def test_email_says_how_many_insights_the_report_lists(content):
    _, text, html = monthly_email(content, monthly_meta(), {})
    line = "Insights on how the readings changed: 3, listed in the report's Insights section."
    assert line in text and line.replace("'", "&#x27;") in html
    none = {**content, "insights": content["insights"].head(0)}
    _, text, _ = monthly_email(none, monthly_meta(), {})
    assert "Insights on how the readings changed: none this month." in text


def test_email_html_escapes_the_data(content):
    town = {**content["municipality"], "name": "Riverton & <Sons>"}
    _, text, html = monthly_email({**content, "municipality": town}, monthly_meta(), {})
    assert "Riverton & <Sons>" in text
    assert "Riverton &amp; &lt;Sons&gt;" in html and "<Sons>" not in html


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {k: v for k, v in c.items() if k != "coverage"}, "lacks the section(s) coverage"),
        (lambda c: {**c, "results": c["results"].drop("citation")}, "'results' lacks the column(s) citation"),
        (
            lambda c: {**c, "results": c["results"].with_columns(status=pl.lit("FINE"))},
            "status FINE; expected one of",
        ),
        (
            lambda c: {**c, "series": c["series"].with_columns(value_mean=pl.lit("high"))},
            "'series' has a column of the wrong type",
        ),
        (lambda c: {**c, "plans": "none"}, "'plans' must be a Polars DataFrame"),
        (
            lambda c: {**c, "period": {**c["period"], "start": date(2026, 11, 1)}},
            "starts (2026-11-01) after it ends",
        ),
    ],
)
def test_bad_content_gets_a_clear_sentence(content, change, message):
    for render in (render_monthly_json, render_monthly_csv, render_monthly_xlsx, render_monthly_pdf):
        with pytest.raises(ValueError, match=re.escape(message)):
            render(change(content), monthly_meta())


def test_bad_meta_gets_a_clear_sentence(content):
    with pytest.raises(ValueError, match="revision must be a whole number from 1"):
        render_monthly_pdf(content, {**monthly_meta(), "revision": 0})


# ---------------------------------------------------------------- a large municipality


def test_a_500_sensor_municipality_renders_in_every_format():
    content = monthly_content(sensors=500, parameters=30, exceedances=10_000)
    meta = monthly_meta(2, [CHANGE])
    timings, started = {}, time.perf_counter()
    for render in (render_monthly_json, render_monthly_csv, render_monthly_xlsx, render_monthly_pdf):
        begin = time.perf_counter()
        output = render(content, meta)
        timings[render.__name__] = round(time.perf_counter() - begin, 2)
        assert output
    print(
        f"\nmonthly report, 500 sensors, 10,000 exceedances: {timings}, "
        f"all four {time.perf_counter() - started:.2f} s"
    )
    assert len(pl.read_csv(io.BytesIO(render_monthly_csv(content, meta)))) == content["results"].height
