"""Insights: short plain-language sentences from period changes and trends, stored, and shown as
a Prefect markdown artifact ("Turbidity at Station 4 rose 38 % week on week; the trend is
significant, R² 0.81")."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from prefect import task
from sqlalchemy import Connection, delete, select

from tasks.analytics.buckets import period_bounds
from tasks.analytics.changes import rows_to_write
from tasks.analytics.readings import UTC_TIME, db_value, municipality_timezone
from tasks.analytics.trends import COMPARISONS, compare_periods, linear_trend
from tasks.database import begin, bulk_insert, load_sql, read_frame
from tasks.models import Insight, utcnow
from tasks.stages import in_prefect_run, stage

MIN_CHANGE_PCT = 10.0  # smaller changes make no sentence unless the trend is significant
DELETE_BATCH = 1000  # insights deleted a statement at a time
SIGNIFICANCE = 0.05  # p-value below which a trend is called significant
PHRASES = {"week_on_week": "week on week", "month_on_month": "month on month", "year_on_year": "year on year"}
INSIGHT_KEY = ["sensor_id", "kind", "period_start"]
INSIGHT_COLUMNS = [
    "period_end",
    "value_mean",
    "previous_mean",
    "change_pct",
    "slope_per_day",
    "r_squared",
    "p_value",
    "is_significant",
    "sentence",
]
SOURCE_SCHEMA = {
    "sensor_id": pl.String,
    "resolution": pl.String,
    "bucket_start": UTC_TIME,
    "value_mean": pl.Float64,
    "parameter": pl.String,
    "unit": pl.String,
    "station_name": pl.String,
}


# Names that are not a capitalised parameter id.
LABELS = {"ph": "pH", "e_coli": "E. coli", "tthm": "TTHM", "haa5": "HAA5", "redox": "Redox potential"}


def parameter_label(parameter: pl.Expr) -> pl.Expr:
    """`free_chlorine` -> `Free chlorine`, `ph` -> `pH`."""
    text = parameter.str.replace_all("_", " ")
    plain = text.str.slice(0, 1).str.to_uppercase() + text.str.slice(1)
    return parameter.replace_strict(LABELS, default=plain, return_dtype=pl.String)


def insight_sentences(comparisons: pl.DataFrame, trends: pl.DataFrame, sensors: pl.DataFrame) -> pl.DataFrame:
    """One sentence per compared period worth saying: a change of at least MIN_CHANGE_PCT, or a
    significant trend (p < SIGNIFICANCE) of the daily means over the two periods compared.

    `comparisons` from `compare_periods`, `trends` from `linear_trend` (one row per sensor and
    `kind`), `sensors` with `sensor_id`, `parameter` and `station_name`."""
    change = pl.col("change_pct")
    significant = (pl.col("p_value") < SIGNIFICANCE).fill_null(False)
    verb = pl.when(change >= 0).then(pl.lit("rose")).otherwise(pl.lit("fell"))
    said_change = pl.concat_str(
        parameter_label(pl.col("parameter")),
        pl.lit(" at "),
        pl.col("station_name"),
        pl.lit(" "),
        verb,
        pl.lit(" "),
        change.abs().round(0).cast(pl.Int64).cast(pl.String),
        pl.lit(" % "),
        pl.col("kind").replace_strict(PHRASES),
    )
    said_trend = pl.concat_str(
        pl.lit("; the trend is "),
        pl.when(significant).then(pl.lit("significant")).otherwise(pl.lit("not significant")),
        pl.lit(", R² "),
        pl.col("r_squared").round(2).cast(pl.String),
    )
    return (
        comparisons.join(trends, on=["sensor_id", "kind"], how="left")
        .join(sensors.select("sensor_id", "parameter", "station_name").unique("sensor_id"), on="sensor_id")
        .with_columns(is_significant=significant)
        .filter(change.is_not_null() & ((change.abs() >= MIN_CHANGE_PCT) | pl.col("is_significant")))
        .with_columns(
            sentence=pl.concat_str(
                said_change,
                pl.when(pl.col("r_squared").is_not_null()).then(said_trend).otherwise(pl.lit("")),
            )
        )
        .sort(change.abs(), descending=True, nulls_last=True)
    )


def insights_markdown(insights: pl.DataFrame, title: str) -> str:
    """A Markdown list of the sentences under a heading (an empty list says so)."""
    lines = [f"# {title}", ""]
    sentences = insights["sentence"].to_list() if insights.height else []
    lines += [f"- {s}." for s in sentences] or ["No change worth reporting."]
    return "\n".join(lines) + "\n"


def read_insight_aggregates(
    conn: Connection, municipality_id: str, resolution: str, start, end
) -> pl.DataFrame:  # noqa: ANN001
    """One resolution of a municipality's aggregates in [start, end), with sensor names."""
    params = {
        "municipality_id": municipality_id,
        "resolution": resolution,
        "start": db_value(conn, start),
        "end": db_value(conn, end),
    }
    return read_frame(conn, load_sql("read_insight_aggregates"), params, SOURCE_SCHEMA)


