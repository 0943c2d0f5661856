"""Incidents from consensus: a station's findings grouped until a quiet period passes, opened only
when methods or parameters agree, an extreme finding lasts, a limit is breached or a learned model
alarms; severity from the evidence and the parameters' health weights."""

from datetime import UTC, datetime, timedelta

import polars as pl

from tasks.anomalies import plan_incidents
from tasks.anomalies.incident_severity import evidence_frame, evidence_order, load_incident_config
from tasks.anomalies.incidents import ANOMALY_ROW_SCHEMA, INCIDENT_SCHEMA, incident_figures, with_summaries

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
NO_INCIDENTS = pl.DataFrame(schema=INCIDENT_SCHEMA)
SENSORS = pl.DataFrame(
    {
        "sensor_id": ["turb-1", "cl-1", "ph-1", "temp-1", "turb-2"],
        "station_id": ["st-1", "st-1", "st-1", "st-1", "st-2"],
        "parameter": ["turbidity", "free_chlorine", "ph", "temperature", "turbidity"],
    }
)


def _anomalies(rows: list[tuple[str, str, int, str]]) -> pl.DataFrame:
    """(sensor_id, method, minutes after T0, severity) rows; ids in the order given."""
    station = dict(SENSORS.select("sensor_id", "station_id").iter_rows())
    return pl.DataFrame(
        [
            (
                i,
                sensor,
                station[sensor],
                method,
                T0 + timedelta(minutes=minute),
                1.0,
                float(i),
                severity,
                f"{sensor} {method} at minute {minute} ({severity})",
            )
            for i, (sensor, method, minute, severity) in enumerate(rows, start=1)
        ],
        schema=ANOMALY_ROW_SCHEMA,
        orient="row",
    )


def _plan(rows: list[tuple[str, str, int, str]], open_incidents: pl.DataFrame = NO_INCIDENTS) -> pl.DataFrame:
    return plan_incidents(_anomalies(rows), open_incidents, timedelta(minutes=60), SENSORS)


def test_a_single_short_blip_stays_an_anomaly_without_an_incident():
    plan = _plan([("turb-1", "rolling_zscore", 0, "CRITICAL"), ("turb-1", "robust_zscore", 0, "CRITICAL")])
    assert plan.is_empty()  # two z-scores are one method family: no agreement


def test_parameters_moving_together_at_a_station_are_one_incident():
    plan = _plan(
        [
            ("turb-1", "rolling_zscore", 0, "CRITICAL"),
            ("cl-1", "rolling_zscore", 4, "HIGH"),
            ("ph-1", "robust_zscore", 9, "HIGH"),
            ("turb-1", "rolling_zscore", 30, "MEDIUM"),
            ("turb-1", "rolling_zscore", 31, "LOW"),  # below the evidence severity: in no incident
            ("turb-2", "rolling_zscore", 5, "CRITICAL"),  # another station, alone
        ]
    )
    assert plan.select(
        "station_id",
        "sensor_id",
        "kind",
        "first_observed_at",
        "last_observed_at",
        "anomaly_count",
        "severity",
        "parameters",
        "anomaly_ids",
        "incident_id",
    ).rows() == [
        (
            "st-1",
            "turb-1",
            "anomaly",
            T0,
            T0 + timedelta(minutes=30),
            4,
            "HIGH",
            "turbidity, free_chlorine, ph",
            [1, 2, 3, 4],
            None,
        )
    ]
    assert plan["reason"][0].startswith("3 parameters agree at HIGH or more; ")


def test_two_method_families_on_one_sensor_open_an_incident_only_within_the_window():
    near = _plan([("ph-1", "rolling_zscore", 0, "HIGH"), ("ph-1", "trend", 20, "HIGH")])
    far = _plan([("ph-1", "rolling_zscore", 0, "HIGH"), ("ph-1", "trend", 45, "HIGH")])
    weak = _plan([("ph-1", "rolling_zscore", 0, "HIGH"), ("ph-1", "trend", 20, "MEDIUM")])
    assert near["anomaly_ids"].to_list() == [[1, 2]]
    assert near["reason"][0].startswith("2 methods agree on one sensor at HIGH or more; ")
    assert far.is_empty() and weak.is_empty()


def test_a_limit_breach_or_a_learned_alarm_opens_an_incident_alone():
    breach = _plan([("cl-1", "limit_breach", 0, "MEDIUM")])
    learned = _plan([("ph-1", "learned", 0, "HIGH")])
    assert breach.select("kind", "severity").rows() == [("limit_breach", "MEDIUM")]
    assert learned.select("kind", "anomaly_count").rows() == [("anomaly", 1)]


