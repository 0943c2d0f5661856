from datetime import UTC, datetime, timedelta

import polars as pl

from tasks.anomalies import plan_incidents
from tasks.anomalies.incidents import ANOMALY_ROW_SCHEMA, INCIDENT_SCHEMA, with_summaries

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
NO_INCIDENTS = pl.DataFrame(schema=INCIDENT_SCHEMA)


def _anomalies(rows: list[tuple[str, str, int, str]]) -> pl.DataFrame:
    """(sensor_id, method, minutes after T0, severity) rows."""
    return pl.DataFrame(
        [
            (
                i,
                sensor,
                "st-1",
                method,
                T0 + timedelta(minutes=minute),
                1.0,
                2.0,
                severity,
                f"{sensor} at minute {minute} ({severity})",
            )
            for i, (sensor, method, minute, severity) in enumerate(rows, start=1)
        ],
        schema=ANOMALY_ROW_SCHEMA,
        orient="row",
    )


def test_a_flapping_sensor_makes_one_run_until_it_goes_quiet():
    minutes = list(range(0, 120, 7)) + [200]  # every 7 minutes for two hours, then 80 min later
    anomalies = _anomalies(
        [("turb-1", "rolling_zscore", m, "LOW") for m in minutes[:-1]]
        + [("turb-1", "rolling_zscore", 200, "HIGH")]
    )

    plan = plan_incidents(anomalies, NO_INCIDENTS, timedelta(minutes=60), open_at="LOW")

    assert plan.select(
        "first_observed_at", "last_observed_at", "anomaly_count", "severity", "incident_id"
    ).rows() == [
        (T0, T0 + timedelta(minutes=119), 18, "LOW", None),
        (T0 + timedelta(minutes=200), T0 + timedelta(minutes=200), 1, "HIGH", None),
    ]


def test_runs_are_per_sensor_and_kind_and_keep_the_worst_explanation():
    anomalies = _anomalies(
        [
            ("turb-1", "rolling_zscore", 0, "LOW"),
            ("turb-1", "rolling_zscore", 5, "CRITICAL"),
            ("turb-1", "rolling_zscore", 9, "MEDIUM"),
            ("turb-1", "trend", 7, "MEDIUM"),
            ("turb-1", "limit_breach", 5, "HIGH"),
            ("ph-1", "rolling_zscore", 5, "LOW"),
        ]
    )

    plan = plan_incidents(anomalies, NO_INCIDENTS, open_at="LOW")

    # every statistical method on one sensor is one `anomaly` run; a limit breach is its own
    assert plan.select("sensor_id", "kind", "anomaly_count", "severity", "worst_explanation").rows() == [
        ("ph-1", "anomaly", 1, "LOW", "ph-1 at minute 5 (LOW)"),
        ("turb-1", "anomaly", 4, "CRITICAL", "turb-1 at minute 5 (CRITICAL)"),
        ("turb-1", "limit_breach", 1, "HIGH", "turb-1 at minute 5 (HIGH)"),
    ]


def test_a_run_within_the_quiet_period_joins_the_open_incident_whatever_its_severity():
    open_incidents = pl.DataFrame(
        [
            (
                41,
                "st-1",
                "turb-1",
                "anomaly",
                "LOW",
                "open",
                "...",
                T0 - timedelta(hours=3),
                T0 - timedelta(minutes=30),
                12,
            ),
            (
                42,
                "st-1",
                "turb-1",
                "limit_breach",
                "LOW",
                "open",
                "...",
                T0 - timedelta(hours=3),
                T0 - timedelta(minutes=90),
                3,
            ),
        ],
        schema=INCIDENT_SCHEMA,
        orient="row",
    )
    anomalies = _anomalies([("turb-1", "volatility", 10, "LOW"), ("turb-1", "limit_breach", 10, "HIGH")])

    plan = plan_incidents(anomalies, open_incidents, timedelta(minutes=60))

    assert plan.select("kind", "incident_id").rows() == [
        ("anomaly", 41),
        ("limit_breach", None),  # 100 minutes after that incident's last anomaly
    ]


def test_a_run_opens_an_incident_only_when_it_reaches_the_opening_severity():
    anomalies = _anomalies(
        [
            ("ph-1", "rolling_zscore", 0, "LOW"),
            ("ph-1", "rolling_zscore", 5, "MEDIUM"),
            ("ph-1", "rolling_zscore", 300, "LOW"),
            ("ph-1", "rolling_zscore", 305, "HIGH"),
        ]
    )

    plan = plan_incidents(anomalies, NO_INCIDENTS)

    assert plan.select("first_observed_at", "anomaly_count", "severity").rows() == [
        (T0 + timedelta(minutes=300), 2, "HIGH")
    ]


def test_an_incident_summary_names_its_kind_in_plain_words():
    incidents = pl.DataFrame(
        {
            "sensor_id": ["ph-1", "ph-1"],
            "kind": ["anomaly", "limit_breach"],
            "anomaly_count": [2, 1],
            "first_observed_at": [T0, T0],
            "last_observed_at": [T0 + timedelta(minutes=5), T0],
            "severity": ["HIGH", "MEDIUM"],
            "worst_explanation": ["why", "why"],
        }
    )
    sensors = pl.DataFrame({"sensor_id": ["ph-1"], "parameter": ["ph"]})
    summaries = with_summaries(incidents, sensors, "UTC")["summary"].to_list()
    assert summaries[0].startswith("2 detected anomalies on ph sensor ph-1 from ")
    assert summaries[1].startswith("1 limit-breach anomaly on ph sensor ph-1 from ")
