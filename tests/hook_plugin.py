"""A plugin implementing every optbench hook, for test_hooks.py.

It is a module (not an object) so cell processes can import it by name: techniques,
backends, models, datasets and metrics are used there; reporters and the lifecycle
observers in the runner process, where ``CALLS`` records what they saw.
"""

from __future__ import annotations

import copy
from pathlib import Path

from optbench import Backend, Dataset, Metric, ModelSource, Reporter, Technique, hookimpl

CALLS: list[tuple[str, dict]] = []
HELDOUT = b"held-out text of the toy dataset"


class Scale(Technique):
    name = "scale"
    kind = "compress"
    params = {"factor": 2.0}

    def apply(self, model, params, ctx):
        import torch

        with torch.no_grad():
            for p in model.parameters():
                p.mul_(params["factor"])
        return model


class TaggedCPU(Backend):
    name = "cpu-tagged"
    device = "cpu"

    def prepare(self, model, ctx):
        return model.eval()

    def describe(self):
        return {"device": "cpu", "tag": "from hook_plugin"}


class ToyModels(ModelSource):
    name = "toy"
    params = {"width": 4}

    def fingerprint(self, params):
        return f"toy-{params['width']}"

    def load(self, params, ctx):
        import torch

        w = params["width"]
        model = torch.nn.Linear(w, w)
        with torch.no_grad():
            model.weight.fill_(1.0)
            model.bias.fill_(0.5)
        return model, {"config": {"width": w}, "trained": False}


class ToyText(Dataset):
    name = "toy-text"

    def load(self, split):
        return {"train": b"train", "validation": b"validation", "heldout": HELDOUT}[split]


class WeightSum(Metric):
    name = "weight-sum"

    def measure(self, ctx):
        total = sum(float(p.abs().sum()) for p in ctx.model.parameters())
        return {"weight_sum": {"value": total, "unit": ""},
                "data_bytes": {"value": len(ctx.data(ctx.cell["data"]["split"])), "unit": "B"}}


class Lines(Reporter):
    name = "lines"
    filename = "lines.txt"

    def render(self, report, out_dir):
        path = Path(out_dir) / self.filename
        path.write_text("".join(f"{r['technique']['label']} {r['status']} {r['metrics']['weight_sum']['value']:g}\n"
                                for r in sorted(report.rows, key=lambda r: r["technique"]["label"])))
        return str(path)


@hookimpl
def optbench_register_techniques(register):
    register(Scale())


@hookimpl
def optbench_register_backends(register):
    register(TaggedCPU())


@hookimpl
def optbench_register_models(register):
    register(ToyModels())


@hookimpl
def optbench_register_datasets(register):
    register(ToyText())


@hookimpl
def optbench_register_metrics(register):
    register(WeightSum())


@hookimpl
def optbench_register_reporters(register):
    register(Lines())


@hookimpl
def optbench_cell_started(cell):
    CALLS.append(("cell_started", {"cell": copy.deepcopy(cell)}))


@hookimpl
def optbench_cell_finished(cell, row):
    CALLS.append(("cell_finished", {"cell": copy.deepcopy(cell), "row": copy.deepcopy(row)}))


@hookimpl
def optbench_run_finished(run_dir, rows):
    CALLS.append(("run_finished", {"run_dir": run_dir, "rows": copy.deepcopy(rows)}))
