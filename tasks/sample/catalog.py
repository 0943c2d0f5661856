"""Fictional municipalities, their stations and sensors, written as `registry.yaml` documents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import yaml

ONLINE_PARAMETERS = (
    "ph",
    "turbidity",
    "free_chlorine",
    "conductivity",
    "temperature",
    "flow",
    "pressure",
)
LAB_PARAMETERS = ("lead", "copper", "arsenic", "nitrate", "nitrite", "fluoride", "e_coli")


@dataclass(frozen=True)
class Town:
    id: str
    name: str
    timezone: str
    standards: tuple[str, ...]
    regulator_emails: tuple[str, ...]
    latitude: float
    longitude: float
    water_temp_mean: float  # degC, yearly mean of the treated water
    water_temp_amplitude: float  # degC, half the summer-winter swing
    timestamps: str = "utc"  # "utc" writes ...Z, "local" writes the local offset (+01:00)
    unicode_units: bool = False  # writes the accepted spellings uS/cm -> µS/cm, degC -> °C
    nitrate_mg_l: float = 12.0  # typical nitrate (mg/L as NO3)
    lead_ug_l: float = 1.0  # typical lead at the tap (ug/L)


TOWNS = (
    Town(
        "riverton",
        "Riverton",
        "America/Chicago",
        ("EPA", "WHO"),
        ("drinking-water@iowa-dnr.example", "compliance@riverton.example"),
        41.52,
        -90.58,
        13.5,
        7.5,
        nitrate_mg_l=37.0,
        lead_ug_l=3.5,
    ),
    Town(
        "lindenfeld",
        "Lindenfeld",
        "Europe/Berlin",
        ("EU", "WHO"),
        ("trinkwasser@gesundheitsamt-lindenfeld.example",),
        50.93,
        11.59,
        12.0,
        6.0,
        timestamps="local",
        unicode_units=True,
    ),
    Town(
        "bellbird-creek",
        "Bellbird Creek",
        "Australia/Sydney",
        ("WHO",),
        ("water.quality@nsw-health.example",),
        -33.72,
        150.31,
        16.0,
        6.5,
    ),
    Town(
        "kestrel-bay",
        "Kestrel Bay",
        "America/Los_Angeles",
        ("EPA", "WHO"),
        ("ddw@waterboards-ca.example",),
        37.97,
        -122.53,
        15.0,
        4.0,
    ),
    Town(
        "vila-serena",
        "Vila Serena",
        "America/Sao_Paulo",
        ("WHO",),
        ("vigilancia@saude-sp.example",),
        -22.91,
        -47.06,
        20.5,
        2.0,
    ),
    Town(
        "ostervik",
        "Östervik",
        "Europe/Stockholm",
        ("EU", "WHO"),
        ("dricksvatten@lansstyrelsen.example",),
        59.86,
        17.64,
        10.5,
        4.5,
    ),
    Town(
        "takahama",
        "Takahama",
        "Asia/Tokyo",
        ("WHO",),
        ("suido@pref-fukui.example",),
        35.49,
        135.55,
        16.0,
        6.0,
    ),
    Town(
        "mbale-heights",
        "Mbale Heights",
        "Africa/Nairobi",
        ("WHO",),
        ("water@wasreb.example",),
        -1.29,
        36.82,
        20.5,
        1.5,
    ),
    Town(
        "port-ashby",
        "Port Ashby",
        "Pacific/Auckland",
        ("WHO",),
        ("drinkingwater@taumataarowai.example",),
        -36.85,
        174.76,
        15.0,
        5.0,
    ),
    Town(
        "dunmore",
        "Dunmore",
        "Europe/Dublin",
        ("EU", "WHO"),
        ("drinkingwater@epa-ie.example",),
        53.62,
        -6.49,
        11.5,
        4.5,
        unicode_units=True,
    ),
    Town(
        "cedar-falls",
        "Cedar Falls",
        "America/New_York",
        ("EPA",),
        ("dwp@dec-ny.example",),
        42.65,
        -73.75,
        13.0,
        7.0,
    ),
    Town(
        "kolhapur-east",
        "Kolhapur East",
        "Asia/Kolkata",
        ("WHO",),
        ("jalshakti@mpcb.example",),
        16.70,
        74.24,
        20.5,
        2.0,
        timestamps="local",
    ),
)

# (id suffix, name suffix, design flow m3/h, water age in hours at average demand)
STATION_KINDS = (
    ("plant", "Treatment Plant", 1200.0, 1.5),
    ("reservoir-north", "North Reservoir", 550.0, 10.0),
    ("booster-hill", "Hillside Booster Station", 240.0, 18.0),
)


@dataclass(frozen=True)
class Layout:
    """One municipality as the simulation sees it: its town and its online stations."""

    index: int
    town: Town
    station_ids: tuple[str, ...]
    station_names: tuple[str, ...]
    design_flow: np.ndarray  # (S,) m3/h
    water_age_hours: np.ndarray  # (S,)

    @property
    def id(self) -> str:
        return self.town.id

    @property
    def lab_station_id(self) -> str:
        return f"{self.town.id}-distribution"

    def sensor_id(self, station_id: str, parameter: str) -> str:
        return f"{station_id}-{parameter}"

    def lab_sensor_id(self, parameter: str) -> str:
        return f"{self.town.id}-lab-{parameter}"


def town_for(index: int) -> Town:
    """The index-th town; past the catalog, towns repeat with a numeric suffix (riverton-2)."""
    base = TOWNS[index % len(TOWNS)]
    round_ = index // len(TOWNS)
    if round_ == 0:
        return base
    return Town(
        **{
            **base.__dict__,
            "id": f"{base.id}-{round_ + 1}",
            "name": f"{base.name} {round_ + 1}",
            "latitude": base.latitude + 0.1 * round_,
            "longitude": base.longitude + 0.1 * round_,
        }
    )


def layout_for(index: int, stations: int) -> Layout:
    """Stations of municipality `index`: plant, reservoir, booster, then zone monitoring points."""
    town = town_for(index)
    ids, names, flows, ages = [], [], [], []
    for k in range(stations):
        if k < len(STATION_KINDS):
            suffix, label, flow, age = STATION_KINDS[k]
        else:
            zone = k - len(STATION_KINDS) + 1
            suffix, label = f"zone-{zone}", f"Zone {zone} Monitoring Point"
            flow, age = 80.0 + 40.0 * (zone % 4), 20.0 + 2.5 * (zone % 5)
        ids.append(f"{town.id}-{suffix}")
        names.append(f"{town.name} {label}")
        flows.append(flow)
        ages.append(age)
    return Layout(index, town, tuple(ids), tuple(names), np.array(flows), np.array(ages))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def registry_document(
    layout: Layout, *, start: datetime, interval_seconds: int, rng: np.random.Generator
) -> dict:
    """The registry of one municipality as a plain dict (the shape `parse_registry` accepts)."""
    town = layout.town
    n_online = len(layout.station_ids) * len(ONLINE_PARAMETERS)
    installed_days = rng.integers(400, 1200, n_online + len(LAB_PARAMETERS))
    calibrated_days = rng.integers(5, 120, n_online + len(LAB_PARAMETERS))
    calibrated_days[rng.integers(0, n_online)] = 260  # one sensor overdue for calibration
    stations, k = [], 0
    for s, (station_id, name) in enumerate(zip(layout.station_ids, layout.station_names, strict=True)):
        sensors = []
        for parameter_name in ONLINE_PARAMETERS:
            sensors.append(
                {
                    "id": layout.sensor_id(station_id, parameter_name),
                    "parameter": parameter_name,
                    "kind": "online",
                    "interval_seconds": interval_seconds,
                    "installed_at": _iso(start - timedelta(days=int(installed_days[k]))),
                    "last_calibrated_at": _iso(start - timedelta(days=int(calibrated_days[k]))),
                }
            )
            k += 1
        stations.append(
            {
                "id": station_id,
                "name": name,
                "latitude": round(town.latitude + 0.011 * (s + 1), 4),
                "longitude": round(town.longitude - 0.017 * (s + 1), 4),
                "sensors": sensors,
            }
        )
    lab_sensors = []
    for parameter_name in LAB_PARAMETERS:
        lab_sensors.append(
            {
                "id": layout.lab_sensor_id(parameter_name),
                "parameter": parameter_name,
                "kind": "lab",
                "interval_seconds": 86400,
                "installed_at": _iso(start - timedelta(days=int(installed_days[k]))),
                "last_calibrated_at": _iso(start - timedelta(days=int(calibrated_days[k]))),
            }
        )
        k += 1
    stations.append(
        {
            "id": layout.lab_station_id,
            "name": f"{town.name} Distribution Sampling Point",
            "latitude": round(town.latitude - 0.02, 4),
            "longitude": round(town.longitude + 0.02, 4),
            "sensors": lab_sensors,
        }
    )
    return {
        "municipality": {
            "id": town.id,
            "name": town.name,
            "timezone": town.timezone,
            "standards": list(town.standards),
            "regulator_emails": list(town.regulator_emails),
        },
        "stations": stations,
    }


def registry_yaml(document: dict) -> bytes:
    """The registry document as YAML text, keys in their natural order."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100).encode()
