"""The sample's readings behave like a water network: plausible values, daily cycles, and the
labelled events and faults visible where the labels say."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from tasks.sample import generate_sample, plan_for_readings
from tasks.sample.signals import demand_curve
from tasks.sample.truth import read_bad_rows, read_events, read_readings_file
from tasks.storage import ObjectStore

START = date(2026, 11, 24)
PLAUSIBLE = {
    "ph": (7.0, 8.0),
    "turbidity": (0.05, 0.5),
    "free_chlorine": (0.2, 1.5),
    "conductivity": (200.0, 800.0),
    "temperature": (4.0, 25.0),
    "pressure": (3.0, 6.0),
    "flow": (10.0, 1500.0),
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    inbox = ObjectStore(str(tmp_path_factory.mktemp("inbox")))
    summary = generate_sample(inbox, start=START, days=3, municipalities=4, seed=3)
    readings, events = [], []
    for m in summary.municipality_ids:
        bad = read_bad_rows(inbox, m)
        for key in summary.municipalities[m].readings_files:
            frame = read_readings_file(inbox, key).with_row_index("row")
            readings.append(
                frame.join(bad.filter(pl.col("file") == key).select("row"), on="row", how="anti").drop("row")
            )
        events.append(read_events(inbox, m))
    good = pl.concat(readings).with_columns(
        station_id=pl.col("sensor_id").str.replace(r"-[a-z_]+$", ""),
        parameter=pl.col("sensor_id").str.extract(r"-([a-z_]+)$"),
    )
    return inbox, summary, good, pl.concat(events)


def _inside(good: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Readings of the events' sensors between their start and end."""
    per_sensor = events.explode("sensor_ids").rename({"sensor_ids": "sensor_id"})
    return good.join(per_sensor.select("sensor_id", "start", "end", "event_id"), on="sensor_id").filter(
        pl.col("observed_at").is_between(pl.col("start"), pl.col("end"))
    )


def test_good_readings_stay_plausible_outside_contamination_and_spikes(sample):
    _, _, good, events = sample
    disturbed = _inside(good, events.filter(pl.col("kind").is_in(["contamination", "spike"])))
    calm = good.join(
        disturbed.select("sensor_id", "observed_at"), on=["sensor_id", "observed_at"], how="anti"
    )
    ranges = calm.group_by("parameter").agg(low=pl.col("value").min(), high=pl.col("value").max())
    for parameter, low, high in ranges.iter_rows():
        expected_low, expected_high = PLAUSIBLE[parameter]
        assert expected_low <= low <= high <= expected_high, (parameter, low, high)
    assert calm["value"].null_count() == 0


def test_flow_follows_demand_and_pressure_falls_when_it_rises(sample):
    _, _, good, _ = sample
    plant = good.filter(pl.col("station_id") == "riverton-plant").with_columns(
        hour=pl.col("observed_at").dt.convert_time_zone("America/Chicago").dt.hour()
    )
    hourly = plant.group_by("parameter", "hour").agg(pl.col("value").median())
    flow = dict(hourly.filter(pl.col("parameter") == "flow").select("hour", "value").iter_rows())
    pressure = dict(hourly.filter(pl.col("parameter") == "pressure").select("hour", "value").iter_rows())
    assert flow[7] > 2 * flow[3] and flow[19] > 1.5 * flow[3]
    assert pressure[3] > pressure[7] + 0.5
    assert demand_curve(np.array([3.0]))[0] == pytest.approx(0.2, abs=0.01)


def test_chlorine_is_lower_where_the_water_is_older(sample):
    _, _, good, _ = sample
    medians = dict(
        good.filter(pl.col("parameter") == "free_chlorine")
        .group_by("station_id")
        .agg(pl.col("value").median())
        .iter_rows()
    )
    assert medians["riverton-plant"] > medians["riverton-reservoir-north"] > medians["riverton-booster-hill"]


def test_temperature_follows_the_hemisphere_season(sample):
    _, _, good, _ = sample
    temps = dict(
        good.filter(pl.col("parameter") == "temperature")
        .with_columns(town=pl.col("station_id").str.extract(r"^(riverton|bellbird-creek)"))
        .group_by("town")
        .agg(pl.col("value").median())
        .drop_nulls()
        .iter_rows()
    )
    assert temps["bellbird-creek"] > temps["riverton"] + 2  # late spring in Sydney


