"""Write a seeded, realistic sample inbox: registries, readings, lab samples and true labels.

Layout per municipality (keys below the inbox root):
  <id>/registry.yaml
  <id>/readings/<id>-<local date>.csv | .csv.gz | .parquet   one file per local day
  <id>/lab/<id>-<local date>.csv
  <id>/labels/events.csv     event_id, municipality_id, station_id, sensor_ids, kind, start, end
  <id>/labels/bad_rows.csv   file, row, sensor_id, observed_at, kind (rows the gate must quarantine)
CSV timestamps are ISO-8601 with an offset (`Z`, or the local offset for some towns); Parquet
files store `observed_at` as timestamp[us, UTC].
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tasks.parameters import parameter
from tasks.sample.catalog import (
    ONLINE_PARAMETERS,
    Layout,
    layout_for,
    registry_document,
    registry_yaml,
)
from tasks.sample.defects import BAD_KINDS, inject_bad_rows
from tasks.sample.lab import simulate_lab
from tasks.sample.signals import US, simulate_online
from tasks.storage import ObjectStore

FILE_FORMATS = ("csv", "csv.gz", "parquet")
UNICODE_UNITS = {"uS/cm": "µS/cm", "degC": "°C"}
EXPECTED_YIELD = 0.985  # share of scheduled readings not lost to outages and dropouts


@dataclass(frozen=True)
class MunicipalitySample:
    municipality_id: str
    readings: int  # good online readings written (what should load)
    bad_rows: dict[str, int]  # injected rows the quality gate should quarantine, by kind
    lab_samples: int
    files_written: int
    labelled_events: int
    readings_files: tuple[str, ...] = ()
    interval_seconds: int = 60  # between its online readings

    @property
    def bad_rows_total(self) -> int:
        return sum(self.bad_rows.values())


@dataclass(frozen=True)
class SampleSummary:
    municipality_ids: list[str]
    municipalities: dict[str, MunicipalitySample] = field(default_factory=dict)
    inbox_url: str = ""

    @property
    def total_readings(self) -> int:
        """Every data row of the readings and lab files: good readings, bad rows, lab samples."""
        return self.readings + self.bad_rows + self.lab_samples

    @property
    def total_bad_rows(self) -> int:
        """Rows the quality gate should quarantine (all in readings files)."""
        return self.bad_rows

    @property
    def readings(self) -> int:
        return sum(m.readings for m in self.municipalities.values())

    @property
    def bad_rows(self) -> int:
        return sum(m.bad_rows_total for m in self.municipalities.values())

    @property
    def lab_samples(self) -> int:
        return sum(m.lab_samples for m in self.municipalities.values())

    @property
    def files_written(self) -> int:
        return sum(m.files_written for m in self.municipalities.values())

    @property
    def labelled_events(self) -> int:
        return sum(m.labelled_events for m in self.municipalities.values())

    def as_dict(self) -> dict:
        return {
            "municipality_ids": self.municipality_ids,
            "inbox_url": self.inbox_url,
            "total_readings": self.total_readings,
            "readings": self.readings,
            "bad_rows": self.bad_rows,
            "lab_samples": self.lab_samples,
            "files_written": self.files_written,
            "labelled_events": self.labelled_events,
        }


def local_midnights_us(start: date, days: int, timezone: str) -> np.ndarray:
    """UTC microseconds of the local midnights starting each day, plus the end of the last day."""
    zone = ZoneInfo(timezone)
    return np.array(
        [
            int(datetime.combine(start + timedelta(days=k), time(), zone).timestamp()) * US
            for k in range(days + 1)
        ],
        dtype=np.int64,
    )


def readings_frame(
    layout: Layout, times_us: np.ndarray, values: np.ndarray, labelled: np.ndarray
) -> pl.DataFrame:
    """The (S, P, T) arrays as long rows ordered by observed_at then sensor_id, gaps dropped."""
    n_stations, n_params, n_times = values.shape
    ids = [layout.sensor_id(s, p) for s in layout.station_ids for p in ONLINE_PARAMETERS]
    order = np.argsort(np.array(ids), kind="stable")
    flat_values = values.reshape(-1, n_times)[order].T.ravel()
    keep = ~np.isnan(flat_values)
    sensor_idx = np.tile(order, n_times)[keep]
    return pl.DataFrame(
        {
            "sensor_id": pl.Series(ids).gather(sensor_idx),
            "station_id": pl.Series(np.repeat(layout.station_ids, n_params)).gather(sensor_idx),
            "parameter": pl.Series(list(ONLINE_PARAMETERS) * n_stations).gather(sensor_idx),
            "observed_at": pl.Series(np.repeat(times_us, len(ids))[keep]).cast(pl.Datetime("us", "UTC")),
            "value": flat_values[keep],
            "labelled": labelled.reshape(-1, n_times)[order].T.ravel()[keep],
        }
    )


def _timestamps(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    if layout.town.timestamps == "local":
        text = (
            pl.col("observed_at")
            .dt.convert_time_zone(layout.town.timezone)
            .dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
        )
    else:
        text = pl.col("observed_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame.with_columns(observed_at=text)


def _encode(frame: pl.DataFrame, file_format: str, layout: Layout) -> bytes:
    frame = frame.select("sensor_id", "observed_at", "value", "unit")
    if file_format == "parquet":
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=False)
        return buffer.getvalue()
    data = _timestamps(frame, layout).write_csv().encode()
    return gzip.compress(data, compresslevel=6, mtime=0) if file_format == "csv.gz" else data


def _format_for(file_format: str, layout: Layout, day: int) -> str:
    if file_format == "mixed":
        return FILE_FORMATS[(layout.index + day) % len(FILE_FORMATS)]
    return file_format


def generate_municipality(
    inbox: ObjectStore,
    index: int,
    *,
    start: date,
    days: int,
    stations: int,
    interval_seconds: int,
    seed: int,
    file_format: str,
) -> MunicipalitySample:
    """Simulate and write everything of the index-th municipality; returns its counts."""
    streams = np.random.SeedSequence([seed, index]).spawn(4)
    registry_rng, online_rng, lab_rng = (np.random.default_rng(s) for s in streams[:3])
    file_rngs = [np.random.default_rng(s) for s in streams[3].spawn(days)]
    layout = layout_for(index, stations)
    mid = layout.id
    day_starts = local_midnights_us(start, days, layout.town.timezone)
    start_utc = datetime.fromtimestamp(day_starts[0] / US, UTC)

    document = registry_document(layout, start=start_utc, interval_seconds=interval_seconds, rng=registry_rng)
    keys = [f"{mid}/registry.yaml"]
    inbox.put_bytes(keys[0], registry_yaml(document))

    times_us = np.arange(day_starts[0], day_starts[-1], interval_seconds * US, dtype=np.int64)
    sim = simulate_online(layout, times_us, interval_seconds, online_rng)
    frame = readings_frame(layout, times_us, sim.values, sim.labelled)
    units = {
        p: UNICODE_UNITS.get(u, u) if layout.town.unicode_units else u
        for p, u in ((p, parameter(p).unit) for p in ONLINE_PARAMETERS)
    }
    frame = frame.with_columns(unit=pl.col("parameter").replace_strict(units))
    day_of_row = np.searchsorted(day_starts, frame["observed_at"].dt.epoch("us").to_numpy(), side="right") - 1

    good, bad_counts, bad_frames, readings_files = 0, dict.fromkeys(BAD_KINDS, 0), [], []
    lab, lab_labels = simulate_lab(layout, day_starts, lab_rng)
    for day in range(days):
        label = (start + timedelta(days=day)).isoformat()
        fmt = _format_for(file_format, layout, day)
        key = f"{mid}/readings/{mid}-{label}.{fmt}"
        rows = inject_bad_rows(frame.filter(pl.Series(day_of_row == day)), file_rngs[day])
        inbox.put_bytes(key, _encode(rows, fmt, layout))
        readings_files.append(key)
        bad = rows.with_row_index("row").filter(pl.col("bad").is_not_null())
        bad_frames.append(
            bad.select(
                file=pl.lit(key),
                row="row",
                sensor_id="sensor_id",
                observed_at="observed_at",
                kind="bad",
            )
        )
        for kind, count in bad.group_by("bad").len().iter_rows():
            bad_counts[kind] += count
        good += rows.height - bad.height
        lab_key = f"{mid}/lab/{mid}-{label}.csv"
        inbox.put_bytes(lab_key, _encode(lab.filter(pl.col("day") == day), "csv", layout))
        keys += [key, lab_key]

    labels = (
        pl.concat([sim.labels, lab_labels])
        .sort("start", "station_id", "kind", "sensor_ids")
        .with_row_index("n", offset=1)
        .select(
            event_id=pl.format("{}-{}", pl.lit(mid), pl.col("n").cast(pl.String).str.zfill(5)),
            municipality_id=pl.lit(mid),
            station_id="station_id",
            sensor_ids="sensor_ids",
            kind="kind",
            start=pl.col("start").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end=pl.col("end").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    )
    bad_rows = pl.concat(bad_frames).with_columns(pl.col("observed_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    inbox.put_bytes(f"{mid}/labels/events.csv", labels.write_csv().encode())
    inbox.put_bytes(f"{mid}/labels/bad_rows.csv", bad_rows.write_csv().encode())
    keys += [f"{mid}/labels/events.csv", f"{mid}/labels/bad_rows.csv"]
    return MunicipalitySample(
        mid, good, bad_counts, lab.height, len(keys), labels.height, tuple(readings_files), interval_seconds
    )


def generate_sample(
    inbox: ObjectStore,
    *,
    start: date,
    days: int = 2,
    municipalities: int = 3,
    stations_per_municipality: int = 3,
    interval_seconds: int | Sequence[int] = 60,
    seed: int = 7,
    file_format: str = "mixed",
) -> SampleSummary:
    """Write a deterministic sample inbox (same arguments, same bytes) and return its counts.

    `interval_seconds` is the seconds between online readings; several (60, 300, 900) mix
    cadences: the k-th municipality reads every `interval_seconds[k % len]` seconds."""
    if file_format not in (*FILE_FORMATS, "mixed"):
        raise ValueError(f"file_format must be one of mixed, {', '.join(FILE_FORMATS)}")
    intervals = [interval_seconds] if isinstance(interval_seconds, int) else list(interval_seconds)
    if not intervals or min(days, municipalities, stations_per_municipality, *intervals) < 1:
        raise ValueError("days, municipalities, stations and interval must be at least 1")
    samples = [
        generate_municipality(
            inbox,
            k,
            start=start,
            days=days,
            stations=stations_per_municipality,
            interval_seconds=intervals[k % len(intervals)],
            seed=seed,
            file_format=file_format,
        )
        for k in range(municipalities)
    ]
    return SampleSummary(
        [s.municipality_id for s in samples],
        {s.municipality_id: s for s in samples},
        inbox.url("").rstrip("/"),
    )


def plan_for_readings(n_readings: int, interval_seconds: int = 60, max_days: int | None = None) -> dict:
    """`generate_sample` arguments that write about `n_readings` good online readings (within ~1%).

    Among plans that close, prefers at least three municipalities, at most six stations each and
    up to a week of days (or `max_days`). About 1.5% of the scheduled readings are lost to outages and dropped
    minutes, which the plan allows for; `generate_sample` reports the exact count.
    """
    per_station_day = EXPECTED_YIELD * len(ONLINE_PARAMETERS) * 86400 / interval_seconds
    if max_days is None:
        max_days = 7 if n_readings <= 12 * 50 * 7 * per_station_day else 366
    min_towns = 3 if n_readings >= 3 * per_station_day else 1
    best: tuple | None = None
    for towns in range(min_towns, 13):
        for stations in range(1, 51):
            for days in range(1, max_days + 1):
                error = abs(towns * stations * days * per_station_day - n_readings)
                score = (
                    int(100 * error // max(n_readings, 1)),
                    max(0, stations - 6),
                    -min(days, 7),
                    error,
                    towns,
                )
                if best is None or score < best[0]:
                    best = (score, towns, stations, days)
    assert best is not None
    _, towns, stations, days = best
    return {
        "municipalities": towns,
        "stations_per_municipality": stations,
        "days": days,
        "interval_seconds": interval_seconds,
    }
