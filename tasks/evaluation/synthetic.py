"""Score what ships (QARTOD flags and every anomaly detector) on the sample generator's labelled faults,
per kind of fault.

The generator (`tasks.sample.signals.simulate_online`) writes five kinds of labelled fault into
otherwise clean readings: `contamination` (turbidity, chlorine, conductivity and pH move together
for 20-120 minutes), `spike` (one reading), `stuck` (a sensor repeats its value for 2-6 hours),
`outage` (a station sends nothing for 30-180 minutes), `drift` (a slow drift from some time to
the end) and `fouling` (a probe that answers late and reads ever lower (chlorine) or higher
(turbidity) from some time to the end). The readings are simulated in memory, flagged by
`tasks.quality.qc.qc_flags` and judged by `tasks.anomalies.detectors.find_anomalies` exactly as
the nightly flow does, with the shipped configuration; nothing is tuned here.

A detection is a reading flagged suspect or fail (3, 4) or missing (9) by QC, or an anomaly severe
enough to open an incident (`OPEN_AT`). A short fault (all but drift and fouling) is found when one of its
sensors has a detection from its start to `TOLERANCE` after its end (an outage has no readings:
the reading after it carries the gap flag). A detection is a false alarm when no fault of its
station covers it (a drift or fouling covers only its own sensor); false alarms on one sensor less than
`TOLERANCE` apart count as one false-alarm event.

Drift and fouling are slow by nature and are the sensor-health score's to find
(`tasks.maintenance.health`, run once per simulated day on the days so far, as the nightly flow
does): one is found on the first day its sensor is judged MEDIUM risk or worse, and the sensor-days
judged so on sensors with no labelled fault are counted as false maintenance calls.

Incidents are scored apart (`score_incidents`): the anomalies grouped by `plan_incidents` over the
whole run, as the nightly flow would day by day. An incident overlaps a fault when its first to
last anomaly meets the fault's window (plus `TOLERANCE`) at the fault's station (contamination,
outage) or on one of its sensors (the others). Precision is the share of incidents overlapping some
fault; recall, per kind, the share of faults an incident overlaps; the headline recall is over the
kinds incidents are for (`INCIDENT_KINDS`, water-quality events): a spike is a one-reading blip
that by design stays an anomaly, a stuck sensor and an outage are QC's (flat line, gap) and drift
and fouling the health score's, and their recall is shown but not asked for. Beside it, the bare
baseline: one incident per sensor and run of findings that reaches HIGH (the rule before consensus).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tasks.anomalies.detectors import SEVERITY_RANK, find_anomalies
from tasks.anomalies.incidents import INCIDENT_SCHEMA, OPEN_AT, QUIET_PERIOD, plan_incidents
from tasks.maintenance.health import sensor_health
from tasks.parameters import parameter
from tasks.quality.qc import qc_flags
from tasks.sample.catalog import ONLINE_PARAMETERS, layout_for
from tasks.sample.generate import local_midnights_us, readings_frame
from tasks.sample.signals import US, simulate_online

FAULT_KINDS = ("contamination", "spike", "stuck", "outage", "drift", "fouling")
SLOW_KINDS = ("drift", "fouling")  # the sensor-health score's to find, day by day
STATION_KINDS = ("contamination", "outage")  # faults of a whole station, not of one sensor
INCIDENT_KINDS = ("contamination",)  # the faults incidents are for: water-quality events
TOLERANCE = timedelta(minutes=60)
DETECTING_FLAGS = (3, 4, 9)  # suspect, fail, missing
SERVICE_RISKS = ("MEDIUM", "HIGH", "CRITICAL")  # service within 30 days or sooner
DEFAULT_START = date(2026, 3, 2)  # a Monday, clear of daylight-saving changes
UTC_US = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class SyntheticSample:
    """Simulated readings of one municipality with the faults the generator labelled."""

    readings: pl.DataFrame  # sensor_id, station_id, parameter, unit, observed_at, value
    sensors: pl.DataFrame  # sensor_id, station_id, parameter, unit
    faults: pl.DataFrame  # fault_id, kind, station_id, sensor_id, start, end: one row per sensor
    start: datetime
    end: datetime
    settings: dict


def simulate(
    days: int = 14, stations: int = 3, seed: int = 7, interval_seconds: int = 60, start: date = DEFAULT_START
) -> SyntheticSample:
    """The first sample municipality's online readings for `days` days, simulated in memory."""
    layout = layout_for(0, stations)
    day_starts = local_midnights_us(start, days, layout.town.timezone)
    times_us = np.arange(day_starts[0], day_starts[-1], interval_seconds * US, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]).spawn(4)[1])
    sim = simulate_online(layout, times_us, interval_seconds, rng)
    units = {name: parameter(name).unit for name in ONLINE_PARAMETERS}
    readings = readings_frame(layout, times_us, sim.values, sim.labelled).select(
        "sensor_id",
        "station_id",
        "parameter",
        pl.col("parameter").replace_strict(units, return_dtype=pl.String).alias("unit"),
        "observed_at",
        "value",
    )
    # each sensor's cadence, as its registry entry gives it: QC's expected interval follows it
    sensors = (
        readings.select("sensor_id", "station_id", "parameter", "unit")
        .unique()
        .sort("sensor_id")
        .with_columns(pl.lit(float(interval_seconds)).alias("interval_seconds"))
    )
    faults = (
        sim.labels.with_row_index("fault_id")
        .with_columns(pl.col("sensor_ids").str.split(";").alias("sensor_id"))
        .explode("sensor_id")
        .select("fault_id", "kind", "station_id", "sensor_id", "start", "end")
        .with_columns(pl.col("start", "end").cast(UTC_US))
    )
    zone = ZoneInfo(layout.town.timezone)
    return SyntheticSample(
        readings,
        sensors,
        faults,
        datetime.fromtimestamp(day_starts[0] / US, UTC),
        datetime.fromtimestamp(day_starts[-1] / US, UTC),
        {
            "municipality": layout.id,
            "timezone": str(zone),
            "start": start.isoformat(),
            "days": days,
            "stations": stations,
            "sensors": sensors.height,
            "interval_seconds": interval_seconds,
            "seed": seed,
        },
    )


