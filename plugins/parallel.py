"""Parallelism on torch.distributed: data (DDP), model (pipeline, tensor) and task parallelism.

``ddp``, ``pipeline`` and ``tensor-parallel`` run inside the ordinary cell process, which
launches ``torchrun`` as its child (``optbench.distributed``): gloo on CPU, NCCL on GPU. So
a distributed cell keeps the isolation, timeout and one row of any other cell; a rank that
crashes fails that cell with the rank's error in one line, and the run goes on. Each also
runs the same job in one process inside the cell, and checks that the ranks computed the
same thing (losses per step, or the output) within ``tolerance``; a mismatch fails the cell.

``task-parallel`` runs independent tasks (each: one technique applied to a copy of the
model, then held-out perplexity) one after another, then concurrently on a
``concurrent.futures.ProcessPoolExecutor``, and reports both makespans.

World sizes a machine cannot host are skipped with the reason: one CPU core per rank on
CPU, one GPU per rank on CUDA. The figures reach the row through the ``parallel`` metric.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager

from optbench import Metric, SkipCell, Technique, hookimpl

#: the first steps / calls of a timed loop are not counted (allocator and thread-pool warm-up)
WARMUP = 2
#: backends whose ranks run as they do: eager float32 on the backend's device
RANK_BACKENDS = ("cpu", "cuda")


@contextmanager
def _threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stats(samples: list[float]) -> dict:
    from optbench.measure.latency import summarize

    return summarize(samples).to_dict()


def _median(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs)


class _Distributed(Technique):
    kind = "parallel"
    world_param = "world_size"

    def world(self, params) -> int:
        return int(params[self.world_param])

    def validate(self, params):
        problems = []
        if self.world(params) < 1:
            problems.append(f"{self.world_param} must be >= 1, got {params[self.world_param]}")
        if params["threads_per_rank"] < 1:
            problems.append(f"threads_per_rank must be >= 1, got {params['threads_per_rank']}")
        if params["timeout_s"] <= 0:
            problems.append(f"timeout_s must be > 0, got {params['timeout_s']}")
        return problems

    def supported(self, params, backend):
        if backend.name not in RANK_BACKENDS:
            return False, (f"{self.name} ranks run eager float32 on {' or '.join(RANK_BACKENDS)}; "
                           f"backend {backend.name!r} would not apply inside them")
        ok, why = backend.available()
        if not ok:
            return False, why
        from optbench.distributed import world_size_problem

        problem = world_size_problem(self.world(params), backend.device, params["threads_per_rank"])
        return (False, problem) if problem else (True, "")

    def _launch(self, job, model, params, ctx, **kw):
        from optbench.distributed import launch

        timeout = float(params["timeout_s"])
        cell_timeout = ctx.cell.get("timeout")
        if cell_timeout:
            timeout = min(timeout, 0.9 * float(cell_timeout))  # fail with a reason before the runner kills the cell
        return launch({**job, "device": ctx.device, "seed": ctx.seed}, model, self.world(params),
                      work_root=ctx.shared.get("cache_dir"), threads_per_rank=params["threads_per_rank"],
                      timeout_s=timeout, log=ctx.log, **kw)

    @staticmethod
    def _rank_figures(res) -> dict:
        return {
            "rank_peak_rss": {"value": max(r["peak_rss"] for r in res.ranks), "unit": "B",
                              "per_rank": [r["peak_rss"] for r in res.ranks]},
            "rank_param_bytes": {"value": max(r["param_bytes"] for r in res.ranks), "unit": "B",
                                 "per_rank": [r["param_bytes"] for r in res.ranks]},
            "launch_seconds": {"value": round(res.seconds, 3), "unit": "s",
                               "note": "torchrun wall time, rank start-up (import torch) included"},
            **({"rank_cuda_peak_allocated": {"value": max(r["cuda_peak_allocated"] for r in res.ranks), "unit": "B",
                                             "per_rank": [r["cuda_peak_allocated"] for r in res.ranks]}}
               if "cuda_peak_allocated" in res.ranks[0] else {}),
        }

    @staticmethod
    def _info(res, params, **extra) -> dict:
        return {
            "launcher": " ".join(res.command[:-1]) + " WORK_DIR",
            "process_group": res.result["backend"],
            "world_size": res.result["world_size"],
            "rank_env": res.env,
            "ranks": [{k: r[k] for k in ("rank", "pid", "device", "omp_num_threads", "torch_threads", "peak_rss", "param_bytes")}
                      for r in res.ranks],
            "threads_per_rank": params["threads_per_rank"],
            **extra,
        }

    def _check_forward(self, out, ref, params, what: str) -> dict:
        """Agreement of a distributed output with the single process's; raises past tolerance."""
        diff = (out.float() - ref.float()).abs().max().item()
        scale = ref.float().abs().max().item()
        rel = diff / scale if scale else diff
        if rel > params["tolerance"]:
            raise AssertionError(f"{what} output differs from the single-process model: max abs diff {diff:.3g} "
                                 f"({rel:.3g} of the largest |output| {scale:.3g}) > tolerance {params['tolerance']:g}")
        return {"output_max_abs_diff": {"value": diff, "unit": "", "relative": rel, "tolerance": params["tolerance"],
                                        "compared_with": "the same model in one process, same input"}}

    def _forward_input(self, ctx):
        import torch

        wl = ctx.workload
        g = torch.Generator().manual_seed(ctx.seed)  # the latency metric's input
        return torch.randint(0, 256, (wl["batch"], wl["seq_len"]), generator=g)

    def _forward_job(self, model, params, ctx, job, what):
        """Time the single-process forward, launch the ranks, compare, and gather the figures."""
        from optbench.distributed import timed_forward

        x = self._forward_input(ctx)
        model.eval()
        res = self._launch({**job, "batch": x.shape[0], "seq_len": x.shape[1], "warmup": WARMUP, "reps": params["reps"]},
                           model, params, ctx, inputs=x)
        one_process = model.to(ctx.device)
        xd = x.to(ctx.device)
        with _threads(params["threads_per_rank"]):
            ref, ref_times = timed_forward(lambda: one_process(xd), WARMUP, params["reps"], sync=ctx.backend.synchronize)
        world = self.world(params)
        figures = self._check_forward(res.output, ref.cpu(), params, what)
        lat = _stats(res.result["times"])
        one = _median(ref_times)
        tokens = x.numel()
        figures.update({
            "latency": lat,
            "throughput": {"value": tokens / lat["median"], "unit": "tokens/s", "per": "latency", "numerator": tokens},
            "single_process_latency": {"value": one, "unit": "s", "threads": params["threads_per_rank"],
                                       "note": "median forward of the same model and input in one process"},
            "parallel_speedup": {"value": one / lat["median"], "unit": "x", "world_size": world},
            "parallel_efficiency": {"value": one / (world * lat["median"]), "unit": "fraction",
                                    "definition": "single-process latency / (world size x latency)"},
            **self._rank_figures(res),
        })
        return res, figures


