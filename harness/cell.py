"""Run one cell, inside its own process; return its result row.

The row carries phase timings so the runner can report the harness's own overhead:
everything but applying the technique and measuring (process start, plugin loading,
model loading, transport of the result).
"""

from __future__ import annotations

import copy
import os
import signal
import sys
import time
import traceback
from typing import Any

SCHEMA = 1


def _plugin_manager(settings: dict[str, Any]):
    from . import manager as plugins

    pm = plugins.load(strict=settings.get("strict", False), disabled=settings.get("disabled", ()), warn=lambda s: None)
    for name, spec in settings.get("inline", {}).items():
        # plugins registered in-process by tests (optbench.testing) travel as module names
        import importlib

        pm.register(importlib.import_module(spec), name)
    return pm


def one_line(text: str, limit: int = 300) -> str:
    """A reason fit for one line of a table: first line, ANSI codes dropped, bounded length.

    The full message stays in the row's traceback and the cell's log file.
    """
    import re

    first = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def run_cell(cell: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    row: dict[str, Any] = {"status": "ok", "reason": "", "metrics": {}}
    try:
        _run(cell, settings, row, phases)
    except BaseException as e:  # noqa: BLE001 - everything becomes the cell's reason
        from .api import SkipCell

        if isinstance(e, SkipCell):
            row.update(status="skipped", reason=one_line(str(e)))
        else:
            where = row.pop("_phase", "")
            row.update(status="failed", reason=one_line(f"{where}{type(e).__name__}: {e}"),
                       traceback=traceback.format_exc(limit=12))
    row.pop("_phase", None)
    phases["total_in_process"] = time.perf_counter() - t_start
    row["phases"] = {k: round(v, 4) for k, v in phases.items()}
    return row


def _run(cell: dict[str, Any], settings: dict[str, Any], row: dict[str, Any], phases: dict[str, float]) -> None:
    t = time.perf_counter()
    import torch

    from .api import CellContext, SkipCell

    if cell.get("threads"):
        torch.set_num_threads(int(cell["threads"]))
    pm = _plugin_manager(settings)
    phases["plugins"] = time.perf_counter() - t

    backend = pm.backends().get(cell["backend"])
    ok, why = backend.available()
    if not ok:
        raise SkipCell(why)
    tech_spec, base_spec = cell["technique"], cell["baseline"]
    technique = pm.techniques().get(tech_spec["name"])
    ok, why = technique.supported(tech_spec["params"], backend)
    if not ok:
        raise SkipCell(why)
    row["backend_info"] = backend.describe()
    row["plugin_of"] = {"technique": pm.owner_version("techniques", tech_spec["name"]),
                        "backend": pm.owner_version("backends", cell["backend"])}

    t = time.perf_counter()
    torch.manual_seed(cell["seed"])
    source = pm.models().get(cell["model"]["source"])
    ctx = CellContext(cell=cell, backend=backend, device=backend.device, seed=cell["seed"],
                      dataset=pm.datasets().get(cell["data"]["name"]))
    if settings.get("cache_dir"):
        ctx.shared["cache_dir"] = settings["cache_dir"]
    model_params = {k: v for k, v in cell["model"].items() if k != "source"}
    row["_phase"] = "loading the model: "
    model, meta = source.load(model_params, ctx)
    ctx.model_meta = meta
    row["model_info"] = {k: v for k, v in meta.items() if k in ("config", "hash", "trained", "params")}
    phases["load"] = time.perf_counter() - t

    metrics = [pm.metrics().get(name) for name in cell["measure"]["metrics"]]
    if cell.get("round", 1) > 1:
        # later rounds of an interleaved run time again; what does not vary was measured in round 1
        metrics = [m for m in metrics if m.timed]
    # memory last, so peak RSS covers everything this cell did
    metrics.sort(key=lambda m: m.name == "memory")
    needs_baseline = [m for m in metrics if hasattr(m, "setup")]
    # measure.paired_s, rounds after the first (memory is measured in the first): the latency metric
    # also times this cell's model alternately with the suite baseline's, built here the same way
    paired = (cell.get("round", 1) > 1 and bool(cell["measure"].get("paired_s")) and not ctx.baseline_is_self
              and any(m.name == "latency" for m in metrics) and cell["workload"]["kind"] == "forward")
    t = time.perf_counter()
    if needs_baseline or paired:
        if ctx.baseline_is_self:
            baseline = model  # nothing to build
        else:
            row["_phase"] = "building the baseline: "
            baseline = copy.deepcopy(model)
            if base_spec["name"] != "none":
                baseline = pm.techniques().get(base_spec["name"]).apply(baseline, base_spec["params"], ctx)
            baseline = backend.prepare(baseline, ctx)
        ctx.baseline_model = baseline
        for m in needs_baseline:
            row["_phase"] = f"metric {m.name!r} setup from {pm.owner_where('metrics', m.name)}: "
            m.setup(ctx)
        ctx.baseline_model = None
        if paired:
            ctx.shared["paired_baseline"] = baseline
        del baseline
    phases["baseline"] = time.perf_counter() - t

    t = time.perf_counter()
    row["_phase"] = f"technique {tech_spec['label']!r} from {pm.owner_where('techniques', tech_spec['name'])}: "
    model = technique.apply(model, dict(tech_spec["params"]), ctx)
    if model is None:
        raise TypeError(f"technique {tech_spec['name']!r} returned None from apply(); it must return the model")
    ctx.model = backend.prepare(model, ctx)
    row["backend_info"] = backend.describe()  # again: what prepare did (cpu-compile's compile time)
    trained = None
    if cell["workload"]["kind"] == "train":
        # the training loop (optbench.training) trains the prepared model with the technique's
        # optimizer, or the workload's for techniques that are not optimizers; it is part of
        # "apply", so the harness overhead does not count it
        from .training import is_optimizer, train_cell

        opt_name = tech_spec["name"] if is_optimizer(technique) else cell["workload"]["optimizer"]["name"]
        where = pm.owner_where("techniques", opt_name) if opt_name in pm.techniques() else "optbench"
        row["_phase"] = f"training with optimizer {opt_name!r} from {where}: "
        trained = train_cell(ctx, technique, tech_spec, pm.techniques())
        row["training"] = trained.record
    phases["apply"] = time.perf_counter() - t
    if "technique_info" in ctx.shared:
        row["technique_info"] = ctx.shared["technique_info"]  # e.g. a trained student's loss curve

    for m in metrics:
        t = time.perf_counter()
        row["_phase"] = f"metric {m.name!r} from {pm.owner_where('metrics', m.name)}: "
        try:
            values = m.measure(ctx)
        except SkipCell:
            raise
        except Exception as e:
            if trained is None or not trained.record["diverged"]:
                raise
            # a diverged model (inf/NaN weights) may defeat a metric: the cell stays ok-but-diverged
            trained.record.setdefault("metric_errors", {})[m.name] = one_line(f"{type(e).__name__}: {e}")
            continue
        row["metrics"].update(values)
        phases[f"metric:{m.name}"] = time.perf_counter() - t
    if trained is not None:
        # the workload's own figures win over a metric's of the same name; a diverged model's
        # NaN figures (perplexity from the accuracy metric) are left out, training.diverged says why
        import math

        from .measure.memory import peak_rss_bytes

        merged = {"peak_rss": {"value": peak_rss_bytes(), "unit": "B"}, **row["metrics"], **trained.metrics}
        row["metrics"] = {k: v for k, v in merged.items()
                          if not (isinstance(v, dict) and isinstance(v.get("value"), float) and not math.isfinite(v["value"]))}
    lat = row["metrics"].get("latency")
    if lat and lat.get("unstable"):
        row["unstable"] = lat["unstable_reason"]
    row["threads"] = torch.get_num_threads()
    row["pid"] = os.getpid()


def child_main(cell: dict[str, Any], settings: dict[str, Any], conn: Any, log_path: str) -> None:
    """Entry point of a cell process (forked from the cell server): run, send the row back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides what an interrupt means
    os.setpgid(0, 0)  # a group of its own: killing the cell also kills what it started (torchrun ranks)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    row = run_cell(cell, settings)
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(row)
    conn.close()
