"""A labelled file's readings pass QC before anything sees them: pinned readings never reach a feature."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tasks.evaluation.labelled import read_labelled

from .conftest import START, labelled_frame, write_labelled


def test_readings_pinned_at_gecco_instrument_limits_are_left_out(tmp_path):
    frame = labelled_frame(days=3)
    pinned = (pl.col("Time") >= START + timedelta(days=1)) & (
        pl.col("Time") < START + timedelta(days=1, hours=2)
    )
    frame = frame.with_columns(
        pl.when(pinned).then(4.0).otherwise(pl.col("pH")).alias("pH"),
        pl.when(pinned).then(0.0).otherwise(pl.col("Leit")).alias("Leit"),
    )
    path = write_labelled(tmp_path / "pinned.csv", frame)

    kept = read_labelled(path).frame
    raw = read_labelled(path, qc=False).frame

    assert raw.filter(pl.col("pH") == 4.0).height == 120  # without QC they would count
    assert raw.filter(pl.col("Leit") == 0.0).height == 120
    assert kept.filter((pl.col("pH") == 4.0) | (pl.col("Leit") == 0.0)).is_empty()
    # exactly the pinned readings are gone: the other sensors and the healthy hours lose nothing
    for column in ("pH", "Leit"):
        assert kept[column].null_count() - raw[column].null_count() == 120
    for column in ("Tp", "Trueb"):
        assert kept[column].null_count() == raw[column].null_count()


def test_a_mappings_registry_range_pins_its_sensor(tmp_path):
    inbox = tmp_path / "town"
    (inbox / "sources").mkdir(parents=True)
    (inbox / "registry.yaml").write_text(
        "municipality: {id: town, name: Town, timezone: UTC}\n"
        "stations:\n  - id: town-a\n    name: A\n    sensors:\n"
        "      - {id: town-ph, parameter: ph, valid_min: 4, valid_max: 10, interval_seconds: 60}\n"
    )
    (inbox / "sources" / "wide.yaml").write_text(
        "layout: wide\ntime: {column: Time, format: '%Y-%m-%d %H:%M:%S'}\ntimezone: UTC\n"
        "csv: {null_values: [NA]}\ncolumns: {pH: {sensor_id: town-ph, unit: '-'}}\n"
    )
    frame = labelled_frame(days=2).select("Time", "pH", "EVENT")
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_between(2000, 2059)).then(10.0).otherwise(pl.col("pH")).alias("pH")
    )
    path = write_labelled(tmp_path / "f.csv", frame)

    kept = read_labelled(path, mapping=inbox / "sources" / "wide.yaml").frame

    assert kept["town-ph"].null_count() - frame["pH"].null_count() == 60
    assert kept.filter(pl.col("town-ph") == 10.0).is_empty()