def test_contamination_moves_turbidity_chlorine_and_conductivity_together(sample):
    _, _, good, events = sample
    contamination = events.filter(pl.col("kind") == "contamination")
    assert contamination.height >= 4
    minutes = (contamination["end"] - contamination["start"]).dt.total_minutes() + 1
    assert minutes.min() >= 20 and minutes.max() <= 120
    during = _inside(good, contamination).group_by("event_id", "parameter").agg(during=pl.col("value").mean())
    before = (
        _inside(
            good,
            contamination.with_columns(
                end=pl.col("start") - pl.duration(minutes=1),
                start=pl.col("start") - pl.duration(minutes=60),
            ),
        )
        .group_by("event_id", "parameter")
        .agg(before=pl.col("value").mean())
    )
    change = (
        during.join(before, on=["event_id", "parameter"])
        .with_columns(
            change=pl.when(pl.col("parameter") == "free_chlorine")
            .then(pl.col("during") / pl.col("before"))
            .otherwise(pl.col("during") - pl.col("before"))
        )
        .pivot("parameter", index="event_id", values="change")
    )
    assert change.height == contamination.height
    assert (change["turbidity"] > 0.3).all()
    assert (change["free_chlorine"] < 0.85).all()  # a ratio: at least 15% lower
    assert (change["conductivity"] > 40).all()
    assert (change["ph"] < 0).all()


def test_stuck_sensor_repeats_one_value_for_hours_and_no_other_does(sample):
    _, _, good, events = sample
    stuck = events.filter(pl.col("kind") == "stuck")
    assert stuck.height >= 4
    inside = (
        _inside(good, stuck).group_by("event_id").agg(distinct=pl.col("value").n_unique(), count=pl.len())
    )
    assert (inside["distinct"] == 1).all()
    assert (inside["count"] >= 120).all()
    runs = (
        good.sort("sensor_id", "observed_at")
        .with_columns(
            run=(pl.col("value") != pl.col("value").shift()).fill_null(True).cum_sum().over("sensor_id")
        )
        .group_by("sensor_id", "run")
        .agg(pl.len(), start=pl.col("observed_at").min())
        .filter(pl.col("len") >= 60)
    )
    # a fouled probe answers so slowly that it may hold one value for an hour too
    fouled = events.filter(pl.col("kind") == "fouling")["sensor_ids"].list.first()
    held = set(runs["sensor_id"])
    assert set(stuck["sensor_ids"].list.first()) <= held
    assert held <= set(stuck["sensor_ids"].list.first()) | set(fouled)


def test_gaps_leave_single_minutes_and_whole_station_outages_missing(sample):
    _, _, good, events = sample
    outages = events.filter(pl.col("kind") == "outage")
    assert outages.height >= 4
    assert _inside(good, outages).height == 0
    steps = (
        good.sort("sensor_id", "observed_at")
        .with_columns(step=pl.col("observed_at").diff().over("sensor_id").dt.total_minutes())["step"]
        .drop_nulls()
        .value_counts()
        .sort("step")
    )
    counts = dict(steps.iter_rows())
    assert counts[1] > 0.99 * sum(counts.values())
    assert counts[2] > 50  # a dropped minute
    assert max(counts) >= 30  # an outage of half an hour or more


def test_drifting_sensor_ends_far_from_where_it_started(sample):
    _, _, good, events = sample
    drift = events.filter(pl.col("kind") == "drift")
    assert drift.height >= 4
    for event in drift.iter_rows(named=True):
        series = good.filter(
            pl.col("sensor_id") == event["sensor_ids"][0], pl.col("observed_at") >= event["start"]
        ).sort("observed_at")
        hour = 60
        shift = series["value"].tail(hour).median() - series["value"].head(hour).median()
        assert shift > (0.1 if event["sensor_ids"][0].endswith("-ph") else 20), event


