from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.quality.qc import FLAG_COLUMNS, QcConfig, flag_long_frame, load_qc_config, qc_flags

T0 = datetime(2026, 5, 1, tzinfo=UTC)
CONFIG = QcConfig.model_validate(
    {
        "version": "test-7",
        "defaults": {"expected_interval_seconds": 60, "gross_range": {}, "gap": {"max_intervals": 5}},
        "parameters": {
            "ph": {
                "gross_range": {"suspect_span": [6.5, 9.5]},
                "spike": {"suspect": 0.3, "fail": 1.0},
                "rate_of_change": {"suspect_per_minute": 0.2, "fail_per_minute": 2.0},
                "flat_line": {"tolerance": 0.0, "suspect_minutes": 10, "fail_minutes": 20},
                "attenuated": {"window_minutes": 10, "suspect_below": 0.01, "fail_below": 0.001},
            },
            "temperature": {
                "climatology": [
                    {"months": [12, 1, 2], "suspect_span": [2, 12]},
                    {"months": [6, 7, 8], "suspect_span": [12, 24]},
                ],
            },
        },
        "sensors": {"ph-strict": {"gross_range": {"suspect_span": [7.0, 7.5]}}},
    }
)
SENSORS = pl.DataFrame(
    {
        "sensor_id": ["ph-1", "ph-2", "ph-strict", "temp-1"],
        "parameter": ["ph", "ph", "ph", "temperature"],
    }
)


def readings(values: list[float | None], sensor_id: str = "ph-1", minutes: list[float] | None = None):
    minutes = list(range(len(values))) if minutes is None else minutes
    return pl.DataFrame(
        {
            "sensor_id": sensor_id,
            "observed_at": [T0 + timedelta(minutes=m) for m in minutes],
            "value": values,
            "qc_flag": 2,
        },
        schema_overrides={"observed_at": pl.Datetime("us", "UTC"), "value": pl.Float64, "qc_flag": pl.Int16},
    )


def wobble(n: int, low: float = 7.0, high: float = 7.05) -> list[float]:
    """A healthy pH signal: it moves every minute, never fast, never flat."""
    return [high if i % 2 else low for i in range(n)]


def flags(values, test: str, **kwargs) -> list[int]:
    return qc_flags(readings(values, **kwargs), SENSORS, CONFIG)[f"qc_{test}"].to_list()


def test_gross_range_is_suspect_outside_the_suspect_span_and_fails_outside_the_physical_range():
    assert flags([7.2, 6.0, 9.8, 14.5, -0.1, 7.0], "gross_range") == [1, 3, 3, 4, 4, 1]


def test_the_fail_span_defaults_to_the_catalog_range_and_can_be_set():
    assert CONFIG.for_sensor(None, "ph").gross_range.fail_span == (0.0, 14.0)
    custom = QcConfig.model_validate(
        {
            "version": "1",
            "parameters": {"ph": {"gross_range": {"fail_span": [2, 12], "suspect_span": [6, 9]}}},
        }
    )
    out = qc_flags(readings([7.0, 12.5, 1.5]), SENSORS, custom)
    assert out["qc_gross_range"].to_list() == [1, 4, 4]


def test_a_winter_value_is_suspect_in_summer_and_months_without_climatology_are_not_evaluated():
    times = [
        datetime(2026, 1, 15, tzinfo=UTC),
        datetime(2026, 4, 15, tzinfo=UTC),
        datetime(2026, 7, 15, tzinfo=UTC),
    ]
    cold = pl.DataFrame(
        {"sensor_id": "temp-1", "observed_at": times, "value": [4.0, 4.0, 4.0]},
        schema_overrides={"observed_at": pl.Datetime("us", "UTC")},
    )
    out = qc_flags(cold, SENSORS, CONFIG)
    assert out["qc_climatology"].to_list() == [1, 2, 3]
    assert out["qc_tests"][2] == "climatology,gap"  # months apart: the gap test has its say too


def test_a_spike_is_flagged_on_the_spike_alone_and_a_step_is_no_spike():
    values = wobble(6) + [7.6] + wobble(6) + [9.0] + wobble(3) + [8.0] * 4
    assert flags(values, "spike") == [2] + [1] * 5 + [3] + [1] * 6 + [4] + [1] * 6 + [2]


