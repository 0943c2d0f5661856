"""The e-mail announcing a monthly compliance report: subject, plain text and HTML, from the
templates in reports_templates/."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape as html_escape

import polars as pl

from tasks.reports.monthly_render import (
    check_meta,
    monthly_frames,
    number_text,
    status_counts,
    unconfirmed_mark,
    unconfirmed_note,
)
from tasks.reports.monthly_templates import (
    email_html,
    email_lines,
    email_subject_and_text,
    monthly_layout,
    status_word,
)
from tasks.reports.templates import fill


def monthly_email(content: dict, meta: dict, links: Mapping[str, str] | None) -> tuple[str, str, str]:
    """Subject, plain-text and HTML body of the e-mail announcing the report: AMENDED in the
    subject when amended, the counts per status, the non-compliant results, how many insights
    the report lists and the links (`links` maps a name such as 'PDF' to its URL)."""
    frames, meta = monthly_frames(content), check_meta(meta)
    layout, town, period = monthly_layout(), content["municipality"], content["period"]
    email, results = layout["email"], frames["results"]
    counts = [
        {"word": status_word(s), "count": n, "colour": layout["statuses"][s]["colour"]}
        for s, n in status_counts(results)
    ]
    failing = (
        results.filter(pl.col("status") == "NON_COMPLIANT")
        .select(
            "standard",
            "parameter",
            "rule_code",
            "statistic",
            "unit",
            value=number_text("statistic_value"),
            kind=pl.col("limit_kind").replace_strict(layout["limit_kinds"], default=pl.col("limit_kind")),
            limit=number_text("limit"),
            mark=unconfirmed_mark(),
        )
        .to_dicts()
    )
    link_rows = [{"name": name, "url": url} for name, url in (links or {}).items()]
    count = frames["insights"].height
    insights = fill(email["insights_some"], count=count) if count else email["insights_none"]
    amendment = meta.get("amendment") or {}
    changes = [{"change": c} for c in amendment.get("changes") or [layout["amended_no_changes"]]]
    previous = amendment.get("previous_revision", meta["revision"] - 1)
    plain = {
        "publisher": layout["publisher"],
        "municipality_name": town["name"],
        "municipality_id": town["id"],
        "period_label": period["label"],
        "start": period["start"].isoformat(),
        "end": period["end"].isoformat(),
        "timezone": town["timezone"],
        "revision": meta["revision"],
        "total": results.height,
        "standards": ", ".join(content["standards"]),
        "content_sha256": meta["content_sha256"],
        "amended_prefix": email["amended_subject_prefix"] if meta["is_amended"] else "",
    }
    subject, text = email_subject_and_text(
        **plain,
        amendment=(
            "\n"
            + fill(
                email["amendment_text"],
                revision=meta["revision"],
                previous=previous,
                changes=email_lines("change_line", changes),
            )
            if meta["is_amended"]
            else ""
        ),
        status_counts=email_lines("status_line", counts),
        noncompliances=email_lines("noncompliance_line", failing) if failing else email["noncompliance_none"],
        unconfirmed="\n" + unconfirmed_note(results) + "\n",
        insights=insights,
        links=email_lines("link_line", link_rows) if link_rows else email["links_none"],
    )
    html = email_html(
        **{k: html_escape(str(v)) for k, v in plain.items()},
        subject=html_escape(subject),
        amendment=(
            fill(
                email["html_amendment"],
                revision=meta["revision"],
                previous=previous,
                changes=email_lines("change_line", changes, html=True),
            )
            if meta["is_amended"]
            else ""
        ),
        status_counts=email_lines("status_line", counts, html=True),
        noncompliances=(
            email_lines("noncompliance_line", failing, html=True)
            if failing
            else email["html_noncompliance_none"]
        ),
        unconfirmed=html_escape(unconfirmed_note(results)),
        insights=html_escape(insights),
        links=email_lines("link_line", link_rows, html=True) if link_rows else email["html_links_none"],
    )
    return subject, text, html
