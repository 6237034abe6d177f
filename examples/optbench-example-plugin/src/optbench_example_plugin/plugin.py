"""The plugin module named by the entry point: one technique and one metric.

It imports nothing heavy: `optbench plugins` and `optbench validate` import this module
and must stay instant, so the torch code lives in ``lowrank.py`` and is imported inside
``apply`` / ``measure`` (which run in the cell's own process).
"""

from __future__ import annotations

from optbench import Metric, SkipCell, Technique, hookimpl


class LowRank(Technique):
    name = "low-rank"
    kind = "compress"
    description = "replace each nn.Linear (in -> out) by two, in -> r -> out, from its truncated SVD"
    # defaults; their types are the suite schema (rank: int, ratio: float, skip_head: bool)
    params = {"rank": 0, "ratio": 0.25, "skip_head": True}
    # imported once in the cell server, so each cell does not pay for it
    preload = ("optbench_example_plugin.lowrank",)

    def validate(self, params):
        problems = []
        if params["rank"] < 0:
            problems.append(f"rank must be >= 0 (0 means: use ratio), got {params['rank']}")
        if not 0 < params["ratio"] <= 1:
            problems.append(f"ratio must be in (0, 1], got {params['ratio']}")
        return problems

    def apply(self, model, params, ctx):
        from .lowrank import factorize

        done = factorize(model, rank=params["rank"], ratio=params["ratio"], skip_head=params["skip_head"])
        if not done["replaced"]:
            # an unchanged model labelled "low-rank" would be a misleading row
            raise SkipCell(f"{self.label(params)} would not shrink any Linear layer of this model")
        ctx.log(f"low-rank: factorised {len(done['replaced'])} Linear layers; kept dense: {', '.join(done['kept']) or 'none'}")
        return model


class LinearParams(Metric):
    name = "linear-params"
    description = "parameters held by Linear layers, what they would hold dense, and how many are factorised"

    def measure(self, ctx):
        from .lowrank import linear_stats

        s = linear_stats(ctx.model)
        return {
            "linear_params": {"value": s["params"], "unit": "count"},
            "linear_params_dense": {"value": s["dense_params"], "unit": "count"},
            "factorized_layers": {"value": s["factorized"], "unit": "count", "of": s["layers"]},
        }


@hookimpl
def optbench_register_techniques(register):
    register(LowRank())


@hookimpl
def optbench_register_metrics(register):
    register(LinearParams())
