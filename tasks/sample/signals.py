"""Online sensor signals of one municipality: daily demand cycles, noise, drift, spikes, a stuck
sensor, a fouled probe, gaps and contamination events, computed as (station, parameter, time)
numpy arrays.

Label windows are inclusive: `start` is the first and `end` the last affected `observed_at`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.signal import lfilter

from tasks.parameters import parameter
from tasks.sample.catalog import ONLINE_PARAMETERS, Layout

P = {name: k for k, name in enumerate(ONLINE_PARAMETERS)}
DECIMALS = np.array([2, 3, 2, 1, 2, 1, 3])  # in ONLINE_PARAMETERS order
# Spike size (low, high) per parameter; flow is a fraction of the station's design flow.
SPIKE_SIZE = np.array(
    [(0.8, 1.5), (2.0, 8.0), (0.8, 1.5), (300.0, 700.0), (4.0, 8.0), (0.5, 1.0), (1.5, 2.5)]
)
STUCK_PARAMETERS = ("ph", "turbidity", "free_chlorine", "conductivity", "pressure")
DRIFT_PARAMETERS = ("ph", "conductivity")
# A fouled probe (biofilm on the membrane or the optics) answers late and reads ever further off:
# chlorine low (lost sensitivity), turbidity high (scattering by the film).
FOULING_PARAMETERS = ("free_chlorine", "turbidity")
FOULING_LAG_MINUTES = 30.0  # time constant of the sluggish response
FOULING_SENSITIVITY_LOSS = (0.35, 0.5)  # chlorine: share of the reading lost by the end
FOULING_FILM_NTU = (0.25, 0.4)  # turbidity: apparent NTU added by the end
SPIKES_PER_SENSOR_DAY = 0.5
DROPOUT_PROBABILITY = 0.002  # single missing readings, not labelled
US = 1_000_000
LABEL_SCHEMA = {
    "station_id": pl.String,
    "sensor_ids": pl.String,
    "kind": pl.String,
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
}


@dataclass
class OnlineSimulation:
    times_us: np.ndarray  # (T,) epoch microseconds, UTC
    values: np.ndarray  # (S, P, T), NaN where the sensor sent nothing
    labelled: np.ndarray  # (S, P, T) True inside a short labelled window (event, stuck, spike)
    labels: pl.DataFrame  # LABEL_SCHEMA, one row per injected event or fault


def local_clock(times_us: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Local hour of day (fractional) and day of year for UTC instants."""
    local = pl.Series(times_us).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(timezone)
    frame = pl.DataFrame({"t": local}).select(
        hour=pl.col("t").dt.hour().cast(pl.Float64) + pl.col("t").dt.minute() / 60.0,
        doy=pl.col("t").dt.ordinal_day().cast(pl.Float64),
    )
    return frame["hour"].to_numpy(), frame["doy"].to_numpy()


def demand_curve(hour: np.ndarray) -> np.ndarray:
    """Relative water demand 0.2..1.0: morning and evening peaks, a night minimum."""

    def bump(center: float, width: float, h: np.ndarray) -> np.ndarray:
        distance = (h - center + 12.0) % 24.0 - 12.0
        return np.exp(-0.5 * (distance / width) ** 2)

    def raw(h: np.ndarray) -> np.ndarray:
        return 0.15 + 0.85 * bump(7.5, 1.6, h) + 0.6 * bump(19.5, 2.2, h) + 0.25 * bump(13, 3, h)

    grid = raw(np.linspace(0.0, 24.0, 1441))
    return 0.2 + 0.8 * (raw(hour) - grid.min()) / (grid.max() - grid.min())


def _wander(rng: np.random.Generator, shape: tuple[int, int], t_days: np.ndarray) -> np.ndarray:
    """Slow bounded wander in -1..1: two sinusoids with random periods of 1.5-5 days."""
    periods = rng.uniform(1.5, 5.0, (2, shape[0], 1))
    phases = rng.uniform(0, 2 * np.pi, (2, shape[0], 1))
    waves = np.sin(2 * np.pi * t_days[None, None, :] / periods + phases)
    return waves.mean(axis=0)


