from datetime import date

import polars as pl

from tasks.analytics.insights import ended_comparisons, insight_sentences, insights_markdown

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
