"""GPU energy, power and utilisation from NVML (nvidia-ml-py), sampled while work runs.

Energy comes from the device's energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded, Volta and newer) read before and after; where that
counter is missing, from the power samples integrated over time. A background thread
samples power and utilisation every ``interval_s`` (NVML itself refreshes them about every
100 ms, so windows shorter than a second say little).

Without a GPU or NVML nothing is measured: :func:`nvml_status` says why, and callers leave
the figures out of the row (absent, not zero). pynvml is imported only when used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any


@dataclass
class EnergyReading:
    seconds: float
    energy_j: float | None
    source: str  # "energy counter" | "power integral"
    power_mean_w: float | None
    power_max_w: float | None
    util_gpu_mean: float | None  # percent of time a kernel was running
    util_mem_mean: float | None  # percent of time device memory was read or written
    samples: int


def _nvml() -> Any:
    import pynvml

    return pynvml


def nvml_status() -> tuple[bool, str]:
    """``(True, "")`` when NVML answers and sees a GPU, else ``(False, reason)``."""
    try:
        nv = _nvml()
    except ImportError:
        return False, "nvidia-ml-py is not installed"
    try:
        nv.nvmlInit()
    except Exception as e:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return False, f"NVML unavailable: {e}"
    try:
        if nv.nvmlDeviceGetCount() < 1:
            return False, "NVML sees no GPU"
    finally:
        nv.nvmlShutdown()
    return True, ""


def handle_for(nv: Any, torch_index: int) -> Any:
    """The NVML handle of torch's CUDA device ``torch_index``.

    Matched by UUID, since CUDA_VISIBLE_DEVICES renumbers torch's devices but not NVML's;
    by index when torch cannot say the UUID.
    """
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(torch_index).uuid)
        return nv.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    except Exception:  # noqa: BLE001 - no uuid attribute, or a MIG slice NVML names differently
        return nv.nvmlDeviceGetHandleByIndex(torch_index)


class NvmlSampler:
    """Context manager: energy and sampled power/utilisation of one GPU over the ``with`` body."""

    def __init__(self, torch_index: int = 0, interval_s: float = 0.02, handle: Any = None):
        self.torch_index = torch_index
        self.interval_s = interval_s
        self._handle = handle
        self.reading: EnergyReading | None = None
        self._power: list[tuple[float, float]] = []  # (time, watts)
        self._util: list[tuple[float, float]] = []  # (gpu %, memory %)
        self._stop = threading.Event()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _energy_mj(self) -> float | None:
        try:
            return float(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported before Volta
            return None

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                self._power.append((now, self.nv.nvmlDeviceGetPowerUsage(self.handle) / 1000.0))
                u = self.nv.nvmlDeviceGetUtilizationRates(self.handle)
                self._util.append((float(u.gpu), float(u.memory)))
            except Exception:  # noqa: BLE001 - a reading NVML refuses is a missing sample
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> NvmlSampler:
        self.nv = _nvml()
        self.nv.nvmlInit()
        self.handle = self._handle or handle_for(self.nv, self.torch_index)
        self._e0 = self._energy_mj()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        seconds = self.elapsed()
        e1 = self._energy_mj()
        self._stop.set()
        self._thread.join(timeout=1.0)
        try:
            self.nv.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
        self.reading = summarize(seconds, self._e0, e1, self._power, self._util)


def summarize(seconds: float, e0_mj: float | None, e1_mj: float | None,
              power: list[tuple[float, float]], util: list[tuple[float, float]]) -> EnergyReading:
    """Energy from the counter when both readings exist, else the trapezoid integral of power."""
    watts = [w for _, w in power]
    if e0_mj is not None and e1_mj is not None and e1_mj >= e0_mj:
        energy, source = (e1_mj - e0_mj) / 1000.0, "energy counter"
    elif len(power) >= 2:
        energy = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in pairwise(power))
        energy *= seconds / (power[-1][0] - power[0][0]) if power[-1][0] > power[0][0] else 1.0
        source = "power integral"
    else:
        energy, source = None, "none"

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    return EnergyReading(
        seconds=seconds, energy_j=energy, source=source, power_mean_w=mean(watts), power_max_w=max(watts) if watts else None,
        util_gpu_mean=mean([g for g, _ in util]), util_mem_mean=mean([m for _, m in util]), samples=len(power),
    )