def detections(sample: SyntheticSample) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every detection of the shipped QC and detectors: `sensor_id`, `observed_at`, `method`
    (`qc:<test>` for a flag, the detector's name for an anomaly); and the flagged readings."""
    flagged = qc_flags(sample.readings, sample.sensors)
    found = find_anomalies(flagged, sample.sensors, sample.start, sample.end)
    return detections_of(flagged, found), flagged


def detections_of(flagged: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    """The QC flags of 3, 4 or 9 and the anomalies of at least `OPEN_AT` as detections."""
    qc = (
        flagged.filter(pl.col("qc_flag").is_in(DETECTING_FLAGS))
        .select(
            "sensor_id",
            "observed_at",
            pl.col("qc_tests").cast(pl.String).str.split(",").alias("method"),
        )
        .explode("method")
        .with_columns(pl.format("qc:{}", "method").alias("method"))
    )
    severe = found.filter(
        pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8) >= SEVERITY_RANK[OPEN_AT]
    )
    return pl.concat([qc, severe.select("sensor_id", "observed_at", "method")])


def anomaly_rows(sample: SyntheticSample, found: pl.DataFrame) -> pl.DataFrame:
    """`find_anomalies` output as stored anomaly rows: an `id` (in time order) and the `station_id`."""
    return (
        found.join(sample.sensors.select("sensor_id", "station_id"), on="sensor_id", how="inner")
        .sort("observed_at", "sensor_id", "method")
        .with_row_index("id")
        .with_columns(pl.col("id").cast(pl.Int64))
    )


def incidents_of(sample: SyntheticSample, anomalies: pl.DataFrame) -> pl.DataFrame:
    """The incidents `plan_incidents` makes of the whole run: `incident`, `station_id`, `sensor_ids`
    (of the anomalies it holds), `first_observed_at`, `last_observed_at`, `severity`."""
    plan = plan_incidents(anomalies, pl.DataFrame(schema=INCIDENT_SCHEMA), QUIET_PERIOD, sample.sensors)
    members = anomalies.select(pl.col("id").alias("anomaly_id"), "sensor_id")
    held = (
        plan.with_row_index("incident")
        .select("incident", pl.col("anomaly_ids").alias("anomaly_id"))
        .explode("anomaly_id")
        .join(members, on="anomaly_id")
        .group_by("incident")
        .agg(pl.col("sensor_id").unique().sort().alias("sensor_ids"))
    )
    return (
        plan.with_row_index("incident")
        .join(held, on="incident")
        .select("incident", "station_id", "sensor_ids", "first_observed_at", "last_observed_at", "severity")
        .sort("incident")
    )


def sensor_run_incidents(anomalies: pl.DataFrame, quiet_period: timedelta = QUIET_PERIOD) -> pl.DataFrame:
    """The bare baseline: one incident per sensor and run of its findings (any severity, gaps of at
    most `quiet_period`, a limit breach apart from the rest) whose worst finding is at least HIGH,
    as severe as that finding."""
    kind = pl.when(pl.col("method") == "limit_breach").then(pl.lit("limit")).otherwise(pl.lit("anomaly"))
    gap = pl.col("observed_at").diff().over("sensor_id", "kind")
    return (
        anomalies.with_columns(kind.alias("kind"))
        .sort("sensor_id", "kind", "observed_at")
        .with_columns((gap.is_null() | (gap > quiet_period)).cum_sum().alias("incident"))
        .with_columns(pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8).alias("rank"))
        .group_by("incident")
        .agg(
            pl.col("station_id").first(),
            pl.col("sensor_id").unique().alias("sensor_ids"),
            pl.col("observed_at").min().alias("first_observed_at"),
            pl.col("observed_at").max().alias("last_observed_at"),
            pl.col("rank").max(),
        )
        .filter(pl.col("rank") >= SEVERITY_RANK["HIGH"])
        .with_columns(
            pl.col("rank").replace_strict({r: s for s, r in SEVERITY_RANK.items()}).alias("severity")
        )
        .drop("rank")
        .sort("incident")
    )


