"""Labels of a station's time: from labelled files and from operators' word on incidents.

A labelled file (GECCO's layout: a time column and a boolean event column, one row per minute)
becomes half-open intervals [starts_at, ends_at): one per run of consecutive rows with the same
label, cut where rows are missing. Both kinds of run are kept: an event run says "this was an
event", a normal run says "someone looked and this was not". Importing a file again replaces the
labels of its earlier import (same station, same file name). Times are read as ingestion reads
them: with `Z` or an offset they are exact; without one they are wall-clock times in a zone (given,
the source mapping's, or the municipality's), and one a daylight-saving change skips or repeats is
refused with its lines.

An incident an operator confirmed (acknowledged, or resolved without dismissing) is an event over
its span, first to last anomaly; one dismissed as a false alarm is not an event. They are read
from `incidents` when labels are wanted, so a label given after an import counts at the next
training. When labels overlap, the latest given decides (see `frames.minute_labels`). Time no
label covers is unlabelled (`labelled_minutes`): training leaves it out unless told to call it normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, delete, insert, select

from tasks.analytics.readings import UTC_TIME, municipality_timezone
from tasks.anomalies.incident_actions import CONFIRMED, DISMISSED
from tasks.detection.frames import minute_labels
from tasks.ingest.mappings import mapping_key, read_mapping
from tasks.models import DetectionLabel, Incident, Station, utcnow
from tasks.quality.gate import parse_observed_at, place_local_time
from tasks.storage import inbox_store
from tasks.timezones import known_zone

LABEL_SCHEMA = {
    "starts_at": UTC_TIME,
    "ends_at": UTC_TIME,
    "is_event": pl.Boolean,
    "source": pl.String,
    "created_at": UTC_TIME,
}
TRUE_TEXT = ("true", "1", "yes", "t", "y")
FALSE_TEXT = ("false", "0", "no", "f", "n")
GAP_STEPS = 1.5  # a step longer than this many usual steps cuts a run


@dataclass(frozen=True)
class LabelImport:
    station_id: str
    source: str
    rows: int
    intervals: int
    event_intervals: int
    event_minutes: float
    replaced: int
    timezone: str  # of the times written without an offset
    timezone_origin: str  # where that zone came from, in words


def station_of(conn: Connection, municipality_id: str, station_id: str) -> None:
    """ValueError unless the station is one of the municipality's."""
    found = conn.execute(
        select(Station.id).where(Station.id == station_id, Station.municipality_id == municipality_id)
    ).scalar_one_or_none()
    if found is None:
        raise ValueError(f"municipality {municipality_id!r} has no station {station_id!r}")


def naive_time_zone(
    conn: Connection, municipality_id: str, source: str | None = None, timezone: str | None = None
) -> tuple[str, str]:
    """(zone, where it came from) of a labelled file's times written without an offset: `timezone`
    when given, else the zone of the municipality's source mapping `source` (the source whose
    readings the labels describe), else the municipality's own timezone."""
    if timezone is not None and source is not None:
        raise ValueError("give either --timezone or --source (whose mapping has a timezone), not both")
    municipality_zone = municipality_timezone(conn, municipality_id)
    if timezone is not None:
        return known_zone(timezone), "given"
    if source is None:
        return municipality_zone, f"the timezone of municipality {municipality_id}"
    store = inbox_store()
    if not store.exists(mapping_key(municipality_id, source)):
        raise ValueError(
            f"municipality {municipality_id!r} has no source mapping {source!r} "
            f"(looked for {mapping_key(municipality_id, source)} in the inbox)"
        )
    mapping = read_mapping(store, municipality_id, source)
    return mapping.timezone, f"the timezone of source mapping {source}"


