"""A realistic content dict of the monthly compliance report (Riverton, October 2026), for the
renderer tests and the benchmark: `monthly_content()` for a small town whose figures the tests
know, `monthly_content(sensors=500, parameters=30, exceedances=10_000)` for a large one.

Known facts the tests rely on (kept in the module-level constants below):
- EPA turbidity, rule EPA-TURB-P95: p95 0.42 NTU against max 0.3 NTU, NON_COMPLIANT (+40 %).
- EPA lead, rule EPA-PB-AL: p90 13.8 ug/L against max 15 ug/L, WARNING (-8 %).
- EPA E. coli, rule EPA-ECOLI: INSUFFICIENT_DATA (no statistic).
- WHO pH limits are not confirmed from a primary text (confirmed = False).
- Sensor riverton-s003 received 450 of 744 expected readings (60.48 %, below the 90 % threshold).
- Three insights: October against September (WEEK_INSIGHT's week, 28 September to 4 October,
  ends in October too) and the week of 19 to 25 October (INSIGHTS, in report order).

It also reads a rendered XLSX back (`xlsx_parts`, `sheet_xml`, `sheet_strings`) for the tests.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

START, END = date(2026, 10, 1), date(2026, 10, 31)
DAYS = (END - START).days + 1
EXPECTED = DAYS * 24  # hourly sensors
LOW_SENSOR, LOW_RECEIVED = "riverton-s003", 450

TURBIDITY_CITATION = (
    "40 CFR 141.551 (conventional and direct filtration): combined filter effluent turbidity at most "
    "0.3 NTU in at least 95 % of the measurements taken each month"
)
WHO_PH_CITATION = (
    "WHO GDWQ 4th ed.: no health-based guideline value for pH; operational optimum about 6.5-8.5"
)

# kind, period_start, period_last_day, station, sensor_id, parameter, change_pct, is_significant,
# sentence: in the order the report lists them (by last day, then first day, kind and sensor).
# fmt: off
INSIGHTS = [
    ("week_on_week", date(2026, 9, 28), date(2026, 10, 4), "riverton-st01", "riverton-s001", "turbidity",
     38.2, True, "Turbidity at riverton-st01 rose 38 % week on week; the trend is significant, R² 0.81"),
    ("week_on_week", date(2026, 10, 19), date(2026, 10, 25), "riverton-st01", "riverton-s002", "ph",
     -4.0, True, "pH at riverton-st01 fell 4 % week on week; the trend is significant, R² 0.7"),
    ("month_on_month", date(2026, 10, 1), date(2026, 10, 31), "riverton-st01", "riverton-s003",
     "free_chlorine", -12.5, False,
     "Free chlorine at riverton-st01 fell 12 % month on month; the trend is not significant, R² 0.1"),
]
# fmt: on
INSIGHT_COLUMNS = [
    "kind",
    "period_start",
    "period_last_day",
    "station",
    "sensor_id",
    "parameter",
    "change_pct",
    "is_significant",
    "sentence",
]
WEEK_INSIGHT = INSIGHTS[0][-1]

# standard, parameter, rule_code, statistic, limit, limit_kind, unit, consequence, citation,
# confirmed, status, statistic_value: the rules of the six real parameters.
# fmt: off
RULES = [
    ("EPA", "turbidity", "EPA-TURB-P95", "p95", 0.3, "max", "NTU", "treatment_technique_trigger",
     TURBIDITY_CITATION, True, "NON_COMPLIANT", 0.42),
    ("EPA", "turbidity", "EPA-TURB-MAX", "max", 1.0, "max", "NTU", "violation",
     "40 CFR 141.551: combined filter effluent turbidity must at no time exceed 1 NTU", True,
     "COMPLIANT", 0.91),
    ("EU", "turbidity", "EU-TURB", "max", 1.0, "max", "NTU", "investigation",
     "Directive (EU) 2020/2184, Annex I Part C: turbidity acceptable to consumers, 1 NTU at the works",
     True, "COMPLIANT", 0.91),
    ("WHO", "turbidity", "WHO-TURB", "max", 4.0, "max", "NTU", "advisory",
     "WHO turbidity technical brief WHO/FWC/WSH/17.01: 4 NTU or more is visible", False,
     "COMPLIANT", 0.91),
    ("EPA", "ph", "EPA-PH-MIN", "min", 6.5, "min", "pH", "advisory",
     "40 CFR 143.3: secondary maximum contaminant level for pH 6.5-8.5", True, "NON_COMPLIANT", 6.21),
    ("EPA", "ph", "EPA-PH-MAX", "max", 8.5, "max", "pH", "advisory",
     "40 CFR 143.3: secondary maximum contaminant level for pH 6.5-8.5", True, "COMPLIANT", 8.02),
    ("EU", "ph", "EU-PH-MIN", "min", 6.5, "min", "pH", "investigation",
     "Directive (EU) 2020/2184, Annex I Part C: hydrogen ion concentration >= 6.5 and <= 9.5 pH units",
     True, "NON_COMPLIANT", 6.21),
    ("EU", "ph", "EU-PH-MAX", "max", 9.5, "max", "pH", "investigation",
     "Directive (EU) 2020/2184, Annex I Part C: hydrogen ion concentration >= 6.5 and <= 9.5 pH units",
     True, "COMPLIANT", 8.02),
    ("WHO", "ph", "WHO-PH-MIN", "min", 6.5, "min", "pH", "advisory", WHO_PH_CITATION, False,
     "NON_COMPLIANT", 6.21),
    ("WHO", "ph", "WHO-PH-MAX", "max", 8.5, "max", "pH", "advisory", WHO_PH_CITATION, False,
     "COMPLIANT", 8.02),
    ("EPA", "free_chlorine", "EPA-CL2-MRDL", "raa", 4.0, "max", "mg/L", "violation",
     "40 CFR 141.65: maximum residual disinfectant level for chlorine 4.0 mg/L as Cl2", True,
     "COMPLIANT", 1.37),
    ("WHO", "free_chlorine", "WHO-CL2", "max", 5.0, "max", "mg/L", "advisory",
     "WHO GDWQ 4th ed.: chlorine guideline value 5 mg/L", True, "COMPLIANT", 2.11),
    ("EPA", "nitrate", "EPA-NO3", "max", 44.3, "max", "mg/L as NO3", "violation",
     "40 CFR 141.62: nitrate MCL 10 mg/L as N (44.3 mg/L as NO3)", True, "COMPLIANT", 21.7),
    ("EU", "nitrate", "EU-NO3", "max", 50.0, "max", "mg/L as NO3", "violation",
     "Directive (EU) 2020/2184, Annex I Part B: nitrate 50 mg/L", True, "COMPLIANT", 21.7),
    ("WHO", "nitrate", "WHO-NO3", "max", 50.0, "max", "mg/L as NO3", "advisory",
     "WHO GDWQ 4th ed.: nitrate 50 mg/L as nitrate ion (short-term exposure)", True, "COMPLIANT", 21.7),
    ("EPA", "lead", "EPA-PB-AL", "p90", 15.0, "max", "ug/L", "treatment_technique_trigger",
     "40 CFR 141.80(c): lead action level 0.015 mg/L exceeded if the 90th percentile is above it",
     True, "WARNING", 13.8),
    ("EU", "lead", "EU-PB", "mean", 10.0, "max", "ug/L", "violation",
     "Directive (EU) 2020/2184, Annex I Part B: lead 10 ug/L (5 ug/L from 12 January 2036)", True,
     "COMPLIANT", 4.2),
    ("WHO", "lead", "WHO-PB", "mean", 10.0, "max", "ug/L", "advisory",
     "WHO GDWQ 4th ed.: lead 10 ug/L (provisional)", True, "COMPLIANT", 4.2),
    ("EPA", "e_coli", "EPA-ECOLI", "share_le_limit", 0.0, "max", "CFU/100mL", "violation",
     "40 CFR 141.860: E. coli MCL violation on an E. coli-positive repeat sample", True,
     "INSUFFICIENT_DATA", None),
    ("EU", "e_coli", "EU-ECOLI", "max", 0.0, "max", "CFU/100mL", "violation",
     "Directive (EU) 2020/2184, Annex I Part A: Escherichia coli 0 per 100 mL", True, "COMPLIANT", 0.0),
]
# fmt: on
RULE_COLUMNS = [
    "standard",
    "parameter",
    "rule_code",
    "statistic",
    "limit",
    "limit_kind",
    "unit",
    "consequence",
    "citation",
    "confirmed",
    "status",
    "statistic_value",
]
# parameter: (unit, typical daily mean, daily spread)
LEVELS = {
    "turbidity": ("NTU", 0.18, 0.12),
    "ph": ("pH", 7.3, 0.5),
    "free_chlorine": ("mg/L", 1.2, 0.4),
    "nitrate": ("mg/L as NO3", 14.0, 4.0),
    "lead": ("ug/L", 4.0, 3.0),
    "e_coli": ("CFU/100mL", 0.0, 0.0),
}


def _rules(parameters: int) -> pl.DataFrame:
    """The real rules, then three synthetic trace-contaminant rules per extra parameter."""
    rules = pl.DataFrame(RULES, schema=RULE_COLUMNS, orient="row")
    extra = [f"trace_{i:02d}" for i in range(len(LEVELS) + 1, parameters + 1)]
    if not extra:
        return rules
    synthetic = pl.DataFrame({"parameter": extra}).join(
        pl.DataFrame({"standard": ["EPA", "EU", "WHO"], "limit": [10.0, 5.0, 6.0]}), how="cross"
    )
    synthetic = synthetic.with_columns(
        rule_code=pl.format("{}-{}", "standard", pl.col("parameter").str.to_uppercase()),
        statistic=pl.lit("mean"),
        limit_kind=pl.lit("max"),
        unit=pl.lit("ug/L"),
        consequence=pl.lit("violation"),
        citation=pl.format("{} drinking-water limit for {}: {} ug/L", "standard", "parameter", "limit"),
        confirmed=pl.col("standard") != "WHO",
        status=pl.lit("COMPLIANT"),
        statistic_value=pl.lit(2.5),
    ).select(RULE_COLUMNS)
    return pl.concat([rules, synthetic])


def _results(rules: pl.DataFrame) -> pl.DataFrame:
    deviation = (pl.col("statistic_value") - pl.col("limit")) / pl.col("limit").abs() * 100
    return rules.with_columns(
        deviation_pct=pl.when(pl.col("limit") == 0)
        .then(None)
        .when(pl.col("limit_kind") == "max")
        .then(deviation)
        .otherwise(-deviation),
        rule=pl.format(
            "The monthly {} of {} across all sensors compared with the {} {} limit of {} {}",
            "statistic",
            "parameter",
            "standard",
            "limit_kind",
            "limit",
            "unit",
        ),
        sample_count=pl.when(pl.col("status") == "INSUFFICIENT_DATA").then(3).otherwise(2976),
        excluded_count=pl.lit(41),
    ).with_columns(pl.col("deviation_pct").round(6))


def _sensors(sensors: int, parameters: list[str]) -> pl.DataFrame:
    """Ten sensors a station, the parameters taken in turn."""
    kinds = pl.DataFrame({"parameter": parameters, "k": range(len(parameters))})
    return (
        pl.DataFrame({"n": range(sensors)})
        .with_columns(k=pl.col("n") % len(parameters))
        .join(kinds, on="k")
        .sort("n")
        .select(
            station=pl.format("riverton-st{}", (pl.col("n") // 10 + 1).cast(pl.String).str.zfill(2)),
            sensor_id=pl.format("riverton-s{}", (pl.col("n") + 1).cast(pl.String).str.zfill(3)),
            parameter="parameter",
        )
    )


def _coverage(sensors: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    missing = rng.integers(0, 40, sensors.height)
    return sensors.with_columns(
        expected_count=pl.lit(EXPECTED),
        received_count=pl.when(pl.col("sensor_id") == LOW_SENSOR)
        .then(LOW_RECEIVED)
        .otherwise(EXPECTED - pl.Series(missing)),
        excluded_count=pl.Series(rng.integers(0, 6, sensors.height)),
    ).with_columns(coverage_pct=(pl.col("received_count") / pl.col("expected_count") * 100).round(2))


def _series(parameters: list[str], rng: np.random.Generator) -> pl.DataFrame:
    days = pl.date_range(START, END, "1d", eager=True)
    frames = []
    for parameter in parameters:
        unit, mean, spread = LEVELS.get(parameter, ("ug/L", 2.5, 1.0))
        wobble = mean + spread * 0.3 * np.sin(np.arange(DAYS) / 3) + rng.normal(0, spread * 0.05, DAYS)
        frames.append(
            pl.DataFrame({"day": days, "value_mean": wobble}).with_columns(
                parameter=pl.lit(parameter),
                unit=pl.lit(unit),
                value_min=(pl.col("value_mean") - spread).clip(lower_bound=0),
                value_max=pl.col("value_mean") + spread,
            )
        )
    return pl.concat(frames).select("parameter", "unit", "day", "value_mean", "value_min", "value_max")


def _exceedances(rules: pl.DataFrame, sensors: pl.DataFrame, count: int, rng) -> pl.DataFrame:  # noqa: ANN001
    failing = rules.filter(pl.col("status").is_in(["NON_COMPLIANT", "WARNING"]))
    candidates = failing.join(sensors, on="parameter")
    pick = candidates[rng.integers(0, candidates.height, count).tolist()]
    minutes = rng.integers(0, DAYS * 24 * 60, count)
    beyond = rng.exponential(0.25, count)  # share of the limit beyond it (a tenth of it for minima)
    start = datetime(START.year, START.month, START.day, 5, tzinfo=UTC)  # Chicago midnight (CDT)
    return pick.select(
        "standard",
        "parameter",
        "rule_code",
        "station",
        "sensor_id",
        time=pl.lit(start) + pl.duration(minutes=pl.Series(minutes)),
        value=pl.when(pl.col("limit_kind") == "max")
        .then(pl.col("limit") * (1 + pl.Series(beyond)))
        .otherwise(pl.col("limit") * (1 - pl.Series(beyond).clip(upper_bound=2.5) / 10))
        .round(3),
        limit="limit",
        unit="unit",
    ).with_columns(pl.col("time").dt.cast_time_unit("us"))


def _plans(rules: pl.DataFrame) -> pl.DataFrame:
    failing = rules.filter(pl.col("status") == "NON_COMPLIANT")
    return failing.select(
        id=pl.format("AP-2026-10-{}", pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(3)),
        standard="standard",
        parameter="parameter",
        rule_code="rule_code",
        status=pl.lit("open"),
        owner=pl.lit("operations"),
        due_date=pl.lit(date(2026, 11, 7)),
        steps=pl.lit(
            [
                "Take grab samples at the combined filter effluent and at each individual filter.",
                "Inspect filter performance (head loss, backwash history, coagulant dose).",
                "Confirm the correction with hourly samples for 24 hours.",
            ],
            dtype=pl.List(pl.String),
        ),
    )


def monthly_content(
    sensors: int = 24, parameters: int = len(LEVELS), exceedances: int = 300, seed: int = 7
) -> dict:
    """The content of Riverton's October 2026 report: `sensors` hourly sensors spread over the
    parameters, results under EPA, EU and WHO, `exceedances` exceedances of the failing rules."""
    rng = np.random.default_rng(seed)
    rules = _rules(parameters)
    names = rules["parameter"].unique(maintain_order=True).to_list()
    fleet = _sensors(sensors, names)
    limit_lines = (
        rules.filter(pl.col("statistic") != "share_le_limit")
        .select(
            "parameter",
            "standard",
            "limit_kind",
            "limit",
            "unit",
            label=pl.format(
                "{} {} {} {}",
                "standard",
                "limit_kind",
                pl.col("limit").cast(pl.String).str.replace(r"\.0$", ""),
                "unit",
            ),
        )
        .unique(maintain_order=True)
    )
    return {
        "municipality": {"id": "riverton", "name": "Riverton", "timezone": "America/Chicago"},
        "period": {"kind": "month", "start": START, "end": END, "label": "October 2026"},
        "standards": ["EPA", "EU", "WHO"],
        "results": _results(rules),
        "exceedances": _exceedances(rules, fleet, exceedances, rng),
        "coverage": _coverage(fleet, rng),
        "series": _series(names, rng),
        "limit_lines": limit_lines,
        "plans": _plans(rules),
        "insights": pl.DataFrame(INSIGHTS, schema=INSIGHT_COLUMNS, orient="row"),
    }


def monthly_meta(revision: int = 1, changes: list[str] | None = None) -> dict:
    """The meta of a rendering: revision 1, or an amendment listing `changes`."""
    return {
        "title": "Monthly drinking-water compliance report",
        "revision": revision,
        "is_amended": revision > 1,
        "amendment": {"previous_revision": revision - 1, "changes": changes or []} if revision > 1 else None,
        "content_sha256": "9f2c" * 16,
        "generated_at": datetime(2026, 11, 2, 7, 30, tzinfo=UTC),
    }


# ---------------------------------------------------------------- reading an XLSX back


def xlsx_parts(data: bytes) -> dict[str, str]:
    """The XML parts of an XLSX package by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        return {
            name: book.read(name).decode("utf-8")
            for name in book.namelist()
            if name.endswith((".xml", ".rels"))
        }


def sheet_xml(parts: dict[str, str], name: str) -> str:
    """The worksheet XML of the sheet called `name` (through workbook.xml and its relations)."""
    rid = re.search(
        rf'<sheet name="{re.escape(name)}" sheetId="\d+" r:id="(rId\d+)"', parts["xl/workbook.xml"]
    )
    assert rid, f"no sheet {name}"
    target = re.search(rf'Id="{rid.group(1)}" [^>]*Target="([^"]+)"', parts["xl/_rels/workbook.xml.rels"])
    return parts[f"xl/{target.group(1)}"]


def sheet_strings(parts: dict[str, str], name: str) -> list[str]:
    """The text cells of one sheet, row by row (xlsxwriter keeps every text in sharedStrings)."""
    shared = [
        html.unescape(re.sub(r"<[^>]+>", "", item))
        for item in re.findall(r"<si>(.*?)</si>", parts["xl/sharedStrings.xml"], flags=re.S)
    ]
    cells = re.findall(r'<c r="[A-Z]+\d+"[^>]* t="s"[^>]*><v>(\d+)</v></c>', sheet_xml(parts, name))
    return [shared[int(index)] for index in cells]
