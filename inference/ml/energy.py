"""The power a worker draws for served work, measured where the machine can measure it, else estimated.

- A CUDA device: NVML's power reading of the board (pynvml, via nvidia-ml-py): measured.
- A CPU with RAPL counters (/sys/class/powercap/intel-rapl:0/energy_uj readable): the package's
  average power since the previous reading, shared by the threads the work used: measured.
- Otherwise (virtual machines, which hide RAPL): CodeCarbon's power model, the CPU's TDP from its
  table (or, for a CPU it does not know, its default of 4 W per thread) per thread used: estimated.

A request's energy is that power times its compute time. Under a continuous batch the compute time of a
completion is its wall time in the batch, so concurrent requests each count the power of the whole
time: an upper bound there.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("steward.inference")
RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
CODECARBON_DEFAULT_W_PER_THREAD = 4.0  # CodeCarbon's own fallback for a CPU missing from its table


@dataclass(frozen=True)
class Power:
    watts: float
    measured: bool
    source: str

    def energy_wh(self, compute_ms: float) -> float:
        return self.watts * compute_ms / 3_600_000.0


@functools.cache
def _cpu_tdp() -> tuple[float, str]:
    """The CPU's TDP in watts and what it is, from CodeCarbon's table (its default when the CPU is not in it)."""
    threads = os.cpu_count() or 1
    try:
        from codecarbon.core.cpu import TDP

        found = TDP()
        if found.tdp:
            return float(found.tdp), f"CodeCarbon's power model: TDP {found.tdp} W for CPU '{found.model}'"
    except Exception:  # CodeCarbon could not read the CPU: its default, said as such
        logger.info("CodeCarbon could not read this CPU's model; its default power model applies", exc_info=True)
    return CODECARBON_DEFAULT_W_PER_THREAD * threads, "CodeCarbon's default power model: 4 W per thread"


class _Rapl:
    """The package's average power between readings, at most one reading a second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: tuple[float, int] | None = None
        self.watts: float | None = None

    def readable(self) -> bool:
        try:
            int(RAPL.read_text())
        except (OSError, ValueError):
            return False
        return True

    def power(self) -> float | None:
        with self.lock:
            now, energy = time.monotonic(), int(RAPL.read_text())
            if self.last is not None and now - self.last[0] >= 1.0 and energy >= self.last[1]:
                self.watts = (energy - self.last[1]) / 1e6 / (now - self.last[0])
                self.last = (now, energy)
            elif self.last is None:
                self.last = (now, energy)
            return self.watts


_rapl = _Rapl()


@functools.cache
def _rapl_available() -> bool:
    return _rapl.readable()


@functools.cache
def _nvml_handle(index: int) -> object:
    """NVML started once per process, and the board's handle kept: a reading is then one call."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def power(device: str, threads: int) -> Power:
    """The power drawn for work on `device` using `threads` CPU threads (a GPU: the board's)."""
    if device.startswith("cuda"):
        try:
            import pynvml

            milliwatts = pynvml.nvmlDeviceGetPowerUsage(_nvml_handle(int(device.split(":", 1)[1]) if ":" in device else 0))
            return Power(milliwatts / 1000.0, True, f"NVML power reading of {device}")
        except Exception:  # no NVML on this machine: the CPU's estimate below is all there is
            logger.debug("no NVML reading for %s", device, exc_info=True)
    cpus = os.cpu_count() or 1
    share = min(max(threads, 1), cpus) / cpus
    if _rapl_available():
        watts = _rapl.power()
        if watts is not None:
            return Power(watts * share, True, "RAPL package counters, shared by the threads used")
    tdp, source = _cpu_tdp()
    return Power(tdp * share, False, f"{source}, {min(max(threads, 1), cpus)} of {cpus} threads")
