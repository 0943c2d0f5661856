"""Forward evaluation: what is chosen sees only the fit part, the gap is left out, splits and folds
fall where they say, and any layout or cadence is read through a source mapping."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.detection.station_alarm import DEFAULT_CONFIG
from tasks.evaluation.forward import Split, detector_rows, forward_folds, headline_split, split_alarms
from tasks.evaluation.labelled import LabelSpec, read_labelled
from tasks.evaluation.tune import evaluate, grid_configs

from .conftest import START, labelled_frame, write_labelled

runner = CliRunner()
SMALL_GRID = grid_configs(
    {
        "window_minutes": (60,),
        "statistic": ("mean", "median"),
        "threshold": (3.0, 6.0, 20.0),
        "k": (1, 2),
        "min_run": (1,),
        "hold": (0, 30),
    }
)
# file times are plant time (Etc/GMT-1): local midnight of day 9 is 23:00 UTC the day before
CUT = START + timedelta(days=9)
CUT_UTC = CUT - timedelta(hours=1)


def flipped_from(frame: pl.DataFrame, since: datetime) -> pl.DataFrame:
    """Every label from `since` (file time) on turned upside down."""
    late = pl.col("Time") >= since
    return frame.with_columns(pl.when(late).then(~pl.col("EVENT")).otherwise(pl.col("EVENT")))


def chosen_on(path: Path, split: Split) -> dict:
    rows = detector_rows(read_labelled(path), SMALL_GRID)
    return split_alarms(rows, split)[1]


def test_relabelling_the_scored_part_and_the_gap_changes_nothing_chosen(tmp_path):
    frame = labelled_frame(days=15)
    split = Split("forward", CUT_UTC - timedelta(days=1), CUT_UTC)
    before = chosen_on(write_labelled(tmp_path / "a.csv", frame), split)
    # the gap day and everything scored relabelled: a setting chosen on them would differ
    after = chosen_on(write_labelled(tmp_path / "b.csv", flipped_from(frame, CUT - timedelta(days=1))), split)
    assert after == before
    assert set(before) >= {"statistical_tuned", "learned", "zscore_baseline"}
    # relabelling one day of the fit part does change what is chosen: the test can fail
    day = pl.col("Time").is_between(START + timedelta(days=3), START + timedelta(days=4), closed="left")
    fit_flipped = frame.with_columns(pl.when(day).then(~pl.col("EVENT")).otherwise(pl.col("EVENT")))
    assert chosen_on(write_labelled(tmp_path / "c.csv", fit_flipped), split) != before


def test_the_fit_part_ends_a_gap_before_the_scored_part(labelled_file):
    readings = read_labelled(labelled_file)
    rows = detector_rows(readings, SMALL_GRID, learned=False)
    times = rows.table["observed_at"]
    split = headline_split(times, "Etc/GMT-1", CUT, timedelta(days=2))
    assert (split.fit_end, split.score_start) == (CUT_UTC - timedelta(days=2), CUT_UTC)
    chosen = split_alarms(rows, split)[1]
    assert chosen["fit_rows"] == times.filter(times < CUT_UTC - timedelta(days=2)).len()
    # 7 days less the 3-hour outage of day 2; one labelled step a day
    assert (chosen["fit_rows"], chosen["fit_events"]) == (7 * 1440 - 180, 7)


def test_the_default_cut_is_the_local_midnight_nearest_70_percent_of_the_rows(labelled_file):
    times = read_labelled(labelled_file).frame.drop_nulls("Tp")["observed_at"]
    split = headline_split(times, "Etc/GMT-1", None, timedelta(days=1))
    # 70 % of 21,420 covered rows falls on day 10 at 13:18 local: nearest midnight is day 11
    assert split.score_start == START + timedelta(days=11) - timedelta(hours=1)
    assert split.fit_end == split.score_start - timedelta(days=1)


def test_forward_folds_chain_and_each_fits_only_before_itself(labelled_file):
    times = read_labelled(labelled_file).frame.drop_nulls("Tp")["observed_at"]
    folds = forward_folds(times, "Etc/GMT-1", 3, timedelta(days=1))
    assert len(folds) == 3
    for earlier, later in zip(folds, folds[1:], strict=False):
        assert earlier.score_end == later.score_start
    assert folds[-1].score_end is None
    assert all(f.fit_end == f.score_start - timedelta(days=1) for f in folds)


def long_and_intervals(tmp_path: Path, frame: pl.DataFrame) -> tuple[Path, Path, Path]:
    """The wide frame as a long file in an inbox with a mapping and registry, and its labels as intervals."""
    inbox = tmp_path / "inbox" / "plant"
    (inbox / "sources").mkdir(parents=True)
    sensors = [c for c in frame.columns if c not in ("Time", "EVENT")]
    parameters = {"Tp": "temperature", "pH": "ph", "Leit": "conductivity", "Trueb": "turbidity", "Fm": "flow"}
    (inbox / "registry.yaml").write_text(
        "municipality: {id: plant, name: Plant, timezone: Europe/Berlin}\n"
        "stations:\n  - id: s1\n    name: S1\n    sensors:\n"
        + "".join(f"      - {{id: {s}, parameter: {parameters[s]}}}\n" for s in sensors)
    )
    mapping = inbox / "sources" / "long.yaml"
    mapping.write_text(
        "layout: long\ntime: {column: when, format: '%d/%m/%Y %H:%M'}\ntimezone: Etc/GMT-1\n"
        "rename: {station_sensor: sensor_id, reading: value}\n"
    )
    long = (
        frame.unpivot(index="Time", on=sensors, variable_name="station_sensor", value_name="reading")
        .drop_nulls("reading")
        .select(
            pl.col("Time").dt.strftime("%d/%m/%Y %H:%M").alias("when"),
            "station_sensor",
            "reading",
            pl.lit("x").alias("unit"),
        )
    )
    data = tmp_path / "long.csv"
    long.write_csv(data)
    runs = (
        frame.with_columns(
            (pl.col("EVENT") != pl.col("EVENT").shift(1)).fill_null(True).cum_sum().alias("run")
        )
        .filter("EVENT")
        .group_by("run")
        .agg(pl.col("Time").min().alias("start"), pl.col("Time").max().alias("end"))
        .sort("start")
        .with_columns(
            pl.col("start", "end").dt.strftime("%Y-%m-%dT%H:%M:%S"), pl.lit("true").alias("is_event")
        )
        .drop("run")
    )
    # a labelled interval that is not an event changes nothing
    decoy = pl.DataFrame(
        {"start": ["2026-03-08T00:00:00"], "end": ["2026-03-08T06:00:00"], "is_event": ["no"]}
    )
    intervals = tmp_path / "intervals.csv"
    pl.concat([runs, decoy]).write_csv(intervals)
    return data, mapping, intervals


def test_a_long_file_with_an_interval_file_scores_as_the_same_wide_file(tmp_path):
    frame = labelled_frame(days=15)
    wide = write_labelled(tmp_path / "wide.csv", frame)
    data, mapping, intervals = long_and_intervals(tmp_path, frame)
    options = {"synthetic": False, "configs": SMALL_GRID, "folds": 2, "learned": False}
    from_wide = evaluate(wide, **options)
    from_long = evaluate(data, mapping=mapping, intervals=intervals, **options)
    for part in ("forward", "folds"):
        assert from_long[part] == from_wide[part]
    assert from_long["rows_scored"] == from_wide["rows_scored"] == 21_420
    assert from_wide["forward"]["scores"]["statistical_default"]["events"] > 0


def test_label_columns_count_a_row_when_any_is_not_empty(tmp_path):
    frame = labelled_frame(days=2).with_columns(
        pl.when(pl.col("EVENT")).then(pl.lit("4")).alias("ph_qual"), pl.lit(None, pl.String).alias("tp_qual")
    )
    path = write_labelled(tmp_path / "q.csv", frame.drop("EVENT").with_columns(pl.lit("x").alias("EVENT")))
    readings = read_labelled(path, labels=LabelSpec(("ph_qual", "tp_qual"), "not_empty"))
    assert readings.frame["label"].sum() == frame["EVENT"].sum() == 80


LRO = Path(__file__).parents[1] / "fixtures" / "sources" / "lro" / "lro"
LRO_LABELS = LabelSpec(("temp_qual", "cond_qual", "ph_qual", "turb_qual"), "not_empty")


def test_the_lro_excerpt_reads_through_its_mapping():
    path = LRO / "tonygrove" / "TonyGrove2019_2019-04-01.csv"
    readings = read_labelled(path, mapping=LRO / "sources" / "tonygrove.yaml", labels=LRO_LABELS)
    assert readings.parameters == {
        "tonygrove-temp": "temperature",
        "tonygrove-cond": "conductivity",
        "tonygrove-ph": "ph",
        "tonygrove-turb": "turbidity",
    }
    frame = readings.frame
    assert frame.height == 300
    # 2019-03-31 21:00 Mountain Standard Time is 04:00 UTC; every 15 minutes
    assert frame["observed_at"][0] == datetime(2019, 4, 1, 4, 0)
    assert frame["observed_at"].diff().median() == timedelta(minutes=15)
    raw = pl.read_csv(path, null_values=["NULL"], infer_schema=False)
    # -9999 is no reading, never a value
    missing = raw["temp"] == "-9999"
    assert missing.sum() == 4 and frame.filter(missing)["tonygrove-temp"].is_null().all()
    assert (frame.drop("observed_at", "label").to_numpy() > -9999).sum() > 0
    qualified = pl.any_horizontal(raw[c].is_not_null() for c in LRO_LABELS.columns)
    assert frame["label"].to_list() == raw.select(qualified).to_series().to_list()


def thinned_file(tmp_path: Path, minutes: int) -> Path:
    frame = labelled_frame(days=15).gather_every(minutes)
    return write_labelled(tmp_path / f"every_{minutes}_minutes.csv", frame)


def evaluate_output(path: Path) -> str:
    arguments = ["evaluate", str(path), "--no-synthetic", "--no-learned", "--folds", "0"]
    result = runner.invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_a_15_minute_file_runs_the_shipped_default_with_windows_in_time(tmp_path):
    output = evaluate_output(thinned_file(tmp_path, 15))
    assert "statistical, shipped default could not run" not in output
    # the nightly detectors' 15-minute windows hold one reading at this cadence: they say so
    assert "nightly detectors: trend skipped 4 sensors (15-minute cadence: a 15-minute window holds" in output
    assert "nightly detectors: volatility skipped 4 sensors" in output
    assert "baseline z-score" in output and "baseline HGB" in output


def test_a_file_too_sparse_for_a_window_says_which_detector_could_not_run(tmp_path):
    output = evaluate_output(thinned_file(tmp_path, 120))
    window = DEFAULT_CONFIG.window_minutes
    assert (
        f"note: statistical, shipped default could not run: its {window}-minute window holds "
        f"{window / 120:g} readings at this file's 120-minute cadence and needs 3." in output
    )
    assert "note: baseline rolling z-score could not run" in output


@pytest.mark.parametrize("config", [DEFAULT_CONFIG])
def test_the_statistical_default_is_the_shipped_config(config, labelled_file):
    rows = detector_rows(read_labelled(labelled_file), [config], learned=False)
    split = Split("forward", CUT_UTC - timedelta(days=1), CUT_UTC)
    alarms, _, _ = split_alarms(rows, split)
    assert (alarms["statistical_default"] == alarms["statistical_tuned"]).all()


def test_times_without_an_offset_are_in_the_mappings_zone_and_with_one_are_converted():
    from tasks.evaluation.labelled import naive_utc

    plain = naive_utc(pl.Series(["2026-03-07 10:00"]), "%Y-%m-%d %H:%M", "Etc/GMT-1")
    offset = naive_utc(pl.Series(["2026-03-07T10:00:00+02:00"]), None, "Etc/GMT-1")
    zulu = naive_utc(pl.Series(["2026-03-07T10:00:00Z"]), None, "Etc/GMT-1")
    assert [plain[0], offset[0], zulu[0]] == [
        datetime(2026, 3, 7, 9),
        datetime(2026, 3, 7, 8),
        datetime(2026, 3, 7, 10),
    ]