def test_the_average_method_compares_with_the_mean_of_the_neighbours():
    average = QcConfig.model_validate(
        {"version": "1", "parameters": {"ph": {"spike": {"suspect": 0.3, "method": "average"}}}}
    )
    out = qc_flags(readings([7.0, 7.0, 7.7, 7.0, 7.0]), SENSORS, average)
    assert out["qc_spike"].to_list() == [2, 3, 3, 3, 2]  # the neighbours too: |7.0 - 7.35| > 0.3


def test_a_ramp_faster_than_allowed_is_suspect_and_a_jump_fails():
    values = [7.0, 7.1, 7.2, 7.5, 7.8, 8.1, 8.2, 10.5]
    assert flags(values, "rate_of_change") == [2, 1, 1, 3, 3, 3, 1, 4]


def test_the_rate_of_change_uses_the_time_between_readings():
    # 0.5 pH in 1 minute is too fast; 0.5 pH in 4 minutes (0.125 per minute) is not.
    assert flags([7.0, 7.5, 7.0], "rate_of_change", minutes=[0, 1, 5]) == [2, 3, 1]


def test_a_stuck_sensor_is_suspect_after_the_suspect_time_and_fails_after_the_fail_time():
    values = wobble(4) + [7.3] * 25 + [7.1]
    expected = [1] * 4 + [1] * 10 + [3] * 10 + [4] * 5 + [1]  # stuck from minute 4; 10 and 20 minutes later
    assert flags(values, "flat_line") == expected


def test_a_gap_longer_than_allowed_makes_the_next_reading_suspect_and_breaks_neighbourhoods():
    minutes = [0, 1, 2, 3, 10, 11, 12]  # 7 minutes without a reading: more than 5 intervals
    out = qc_flags(readings(wobble(7), minutes=minutes), SENSORS, CONFIG)
    assert out["qc_gap"].to_list() == [2, 1, 1, 1, 3, 1, 1]
    assert out["qc_spike"].to_list() == [2, 1, 1, 2, 2, 1, 2]
    assert out["qc_rate_of_change"].to_list() == [2, 1, 1, 1, 2, 1, 1]


def test_a_short_gap_within_the_limit_is_good():
    assert flags(wobble(4), "gap", minutes=[0, 1, 6, 7]) == [2, 1, 1, 1]


def test_attenuated_noise_is_suspect_and_a_dead_signal_fails_once_the_window_is_covered():
    lively = wobble(12)  # std 0.025
    quiet = [7.0 if i % 2 else 7.01 for i in range(11)]  # std 0.005
    dead = [7.2] * 11
    out = flags(lively + quiet + dead, "attenuated")
    # a 10-minute window needs 8 readings (80 % coverage); it holds 11 once minute 10 is reached
    assert out[:7] == [2] * 7
    assert out[7:12] == [1] * 5
    assert out[12:22][-1] == 3 and out[22] == 3  # the window is all quiet: minute 22
    assert out[-1] == 4  # the last 10 minutes are all 7.2


def test_attenuated_windows_count_time_not_readings():
    # Readings every 5 minutes: a 10-minute window never holds the 8 readings it needs.
    values = [7.0] * 12
    assert set(flags(values, "attenuated", minutes=[5 * i for i in range(12)])) == {2}


def test_the_worst_test_wins_and_qc_tests_names_the_tests_that_gave_it():
    values = wobble(12) + [9.8] + wobble(6)  # outside the suspect span (3), a spike of 2.8 (4)
    out = qc_flags(readings(values), SENSORS, CONFIG).row(12, named=True)
    assert {c: out[c] for c in FLAG_COLUMNS} == {
        "qc_gross_range": 3,
        "qc_climatology": 2,
        "qc_spike": 4,
        "qc_rate_of_change": 4,
        "qc_flat_line": 1,
        "qc_gap": 1,
        "qc_attenuated": 1,
    }
    assert (out["qc_flag"], out["qc_tests"], out["qc_config_version"]) == (
        4,
        "spike,rate_of_change",
        "test-7",
    )


def test_a_good_reading_names_every_test_that_passed():
    out = qc_flags(readings(wobble(12)), SENSORS, CONFIG).row(11, named=True)
    assert (out["qc_flag"], out["qc_tests"]) == (1, "gross_range,rate_of_change,flat_line,gap,attenuated")


