"""The data model: one table per concept, every tenant table keyed by its municipality."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Id = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict: Json, list: Json}


def tenant_column() -> Mapped[str]:
    return mapped_column(ForeignKey("municipalities.id"), index=True)


class Municipality(Base):
    __tablename__ = "municipalities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    standards: Mapped[list] = mapped_column(default=list)  # e.g. ["WHO", "EPA", "EU"]
    regulator_emails: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    municipality_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)


class Sensor(Base):
    __tablename__ = "sensors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    municipality_id: Mapped[str] = tenant_column()
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    parameter: Mapped[str] = mapped_column(String(64))  # canonical name: ph, turbidity, lead...
    unit: Mapped[str] = mapped_column(String(32))  # canonical unit of the parameter
    kind: Mapped[str] = mapped_column(String(16), default="online")  # online | lab
    valid_min: Mapped[float | None] = mapped_column(Float)
    valid_max: Mapped[float | None] = mapped_column(Float)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)  # expected cadence
    installed_at: Mapped[datetime | None] = mapped_column()
    last_calibrated_at: Mapped[datetime | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class IngestBatch(Base):
    """One incoming file (or one page of an HTTP source): what came, what loaded, what did not."""

    __tablename__ = "ingest_batches"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    source: Mapped[str] = mapped_column(String(1000))  # object URL of the file
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    file_format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # loading | loaded | failed
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0)
    rows_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    validation: Mapped[dict | None] = mapped_column()  # great-expectations statistics
    validation_docs_url: Mapped[str | None] = mapped_column(String(1000))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("municipality_id", "checksum_sha256"),)


class QuarantinedRow(Base):
    __tablename__ = "quarantined_rows"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    raw: Mapped[dict] = mapped_column()
    reasons: Mapped[list] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column()


class Reading(Base):
    """One observation of one sensor; value in the parameter's canonical unit, time in UTC."""

    __tablename__ = "readings"

    # No foreign keys and no index beyond the key (migration 0003): they made COPY 5x slower. The
    # load admits only the batch municipality's registered sensors, in the batch's transaction,
    # and a municipality's readings are found through its sensors, a key range scan each.
    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(primary_key=True)
    municipality_id: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    qc_flag: Mapped[int] = mapped_column(SmallInteger, default=2)  # QARTOD 1/2/3/4/9
    batch_id: Mapped[int] = mapped_column(Id)


class ReadingRevision(Base):
    """A value that a later batch replaced: the old value is kept here, the new one is current."""

    __tablename__ = "reading_revisions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    observed_at: Mapped[datetime] = mapped_column()
    old_value: Mapped[float] = mapped_column(Float)
    new_value: Mapped[float] = mapped_column(Float)
    old_batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))
    new_batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))
    revised_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_reading_revisions_sensor_observed", "sensor_id", "observed_at"),)


