"""Backends: cpu, cpu-compile (really compiles), CUDA and Tensor Core backends (skip without a GPU), GPU figures.

One suite run covers every built-in backend on this machine; the GPU ones must come back
``skipped: no CUDA device`` here, never as a crash and never with a made-up figure.
"""

from __future__ import annotations

import sys
import types

import pytest
from optbench.measure import energy
from optbench.plugins.cuda import CUDABackend, gpu_model, peak_tflops
from optbench.plugins.tensorcore import TensorCoreBF16
from optbench.testing import run_suite_yaml

GPU_BACKENDS = ["cuda", "cuda-compile", "cuda-compile-graphs", "tensorcore-tf32", "tensorcore-bf16", "tensorcore-fp16"]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def backend_rows(tmp_path_factory):
    outcome = run_suite_yaml(f"""
        name: backends-test
        model: {{source: reference, size: tiny, depth: 1, width: 64, heads: 2}}
        backend: [cpu, cpu-compile, {", ".join(GPU_BACKENDS)}]
        threads: 1
        workload: {{kind: forward, batch: 2, seq_len: 32}}
        measure: {{metrics: [latency, mfu, energy, memory], min_reps: 5, min_time_s: 0.05}}
        techniques: [none]
        timeout: 300
    """, tmp_path_factory.mktemp("backends"))
    return {r["backend"]: r for r in outcome.rows}


def test_cpu_compile_really_compiles_and_matches_eager(backend_rows):
    row = backend_rows["cpu-compile"]
    assert row["status"] == "ok", row["reason"]
    info = row["backend_info"]
    assert info["compiler"] == "inductor" and info["precision"] == "float32"
    # the compile is recorded on its own, and is far slower than a compiled call
    assert info["compile_s"] > 0 and info["compile_s"] > 10 * info["second_call_s"]
    assert info["compile_max_abs_diff"] <= 1e-5
    # ... and not among the timed calls: every latency sample is a compiled call
    assert max(row["metrics"]["latency"]["samples"]) < info["compile_s"]


def test_cpu_backend_row_records_precision_and_achieved_flops(backend_rows):
    row = backend_rows["cpu"]
    assert row["status"] == "ok", row["reason"]
    assert row["backend_info"]["precision"] == "float32" and row["backend_info"]["threads"] == 1
    m = row["metrics"]
    assert m["achieved_tflops"]["value"] > 0
    assert m["achieved_tflops"]["latency_median_s"] == m["latency"]["median"]  # FLOPs over the latency metric's median
    # no GPU: no peak to divide by, no NVML: absent, not zero
    assert "mfu" not in m and "energy_per_call" not in m and "gpu_power" not in m


@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA device")
def test_gpu_backends_skip_with_the_reason_on_a_cpu_machine(backend_rows):
    for name in GPU_BACKENDS:
        row = backend_rows[name]
        assert (row["status"], row["reason"]) == ("skipped", "no CUDA device"), name
        assert row["metrics"] == {}


# --- without running a suite ----------------------------------------------------------------------


def test_peak_table_matches_gpu_names_to_their_dense_peaks():
    assert gpu_model("NVIDIA H100 80GB HBM3") == "H100 SXM"
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16")[0] == 989.4
    assert peak_tflops("NVIDIA H100 80GB HBM3", "tf32")[0] == 494.7
    assert peak_tflops("NVIDIA H100 80GB HBM3", "float32")[0] == 66.9
    assert peak_tflops("NVIDIA H100 PCIe", "fp16")[0] == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "tf32")[0] == 156.0
    assert peak_tflops("NVIDIA H200", "bf16")[0] == 989.5
    assert peak_tflops("NVIDIA H100 NVL", "bf16") is None  # other clocks: no figure rather than a wrong one
    assert peak_tflops("Tesla T4", "fp16") is None


@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA device")
def test_gpu_backends_say_why_they_are_unavailable():
    assert CUDABackend().available() == (False, "no CUDA device")
    assert TensorCoreBF16().available() == (False, "no CUDA device")
    info = TensorCoreBF16().describe()
    assert info["available"] is False and info["precision"] == "bf16" and info["autocast"] == "bf16"
    ok, why = energy.nvml_status()
    assert not ok and why


def test_energy_comes_from_the_counter_else_the_power_integral():
    r = energy.summarize(2.0, 1_000.0, 301_000.0, [(0.0, 140.0), (1.0, 160.0)], [(90.0, 40.0), (100.0, 60.0)])
    assert (r.energy_j, r.source) == (300.0, "energy counter")
    assert (r.power_mean_w, r.power_max_w, r.util_gpu_mean, r.util_mem_mean) == (150.0, 160.0, 95.0, 50.0)
    r = energy.summarize(1.0, None, None, [(0.0, 100.0), (0.5, 200.0), (1.0, 100.0)], [])
    assert (r.energy_j, r.source, r.util_gpu_mean) == (150.0, "power integral", None)
    assert energy.summarize(1.0, None, None, [], []).energy_j is None


def test_nvml_sampler_reads_the_counter_around_the_work(monkeypatch):
    """The sampler's plumbing, against a stand-in for pynvml (no GPU figure is produced)."""
    counter = iter([5_000.0, 7_500.0])
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: next(counter),
        nvmlDeviceGetPowerUsage=lambda h: 250_000,  # mW
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=80, memory=30),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with energy.NvmlSampler(handle="gpu0", interval_s=0.005) as s:
        while s.elapsed() < 0.05:
            pass
    r = s.reading
    assert (r.energy_j, r.source) == (2.5, "energy counter")
    assert r.samples >= 2 and r.power_mean_w == 250.0 and r.util_gpu_mean == 80.0