def test_missing_values_are_9_and_invisible_to_their_neighbours():
    values = wobble(5) + [None, float("nan"), float("inf")] + wobble(5)
    out = qc_flags(readings(values), SENSORS, CONFIG)
    assert out["qc_flag"].to_list() == [1] * 5 + [9, 9, 9] + [1] * 5
    assert out.select(FLAG_COLUMNS).row(6) == (9,) * 7
    assert out["qc_tests"][6] == "gross_range,climatology,spike,rate_of_change,flat_line,gap,attenuated"
    # the readings around the hole are each other's neighbours: 4 minutes apart, within the limit
    assert out["qc_spike"][4] == 1 and out["qc_rate_of_change"][8] == 1


def test_a_sensor_the_registry_does_not_know_is_not_evaluated():
    out = qc_flags(readings([7.0, 7.1, 99.0], sensor_id="ph-unknown"), SENSORS, CONFIG)
    assert out.select(*FLAG_COLUMNS, "qc_flag").unique().rows() == [(2,) * 8]
    assert out["qc_tests"][0] == "gross_range,climatology,spike,rate_of_change,flat_line,gap,attenuated"


def test_a_per_sensor_override_changes_only_that_sensor():
    values = [7.2, 7.7, 7.2]
    both = pl.concat([readings(values, "ph-1"), readings(values, "ph-strict")])
    out = qc_flags(both, SENSORS, CONFIG)
    assert out.select("sensor_id", "qc_gross_range").rows() == [
        ("ph-1", 1),
        ("ph-1", 1),
        ("ph-1", 1),
        ("ph-strict", 1),
        ("ph-strict", 3),
        ("ph-strict", 1),
    ]
    strict = CONFIG.for_sensor("ph-strict", "ph")
    assert strict.gross_range.fail_span == (0.0, 14.0) and strict.spike == CONFIG.for_sensor(None, "ph").spike


def test_sensors_never_mix_interleaved_sensors_get_the_same_flags_as_each_alone():
    one = readings(wobble(6) + [7.6] + [7.3] * 15 + wobble(8), "ph-1")
    two = readings([7.5, 7.4] * 10 + [9.9] + wobble(9), "ph-2", minutes=[0.5 + 1.5 * i for i in range(30)])
    mixed = pl.concat([one, two]).sort("observed_at")
    together = qc_flags(mixed.lazy(), SENSORS, CONFIG)
    alone = pl.concat([qc_flags(one, SENSORS, CONFIG), qc_flags(two, SENSORS, CONFIG)])
    assert_frame_equal(together, alone)
    in_slices = qc_flags(mixed, SENSORS, CONFIG, batch_readings=1)
    assert_frame_equal(in_slices, alone)


def test_the_result_keeps_the_reading_columns_and_replaces_qc_flag():
    out = qc_flags(readings([7.0, 7.05]).with_columns(batch_id=pl.lit(12)), SENSORS, CONFIG)
    assert out.columns == [
        "sensor_id",
        "observed_at",
        "value",
        "batch_id",
        *FLAG_COLUMNS,
        "qc_flag",
        "qc_tests",
        "qc_config_version",
    ]
    assert out.schema["qc_flag"] == pl.Int16


def test_no_readings_give_an_empty_result():
    out = qc_flags(readings([]), SENSORS, CONFIG)
    assert out.height == 0 and "qc_flag" in out.columns


def test_the_shipped_configuration_is_valid_for_every_catalog_parameter():
    config = load_qc_config()
    assert config.version
    assert config.for_sensor(None, "ph").gross_range.suspect_span == (6.5, 9.5)
    assert config.for_sensor(None, "flow").flat_line is None
    assert config.for_sensor(None, "nitrate").gap is None
    assert len(config.digest) == 64


def test_load_merges_a_sensor_override_and_null_switches_a_test_off(tmp_path: Path):
    path = tmp_path / "qc.yaml"
    path.write_text(
        "version: v2\n"
        "defaults: {gap: {max_intervals: 3}}\n"
        "parameters:\n  ph: {spike: {suspect: 0.3, fail: 1.0}}\n"
        "sensors:\n  ph-1: {spike: {fail: 2.0}, gap: null}\n"
    )
    config = load_qc_config(path)
    settings = config.for_sensor("ph-1", "ph")
    assert (settings.spike.suspect, settings.spike.fail, settings.gap) == (0.3, 2.0, None)
    assert config.for_sensor("ph-2", "ph").gap.max_intervals == 3


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"version": "1", "parameters": {"ph": {"gross_range": {"suspect_span": [5, 15]}}}}, "not inside"),
        (
            {"version": "1", "parameters": {"ph": {"spike": {"suspect": 1.0, "fail": 0.5}}}},
            "below the suspect",
        ),
        ({"version": "1", "parameters": {"ph": {"spikes": {"suspect": 1.0}}}}, "spikes"),
        ({"version": "1", "sensors": {"ph-1": {"flatline": {}}}}, "unknown settings"),
        (
            {
                "version": "1",
                "parameters": {"temperature": {"climatology": [{"months": [13], "suspect_span": [0, 1]}]}},
            },
            "12",
        ),
        ({"version": ""}, "version"),
    ],
)
def test_an_invalid_configuration_is_refused_with_the_reason(raw: dict, message: str):
    with pytest.raises(ValueError, match=message):
        QcConfig.model_validate(raw)


