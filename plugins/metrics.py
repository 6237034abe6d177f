"""The built-in metrics: latency, memory, cost, accuracy, fidelity (DESIGN §5)."""

from __future__ import annotations

from optbench import Metric, hookimpl


def _eval_windows(ctx):
    if "eval_windows" not in ctx.shared:
        from optbench.measure.accuracy import eval_windows

        m = ctx.measure
        seq = min(m["eval_seq_len"], ctx.model_meta.get("config", {}).get("max_seq_len", m["eval_seq_len"]))
        ctx.shared["eval_windows"] = eval_windows(ctx.data(ctx.cell["data"]["split"]), seq, m["eval_tokens"])
    return ctx.shared["eval_windows"]


class Latency(Metric):
    name = "latency"
    description = "forward-pass latency: median, p90, mean, 95% CI of the median, unstable flag"

    def measure(self, ctx):
        import torch
        from optbench.measure import latency

        wl, m = ctx.workload, ctx.measure
        g = torch.Generator().manual_seed(ctx.seed)
        x = torch.randint(0, 256, (wl["batch"], wl["seq_len"]), generator=g).to(ctx.device)
        model = ctx.model

        def call():
            with torch.inference_mode():
                model(x)

        stats = latency.measure(
            lambda: ctx.backend.time_call(call),
            warmup=m["warmup"], min_reps=m["min_reps"], min_time_s=m["min_time_s"],
            max_time_s=m["max_time_s"], precision=m["precision"], unstable_ratio=m["unstable_ratio"],
        )
        tokens = wl["batch"] * wl["seq_len"]
        return {
            "latency": stats.to_dict(),
            "throughput": {"value": tokens / stats.median, "unit": "tokens/s"},
        }


class Memory(Metric):
    name = "memory"
    description = "parameter + buffer bytes (through quantized subclasses), serialized bytes, peak RSS"

    def measure(self, ctx):
        from optbench.measure import memory

        b = memory.model_bytes(ctx.model)
        out = {
            "model_bytes": {"value": b["param_bytes"] + b["buffer_bytes"], "unit": "B"},
            "param_bytes": {"value": b["param_bytes"], "unit": "B"},
            "unique_param_bytes": {"value": b["unique_bytes"], "unit": "B"},
            "serialized_bytes": {"value": memory.serialized_bytes(ctx.model), "unit": "B"},
            "peak_rss": {"value": memory.peak_rss_bytes(), "unit": "B"},
        }
        gpu = memory.cuda_peak_bytes(ctx.device)
        if gpu is not None:
            out["gpu_peak_allocated"] = {"value": gpu, "unit": "B"}
        return out


class Cost(Metric):
    name = "cost"
    description = "parameter count and FLOPs per token (flop_counter, attention by formula)"

    def measure(self, ctx):
        from optbench.measure.flops import flops_per_token
        from optbench.models.gpt import attention_flops

        f = flops_per_token(ctx.model, ctx.workload["seq_len"], ctx.device, attention_flops)
        params = sum(p.numel() for p in ctx.model.parameters())
        out = {"parameters": {"value": params, "unit": "count"},
               "flops_per_token": {"value": f["flops_per_token"], "unit": "FLOP"}}
        if f["notes"]:
            out["flops_per_token"]["notes"] = f["notes"]
        return out


class Accuracy(Metric):
    name = "accuracy"
    description = "held-out perplexity and next-token top-1 accuracy (batch-size independent)"

    def measure(self, ctx):
        from optbench.measure.accuracy import evaluate

        r = evaluate(ctx.model, _eval_windows(ctx), device=ctx.device)
        return {
            "perplexity": {"value": r.perplexity, "unit": "", "tokens": r.tokens, "split": ctx.cell["data"]["split"]},
            "top1_accuracy": {"value": r.top1, "unit": "fraction"},
        }


class Fidelity(Metric):
    name = "fidelity"
    description = "agreement with the suite's baseline: mean per-token KL(baseline || this), top-1 agreement"

    def setup(self, ctx):
        """Called with the baseline model before the technique is applied."""
        from optbench.measure.accuracy import logits_for

        ctx.shared["baseline_logits"] = logits_for(ctx.baseline_model, _eval_windows(ctx), device=ctx.device)

    def measure(self, ctx):
        from optbench.measure.accuracy import fidelity, logits_for

        r = fidelity(ctx.shared["baseline_logits"], logits_for(ctx.model, _eval_windows(ctx), device=ctx.device))
        return {"kl_divergence": {"value": r.kl, "unit": "nats/token"},
                "top1_agreement": {"value": r.top1_agreement, "unit": "fraction"}}


@hookimpl
def optbench_register_metrics(register):
    for m in (Latency(), Memory(), Cost(), Accuracy(), Fidelity()):
        register(m)
