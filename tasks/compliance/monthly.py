"""A municipality's month judged the way regulators judge it, read through the aggregates.

A month of one-minute readings is tens of millions of rows, so the rules read:
- the hourly aggregates for the per-sample rules of online sensors (a month's maximum is the
  maximum of its hours' maxima; an exceedance is listed per hour, with that hour's extreme),
  the nitrate/nitrite sum (hourly means) and the data coverage and daily series of the report;
- the daily aggregates of the last twelve months for the running annual averages;
- every reading only of the sensors whose rules need each sample: lab sensors (sampling rounds,
  confirmation samples, detections) and the online sensors of the turbidity rules.

The limits are those in force on the month's first day: a value that changes inside a month
applies from the next month's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection

from tasks.calendar import local_day_bounds
from tasks.compliance.daily import load_municipality
from tasks.compliance.periods import sql_time
from tasks.compliance.rules import PERIOD_READING_SCHEMA, judge_period
from tasks.compliance.rules_samples import CONFIRMATION_HOURS
from tasks.compliance.standards import load_standards
from tasks.database import load_sql, read_frame

UTC_TIME = pl.Datetime("us", "UTC")
PERIOD_KIND = "month"
HISTORY_MONTHS = 12
# Rules that judge every reading of an online sensor: its readings are read one by one. The rules
# of lab samples (sampling rounds, confirmation samples, detections) read the lab sensors, which
# are always read one by one; online sensors' other rules read their hourly extremes.
RAW_RULES = frozenset({"turbidity_tt", "turbidity_consecutive"})
# Rules judged from the hourly aggregates' extremes when a sensor's readings are not read one by one.
SAMPLE_RULES = frozenset({"sample_max", "sample_min", "sample_range", "indicator"})

SENSOR_SCHEMA = {
    "sensor_id": pl.String,
    "station_id": pl.String,
    "station": pl.String,
    "parameter": pl.String,
    "unit": pl.String,
    "kind": pl.String,
    "interval_seconds": pl.Int64,
    "installed_at": UTC_TIME,
}
AGGREGATE_SCHEMA = {
    "sensor_id": pl.String,
    "bucket_start": UTC_TIME,
    "count_readings": pl.Int64,
    "count_excluded": pl.Int64,
    "value_mean": pl.Float64,
    "value_min": pl.Float64,
    "value_max": pl.Float64,
}
RAW_SCHEMA = {"sensor_id": pl.String, "observed_at": UTC_TIME, "value": pl.Float64, "qc_flag": pl.Int64}


def month_of(value: date | str) -> date:
    """The first day of the month of a date, or of a `YYYY-MM` (or `YYYY-MM-DD`) text."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value if len(value) > 7 else f"{value}-01")
        except ValueError:
            raise ValueError(f"{value!r} is not a month: give it as YYYY-MM, e.g. 2026-10") from None
    return value.replace(day=1)


