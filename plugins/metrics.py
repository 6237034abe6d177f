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


def _logits(ctx):
    """The measured model's logits on the evaluation windows, computed once per cell."""
    if "logits" not in ctx.shared:
        from optbench.measure.accuracy import logits_for

        ctx.shared["logits"] = logits_for(ctx.model, _eval_windows(ctx), device=ctx.device)
    return ctx.shared["logits"]


class Latency(Metric):
    name = "latency"
    description = "forward-pass latency: median, p90, mean, 95% CI of the median, unstable flag"
    timed = True

    def measure(self, ctx):
        import time

        import torch
        from optbench.measure import latency
        from optbench.measure.allocator import minor_faults

        wl, m = ctx.workload, ctx.measure
        g = torch.Generator().manual_seed(ctx.seed)
        x = torch.randint(0, 256, (wl["batch"], wl["seq_len"]), generator=g).to(ctx.device)
        def forward(model):
            def call():
                with torch.inference_mode():
                    model(x)
            return call

        call = forward(ctx.model)

        faults: list[int] = []  # minor page faults of each call: a warm loop with a steady allocator has ~none

        def timed():
            f0 = minor_faults()
            seconds = ctx.backend.time_call(call)
            faults.append(minor_faults() - f0)
            return seconds

        def timing():
            return latency.measure(
                timed, warmup=m["warmup"], min_reps=m["min_reps"], min_time_s=m["min_time_s"],
                max_time_s=m["max_time_s"], precision=m["precision"], unstable_ratio=m["unstable_ratio"],
            )

        # settle_s: wait, up to that many seconds, for the machine state of this cell's earlier
        # rounds (state_level, from the runner) and time again when the probe after timing says it
        # left that state; what was set aside is recorded, never hidden
        # (an extra round of measure.extend_s waits, with the time left, for the quiet state: the
        # wider state_margin over the cell's fastest round, its probe and its own latency, which sees
        # a neighbour on the other core that the probe does not)
        level, budget = ctx.cell.get("state_level"), m.get("settle_s") or 0
        margin = ctx.cell.get("state_margin", latency.STATE_MARGIN)
        quiet = ctx.cell.get("quiet_median")
        settling = bool(level and budget)
        deadline = time.perf_counter() + budget
        waited, set_aside = 0.0, []

        def own_quiet(median: float | None = None) -> bool:
            """Without quiet_median, always; with it, whether the cell's own latency (``median``, or a
            quick one read now) is back within margin of its fastest round's."""
            return not quiet or latency.in_state(latency.quick_median(timed) if median is None else median, quiet, margin)

        probe_before = latency.speed_probe()
        if settling:
            probe_before, waited, _ = latency.settle(level, deadline, probe_before, margin=margin, also=own_quiet)
        stats = timing()
        probe_after = latency.speed_probe()
        while settling and time.perf_counter() < deadline and not (
                latency.in_state(probe_after, level, margin) and own_quiet(stats.median)):
            probe, w, back = latency.settle(level, deadline, margin=margin, also=own_quiet)
            waited += w
            if not back:
                break  # the state did not come back in time: the timing stands, its probe says where it was
            set_aside.append({"median": stats.median, "speed_probe_s": [probe_before, probe_after]})
            probe_before, stats = probe, timing()
            probe_after = latency.speed_probe()
        ctx.shared["latency_median_s"] = stats.median  # for the mfu metric: FLOPs over this median
        paired = {}
        base_model = ctx.shared.get("paired_baseline")
        if base_model is not None:
            # measure.paired_s: the suite baseline's model (built in this process) and this one, timed
            # in alternating blocks: their ratio shares the machine state the two were timed in
            call_base = forward(base_model)
            alt = latency.alternate(lambda: ctx.backend.time_call(call_base), lambda: ctx.backend.time_call(call),
                                    m["paired_s"])
            paired = {"paired": {**alt, "speed_probe_s": latency.speed_probe()}}
        tokens = wl["batch"] * wl["seq_len"]
        per_rep = sum(faults[-stats.n:]) / stats.n
        settled = {"settle": {"level": level, **({"quiet_median": quiet} if quiet else {}), "waited_s": round(waited, 3),
                              "set_aside": set_aside}} if settling else {}
        return {
            "latency": {**stats.to_dict(), "speed_probe_s": [probe_before, probe_after], "unstable_ratio": m["unstable_ratio"],
                        "page_faults_per_rep": round(per_rep, 1), **settled, **paired},
            "throughput": {"value": tokens / stats.median, "unit": "tokens/s", "per": "latency", "numerator": tokens},
        }


