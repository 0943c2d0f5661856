from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import text

from tasks.analytics.backfill import backfill_aggregates
from tasks.analytics.insights import ended_comparisons, insight_sentences, insights_markdown, publish_insights
from tasks.database import begin, read_frame

SENSORS = pl.DataFrame(
    {
        "sensor_id": ["t4", "p1", "c2"],
        "parameter": ["turbidity", "ph", "free_chlorine"],
        "station_name": ["Station 4", "Plant", "Tank 2"],
    }
)


def _comparisons(changes: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"sensor_id": list(changes), "kind": "week_on_week", "change_pct": list(changes.values())}
    )


def _trends(rows: dict[str, tuple[float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sensor_id": list(rows),
            "kind": "week_on_week",
            "r_squared": [r for r, _ in rows.values()],
            "p_value": [p for _, p in rows.values()],
        }
    )


def test_a_large_change_with_a_significant_trend_reads_as_a_sentence():
    out = insight_sentences(_comparisons({"t4": 38.2}), _trends({"t4": (0.81, 0.001)}), SENSORS)

    assert out["sentence"].to_list() == [
        "Turbidity at Station 4 rose 38 % week on week; the trend is significant, R² 0.81"
    ]


def test_small_changes_are_left_out_unless_their_trend_is_significant():
    comparisons = _comparisons({"t4": 3.0, "p1": -4.0, "c2": -12.5})
    trends = _trends({"t4": (0.2, 0.4), "p1": (0.7, 0.01), "c2": (0.1, 0.6)})

    out = insight_sentences(comparisons, trends, SENSORS)

    assert out["sentence"].to_list() == [
        "Free chlorine at Tank 2 fell 12 % week on week; the trend is not significant, R² 0.1",
        "pH at Plant fell 4 % week on week; the trend is significant, R² 0.7",
    ]


def test_markdown_lists_the_sentences_or_says_there_is_none():
    found = pl.DataFrame({"sentence": ["Turbidity at Station 4 rose 38 % week on week"]})

    assert (
        insights_markdown(found, "Insights")
        == "# Insights\n\n- Turbidity at Station 4 rose 38 % week on week.\n"
    )
    assert insights_markdown(found.head(0), "Insights").endswith("No change worth reporting.\n")


def test_the_comparisons_a_day_ends():
    assert ended_comparisons(date(2026, 3, 8)) == ["week_on_week"]  # a Sunday
    assert ended_comparisons(date(2026, 5, 31)) == ["week_on_week", "month_on_month", "year_on_year"]
    assert ended_comparisons(date(2026, 3, 10)) == []


# ---------------------------------------------------------------- stored, on a real database

FIRST, LAST = date(2026, 4, 1), date(2026, 5, 31)  # 31 May 2026 is a Sunday: it ends a week and a month
STORED = """
select municipality_id, sensor_id, kind, period_start, period_end,
       case when is_significant then 1 else 0 end as is_significant, sentence,
       round(cast(change_pct as numeric), 4) as change_pct, id, computed_at
from insights order by municipality_id, period_end, kind, sensor_id
"""
STORED_SCHEMA = {
    "period_start": pl.Date,
    "period_end": pl.Date,
    "is_significant": pl.Int64,
    "change_pct": pl.Float64,
    "computed_at": pl.Datetime("us", "UTC"),
}


def _stored() -> pl.DataFrame:
    with begin() as conn:
        return read_frame(conn, STORED, {}, STORED_SCHEMA).with_columns(pl.col("is_significant").cast(bool))


def _two_months(sensor_id: str, value) -> pl.DataFrame:  # noqa: ANN001
    """Hourly readings from 1 April to 31 May (UTC), the same all day: `value(day number)`."""
    hours = ((LAST - FIRST).days + 1) * 24
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC)
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [start + timedelta(hours=h) for h in range(hours)],
            "value": [value(h // 24) for h in range(hours)],
        }
    )


