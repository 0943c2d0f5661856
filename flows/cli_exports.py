"""`waterline export`: one kind of a municipality's data (or all of it, zipped) as a file.

Registered in flows/cli.py with `app.add_typer(exports_app, name="export")`. Like
flows/cli_compliance.py it keeps its own error wrapper and console, so it imports without flows.cli.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.cli_common import console, plain_errors
from tasks.exports.request import BULK, FORMATS, KINDS

exports_app = typer.Typer(
    help="Export a municipality's data: sensor data, alerts, incidents, water usage, system health, "
    "sensor uptime, the audit log, aggregates with a moving average, or all of them zipped.",
    no_args_is_help=True,
)


Many = Annotated[list[str] | None, typer.Option()]


def _export(kind: str):  # noqa: ANN202
    """The command of one kind: the same options for every kind, checked by make_request."""

    @plain_errors
    def command(
        municipality: Annotated[
            str, typer.Option("--municipality", "-m", help="The municipality (required).")
        ],
        from_day: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")],
        to_day: Annotated[str | None, typer.Option("--to", help="Last local day (default: --from).")] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}.")] = "csv",
        station: Annotated[list[str] | None, typer.Option(help="Only this station (repeatable).")] = None,
        sensor: Annotated[list[str] | None, typer.Option(help="Only this sensor (repeatable).")] = None,
        parameter: Annotated[list[str] | None, typer.Option(help="Only this parameter (repeatable).")] = None,
        severity: Annotated[list[str] | None, typer.Option(help="Only this severity (repeatable).")] = None,
        status: Annotated[
            list[str] | None,
            typer.Option(
                help="Incident status, or readings' QC status: good, suspect, fail... (repeatable)."
            ),
        ] = None,
        resolution: Annotated[
            str | None, typer.Option(help="Aggregates: hour, day, week or month (default day).")
        ] = None,
        window: Annotated[
            int | None, typer.Option(help="Aggregates: points of the moving average (default 10).")
        ] = None,
        output: Annotated[
            str | None,
            typer.Option(
                "--output", "-o", help="A local path, folder or s3:// URL; default: object storage."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        from tasks.exports.export import run_export
        from tasks.exports.request import make_request

        request = make_request(
            kind,
            municipality,
            from_day,
            to_day,
            fmt,
            station=station,
            sensor=sensor,
            parameter=parameter,
            severity=severity,
            status=status,
            resolution=resolution,
            window=window,
        )
        result = run_export(request, output)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        console.print(
            f"wrote {result['rows']:,} rows of {kind.replace('_', ' ')} ({result['format']}, "
            f"{result['size_bytes']:,} bytes) to {result['location']}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )

    command.__doc__ = (
        f"Export {KINDS[kind][0]}." if kind in KINDS else "Export every kind, and the two PDFs, as one zip."
    )
    return command


for _kind in [*KINDS, BULK]:
    exports_app.command(_kind.replace("_", "-"))(_export(_kind))
