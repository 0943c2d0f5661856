"""The look and wording of the monthly compliance report and of its e-mail, read from
`reports_templates/` (`monthly_compliance.yaml`, `monthly_email.txt`, `monthly_email.html`)."""

from __future__ import annotations

from functools import lru_cache
from html import escape

import yaml

from tasks.reports.templates import TEMPLATES_DIR, fill

STATUSES = ("NON_COMPLIANT", "WARNING", "INSUFFICIENT_DATA", "COMPLIANT")


@lru_cache(maxsize=1)
def monthly_layout() -> dict:
    """Titles, section names, status words and colours, notes, sheet names and chart sizes."""
    layout = yaml.safe_load((TEMPLATES_DIR / "monthly_compliance.yaml").read_text(encoding="utf-8"))
    missing = [s for s in STATUSES if s not in layout.get("statuses", {})]
    if missing:
        raise ValueError(f"monthly_compliance.yaml gives no word and colour for status {', '.join(missing)}")
    return layout


def status_word(status: str) -> str:
    """The word the report prints for a status code (`NON_COMPLIANT` -> 'Non-compliant')."""
    return monthly_layout()["statuses"][status]["word"]


def amendment_lines(meta: dict) -> list[str]:
    """The AMENDED banner and the sentences saying what changed; empty for an original report."""
    if not meta.get("is_amended"):
        return []
    layout = monthly_layout()
    amendment = meta.get("amendment") or {}
    previous = amendment.get("previous_revision", meta["revision"] - 1)
    changes = list(amendment.get("changes") or [])
    return [
        fill(layout["amended_banner"], revision=meta["revision"], previous=previous),
        fill(layout["amended_changes"], previous=previous),
        *(changes or [layout["amended_no_changes"]]),
    ]


def email_subject_and_text(**values) -> tuple[str, str]:
    """Subject and plain-text body of the monthly e-mail (`monthly_email.txt`: a Subject line, a
    blank line, then the body)."""
    text = (TEMPLATES_DIR / "monthly_email.txt").read_text(encoding="utf-8")
    head, _, body = fill(text, **values).partition("\n\n")
    if not head.startswith("Subject: "):
        raise ValueError("monthly_email.txt must start with a 'Subject: ' line")
    return head.removeprefix("Subject: ").strip(), body


def email_html(**values) -> str:
    """The HTML body of the monthly e-mail (`monthly_email.html`); the values are already HTML."""
    return fill((TEMPLATES_DIR / "monthly_email.html").read_text(encoding="utf-8"), **values)


def email_lines(key: str, rows: list[dict], html: bool = False) -> str:
    """One template line (`email.<key>`, or `email.html_<key>`) per row, joined; HTML-escaped
    values for the HTML body."""
    template = monthly_layout()["email"][f"html_{key}" if html else key]
    clean = (lambda v: escape(str(v))) if html else str
    return ("" if html else "\n").join(
        fill(template, **{k: clean(v) for k, v in row.items()}) for row in rows
    )
