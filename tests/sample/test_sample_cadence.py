"""The sample generator at 5- and 15-minute cadence: the right readings, and faults whose labels
line up with them."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from tasks.registry import parse_registry
from tasks.sample import generate_sample
from tasks.sample.truth import read_bad_rows, read_events, read_readings_file
from tasks.storage import ObjectStore

START = date(2026, 3, 2)  # clear of daylight-saving changes in every sample town
DAYS = 3
STATIONS = 2
ONLINE_PER_STATION = 7


def _written(inbox: ObjectStore, municipality_id: str, files: tuple[str, ...]) -> pl.DataFrame:
    """The good online readings written (bad rows the gate must quarantine taken out)."""
    rows = pl.concat([read_readings_file(inbox, key).with_columns(file=pl.lit(key)) for key in files])
    rows = rows.with_columns(row=pl.int_range(pl.len()).over("file").cast(pl.UInt32))
    bad = read_bad_rows(inbox, municipality_id).select("file", "row")
    return rows.join(bad, on=["file", "row"], how="anti").drop("file", "row")


@pytest.fixture(scope="module", params=[300, 900])
def sample(request, tmp_path_factory):
    interval = request.param
    inbox = ObjectStore(str(tmp_path_factory.mktemp(f"inbox-{interval}")))
    summary = generate_sample(
        inbox, start=START, days=DAYS, municipalities=1, stations_per_municipality=STATIONS,
        interval_seconds=interval, seed=5,
    )  # fmt: skip
    town = summary.municipalities[summary.municipality_ids[0]]
    readings = _written(inbox, town.municipality_id, town.readings_files)
    return interval, inbox, town, readings


def test_the_generator_writes_one_reading_per_sensor_per_interval_less_its_outages_and_dropouts(sample):
    interval, inbox, town, readings = sample
    scheduled = DAYS * 86400 // interval
    per_sensor = readings.group_by("sensor_id").agg(
        pl.len().alias("n"),
        pl.col("observed_at").n_unique().alias("distinct"),
        (pl.col("observed_at").dt.epoch("s") % interval).max().alias("off_grid"),
    )

    assert readings.height == town.readings
    assert per_sensor.height == STATIONS * ONLINE_PER_STATION
    assert per_sensor["n"].max() <= scheduled
    assert per_sensor["n"].min() >= 0.9 * scheduled
    assert (per_sensor["n"] == per_sensor["distinct"]).all()
    assert per_sensor["off_grid"].max() == 0  # every reading on the interval's grid
    registry = parse_registry(inbox.get_bytes(f"{town.municipality_id}/registry.yaml"))
    online = [s for station in registry.stations for s in station.sensors if s.kind == "online"]
    assert {s.interval_seconds for s in online} == {interval}
    assert town.interval_seconds == interval


def _in_window(readings: pl.DataFrame, events: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Readings of each `kind` event's sensors between its start and end."""
    return (
        events.filter(pl.col("kind") == kind)
        .explode("sensor_ids")
        .join(readings, left_on="sensor_ids", right_on="sensor_id")
        .filter(pl.col("observed_at").is_between(pl.col("start"), pl.col("end")))
    )


def test_each_labelled_fault_lines_up_with_the_readings_at_its_cadence(sample):
    interval, inbox, town, readings = sample
    events = read_events(inbox, town.municipality_id)
    online = events.filter(pl.col("kind") != "lab_exceedance")
    kinds = set(online["kind"])

    assert {"contamination", "spike", "stuck", "outage"} <= kinds
    on_grid = online.select((pl.col("start", "end").dt.epoch("s") % interval).max())
    assert on_grid.row(0) == (0, 0)
    assert (online["end"] >= online["start"]).all()
    # an outage: none of the station's sensors reads between its start and end
    assert _in_window(readings, events, "outage").is_empty()
    # a spike: one reading at its time
    spikes = events.filter(pl.col("kind") == "spike")
    assert (spikes["start"] == spikes["end"]).all()
    assert _in_window(readings, events, "spike").height == spikes.height
    # stuck: every reading of the window repeats one value, the one read just before it
    stuck = (
        _in_window(readings, events, "stuck")
        .group_by("event_id", "sensor_ids")
        .agg(
            pl.col("value").n_unique().alias("values"),
            pl.col("value").first(),
            pl.len().alias("n"),
            (pl.col("start").first() - pl.duration(seconds=interval)).alias("before"),
        )
    )
    before = stuck.join(
        readings, left_on=["sensor_ids", "before"], right_on=["sensor_id", "observed_at"], suffix="_before"
    )
    assert stuck.height == events.filter(pl.col("kind") == "stuck").height
    assert (stuck["values"] == 1).all() and (stuck["n"] >= 2).all()
    assert before.height == stuck.height and (before["value"] == before["value_before"]).all()
    # contamination: every event has readings of its sensors in its window
    contamination = _in_window(readings, events, "contamination")
    assert (
        contamination.select("event_id").n_unique() == events.filter(pl.col("kind") == "contamination").height
    )


def test_several_intervals_mix_cadences_across_municipalities(tmp_path):
    inbox = ObjectStore(str(tmp_path))
    summary = generate_sample(
        inbox, start=START, days=1, municipalities=3, stations_per_municipality=1, interval_seconds=[60, 900]
    )
    towns = list(summary.municipalities.values())
    spacing = [
        _written(inbox, t.municipality_id, t.readings_files)
        .group_by("sensor_id")
        .agg(pl.col("observed_at").sort().diff().median().dt.total_seconds())["observed_at"]
        .unique()
        .to_list()
        for t in towns
    ]
    assert [t.interval_seconds for t in towns] == [60, 900, 60]
    assert spacing == [[60], [900], [60]]