class DDP(_Distributed):
    name = "ddp"
    description = ("data parallelism: DistributedDataParallel training under torchrun (gloo on CPU, NCCL on GPU), "
                   "AdamW on the workload's batch as the global batch; throughput, scaling efficiency, loss agreement")
    # lr 1e-4: the model is usually a trained checkpoint, and a fresh AdamW at 1e-3 knocks the
    # tiny one's held-out perplexity up 35% in 8 steps (1e-4: about 1%)
    params = {"world_size": 1, "steps": 8, "lr": 1e-4, "tolerance": 1e-5, "threads_per_rank": 1, "timeout_s": 300.0}

    def validate(self, params):
        problems = super().validate(params)
        if params["steps"] < WARMUP + 1:
            problems.append(f"steps must be >= {WARMUP + 1} (the first {WARMUP} are not timed), got {params['steps']}")
        if params["lr"] <= 0:
            problems.append(f"lr must be > 0, got {params['lr']}")
        return problems

    def apply(self, model, params, ctx):
        from optbench.distributed import train_steps
        from optbench.models.corpus import as_tokens

        world = self.world(params)
        batch, seq = ctx.workload["batch"], ctx.workload["seq_len"]
        if batch % world:
            raise ValueError(f"the global batch {batch} is not divisible by world_size {world}")
        tokens = as_tokens(ctx.data("train"))
        job = {"kind": "ddp", "batch": batch, "seq_len": seq, "steps": params["steps"], "lr": params["lr"], "seed": ctx.seed}
        # the single-process run on the same global batch: the losses to match, and throughput at world size 1
        reference = copy.deepcopy(model).to(ctx.device)
        with _threads(params["threads_per_rank"]):
            ref_losses, ref_times = train_steps(reference, tokens, job, device=ctx.device)
        del reference
        res = self._launch(job, model, params, ctx, train_tokens=tokens)
        losses, times = res.result["losses"], res.result["step_times"]
        diffs = [abs(a - b) for a, b in zip(losses, ref_losses, strict=True)]
        worst = max(range(len(diffs)), key=diffs.__getitem__)
        if diffs[worst] > params["tolerance"]:
            raise AssertionError(f"DDP loss at step {worst} differs from the single-process run by {diffs[worst]:.3g} "
                                 f"> tolerance {params['tolerance']:g} ({losses[worst]:.6f} vs {ref_losses[worst]:.6f})")
        tokens_per_step = batch * seq
        tput = tokens_per_step * len(times[WARMUP:]) / sum(times[WARMUP:])
        tput1 = tokens_per_step * len(ref_times[WARMUP:]) / sum(ref_times[WARMUP:])
        figures = {
            "train_throughput": {"value": tput, "unit": "tokens/s", "world_size": world, "global_batch": batch,
                                 "timed_steps": len(times) - WARMUP},
            "single_process_train_throughput": {"value": tput1, "unit": "tokens/s", "threads": params["threads_per_rank"]},
            "scaling_efficiency": {"value": tput / (world * tput1), "unit": "fraction",
                                   "definition": "throughput_W / (W x throughput_1), W ranks and the single process "
                                                 "each on threads_per_rank threads, same global batch"},
            "loss_max_abs_diff": {"value": diffs[worst], "unit": "nats/token", "tolerance": params["tolerance"],
                                  "steps": len(diffs), "per_step": diffs},
            "final_loss": {"value": losses[-1], "unit": "nats/token"},
            "step_time": _stats(times[WARMUP:]),
            **self._rank_figures(res),
        }
        ctx.shared["parallel_metrics"] = figures
        ctx.shared["technique_info"] = self._info(res, params, losses=losses, single_process_losses=ref_losses)
        model.load_state_dict(res.state_dict)  # the trained weights: later metrics see the model DDP trained
        return model.eval()


