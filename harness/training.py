"""Training workloads (``workload: {kind: train}``): one loop for every optimizer, measured.

A training cell trains the model its source loaded (for structure sweeps a fresh
initialisation from a fixed seed) on the dataset's ``train`` split. Batches are drawn
from a generator seeded with the suite's seed, so every optimizer of a suite sees the same
data in the same order: differences between cells are the optimizer's. Held-out loss is
evaluated every ``eval_every`` steps on the same windows the ``accuracy`` metric uses.

A run that diverges (a non-finite loss, or a loss above ``divergence_factor`` times its
starting value) stops early and is recorded as ``diverged: "<reason> at step N"``; the
cell stays ``ok`` and the suite goes on.

The optimizers themselves are plugins (techniques with ``make_optimizer``, see
``optbench.plugins.optimizers``); the table of torch.optim optimizers they are built from
lives here so the default optimizer (for cells whose technique is not an optimizer, such
as ``none`` in a structure sweep) needs no plugin. No torch at import time.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: workload keys of ``kind: train`` and their defaults (``eval_every`` None: steps // 10)
TRAIN_DEFAULTS: dict[str, Any] = {"steps": 200, "seconds": None, "target_loss": None, "eval_every": None,
                                  "divergence_factor": 3.0}
TRAIN_BATCH, TRAIN_SEQ_LEN = 16, 128
TRAIN_ONLY_KEYS = (*TRAIN_DEFAULTS, "optimizer")
#: the first steps are not timed: allocator and thread-pool warm-up
TIMING_WARMUP_STEPS = 3
#: final_train_loss is the mean of this many last steps (one batch is noisy)
FINAL_LOSS_STEPS = 10
#: at most about this many points in a row's curve (train loss averaged between points)
CURVE_POINTS = 200

SCHEDULES = ("constant", "cosine", "linear-warmup")
SCHEDULE_DEFAULTS: dict[str, Any] = {"schedule": "constant", "warmup_steps": 0}


@dataclass(frozen=True)
class OptimizerSpec:
    """A torch.optim optimizer as a plugin exposes it: its hyperparameters and their defaults."""

    torch_class: str
    description: str
    defaults: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)  # torch arguments that define the variant

    @property
    def params(self) -> dict[str, Any]:
        return {**self.defaults, **SCHEDULE_DEFAULTS}


# Defaults are torch.optim's own (momentum 0.9 where momentum is the point of the method).
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("SGD", "stochastic gradient descent without momentum (torch.optim.SGD)",
                         {"lr": 1e-3, "weight_decay": 0.0}),
    "momentum": OptimizerSpec("SGD", "SGD with heavy-ball momentum (torch.optim.SGD)",
                              {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}),
    "nesterov": OptimizerSpec("SGD", "SGD with Nesterov momentum (torch.optim.SGD, nesterov=True)",
                              {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}, {"nesterov": True}),
    "adam": OptimizerSpec("Adam", "Adam (torch.optim.Adam; weight decay added to the gradient)",
                          {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}),
    "adamw": OptimizerSpec("AdamW", "Adam with decoupled weight decay (torch.optim.AdamW)",
                           {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}),
    "rmsprop": OptimizerSpec("RMSprop", "RMSprop (torch.optim.RMSprop)",
                             {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}),
    "adagrad": OptimizerSpec("Adagrad", "Adagrad (torch.optim.Adagrad)",
                             {"lr": 1e-2, "lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0}),
}
#: the optimizer of a train cell whose technique is not an optimizer (``workload.optimizer``)
DEFAULT_OPTIMIZER = "adamw"


def check_optimizer_params(name: str, params: dict[str, Any]) -> list[str]:
    """One message per bad hyperparameter (suites show them as ``FILE:LINE: ...``)."""
    if any(not isinstance(v, (int, float)) for k, v in params.items() if k != "schedule"):
        return []  # a value of the wrong type: the suite's type check has reported it
    problems = []
    if not params["lr"] > 0:
        problems.append(f"lr must be > 0, got {params['lr']}")
    for k in ("beta1", "beta2"):
        if k in params and not 0 <= params[k] < 1:
            problems.append(f"{k} must be in [0, 1), got {params[k]}")
    if "eps" in params and not params["eps"] > 0:
        problems.append(f"eps must be > 0, got {params['eps']}")
    for k in ("weight_decay", "lr_decay"):
        if k in params and params[k] < 0:
            problems.append(f"{k} must be >= 0, got {params[k]}")
    if "momentum" in params:
        low = 0 < params["momentum"] if name in ("momentum", "nesterov") else 0 <= params["momentum"]
        if not (low and params["momentum"] < 1):
            span = "(0, 1)" if name in ("momentum", "nesterov") else "[0, 1)"
            problems.append(f"momentum must be in {span}, got {params['momentum']}")
    if "alpha" in params and not 0 <= params["alpha"] < 1:
        problems.append(f"alpha must be in [0, 1), got {params['alpha']}")
    warmup = params.get("warmup_steps", 0)
    if warmup < 0:
        problems.append(f"warmup_steps must be >= 0, got {warmup}")
    elif params.get("schedule") == "linear-warmup" and warmup < 1:
        problems.append("schedule linear-warmup needs warmup_steps >= 1")
    elif params.get("schedule") == "constant" and warmup > 0:
        problems.append("warmup_steps needs schedule linear-warmup or cosine (constant has no warm-up)")
    return problems


def lr_schedule(optimizer: Any, schedule: str, warmup_steps: int, steps: int) -> Any:
    """A torch.optim.lr_scheduler for one of :data:`SCHEDULES`, stepped once per optimizer step.

    ``linear-warmup`` rises linearly to the base lr over ``warmup_steps`` and stays there;
    ``cosine`` warms up the same way (when ``warmup_steps`` > 0), then anneals to 0 at ``steps``.
    """
    from torch.optim import lr_scheduler as S

    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    warm = S.LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), total_iters=warmup_steps) if warmup_steps else None
    if schedule == "constant":
        return S.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if schedule == "linear-warmup":
        return warm
    cosine = S.CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup_steps), eta_min=0.0)
    return S.SequentialLR(optimizer, [warm, cosine], milestones=[warmup_steps]) if warm else cosine


def build_optimizer(name: str, parameters: Iterable[Any], params: dict[str, Any], steps: int) -> tuple[Any, Any]:
    """``(torch.optim optimizer, lr scheduler)`` for a built-in optimizer name and its params."""
    import torch

    spec = OPTIMIZERS[name]
    kwargs = {k: v for k, v in params.items() if k not in SCHEDULE_DEFAULTS}
    if "beta1" in kwargs:
        kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2"))
    optimizer = getattr(torch.optim, spec.torch_class)(parameters, **kwargs, **spec.fixed)
    return optimizer, lr_schedule(optimizer, params["schedule"], params["warmup_steps"], steps)


def is_optimizer(technique: Any) -> bool:
    """Optimizer techniques provide ``make_optimizer(parameters, params, steps) -> (optimizer, scheduler)``."""
    return callable(getattr(technique, "make_optimizer", None))


# --- the loop ------------------------------------------------------------------------------


@dataclass
class TrainResult:
    metrics: dict[str, dict[str, Any]]  # merged into row["metrics"]
    record: dict[str, Any]  # row["training"]: the curve and what the charts need


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def state_bytes(optimizer: Any) -> int:
    """Bytes of the optimizer's state tensors (momentum buffers, moment estimates, step counts)."""
    from .measure.memory import tensor_bytes

    total = 0
    for state in optimizer.state.values():
        for v in state.values():
            if hasattr(v, "element_size"):
                total += tensor_bytes(v)
    return total


