"""A small labelled station: the sample generator's fault-free signals with contamination events
injected (turbidity and conductivity up, chlorine and pH down, together), stored like ingestion
leaves them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import insert

from tasks.database import bulk_insert
from tasks.models import IngestBatch, Municipality, Sensor, Station
from tasks.parameters import parameter
from tasks.sample.catalog import ONLINE_PARAMETERS, layout_for
from tasks.sample.signals import US, base_signals

START = datetime(2026, 5, 4, tzinfo=UTC)  # a Monday: four days stay in one ISO week
PARAMETERS = ("ph", "turbidity", "free_chlorine", "conductivity")


def station_signals(
    station_id: str, days: int = 4, events_per_day: int = 3, seed: int = 7, start: datetime = START
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(readings: `sensor_id`, `observed_at`, `value` per minute; events: `starts_at`, `ends_at`).

    Events last 30 to 60 minutes at random times at least two hours apart."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    times_us = np.int64(start.timestamp() * US) + np.arange(n, dtype=np.int64) * 60 * US
    signals = base_signals(layout_for(0, 1), times_us, rng)[0]  # (P, T)
    keep = [ONLINE_PARAMETERS.index(p) for p in PARAMETERS]
    values = signals[keep]
    events = []
    for day in range(days):
        slots = rng.choice(np.arange(2, 22, 3), size=events_per_day, replace=False)
        for slot in sorted(slots):
            first = day * 1440 + int(slot) * 60 + int(rng.integers(0, 60))
            length = int(rng.integers(30, 61))
            profile = np.sin(np.pi * (np.arange(length) + 0.5) / length)
            window = slice(first, first + length)
            values[0, window] -= profile * rng.uniform(0.15, 0.3)  # pH
            values[1, window] += profile * rng.uniform(0.6, 1.5)  # turbidity
            values[2, window] *= 1 - profile * rng.uniform(0.3, 0.6)  # chlorine
            values[3, window] += profile * rng.uniform(60.0, 150.0)  # conductivity
            events.append((start + timedelta(minutes=first), start + timedelta(minutes=first + length)))
    times = pl.Series(times_us).cast(pl.Datetime("us", "UTC"))
    readings = pl.concat(
        pl.DataFrame(
            {"sensor_id": f"{station_id}-{p}", "observed_at": times, "value": np.round(values[k], 3)}
        )
        for k, p in enumerate(PARAMETERS)
    )
    schema = {"starts_at": pl.Datetime("us", "UTC"), "ends_at": pl.Datetime("us", "UTC")}
    return readings, pl.DataFrame(events, schema=schema, orient="row")


def labelled_csv(path: Path, readings: pl.DataFrame, events: pl.DataFrame) -> Path:
    """A GECCO-like file of the station: `Time` (naive UTC), one column per sensor, `EVENT`."""
    wide = readings.pivot(on="sensor_id", index="observed_at", values="value").sort("observed_at")
    inside = pl.lit(False)
    for start, end in events.iter_rows():
        inside = inside | pl.col("observed_at").is_between(start, end, closed="left")
    wide.select(
        pl.col("observed_at").dt.strftime("%Y-%m-%d %H:%M:%S").alias("Time"),
        pl.exclude("observed_at"),
        pl.when(inside).then(pl.lit("true")).otherwise(pl.lit("false")).alias("EVENT"),
    ).write_csv(path, null_value="NA")
    return path


def seed_station(conn, municipality_id: str, readings: pl.DataFrame | None = None) -> str:
    """A municipality (UTC) with one station of the four online sensors; returns the station id."""
    station = f"{municipality_id}-plant"
    conn.execute(
        insert(Municipality).values(
            id=municipality_id,
            name=municipality_id.title(),
            timezone="UTC",
            standards=["WHO"],
            regulator_emails=[],
        )
    )
    conn.execute(insert(Station).values(id=station, municipality_id=municipality_id, name="Plant"))
    for name in PARAMETERS:
        spec = parameter(name)
        conn.execute(
            insert(Sensor).values(
                id=f"{station}-{name}",
                municipality_id=municipality_id,
                station_id=station,
                parameter=name,
                unit=spec.unit,
                kind="online",
                valid_min=spec.min,
                valid_max=spec.max,
                interval_seconds=60,
                active=True,
            )
        )
    if readings is not None:
        batch = conn.execute(
            insert(IngestBatch).values(
                municipality_id=municipality_id,
                source=f"test://{municipality_id}",
                checksum_sha256=municipality_id,
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]
        rows = readings.with_columns(
            municipality_id=pl.lit(municipality_id), qc_flag=pl.lit(1), batch_id=pl.lit(batch)
        )
        bulk_insert(conn, "readings", rows, conflict_columns=["sensor_id", "observed_at"])
    return station


@pytest.fixture(scope="session")
def plant_signals() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Four days of the station `riverton-plant` with twelve contamination events."""
    return station_signals("riverton-plant")


def seed_labelled_riverton(tmp_path: Path, days: int = 3, labelled_days: int = 2) -> tuple[str, pl.DataFrame]:
    """Riverton's plant with `days` of readings and a labelled file of its first `labelled_days`
    imported; returns the station id and the injected events."""
    from tasks.database import begin
    from tasks.detection.labels import import_labels

    readings, events = station_signals("riverton-plant", days=days)
    cut = START + timedelta(days=labelled_days)
    path = labelled_csv(
        tmp_path / "plant-labels.csv",
        readings.filter(pl.col("observed_at") < cut),
        events.filter(pl.col("starts_at") < cut),
    )
    with begin() as conn:
        station = seed_station(conn, "riverton", readings)
        import_labels(conn, "riverton", station, path)
    return station, events
