"""The sample inbox: layout, registries, file formats, determinism and the injected bad rows."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.database import begin
from tasks.parameters import catalog
from tasks.registry import apply_registry, parse_registry
from tasks.sample import generate_sample
from tasks.sample.defects import BAD_KINDS
from tasks.sample.truth import read_bad_rows, read_readings_file
from tasks.storage import ObjectStore

START = date(2026, 10, 24)  # Europe/Berlin leaves summer time on 2026-10-25
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    inbox = ObjectStore(str(tmp_path_factory.mktemp("inbox")))
    return inbox, generate_sample(inbox, start=START, days=2, seed=7)


def _registries(inbox: ObjectStore, summary) -> dict:
    return {m: parse_registry(inbox.get_bytes(f"{m}/registry.yaml")) for m in summary.municipality_ids}


def test_each_municipality_gets_registry_daily_readings_lab_files_and_labels(sample):
    inbox, summary = sample
    assert summary.municipality_ids == ["riverton", "lindenfeld", "bellbird-creek"]
    for m in summary.municipality_ids:
        keys = inbox.list(m)
        readings = [k for k in keys if k.startswith(f"{m}/readings/")]
        assert [re.sub(r"\.(csv|csv\.gz|parquet)$", "", k) for k in readings] == [
            f"{m}/readings/{m}-2026-10-24",
            f"{m}/readings/{m}-2026-10-25",
        ]
        assert set(keys) == {
            f"{m}/registry.yaml",
            *readings,
            f"{m}/lab/{m}-2026-10-24.csv",
            f"{m}/lab/{m}-2026-10-25.csv",
            f"{m}/labels/events.csv",
            f"{m}/labels/bad_rows.csv",
        }
        assert summary.municipalities[m].files_written == len(keys)
    suffixes = {k.split(".", 1)[1] for m in summary.municipality_ids for k in inbox.list(f"{m}/readings")}
    assert suffixes == {"csv", "csv.gz", "parquet"}


def test_registries_parse_with_distinct_zones_standards_and_example_regulators(sample):
    inbox, summary = sample
    specs = _registries(inbox, summary)
    zones = [s.municipality.timezone for s in specs.values()]
    assert zones == ["America/Chicago", "Europe/Berlin", "Australia/Sydney"]
    assert [s.municipality.standards for s in specs.values()] == [
        ["EPA", "WHO"],
        ["EU", "WHO"],
        ["WHO"],
    ]
    for m, spec in specs.items():
        assert all(str(e).endswith(".example") for e in spec.municipality.regulator_emails)
        online = [(st.id, se) for st in spec.stations for se in st.sensors if se.kind == "online"]
        lab = [(st.id, se) for st in spec.stations for se in st.sensors if se.kind == "lab"]
        assert len(online) == 3 * 7
        assert all(se.id == f"{station}-{se.parameter}" for station, se in online)
        assert {station for station, _ in lab} == {f"{m}-distribution"}
        assert sorted(se.id for _, se in lab) == sorted(
            f"{m}-lab-{p}" for p in ("lead", "copper", "arsenic", "nitrate", "nitrite", "fluoride", "e_coli")
        )


def test_registries_apply_to_the_database(sample, database):
    inbox, summary = sample
    with begin() as conn:
        applied = [apply_registry(conn, spec) for spec in _registries(inbox, summary).values()]
        sensors = conn.exec_driver_sql(
            "select municipality_id, count(*) from sensors group by municipality_id order by municipality_id"
        ).all()
    assert applied == summary.municipality_ids
    assert [tuple(row) for row in sensors] == [
        ("bellbird-creek", 28),
        ("lindenfeld", 28),
        ("riverton", 28),
    ]


def test_readings_files_are_long_format_with_offset_timestamps(sample):
    inbox, summary = sample
    for m in summary.municipality_ids:
        for key in inbox.list(f"{m}/readings") + inbox.list(f"{m}/lab"):
            frame = read_readings_file(inbox, key)
            expected = {
                "sensor_id": pl.String,
                "observed_at": pl.Datetime("us", "UTC"),
                "value": pl.Float64,
                "unit": pl.String,
            }
            assert frame.schema == pl.Schema(expected), key
            if key.endswith(".csv"):
                text = inbox.get_bytes(key).decode().splitlines()
                assert text[0] == "sensor_id,observed_at,value,unit"
                stamps = pl.Series([line.split(",")[1] for line in text[1:]])
                assert stamps.str.contains(ISO_WITH_OFFSET.pattern).all(), key
    berlin = inbox.get_bytes("lindenfeld/lab/lindenfeld-2026-10-24.csv").decode()
    assert "+02:00," in berlin  # local offsets in this town's files


def test_day_files_hold_local_days_including_the_25_hour_day(sample):
    inbox, _ = sample
    keys = inbox.list("lindenfeld/readings")
    hours = [read_readings_file(inbox, k)["observed_at"] for k in keys]
    spans = [(h.max() - h.min()).total_seconds() / 3600 for h in hours]
    assert spans == [23 + 59 / 60, 24 + 59 / 60]


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path):
    kwargs = {"start": START, "days": 2, "municipalities": 2, "stations_per_municipality": 1}
    first, second, third = (ObjectStore(str(tmp_path / n)) for n in ("a", "b", "c"))
    generate_sample(first, seed=11, **kwargs)
    generate_sample(second, seed=11, **kwargs)
    generate_sample(third, seed=12, **kwargs)
    keys = first.list()
    assert keys == second.list() == third.list()
    for key in keys:
        if key.endswith(".parquet"):
            assert_frame_equal(read_readings_file(first, key), read_readings_file(second, key))
        else:
            assert first.get_bytes(key) == second.get_bytes(key), key
    readings = [k for k in keys if "/readings/" in k]
    assert any(not read_readings_file(first, k).equals(read_readings_file(third, k)) for k in readings)


def test_a_municipality_does_not_depend_on_how_many_are_generated(tmp_path):
    one, three = ObjectStore(str(tmp_path / "one")), ObjectStore(str(tmp_path / "three"))
    generate_sample(
        one, start=START, days=1, municipalities=1, stations_per_municipality=1, file_format="csv"
    )
    generate_sample(
        three, start=START, days=1, municipalities=3, stations_per_municipality=1, file_format="csv"
    )
    for key in one.list():
        assert one.get_bytes(key) == three.get_bytes(key), key


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_file_format_can_be_forced(tmp_path, file_format):
    inbox = ObjectStore(str(tmp_path))
    generate_sample(
        inbox,
        start=START,
        days=3,
        municipalities=2,
        stations_per_municipality=1,
        file_format=file_format,
    )
    readings = [k for k in inbox.list() if "/readings/" in k]
    assert len(readings) == 6
    assert all(k.endswith(f".{file_format}") for k in readings)


def _reference_gate(
    frame: pl.DataFrame, known_sensors: set[str], sensor_parameter: dict[str, str]
) -> pl.DataFrame:
    """Which rows an independent quality gate refuses, and why (first reason wins)."""
    bounds = pl.DataFrame(
        {"sensor_id": list(sensor_parameter), "parameter": list(sensor_parameter.values())}
    ).with_columns(
        low=pl.col("parameter").replace_strict({n: p.min for n, p in catalog().items()}),
        high=pl.col("parameter").replace_strict({n: p.max for n, p in catalog().items()}),
        accepted=pl.col("parameter").replace_strict(
            {n: list(p.accepted_units) for n, p in catalog().items()},
            return_dtype=pl.List(pl.String),
        ),
    )
    checked = frame.with_row_index("row").join(bounds, on="sensor_id", how="left")
    return (
        checked.with_columns(
            kind=pl.when(~pl.col("sensor_id").is_in(list(known_sensors)))
            .then(pl.lit("unknown_sensor"))
            .when(pl.col("value").is_null())
            .then(pl.lit("missing_value"))
            .when(~pl.col("accepted").list.contains(pl.col("unit")))
            .then(pl.lit("wrong_unit"))
            .when((pl.col("value") < pl.col("low")) | (pl.col("value") > pl.col("high")))
            .then(pl.lit("out_of_range"))
            .when(pl.struct("sensor_id", "observed_at").is_first_distinct().not_())
            .then(pl.lit("duplicate"))
        )
        .filter(pl.col("kind").is_not_null())
        .select("row", "kind")
    )


def test_injected_bad_rows_are_exactly_what_a_gate_refuses_and_what_the_summary_counts(sample):
    inbox, summary = sample
    specs = _registries(inbox, summary)
    for m, spec in specs.items():
        sensors = {se.id: se.parameter for st in spec.stations for se in st.sensors}
        labelled = read_bad_rows(inbox, m)
        found = []
        for key in summary.municipalities[m].readings_files:
            frame = read_readings_file(inbox, key)
            refused = _reference_gate(frame, set(sensors), sensors)
            found.append(refused.with_columns(file=pl.lit(key)))
            rows = labelled.filter(pl.col("file") == key)
            assert_frame_equal(
                frame.with_row_index("row")
                .join(rows.select("row"), on="row")
                .select("row", "sensor_id", "observed_at"),
                rows.select("row", "sensor_id", "observed_at"),
            )
            assert 5 <= rows.height <= 15
        written = sum(read_readings_file(inbox, k).height for k in summary.municipalities[m].readings_files)
        assert summary.municipalities[m].readings == written - labelled.height
        assert_frame_equal(
            pl.concat(found).select("file", "row", "kind").sort("file", "row"),
            labelled.select("file", "row", "kind").sort("file", "row"),
        )
        counts = dict(labelled.group_by("kind").len().iter_rows())
        assert summary.municipalities[m].bad_rows == {k: counts.get(k, 0) for k in BAD_KINDS}
        assert all(counts.get(k, 0) >= 2 for k in BAD_KINDS)  # two files, at least one each


def test_summary_adds_up(sample):
    inbox, summary = sample
    rows_in_files = sum(
        read_readings_file(inbox, k).height
        for m in summary.municipality_ids
        for k in inbox.list(f"{m}/readings") + inbox.list(f"{m}/lab")
    )
    assert summary.total_readings == rows_in_files
    assert summary.total_bad_rows == summary.bad_rows
    assert summary.as_dict() == {
        "municipality_ids": summary.municipality_ids,
        "inbox_url": inbox.url("").rstrip("/"),
        "total_readings": rows_in_files,
        "readings": sum(m.readings for m in summary.municipalities.values()),
        "bad_rows": sum(sum(m.bad_rows.values()) for m in summary.municipalities.values()),
        "lab_samples": 3 * 2 * 10,
        "files_written": 3 * 7,
        "labelled_events": sum(m.labelled_events for m in summary.municipalities.values()),
    }
    assert 170_000 < summary.readings < 3 * 3 * 7 * 1440 * 2


def test_inbox_is_written_below_the_given_store_only(tmp_path):
    inbox = ObjectStore(str(tmp_path / "inbox"))
    generate_sample(inbox, start=START, days=1, municipalities=1, stations_per_municipality=1)
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["inbox"]
