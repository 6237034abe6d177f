"""CUDA backends and GPU measurements.

Backends: ``cuda`` (eager, float32 with TF32 off), ``cuda-compile`` (torch.compile) and
``cuda-compile-graphs`` (torch.compile ``mode="reduce-overhead"``: CUDA graphs). All are
timed with CUDA events after a synchronise, reset ``torch.cuda`` peak memory statistics
in ``prepare`` (the ``memory`` metric reads ``max_memory_allocated``) and are skipped with
"no CUDA device" where there is none. The Tensor Core backends (TF32, bf16, fp16) live in
``optbench.plugins.tensorcore``.

Metrics: ``mfu`` (achieved TFLOP/s of the forward workload, and on a GPU of known peak
the model FLOPs utilisation) and ``energy`` (NVML energy per call, power and utilisation;
absent, not zero, without a GPU).
"""

from __future__ import annotations

from typing import Any

from optbench import Backend, Metric, hookimpl

# Dense (no 2:4 sparsity) peak TFLOP/s by GPU model and precision: "fp32" is the CUDA cores'
# float32, the others Tensor Core throughput. Sources:
#  - H100 SXM5 and H100 PCIe: NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022),
#    table "NVIDIA A100 vs H100 Data Center GPU": FP32 66.9 / 51.2, TF32 494.7 / 378,
#    BF16 and FP16 989.4 / 756 (the datasheet's figures "with sparsity" are twice these).
#  - H200 SXM: NVIDIA H200 Tensor Core GPU datasheet (2024): FP32 67, TF32 989, BF16 and FP16
#    1,979 TFLOPS, the last three marked "with sparsity", so dense is half of them.
#  - A100 (SXM4 and PCIe, 40 and 80 GB): NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5,
#    TF32 156, BF16 and FP16 312 (dense; 312 / 624 with sparsity).
# H100 NVL, H200 NVL and other GPUs have other clocks or SM counts: no entry, so no MFU.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
    "H200 SXM": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
}
PEAK_SOURCES = {
    "H100 SXM": "NVIDIA H100 Tensor Core GPU Architecture whitepaper (SXM5, dense)",
    "H100 PCIe": "NVIDIA H100 Tensor Core GPU Architecture whitepaper (PCIe, dense)",
    "H200 SXM": "NVIDIA H200 datasheet (half of the with-sparsity figures; FP32 as listed)",
    "A100": "NVIDIA A100 datasheet (dense)",
}
#: a backend's ``precision`` -> the column of PEAK_TFLOPS its matmuls run at
PRECISION_PEAK = {"float32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16"}


def gpu_model(name: str) -> str | None:
    """The PEAK_TFLOPS key for a CUDA device name ('NVIDIA H100 80GB HBM3' -> 'H100 SXM'), or None."""
    n = name.upper()
    if "NVL" in n:
        return None
    if "H200" in n:
        return "H200 SXM"
    if "H100" in n:
        return "H100 PCIe" if "PCIE" in n else "H100 SXM"
    if "A100" in n:
        return "A100"
    return None


def peak_tflops(gpu_name: str, precision: str) -> tuple[float, str] | None:
    """``(dense peak TFLOP/s, source)`` for this GPU at this precision, or None when unknown."""
    model = gpu_model(gpu_name)
    column = PRECISION_PEAK.get(precision)
    if model is None or column is None:
        return None
    return PEAK_TFLOPS[model][column], PEAK_SOURCES[model]


