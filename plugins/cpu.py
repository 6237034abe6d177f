"""CPU backends: ``cpu`` (eager PyTorch) and ``cpu-compile`` (torch.compile, inductor).

``cpu-compile`` compiles in ``prepare``, with one call on the workload's input shape, so
the compile time is recorded on its own (``backend_info.compile_s``) and never among the
timed calls; the compiled output is checked against eager on that input
(``backend_info.compile_max_abs_diff``). On this project's 2-core VM the first compile of
the tiny model takes 14-29 s (inductor's cache under /tmp/torchinductor_* shortens later
ones); a new input shape (the accuracy metric's windows) compiles again.
"""

from __future__ import annotations

import os
import time
from typing import Any

from optbench import Backend, hookimpl

OMP_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")


def compile_with_check(model: Any, ctx: Any, device: str, mode: str | None = None,
                       synchronize: Any = None) -> tuple[Any, dict[str, Any]]:
    """``torch.compile(model, mode=mode)`` compiled now, on the workload's input shape.

    Returns the compiled module and what to record: ``compile_s`` (the first call: tracing,
    code generation, and one run), ``second_call_s`` (a compiled run, for scale) and
    ``compile_max_abs_diff`` against the eager model on the same input. Training
    workloads compile lazily, on their first step (their graph includes the backward).
    """
    import torch

    info: dict[str, Any] = {"compiler": "inductor", "compile_mode": mode or "default"}
    compiled = torch.compile(model, mode=mode)
    wl = ctx.workload
    if wl.get("kind", "forward") != "forward":
        info["compile_s"] = None
        info["note"] = "compiled lazily: the first training step includes the compile"
        return compiled, info
    sync = synchronize or (lambda: None)
    g = torch.Generator().manual_seed(ctx.seed)
    x = torch.randint(0, 256, (wl["batch"], wl["seq_len"]), generator=g).to(device)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = compiled(x)
        sync()
        info["compile_s"] = round(time.perf_counter() - t0, 4)
        t0 = time.perf_counter()
        compiled(x)
        sync()
        info["second_call_s"] = round(time.perf_counter() - t0, 6)
        ref = model(x)
        info["compile_max_abs_diff"] = float((out.float() - ref.float()).abs().max())
    return compiled, info


class CPUBackend(Backend):
    name = "cpu"
    device = "cpu"
    description = "eager PyTorch on the CPU (float32)"
    precision = "float32"

    def prepare(self, model, ctx):
        return model.to("cpu").eval()

    def describe(self):
        import torch

        return {
            "device": "cpu",
            "precision": self.precision,
            "threads": torch.get_num_threads(),
            "omp": {k: os.environ[k] for k in OMP_VARS if k in os.environ},
        }


class CPUCompileBackend(CPUBackend):
    name = "cpu-compile"
    description = "torch.compile (inductor) on the CPU, float32; compile time recorded apart from the timed calls"

    def __init__(self) -> None:
        self.compile_info: dict[str, Any] = {}  # one cell per process: this is the cell's model's

    def prepare(self, model, ctx):
        model = super().prepare(model, ctx)
        compiled, self.compile_info = compile_with_check(model, ctx, "cpu")
        return compiled

    def describe(self):
        return {**super().describe(), "compiler": "inductor", **self.compile_info}


@hookimpl
def optbench_register_backends(register):
    register(CPUBackend())
    register(CPUCompileBackend())
