"""The ``cuda`` backend: eager PyTorch on one GPU, timed with CUDA events."""

from __future__ import annotations

from optbench import Backend, hookimpl


class CUDABackend(Backend):
    name = "cuda"
    device = "cuda"
    description = "eager PyTorch on the first CUDA device (float32), CUDA-event timing"

    def available(self):
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device"
        return True, ""

    def prepare(self, model, ctx):
        import torch

        torch.cuda.reset_peak_memory_stats()
        return model.to("cuda").eval()

    def synchronize(self):
        import torch

        torch.cuda.synchronize()

    def time_call(self, fn):
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0

    def describe(self):
        import torch

        props = torch.cuda.get_device_properties(0)
        return {"device": "cuda", "gpu": props.name, "capability": f"{props.major}.{props.minor}",
                "precision": "float32", "cuda": torch.version.cuda}


@hookimpl
def optbench_register_backends(register):
    register(CUDABackend())
