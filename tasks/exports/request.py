"""What an export asks for: a kind of data, a format, one municipality, local days and filters.

Every check of the request happens here, before any file is opened, so a bad request is one
sentence (`ValueError`) and never half a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# kind: (what it holds, the filters that apply to it)
KINDS: dict[str, tuple[str, frozenset[str]]] = {
    "sensor_data": (
        "readings with their QC flags",
        frozenset({"station", "sensor", "parameter", "status"}),
    ),
    "alerts": ("anomalies the detectors found", frozenset({"station", "sensor", "parameter", "severity"})),
    "incidents": (
        "incidents and their status",
        frozenset({"station", "sensor", "parameter", "severity", "status"}),
    ),
    "water_usage": ("water volumes per local day and station, from the flow sensors", frozenset({"station"})),
    "system_health": ("ingest batches, quarantine, QC runs, sensor uptime, webhook deliveries", frozenset()),
    "sensor_uptime": ("each sensor's coverage per local day", frozenset({"station", "sensor", "parameter"})),
    "aggregates": (
        "hour, day, week or month statistics per sensor, with a moving average",
        frozenset({"station", "sensor", "parameter"}),
    ),
    "audit_log": ("the audit trail", frozenset()),
}
BULK = "bulk"
FORMATS = ("csv", "json", "jsonl", "xlsx", "parquet", "pdf")
PDF_KINDS = frozenset({"system_health", "incidents"})
EXTENSIONS = {
    "csv": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "xlsx": "xlsx",
    "parquet": "parquet",
    "pdf": "pdf",
}
FILTERS = ("station", "sensor", "parameter", "severity", "status")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
QC_STATUSES = {"good": 1, "not_evaluated": 2, "suspect": 3, "fail": 4, "missing": 9}
LONGEST_RANGE = timedelta(days=366 * 20)
RESOLUTIONS = ("hour", "day", "week", "month")
DEFAULT_RESOLUTION = "day"
DEFAULT_WINDOW = 10  # points of the aggregates' moving average
LONGEST_WINDOW = 1000


@dataclass(frozen=True)
class ExportRequest:
    """One export: `kind` (or `bulk`), `fmt`, a municipality, local days [from_day, to_day] and
    filters (each a tuple of accepted values; empty accepts everything)."""

    kind: str
    municipality_id: str
    from_day: date
    to_day: date
    fmt: str = "csv"
    station: tuple[str, ...] = ()
    sensor: tuple[str, ...] = ()
    parameter: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    resolution: str = DEFAULT_RESOLUTION  # of the aggregates
    window: int = DEFAULT_WINDOW  # points of the aggregates' moving average
    extra: dict = field(default_factory=dict)

    def filters(self) -> dict[str, tuple[str, ...]]:
        """The filters that were given, by name."""
        return {name: getattr(self, name) for name in FILTERS if getattr(self, name)}

    def for_kind(self, kind: str) -> ExportRequest:
        """This request for one kind of a bulk export: the filters that do not apply dropped."""
        applies = KINDS[kind][1]
        cleared = {name: () for name in FILTERS if name not in applies}
        if "status" in applies:
            own = set(INCIDENT_STATUSES) if kind == "incidents" else set(QC_STATUSES)
            cleared["status"] = tuple(s for s in self.status if s in own)
        return replace(self, kind=kind, **cleared)

    def file_name(self) -> str:
        """`<municipality>_<kind>_<from>_<to>.<ext>`; a bulk export is a `.zip`."""
        ext = "zip" if self.kind == BULK else EXTENSIONS[self.fmt]
        kind = f"aggregates-{self.resolution}" if self.kind == "aggregates" else self.kind
        return f"{self.municipality_id}_{kind}_{self.from_day}_{self.to_day}.{ext}"

    def object_key(self) -> str:
        """Where the export goes in object storage when no destination is given."""
        return f"exports/{self.municipality_id}/{self.kind}/{self.file_name()}"


def _values(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """A filter given as None, one value, a comma-separated text or a list, as a tuple."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(part.strip() for item in items for part in item.split(",") if part.strip()))