def base_signals(layout: Layout, times_us: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fault-free readings (S, P, T) following demand, season and water age."""
    town, n_stations, n_times = layout.town, len(layout.station_ids), len(times_us)
    hour, doy = local_clock(times_us, town.timezone)
    t_days = (times_us - times_us[0]) / (86400 * US)
    demand = demand_curve(hour)[None, :]
    shape = (n_stations, n_times)

    def col(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, (n_stations, 1))

    peak_day = 225.0 if town.latitude >= 0 else 43.0
    season = town.water_temp_mean + town.water_temp_amplitude * np.cos(
        2 * np.pi * (doy + hour / 24.0 - peak_day) / 365.0
    )
    temperature = (
        season[None, :]
        + col(-0.8, 0.8)
        + 0.4 * np.sin(2 * np.pi * (hour - 10.0) / 24.0)[None, :]
        + 0.4 * _wander(rng, shape, t_days)
        + rng.normal(0, 0.04, shape)
    )
    temperature = np.clip(temperature, 4.0, 25.0)
    flow = (
        layout.design_flow[:, None]
        * (0.25 + 0.75 * demand)
        * (1 + 0.03 * _wander(rng, shape, t_days))
        * (1 + rng.normal(0, 0.02, shape))
    )
    pressure = (
        col(5.0, 5.6)
        - 1.4 * (demand - 0.2)
        + 0.03 * _wander(rng, shape, t_days)
        + rng.normal(0, 0.015, shape)
    )
    # First-order chlorine decay: faster in warm water, older water at low demand.
    decay_per_hour = 0.03 * 1.07 ** (temperature - 20.0)
    age_hours = layout.water_age_hours[:, None] * (1.3 - 0.6 * demand)
    chlorine = col(1.25, 1.45) * np.exp(-decay_per_hour * age_hours) + rng.normal(0, 0.01, shape)
    ph = (
        col(7.15, 7.45)
        + 0.04 * np.sin(2 * np.pi * (hour - 14.0) / 24.0)[None, :]
        + 0.03 * _wander(rng, shape, t_days)
        + rng.normal(0, 0.012, shape)
    )
    turbidity = (
        col(0.09, 0.16) * np.exp(rng.normal(0, 0.08, shape)) * (1 + 0.1 * _wander(rng, shape, t_days))
        + 0.05 * demand
    )
    conductivity = (
        rng.uniform(320, 620)
        + col(-30, 30)
        + 8 * np.sin(2 * np.pi * (hour - 4.0) / 24.0)[None, :]
        + 10 * _wander(rng, shape, t_days)
        + rng.normal(0, 2.0, shape)
    )
    return np.stack([ph, turbidity, chlorine, conductivity, temperature, flow, pressure], axis=1)


def _steps(minutes: float, interval_seconds: int) -> int:
    return max(1, round(minutes * 60 / interval_seconds))


def _place(
    occupied: np.ndarray, length: int, margin: int, rng: np.random.Generator
) -> tuple[int, int] | None:
    """A free window (station, first index) of `length` with `margin` free steps around it."""
    n_stations, n_times = occupied.shape
    if n_times - length - 2 * margin <= 0:
        return None
    for _ in range(50):
        station = int(rng.integers(0, n_stations))
        first = int(rng.integers(margin, n_times - length - margin + 1))
        if not occupied[station, first - margin : first + length + margin].any():
            occupied[station, first : first + length] = True
            return station, first
    return None


def _dilate(mask: np.ndarray, margin: int) -> np.ndarray:
    """True wherever `mask` is True within `margin` steps along the last axis."""
    padded = np.pad(mask, ((0, 0), (margin + 1, margin)))
    counts = np.cumsum(padded, axis=-1)
    return counts[:, 2 * margin + 1 :] - counts[:, : -2 * margin - 1] > 0


def foul(
    series: np.ndarray, events: np.ndarray, p: int, interval_seconds: int, severity: float, decimals: int
) -> np.ndarray:
    """`series` as a fouling probe reports it: a first-order lag of FOULING_LAG_MINUTES, and a loss
    (chlorine) or a film (turbidity) growing linearly to its full size at the end. Readings inside
    a labelled event (`events`: spikes, contamination) keep their departure from the last reading
    before them, on top of the fouled signal; gaps stay gaps."""
    missing = np.isnan(series)
    calm = pl.Series(np.where(events, np.nan, series)).fill_nan(None).forward_fill().backward_fill()
    calm = calm.to_numpy()
    alpha = interval_seconds / (FOULING_LAG_MINUTES * 60 + interval_seconds)
    lagged, _ = lfilter([alpha], [1, alpha - 1], calm, zi=[(1 - alpha) * calm[0]])
    growth = np.linspace(0.0, 1.0, len(series))
    if p == P["free_chlorine"]:
        loss = np.interp(severity, (0, 1), FOULING_SENSITIVITY_LOSS)
        fouled = lagged * (1 - loss * growth)
    else:
        fouled = lagged + np.interp(severity, (0, 1), FOULING_FILM_NTU) * growth
    fouled = np.where(events, fouled + series - calm, fouled)
    limits = parameter(ONLINE_PARAMETERS[p])
    return np.where(missing, np.nan, np.round(np.clip(fouled, limits.min, limits.max), decimals))


def simulate_online(
    layout: Layout, times_us: np.ndarray, interval_seconds: int, rng: np.random.Generator
) -> OnlineSimulation:
    """Readings of every online sensor of `layout` at `times_us`, with labelled faults/events."""
    values = base_signals(layout, times_us, rng)
    n_stations, n_params, n_times = values.shape
    station_days = n_stations * n_times * interval_seconds / 86400
    margin = max(1, 3600 // interval_seconds)
    sensor_ids = np.array([[layout.sensor_id(s, p) for p in ONLINE_PARAMETERS] for s in layout.station_ids])
    labels: list[tuple[int, str, str, int, int]] = []  # station, sensor_ids, kind, first, last

    # Place the windows first (one per station at a time, an hour apart), then apply them.
    occupied = np.zeros((n_stations, n_times), dtype=bool)
    windows: dict[str, list[tuple[int, int, int]]] = {
        "contamination": [],
        "stuck": [],
        "outage": [],
    }
    for kind, count, minutes in (
        ("contamination", station_days / 6, (20, 120)),
        ("stuck", station_days / 9, (120, 360)),
        ("outage", station_days / 6, (30, 180)),
    ):
        for _ in range(max(1, round(count))):
            length = max(2, _steps(rng.uniform(*minutes), interval_seconds))
            placed = _place(occupied, length, margin, rng)
            if placed is not None:
                windows[kind].append((placed[0], placed[1], length))

    n_drifts = min(max(1, round(station_days / 9)), n_stations * len(DRIFT_PARAMETERS))
    drifting = rng.choice(n_stations * len(DRIFT_PARAMETERS), size=n_drifts, replace=False)
    for s, k in zip(*np.divmod(drifting, len(DRIFT_PARAMETERS)), strict=True):
        # a slow drift until the end, larger than the daily cycle, starting clear of events
        p = P[DRIFT_PARAMETERS[k]]
        free = ~_dilate(occupied, margin)[s]
        free[: n_times // 10] = free[max(n_times // 10 + 1, n_times // 2) :] = False
        if not free.any():
            continue
        first = int(rng.choice(np.flatnonzero(free)))
        total = rng.uniform(0.25, 0.35) if p == P["ph"] else rng.uniform(80.0, 120.0)
        values[s, p, first:] += total * np.linspace(0.0, 1.0, n_times - first)
        labels.append((int(s), str(sensor_ids[s, p]), "drift", first, n_times - 1))

    labelled = np.zeros(values.shape, dtype=bool)
    moving = [P["ph"], P["turbidity"], P["free_chlorine"], P["conductivity"]]
    for s, first, length in windows["contamination"]:  # parameters move together
        window = slice(first, first + length)
        profile = np.sin(np.pi * (np.arange(length) + 0.5) / length)
        values[s, P["turbidity"], window] += profile * rng.uniform(1.0, 4.0)
        values[s, P["free_chlorine"], window] *= 1 - profile * rng.uniform(0.5, 0.8)
        values[s, P["conductivity"], window] += profile * rng.uniform(120.0, 300.0)
        values[s, P["ph"], window] -= profile * rng.uniform(0.15, 0.4)
        labelled[s, :, window] = True
        labels.append((s, ";".join(sensor_ids[s, moving]), "contamination", first, first + length - 1))

    spike_probability = min(0.01, SPIKES_PER_SENSOR_DAY * interval_seconds / 86400)
    spikes = (rng.random(values.shape) < spike_probability) & ~_dilate(occupied, margin)[:, None]
    s_idx, p_idx, t_idx = np.nonzero(spikes)
    size = rng.uniform(SPIKE_SIZE[p_idx, 0], SPIKE_SIZE[p_idx, 1])
    size = np.where(p_idx == P["flow"], size * layout.design_flow[s_idx], size)
    sign = np.where((p_idx == P["turbidity"]) | (rng.random(len(p_idx)) < 0.5), 1.0, -1.0)
    lows = np.array([parameter(p).min for p in ONLINE_PARAMETERS])
    highs = np.array([parameter(p).max for p in ONLINE_PARAMETERS])
    values[s_idx, p_idx, t_idx] = np.clip(
        values[s_idx, p_idx, t_idx] + sign * size, lows[p_idx], highs[p_idx]
    )
    labelled |= spikes

    for p, decimals in enumerate(DECIMALS):
        values[:, p] = np.round(values[:, p], int(decimals))

    for s, first, length in windows["stuck"]:  # the sensor repeats its last value
        p = P[str(rng.choice(STUCK_PARAMETERS))]
        values[s, p, first : first + length] = values[s, p, first - 1]
        labelled[s, p, first - 1 : first + length] = True
        labels.append((s, str(sensor_ids[s, p]), "stuck", first, first + length - 1))

    for s, first, length in windows["outage"]:  # the station sends nothing
        values[s, :, first : first + length] = np.nan
        labelled[s, :, first : first + length] = True
        labels.append((s, ";".join(sensor_ids[s]), "outage", first, first + length - 1))

    dropouts = (rng.random(values.shape) < DROPOUT_PROBABILITY) & ~labelled
    values[dropouts] = np.nan

    # Drawn last so the other faults stay as they were; never on a stuck or drifting sensor.
    taken = {(row[0], row[1]) for row in labels if row[2] in ("stuck", "drift")}
    candidates = [
        (s, P[name])
        for s in range(n_stations)
        for name in FOULING_PARAMETERS
        if (s, str(sensor_ids[s, P[name]])) not in taken
    ]
    n_fouled = min(max(1, round(station_days / 12)), len(candidates))
    for pick in rng.choice(len(candidates), size=n_fouled, replace=False) if candidates else []:
        s, p = candidates[int(pick)]
        first = int(rng.integers(n_times // 10, max(n_times // 10 + 1, n_times // 2)))
        values[s, p, first:] = foul(
            values[s, p, first:],
            labelled[s, p, first:],
            p,
            interval_seconds,
            rng.uniform(0, 1),
            int(DECIMALS[p]),
        )
        labels.append((s, str(sensor_ids[s, p]), "fouling", first, n_times - 1))

    station_ids = pl.Series(layout.station_ids)
    fixed = pl.DataFrame(
        {
            "station_id": station_ids.gather([row[0] for row in labels]),
            "sensor_ids": [row[1] for row in labels],
            "kind": [row[2] for row in labels],
            "start": times_us[[row[3] for row in labels]],
            "end": times_us[[row[4] for row in labels]],
        },
        schema_overrides={"sensor_ids": pl.String, "kind": pl.String, "station_id": pl.String},
    )
    spike_frame = pl.DataFrame(
        {
            "station_id": station_ids.gather(s_idx),
            "sensor_ids": pl.Series(sensor_ids.ravel()).gather(s_idx * n_params + p_idx),
            "kind": pl.repeat("spike", len(s_idx), eager=True, dtype=pl.String),
            "start": times_us[t_idx],
            "end": times_us[t_idx],
        }
    )
    labels_frame = pl.concat([fixed, spike_frame]).cast(LABEL_SCHEMA)  # type: ignore[arg-type]
    return OnlineSimulation(times_us, values, labelled, labels_frame)