def ended_comparisons(day: date) -> list[str]:
    """The comparisons a period ending with local `day` makes."""
    after = day + timedelta(days=1)
    kinds = ["week_on_week"] if after.weekday() == 0 else []
    return kinds + (["month_on_month", "year_on_year"] if after.day == 1 else [])


def day_insights(conn: Connection, municipality_id: str, tz: str, day: date) -> pl.DataFrame:
    """The insights of the weeks and months that end with local `day`: each compared with the
    period before (or a year before), and the trend of the daily means from that earlier
    period's start to `day`."""
    frames = [pl.DataFrame()]
    for kind in ended_comparisons(day):
        resolution, back = COMPARISONS[kind]
        start, end = period_bounds(resolution, day, tz)
        local_start = start.astimezone(ZoneInfo(tz)).date()
        earlier = pl.select(pl.lit(local_start).dt.offset_by(back)).item()
        since = period_bounds(resolution, earlier, tz)[0]
        periods = read_insight_aggregates(conn, municipality_id, resolution, since, end)
        latest = compare_periods(periods, kind, tz).filter(pl.col("period_start") == local_start)
        daily = read_insight_aggregates(conn, municipality_id, "day", since, end)
        trends = linear_trend(daily).with_columns(kind=pl.lit(kind))
        found = insight_sentences(latest, trends, periods)
        frames.append(found.with_columns(period_end=pl.lit(day + timedelta(days=1))))
    return pl.concat(frames, how="diagonal_relaxed")


@task(
    name="publish_insights",
    task_run_name="insights-{municipality_id}-{day}",
    retries=2,
    retry_delay_seconds=10,
)
def publish_insights(municipality_id: str, day: date) -> dict:
    """Store the insights of the weeks and months ending with `day` and publish them as Markdown."""
    from prefect.artifacts import create_markdown_artifact

    with stage("insights", municipality_id) as result, begin() as conn:
        tz = municipality_timezone(conn, municipality_id)
        found = day_insights(conn, municipality_id, tz, day)
        written = write_insights(conn, municipality_id, found)
        result.rows = found.height
        result.details = {"insights": found.height, "written": written}
    if found.height and in_prefect_run():  # an artifact belongs to a run (not to a `.fn` call)
        create_markdown_artifact(
            insights_markdown(found, f"Insights of {municipality_id}, {day.isoformat()}"),
            key=f"insights-{municipality_id}".lower().replace("_", "-"),
            description=f"What changed in {municipality_id}'s readings up to {day.isoformat()}",
        )
    return result.as_dict() | {"sentences": found["sentence"].to_list() if found.height else []}


def refresh_month_insights(conn: Connection, municipality_id: str, tz: str, month: date) -> int:
    """Recompute the insights of every week and of the month that end in local `month` (first
    day), store what changed and delete those the figures no longer give: what the monthly report
    lists stays current when late data changed the month after the nightly run. Rows written."""
    after = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    days = [month + timedelta(days=k) for k in range((after - month).days)]
    found = pl.concat(
        [day_insights(conn, municipality_id, tz, day) for day in days if ended_comparisons(day)],
        how="diagonal_relaxed",
    )
    stored = conn.execute(
        select(Insight.id, *(getattr(Insight, column) for column in INSIGHT_KEY)).where(
            Insight.municipality_id == municipality_id,
            Insight.period_end > month,
            Insight.period_end <= after,
        )
    ).all()
    stored = pl.DataFrame(
        [tuple(row) for row in stored],
        schema={"id": pl.Int64, "sensor_id": pl.String, "kind": pl.String, "period_start": pl.Date},
        orient="row",
    )
    gone = stored if found.is_empty() else stored.join(found.select(INSIGHT_KEY), on=INSIGHT_KEY, how="anti")
    ids = gone["id"].to_list()
    for first in range(0, len(ids), DELETE_BATCH):  # a few stale ones, in bounded statements
        conn.execute(delete(Insight).where(Insight.id.in_(ids[first : first + DELETE_BATCH])))
    return len(ids) + write_insights(conn, municipality_id, found)


def read_stored_insights(conn: Connection, municipality_id: str, schema: dict) -> pl.DataFrame:
    """The stored insights of a municipality, in `schema` (`is_significant` comes as 1 or 0)."""
    params = {"municipality_id": municipality_id}
    stored = read_frame(
        conn, load_sql("read_stored_insights"), params, {**schema, "is_significant": pl.Int64}
    )
    return stored.with_columns(pl.col("is_significant").cast(pl.Boolean))


def write_insights(conn: Connection, municipality_id: str, found: pl.DataFrame) -> int:
    """Upsert insights by (sensor, kind, period): a rerun on the same figures writes nothing."""
    if found.is_empty():
        return 0
    rows = found.select(*INSIGHT_KEY, *INSIGHT_COLUMNS)
    stored = read_stored_insights(conn, municipality_id, dict(rows.schema))
    changed = rows_to_write(rows, stored, INSIGHT_KEY, INSIGHT_COLUMNS)
    return bulk_insert(
        conn,
        "insights",
        changed.with_columns(municipality_id=pl.lit(municipality_id), computed_at=utcnow()),
        conflict_columns=INSIGHT_KEY,
        update_columns=[*INSIGHT_COLUMNS, "computed_at"],
    )