def read_label_file(
    path: str | Path, time_column: str = "Time", event_column: str = "EVENT", timezone: str = "UTC"
) -> pl.DataFrame:
    """`observed_at` (UTC) and `is_event` per row of a labelled CSV file, sorted; rows with no
    label are left out.

    Times are read as ingestion reads them (`tasks.quality.gate`): ISO-8601 with `Z` or an offset
    is an exact instant; a time without one is a wall-clock time in `timezone`. A wall-clock time
    that does not exist (spring-forward gap) or exists twice (fall-back fold) there is refused,
    naming its lines, rather than shifted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labelled file at {path}")
    header = pl.read_csv(path, n_rows=0).columns
    missing = [c for c in (time_column, event_column) if c not in header]
    if missing:
        raise ValueError(f"{path.name} has no {' or '.join(repr(c) for c in missing)} column")
    raw = pl.read_csv(
        path,
        columns=[time_column, event_column],
        schema_overrides={time_column: pl.String, event_column: pl.String},
        null_values=["NA", "NaN", ""],
    )
    text = pl.col(event_column).str.strip_chars().str.to_lowercase()
    exact, wall = parse_observed_at(time_column, pl.String)
    instant, exists, unambiguous = place_local_time(wall, timezone)
    frame = raw.with_row_index("line", offset=2).select(  # line 1 is the header
        "line",
        pl.col(time_column).str.strip_chars().alias("time"),
        pl.coalesce(exact, instant).alias("observed_at"),
        wall.alias("wall"),
        exists.alias("exists"),
        unambiguous.alias("unambiguous"),
        pl.when(text.is_in(TRUE_TEXT)).then(True).when(text.is_in(FALSE_TEXT)).then(False).alias("is_event"),
        text.alias("text"),
    )
    unknown = frame.filter(pl.col("is_event").is_null() & pl.col("text").is_not_null())
    if unknown.height:
        raise ValueError(
            f"{path.name}: {unknown.height} row(s) have an {event_column} that is neither true nor false, "
            f"e.g. {unknown['text'][0]!r}"
        )
    unread = pl.col("wall").is_null() & pl.col("observed_at").is_null() & pl.col("time").is_not_null()
    bad = frame.filter(unread)
    if bad.height:
        raise ValueError(
            f"{path.name}: {bad.height} {time_column} value(s) are not ISO-8601 times, "
            f"e.g. {bad['time'][0]!r}"
        )
    refuse_daylight_saving_times(path.name, frame.filter(pl.col("is_event").is_not_null()), timezone)
    out = frame.select("observed_at", "is_event").drop_nulls().sort("observed_at")
    if out["observed_at"].is_duplicated().any():
        raise ValueError(f"{path.name} has more than one row for the same time")
    return out


def refuse_daylight_saving_times(name: str, frame: pl.DataFrame, timezone: str, shown: int = 10) -> None:
    """ValueError naming the lines whose wall-clock time does not exist in `timezone` or exists
    twice there (`frame`: `line`, `time`, `exists`, `unambiguous`)."""
    gap = frame.filter(pl.col("exists").not_())
    fold = frame.filter(pl.col("unambiguous").not_())
    if gap.is_empty() and fold.is_empty():
        return

    def listed(rows: pl.DataFrame, what: str) -> str:
        first = rows.head(shown).select("line", "time").rows()
        lines = ", ".join(f"line {line} ({time})" for line, time in first)
        more = f" and {rows.height - shown} more" if rows.height > shown else ""
        return f"{rows.height} time(s) {what} in {timezone}: {lines}{more}"

    problems = [
        *([listed(gap, "do not exist (daylight-saving gap)")] if gap.height else []),
        *([listed(fold, "are ambiguous (daylight-saving fold)")] if fold.height else []),
    ]
    raise ValueError(
        f"{name}: {'; '.join(problems)}. Nothing was imported: if the file's clock keeps no daylight "
        "saving, name the zone it keeps (--timezone, or --source for a source mapping's); else write these "
        "times with their UTC offset (e.g. 2016-03-27T02:30:00+01:00) or in UTC with Z"
    )


def label_intervals(rows: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive rows with the same `is_event`, cut where the step between rows is more
    than 1.5 usual steps: `starts_at`, `ends_at` (the last row plus one usual step), `is_event`,
    `rows`."""
    schema = {"starts_at": UTC_TIME, "ends_at": UTC_TIME, "is_event": pl.Boolean, "rows": pl.UInt32}
    if rows.is_empty():
        return pl.DataFrame(schema=schema)
    step = rows["observed_at"].diff().drop_nulls().median()
    step = step if isinstance(step, timedelta) and step > timedelta(0) else timedelta(minutes=1)
    gap = pl.col("observed_at").diff() > step * GAP_STEPS
    starts = (pl.col("is_event") != pl.col("is_event").shift(1)) | gap
    return (
        rows.with_columns(starts.fill_null(True).cum_sum().alias("run"))
        .group_by("run", maintain_order=True)
        .agg(
            pl.col("observed_at").first().alias("starts_at"),
            (pl.col("observed_at").last() + step).alias("ends_at"),
            pl.col("is_event").first(),
            pl.len().alias("rows"),
        )
        .select(list(schema))
        .cast(schema)
    )