class Memory(Metric):
    name = "memory"
    description = "parameter + buffer bytes (through quantized subclasses), serialized bytes, peak RSS"

    def measure(self, ctx):
        from optbench.measure import memory

        b = memory.model_bytes(ctx.model)
        out = {
            # what the model stores: parameters and buffers, a tensor shared by several layers once
            "model_bytes": {"value": b["unique_bytes"], "unit": "B"},
            "param_bytes": {"value": b["param_bytes"], "unit": "B"},
            "unique_param_bytes": {"value": b["unique_bytes"], "unit": "B"},
            "serialized_bytes": {"value": memory.serialized_bytes(ctx.model), "unit": "B"},
            "peak_rss": {"value": memory.peak_rss_bytes(), "unit": "B"},
        }
        gpu = memory.cuda_peak_bytes(ctx.device)
        if gpu is not None:
            out["gpu_peak_allocated"] = {"value": gpu, "unit": "B"}
        return out


def _linear_sparsity(model):
    """Exact fraction of zero entries over plain (unquantized) Linear weights, or None."""
    import torch

    zeros = total = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and type(m.weight) in (torch.Tensor, torch.nn.Parameter):
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
    return zeros / total if total else None


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
        sparsity = _linear_sparsity(ctx.model)
        if sparsity is not None:
            out["weight_sparsity"] = {"value": sparsity, "unit": "fraction", "scope": "Linear weights"}
        return out


class Accuracy(Metric):
    name = "accuracy"
    description = "held-out perplexity and next-token top-1 accuracy (batch-size independent)"

    def measure(self, ctx):
        from optbench.measure.accuracy import score_logits

        r = score_logits(_logits(ctx), _eval_windows(ctx))
        return {
            "perplexity": {"value": r.perplexity, "unit": "", "tokens": r.tokens, "split": ctx.cell["data"]["split"]},
            "top1_accuracy": {"value": r.top1, "unit": "fraction"},
        }


class Fidelity(Metric):
    name = "fidelity"
    description = "agreement with the suite's baseline: mean per-token KL(baseline || this), top-1 agreement"

    def setup(self, ctx):
        """Called with the baseline model before the technique is applied.

        The baseline's logits are computed once per run and cached in the run directory
        (keyed by model, baseline technique, backend and evaluation windows); a cell whose
        technique is the baseline compares the model with itself and computes nothing extra.
        """
        import hashlib
        import json
        import os

        import torch
        from optbench.measure.accuracy import logits_for

        cell = ctx.cell
        if ctx.baseline_is_self:
            return
        windows = _eval_windows(ctx)
        ident = json.dumps([cell["model"], cell.get("model_fingerprint"), cell["baseline"], cell["backend"], cell["data"],
                            list(windows.shape), int(windows.sum())], sort_keys=True, default=str)
        cache_dir = ctx.shared.get("cache_dir")
        path = os.path.join(cache_dir, f"baseline-logits-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.pt") if cache_dir else None
        if path and os.path.exists(path):
            try:
                ctx.shared["baseline_logits"] = torch.load(path, weights_only=True)
                return
            except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
                pass
        logits = logits_for(ctx.baseline_model, windows, device=ctx.device)
        ctx.shared["baseline_logits"] = logits
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            torch.save(logits, tmp)
            os.replace(tmp, path)

    def measure(self, ctx):
        from optbench.measure.accuracy import fidelity

        logits = _logits(ctx)
        r = fidelity(logits if ctx.baseline_is_self else ctx.shared["baseline_logits"], logits)
        return {"kl_divergence": {"value": r.kl, "unit": "nats/token"},
                "top1_agreement": {"value": r.top1_agreement, "unit": "fraction"}}


@hookimpl
def optbench_register_metrics(register):
    for m in (Latency(), Memory(), Cost(), Accuracy(), Fidelity()):
        register(m)