def score_incidents(
    sample: SyntheticSample, incidents: pl.DataFrame, tolerance: timedelta = TOLERANCE
) -> dict:
    """Incidents against the labelled faults: precision, recall per kind and over `INCIDENT_KINDS`,
    incidents per fault, the severities, and the severity each contamination reached (the worst of
    the incidents overlapping it; `none` when none does)."""
    faults = sample.faults
    incidents = incidents.select(
        "incident", "station_id", "sensor_ids", "first_observed_at", "last_observed_at", "severity"
    )
    span = [
        "incident",
        "fault_id",
        "kind",
        "severity",
        "first_observed_at",
        "last_observed_at",
        "start",
        "end",
    ]
    on_sensor = (
        incidents.explode("sensor_ids")
        .rename({"sensor_ids": "sensor_id"})
        .join(faults.filter(~pl.col("kind").is_in(STATION_KINDS)), on="sensor_id")
        .select(span)
    )
    on_station = incidents.join(
        faults.filter(pl.col("kind").is_in(STATION_KINDS)).unique("fault_id").drop("sensor_id"),
        on="station_id",
    ).select(span)
    overlaps = (
        pl.concat([on_sensor, on_station])
        .filter(
            pl.col("first_observed_at") <= pl.col("end") + tolerance,
            pl.col("last_observed_at") >= pl.col("start"),
        )
        .select("incident", "fault_id", "kind", "severity")
        .unique()
    )
    per_fault = faults.group_by("fault_id").agg(pl.col("kind").first())
    kinds = {}
    for kind in FAULT_KINDS:
        count = per_fault.filter(pl.col("kind") == kind).height
        met = overlaps.filter(pl.col("kind") == kind)
        kinds[kind] = {
            "faults": count,
            "overlapped": met["fault_id"].n_unique(),
            "recall": met["fault_id"].n_unique() / count if count else None,
            "incidents": met["incident"].n_unique(),
        }
    wanted = per_fault.filter(pl.col("kind").is_in(INCIDENT_KINDS)).height
    recalled = overlaps.filter(pl.col("kind").is_in(INCIDENT_KINDS))["fault_id"].n_unique()
    reached = (
        per_fault.filter(pl.col("kind") == "contamination")
        .join(
            overlaps.with_columns(
                pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8).alias("r")
            )
            .group_by("fault_id")
            .agg(pl.col("r").max()),
            on="fault_id",
            how="left",
        )
        .with_columns(
            pl.col("r")
            .replace_strict({r: s for s, r in SEVERITY_RANK.items()}, default="none")
            .alias("severity")
        )
    )
    severities = dict(incidents["severity"].value_counts().iter_rows())
    n = incidents.height
    lowest = reached["r"].min() if reached.height else None
    return {
        "incidents": n,
        "precision": overlaps["incident"].n_unique() / n if n else None,
        "recall": recalled / wanted if wanted else None,
        "recall_kinds": list(INCIDENT_KINDS),
        "faults": per_fault.height,
        "incidents_per_fault": n / per_fault.height if per_fault.height else None,
        "severities": {s: severities.get(s, 0) for s in SEVERITY_RANK},
        "critical_share": severities.get("CRITICAL", 0) / n if n else None,
        "contamination_severities": {
            s: reached.filter(pl.col("severity") == s).height for s in (*SEVERITY_RANK, "none")
        },
        "contamination_lowest_severity": (
            "none"
            if reached["r"].null_count()
            else {r: s for s, r in SEVERITY_RANK.items()}[lowest]
            if lowest is not None
            else None
        ),
        "median_minutes": (
            (incidents["last_observed_at"] - incidents["first_observed_at"]).dt.total_minutes().median()
            if n
            else None
        ),
        "kinds": kinds,
    }


