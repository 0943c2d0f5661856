"""Why a reading has its QC flag: each test's flag, the settings it ran with, and the run it came from.

`waterline qc show SENSOR --at TIME` prints this. The settings are those of the configuration
stored with the run (`qc_runs.config_json`), merged for the sensor exactly as the run merged them
(with the sensor's registry cadence and range as they are now),
so a flag can be explained after `qc.yaml` has changed; rerunning the day
(`waterline run nightly --day YYYY-MM-DD`) judges it again with the current configuration.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, select

from tasks.models import Municipality, QcRun, Reading, ReadingQc, Sensor
from tasks.quality.qc import FLAG_COLUMNS, TESTS, QcConfig, load_qc_config

MEANINGS = {1: "good", 2: "not evaluated", 3: "suspect", 4: "fail", 9: "missing"}


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _neighbour(conn: Connection, sensor_id: str, observed_at: datetime, before: bool) -> dict | None:
    time = Reading.observed_at
    query = (
        select(Reading.observed_at, Reading.value)
        .where(Reading.sensor_id == sensor_id, time < observed_at if before else time > observed_at)
        .order_by(time.desc() if before else time)
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else {"observed_at": row.observed_at, "value": row.value}


def settings_text(settings: object) -> str:
    """A test's settings as `name=value` pairs, or 'off' when the test does not run."""
    if settings is None:
        return "off"
    if isinstance(settings, list):  # climatology periods
        return "; ".join(settings_text(period) for period in settings)
    dumped = settings.model_dump(exclude_none=True)  # type: ignore[attr-defined]
    return ", ".join(f"{key}={_value_text(value)}" for key, value in dumped.items())


def _value_text(value: object) -> str:
    """A setting's value; the pinned rule as its instrument range, an open end as `none`."""
    if isinstance(value, dict) and set(value) <= {"span"}:
        span = value.get("span") or (None, None)
        if span[0] is None and span[1] is None:
            return "no instrument range"
        return "[" + ", ".join("none" if end is None else str(end) for end in span) + "]"
    return str(list(value)) if isinstance(value, tuple) else str(value)


def explain_reading(
    conn: Connection, sensor_id: str, at: datetime, municipality_id: str | None = None
) -> dict:
    """The reading of `sensor_id` at `at` (or the latest before it) with everything that explains
    its flag; ValueError when the sensor has no reading by then (in that municipality)."""
    key = and_(ReadingQc.sensor_id == Reading.sensor_id, ReadingQc.observed_at == Reading.observed_at)
    query = (
        select(
            Reading.sensor_id,
            Reading.observed_at,
            Reading.municipality_id,
            Reading.value,
            Reading.qc_flag,
            Sensor.parameter,
            Sensor.unit,
            Sensor.interval_seconds,
            Sensor.valid_min,
            Sensor.valid_max,
            Municipality.timezone,
            *(getattr(ReadingQc, name) for name in FLAG_COLUMNS),
            ReadingQc.qc_tests,
            QcRun.id.label("qc_run_id"),
            QcRun.day,
            QcRun.config_version,
            QcRun.config_sha256,
            QcRun.config_json,
            QcRun.computed_at,
        )
        .join(Sensor, Sensor.id == Reading.sensor_id)
        .join(Municipality, Municipality.id == Reading.municipality_id)
        .outerjoin(ReadingQc, key)
        .outerjoin(QcRun, QcRun.id == ReadingQc.qc_run_id)
        .where(Reading.sensor_id == sensor_id, Reading.observed_at <= at)
        .order_by(Reading.observed_at.desc())
        .limit(1)
    )
    if municipality_id is not None:
        query = query.where(Reading.municipality_id == municipality_id)
    row = conn.execute(query).first()
    if row is None:
        where = f" in municipality {municipality_id!r}" if municipality_id else ""
        raise ValueError(f"sensor {sensor_id!r} has no reading at or before {at.isoformat()}{where}")
    day = row.day or _local_day(row.observed_at, row.timezone)
    judged = row.qc_run_id is not None
    registry = (row.interval_seconds, (row.valid_min, row.valid_max))
    settings = (
        QcConfig.model_validate(row.config_json).for_sensor(row.sensor_id, row.parameter, *registry)
        if judged
        else None
    )
    tests = [
        {
            "test": name,
            "flag": getattr(row, column),
            "meaning": MEANINGS.get(getattr(row, column), "?"),
            "settings": settings_text(getattr(settings, name)) if settings else "-",
        }
        for name, column in zip(TESTS, FLAG_COLUMNS, strict=True)
    ]
    return {
        "sensor_id": row.sensor_id,
        "municipality_id": row.municipality_id,
        "parameter": row.parameter,
        "unit": row.unit,
        "observed_at": row.observed_at,
        "value": row.value,
        "qc_flag": row.qc_flag,
        "meaning": MEANINGS.get(row.qc_flag, "?"),
        "qc_tests": row.qc_tests,
        "previous": _neighbour(conn, row.sensor_id, row.observed_at, before=True),
        "next": _neighbour(conn, row.sensor_id, row.observed_at, before=False),
        "expected_interval_seconds": settings.expected_interval_seconds if settings else None,
        "tests": tests if judged else [],
        "run": {
            "id": row.qc_run_id,
            "day": row.day,
            "config_version": row.config_version,
            "config_sha256": row.config_sha256,
            "computed_at": row.computed_at,
            "is_current_config": row.config_sha256 == load_qc_config().digest,
        }
        if judged
        else None,
        "note": _note(row, judged, day),
    }


def _local_day(observed_at: datetime, timezone: str) -> date:
    return observed_at.astimezone(ZoneInfo(timezone)).date()


def _note(row, judged: bool, day: date) -> str:  # noqa: ANN001
    rerun = f"`waterline run nightly --day {day.isoformat()}` judges it again"
    if not judged:
        return f"Not judged by QC yet (flag {row.qc_flag}): {rerun}."
    if row.qc_flag == 2 and any(getattr(row, c) != 2 for c in FLAG_COLUMNS):
        return f"The value changed after this QC run (a revision resets the flag to 2): {rerun}."
    worst = "the worst test wins (4 > 3 > 1; 2 when no test ran; 9 when there is no value)"
    given = f"Flag {row.qc_flag} ({MEANINGS.get(row.qc_flag, '?')}) given by: {row.qc_tests or 'no test'}"
    return f"{given}; {worst}. {rerun}."