def month_last_day(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def month_bounds(month: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants of the local month [first midnight, next month's first midnight)."""
    start, _ = local_day_bounds(month, timezone)
    end, _ = local_day_bounds(month_last_day(month) + timedelta(days=1), timezone)
    return start, end


@dataclass(frozen=True)
class MonthInputs:
    """What the month's judgement and report read, all of one municipality."""

    municipality: dict
    month: date
    sensors: pl.DataFrame  # SENSOR_SCHEMA
    hourly: pl.DataFrame  # AGGREGATE_SCHEMA of the month, hour buckets
    daily: pl.DataFrame  # AGGREGATE_SCHEMA of the twelve months ending with this one, day buckets
    raw: pl.DataFrame  # RAW_SCHEMA of the month, of the sensors in `raw_sensors`
    limits: pl.DataFrame  # standards.LIMIT_SCHEMA rows in force on the month's first day
    # RAW_SCHEMA of the lab sensors in the 24 hours after the month: confirmation samples only
    followups: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RAW_SCHEMA))

    @property
    def last_day(self) -> date:
        return month_last_day(self.month)

    @property
    def timezone(self) -> str:
        return self.municipality["timezone"]


def raw_sensors(sensors: pl.DataFrame, limits: pl.DataFrame) -> list[str]:
    """The sensors whose every reading a rule needs: lab sensors, and the online sensors of
    parameters that a limit judges reading by reading (the turbidity rules)."""
    per_sample = limits.filter(pl.col("rule").is_in(list(RAW_RULES)))["parameter"].unique().to_list()
    chosen = sensors.filter((pl.col("kind") == "lab") | pl.col("parameter").is_in(per_sample))
    return chosen["sensor_id"].to_list()


def load_month(conn: Connection, municipality_id: str, month: date) -> MonthInputs:
    """Read one municipality's month: sensors, hourly and daily aggregates, and the readings of
    the sensors whose rules need every sample. ValueError for an unknown municipality."""
    town = load_municipality(conn, municipality_id)
    month = month_of(month)
    start, end = month_bounds(month, town.timezone)
    history_start, _ = month_bounds(_months_before(month, HISTORY_MONTHS - 1), town.timezone)
    standards = [s.upper() for s in (town.standards or [])]
    limits = load_standards(month, standards)
    sensors = read_frame(
        conn, load_sql("load_period_sensors"), {"municipality_id": municipality_id}, SENSOR_SCHEMA
    )

    def aggregates(resolution: str, since: datetime) -> pl.DataFrame:
        params = {
            "municipality_id": municipality_id,
            "resolution": resolution,
            "start": sql_time(conn, since),
            "end": sql_time(conn, end),
        }
        return read_frame(conn, load_sql("read_period_aggregates"), params, AGGREGATE_SCHEMA)

    def readings(sensor_ids: list[str], since: datetime, until: datetime) -> pl.DataFrame:
        if not sensor_ids:
            return pl.DataFrame(schema=RAW_SCHEMA)
        params = {
            "municipality_id": municipality_id,
            "sensor_ids": sensor_ids,
            "start": sql_time(conn, since),
            "end": sql_time(conn, until),
        }
        return read_frame(conn, load_sql("read_period_readings"), params, RAW_SCHEMA)

    labs = sensors.filter(pl.col("kind") == "lab")["sensor_id"].to_list()
    followed_until = end + timedelta(hours=CONFIRMATION_HOURS)
    return MonthInputs(
        municipality={
            "id": town.id,
            "name": town.name,
            "timezone": town.timezone,
            "standards": standards,
            "regulator_emails": list(town.regulator_emails or []),
        },
        month=month,
        sensors=sensors,
        hourly=aggregates("hour", start),
        daily=aggregates("day", history_start),
        raw=readings(raw_sensors(sensors, limits), start, end),
        limits=limits,
        followups=readings(labs, end, followed_until),
    )


def _months_before(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def as_period_readings(raw: pl.DataFrame, sensors: pl.DataFrame) -> pl.DataFrame:
    """RAW_SCHEMA readings as PERIOD_READING_SCHEMA rows, with their sensors' station and kind."""
    sensors = sensors.select("sensor_id", "station_id", "parameter", "kind")
    return (
        raw.join(sensors, on="sensor_id", how="inner")
        .select(
            "station_id", "sensor_id", "parameter", "kind", pl.col("observed_at").alias("time"), "value",
            "qc_flag",
        )  # fmt: skip
        .cast(PERIOD_READING_SCHEMA)
    )


def period_readings(inputs: MonthInputs) -> pl.DataFrame:
    """PERIOD_READING_SCHEMA rows for the rules: each reading of the raw sensors, and for every
    other sensor two rows per hour, its minimum and its maximum (usable readings only; an hour
    whose readings QC all excluded has none)."""
    sensors = inputs.sensors.select("sensor_id", "station_id", "parameter", "kind")
    raw = as_period_readings(inputs.raw, inputs.sensors)
    chosen = raw_sensors(inputs.sensors, inputs.limits)
    hours = (
        inputs.hourly.filter(~pl.col("sensor_id").is_in(chosen))
        .filter(pl.col("count_readings") > pl.col("count_excluded"))
        .join(sensors, on="sensor_id", how="inner")
    )
    extremes = pl.concat(
        [
            hours.select(
                "station_id",
                "sensor_id",
                "parameter",
                "kind",
                pl.col("bucket_start").alias("time"),
                pl.col(column).alias("value"),
                pl.lit(1, pl.Int64).alias("qc_flag"),
            )
            for column in ("value_min", "value_max")
        ]
    )
    return pl.concat([raw, extremes]).cast(PERIOD_READING_SCHEMA).select(list(PERIOD_READING_SCHEMA))


def history(inputs: MonthInputs) -> pl.DataFrame:
    """Monthly sums and counts of usable readings per station and parameter over the twelve
    months ending with this one, from the daily aggregates (months of the local calendar)."""
    return (
        inputs.daily.filter(pl.col("count_readings") > pl.col("count_excluded"))
        .join(inputs.sensors.select("sensor_id", "station_id", "parameter"), on="sensor_id", how="inner")
        .with_columns(
            month=pl.col("bucket_start").dt.convert_time_zone(inputs.timezone).dt.date().dt.month_start(),
            usable=pl.col("count_readings") - pl.col("count_excluded"),
        )
        .group_by("station_id", "parameter", "month")
        .agg(
            value_sum=(pl.col("value_mean") * pl.col("usable")).sum(),
            value_count=pl.col("usable").sum().cast(pl.Int64),
            excluded_count=pl.col("count_excluded").sum().cast(pl.Int64),
        )
        .sort("station_id", "parameter", "month")
    )


def measured_parameters(inputs: MonthInputs) -> list[str]:
    return sorted(inputs.sensors["parameter"].unique().to_list())


def judge_month(inputs: MonthInputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every limit in force judged over the month by its rule: (results, exceedances).

    For the per-sample rules of sensors read through their hourly aggregates, the sample and
    exclusion counts are the month's readings (from the aggregates), not the hours."""
    results, exceedances = judge_period(
        period_readings(inputs),
        history(inputs),
        inputs.limits,
        measured_parameters(inputs),
        inputs.month,
        inputs.last_day,
        followups=as_period_readings(inputs.followups, inputs.sensors),
    )
    chosen = raw_sensors(inputs.sensors, inputs.limits)
    counts = (
        inputs.hourly.filter(~pl.col("sensor_id").is_in(chosen))
        .join(inputs.sensors.select("sensor_id", "parameter"), on="sensor_id", how="inner")
        .group_by("parameter")
        .agg(
            _usable=(pl.col("count_readings") - pl.col("count_excluded")).sum().cast(pl.Int64),
            _excluded=pl.col("count_excluded").sum().cast(pl.Int64),
        )
    )
    by_aggregates = pl.col("rule_code").is_in(list(SAMPLE_RULES)) & pl.col("_usable").is_not_null()
    results = (
        results.join(counts, on="parameter", how="left")
        .with_columns(
            sample_count=pl.when(by_aggregates).then("_usable").otherwise("sample_count"),
            excluded_count=pl.when(by_aggregates).then("_excluded").otherwise("excluded_count"),
        )
        .drop("_usable", "_excluded")
    )
    return results, exceedances


def coverage(inputs: MonthInputs) -> pl.DataFrame:
    """Per sensor: readings expected (online sensors with a cadence), received and excluded by
    QC, and the coverage in percent of expected; sensors with no reading are listed with 0."""
    start, end = month_bounds(inputs.month, inputs.timezone)
    seconds = (end - start).total_seconds()
    received = inputs.hourly.group_by("sensor_id").agg(
        received_count=pl.col("count_readings").sum().cast(pl.Int64),
        excluded_count=pl.col("count_excluded").sum().cast(pl.Int64),
    )
    expected = pl.when((pl.col("kind") == "online") & (pl.col("interval_seconds") > 0)).then(
        (pl.lit(seconds) / pl.col("interval_seconds")).floor().cast(pl.Int64)
    )
    return (
        inputs.sensors.join(received, on="sensor_id", how="left")
        .with_columns(pl.col("received_count", "excluded_count").fill_null(0), expected_count=expected)
        .select(
            "station",
            "sensor_id",
            "parameter",
            "expected_count",
            "received_count",
            "excluded_count",
            (100 * pl.col("received_count") / pl.col("expected_count")).round(2).alias("coverage_pct"),
        )
        .sort("station", "sensor_id")
    )


def daily_series(inputs: MonthInputs) -> pl.DataFrame:
    """Per parameter and local day, over every sensor: the mean of usable readings, their
    minimum and maximum (from the hourly aggregates)."""
    usable = pl.col("count_readings") - pl.col("count_excluded")
    return (
        inputs.hourly.filter(usable > 0)
        .join(inputs.sensors.select("sensor_id", "parameter", "unit"), on="sensor_id", how="inner")
        .with_columns(day=pl.col("bucket_start").dt.convert_time_zone(inputs.timezone).dt.date())
        .group_by("parameter", "unit", "day")
        .agg(
            value_mean=(pl.col("value_mean") * usable).sum() / usable.sum(),
            value_min=pl.col("value_min").min(),
            value_max=pl.col("value_max").max(),
        )
        .sort("parameter", "day")
    )


def limit_lines(limits: pl.DataFrame, parameters: list[str]) -> pl.DataFrame:
    """The horizontal lines of each parameter's chart: every limit of every standard."""
    frame = limits.filter(pl.col("parameter").is_in(parameters))
    sides = [
        frame.filter(pl.col(f"limit_{side}").is_not_null()).select(
            "parameter",
            "standard",
            pl.lit(side).alias("limit_kind"),
            pl.col(f"limit_{side}").alias("limit"),
            "unit",
            "label",
        )
        for side in ("max", "min")
    ]
    return pl.concat(sides).unique().sort("parameter", "standard", "limit_kind", "limit")