def health_calls(sample: SyntheticSample, flagged: pl.DataFrame) -> pl.DataFrame:
    """`sensor_id`, `day` and `risk_level` of every sensor on every simulated day, each day judged
    on the readings up to its end."""
    tz = sample.settings["timezone"]
    ranges = {name: parameter(name) for name in ONLINE_PARAMETERS}
    sensors = sample.sensors.with_columns(
        pl.col("parameter").replace_strict({n: p.min for n, p in ranges.items()}).alias("valid_min"),
        pl.col("parameter").replace_strict({n: p.max for n, p in ranges.items()}).alias("valid_max"),
        pl.lit(sample.start - timedelta(days=365)).cast(UTC_US).alias("installed_at"),
        pl.lit(sample.start - timedelta(days=30)).cast(UTC_US).alias("last_calibrated_at"),
    )
    history = flagged.select("sensor_id", "observed_at", "value", "qc_flag")
    first = date.fromisoformat(sample.settings["start"])
    days = [first + timedelta(days=k) for k in range(sample.settings["days"])]
    return pl.concat(
        [sensor_health(history, sensors, day, tz).select("sensor_id", "day", "risk_level") for day in days]
    )


def _covered(
    found: pl.DataFrame, faults: pl.DataFrame, on: str, tolerance: timedelta = TOLERANCE
) -> pl.DataFrame:
    """Rows of `found` joined to the faults whose window (plus `tolerance`) holds them, matched on `on`."""
    return found.join(faults, on=on, how="inner").filter(
        pl.col("observed_at") >= pl.col("start"), pl.col("observed_at") <= pl.col("end") + tolerance
    )


def _kind_figures(per_fault: pl.DataFrame, delay_name: str) -> dict:
    caught = per_fault.filter(pl.col("first").is_not_null())
    methods = caught.select(pl.col("methods").explode()).to_series().value_counts(sort=True)
    return {
        "faults": per_fault.height,
        "found": caught.height,
        "found_share": caught.height / per_fault.height if per_fault.height else None,
        delay_name: caught["delay"].median() if caught.height else None,
        "methods": dict(methods.iter_rows()),
    }


def score_slow(sample: SyntheticSample, calls: pl.DataFrame, kind: str) -> dict:
    """Slow faults of `kind` found by the health score, the days it took, and the false
    maintenance calls (the same for every kind)."""
    tz = sample.settings["timezone"]
    serviced = calls.filter(pl.col("risk_level").is_in(SERVICE_RISKS))
    drifts = sample.faults.filter(pl.col("kind") == kind).with_columns(
        pl.col("start").dt.convert_time_zone(tz).dt.date().alias("first_day")
    )
    per_fault = (
        drifts.join(serviced, on="sensor_id", how="left")
        .with_columns(pl.when(pl.col("day") >= pl.col("first_day")).then(pl.col("day")).alias("day"))
        .group_by("fault_id")
        .agg(
            pl.col("day").min().alias("first"),
            pl.col("first_day").first(),
            pl.col("risk_level").filter(pl.col("day").is_not_null()).unique().alias("methods"),
        )
        .with_columns((pl.col("first") - pl.col("first_day")).dt.total_days().alias("delay"))
    )
    figures = _kind_figures(per_fault, "median_days_to_detection")
    figures["methods"] = {f"health:{risk}": n for risk, n in figures["methods"].items()}
    # A call is false on a sensor with no drift, fouling or stuck fault, on a day with no
    # contamination or outage at its station.
    faulty = sample.faults.filter(pl.col("kind").is_in([*SLOW_KINDS, "stuck"]))["sensor_id"].unique()
    station_days = (
        sample.faults.filter(pl.col("kind").is_in(["contamination", "outage"]))
        .select("station_id", pl.col("start").dt.convert_time_zone(tz).dt.date().alias("day"))
        .unique()
    )
    false_calls = (
        serviced.filter(~pl.col("sensor_id").is_in(faulty.implode()))
        .join(sample.sensors.select("sensor_id", "station_id"), on="sensor_id")
        .join(station_days, on=["station_id", "day"], how="anti")
    )
    figures["false_maintenance_calls"] = false_calls.height
    figures["healthy_sensor_days"] = calls.filter(~pl.col("sensor_id").is_in(faulty.implode())).height
    return figures


