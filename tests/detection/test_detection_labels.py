"""Labels of a station's time: labelled files become event and normal intervals, operators' word
on incidents becomes labels, the latest label of a minute decides, and minutes are built from
usable readings only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal
from sqlalchemy import insert, select
from typer.testing import CliRunner

from flows.cli import app
from tasks.anomalies.incident_actions import acknowledge, resolve
from tasks.database import begin
from tasks.detection.frames import minute_labels, station_readings, wide_minutes
from tasks.detection.labels import label_intervals, read_label_file, read_labels
from tasks.models import DetectionLabel, Incident

from .conftest import seed_station

runner = CliRunner()
T0 = datetime(2026, 5, 4, 8, tzinfo=UTC)
TIME = pl.Datetime("us", "UTC")


def _minutes(n: int, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(n)]


def _csv(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_runs_of_a_labelled_file_become_half_open_intervals_cut_at_gaps():
    times = _minutes(6) + _minutes(2, T0 + timedelta(minutes=20))
    rows = pl.DataFrame(
        {"observed_at": times, "is_event": [False, False, True, True, False, False, False, False]},
        schema={"observed_at": TIME, "is_event": pl.Boolean},
    )
    expected = pl.DataFrame(
        {
            "starts_at": [
                T0,
                T0 + timedelta(minutes=2),
                T0 + timedelta(minutes=4),
                T0 + timedelta(minutes=20),
            ],
            "ends_at": [
                T0 + timedelta(minutes=2),
                T0 + timedelta(minutes=4),
                T0 + timedelta(minutes=6),
                T0 + timedelta(minutes=22),
            ],
            "is_event": [False, True, False, False],
            "rows": [2, 2, 2, 2],
        },
        schema={"starts_at": TIME, "ends_at": TIME, "is_event": pl.Boolean, "rows": pl.UInt32},
    )
    assert_frame_equal(label_intervals(rows), expected)


def test_a_gecco_like_file_is_read_in_its_zone_and_missing_labels_are_left_out(tmp_path):
    path = _csv(
        tmp_path,
        "gecco.csv",
        "Time,Tp,EVENT\n2026-05-04 10:00:00,1,FALSE\n2026-05-04 10:01:00,1,TRUE\n2026-05-04 10:02:00,1,NA\n",
    )
    rows = read_label_file(path, timezone="Europe/Berlin")
    expected = pl.DataFrame(
        {"observed_at": [T0, T0 + timedelta(minutes=1)], "is_event": [False, True]},
        schema={"observed_at": TIME, "is_event": pl.Boolean},
    )
    assert_frame_equal(rows, expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Time,Label\n2026-05-04 10:00:00,true\n", "no 'EVENT' column"),
        ("Time,EVENT\n2026-05-04 10:00:00,maybe\n", "neither true nor false, e.g. 'maybe'"),
        ("Time,EVENT\nyesterday,true\n", "not ISO-8601 times, e.g. 'yesterday'"),
        ("Time,EVENT\n2026-05-04 10:00:00,true\n2026-05-04 10:00:00,false\n", "more than one row"),
    ],
)
def test_a_file_that_is_not_labelled_is_refused_with_a_sentence(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_label_file(_csv(tmp_path, "bad.csv", text))


def test_the_latest_label_of_a_minute_decides_and_unlabelled_minutes_are_normal():
    times = pl.Series(_minutes(10)).dt.replace_time_zone(None)
    labels = pl.DataFrame(
        {
            "starts_at": [T0 + timedelta(minutes=2), T0 + timedelta(minutes=4, seconds=30)],
            "ends_at": [T0 + timedelta(minutes=7), T0 + timedelta(minutes=5, seconds=30)],
            "is_event": [True, False],
            "created_at": [T0, T0 + timedelta(days=1)],  # the dismissal came later
        },
        schema={"starts_at": TIME, "ends_at": TIME, "is_event": pl.Boolean, "created_at": TIME},
    )
    expected = [False, False, True, True, False, False, True, False, False, False]
    assert_series_equal(minute_labels(times, labels), pl.Series("label", expected))
    assert minute_labels(times, labels.reverse().with_columns(created_at=pl.lit(T0, TIME))).to_list() == [
        False, False, True, True, True, True, True, False, False, False,
    ]  # fmt: skip


def test_minutes_leave_out_failed_and_missing_readings_and_average_within_a_minute():
    readings = pl.DataFrame(
        {
            "sensor_id": ["a", "a", "a", "a", "b"],
            "observed_at": [
                T0,
                T0 + timedelta(seconds=30),
                T0 + timedelta(minutes=1),
                T0 + timedelta(minutes=2),
                T0,
            ],
            "value": [1.0, 2.0, 9.0, 8.0, 5.0],
            "qc_flag": [1, 1, 4, 9, 3],
        },
        schema={"sensor_id": pl.String, "observed_at": TIME, "value": pl.Float64, "qc_flag": pl.Int16},
    )
    wide = wide_minutes(readings, ["a", "b", "c"], T0, T0 + timedelta(minutes=3))
    expected = pl.DataFrame(
        {
            "observed_at": pl.Series(_minutes(3)).dt.replace_time_zone(None),
            "a": [1.5, None, None],
            "b": [5.0, None, None],
            "c": [None, None, None],
        },
        schema={"observed_at": pl.Datetime("us"), "a": pl.Float64, "b": pl.Float64, "c": pl.Float64},
    )
    assert_frame_equal(wide, expected)


def test_import_labels_keeps_intervals_of_one_station_and_replaces_its_earlier_import(database, tmp_path):
    with begin() as conn:
        station = seed_station(conn, "riverton")
        seed_station(conn, "lindenfeld")
    lines = [f"{t:%Y-%m-%d %H:%M:%S},{str(10 <= i < 40).lower()}" for i, t in enumerate(_minutes(60))]
    path = _csv(tmp_path, "plant-may.csv", "Time,EVENT\n" + "\n".join(lines) + "\n")
    args = ["detect", "import-labels", str(path), "-m", "riverton", "-s", station]

    first = runner.invoke(app, args)
    again = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    assert "60 labelled rows kept as 3 interval(s) of station riverton-plant, 1 of them events (30 min)" in (
        first.output
    )
    assert "3 interval(s) of its earlier import replaced" in again.output
    with begin() as conn:
        stored = conn.execute(
            select(
                DetectionLabel.municipality_id,
                DetectionLabel.station_id,
                DetectionLabel.starts_at,
                DetectionLabel.ends_at,
                DetectionLabel.is_event,
                DetectionLabel.source,
            ).order_by(DetectionLabel.starts_at)
        ).all()
    assert [tuple(r) for r in stored] == [
        ("riverton", station, T0, T0 + timedelta(minutes=10), False, "file:plant-may.csv"),
        (
            "riverton",
            station,
            T0 + timedelta(minutes=10),
            T0 + timedelta(minutes=40),
            True,
            "file:plant-may.csv",
        ),
        (
            "riverton",
            station,
            T0 + timedelta(minutes=40),
            T0 + timedelta(minutes=60),
            False,
            "file:plant-may.csv",
        ),
    ]


def test_labels_for_a_station_of_another_municipality_are_refused(database, tmp_path):
    with begin() as conn:
        station = seed_station(conn, "riverton")
        seed_station(conn, "lindenfeld")
    path = _csv(tmp_path, "x.csv", "Time,EVENT\n2026-05-04 08:00:00,true\n")

    result = runner.invoke(app, ["detect", "import-labels", str(path), "-m", "lindenfeld", "-s", station])

    assert result.exit_code == 1
    assert "municipality 'lindenfeld' has no station 'riverton-plant'" in result.output
    with begin() as conn:
        assert conn.execute(select(DetectionLabel.id)).all() == []


def _incident(conn, station: str, first: datetime, minutes: int, municipality_id: str = "riverton") -> int:
    return conn.execute(
        insert(Incident).values(
            municipality_id=municipality_id,
            station_id=station,
            sensor_id=f"{station}-turbidity",
            kind="rolling_zscore",
            severity="HIGH",
            status="open",
            summary="turbidity jump",
            first_observed_at=first,
            last_observed_at=first + timedelta(minutes=minutes),
            anomaly_count=2,
        )
    ).inserted_primary_key[0]


def test_acknowledged_and_dismissed_incidents_become_labels_of_their_station(database):
    with begin() as conn:
        station = seed_station(conn, "riverton")
        other = seed_station(conn, "lindenfeld")
        confirmed = _incident(conn, station, T0 + timedelta(minutes=10), 5)
        dismissed = _incident(conn, station, T0 + timedelta(minutes=30), 3)
        unlabelled = _incident(conn, station, T0 + timedelta(minutes=50), 3)
        elsewhere = _incident(conn, other, T0 + timedelta(minutes=10), 5, "lindenfeld")
        acknowledge(conn, confirmed, "ops:ana", now=T0 + timedelta(hours=2))
        resolve(conn, dismissed, "ops:ben", dismiss=True, now=T0 + timedelta(hours=3))
        acknowledge(conn, elsewhere, "ops:carl", now=T0 + timedelta(hours=2))
        labels = read_labels(conn, "riverton", station, T0, T0 + timedelta(hours=1))

    expected = pl.DataFrame(
        {
            "starts_at": [T0 + timedelta(minutes=10), T0 + timedelta(minutes=30)],
            "ends_at": [T0 + timedelta(minutes=16), T0 + timedelta(minutes=34)],
            "is_event": [True, False],
            "source": [f"incident:{confirmed}", f"incident:{dismissed}"],
            "created_at": [T0 + timedelta(hours=2), T0 + timedelta(hours=3)],
        },
        schema={
            "starts_at": TIME,
            "ends_at": TIME,
            "is_event": pl.Boolean,
            "source": pl.String,
            "created_at": TIME,
        },
    )
    assert_frame_equal(labels, expected)
    assert unlabelled not in (confirmed, dismissed)
    sensors = pl.DataFrame({"sensor_id": [f"{station}-ph"], "parameter": ["ph"]})
    wide = pl.DataFrame(
        {"observed_at": pl.Series(_minutes(60)).dt.replace_time_zone(None), f"{station}-ph": 7.0}
    )
    minutes = station_readings(wide, sensors, labels).frame["label"]
    assert minutes.arg_true().to_list() == list(range(10, 16))


def _times_file(tmp_path, name: str, times: list[str], events: list[bool] | None = None):
    events = events or [i % 2 == 1 for i in range(len(times))]
    lines = [f"{t},{str(e).lower()}" for t, e in zip(times, events, strict=True)]
    return _csv(tmp_path, name, "Time,EVENT\n" + "\n".join(lines) + "\n")


def _stored_intervals(source: str) -> list[tuple]:
    with begin() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(DetectionLabel.starts_at, DetectionLabel.ends_at, DetectionLabel.is_event)
                .where(DetectionLabel.source == source)
                .order_by(DetectionLabel.starts_at)
            )
        ]


def _set_timezone(municipality_id: str, zone: str) -> None:
    from sqlalchemy import update

    from tasks.models import Municipality

    with begin() as conn:
        conn.execute(update(Municipality).where(Municipality.id == municipality_id).values(timezone=zone))


def test_times_with_z_or_an_offset_land_at_the_same_utc_instants(database, tmp_path):
    with begin() as conn:
        station = seed_station(conn, "riverton")
    _set_timezone("riverton", "America/Chicago")  # never used: every time carries its offset
    utc = _times_file(
        tmp_path, "utc.csv", ["2026-03-01T10:00:00Z", "2026-03-01T10:01:00Z", "2026-03-01T10:02:00Z"]
    )
    offset = _times_file(
        tmp_path,
        "offset.csv",
        ["2026-03-01T11:00:00+01:00", "2026-03-01 11:01:00+01:00", "2026-03-01T05:02:00-05:00"],
    )

    for path in (utc, offset):
        result = runner.invoke(app, ["detect", "import-labels", str(path), "-m", "riverton", "-s", station])
        assert result.exit_code == 0, result.output

    at = datetime(2026, 3, 1, 10, tzinfo=UTC)
    expected = [
        (at, at + timedelta(minutes=1), False),
        (at + timedelta(minutes=1), at + timedelta(minutes=2), True),
        (at + timedelta(minutes=2), at + timedelta(minutes=3), False),
    ]
    assert _stored_intervals("file:utc.csv") == expected
    assert _stored_intervals("file:offset.csv") == expected


def test_times_without_an_offset_take_the_municipality_the_source_mapping_or_the_given_zone(
    database, tmp_path
):
    from tasks.storage import inbox_store

    with begin() as conn:
        station = seed_station(conn, "riverton")
    _set_timezone("riverton", "Europe/Berlin")
    inbox_store().put_bytes("riverton/sources/plant.yaml", b"layout: long\ntimezone: America/Chicago\n")
    path = _times_file(tmp_path, "naive.csv", ["2026-03-01 11:00:00", "2026-03-01 11:01:00"], [True, True])
    args = ["detect", "import-labels", str(path), "-m", "riverton", "-s", station]
    local_11 = {
        "Europe/Berlin": datetime(2026, 3, 1, 10, tzinfo=UTC),
        "America/Chicago": datetime(2026, 3, 1, 17, tzinfo=UTC),
        "Asia/Tokyo": datetime(2026, 3, 1, 2, tzinfo=UTC),
    }

    for extra, zone, origin in [
        ([], "Europe/Berlin", "the timezone of municipality riverton"),
        (["--source", "plant"], "America/Chicago", "the timezone of source mapping plant"),
        (["--timezone", "Asia/Tokyo"], "Asia/Tokyo", "given"),
    ]:
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        assert f"times without an offset read in {zone} ({origin})" in result.output
        at = local_11[zone]
        assert _stored_intervals("file:naive.csv") == [(at, at + timedelta(minutes=2), True)]

    both = runner.invoke(app, [*args, "--source", "plant", "--timezone", "UTC"])
    missing = runner.invoke(app, [*args, "--source", "lab"])
    assert both.exit_code == 1 and "give either --timezone or --source" in both.output
    assert missing.exit_code == 1 and "municipality 'riverton' has no source mapping 'lab'" in missing.output


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (
            ["2026-03-29 01:59:00", "2026-03-29 02:30:00", "2026-03-29 03:00:00"],
            "1 time(s) do not exist (daylight-saving gap) in Europe/Berlin: line 3 (2026-03-29 02:30:00)",
        ),
        (
            ["2026-10-25 02:30:00", "2026-10-25 02:31:00", "2026-10-25T02:32:00+01:00"],
            "2 time(s) are ambiguous (daylight-saving fold) in Europe/Berlin: line 2 (2026-10-25 02:30:00), "
            "line 3 (2026-10-25 02:31:00)",
        ),
    ],
    ids=["gap", "fold"],
)
def test_a_local_time_a_daylight_saving_change_skips_or_repeats_is_refused_with_its_line(
    database, tmp_path, times, message
):
    with begin() as conn:
        station = seed_station(conn, "riverton")
    _set_timezone("riverton", "Europe/Berlin")
    path = _times_file(tmp_path, "dst.csv", times)

    result = runner.invoke(app, ["detect", "import-labels", str(path), "-m", "riverton", "-s", station])

    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "write these times with their UTC offset" in result.output
    assert _stored_intervals("file:dst.csv") == []