class Pipeline(_Distributed):
    name = "pipeline"
    description = ("model parallelism: the model's blocks split into pipeline stages, one per rank "
                   "(torch.distributed.pipelining, ScheduleGPipe); output agreement, latency, per-rank memory")
    params = {"stages": 2, "microbatches": 2, "reps": 10, "tolerance": 1e-5, "threads_per_rank": 1, "timeout_s": 300.0}
    world_param = "stages"

    def validate(self, params):
        problems = super().validate(params)
        if params["stages"] < 2:
            problems.append(f"stages must be >= 2 (one stage is the model itself), got {params['stages']}")
        if params["microbatches"] < 1 or params["reps"] < 1:
            problems.append("microbatches and reps must be >= 1")
        return problems

    def apply(self, model, params, ctx):
        blocks = getattr(model, "blocks", None)
        if blocks is None:
            raise SkipCell("pipeline splits a model's `blocks` list; this model has none")
        if len(blocks) < params["stages"]:
            raise SkipCell(f"{params['stages']} stages need at least {params['stages']} blocks; the model has {len(blocks)}")
        if ctx.workload["batch"] % params["microbatches"]:
            raise ValueError(f"batch {ctx.workload['batch']} is not divisible by microbatches {params['microbatches']}")
        res, figures = self._forward_job(model, params, ctx, {"kind": "pipeline", "microbatches": params["microbatches"]},
                                         "pipeline")
        ctx.shared["parallel_metrics"] = figures
        ctx.shared["technique_info"] = self._info(res, params, split_before_blocks=res.result["cuts"],
                                                  schedule="ScheduleGPipe", microbatches=params["microbatches"])
        return model