def import_labels(
    conn: Connection,
    municipality_id: str,
    station_id: str,
    path: str | Path,
    time_column: str = "Time",
    event_column: str = "EVENT",
    timezone: str | None = None,
    now: datetime | None = None,
    source: str | None = None,
) -> LabelImport:
    """Store a labelled file's intervals for one station of one municipality, replacing an
    earlier import of a file of the same name. Times without an offset are read in `timezone`,
    else in the zone of the source mapping `source`, else in the municipality's (`naive_time_zone`)."""
    station_of(conn, municipality_id, station_id)
    zone, zone_origin = naive_time_zone(conn, municipality_id, source, timezone)
    rows = read_label_file(path, time_column, event_column, zone)
    if rows.is_empty():
        raise ValueError(f"{Path(path).name} has no labelled rows")
    intervals = label_intervals(rows)
    label_source = f"file:{Path(path).name}"
    replaced = conn.execute(
        delete(DetectionLabel).where(
            DetectionLabel.municipality_id == municipality_id,
            DetectionLabel.station_id == station_id,
            DetectionLabel.source == label_source,
        )
    ).rowcount
    now = now or utcnow()
    values = intervals.select("starts_at", "ends_at", "is_event").with_columns(
        municipality_id=pl.lit(municipality_id),
        station_id=pl.lit(station_id),
        source=pl.lit(label_source),
        created_at=pl.lit(now, dtype=UTC_TIME),
    )
    conn.execute(insert(DetectionLabel), values.to_dicts())
    events = intervals.filter("is_event")
    return LabelImport(
        station_id=station_id,
        source=label_source,
        rows=rows.height,
        intervals=intervals.height,
        event_intervals=events.height,
        event_minutes=float(
            events.select((pl.col("ends_at") - pl.col("starts_at")).dt.total_seconds().sum()).item() / 60
        ),
        replaced=replaced,
        timezone=zone,
        timezone_origin=zone_origin,
    )


def read_labels(
    conn: Connection, municipality_id: str, station_id: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Every label of one station overlapping [start, end): imported intervals and operators'
    incident labels, as `LABEL_SCHEMA` ordered by when they were given."""
    files = conn.execute(
        select(
            DetectionLabel.starts_at,
            DetectionLabel.ends_at,
            DetectionLabel.is_event,
            DetectionLabel.source,
            DetectionLabel.created_at,
        ).where(
            DetectionLabel.municipality_id == municipality_id,
            DetectionLabel.station_id == station_id,
            DetectionLabel.starts_at < end,
            DetectionLabel.ends_at > start,
        )
    ).all()
    incidents = conn.execute(
        select(
            Incident.id,
            Incident.first_observed_at,
            Incident.last_observed_at,
            Incident.label,
            Incident.labelled_at,
            Incident.updated_at,
        ).where(
            Incident.municipality_id == municipality_id,
            Incident.station_id == station_id,
            Incident.label.in_((CONFIRMED, DISMISSED)),
            Incident.first_observed_at < end,
            Incident.last_observed_at >= start - timedelta(minutes=1),
        )
    ).all()
    rows = [tuple(r) for r in files] + [
        (
            i.first_observed_at,
            i.last_observed_at + timedelta(minutes=1),  # the last anomaly's minute is in
            i.label == CONFIRMED,
            f"incident:{i.id}",
            i.labelled_at or i.updated_at,
        )
        for i in incidents
    ]
    return pl.DataFrame(rows, schema=LABEL_SCHEMA, orient="row").sort("created_at", "source")


def labelled_minutes(times: pl.Series, labels: pl.DataFrame) -> pl.Series:
    """Per minute of `times` (naive UTC), whether some label covers part of it: an event or a
    stretch someone called normal (`labelled`); the rest is unlabelled time."""
    covered = minute_labels(times, labels.with_columns(is_event=pl.lit(True)))
    return covered.alias("labelled")


def label_counts(labels: pl.DataFrame) -> dict:
    """How many labels of each origin and kind: for the model's record."""
    origin = pl.col("source").str.split(":").list.first()
    counted = labels.group_by(origin.alias("origin"), "is_event").len().sort("origin", "is_event")
    return {
        f"{row['origin']}_{'events' if row['is_event'] else 'normal'}": int(row["len"])
        for row in counted.iter_rows(named=True)
    }
