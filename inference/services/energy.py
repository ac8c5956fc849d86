"""The energy and carbon of served work, as recorded with each prediction, completion and day of usage.

Energy: the power of inference/ml/energy.py (measured: NVML, RAPL; else CodeCarbon's power model,
labelled estimated) times the work's compute time. Carbon: that energy times the grid's intensity,
configured (CARBON_INTENSITY_G_PER_KWH), or a country's mix from CodeCarbon's data (CARBON_GRID_COUNTRY),
else the world average in that data; the intensity in force is recorded with the figures.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings

from inference.ml import energy


@dataclass(frozen=True)
class Footprint:
    energy_wh: float
    estimated: bool
    carbon_g: float

    @property
    def estimated_wh(self) -> float:
        return self.energy_wh if self.estimated else 0.0


@functools.cache
def grid_intensity() -> tuple[float, str]:
    """g CO2e per kWh, and where the figure comes from."""
    if settings.CARBON_INTENSITY_G_PER_KWH:
        return settings.CARBON_INTENSITY_G_PER_KWH, "configured (CARBON_INTENSITY_G_PER_KWH)"
    from codecarbon.input import DataSource

    data = DataSource()
    country = settings.CARBON_GRID_COUNTRY
    if country:
        mix = data.get_global_energy_mix_data().get(country)
        if mix and mix.get("carbon_intensity"):
            return float(mix["carbon_intensity"]), f"{mix.get('country_name', country)}'s mix ({mix.get('year', '')}, CodeCarbon's data)"
    return float(data.get_carbon_intensity_per_source_data()["world_average"]), "world average (IEA, CodeCarbon's data)"


def footprints(compute_ms: list[float], *, device: str, threads: int) -> list[Footprint]:
    """The footprint of each piece of work done on `device` with `threads` threads: the power is read once."""
    power = energy.power(device, threads)
    intensity = grid_intensity()[0]
    return [Footprint(energy_wh=(wh := power.energy_wh(ms)), estimated=not power.measured,
                      carbon_g=wh / 1000.0 * intensity) for ms in compute_ms]


def footprint(*, compute_ms: float, device: str, threads: int) -> Footprint:
    return footprints([compute_ms], device=device, threads=threads)[0]