class StaleBucket(Base):
    """An aggregate bucket that late data reached after it was computed; the next run recomputes it."""

    __tablename__ = "stale_buckets"

    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"), primary_key=True)
    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)  # hour | day
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    municipality_id: Mapped[str] = tenant_column()
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))  # the batch that came late
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceCursor(Base):
    """Where a pulled source (an HTTP API) stopped, so the next run continues from there."""

    __tablename__ = "source_cursors"

    municipality_id: Mapped[str] = mapped_column(ForeignKey("municipalities.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Aggregate(Base):
    """Statistics of one sensor over one local hour, day, week (from Monday) or month; a week or
    month is written once it is over. Quantiles interpolate linearly between closest ranks."""

    __tablename__ = "aggregates"

    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"), primary_key=True)
    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)  # hour | day | week | month
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    municipality_id: Mapped[str] = tenant_column()
    count_readings: Mapped[int] = mapped_column(Integer)
    count_excluded: Mapped[int] = mapped_column(Integer, default=0)
    count_expected: Mapped[int | None] = mapped_column(Integer)  # from the sensor's cadence
    coverage_pct: Mapped[float | None] = mapped_column(Float)  # received / expected, at most 100
    value_mean: Mapped[float | None] = mapped_column(Float)
    value_min: Mapped[float | None] = mapped_column(Float)
    value_max: Mapped[float | None] = mapped_column(Float)
    value_std: Mapped[float | None] = mapped_column(Float)
    value_median: Mapped[float | None] = mapped_column(Float)
    value_p95: Mapped[float | None] = mapped_column(Float)
    value_p99: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Insight(Base):
    """A plain-language sentence about one sensor's trend or change over a period, with its figures."""

    __tablename__ = "insights"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    kind: Mapped[str] = mapped_column(String(16))  # week_on_week | month_on_month | year_on_year
    period_start: Mapped[date] = mapped_column(Date)  # local first day of the later period
    period_end: Mapped[date] = mapped_column(Date)  # local day after it
    value_mean: Mapped[float | None] = mapped_column(Float)
    previous_mean: Mapped[float | None] = mapped_column(Float)
    change_pct: Mapped[float | None] = mapped_column(Float)
    slope_per_day: Mapped[float | None] = mapped_column(Float)
    r_squared: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    is_significant: Mapped[bool] = mapped_column(Boolean, default=False)
    sentence: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("sensor_id", "kind", "period_start"),)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    sensor_id: Mapped[str | None] = mapped_column(ForeignKey("sensors.id"))
    kind: Mapped[str] = mapped_column(String(32))  # anomaly method or "limit_breach"
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|acknowledged|resolved
    summary: Mapped[str] = mapped_column(Text)
    first_observed_at: Mapped[datetime] = mapped_column()
    last_observed_at: Mapped[datetime] = mapped_column()
    anomaly_count: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()
    # What an operator said of it: confirmed (acknowledged) or dismissed (a false alarm); the
    # learned detector trains on these labels.
    label: Mapped[str | None] = mapped_column(String(16))
    labelled_by: Mapped[str | None] = mapped_column(String(200))
    labelled_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)


class Anomaly(Base):
    __tablename__ = "anomalies"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    observed_at: Mapped[datetime] = mapped_column()
    method: Mapped[str] = mapped_column(String(32))  # rolling_zscore | limit_breach | ...
    value: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))  # LOW | MEDIUM | HIGH | CRITICAL
    window: Mapped[str] = mapped_column(String(32))
    explanation: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("sensor_id", "observed_at", "method"),)


class MaintenancePrediction(Base):
    __tablename__ = "maintenance_predictions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    day: Mapped[date] = mapped_column(Date)
    health_score: Mapped[float] = mapped_column(Float)
    risk_level: Mapped[str] = mapped_column(String(16))
    factors: Mapped[dict] = mapped_column()
    predicted_failure_date: Mapped[date | None] = mapped_column(Date)
    confidence: Mapped[float | None] = mapped_column(Float)
    calibration_due_date: Mapped[date | None] = mapped_column(Date)
    recommendation: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("sensor_id", "day"),)


class ComplianceResult(Base):
    """One judgement of one municipality's parameter against one rule of a standard over one period."""

    __tablename__ = "compliance_results"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    standard: Mapped[str] = mapped_column(String(16))  # WHO | EPA | EU
    parameter: Mapped[str] = mapped_column(String(64))
    period_kind: Mapped[str] = mapped_column(String(16))  # day | month | quarter
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    # daily (the daily screen) | sample_max | p90_round | raa_quarterly | turbidity_tt | ...
    rule_code: Mapped[str] = mapped_column(String(32), server_default="daily")
    status: Mapped[str] = mapped_column(String(24))  # COMPLIANT|WARNING|NON_COMPLIANT|INSUFFICIENT_DATA
    statistic: Mapped[str] = mapped_column(String(32))  # max | mean | p90 ...
    statistic_value: Mapped[float | None] = mapped_column(Float)
    limit_value: Mapped[float] = mapped_column(Float)
    limit_kind: Mapped[str] = mapped_column(String(16))  # max | min
    unit: Mapped[str] = mapped_column(String(32))
    deviation_pct: Mapped[float | None] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(Text)
    citation: Mapped[str] = mapped_column(Text)
    # violation | investigation | advisory | treatment_technique_trigger; null on the daily screen
    consequence: Mapped[str | None] = mapped_column(String(32))
    confirmed: Mapped[bool | None] = mapped_column(Boolean)  # the limit confirmed from a primary text
    sample_count: Mapped[int] = mapped_column(Integer, default=0)
    excluded_count: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "municipality_id",
            "standard",
            "parameter",
            "period_kind",
            "period_start",
            "rule_code",
            "statistic",
            name="uq_compliance_results_period_rule",
        ),
    )


