"""The ``cpu`` backend: eager PyTorch on the CPU, thread count recorded."""

from __future__ import annotations

import os

from optbench import Backend, hookimpl

OMP_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")


class CPUBackend(Backend):
    name = "cpu"
    device = "cpu"
    description = "eager PyTorch on the CPU (float32)"

    def prepare(self, model, ctx):
        return model.to("cpu").eval()

    def describe(self):
        import torch

        return {
            "device": "cpu",
            "precision": "float32",
            "threads": torch.get_num_threads(),
            "omp": {k: os.environ[k] for k in OMP_VARS if k in os.environ},
        }


@hookimpl
def optbench_register_backends(register):
    register(CPUBackend())
