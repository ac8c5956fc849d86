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


def footprint(*, compute_ms: float, device: str, threads: int) -> Footprint:
    power = energy.power(device, threads)
    wh = power.energy_wh(compute_ms)
    return Footprint(energy_wh=wh, estimated=not power.measured, carbon_g=wh / 1000.0 * grid_intensity()[0])


def power_source(device: str, threads: int) -> dict[str, object]:
    """How this worker's figures are obtained, for the pages and the export."""
    power = energy.power(device, threads)
    intensity, where = grid_intensity()
    return {"watts": round(power.watts, 3), "measured": power.measured, "power_source": power.source,
            "grid_g_per_kwh": intensity, "grid_source": where}
