"""The `waterline` command line as a user meets it: help for every command, the set-up path, plain errors."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.cli import app
from tasks.database import begin
from tasks.models import QuarantinedRow, Reading
from tasks.settings import reset_settings

runner = CliRunner()

COMMANDS = [
    ["db", "upgrade"],
    ["sample"],
    ["ingest"],
    ["run", "nightly"],
    ["run", "hourly"],
    ["run", "dispatch"],
    ["serve"],
    ["demo"],
    ["bench"],
    ["quarantine", "list"],
    ["quarantine", "show"],
    ["quarantine", "release"],
    ["incidents", "list"],
    ["incidents", "show"],
    ["incidents", "ack"],
    ["incidents", "resolve"],
    ["evaluate"],
    ["qc", "show"],
    ["detect", "import-labels"],
    ["detect", "train"],
    ["detect", "models"],
    ["bench", "ingest"],
    ["bench", "detect"],
    ["bench", "report"],
    ["run", "monthly"],
    ["compliance", "results"],
    ["compliance", "plans"],
    ["compliance", "show"],
    ["compliance", "update"],
    ["compliance", "history"],
    ["reports", "list"],
    ["reports", "resend"],
    ["bench", "export"],
    ["export", "sensor-data"],
    ["export", "alerts"],
    ["export", "incidents"],
    ["export", "water-usage"],
    ["export", "system-health"],
    ["export", "audit-log"],
    ["export", "bulk"],
    ["bench", "analytics"],
    ["bench", "webhooks"],
    ["run", "backfill"],
    ["webhooks", "add"],
    ["webhooks", "list"],
    ["webhooks", "show"],
    ["webhooks", "update"],
    ["webhooks", "remove"],
    ["webhooks", "rotate-secret"],
    ["webhooks", "test"],
    ["webhooks", "stats"],
    ["webhooks", "deliveries"],
    ["webhooks", "redeliver"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_explains_itself(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and " ".join(command) in result.output
    assert len(result.output.split("Usage: ", 1)[1].splitlines()) > 2


def test_upgrade_sample_and_ingest_report_what_they_did(database):
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert re.search(r"is at revision \d{4}$", upgraded.output.strip())

    sampled = runner.invoke(app, ["sample", "--days", "1", "--municipalities", "2", "--stations", "1",
                                  "--interval", "900", "--start", "2026-03-10"])
    assert sampled.exit_code == 0, sampled.output
    assert "for 2 municipalities" in sampled.output

    ingested = runner.invoke(app, ["ingest"])
    assert ingested.exit_code == 0, ingested.output
    with begin() as conn:
        loaded = conn.scalar(select(func.count()).select_from(Reading))
        quarantined = conn.scalar(select(func.count()).select_from(QuarantinedRow))
    assert loaded > 0 and quarantined > 0
    shown = [int(n.replace(",", "")) for line in ingested.output.splitlines()
             for n in line.split("│")[3:5] if n.strip().replace(",", "").isdigit()]
    assert sum(shown) == loaded + quarantined

    again = runner.invoke(app, ["ingest"])
    assert again.exit_code == 0
    with begin() as conn:
        assert conn.scalar(select(func.count()).select_from(Reading)) == loaded


def test_an_unreachable_database_is_one_sentence_without_the_password(home, monkeypatch):
    monkeypatch.setenv("WATERLINE_DATABASE_URL", "postgresql+psycopg://wl:s3cr3t-pw@127.0.0.1:1/wl")
    reset_settings()
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "s3cr3t-pw" not in result.output and "Traceback" not in result.output


def test_a_database_without_tables_says_to_upgrade(home):
    sampled = runner.invoke(app, ["sample", "--days", "1", "--municipalities", "1", "--stations", "1",
                                  "--interval", "3600", "--start", "2026-03-10"])
    assert sampled.exit_code == 0, sampled.output
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 1
    assert "run `waterline db upgrade` first" in result.output


def test_bench_prints_every_stage_as_json(home, prefect_server):
    result = runner.invoke(app, ["bench", "--readings", "20000", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout[result.stdout.index("{"):])
    assert figures["database"] == "sqlite"
    assert 18_000 < figures["readings"] < 22_000
    stages = figures["stages"]
    assert list(stages)[:2] == ["generate_sample", "ingest"]
    assert {"aggregate", "detect_anomalies", "score_sensors", "judge_compliance", "write_reports",
            "email_reports", "deliver_webhooks"} <= set(stages)
    assert 0.95 * figures["readings"] < stages["ingest"]["rows"] <= figures["readings"]
    assert all(s["failed"] == 0 for name, s in stages.items() if name != "generate_sample")
    assert figures["peak_rss_mb"] > 0


def test_bench_detect_times_each_step_and_flags_every_reading():
    result = runner.invoke(app, ["bench", "detect", "--readings", "20000", "--json"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert set(figures["steps"]) == {"qc_flags", "detectors", "bare_rolling_mean", "qc_flags_and_detectors"}
    assert figures["readings"] == 20_000
    assert sum(figures["qc_flag_counts"].values()) == 20_000
    assert set(figures["qc_flag_counts"]) >= {"1", "9"}  # the generator leaves some values missing
    combined = figures["steps"]["qc_flags_and_detectors"]["seconds"]
    parts = figures["steps"]["qc_flags"]["seconds"] + figures["steps"]["detectors"]["seconds"]
    assert abs(combined - parts) < 0.01