class ActionPlan(Base):
    """What people do about one result: steps, an owner, a due date, a status they update, notes.

    kind: violation (a NON_COMPLIANT result whose consequence is a violation or a treatment-technique
    trigger) | investigation (a WARNING or NON_COMPLIANT result whose consequence is investigation).
    status: open -> in_progress -> done, or cancelled; done and cancelled set `closed_at`.
    """

    __tablename__ = "action_plans"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    compliance_result_id: Mapped[int] = mapped_column(
        ForeignKey("compliance_results.id"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(16), server_default="violation")
    parameter: Mapped[str] = mapped_column(String(64))
    rule_code: Mapped[str] = mapped_column(String(32), server_default="daily")
    severity: Mapped[str | None] = mapped_column(String(16))  # low|medium|high|critical
    steps: Mapped[list] = mapped_column()
    owner: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|in_progress|done|cancelled
    notes: Mapped[list] = mapped_column(default=list, server_default=text("'[]'"))  # [{at, by, text}]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(
            "status in ('open', 'in_progress', 'done', 'cancelled')", name="ck_action_plans_status"
        ),
        CheckConstraint("kind in ('violation', 'investigation')", name="ck_action_plans_kind"),
    )


class Report(Base):
    """One rendered report file in object storage; a changed rerun adds a new revision."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    kind: Mapped[str] = mapped_column(String(32))  # daily_summary | monthly_compliance
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    format: Mapped[str] = mapped_column(String(8))  # json | csv | xlsx | pdf
    revision: Mapped[int] = mapped_column(Integer, default=1)
    is_amended: Mapped[bool] = mapped_column(Boolean, default=False)
    content_sha256: Mapped[str] = mapped_column(String(64))  # hash of the report's data
    object_url: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))  # hash of the file's bytes
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    emailed_to: Mapped[list | None] = mapped_column()
    emailed_at: Mapped[datetime | None] = mapped_column()
    email_url: Mapped[str | None] = mapped_column(String(1000))  # .eml copy when no SMTP

    __table_args__ = (
        UniqueConstraint("municipality_id", "kind", "period_start", "format", "revision"),
    )


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list] = mapped_column()  # ["*"] for every type
    secret: Mapped[str] = mapped_column(String(200))  # whsec_...; never printed
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column()
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The alerts it receives: those of this level, LOW | MEDIUM | HIGH | CRITICAL (migration 0009).
    min_severity: Mapped[str] = mapped_column(String(16), default="HIGH", server_default="HIGH")


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change that caused it."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_<ulid-ish>; webhook-id
    municipality_id: Mapped[str] = tenant_column()
    event_type: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    payload: Mapped[dict] = mapped_column()  # {"type", "timestamp", "data"}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event owed to one subscription; its attempts are in webhook_delivery_attempts."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|succeeded|dead
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("event_id", "subscription_id"),)


class WebhookDeliveryAttempt(Base):
    __tablename__ = "webhook_delivery_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text)  # first 1,000 characters
    error: Mapped[str | None] = mapped_column(Text)


class AuditLog(Base):
    """Append-only: triggers refuse UPDATE and DELETE (see the migration)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str | None] = mapped_column(ForeignKey("municipalities.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict] = mapped_column(default=dict)


class QcRun(Base):
    """One QC run over one municipality's local day: the configuration it ran with and its counts."""

    __tablename__ = "qc_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    day: Mapped[date] = mapped_column(Date)  # the local day whose readings were stored
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    config_version: Mapped[str] = mapped_column(String(64))
    config_sha256: Mapped[str] = mapped_column(String(64))
    config_json: Mapped[dict] = mapped_column()
    count_readings: Mapped[int] = mapped_column(Integer)
    count_good: Mapped[int] = mapped_column(Integer)
    count_not_evaluated: Mapped[int] = mapped_column(Integer)
    count_suspect: Mapped[int] = mapped_column(Integer)
    count_fail: Mapped[int] = mapped_column(Integer)
    count_missing: Mapped[int] = mapped_column(Integer)
    test_counts: Mapped[dict] = mapped_column()  # {"spike": {"3": n, "4": n}, ...}
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("municipality_id", "window_start", "config_sha256"),)


class ReadingQc(Base):
    """The flag of each QARTOD test of one reading, from the latest QC run that judged it."""

    __tablename__ = "readings_qc"

    # No foreign keys and no second index, like `readings` (migrations 0003 and 0005).
    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(primary_key=True)
    qc_run_id: Mapped[int] = mapped_column(Id)
    qc_gross_range: Mapped[int] = mapped_column(SmallInteger)
    qc_climatology: Mapped[int] = mapped_column(SmallInteger)
    qc_spike: Mapped[int] = mapped_column(SmallInteger)
    qc_rate_of_change: Mapped[int] = mapped_column(SmallInteger)
    qc_flat_line: Mapped[int] = mapped_column(SmallInteger)
    qc_gap: Mapped[int] = mapped_column(SmallInteger)
    qc_attenuated: Mapped[int] = mapped_column(SmallInteger)
    qc_tests: Mapped[str] = mapped_column(String(200))  # the tests that gave the worst flag


class DetectionLabel(Base):
    """What is known of a station's time: [starts_at, ends_at) was an event or was not.

    From a labelled file (`file:<name>`); operators' incident labels are read from `incidents`.
    """

    __tablename__ = "detection_labels"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    starts_at: Mapped[datetime] = mapped_column()  # `start`/`end` would be reserved words
    ends_at: Mapped[datetime] = mapped_column()  # exclusive
    is_event: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(300))  # file:<name> | incident:<id>
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_detection_labels_station_starts", "station_id", "starts_at"),)