class TensorParallel(_Distributed):
    name = "tensor-parallel"
    description = ("model parallelism: every block's FFN sharded over the ranks with DTensor "
                   "(ColwiseParallel then RowwiseParallel); output agreement, latency, per-rank memory")
    params = {"world_size": 2, "reps": 10, "tolerance": 1e-5, "threads_per_rank": 1, "timeout_s": 300.0}

    def validate(self, params):
        problems = super().validate(params)
        if params["reps"] < 1:
            problems.append("reps must be >= 1")
        return problems

    def apply(self, model, params, ctx):
        import torch

        world = self.world(params)
        blocks = getattr(model, "blocks", None)
        mlps = [getattr(b, "mlp", None) for b in blocks] if blocks is not None else []
        if not mlps or not all(isinstance(getattr(m, "fc", None), torch.nn.Linear) for m in mlps):
            raise SkipCell("tensor-parallel shards `blocks[i].mlp.fc` / `.out`; this model has no such FFN")
        bad = [m.fc.out_features for m in mlps if m.fc.out_features % world]
        if bad:
            raise SkipCell(f"FFN width {bad[0]} is not divisible by world_size {world}")
        res, figures = self._forward_job(model, params, ctx, {"kind": "tensor"}, "tensor-parallel")
        ctx.shared["parallel_metrics"] = figures
        ctx.shared["technique_info"] = self._info(res, params, sharded="blocks[*].mlp: fc ColwiseParallel, out RowwiseParallel",
                                                  replicated="embeddings, attention, norms, head")
        return model


# --- task parallelism -----------------------------------------------------------------------------

_TASK_STATE: dict = {}  # set before the pool forks its workers, which inherit it


def _task_worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_task(spec: str) -> tuple[str, float, float]:
    """One task: apply a technique to a copy of the model, then held-out perplexity. ``(spec, ppl, seconds)``."""
    from optbench.measure.accuracy import evaluate

    t0 = time.perf_counter()
    s = _TASK_STATE
    name, _, method = spec.partition(":")
    tech = s["techniques"].get(name)
    params = {**tech.params, **({"method": method} if method else {})}
    model = tech.apply(copy.deepcopy(s["model"]), params, s["ctx"])
    ppl = evaluate(model, s["windows"], device=s["ctx"].device).perplexity
    return spec, ppl, time.perf_counter() - t0


@contextmanager
def _may_have_children():
    # the cell process is a daemonic multiprocessing child, and multiprocessing refuses to start
    # children from one; the runner kills the cell's whole process group, so none can be orphaned
    import multiprocessing as mp

    cfg = mp.current_process()._config
    before = cfg.get("daemon")
    cfg["daemon"] = False
    try:
        yield
    finally:
        cfg["daemon"] = before


