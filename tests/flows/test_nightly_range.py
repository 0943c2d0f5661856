"""`waterline run nightly --from D --to D` (and the nightly flow's `from_day`/`to_day`): every day of a
range gets its own nightly flow run, in order; the range stops at the first failed day unless told to
keep going; a rerun changes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from prefect.states import Completed, Failed
from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.cli import app
from tasks.database import begin
from tasks.models import QcRun, Reading, ReadingQc, Report
from tasks.pipeline import check_range, day_line, range_days, range_total_line, run_days

runner = CliRunner()
FIRST, SECOND, THIRD = date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)


@pytest.mark.parametrize(
    ("day", "from_day", "to_day", "message"),
    [
        (FIRST, FIRST, SECOND, "give either --day or --from/--to (a range of days), not both"),
        (None, FIRST, None, "a range of days needs both --from and --to"),
        (None, SECOND, FIRST, "the range ends (2026-03-10) before it starts (2026-03-11)"),
    ],
)
def test_a_range_that_cannot_be_run_is_refused_with_a_sentence(day, from_day, to_day, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        range_days(day, from_day, to_day)


def test_a_range_is_its_days_in_order_and_no_range_is_a_one_day_run():
    assert range_days(None, FIRST, THIRD) == [FIRST, SECOND, THIRD]
    assert range_days(None, FIRST, FIRST) == [FIRST]
    assert range_days(FIRST, None, None) is None


def _summary(rows: int) -> dict:
    return {
        "stages": {
            "ingest": {"items": 2, "rows": rows, "totals": {}},
            "flag_readings": {"items": 2, "rows": rows, "totals": {}},
            "detect_anomalies": {
                "items": 2,
                "rows": rows,
                "totals": {"anomalies_new": 3, "incidents_opened": 1},
            },
            "write_reports": {"items": 2, "rows": 8, "totals": {"files_written": 8}},
        },
        "failures": {},
    }


class _Days:
    """A stand-in for the nightly flow that fails on the given days, recording the days it ran."""

    def __init__(self, failing: set[date]) -> None:
        self.failing, self.ran = failing, []

    def __call__(self, day: date, return_state: bool):  # noqa: ANN204
        assert return_state
        self.ran.append(day)
        if day in self.failing:
            return Failed(data=RuntimeError("1 unit(s) of work failed: flag_readings:riverton: disk full"))
        return Completed(data=_summary(100))


def test_a_range_stops_at_the_first_failed_day_unless_told_to_keep_going():
    days = [FIRST, SECOND, THIRD]
    stopping = _Days({SECOND})
    runs = list(run_days(stopping, days))

    assert stopping.ran == [FIRST, SECOND]
    assert [(r.day, r.failed) for r in runs] == [(FIRST, False), (SECOND, True)]
    assert day_line(runs[1]).startswith("2026-03-11: failed after")
    assert day_line(runs[1]).endswith("flag_readings:riverton: disk full")
    assert day_line(runs[0]).startswith(
        "2026-03-10: 2 municipalities, 100 readings loaded, 100 QC-flagged, 3 new anomalies, "
        "1 incidents opened, 8 report files written"
    )
    assert range_total_line(runs, days).startswith(
        "total 2026-03-10..2026-03-12: 1 of 3 day(s) done, 1 failed (2026-03-11), 1 not run; 100 readings"
    )
    with pytest.raises(
        RuntimeError, match="1 of 3 day.s. failed: 2026-03-11: .*disk full; 1 later day.s. not run"
    ):
        check_range(runs, days)

    going = _Days({SECOND})
    assert [r.failed for r in run_days(going, days, keep_going=True)] == [False, True, False]
    assert going.ran == days


def test_the_command_says_each_day_and_where_it_stopped(monkeypatch):
    import flows.nightly_pipeline

    args = ["run", "nightly", "--from", "2026-03-10", "--to", "2026-03-12"]
    stopping = _Days({SECOND})
    monkeypatch.setattr(flows.nightly_pipeline, "nightly_pipeline", stopping)

    stopped = runner.invoke(app, args)

    assert stopped.exit_code == 1
    said = " ".join(stopped.output.split())
    assert stopping.ran == [FIRST, SECOND]
    assert "2026-03-10: 2 municipalities, 100 readings loaded" in said
    assert "2026-03-11: failed after" in said and "flag_readings:riverton: disk full" in said
    assert "total 2026-03-10..2026-03-12: 1 of 3 day(s) done, 1 failed (2026-03-11), 1 not run" in said
    assert "stopped at 2026-03-11, the first failed day: 1 later day(s) not run" in said

    going = _Days({SECOND})
    monkeypatch.setattr(flows.nightly_pipeline, "nightly_pipeline", going)

    kept = runner.invoke(app, [*args, "--keep-going"])

    assert kept.exit_code == 1
    assert going.ran == [FIRST, SECOND, THIRD]
    assert "2 of 3 day(s) done, 1 failed (2026-03-11);" in " ".join(kept.output.split())
    assert "stopped at" not in kept.output


def test_a_day_and_a_range_together_are_refused_before_anything_runs():
    result = runner.invoke(
        app, ["run", "nightly", "--day", "2026-03-10", "--from", "2026-03-10", "--to", "2026-03-11"]
    )
    assert result.exit_code == 1
    assert "give either --day or --from/--to (a range of days), not both" in result.output


def _counts() -> dict:
    with begin() as conn:
        return {
            "readings": conn.scalar(select(func.count()).select_from(Reading)),
            "qc_runs": conn.scalar(select(func.count()).select_from(QcRun)),
            "readings_qc": conn.scalar(select(func.count()).select_from(ReadingQc)),
            "reports": sorted(
                conn.execute(select(Report.period_start, Report.format, Report.revision)).all()
            ),
        }


def test_a_two_day_range_runs_both_days_in_order_and_a_rerun_changes_nothing(database, prefect_server):
    from tasks.sample import generate_sample
    from tasks.storage import inbox_store

    sample = generate_sample(
        inbox_store(), start=FIRST, days=2, municipalities=1, stations_per_municipality=1,
        interval_seconds=900, seed=5,
    )  # fmt: skip
    args = ["run", "nightly", "--from", "2026-03-10", "--to", "2026-03-11"]

    first = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    day_lines = [line for line in lines if line.startswith(("2026-03-10:", "2026-03-11:"))]
    assert [line[:10] for line in day_lines] == ["2026-03-10", "2026-03-11"]
    assert all("1 municipality" in line and "failed" not in line for line in day_lines)
    assert any(line.startswith("total 2026-03-10..2026-03-11: 2 of 2 day(s) done;") for line in lines)
    counts = _counts()
    assert counts["readings"] == sample.total_readings - sample.total_bad_rows
    assert counts["qc_runs"] == 2  # one per day of the one municipality
    assert {period for period, _, _ in counts["reports"]} == {FIRST, SECOND}

    # the deployment's way: one flow run whose days are child flow runs
    from flows.nightly_pipeline import nightly_pipeline

    again = nightly_pipeline(from_day=FIRST, to_day=SECOND)

    assert list(again["days"]) == ["2026-03-10", "2026-03-11"]
    assert all(summary["failures"] == {} for summary in again["days"].values())
    assert _counts() == counts
    assert "0 readings loaded" in again["total"] and "0 report files written" in again["total"]