class DetectorModel(Base):
    """One training of a station's learned detector; at most one per station is active."""

    __tablename__ = "detector_models"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)
    data_start: Mapped[datetime] = mapped_column()
    data_end: Mapped[datetime] = mapped_column()  # exclusive
    sensors: Mapped[list] = mapped_column()  # [{"sensor_id", "parameter"}] in feature order
    features: Mapped[list] = mapped_column()  # feature column names in the model's order
    post_process: Mapped[dict] = mapped_column()  # threshold, min_run, hold
    scores: Mapped[dict] = mapped_column()  # learned and statistical on the same held-out minutes
    description: Mapped[dict] = mapped_column()  # the model's class and settings, the labels used
    object_url: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored bytes; checked before loading
    size_bytes: Mapped[int] = mapped_column(Integer)
    training_seconds: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text)  # why it is (not) active


class Alert(Base):
    """A run of one sensor's anomalies at least `level` severe, at most the quiet period apart
    (tasks/anomalies/alerts.py); open until the quiet period has passed after its last anomaly."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    level: Mapped[str] = mapped_column(String(16))  # its anomalies are at least this severe
    severity: Mapped[str] = mapped_column(String(16))  # the worst of them
    status: Mapped[str] = mapped_column(String(16))  # open | resolved
    first_observed_at: Mapped[datetime] = mapped_column()
    last_observed_at: Mapped[datetime] = mapped_column()
    methods: Mapped[list] = mapped_column()  # the anomaly methods, sorted
    explanation: Mapped[str] = mapped_column(Text)  # of the worst anomaly
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()  # last anomaly + the quiet period

    __table_args__ = (
        UniqueConstraint("sensor_id", "level", "first_observed_at"),
        Index("ix_alerts_sensor_level_last", "sensor_id", "level", "last_observed_at"),
    )


class SensorOutage(Base):
    """A sensor silent for longer than its gap limit (tasks/maintenance/outages.py): from its last
    reading (or its installation, when it never reported) to its first reading back."""

    __tablename__ = "sensor_outages"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    municipality_id: Mapped[str] = tenant_column()
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    started_at: Mapped[datetime] = mapped_column()  # the last reading, else the installation
    last_reading_at: Mapped[datetime | None] = mapped_column()  # null: it never reported
    gap_limit_seconds: Mapped[float] = mapped_column(Float)
    detected_at: Mapped[datetime] = mapped_column()  # the data clock when it was found
    ended_at: Mapped[datetime | None] = mapped_column()  # the first reading back; null while silent
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "uq_sensor_outages_open",
            "sensor_id",
            unique=True,
            postgresql_where=text("ended_at is null"),
            sqlite_where=text("ended_at is null"),
        ),
    )
