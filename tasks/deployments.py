"""Serve the deployments of `prefect.yaml` from one process (the single-machine production shape)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def load_flow(entrypoint: str):  # noqa: ANN201
    """The flow named by a prefect.yaml entrypoint, `flows/file.py:function`."""
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def deployments_from_yaml(path: Path = PREFECT_YAML) -> list:
    """`RunnerDeployment`s with the names, schedules and parameters written in prefect.yaml."""
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    config = yaml.safe_load(path.read_text())
    found = []
    for spec in config["deployments"]:
        schedules = []
        for s in spec.get("schedules") or []:
            if "cron" in s:
                schedules.append(CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC")))
            else:
                schedules.append(IntervalSchedule(interval=s["interval"]))
        found.append(
            load_flow(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or {},
                schedules=schedules,
                concurrency_limit=spec.get("concurrency_limit"),
            )
        )
    return found


def serve_all() -> None:
    """Serve every deployment until interrupted; schedules fire only against a running server."""
    from prefect import serve

    serve(*deployments_from_yaml())