def test_an_override_that_breaks_the_merged_settings_is_refused_when_used():
    config = QcConfig.model_validate(
        {"version": "1", "sensors": {"ph-1": {"gross_range": {"suspect_span": [5, 20]}}}}
    )
    with pytest.raises(ValueError, match="sensor 'ph-1'"):
        qc_flags(readings([7.0]), SENSORS, config)


TOLERANT = QcConfig.model_validate(
    {
        "version": "tolerant",
        "defaults": {"gap": {"max_intervals": 5}},
        "parameters": {"ph": {"flat_line": {"tolerance": 0.01, "suspect_minutes": 60, "fail_minutes": 240}}},
    }
)


def test_a_slow_ramp_within_the_tolerance_from_minute_to_minute_is_no_flat_line():
    ramp = [7.0 + 0.03 * i / 60 for i in range(600)]  # 0.03 pH an hour: 0.0005 a minute
    out = qc_flags(readings(ramp), SENSORS, TOLERANT)
    assert set(out["qc_flat_line"]) == {1}


def test_a_flat_line_within_the_tolerance_is_suspect_after_the_suspect_time_and_fails_after_the_fail_time():
    values = wobble(30) + [7.2 + 0.004 * (i % 3) for i in range(300)]  # moves, but never by 0.01
    out = qc_flags(readings(values), SENSORS, TOLERANT)["qc_flat_line"].to_list()
    assert out == [1] * 30 + [1] * 60 + [3] * 180 + [4] * 60  # an hour after it went flat, then four


def test_a_flat_line_window_never_reaches_across_a_gap_or_into_another_sensor():
    values = [7.2] * 100
    minutes = list(range(70)) + [m + 20 for m in range(70, 100)]  # 21 minutes without a reading
    out = qc_flags(readings(values, minutes=minutes), SENSORS, TOLERANT)["qc_flat_line"].to_list()
    assert out == [1] * 60 + [3] * 10 + [1] * 30  # flat for an hour at minute 60; the count restarts
    ramp = readings([7.0 + 0.03 * i / 60 for i in range(100)], "ph-1")
    flat = readings([7.0] * 100, "ph-2")
    both = qc_flags(pl.concat([ramp, flat]), SENSORS, TOLERANT)
    assert both.filter(pl.col("sensor_id") == "ph-1")["qc_flat_line"].unique().to_list() == [1]
    assert both.filter(pl.col("sensor_id") == "ph-2")["qc_flat_line"].to_list() == [1] * 60 + [3] * 40


def with_registry(
    valid_min: float | None, valid_max: float | None, interval: int | None = 60
) -> pl.DataFrame:
    return SENSORS.with_columns(
        valid_min=pl.lit(valid_min, pl.Float64),
        valid_max=pl.lit(valid_max, pl.Float64),
        interval_seconds=pl.lit(interval, pl.Int64),
    )


PINNED = CONFIG.model_copy(update={"defaults": {**CONFIG.defaults, "gross_range": {"pinned": {}}}})


def test_readings_at_the_ends_of_the_registry_range_fail_alone_or_held():
    values = wobble(5) + [4.0] * 30 + [4.01, 10.0, 7.0]
    out = qc_flags(readings(values), with_registry(4.0, 10.0), PINNED)
    assert out["qc_gross_range"].to_list() == [1] * 5 + [4] * 30 + [3, 4, 1]  # 4.01 is only outside 6.5-9.5
    assert out["qc_flag"].to_list()[5:35] == [4] * 30  # from the first pinned reading, not after an hour
    conductivity = pl.DataFrame({"sensor_id": ["ph-1"], "parameter": ["conductivity"], "valid_max": [2500.0]})
    out = qc_flags(readings([2500.0000000001, 2499.9, 2500.0]), conductivity, PINNED)
    assert out["qc_gross_range"].to_list() == [4, 1, 4]  # a unit conversion's rounding is at the end