def test_an_extreme_finding_opens_an_incident_when_it_lasts_without_a_break():
    every_two = _plan([("turb-1", "rolling_zscore", m, "CRITICAL") for m in range(0, 17, 2)])
    every_ten = _plan([("turb-1", "rolling_zscore", m, "CRITICAL") for m in range(0, 41, 10)])
    assert every_two["reason"][0].startswith("CRITICAL for 16 min on one sensor; ")
    assert every_ten.is_empty()  # 40 minutes of blips, each 10 minutes from the last


def test_a_run_within_the_quiet_period_joins_the_stations_open_incident_without_consensus():
    open_incidents = pl.DataFrame(
        [
            (
                41,
                "st-1",
                "cl-1",
                "anomaly",
                "HIGH",
                "open",
                "...",
                T0 - timedelta(hours=3),
                T0 - timedelta(minutes=30),
                12,
            )
        ],
        schema=INCIDENT_SCHEMA,
        orient="row",
    )
    plan = _plan(
        [("turb-1", "volatility", 10, "MEDIUM"), ("ph-1", "rolling_zscore", 100, "HIGH")], open_incidents
    )
    # minute 10 is 40 minutes after the incident's last anomaly; minute 100, alone, opens nothing
    assert plan.select("sensor_id", "incident_id", "anomaly_ids").rows() == [("turb-1", 41, [1])]
    assert plan["reason"][0].startswith("joins an open incident; ")


def test_severity_weighs_health_relevance_agreement_and_duration():
    def severity(rows: list[tuple[str, str, int, str]]) -> str:
        return _plan(rows)["severity"][0]

    alone = [("rolling_zscore", m, "CRITICAL") for m in range(0, 17, 2)]
    assert severity([("turb-1", *r) for r in alone]) == "MEDIUM"
    assert severity([("temp-1", *r) for r in alone]) == "LOW"  # temperature weighs less
    assert severity([("turb-1", "limit_breach", 0, "HIGH")]) == "HIGH"
    # a contamination: three health parameters over two hours, turbidity beyond its CRITICAL step
    contamination = [
        (sensor, method, m, "CRITICAL")
        for m in range(0, 121, 5)
        for sensor in ("turb-1", "cl-1", "ph-1")
        for method in ("rolling_zscore", "trend")
    ]
    assert severity(contamination) == "HIGH"
    assert severity([*contamination, ("turb-1", "limit_breach", 60, "CRITICAL")]) == "CRITICAL"
    assert severity([*contamination[:18], ("turb-1", "limit_breach", 10, "CRITICAL")]) == "HIGH"  # 15 min


def test_an_incident_is_refigured_from_every_anomaly_it_holds():
    held = _anomalies(
        [
            ("ph-1", "rolling_zscore", 0, "HIGH"),
            ("ph-1", "trend", 5, "HIGH"),
            ("cl-1", "limit_breach", 50, "HIGH"),
        ]
    ).with_columns(incident_id=pl.lit(7, dtype=pl.Int64))
    figures = incident_figures(held, SENSORS)
    assert figures.select(
        "incident_id",
        "sensor_id",
        "kind",
        "severity",
        "anomaly_count",
        "first_observed_at",
        "last_observed_at",
    ).rows() == [(7, "cl-1", "limit_breach", "HIGH", 3, T0, T0 + timedelta(minutes=50))]


def test_the_findings_that_set_the_severity_come_first():
    held = _anomalies(
        [
            ("ph-1", "rolling_zscore", 0, "MEDIUM"),
            ("turb-1", "rolling_zscore", 1, "CRITICAL"),
            ("turb-1", "combined", 1, "CRITICAL"),  # restates the others: never first
            ("ph-1", "trend", 2, "HIGH"),
            ("turb-1", "limit_breach", 3, "HIGH"),
            ("turb-1", "rolling_zscore", 4, "CRITICAL"),
        ]
    )
    ordered = evidence_order(evidence_frame(held, SENSORS, load_incident_config()))
    assert ordered.select("id", "sets_severity").rows() == [
        (5, True),  # the limit breach: most points
        (4, True),  # ph's strongest
        (4 + 2, False),
        (2, False),
        (1, False),
        (3, False),
    ]


def test_an_incident_summary_says_where_why_and_its_worst_finding():
    incidents = pl.DataFrame(
        {
            "station_id": ["st-1"],
            "sensor_id": ["ph-1"],
            "kind": ["limit_breach"],
            "anomaly_count": [2],
            "first_observed_at": [T0],
            "last_observed_at": [T0 + timedelta(minutes=5)],
            "severity": ["HIGH"],
            "parameters": ["ph, turbidity"],
            "reason": ["why"],
            "worst_explanation": ["worst"],
        }
    )
    assert with_summaries(incidents, SENSORS, "UTC")["summary"].to_list() == [
        "2 limit-breach anomalies at station st-1 on ph, turbidity from 2026-05-01 08:00 UTC to "
        "2026-05-01 08:05 UTC; HIGH: why; worst (ph sensor ph-1): worst"
    ]
