"""`waterline quarantine`: a person sees quarantined rows and releases them once the cause is fixed."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.cli import app
from tasks.database import begin
from tasks.ingest import ingest_municipality
from tasks.models import AuditLog, IngestBatch, QuarantinedRow, Reading

runner = CliRunner()


def registry(municipality: str, valid_max: float) -> str:
    return f"""
municipality: {{id: {municipality}, name: {municipality.title()}}}
stations:
  - id: {municipality}-plant
    name: Plant
    sensors:
      - {{id: {municipality}-turbidity, parameter: turbidity, valid_max: {valid_max}}}
"""


def _put(home: Path, key: str, text: str) -> None:
    path = home / "inbox" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _load_two_tenants(home: Path) -> None:
    for m in ("riverton", "lakeside"):
        _put(home, f"{m}/registry.yaml", registry(m, 5))
        _put(
            home,
            f"{m}/readings/a.csv",
            "sensor_id,observed_at,value,unit\n"
            f"{m}-turbidity,2026-11-25T00:00:00Z,0.4,NTU\n"
            f"{m}-turbidity,2026-11-25T00:01:00Z,8.5,NTU\n"  # above the registered range
            f"{m}-turbidity,2026-11-25T00:02:00Z,abc,NTU\n",  # never a number
        )
        ingest_municipality.fn(m)


def _quarantined() -> list[tuple]:
    with begin() as conn:
        rows = conn.execute(
            select(QuarantinedRow.id, QuarantinedRow.municipality_id, QuarantinedRow.reasons,
                   QuarantinedRow.released_at).order_by(QuarantinedRow.id)
        )
        return [(r.id, r.municipality_id, r.reasons, r.released_at is not None) for r in rows]


@pytest.mark.parametrize("command", [["list"], ["show"], ["release"]], ids=" ".join)
def test_every_quarantine_command_explains_itself(command):
    result = runner.invoke(app, ["quarantine", *command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and f"quarantine {command[0]}" in result.output


def test_list_and_show_keep_to_one_municipality_when_asked(database, home):
    _load_two_tenants(home)
    rows = _quarantined()
    riverton = [r[0] for r in rows if r[1] == "riverton"]
    lakeside = [r[0] for r in rows if r[1] == "lakeside"]

    listed = runner.invoke(app, ["quarantine", "list", "--municipality", "riverton"])
    everything = runner.invoke(app, ["quarantine", "list"])
    shown = runner.invoke(app, ["quarantine", "show", str(riverton[0])])
    foreign = runner.invoke(app, ["quarantine", "show", str(lakeside[0]), "-m", "riverton"])

    assert listed.exit_code == 0, listed.output
    assert "2 quarantined row(s)" in listed.output and "lakeside" not in listed.output
    assert "outside" in listed.output and "valid" in listed.output
    assert "4 quarantined row(s)" in everything.output
    assert shown.exit_code == 0, shown.output
    assert "riverton-turbidity" in shown.output and "8.5" in shown.output
    assert "reason 1" in shown.output
    assert foreign.exit_code == 1
    assert foreign.output.strip() == (
        f"error: there is no quarantined row {lakeside[0]} in municipality 'riverton'"
    )


def test_release_loads_rows_that_now_pass_and_keeps_the_rest_with_new_reasons(database, home):
    _load_two_tenants(home)
    rows = _quarantined()
    riverton = [r[0] for r in rows if r[1] == "riverton"]
    lakeside = [r[0] for r in rows if r[1] == "lakeside"]
    _put(home, "riverton/registry.yaml", registry("riverton", 50))  # the range is corrected

    released = runner.invoke(
        app, ["quarantine", "release", *map(str, riverton), "--actor", "ops@riverton"]
    )

    assert released.exit_code == 0, released.output
    assert f"row {riverton[1]} is still quarantined: value 'abc' is not a number" in released.output
    assert [(r[0], r[1], r[3]) for r in _quarantined()] == [
        (riverton[0], "riverton", True),
        (riverton[1], "riverton", False),
        (lakeside[0], "lakeside", False),
        (lakeside[1], "lakeside", False),
    ]
    with begin() as conn:
        batch = conn.execute(
            select(IngestBatch.id, IngestBatch.municipality_id, IngestBatch.source, IngestBatch.status,
                   IngestBatch.rows_loaded).where(IngestBatch.source.like("quarantine-release:%"))
        ).one()
        readings = conn.execute(
            select(Reading.sensor_id, Reading.observed_at, Reading.value, Reading.batch_id)
            .order_by(Reading.sensor_id, Reading.observed_at)
        ).all()
        audits = conn.execute(
            select(AuditLog.actor, AuditLog.action).where(AuditLog.actor == "ops@riverton")
        ).all()
    assert (batch.municipality_id, batch.source, batch.status, batch.rows_loaded) == (
        "riverton", f"quarantine-release:{riverton[0]}", "loaded", 1
    )
    assert ("riverton-turbidity", datetime(2026, 11, 25, 0, 1, tzinfo=UTC), 8.5, batch.id) in [
        tuple(r) for r in readings
    ]
    assert [tuple(a) for a in audits] == [
        ("ops@riverton", "batch.loaded"),
        ("ops@riverton", "quarantine.released"),
    ]

    again = runner.invoke(app, ["quarantine", "release", str(riverton[0])])
    assert again.exit_code == 0, again.output
    assert _quarantined()[0][3] is True  # released once; the second time it is reported, not loaded


def test_release_by_batch_stays_within_the_municipality_given(database, home):
    _load_two_tenants(home)
    with begin() as conn:
        lakeside_batch = conn.scalar(
            select(IngestBatch.id).where(IngestBatch.municipality_id == "lakeside")
        )

    refused = runner.invoke(
        app, ["quarantine", "release", "--batch", str(lakeside_batch), "-m", "riverton"]
    )
    neither = runner.invoke(app, ["quarantine", "release"])

    assert refused.exit_code == 1
    assert refused.output.strip() == (
        f"error: batch {lakeside_batch} has no quarantined rows in municipality 'riverton'"
    )
    assert neither.exit_code == 1
    assert neither.output.strip() == "error: give quarantined row ids or --batch, one of the two"
    assert not any(r[3] for r in _quarantined())


def test_text_from_a_file_is_shown_as_written_never_as_markup_or_terminal_codes(database, home):
    _put(home, "riverton/registry.yaml", registry("riverton", 5))
    _put(
        home,
        "riverton/readings/a.csv",
        "sensor_id,observed_at,value,unit\n"
        "[red]ghost[/red],2026-11-25T00:00:00Z,0.4,NTU\n"
        "[/bold],2026-11-25T00:01:00Z,0.4,\x1b[31mNTU\n",
    )
    ingest_municipality.fn("riverton")
    first, second = (r[0] for r in _quarantined())

    listed = runner.invoke(app, ["quarantine", "list"])  # "[/bold]" as markup used to stop it
    shown_first = runner.invoke(app, ["quarantine", "show", str(first)])
    shown = runner.invoke(app, ["quarantine", "show", str(second)])

    assert listed.exit_code == 0, listed.output
    assert shown_first.exit_code == 0 and shown.exit_code == 0, shown_first.output + shown.output
    assert "[red]ghost[/red]" in shown_first.output
    assert "[/bold]" in shown.output and "\ufffd[31mNTU" in shown.output
    assert not any("\x1b" in r.output for r in (listed, shown_first, shown))


def test_a_line_refused_before_the_gate_is_not_released_and_keeps_its_reason(database, home):
    _put(home, "riverton/registry.yaml", registry("riverton", 5))
    path = home / "inbox" / "riverton" / "readings" / "a.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"sensor_id,observed_at,value,unit\n"
        b"riverton-turbidity,2026-11-25T00:00:00Z,0.4,NTU\n"
        b"riverton-turbidity,2026-11-25T00:01:00Z,0.5,\xb5S\n"  # Latin-1: refused as a line
    )
    ingest_municipality.fn("riverton")
    ((row_id, _, reasons, _),) = _quarantined()
    assert reasons[0].startswith("line 3 is not UTF-8 text")

    released = runner.invoke(app, ["quarantine", "release", str(row_id)])

    assert released.exit_code == 0, released.output
    assert "correct the file and drop it into the inbox again" in released.output
    assert _quarantined() == [(row_id, "riverton", reasons, False)]