def train_loop(
    model: Any,
    make_optimizer: Callable[[Any, dict[str, Any], int], tuple[Any, Any]],
    optimizer_params: dict[str, Any],
    train_tokens: Any,
    windows: Any,
    *,
    steps: int,
    batch: int,
    seq_len: int,
    seed: int,
    eval_every: int | None = None,
    target_loss: float | None = None,
    seconds: float | None = None,
    divergence_factor: float = 3.0,
    device: str = "cpu",
    time_call: Callable[[Callable[[], Any]], float] | None = None,
    unstable_ratio: float = 1.5,
    log: Callable[[str], None] = lambda s: None,
) -> TrainResult:
    """Train ``model`` in place; return its metrics and curve.

    ``train_tokens`` are the training split's token ids, ``windows`` the held-out evaluation
    windows. ``seconds``, when set, ends training early once that much training time (not
    counting evaluations) has passed. Curve ``seconds`` count training time only, too:
    how often a suite evaluates must not change a cell's time to target.
    """
    import torch
    import torch.nn.functional as F

    from .measure.accuracy import evaluate
    from .measure.latency import summarize
    from .models.corpus import batches

    eval_every = eval_every or max(1, steps // 10)
    time_call = time_call or _perf_time
    torch.manual_seed(seed)
    data = batches(train_tokens, batch, seq_len, torch.Generator().manual_seed(seed))
    optimizer, scheduler = make_optimizer(model.parameters(), dict(optimizer_params), steps)
    curve_every = max(1, steps // CURVE_POINTS)

    def heldout() -> float | None:
        try:
            nll = evaluate(model, windows, device=device).nll
        except OverflowError:  # a loss too large for exp(): the model has blown up
            nll = math.inf
        model.train()
        return _finite(nll)

    losses: list[float] = []
    times: list[float] = []
    curve: list[dict[str, Any]] = []
    pending: list[float] = []  # train losses since the last curve point
    trained_s = 0.0
    first = None
    diverged = ""
    stopped = "steps"
    reached: tuple[int, float] | None = None
    last_heldout: float | None = None
    out: dict[str, Any] = {}

    def one_step(x: Any, y: Any) -> None:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        out["loss"] = loss.detach()

    model.train()
    for step in range(1, steps + 1):
        x, y = (t.to(device) for t in next(data))
        dt = time_call(functools.partial(one_step, x, y))
        if scheduler is not None:
            scheduler.step()
        loss = float(out["loss"].item())
        times.append(dt)
        trained_s += dt
        losses.append(loss)
        pending.append(loss)
        first = loss if first is None else first
        if not math.isfinite(loss):
            diverged = f"non-finite loss ({loss}) at step {step}"
        elif loss > divergence_factor * first:
            diverged = f"loss {loss:.4g} above {divergence_factor:g}x its starting value {first:.4g} at step {step}"
        if seconds is not None and trained_s >= seconds and not diverged:
            stopped = "seconds"
        last = step == steps or bool(diverged) or stopped == "seconds"
        evaluated = step % eval_every == 0 or last
        if step % curve_every == 0 or evaluated:
            finite = [v for v in pending if math.isfinite(v)]
            point = {"step": step, "seconds": round(trained_s, 4),
                     "train_loss": round(statistics.fmean(finite), 5) if len(finite) == len(pending) else None,
                     "heldout_loss": None}
            pending = []
            if evaluated:
                last_heldout = heldout()
                point["heldout_loss"] = None if last_heldout is None else round(last_heldout, 5)
                log(f"step {step:5d}  train loss {loss:.4f}  held-out loss {last_heldout}  ({trained_s:.1f} s training)")
                if target_loss is not None and reached is None and last_heldout is not None and last_heldout <= target_loss:
                    reached = (step, trained_s)
            curve.append(point)
        if diverged:
            stopped = "diverged"
            log(f"diverged: {diverged}")
            break
        if last:
            break
    model.eval()

    warm = min(TIMING_WARMUP_STEPS, len(times) - 1)
    stats = summarize(times[warm:], warmup=warm, unstable_ratio=unstable_ratio)
    tokens = batch * seq_len
    tail = [v for v in losses[-FINAL_LOSS_STEPS:] if math.isfinite(v)]
    final_train = statistics.fmean(tail) if tail and not diverged else None
    n_tokens = int(windows.shape[0] * (windows.shape[1] - 1))
    metrics: dict[str, dict[str, Any]] = {
        "step_time": {**stats.to_dict(), "what": "one optimizer step: forward, backward, update", "tokens_per_step": tokens},
        "tokens_per_s": {"value": tokens / stats.median, "unit": "tokens/s", "per": "step_time", "numerator": tokens},
        "train_steps": {"value": len(times), "unit": "steps"},
        "train_seconds": {"value": round(trained_s, 4), "unit": "s", "note": "training steps only, evaluations excluded"},
        "optimizer_state_bytes": {"value": state_bytes(optimizer), "unit": "B"},
    }
    # a diverged model has no final loss or perplexity worth a number: absent, and
    # row["training"]["diverged"] says why
    if final_train is not None:
        metrics["final_train_loss"] = {"value": final_train, "unit": "nats/token", "mean_of_last_steps": len(tail)}
    if last_heldout is not None and not diverged:
        metrics["heldout_loss"] = {"value": last_heldout, "unit": "nats/token", "tokens": n_tokens}
        metrics["perplexity"] = {"value": math.exp(last_heldout), "unit": "", "tokens": n_tokens}
    if target_loss is not None:
        step_at, s_at = reached if reached else (None, None)
        common = {"target_loss": target_loss, "on": "heldout_loss", "resolution_steps": eval_every}
        metrics["steps_to_target"] = {"value": step_at, "unit": "steps", **common}
        metrics["seconds_to_target"] = {"value": None if s_at is None else round(s_at, 4), "unit": "s", **common}
        if reached is None:
            metrics["steps_to_target"]["note"] = metrics["seconds_to_target"]["note"] = "not reached"
    record = {
        "curve": curve,
        "target_loss": target_loss,
        "reached_at_step": reached[0] if reached else None,
        "diverged": diverged,
        "stopped": stopped,
        "steps_done": len(times),
        "eval_every": eval_every,
        "budget": {"steps": steps, **({"seconds": seconds} if seconds is not None else {})},
    }
    return TrainResult(metrics, record)


def _perf_time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def train_cell(ctx: Any, technique: Any, tech_spec: dict[str, Any], techniques: Any) -> TrainResult:
    """Train ``ctx.model`` as the cell's workload says, with the cell's optimizer.

    The optimizer is the technique when it is one (``adam``, ``sgd``...); otherwise the
    workload's ``optimizer`` (default :data:`DEFAULT_OPTIMIZER` with its defaults). Also
    adds ``parameters`` and forward ``flops_per_token`` of the trained model, and leaves
    the evaluation windows in ``ctx.shared`` for the ``accuracy`` metric.
    """
    from .measure.accuracy import eval_windows
    from .measure.flops import flops_per_token
    from .models.corpus import as_tokens
    from .models.gpt import attention_flops

    wl, m = ctx.workload, ctx.measure
    if is_optimizer(technique):
        make, optimizer = technique.make_optimizer, {"name": tech_spec["name"], "params": tech_spec["params"]}
    else:
        optimizer = wl.get("optimizer") or {"name": DEFAULT_OPTIMIZER, "params": OPTIMIZERS[DEFAULT_OPTIMIZER].params}
        name = optimizer["name"]
        if name in techniques and is_optimizer(techniques.get(name)):
            make = techniques.get(name).make_optimizer
        else:  # the built-in table, so the default optimizer needs no plugin

            def make(parameters, params, steps, name=name):
                return build_optimizer(name, parameters, params, steps)

    # evaluate no longer windows than training used: positions past them were never trained
    seq = min(m["eval_seq_len"], wl["seq_len"], ctx.model_meta.get("config", {}).get("max_seq_len", m["eval_seq_len"]))
    windows = eval_windows(ctx.data(ctx.cell["data"]["split"]), seq, m["eval_tokens"])
    ctx.shared["eval_windows"] = windows  # the accuracy metric scores the trained model on the same windows
    result = train_loop(
        ctx.model, make, optimizer["params"], as_tokens(ctx.data("train")), windows,
        steps=wl["steps"], batch=wl["batch"], seq_len=wl["seq_len"], seed=ctx.seed, eval_every=wl.get("eval_every"),
        target_loss=wl.get("target_loss"), seconds=wl.get("seconds"), divergence_factor=wl.get("divergence_factor", 3.0),
        device=ctx.device, time_call=ctx.backend.time_call, unstable_ratio=m.get("unstable_ratio", 1.5), log=ctx.log,
    )
    result.record["optimizer"] = {"name": optimizer["name"], "params": dict(optimizer["params"])}
    for k in ("heldout_loss", "perplexity"):
        if k in result.metrics:
            result.metrics[k]["split"] = ctx.cell["data"]["split"]
    f = flops_per_token(ctx.model, wl["seq_len"], ctx.device, attention_flops)
    result.metrics["parameters"] = {"value": sum(p.numel() for p in ctx.model.parameters()), "unit": "count"}
    result.metrics["flops_per_token"] = {"value": f["flops_per_token"], "unit": "FLOP", "pass": "forward",
                                         **({"notes": f["notes"]} if f["notes"] else {})}
    return result
