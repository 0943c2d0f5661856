"""The look of reports and e-mails, read from `reports_templates/` (text and YAML, no code)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

import yaml

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "reports_templates"


@lru_cache(maxsize=1)
def daily_layout() -> dict:
    """Titles, section names, sheet names, colours and chart size of the daily summary."""
    return yaml.safe_load((TEMPLATES_DIR / "daily_summary.yaml").read_text(encoding="utf-8"))


def fill(text: str, **values) -> str:
    """`$name` placeholders of a template filled in; a missing value raises KeyError."""
    return Template(text).substitute(**values)


def amendment_note(revision: int) -> str | None:
    """'Amended: revision N supersedes revision N-1' for a revision after the first, else None."""
    if revision <= 1:
        return None
    return fill(daily_layout()["amended_note"], revision=revision, previous=revision - 1)


@dataclass(frozen=True)
class EmailText:
    subject: str
    body: str


def daily_email(**values) -> EmailText:
    """Subject and body of the daily-report e-mail (`daily_email.txt`: a Subject line, a blank
    line, then the body)."""
    text = (TEMPLATES_DIR / "daily_email.txt").read_text(encoding="utf-8")
    head, _, body = fill(text, **values).partition("\n\n")
    if not head.startswith("Subject: "):
        raise ValueError("daily_email.txt must start with a 'Subject: ' line")
    return EmailText(subject=head.removeprefix("Subject: ").strip(), body=body)