def test_a_fouled_probe_reads_ever_further_off_and_answers_late(sample):
    _, _, good, events = sample
    fouled = events.filter(pl.col("kind") == "fouling")
    assert fouled.height >= 4  # one per municipality
    for event in fouled.iter_rows(named=True):
        sensor_id = event["sensor_ids"][0]
        series = good.filter(pl.col("sensor_id") == sensor_id, pl.col("observed_at") >= event["start"]).sort(
            "observed_at"
        )
        hour = 60
        shift = series["value"].tail(hour).median() - series["value"].head(hour).median()
        if sensor_id.endswith("-free_chlorine"):
            assert shift < -0.1, event
        else:
            assert sensor_id.endswith("-turbidity") and shift > 0.1, event
        # the lag smooths minute-to-minute noise: steps far smaller than a healthy twin's
        steps = series["value"].diff().abs().median()
        twin = good.filter(
            pl.col("sensor_id") != sensor_id,
            pl.col("parameter") == sensor_id.rsplit("-", 1)[1],
        ).sort("sensor_id", "observed_at")
        assert steps < 0.5 * twin["value"].diff().abs().median(), event


def test_labelled_spikes_stand_out_from_their_neighbours(sample):
    _, _, good, events = sample
    spikes = events.filter(pl.col("kind") == "spike")
    assert spikes.height >= 20
    jumps = (
        good.sort("sensor_id", "observed_at")
        .with_columns(jump=(pl.col("value") - pl.col("value").shift().over("sensor_id")).abs())
        .join(
            spikes.select(sensor_id=pl.col("sensor_ids").list.first(), observed_at="start"),
            on=["sensor_id", "observed_at"],
        )
    )
    scale = {
        "ph": 0.5,
        "turbidity": 1.0,
        "free_chlorine": 0.1,
        "conductivity": 100.0,
        "temperature": 2.0,
        "flow": 20.0,
        "pressure": 1.0,
    }
    assert jumps.height == spikes.height
    assert (jumps["jump"] >= jumps["parameter"].replace_strict(scale)).all()


def test_lab_samples_are_canonical_and_riverton_and_lindenfeld_exceed_a_limit(sample):
    inbox, summary, _, events = sample
    lab = pl.concat(
        [read_readings_file(inbox, k) for m in summary.municipality_ids for k in inbox.list(f"{m}/lab")]
    )
    assert lab.height == summary.lab_samples == 4 * 3 * 10
    units = dict(lab.select(pl.col("sensor_id").str.extract(r"-lab-(.+)$"), "unit").unique().iter_rows())
    assert units == {
        "lead": "ug/L",
        "copper": "mg/L",
        "arsenic": "ug/L",
        "nitrate": "mg/L as NO3",
        "nitrite": "mg/L as NO2",
        "fluoride": "mg/L",
        "e_coli": "CFU/100mL",
    }
    exceedances = events.filter(pl.col("kind") == "lab_exceedance")
    assert exceedances["sensor_ids"].list.first().to_list() == [
        "riverton-lab-lead",
        "lindenfeld-lab-e_coli",
    ]
    high = lab.filter(
        (pl.col("sensor_id").str.ends_with("-lead") & (pl.col("value") > 10))
        | (pl.col("sensor_id").str.ends_with("-e_coli") & (pl.col("value") > 0))
    )
    assert (
        high.select("sensor_id", "observed_at").rows()
        == exceedances.select(pl.col("sensor_ids").list.first(), "start").rows()
    )
    nitrate = lab.filter(pl.col("sensor_id") == "riverton-lab-nitrate")["value"]
    assert 30 < nitrate.min() and nitrate.max() < 44.3  # close to, not over, 10 mg/L as N


@pytest.mark.parametrize("n_readings", [10_000, 250_000, 1_000_000, 5_000_000])
def test_plan_for_readings_lands_within_two_percent_before_gaps(n_readings):
    plan = plan_for_readings(n_readings)
    scheduled = plan["municipalities"] * plan["stations_per_municipality"] * plan["days"] * 7 * 1440
    assert abs(0.985 * scheduled - n_readings) <= 0.02 * n_readings + 7 * 1440
    assert plan["days"] <= 7 and plan["municipalities"] >= min(3, n_readings // (7 * 1440))


def test_generated_count_follows_the_plan(tmp_path):
    plan = plan_for_readings(60_000, interval_seconds=300)
    summary = generate_sample(ObjectStore(str(tmp_path)), start=START - timedelta(days=30), **plan)
    assert abs(summary.readings - 60_000) < 0.02 * 60_000


def test_plan_for_one_day_puts_every_reading_on_that_day():
    plan = plan_for_readings(1_000_000, max_days=1)
    scheduled = plan["municipalities"] * plan["stations_per_municipality"] * 7 * 1440
    assert plan["days"] == 1
    assert abs(0.985 * scheduled - 1_000_000) <= 0.02 * 1_000_000
