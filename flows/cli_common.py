"""What every `waterline` command group shares: the console, expected failures as one readable
sentence, and values printed as inert text."""

from __future__ import annotations

import functools
import re
import sys
from datetime import date, datetime

import typer
from rich.console import Console
from rich.text import Text

# Piped output (CI logs, the README) gets room for the wider tables; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 100)

_MISSING_TABLE = re.compile(
    r"no such table|relation \"\w+\" does not exist|no such column|column .* does not exist"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def plain_errors(command):  # noqa: ANN001
    """Turn expected failures into one readable sentence and exit code 1, never a traceback;
    passwords in URLs and webhook secrets are masked."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import sqlite3

        import psycopg
        from sqlalchemy.exc import SQLAlchemyError

        from tasks.settings import redact

        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):  # click's own exits are RuntimeErrors: let them through
            raise
        except (ValueError, OSError, RuntimeError, SQLAlchemyError, psycopg.Error, sqlite3.Error) as exc:
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            if _MISSING_TABLE.search(first_line):
                first_line = "the database schema is missing or out of date: run `waterline db upgrade` first"
            sentence = inert(_SECRET.sub("whsec_***", redact(first_line)))
            console.print(Text.assemble(("error:", "red"), " ", sentence), soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def inert(value: object) -> str:
    """A value as inert text: '-' for none, ISO dates, no terminal control sequences."""
    if value is None:
        return "-"
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return _CONTROL.sub("\ufffd", text)


def cell(value: object) -> Text:
    """A value as a table cell that Rich does not read as markup."""
    return Text(inert(value))
