"""Laboratory samples of one municipality: a few grab samples a day per parameter, in the
parameter's canonical unit, with an injected limit exceedance in some towns."""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.parameters import parameter
from tasks.sample.catalog import LAB_PARAMETERS, TOWNS, Layout
from tasks.sample.signals import LABEL_SCHEMA, US

SAMPLES_PER_DAY = {"e_coli": 3, "nitrate": 2}  # others: one a day
DECIMALS = {
    "lead": 1,
    "copper": 3,
    "arsenic": 2,
    "nitrate": 1,
    "nitrite": 3,
    "fluoride": 2,
    "e_coli": 0,
}
# Which town (position in TOWNS) gets which exceedance: parameter, low, high.
EXCEEDANCES = {0: ("lead", 16.0, 19.0), 1: ("e_coli", 2.0, 6.0)}


def _typical(name: str, layout: Layout, n: int, rng: np.random.Generator) -> np.ndarray:
    """Values below every standard's limit; nitrate can sit close to it."""
    town = layout.town
    if name == "lead":
        return np.minimum(rng.lognormal(np.log(town.lead_ug_l), 0.35, n), 9.0)
    if name == "copper":
        return np.minimum(rng.lognormal(np.log(0.12), 0.4, n), 1.0)
    if name == "arsenic":
        return np.minimum(rng.lognormal(np.log(1.5), 0.3, n), 6.0)
    if name == "nitrate":
        return np.clip(rng.normal(town.nitrate_mg_l, 0.06 * town.nitrate_mg_l, n), 0.5, 43.5)
    if name == "nitrite":
        return np.minimum(rng.lognormal(np.log(0.02), 0.4, n), 0.2)
    if name == "fluoride":
        return np.clip(rng.normal(0.7, 0.05, n), 0.4, 1.0)
    return np.zeros(n)  # e_coli: none detected


def simulate_lab(
    layout: Layout, day_starts_us: np.ndarray, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Lab readings (sensor_id, observed_at, value, unit, day) and labels of injected exceedances.

    Samples are taken from 08:00 local time, three hours apart, within 90 minutes of the slot;
    `day_starts_us` are the local midnights (UTC microseconds) of the days, plus the end.
    """
    n_days = len(day_starts_us) - 1
    counts = np.array([SAMPLES_PER_DAY.get(name, 1) for name in LAB_PARAMETERS])
    param_idx = np.repeat(np.arange(len(LAB_PARAMETERS)), counts * n_days)
    slot = np.concatenate([np.tile(np.arange(c), n_days) for c in counts])
    day = np.concatenate([np.repeat(np.arange(n_days), c) for c in counts])
    minutes = rng.integers(0, 90, len(param_idx))
    observed_us = day_starts_us[day] + ((8 + 3 * slot) * 3600 + minutes * 60) * US

    values = np.empty(len(param_idx))
    for k, name in enumerate(LAB_PARAMETERS):
        chosen = param_idx == k
        values[chosen] = np.round(_typical(name, layout, int(chosen.sum()), rng), DECIMALS[name])

    labels = pl.DataFrame(schema=LABEL_SCHEMA)
    exceedance = EXCEEDANCES.get(layout.index % len(TOWNS))
    if exceedance is not None:
        name, low, high = exceedance
        which = int(rng.choice(np.flatnonzero(param_idx == LAB_PARAMETERS.index(name))))
        values[which] = np.round(rng.uniform(low, high), DECIMALS[name])
        labels = pl.DataFrame(
            {
                "station_id": [layout.lab_station_id],
                "sensor_ids": [layout.lab_sensor_id(name)],
                "kind": ["lab_exceedance"],
                "start": [observed_us[which]],
                "end": [observed_us[which]],
            }
        ).cast(LABEL_SCHEMA)  # type: ignore[arg-type]

    names = pl.Series(LAB_PARAMETERS)
    frame = pl.DataFrame(
        {
            "sensor_id": layout.lab_sensor_id("") + names.gather(param_idx),
            "observed_at": pl.Series(observed_us).cast(pl.Datetime("us", "UTC")),
            "value": values,
            "unit": names.gather(param_idx).replace_strict(
                {name: parameter(name).unit for name in LAB_PARAMETERS}, return_dtype=pl.String
            ),
            "day": day,
        }
    ).sort("observed_at", "sensor_id")
    return frame, labels