@pytest.fixture
def two_towns(database, seed):
    """Riverton's turbidity rises 0.1 NTU a day from 1.0 (its pH stays 7.0); Lakeside's turbidity
    falls 0.1 a day from 10.0. Aggregated by hour, day, week and month, as the nightly flow does."""
    with begin() as conn:
        ours = seed.municipality(conn, "riverton", "UTC", {"rv-turb": "turbidity", "rv-ph": "ph"}, 3600)
        theirs = seed.municipality(conn, "lakeside", "UTC", {"ls-turb": "turbidity"}, 3600)
        seed.readings(conn, "riverton", ours, _two_months("rv-turb", lambda d: 1.0 + 0.1 * d))
        seed.readings(conn, "riverton", ours, _two_months("rv-ph", lambda d: 7.0))
        seed.readings(conn, "lakeside", theirs, _two_months("ls-turb", lambda d: 10.0 - 0.1 * d))
    for town in ("riverton", "lakeside"):
        backfill_aggregates.fn(town, FIRST, LAST, now=datetime(2026, 6, 2, tzinfo=UTC))
    with begin() as conn:  # the backfill recomputed the months' insights too: start without any
        conn.execute(text("delete from insights"))


def test_publish_insights_stores_the_sentences_of_the_weeks_and_month_a_day_ends(two_towns):
    # daily means 1.0 + 0.1 d (d = 0 on 1 April): week 18-24 May averages 6.0 against 5.3 the
    # week before (+13.2 %); week 25-31 May 6.7 against 6.0 (+11.7 %); May 5.5 against April's
    # 2.45 (+124.5 %). The daily means lie on a line: R² 1, significant. pH does not move.
    week = publish_insights.fn("riverton", date(2026, 5, 24))
    month = publish_insights.fn("riverton", date(2026, 5, 31))

    assert week["details"] == {"insights": 1, "written": 1}
    assert month["details"] == {"insights": 2, "written": 2}
    assert month["sentences"] == [
        "Turbidity at Plant rose 12 % week on week; the trend is significant, R² 1.0",
        "Turbidity at Plant rose 124 % month on month; the trend is significant, R² 1.0",
    ]
    stored = _stored()
    assert stored.drop("id", "computed_at").rows() == [
        (
            "riverton",
            "rv-turb",
            "week_on_week",
            date(2026, 5, 18),
            date(2026, 5, 25),
            True,
            "Turbidity at Plant rose 13 % week on week; the trend is significant, R² 1.0",
            round(0.7 / 5.3 * 100, 4),
        ),
        (
            "riverton",
            "rv-turb",
            "month_on_month",
            date(2026, 5, 1),
            date(2026, 6, 1),
            True,
            "Turbidity at Plant rose 124 % month on month; the trend is significant, R² 1.0",
            round(3.05 / 2.45 * 100, 4),
        ),
        (
            "riverton",
            "rv-turb",
            "week_on_week",
            date(2026, 5, 25),
            date(2026, 6, 1),
            True,
            "Turbidity at Plant rose 12 % week on week; the trend is significant, R² 1.0",
            round(0.7 / 6.0 * 100, 4),
        ),
    ]


def test_a_rerun_of_publish_insights_writes_no_row_again(two_towns):
    for day in (date(2026, 5, 24), date(2026, 5, 31)):
        publish_insights.fn("riverton", day)
    stored = _stored()

    again = [publish_insights.fn("riverton", day) for day in (date(2026, 5, 24), date(2026, 5, 31))]

    assert [r["details"] for r in again] == [{"insights": 1, "written": 0}, {"insights": 2, "written": 0}]
    assert_frame_equal(_stored(), stored)  # same ids, same computed_at: nothing rewritten


def test_each_municipality_gets_only_its_own_insights(two_towns):
    publish_insights.fn("riverton", date(2026, 5, 24))
    assert set(_stored()["municipality_id"]) == {"riverton"}  # Lakeside's week was not asked for

    theirs = publish_insights.fn("lakeside", date(2026, 5, 24))

    # Lakeside's week 18-24 May averages 5.0 against 5.7 the week before: -12.3 %
    assert theirs["sentences"] == [
        "Turbidity at Plant fell 12 % week on week; the trend is significant, R² 1.0"
    ]
    stored = _stored()
    assert stored.select("municipality_id", "sensor_id").rows() == [
        ("lakeside", "ls-turb"),
        ("riverton", "rv-turb"),
    ]


def test_inside_a_run_the_sentences_are_published_as_a_markdown_artifact(two_towns, prefect_server):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    @flow
    def insights_of_the_day(day: date) -> dict:
        return publish_insights("riverton", day)

    state = insights_of_the_day(date(2026, 5, 24), return_state=True)

    assert state.is_completed()
    run = ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["insights-riverton"]), flow_run_id=run)
        )
    assert [(a.type, a.data) for a in artifacts] == [
        (
            "markdown",
            "# Insights of riverton, 2026-05-24\n\n"
            "- Turbidity at Plant rose 13 % week on week; the trend is significant, R² 1.0.\n",
        )
    ]