def _day(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def make_request(
    kind: str,
    municipality: str,
    from_day: date | str | None,
    to_day: date | str | None,
    fmt: str = "csv",
    *,
    station: str | list[str] | None = None,
    sensor: str | list[str] | None = None,
    parameter: str | list[str] | None = None,
    severity: str | list[str] | None = None,
    status: str | list[str] | None = None,
    resolution: str | None = None,
    window: int | None = None,
) -> ExportRequest:
    """A checked request; `to_day` defaults to `from_day`. ValueError names what is wrong.
    `resolution` and `window` (the aggregates' moving average, in points) apply to aggregates."""
    kind = kind.strip().lower().replace("-", "_")
    fmt = fmt.strip().lower()
    if kind not in KINDS and kind != BULK:
        raise ValueError(f"unknown export kind {kind!r}; choose one of {', '.join([*KINDS, BULK])}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "pdf" and kind not in PDF_KINDS:
        raise ValueError(f"PDF is made for {' and '.join(sorted(PDF_KINDS))} only, not for {kind}")
    if not municipality or not municipality.strip():
        raise ValueError("an export needs a municipality")
    first = _day(from_day, "--from")
    if first is None:
        raise ValueError("an export needs a first day (--from YYYY-MM-DD)")
    last = _day(to_day, "--to") or first
    if last < first:
        raise ValueError(f"the last day {last} is before the first day {first}")
    if last - first > LONGEST_RANGE:
        raise ValueError("an export covers at most twenty years")
    filters = {
        "station": _values(station),
        "sensor": _values(sensor),
        "parameter": _values(parameter),
        "severity": tuple(v.upper() for v in _values(severity)),
        "status": tuple(v.lower() for v in _values(status)),
    }
    if kind != BULK:
        applies = KINDS[kind][1]
        for name, values in filters.items():
            if values and name not in applies:
                where = ", ".join(sorted(k for k, (_, f) in KINDS.items() if name in f))
                raise ValueError(f"the filter {name} does not apply to {kind} (it applies to {where})")
    _check_choices(kind, filters)
    if kind not in ("aggregates", BULK) and (resolution is not None or window is not None):
        raise ValueError(f"--resolution and --window apply to aggregates, not to {kind}")
    resolution = (resolution or DEFAULT_RESOLUTION).strip().lower()
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; choose one of {', '.join(RESOLUTIONS)}")
    window = DEFAULT_WINDOW if window is None else window
    if not 1 <= window <= LONGEST_WINDOW:
        raise ValueError(f"the moving-average window is 1 to {LONGEST_WINDOW} points, not {window}")
    return ExportRequest(
        kind, municipality.strip(), first, last, fmt, **filters, resolution=resolution, window=window
    )


def _check_choices(kind: str, filters: dict[str, tuple[str, ...]]) -> None:
    unknown = [v for v in filters["severity"] if v not in SEVERITIES]
    if unknown:
        raise ValueError(f"unknown severity {unknown[0]!r}; choose from {', '.join(SEVERITIES)}")
    statuses = {
        "incidents": set(INCIDENT_STATUSES),
        "sensor_data": set(QC_STATUSES),
        BULK: set(INCIDENT_STATUSES) | set(QC_STATUSES),
    }.get(kind, set())
    unknown = [v for v in filters["status"] if v not in statuses]
    if unknown:
        raise ValueError(
            f"unknown status {unknown[0]!r}; incidents are {', '.join(INCIDENT_STATUSES)} and readings' "
            f"QC status is {', '.join(QC_STATUSES)}"
        )


def utc_window(from_day: date, to_day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) from the start of `from_day` to the end of `to_day`, local."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(from_day, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(to_day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return start, end