def test_a_registry_range_that_is_the_catalog_range_pins_nothing_and_the_configuration_can_set_one():
    at_catalog_ends = readings([0.0, 7.0, 14.0])
    out = qc_flags(at_catalog_ends, with_registry(0.0, 14.0), PINNED)
    assert out["qc_gross_range"].to_list() == [3, 1, 3]  # outside the suspect span only
    spanned = QcConfig.model_validate(
        {**PINNED.model_dump(), "sensors": {"ph-1": {"gross_range": {"pinned": {"span": [None, 9.0]}}}}}
    )
    assert qc_flags(readings([9.0, 8.9]), with_registry(4.0, None), spanned)["qc_gross_range"].to_list() == [
        4,
        1,
    ]
    assert qc_flags(readings([4.0]), with_registry(4.0, None), spanned)["qc_gross_range"].to_list() == [4]
    off = QcConfig.model_validate(
        {**spanned.model_dump(), "sensors": {"ph-1": {"gross_range": {"pinned": None}}}}
    )
    assert qc_flags(readings([4.0]), with_registry(4.0, 10.0), off)["qc_gross_range"].to_list() == [3]


def test_the_expected_interval_follows_the_sensor_cadence_in_the_registry():
    every_15 = readings(wobble(8), minutes=[15 * i for i in range(8)])
    out = qc_flags(every_15, with_registry(None, None, interval=900), CONFIG)
    assert out["qc_gap"].to_list() == [2] + [1] * 7  # not a gap after every reading
    assert out["qc_rate_of_change"].to_list() == [2] + [1] * 7  # neighbours within the gap limit
    sixty = qc_flags(every_15, with_registry(None, None, interval=None), CONFIG)
    assert sixty["qc_gap"].to_list() == [2] + [3] * 7  # the configuration's 60 seconds, as before
    slow = CONFIG.model_copy(update={"sensors": {"ph-1": {"expected_interval_seconds": 60}}})
    assert qc_flags(every_15, with_registry(None, None, interval=900), slow)["qc_gap"].to_list()[1] == 3


def test_flag_long_frame_takes_instrument_ranges_and_cadences_per_column():
    long = pl.concat(
        [
            readings([7.0, 4.0, 4.0, 7.1], "pH"),
            readings([235.0, 0.0, 2500.0, 236.0], "Leit", minutes=[0, 15, 30, 45]),
        ]
    ).with_columns(parameter=pl.col("sensor_id").replace_strict({"pH": "ph", "Leit": "conductivity"}))
    out = flag_long_frame(long, ranges={"pH": (4.0, None), "Leit": (None, 2500.0)})
    assert out.select("sensor_id", "qc_gross_range").rows() == [
        ("Leit", 1), ("Leit", 4), ("Leit", 4), ("Leit", 1),  # 0 by the shipped conductivity rule
        ("pH", 1), ("pH", 4), ("pH", 4), ("pH", 1),
    ]  # fmt: skip
    assert out.filter(pl.col("sensor_id") == "Leit")["qc_gap"].to_list() == [2, 1, 1, 1]  # 15-minute cadence
    assert out.columns[:4] == ["sensor_id", "observed_at", "value", "parameter"]


def test_a_healthy_conductivity_signal_at_whole_microsiemens_passes_the_shipped_settings():
    import numpy as np

    rng = np.random.default_rng(4)
    minutes = np.arange(3 * 1440)
    daily = 235 + 4 * np.sin(2 * np.pi * minutes / 1440) + np.cumsum(rng.normal(0, 0.02, minutes.size))
    values = np.round(daily + rng.normal(0, 0.2, minutes.size)).tolist()  # a 1 uS/cm display
    frame = readings(values, "cond-1")
    sensors = pl.DataFrame({"sensor_id": ["cond-1"], "parameter": ["conductivity"], "interval_seconds": [60]})
    runs = frame.select(same=(pl.col("value") != pl.col("value").shift(1)).cum_sum()).group_by("same").len()
    assert runs["len"].max() > 60  # it holds one value for more than an hour at a time: healthy all the same
    out = qc_flags(frame, sensors, load_qc_config())
    assert out["qc_flag"].to_list() == [1] * len(values)