class TaskParallel(Technique):
    name = "task-parallel"
    kind = "parallel"
    description = ("task parallelism: independent tasks (a technique applied to a copy of the model, then held-out "
                   "perplexity) run one after another, then concurrently on a process pool; makespan ratio")
    params = {"workers": 2, "tasks": ["none", "quantize", "prune", "share"], "timeout_s": 300.0}

    def validate(self, params):
        problems = []
        if params["workers"] < 1:
            problems.append(f"workers must be >= 1, got {params['workers']}")
        if not params["tasks"] or not all(isinstance(t, str) for t in params["tasks"]):
            problems.append("tasks must be a non-empty list of technique names (name or name:method)")
        return problems

    def label(self, params):
        return super().label({k: v for k, v in params.items() if k != "tasks"}) + (
            "" if params["tasks"] == self.params["tasks"] else f"[{len(params['tasks'])} tasks]")

    def supported(self, params, backend):
        if backend.device != "cpu":
            return False, "task-parallel runs its workers on the CPU"
        from optbench.distributed import usable_cpus

        n = usable_cpus()
        if params["workers"] > n:
            return False, f"{params['workers']} workers need {params['workers']} CPU cores (one per worker); this machine has {n}"
        return True, ""

    def apply(self, model, params, ctx):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, wait

        from optbench import manager
        from optbench.manager import did_you_mean
        from optbench.measure.accuracy import eval_windows

        techniques = manager.load(warn=lambda s: None).techniques()
        for spec in params["tasks"]:
            name = spec.partition(":")[0]
            if name not in techniques:
                raise ValueError(f"unknown technique {name!r} in tasks{did_you_mean(name, techniques.names())}")
            if techniques.get(name).kind == "parallel":
                raise ValueError(f"task {spec!r} is itself a parallel technique")
        import importlib

        for spec in params["tasks"]:  # heavy imports now: neither way of running the tasks pays for them
            for module in techniques.get(spec.partition(":")[0]).preload:
                importlib.import_module(module)
        m = ctx.measure
        windows = eval_windows(ctx.data(ctx.cell["data"]["split"]), m["eval_seq_len"], m["eval_tokens"])
        _TASK_STATE.update(model=model, techniques=techniques, ctx=ctx, windows=windows)
        try:
            t0 = time.perf_counter()
            with _threads(1):
                serial = [_run_task(spec) for spec in params["tasks"]]
            serial_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            with _may_have_children(), ProcessPoolExecutor(params["workers"], mp_context=mp.get_context("fork"),
                                                           initializer=_task_worker_init) as pool:
                futures = [pool.submit(_run_task, spec) for spec in params["tasks"]]
                done, pending = wait(futures, timeout=params["timeout_s"])
                if pending:
                    for f in pending:
                        f.cancel()
                    raise TimeoutError(f"{len(pending)} of {len(futures)} tasks unfinished after {params['timeout_s']:g} s")
                concurrent = [f.result() for f in futures]
            parallel_s = time.perf_counter() - t0
        finally:
            _TASK_STATE.clear()
        diff = max(abs(a[1] - b[1]) for a, b in zip(serial, concurrent, strict=True))
        if diff > 1e-9:
            raise AssertionError(f"a task gave a different perplexity in a worker process (max diff {diff:.3g})")
        ctx.shared["parallel_metrics"] = {
            "makespan_serial": {"value": serial_s, "unit": "s", "tasks": len(serial)},
            "makespan_parallel": {"value": parallel_s, "unit": "s", "workers": params["workers"],
                                  "note": "forking the workers included"},
            "makespan_ratio": {"value": serial_s / parallel_s, "unit": "x", "workers": params["workers"],
                               "definition": "one after another / concurrently (at most the number of workers)"},
            "task_result_max_diff": {"value": diff, "unit": "perplexity"},
        }
        ctx.shared["technique_info"] = {
            "executor": f"concurrent.futures.ProcessPoolExecutor(max_workers={params['workers']}, fork)",
            "threads_per_task": 1,
            "tasks": [{"task": s, "perplexity": p, "serial_s": round(t, 4), "worker_s": round(c[2], 4)}
                      for (s, p, t), c in zip(serial, concurrent, strict=True)],
        }
        return model


# --- the metric that carries the figures into the row ----------------------------------------------


class ParallelFigures(Metric):
    name = "parallel"
    description = ("figures of a parallel technique (throughput, scaling efficiency, agreement with one process, "
                   "per-rank memory, makespans); for any other cell its single-process forward latency")

    def measure(self, ctx):
        figures = ctx.shared.get("parallel_metrics")
        if figures is not None:
            return figures
        from optbench.plugins.metrics import Latency

        return Latency().measure(ctx)  # the baseline row: what one process does with the same workload


@hookimpl
def optbench_register_techniques(register):
    for t in (DDP(), Pipeline(), TensorParallel(), TaskParallel()):
        register(t)


@hookimpl
def optbench_register_metrics(register):
    register(ParallelFigures())