class CUDABackend(Backend):
    name = "cuda"
    device = "cuda"
    description = "eager PyTorch on the first CUDA device (float32, TF32 off), CUDA-event timing"
    precision = "float32"
    autocast: str | None = None  # "bf16" / "fp16" in the Tensor Core backends

    def available(self):
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device"
        return True, ""

    def set_math_mode(self) -> None:
        """float32 is float32 here: TF32 is what the ``tensorcore-tf32`` backend measures."""
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")

    def prepare(self, model, ctx):
        import torch

        self.set_math_mode()
        torch.cuda.reset_peak_memory_stats()
        return model.to("cuda").eval()

    def synchronize(self):
        import torch

        torch.cuda.synchronize()

    def time_call(self, fn):
        import torch

        torch.cuda.synchronize()  # earlier work must not land between the events
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0

    def describe(self):
        import torch

        info: dict[str, Any] = {"device": "cuda", "precision": self.precision, "autocast": self.autocast,
                                "tf32_matmul": self.precision == "tf32" or self.autocast is not None}
        if not torch.cuda.is_available():
            return {**info, "available": False}
        props = torch.cuda.get_device_properties(0)
        peak = peak_tflops(props.name, self.precision)
        return {**info, "gpu": props.name, "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "gpu_memory": props.total_memory, "peak_tflops": peak[0] if peak else None}


class CUDACompileBackend(CUDABackend):
    name = "cuda-compile"
    description = "torch.compile (inductor) on the first CUDA device, float32; compile time recorded apart"
    mode: str | None = None

    def __init__(self) -> None:
        self.compile_info: dict[str, Any] = {}

    def prepare(self, model, ctx):
        from optbench.plugins.cpu import compile_with_check

        model = super().prepare(model, ctx)
        compiled, self.compile_info = compile_with_check(model, ctx, "cuda", self.mode, self.synchronize)
        return compiled

    def describe(self):
        return {**super().describe(), **self.compile_info}


class CUDAGraphsBackend(CUDACompileBackend):
    name = "cuda-compile-graphs"
    description = "torch.compile mode='reduce-overhead' (CUDA graphs) on the first CUDA device, float32"
    mode = "reduce-overhead"


# --- metrics --------------------------------------------------------------------------------------


def _raw_model(model: Any) -> Any:
    """The plain module under torch.compile's and the autocast wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "autocast_inner", None)
        if inner is None:
            return model
        model = inner


def _forward_input(ctx):
    import torch

    wl = ctx.workload
    g = torch.Generator().manual_seed(ctx.seed)  # the latency metric's input
    return torch.randint(0, 256, (wl["batch"], wl["seq_len"]), generator=g).to(ctx.device)


def _median_latency(ctx, call) -> float:
    """The latency metric's median when it ran in this cell; else a short timing of our own."""
    median = ctx.shared.get("latency_median_s")
    if median is not None:
        return median
    from optbench.measure import latency

    m = ctx.measure
    return latency.measure(lambda: ctx.backend.time_call(call), warmup=m["warmup"], min_reps=m["min_reps"],
                           min_time_s=m["min_time_s"], max_time_s=m["max_time_s"]).median


class MFU(Metric):
    name = "mfu"
    description = ("achieved TFLOP/s of the forward workload (FLOPs from torch.utils.flop_counter / latency), and "
                   "model FLOPs utilisation against the GPU's dense peak at the backend's precision")

    def measure(self, ctx):
        import torch
        from optbench.measure.flops import flops_per_token
        from optbench.models.gpt import attention_flops

        wl = ctx.workload
        x = _forward_input(ctx)
        model = ctx.model

        def call():
            with torch.inference_mode():
                model(x)

        f = flops_per_token(_raw_model(model), wl["seq_len"], ctx.device, attention_flops)
        flops = f["flops_per_token"] * wl["batch"] * wl["seq_len"]
        median = _median_latency(ctx, call)
        achieved = flops / median / 1e12
        out = {"achieved_tflops": {"value": achieved, "unit": "TFLOP/s", "flops_per_call": flops, "latency_median_s": median}}
        if f["notes"]:
            out["achieved_tflops"]["notes"] = f["notes"]
        if str(ctx.device).startswith("cuda"):
            precision = getattr(ctx.backend, "precision", "float32")
            peak = peak_tflops(torch.cuda.get_device_name(0), precision)
            if peak is not None:
                out["mfu"] = {"value": achieved / peak[0], "unit": "fraction", "peak_tflops": peak[0],
                              "precision": precision, "peak_source": peak[1]}
        return out


class Energy(Metric):
    name = "energy"
    description = "GPU energy per forward call, power and utilisation from NVML (nvidia-ml-py); absent without a GPU"

    def measure(self, ctx):
        if not str(ctx.device).startswith("cuda"):
            return {}  # absent, not zero
        import torch
        from optbench.measure import energy

        ok, why = energy.nvml_status()
        if not ok:
            ctx.log(f"energy: not measured ({why})")
            return {}
        x = _forward_input(ctx)
        model = ctx.model
        wl, m = ctx.workload, ctx.measure
        seconds = max(1.0, float(m["min_time_s"]))  # NVML's power readings update every ~100 ms
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            torch.cuda.synchronize()
            with energy.NvmlSampler(torch.cuda.current_device()) as sampler:
                calls = 0
                while sampler.elapsed() < seconds:
                    model(x)
                    calls += 1
                    if calls % 8 == 0:
                        torch.cuda.synchronize()
                torch.cuda.synchronize()
        r = sampler.reading
        if r is None or r.energy_j is None:
            return {}
        tokens = wl["batch"] * wl["seq_len"] * calls
        return {
            "energy_per_call": {"value": r.energy_j / calls, "unit": "J", "calls": calls, "source": r.source,
                                "seconds": r.seconds},
            "tokens_per_joule": {"value": tokens / r.energy_j if r.energy_j else None, "unit": "tokens/J"},
            "gpu_power": {"value": r.power_mean_w, "unit": "W", "max": r.power_max_w, "samples": r.samples},
            "gpu_utilization": {"value": r.util_gpu_mean, "unit": "%", "memory_utilization": r.util_mem_mean},
        }


@hookimpl
def optbench_register_backends(register):
    register(CUDABackend())
    register(CUDACompileBackend())
    register(CUDAGraphsBackend())


@hookimpl
def optbench_register_metrics(register):
    register(MFU())
    register(Energy())
