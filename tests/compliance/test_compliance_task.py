from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import func, insert, select

from tasks.compliance import judge_compliance
from tasks.database import begin, bulk_insert, read_frame
from tasks.models import ActionPlan, AuditLog, IngestBatch, WebhookEvent
from tasks.registry import apply_registry, parse_registry

DAY = date(2026, 11, 25)  # Chicago local day = [2026-11-25 06:00Z, 2026-11-26 06:00Z)

REGISTRY = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago, standards: [EU, WHO],
               regulator_emails: [regulator@riverton.example]}
stations:
  - id: riverton-plant
    name: Riverton Treatment Plant
    sensors:
      - {id: riverton-ph, parameter: ph, kind: online, interval_seconds: 3600}
      - {id: riverton-cond, parameter: conductivity, kind: online, interval_seconds: 3600}
      - {id: riverton-lead, parameter: lead, kind: lab}
"""


def seed_readings(rows: list[tuple[str, datetime, float, int]]) -> None:
    with begin() as conn:
        apply_registry(conn, parse_registry(REGISTRY))
        batch_id = conn.execute(
            insert(IngestBatch).values(
                municipality_id="riverton",
                source="test",
                checksum_sha256="0",
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]
        frame = pl.DataFrame(
            rows,
            schema={
                "sensor_id": pl.String,
                "observed_at": pl.Datetime("us", "UTC"),
                "value": pl.Float64,
                "qc_flag": pl.Int16,
            },
            orient="row",
        )
        bulk_insert(
            conn,
            "readings",
            frame.with_columns(municipality_id=pl.lit("riverton"), batch_id=pl.lit(batch_id)),
        )


def utc(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def test_judging_a_local_day_twice_records_one_result_set_one_event_and_one_plan(database):
    seed_readings(
        [
            ("riverton-cond", utc(25, 3), 9000.0, 1),  # 21:00 the evening before, local time
            ("riverton-cond", utc(25, 12), 3000.0, 1),
            ("riverton-cond", utc(25, 13), 2000.0, 1),
            ("riverton-cond", utc(25, 14), 9999.0, 4),  # failed QC: excluded
            ("riverton-ph", utc(25, 12), 7.2, 1),
            ("riverton-ph", utc(26, 5), 7.4, 1),  # 23:00 local
            ("riverton-lead", utc(25, 15), 14.0, 1),  # above the EU parametric value 10 ug/L
        ]
    )

    first = judge_compliance.fn("riverton", DAY)
    second = judge_compliance.fn("riverton", DAY)

    # EU conductivity is an indicator value: its exceedance is a WARNING with an investigation
    # plan, no violation; WHO lead is advisory: NON_COMPLIANT, no plan; EU lead is a violation.
    assert first["details"] == {
        "compliant": 2,
        "insufficient_data": 0,
        "warning": 1,
        "non_compliant": 2,
        "violations": 1,
        "events_recorded": 1,
        "action_plans_created": 2,
    }
    assert (second["details"]["events_recorded"], second["details"]["action_plans_created"]) == (
        0,
        0,
    )
    with begin() as conn:
        results = read_frame(
            conn,
            """
            select standard, parameter, period_kind, period_start, status, statistic,
                   statistic_value, limit_value, limit_kind, sample_count, excluded_count
            from compliance_results where municipality_id = :m order by standard, parameter
        """,
            {"m": "riverton"},
            {"period_start": pl.Date},
        )
        events = conn.execute(select(WebhookEvent.dedupe_key, WebhookEvent.payload)).all()
        plans = conn.execute(select(ActionPlan.parameter, ActionPlan.owner, ActionPlan.steps)).all()
        audit = conn.execute(select(AuditLog.action, func.count()).group_by(AuditLog.action)).all()
    expected = pl.DataFrame(
        {
            "standard": ["EU", "EU", "EU", "WHO", "WHO"],
            "parameter": ["conductivity", "lead", "ph", "lead", "ph"],
            "period_kind": ["day"] * 5,
            "period_start": [DAY] * 5,
            "status": ["WARNING", "NON_COMPLIANT", "COMPLIANT", "NON_COMPLIANT", "COMPLIANT"],
            "statistic": ["max", "mean", "min", "mean", "min"],
            "statistic_value": [3000.0, 14.0, 7.2, 14.0, 7.2],
            "limit_value": [2500.0, 10.0, 6.5, 10.0, 6.5],
            "limit_kind": ["max", "max", "min", "max", "min"],
            "sample_count": [2, 1, 2, 1, 2],
            "excluded_count": [1, 0, 0, 0, 0],
        }
    )
    assert_frame_equal(results, expected, check_dtypes=False)
    assert [key for key, _ in events] == ["compliance.violation:riverton:EU:lead:2026-11-25"]
    payload = events[0][1]
    assert (payload["type"], payload["data"]["statistic_value"], payload["data"]["limit"]) == (
        "compliance.violation",
        14.0,
        10.0,
    )
    assert payload["data"]["citation"].startswith("Directive (EU) 2020/2184")
    assert sorted((p, o, s[0]) for p, o, s in plans) == [
        (
            "conductivity",
            "water quality",
            "Check the conductivity sensor calibration and temperature compensation.",
        ),
        (
            "lead",
            "operations",
            "Take confirmation samples at the sites that exceeded, following the sampling protocol.",
        ),
    ]
    assert dict(audit) == {
        "registry.applied": 1,
        "compliance_result.recorded": 5,
        "action_plan.created": 2,
        "compliance.violation_recorded": 1,
        "compliance.judged": 2,
    }


def test_a_day_without_readings_is_insufficient_everywhere(database):
    seed_readings([])
    result = judge_compliance.fn("riverton", DAY)
    assert result["details"]["insufficient_data"] == 5
    assert result["details"]["violations"] == 0