def score_faults(sample: SyntheticSample, found: pl.DataFrame, calls: pl.DataFrame) -> dict:
    """Per kind of fault: how many were found, how soon and by which methods (and for the short ones
    the point recall); then the false-alarm events per sensor-day and the point precision."""
    faults, readings = sample.faults, sample.readings
    found = found.join(sample.sensors.select("sensor_id", "station_id"), on="sensor_id", how="inner")
    short = faults.filter(~pl.col("kind").is_in(SLOW_KINDS))
    hits = _covered(found, short, "sensor_id")
    per_fault = (
        short.group_by("fault_id", "kind")
        .agg(pl.col("start").min())
        .join(
            hits.group_by("fault_id").agg(
                pl.col("observed_at").min().alias("first"), pl.col("method").unique().alias("methods")
            ),
            on="fault_id",
            how="left",
        )
        .with_columns(((pl.col("first") - pl.col("start")).dt.total_seconds() / 60).alias("delay"))
    )
    # A reading is labelled when a short fault of its own sensor covers it.
    labelled = (
        _covered(readings.select("sensor_id", "observed_at"), short, "sensor_id", timedelta(0))
        .select("sensor_id", "observed_at", "kind")
        .unique(["sensor_id", "observed_at"])
    )
    alarmed = found.select("sensor_id", "observed_at").unique()
    recalled = labelled.join(alarmed, on=["sensor_id", "observed_at"], how="semi")
    kinds = {}
    for kind in (k for k in FAULT_KINDS if k not in SLOW_KINDS):
        kinds[kind] = _kind_figures(per_fault.filter(pl.col("kind") == kind), "median_minutes_to_detection")
        points = labelled.filter(pl.col("kind") == kind).height
        kinds[kind]["point_recall"] = (
            recalled.filter(pl.col("kind") == kind).height / points if points else None
        )
    for kind in SLOW_KINDS:
        kinds[kind] = score_slow(sample, calls, kind)

    drifts = faults.filter(pl.col("kind").is_in(SLOW_KINDS))
    explained = pl.concat(
        [
            _covered(found, drifts, "sensor_id").select(found.columns),
            _covered(found, short.drop("sensor_id"), "station_id").select(found.columns),
        ]
    )
    false = found.join(explained, on=found.columns, how="anti")
    events = false.unique(["sensor_id", "observed_at"]).sort("sensor_id", "observed_at")
    new_event = (pl.col("sensor_id") != pl.col("sensor_id").shift(1)) | (
        pl.col("observed_at").diff() > TOLERANCE
    )
    false_events = events.select(new_event.fill_null(True).sum()).item()
    sensor_days = sample.sensors.height * sample.settings["days"]
    on_drift = _covered(alarmed, drifts, "sensor_id").select(alarmed.columns)
    judged = alarmed.join(on_drift, on=alarmed.columns, how="anti")
    precise = judged.join(labelled, on=["sensor_id", "observed_at"], how="semi").height
    return {
        "settings": sample.settings,
        "readings": readings.height,
        "kinds": kinds,
        "detections": found.height,
        "false_alarm_events": false_events,
        "false_alarm_events_per_sensor_day": false_events / sensor_days if sensor_days else None,
        "false_alarm_methods": dict(false["method"].value_counts(sort=True).iter_rows()),
        "point_precision": precise / judged.height if judged.height else None,
        "tolerance_minutes": int(TOLERANCE.total_seconds() // 60),
    }


def synthetic_report(days: int = 14, stations: int = 3, seed: int = 7, interval_seconds: int = 60) -> dict:
    """Simulate (readings every `interval_seconds`), detect with the shipped configuration, and score
    per kind of fault; then the incidents (`incidents`) beside the bare baseline's (`incidents_baseline`)."""
    sample = simulate(days=days, stations=stations, seed=seed, interval_seconds=interval_seconds)
    flagged = qc_flags(sample.readings, sample.sensors)
    found = find_anomalies(flagged, sample.sensors, sample.start, sample.end)
    report = score_faults(sample, detections_of(flagged, found), health_calls(sample, flagged))
    anomalies = anomaly_rows(sample, found)
    report["incidents"] = score_incidents(sample, incidents_of(sample, anomalies))
    report["incidents_baseline"] = score_incidents(sample, sensor_run_incidents(anomalies))
    return report
